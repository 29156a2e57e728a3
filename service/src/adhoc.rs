//! XEP-0050 ad-hoc commands for a service: a registry of command nodes, the
//! session bookkeeping of multi-stage commands, and the service discovery
//! answers that list them.
//!
//! A service registers each command with [`Commands::add`] (or
//! [`Commands::add_restricted`] to hide it from, and refuse it to, some
//! requesters) and hands every IQ to [`Commands::handle_iq`], which answers
//! those it recognizes ([`Commands::is_command_iq`]): command execution and
//! disco queries on the `http://jabber.org/protocol/commands` node and on
//! each command's node.
//!
//! Handlers are synchronous functions of a [`CommandRequest`]: who asks, the
//! action, the submitted form if any, the stage, and a small string map the
//! handler keeps across the stages of one session. They return a
//! [`CommandOutcome`]: another form to fill in (the session goes on), a
//! completion (the session ends), or a stanza error. Handlers decide access
//! from `req.from`; anything slow belongs in the service's own tasks, with
//! the handler only recording what was asked.
//!
//! Stages are numbered from 0, the initial `execute`. When the requester
//! answers the form shown at stage *n* (`next`, `complete`, or `execute`,
//! which means `next` once a session is open), the handler is called for
//! stage *n*+1 with the submitted form; `prev` calls it for stage *n*−1
//! without a form, so that it shows that stage's form again; `cancel` calls
//! it once more, with [`Action::Cancel`], so that it can let go of whatever
//! it held, and its outcome is ignored.
//!
//! Sessions belong to the full JID that opened them (XEP-0050, Session Lifetime: one
//! requester/responder pair) and expire after ten minutes without use. A
//! session id that is unknown or someone else's is `bad-request` with
//! `<bad-sessionid/>`; one that ended (completed, canceled, expired) not long
//! ago is `not-allowed` with `<session-expired/>`, which lets a client tell
//! the user that they were too slow rather than that it misbehaved.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use crate::forms::{Form, FormKind};
use crate::stanza::{error_reply, iq_result, ErrorType, StanzaError};

/// How long a session may sit idle before it is dropped.
pub const SESSION_TTL: Duration = Duration::from_secs(10 * 60);

/// How long the ids of ended sessions are remembered, to answer
/// `session-expired` rather than `bad-sessionid`.
const ENDED_MEMORY: Duration = Duration::from_secs(60 * 60);

/// At most this many ended session ids are remembered.
const MAX_ENDED: usize = 4096;

/// Open sessions one bare JID may hold at once.
pub const MAX_SESSIONS_PER_REQUESTER: usize = 8;

/// Open sessions the whole registry holds at once.
pub const MAX_SESSIONS: usize = 1024;

/// A command's `action` (XEP-0050, the `<command/>` element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Execute,
    Next,
    Prev,
    Complete,
    Cancel,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Execute => "execute",
            Action::Next => "next",
            Action::Prev => "prev",
            Action::Complete => "complete",
            Action::Cancel => "cancel",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "execute" => Action::Execute,
            "next" => Action::Next,
            "prev" => Action::Prev,
            "complete" => Action::Complete,
            "cancel" => Action::Cancel,
            _ => return None,
        })
    }
}

/// The severity of a `<note/>` (XEP-0050, the `<note/>` element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteType {
    Info,
    Warn,
    Error,
}

impl NoteType {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteType::Info => "info",
            NoteType::Warn => "warn",
            NoteType::Error => "error",
        }
    }
}

/// What a handler is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    /// The requester's full JID.
    pub from: Jid,
    pub node: String,
    /// `Execute` only at stage 0; later, `Next`, `Prev`, `Complete` or
    /// `Cancel`.
    pub action: Action,
    /// The submitted form (`type='submit'`), when the requester sent one.
    pub form: Option<Form>,
    /// See the module documentation.
    pub stage: u32,
    /// The handler's own notes, kept across the stages of one session.
    /// Changes are kept when the handler returns a form, and dropped when
    /// it returns an error (so that a rejected submission leaves no trace).
    pub state: BTreeMap<String, String>,
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Another form to fill in: status `executing`, with the actions
    /// `next` (the default) and `complete`, and `prev` after stage 0.
    Form(Form),
    /// The command is done: status `completed`. A command that failed says
    /// so with a note of type `error` (XEP-0050, Commands Successful/Failed).
    Completed {
        note: Option<(NoteType, String)>,
        form: Option<Form>,
    },
    /// The request is refused with this stanza error; an open session stays
    /// open, so the requester may correct its submission.
    Error(StanzaError),
}

/// A command handler.
pub type Handler = Box<dyn Fn(&mut CommandRequest) -> CommandOutcome + Send + Sync>;

/// Who may see and run a command.
pub type Visibility = Box<dyn Fn(&Jid) -> bool + Send + Sync>;

struct Command {
    node: String,
    name: String,
    visible: Option<Visibility>,
    handler: Handler,
}

impl Command {
    fn visible_to(&self, who: &Jid) -> bool {
        self.visible.as_ref().is_none_or(|v| v(who))
    }
}

struct Session {
    node: String,
    owner: Jid,
    /// The stage whose form the requester has been shown.
    stage: u32,
    state: BTreeMap<String, String>,
    last_used: Instant,
}

/// The commands of one service and their open sessions.
pub struct Commands {
    service: String,
    commands: Vec<Command>,
    sessions: HashMap<String, Session>,
    ended: HashMap<String, Instant>,
    ttl: Duration,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("service", &self.service)
            .field(
                "nodes",
                &self.commands.iter().map(|c| &c.node).collect::<Vec<_>>(),
            )
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

/// The app-specific error conditions of XEP-0050 (Possible Errors).
const BAD_ACTION: &str = "bad-action";
const MALFORMED_ACTION: &str = "malformed-action";
const BAD_PAYLOAD: &str = "bad-payload";
const BAD_SESSIONID: &str = "bad-sessionid";
const SESSION_EXPIRED: &str = "session-expired";

impl Commands {
    /// An empty registry for the service at `service_jid` (the `jid` of the
    /// disco items it lists).
    pub fn new(service_jid: impl Into<String>) -> Commands {
        Commands {
            service: service_jid.into(),
            commands: Vec::new(),
            sessions: HashMap::new(),
            ended: HashMap::new(),
            ttl: SESSION_TTL,
        }
    }

    /// Changes how long idle sessions live (tests, mostly).
    pub fn with_session_ttl(mut self, ttl: Duration) -> Commands {
        self.ttl = ttl;
        self
    }

    /// Registers a command that everyone may see; the handler decides who
    /// may run it. A node registered twice replaces the first one.
    pub fn add(
        &mut self,
        node: impl Into<String>,
        name: impl Into<String>,
        handler: impl Fn(&mut CommandRequest) -> CommandOutcome + Send + Sync + 'static,
    ) {
        self.insert(node.into(), name.into(), None, Box::new(handler));
    }

    /// Registers a command listed to, and runnable by, only those for whom
    /// `visible` is true; others get `forbidden`.
    pub fn add_restricted(
        &mut self,
        node: impl Into<String>,
        name: impl Into<String>,
        visible: impl Fn(&Jid) -> bool + Send + Sync + 'static,
        handler: impl Fn(&mut CommandRequest) -> CommandOutcome + Send + Sync + 'static,
    ) {
        self.insert(
            node.into(),
            name.into(),
            Some(Box::new(visible)),
            Box::new(handler),
        );
    }

    fn insert(
        &mut self,
        node: String,
        name: String,
        visible: Option<Visibility>,
        handler: Handler,
    ) {
        let command = Command {
            node,
            name,
            visible,
            handler,
        };
        match self.commands.iter_mut().find(|c| c.node == command.node) {
            Some(slot) => *slot = command,
            None => self.commands.push(command),
        }
    }

    /// `(node, name)` of every command, in registration order.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.commands
            .iter()
            .map(|c| (c.node.as_str(), c.name.as_str()))
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn command(&self, node: &str) -> Option<&Command> {
        self.commands.iter().find(|c| c.node == node)
    }

    /// Whether [`Commands::handle_iq`] answers this IQ: a command request,
    /// or a disco query on the command list node or on a command's node.
    pub fn is_command_iq(&self, iq: &Element) -> bool {
        if iq.name != "iq" {
            return false;
        }
        let Some(payload) = iq.first_element() else {
            return false;
        };
        match iq.attr("type") {
            Some("set") | Some("get") if payload.is("command", ns::COMMANDS) => true,
            Some("get")
                if payload.is("query", ns::DISCO_INFO) || payload.is("query", ns::DISCO_ITEMS) =>
            {
                payload
                    .attr("node")
                    .is_some_and(|n| n == ns::COMMANDS || self.command(n).is_some())
            }
            _ => false,
        }
    }

    /// The disco#items answer for the `http://jabber.org/protocol/commands`
    /// node: the commands `requester` may see.
    pub fn disco_items(&self, requester: &Jid) -> Element {
        let mut q = Element::new("query", ns::DISCO_ITEMS).with_attr("node", ns::COMMANDS);
        for c in self.commands.iter().filter(|c| c.visible_to(requester)) {
            q.append_child(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", self.service.clone())
                    .with_attr("node", c.node.clone())
                    .with_attr("name", c.name.clone()),
            );
        }
        q
    }

    /// The disco#info answer for a command's node (XEP-0050, Retrieving the Command List):
    /// `item-not-found` for an unknown node, `forbidden` for a command the
    /// requester may not see.
    pub fn disco_info(&self, node: &str, requester: &Jid) -> Result<Element, StanzaError> {
        let q = Element::new("query", ns::DISCO_INFO).with_attr("node", node);
        if node == ns::COMMANDS {
            return Ok(q
                .with_child(
                    Element::new("identity", ns::DISCO_INFO)
                        .with_attr("category", "automation")
                        .with_attr("type", "command-list")
                        .with_attr("name", "Commands"),
                )
                .with_child(feature(ns::COMMANDS)));
        }
        let c = self
            .command(node)
            .ok_or_else(|| StanzaError::new("item-not-found", ErrorType::Cancel))?;
        if !c.visible_to(requester) {
            return Err(StanzaError::forbidden());
        }
        Ok(q.with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "automation")
                .with_attr("type", "command-node")
                .with_attr("name", c.name.clone()),
        )
        .with_child(feature(ns::COMMANDS))
        .with_child(feature(ns::DATA_FORMS)))
    }

    /// Drops sessions idle for longer than the TTL, and forgets ended ones
    /// after an hour.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        let stale: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_used) >= ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.sessions.remove(&id);
            self.ended.insert(id, now);
        }
        self.ended
            .retain(|_, at| now.saturating_duration_since(*at) < ENDED_MEMORY);
        if self.ended.len() > MAX_ENDED {
            let mut by_age: Vec<(String, Instant)> =
                self.ended.iter().map(|(k, v)| (k.clone(), *v)).collect();
            by_age.sort_by_key(|(_, at)| *at);
            for (id, _) in by_age.iter().take(self.ended.len() - MAX_ENDED) {
                self.ended.remove(id);
            }
        }
    }

    /// Answers a command IQ or a disco query on command nodes; `None` for
    /// any other stanza (see [`Commands::is_command_iq`]) and for IQs that
    /// must not be answered.
    pub fn handle_iq(&mut self, iq: &Element, now: Instant) -> Option<Element> {
        if !self.is_command_iq(iq) {
            return None;
        }
        self.expire(now);
        let payload = iq.first_element()?;
        let from = match iq.attr("from").map(Jid::parse) {
            Some(Ok(j)) => j,
            _ => {
                return error_reply(
                    iq,
                    &StanzaError::jid_malformed().with_text("the request has no valid sender"),
                )
            }
        };
        if payload.ns == ns::COMMANDS {
            if iq.attr("type") != Some("set") {
                return error_reply(
                    iq,
                    &StanzaError::bad_request().with_text("commands are run with an IQ set"),
                );
            }
            return Some(match self.execute(payload, &from, now) {
                Ok(command) => iq_result(iq, Some(command)),
                Err((err, app)) => command_error(iq, &err, app)?,
            });
        }
        let node = payload.attr("node").unwrap_or_default();
        let answer = if payload.ns == ns::DISCO_ITEMS {
            if node == ns::COMMANDS {
                Ok(self.disco_items(&from))
            } else {
                // A command node has no items, but it must exist and be
                // visible for the empty list to be the truth.
                self.disco_info(node, &from)
                    .map(|_| Element::new("query", ns::DISCO_ITEMS).with_attr("node", node))
            }
        } else {
            self.disco_info(node, &from)
        };
        match answer {
            Ok(q) => Some(iq_result(iq, Some(q))),
            Err(e) => error_reply(iq, &e),
        }
    }

    /// Runs one command request; the `<command/>` of the result, or the
    /// error with its XEP-0050 app-specific condition.
    fn execute(
        &mut self,
        cmd: &Element,
        from: &Jid,
        now: Instant,
    ) -> Result<Element, (StanzaError, Option<&'static str>)> {
        let Some(node) = cmd.attr("node").filter(|n| !n.is_empty()) else {
            return Err((
                StanzaError::bad_request().with_text("the command has no node"),
                None,
            ));
        };
        let action = match cmd.attr("action") {
            None => Action::Execute,
            Some(a) => Action::parse(a).ok_or_else(|| {
                (
                    StanzaError::bad_request().with_text(format!("'{a}' is not a command action")),
                    Some(MALFORMED_ACTION),
                )
            })?,
        };
        let Some(command) = self.command(node) else {
            return Err((
                StanzaError::new("item-not-found", ErrorType::Cancel)
                    .with_text(format!("there is no command '{node}'")),
                None,
            ));
        };
        if !command.visible_to(from) {
            return Err((StanzaError::forbidden(), None));
        }
        let form = match cmd.get_child("x", ns::DATA_FORMS).map(Form::parse) {
            None => None,
            Some(Ok(mut f)) => match f.kind {
                // XEP-0050 (Use of Data Forms) asks responders to read a `cancel` form
                // as a submission; cancelling is the `cancel` action's job.
                FormKind::Submit | FormKind::Cancel => {
                    f.kind = FormKind::Submit;
                    Some(f)
                }
                FormKind::Form | FormKind::Result => {
                    return Err((
                        StanzaError::bad_request().with_text("a command takes a submitted form"),
                        Some(BAD_PAYLOAD),
                    ))
                }
            },
            Some(Err(e)) => return Err((e.to_stanza_error(), Some(BAD_PAYLOAD))),
        };

        let sessionid = cmd.attr("sessionid").filter(|s| !s.is_empty());
        let Some(sessionid) = sessionid else {
            if action != Action::Execute {
                return Err((
                    StanzaError::bad_request()
                        .with_text(format!("'{}' needs an open session", action.as_str())),
                    Some(BAD_ACTION),
                ));
            }
            return self.start(node, from, form, now);
        };

        let session = match self.sessions.get(sessionid) {
            Some(s) if s.node == node && s.owner == *from => s,
            Some(_) | None if self.ended.contains_key(sessionid) => {
                return Err((
                    StanzaError::not_allowed().with_text("this command session has ended"),
                    Some(SESSION_EXPIRED),
                ))
            }
            _ => {
                return Err((
                    StanzaError::bad_request().with_text("no such command session"),
                    Some(BAD_SESSIONID),
                ))
            }
        };
        let (action, stage) = match action {
            // Once a session is open, `execute` is the default action we
            // offered, which is always `next`.
            Action::Execute | Action::Next | Action::Complete => {
                let a = if action == Action::Complete {
                    Action::Complete
                } else {
                    Action::Next
                };
                (a, session.stage + 1)
            }
            Action::Prev if session.stage == 0 => {
                return Err((
                    StanzaError::bad_request().with_text("this is the first stage"),
                    Some(BAD_ACTION),
                ))
            }
            Action::Prev => (Action::Prev, session.stage - 1),
            Action::Cancel => (Action::Cancel, session.stage),
        };
        let mut req = CommandRequest {
            from: from.clone(),
            node: node.to_owned(),
            action,
            form: if action == Action::Prev || action == Action::Cancel {
                None
            } else {
                form
            },
            stage,
            state: session.state.clone(),
        };
        let outcome = (command.handler)(&mut req);
        let sessionid = sessionid.to_owned();
        if action == Action::Cancel {
            self.end(&sessionid, now);
            return Ok(command_element(node, &sessionid, "canceled"));
        }
        match outcome {
            CommandOutcome::Form(f) => {
                let s = self.sessions.get_mut(&sessionid).expect("looked up above");
                s.stage = stage;
                s.state = req.state;
                s.last_used = now;
                Ok(executing(node, &sessionid, stage, &f))
            }
            CommandOutcome::Completed { note, form } => {
                self.end(&sessionid, now);
                Ok(completed(node, &sessionid, note, form))
            }
            CommandOutcome::Error(e) => {
                // The session stays as it was, and is kept alive: the
                // requester is expected to try again.
                if let Some(s) = self.sessions.get_mut(&sessionid) {
                    s.last_used = now;
                }
                Err((e, None))
            }
        }
    }

    /// Stage 0: a new `execute`.
    fn start(
        &mut self,
        node: &str,
        from: &Jid,
        form: Option<Form>,
        now: Instant,
    ) -> Result<Element, (StanzaError, Option<&'static str>)> {
        let bare = from.to_bare();
        if self.sessions.len() >= MAX_SESSIONS {
            return Err((
                StanzaError::new("resource-constraint", ErrorType::Wait)
                    .with_text("too many command sessions are open; try again later"),
                None,
            ));
        }
        if self
            .sessions
            .values()
            .filter(|s| s.owner.to_bare() == bare)
            .count()
            >= MAX_SESSIONS_PER_REQUESTER
        {
            return Err((
                StanzaError::not_allowed()
                    .with_text("you have too many command sessions open; finish or cancel one"),
                None,
            ));
        }
        let command = self.command(node).expect("checked by the caller");
        let mut req = CommandRequest {
            from: from.clone(),
            node: node.to_owned(),
            action: Action::Execute,
            form,
            stage: 0,
            state: BTreeMap::new(),
        };
        let outcome = (command.handler)(&mut req);
        let sessionid = new_session_id();
        match outcome {
            CommandOutcome::Form(f) => {
                self.sessions.insert(
                    sessionid.clone(),
                    Session {
                        node: node.to_owned(),
                        owner: from.clone(),
                        stage: 0,
                        state: req.state,
                        last_used: now,
                    },
                );
                Ok(executing(node, &sessionid, 0, &f))
            }
            CommandOutcome::Completed { note, form } => {
                self.ended.insert(sessionid.clone(), now);
                Ok(completed(node, &sessionid, note, form))
            }
            CommandOutcome::Error(e) => Err((e, None)),
        }
    }

    fn end(&mut self, sessionid: &str, now: Instant) {
        self.sessions.remove(sessionid);
        self.ended.insert(sessionid.to_owned(), now);
    }
}

fn feature(var: &str) -> Element {
    Element::new("feature", ns::DISCO_INFO).with_attr("var", var)
}

/// 128 random bits, hex: unguessable, so a session cannot be hijacked by
/// guessing (the owner check is the real guard; this is the second one).
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn command_element(node: &str, sessionid: &str, status: &str) -> Element {
    Element::new("command", ns::COMMANDS)
        .with_attr("node", node)
        .with_attr("sessionid", sessionid)
        .with_attr("status", status)
}

fn executing(node: &str, sessionid: &str, stage: u32, form: &Form) -> Element {
    let mut actions = Element::new("actions", ns::COMMANDS).with_attr("execute", "next");
    if stage > 0 {
        actions.append_child(Element::new("prev", ns::COMMANDS));
    }
    actions.append_child(Element::new("next", ns::COMMANDS));
    actions.append_child(Element::new("complete", ns::COMMANDS));
    command_element(node, sessionid, "executing")
        .with_child(actions)
        .with_child(form.to_element())
}

fn completed(
    node: &str,
    sessionid: &str,
    note: Option<(NoteType, String)>,
    form: Option<Form>,
) -> Element {
    let mut c = command_element(node, sessionid, "completed");
    if let Some((kind, text)) = note {
        c.append_child(
            Element::new("note", ns::COMMANDS)
                .with_attr("type", kind.as_str())
                .with_text(text),
        );
    }
    if let Some(f) = form {
        c.append_child(f.to_element());
    }
    c
}

/// An error reply with XEP-0050's app-specific condition after the defined
/// one (RFC 6120 §8.3.2 puts it last in `<error/>`).
fn command_error(iq: &Element, err: &StanzaError, app: Option<&str>) -> Option<Element> {
    let mut reply = error_reply(iq, err)?;
    if let Some(app) = app {
        if let Some(e) = reply.get_child_mut("error", &iq.ns) {
            e.append_child(Element::new(app, ns::COMMANDS));
        }
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::{Field, FieldKind};
    use switchboard_xml::{parse_document, Limits};

    const SERVICE: &str = "irc.example.org";
    const ALICE: &str = "alice@example.org/laptop";

    fn xml(s: &str) -> Element {
        parse_document(s.as_bytes(), Limits::default()).unwrap()
    }

    /// A two-stage command: pick a network, then a nickname; the state
    /// carries the network from one stage to the next.
    fn registry() -> Commands {
        let mut c = Commands::new(SERVICE);
        c.add(
            "join",
            "Join a network",
            |req: &mut CommandRequest| match (req.stage, req.action) {
                (_, Action::Cancel) => CommandOutcome::Completed {
                    note: None,
                    form: None,
                },
                (0, _) => CommandOutcome::Form(
                    Form::new(FormKind::Form).with_field(
                        Field::new("network", FieldKind::ListSingle)
                            .required()
                            .with_option("Libera", "libera"),
                    ),
                ),
                (1, Action::Prev) => unreachable!("stage 1 is reached by next only"),
                (1, _) => {
                    let asked = Form::new(FormKind::Form).with_field(
                        Field::new("network", FieldKind::ListSingle)
                            .with_label("Network")
                            .required()
                            .with_option("Libera", "libera"),
                    );
                    let sub = req.form.as_ref().expect("a submission");
                    match asked.validate_submission(sub) {
                        Ok(pairs) => {
                            req.state.insert("network".into(), pairs[0].1.clone());
                            CommandOutcome::Form(
                                Form::new(FormKind::Form)
                                    .with_field(Field::new("nick", FieldKind::TextSingle)),
                            )
                        }
                        Err(e) => CommandOutcome::Error(e.into()),
                    }
                }
                _ => CommandOutcome::Completed {
                    note: Some((
                        NoteType::Info,
                        format!(
                            "Joined {} as {}",
                            req.state["network"],
                            req.form
                                .as_ref()
                                .and_then(|f| f.value("nick"))
                                .unwrap_or("?")
                        ),
                    )),
                    form: None,
                },
            },
        );
        c.add("ping", "Ping", |_req: &mut CommandRequest| {
            CommandOutcome::Completed {
                note: Some((NoteType::Info, "pong".into())),
                form: None,
            }
        });
        c.add_restricted(
            "admin",
            "Admin only",
            |j: &Jid| j.node() == Some("root"),
            |_req: &mut CommandRequest| CommandOutcome::Completed {
                note: None,
                form: None,
            },
        );
        c
    }

    fn cmd_iq(from: &str, attrs: &str, body: &str) -> Element {
        xml(&format!(
            "<iq xmlns='jabber:client' type='set' id='c1' from='{from}' to='{SERVICE}'>\
             <command xmlns='http://jabber.org/protocol/commands' {attrs}>{body}</command></iq>"
        ))
    }

    fn command(reply: &Element) -> &Element {
        assert_eq!(
            reply.attr("type"),
            Some("result"),
            "{}",
            reply.to_xml_string()
        );
        reply.get_child("command", ns::COMMANDS).unwrap()
    }

    /// `(defined condition, app-specific condition)` of an error reply.
    fn error_of(reply: &Element) -> (String, Option<String>) {
        assert_eq!(reply.attr("type"), Some("error"));
        let e = reply.get_child("error", ns::CLIENT).unwrap();
        let defined = e
            .elements()
            .find(|c| c.ns == ns::STANZAS)
            .unwrap()
            .name
            .clone();
        let app = e
            .elements()
            .find(|c| c.ns == ns::COMMANDS)
            .map(|c| c.name.clone());
        (defined, app)
    }

    const SUBMIT_LIBERA: &str = "<x xmlns='jabber:x:data' type='submit'>\
        <field var='network'><value>libera</value></field></x>";

    #[test]
    fn a_single_stage_command_completes_with_its_note() {
        let mut c = registry();
        let reply = c
            .handle_iq(
                &cmd_iq(ALICE, "node='ping' action='execute'", ""),
                Instant::now(),
            )
            .unwrap();
        assert_eq!(reply.attr("to"), Some(ALICE));
        assert_eq!(reply.attr("from"), Some(SERVICE));
        assert_eq!(reply.attr("id"), Some("c1"));
        let cmd = command(&reply);
        assert_eq!(cmd.attr("node"), Some("ping"));
        assert_eq!(cmd.attr("status"), Some("completed"));
        assert!(!cmd.attr("sessionid").unwrap().is_empty());
        let note = cmd.get_child("note", ns::COMMANDS).unwrap();
        assert_eq!(note.attr("type"), Some("info"));
        assert_eq!(note.text(), "pong");
        assert_eq!(c.session_count(), 0);
    }

    #[test]
    fn multi_stage_sessions_carry_state_and_offer_the_right_actions() {
        let mut c = registry();
        let now = Instant::now();
        let r0 = c.handle_iq(&cmd_iq(ALICE, "node='join'", ""), now).unwrap();
        let cmd = command(&r0);
        assert_eq!(cmd.attr("status"), Some("executing"));
        let sid = cmd.attr("sessionid").unwrap().to_owned();
        assert_eq!(
            cmd.get_child("actions", ns::COMMANDS)
                .unwrap()
                .to_xml_string(),
            "<actions xmlns=\"http://jabber.org/protocol/commands\" execute=\"next\">\
             <next/><complete/></actions>",
            "no prev at the first stage"
        );
        assert!(cmd.get_child("x", ns::DATA_FORMS).is_some());

        // `execute` inside a session means `next`.
        let r1 = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    &format!("node='join' sessionid='{sid}'"),
                    SUBMIT_LIBERA,
                ),
                now,
            )
            .unwrap();
        let cmd = command(&r1);
        assert_eq!(cmd.attr("sessionid"), Some(sid.as_str()));
        let actions = cmd.get_child("actions", ns::COMMANDS).unwrap();
        assert!(actions.get_child("prev", ns::COMMANDS).is_some());

        let r2 = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    &format!("node='join' sessionid='{sid}' action='complete'"),
                    "<x xmlns='jabber:x:data' type='submit'>\
                     <field var='nick'><value>al</value></field></x>",
                ),
                now,
            )
            .unwrap();
        let cmd = command(&r2);
        assert_eq!(cmd.attr("status"), Some("completed"));
        assert_eq!(
            cmd.get_child("note", ns::COMMANDS).unwrap().text(),
            "Joined libera as al"
        );
        assert_eq!(c.session_count(), 0);

        // The id is spent.
        let again = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    &format!("node='join' sessionid='{sid}' action='next'"),
                    "",
                ),
                now,
            )
            .unwrap();
        assert_eq!(
            error_of(&again),
            ("not-allowed".into(), Some("session-expired".into()))
        );
    }

    #[test]
    fn prev_goes_back_and_is_refused_at_the_first_stage() {
        let mut c = registry();
        let now = Instant::now();
        let r0 = c.handle_iq(&cmd_iq(ALICE, "node='join'", ""), now).unwrap();
        let sid = command(&r0).attr("sessionid").unwrap().to_owned();
        let back = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    &format!("node='join' sessionid='{sid}' action='prev'"),
                    "",
                ),
                now,
            )
            .unwrap();
        assert_eq!(
            error_of(&back),
            ("bad-request".into(), Some("bad-action".into()))
        );
        c.handle_iq(
            &cmd_iq(
                ALICE,
                &format!("node='join' sessionid='{sid}' action='next'"),
                SUBMIT_LIBERA,
            ),
            now,
        )
        .unwrap();
        let back = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    &format!("node='join' sessionid='{sid}' action='prev'"),
                    "",
                ),
                now,
            )
            .unwrap();
        let cmd = command(&back);
        assert_eq!(cmd.attr("status"), Some("executing"));
        assert!(
            cmd.get_child("actions", ns::COMMANDS)
                .unwrap()
                .get_child("prev", ns::COMMANDS)
                .is_none(),
            "back at stage 0"
        );
    }

    #[test]
    fn a_rejected_submission_keeps_the_session_open() {
        let mut c = registry();
        let now = Instant::now();
        let r0 = c.handle_iq(&cmd_iq(ALICE, "node='join'", ""), now).unwrap();
        let sid = command(&r0).attr("sessionid").unwrap().to_owned();
        let bad = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    &format!("node='join' sessionid='{sid}' action='next'"),
                    "<x xmlns='jabber:x:data' type='submit'>\
                     <field var='network'><value>efnet</value></field></x>",
                ),
                now,
            )
            .unwrap();
        let (cond, _) = error_of(&bad);
        assert_eq!(cond, "not-acceptable");
        let text = bad
            .get_child("error", ns::CLIENT)
            .unwrap()
            .child_text("text", ns::STANZAS)
            .unwrap();
        assert_eq!(text, "'efnet' is not one of the choices for 'Network'");
        let ok = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    &format!("node='join' sessionid='{sid}' action='next'"),
                    SUBMIT_LIBERA,
                ),
                now,
            )
            .unwrap();
        assert_eq!(command(&ok).attr("status"), Some("executing"));
    }

    #[test]
    fn cancel_ends_the_session() {
        let mut c = registry();
        let now = Instant::now();
        let r0 = c.handle_iq(&cmd_iq(ALICE, "node='join'", ""), now).unwrap();
        let sid = command(&r0).attr("sessionid").unwrap().to_owned();
        let r = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    &format!("node='join' sessionid='{sid}' action='cancel'"),
                    "",
                ),
                now,
            )
            .unwrap();
        assert_eq!(
            command(&r).to_xml_string(),
            format!(
                "<command xmlns=\"http://jabber.org/protocol/commands\" node=\"join\" \
                 sessionid=\"{sid}\" status=\"canceled\"/>"
            )
        );
        assert_eq!(c.session_count(), 0);
    }

    #[test]
    fn sessions_are_their_owners_and_expire() {
        let mut c = registry();
        let t0 = Instant::now();
        let r0 = c.handle_iq(&cmd_iq(ALICE, "node='join'", ""), t0).unwrap();
        let sid = command(&r0).attr("sessionid").unwrap().to_owned();
        let attrs = format!("node='join' sessionid='{sid}' action='next'");

        let other = c
            .handle_iq(&cmd_iq("mallory@example.org/x", &attrs, SUBMIT_LIBERA), t0)
            .unwrap();
        assert_eq!(
            error_of(&other),
            ("bad-request".into(), Some("bad-sessionid".into()))
        );
        let other_node = c
            .handle_iq(
                &cmd_iq(ALICE, &format!("node='ping' sessionid='{sid}'"), ""),
                t0,
            )
            .unwrap();
        assert_eq!(error_of(&other_node).1.as_deref(), Some("bad-sessionid"));
        let unknown = c
            .handle_iq(
                &cmd_iq(ALICE, "node='join' sessionid='nope' action='next'", ""),
                t0,
            )
            .unwrap();
        assert_eq!(
            error_of(&unknown),
            ("bad-request".into(), Some("bad-sessionid".into()))
        );

        let late = t0 + SESSION_TTL + Duration::from_secs(1);
        let r = c
            .handle_iq(&cmd_iq(ALICE, &attrs, SUBMIT_LIBERA), late)
            .unwrap();
        assert_eq!(
            error_of(&r),
            ("not-allowed".into(), Some("session-expired".into()))
        );
        assert_eq!(c.session_count(), 0);
    }

    #[test]
    fn malformed_requests_get_the_xep_0050_conditions() {
        let mut c = registry();
        let now = Instant::now();
        let r = c.handle_iq(&cmd_iq(ALICE, "node='nope'", ""), now).unwrap();
        assert_eq!(error_of(&r), ("item-not-found".into(), None));
        let r = c
            .handle_iq(&cmd_iq(ALICE, "node='join' action='jump'", ""), now)
            .unwrap();
        assert_eq!(
            error_of(&r),
            ("bad-request".into(), Some("malformed-action".into()))
        );
        let r = c
            .handle_iq(&cmd_iq(ALICE, "node='join' action='next'", ""), now)
            .unwrap();
        assert_eq!(
            error_of(&r),
            ("bad-request".into(), Some("bad-action".into()))
        );
        let r = c
            .handle_iq(
                &cmd_iq(
                    ALICE,
                    "node='join'",
                    "<x xmlns='jabber:x:data' type='nonsense'/>",
                ),
                now,
            )
            .unwrap();
        assert_eq!(
            error_of(&r),
            ("bad-request".into(), Some("bad-payload".into()))
        );
        let r = c
            .handle_iq(&cmd_iq(ALICE, "node='admin'", ""), now)
            .unwrap();
        assert_eq!(error_of(&r), ("forbidden".into(), None));
        let r = c
            .handle_iq(&cmd_iq("root@example.org/console", "node='admin'", ""), now)
            .unwrap();
        assert_eq!(command(&r).attr("status"), Some("completed"));

        // Results and errors are never answered.
        let mut res = cmd_iq(ALICE, "node='join'", "");
        res.set_attr("type", "result");
        assert!(c.handle_iq(&res, now).is_none());
        res.set_attr("type", "error");
        assert!(c.handle_iq(&res, now).is_none());
    }

    #[test]
    fn one_requester_cannot_hoard_sessions() {
        let mut c = registry();
        let now = Instant::now();
        for i in 0..MAX_SESSIONS_PER_REQUESTER {
            let r = c
                .handle_iq(
                    &cmd_iq(&format!("alice@example.org/{i}"), "node='join'", ""),
                    now,
                )
                .unwrap();
            command(&r);
        }
        let r = c.handle_iq(&cmd_iq(ALICE, "node='join'", ""), now).unwrap();
        assert_eq!(error_of(&r).0, "not-allowed");
        let r = c
            .handle_iq(&cmd_iq("bob@example.org/x", "node='join'", ""), now)
            .unwrap();
        command(&r);
    }

    #[test]
    fn disco_lists_visible_commands_and_describes_nodes() {
        let mut c = registry();
        let now = Instant::now();
        let items = c
            .handle_iq(
                &xml(&format!(
                    "<iq xmlns='jabber:client' type='get' id='d1' from='{ALICE}' to='{SERVICE}'>\
                     <query xmlns='http://jabber.org/protocol/disco#items' \
                     node='http://jabber.org/protocol/commands'/></iq>"
                )),
                now,
            )
            .unwrap();
        assert_eq!(
            items
                .get_child("query", ns::DISCO_ITEMS)
                .unwrap()
                .to_xml_string(),
            "<query xmlns=\"http://jabber.org/protocol/disco#items\" \
             node=\"http://jabber.org/protocol/commands\">\
             <item jid=\"irc.example.org\" node=\"join\" name=\"Join a network\"/>\
             <item jid=\"irc.example.org\" node=\"ping\" name=\"Ping\"/></query>"
        );
        let root = Jid::parse("root@example.org").unwrap();
        assert_eq!(c.disco_items(&root).elements().count(), 3);

        let info = |c: &mut Commands, node: &str| {
            c.handle_iq(
                &xml(&format!(
                    "<iq xmlns='jabber:client' type='get' id='d2' from='{ALICE}' to='{SERVICE}'>\
                     <query xmlns='http://jabber.org/protocol/disco#info' node='{node}'/></iq>"
                )),
                now,
            )
        };
        let r = info(&mut c, "ping").unwrap();
        assert_eq!(
            r.get_child("query", ns::DISCO_INFO)
                .unwrap()
                .to_xml_string(),
            "<query xmlns=\"http://jabber.org/protocol/disco#info\" node=\"ping\">\
             <identity category=\"automation\" type=\"command-node\" name=\"Ping\"/>\
             <feature var=\"http://jabber.org/protocol/commands\"/>\
             <feature var=\"jabber:x:data\"/></query>"
        );
        let r = info(&mut c, "admin").unwrap();
        assert_eq!(error_of(&r).0, "forbidden");
        // Nodes that are not commands are left to the service.
        assert!(info(&mut c, "something-else").is_none());
        assert!(
            !c.is_command_iq(&xml("<iq xmlns='jabber:client' type='get' id='d3'>\
             <query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
        );
    }
}
