//! The XEP-0100 half of a transport: in-band registration (XEP-0077),
//! `jabber:iq:gateway` address translation, the presence subscription
//! between the user and the service host, and sign-on tracking.
//!
//! A transport describes itself with a [`GatewaySpec`] (its host, its
//! legacy network, the registration fields) and passes every stanza it
//! receives to [`Gateway::handle`] first. The gateway answers what is
//! addressed to the service host itself and concerns registration,
//! `jabber:iq:gateway` or presence, and returns [`Handled::Done`] with the
//! [`GatewayEvent`]s the transport acts on (log in to the legacy network on
//! [`GatewayEvent::SignOn`], out on [`GatewayEvent::SignOff`], …). Anything
//! else — messages, stanzas to legacy contacts (`nick@irc.example.org`),
//! disco, commands, IQ results — is [`Handled::NotMine`], and the transport
//! deals with it.
//!
//! Registration (XEP-0077, as XEP-0100 §4.1–4.3 uses it):
//!
//! - a `get` returns the instructions, the data form (always), and the
//!   matching XEP-0077 fields (`<username/>`, `<password/>`, …) for clients
//!   without data forms. Those legacy fields are left out altogether when
//!   the form has a required field with no XEP-0077 equivalent, since a
//!   client that only knew them could not complete it (XEP-0077, Precedence Order). A
//!   registered user also gets `<registered/>` and the current values,
//!   except secrets: `text-private` fields are never echoed, and may be
//!   left empty on an edit to keep the stored value;
//! - a `set` with the form (or, failing that, legacy fields) is validated
//!   against the form ([`crate::forms`]), stored encrypted
//!   ([`crate::credentials`]), answered, and followed — on a first
//!   registration — by a `subscribe` from the service host to the user's
//!   bare JID (XEP-0100 §4.1.1, step 9);
//! - `<remove/>` deletes the registration, answers, then sends
//!   `unsubscribe`, `unsubscribed` and `unavailable` (XEP-0100 §4.3.1),
//!   which takes the service host off the user's roster.
//!
//! Anyone may register: the user's bare JID is the key, whether or not it is
//! an account of this server.
//!
//! The registration half stands alone too, for a transport that takes
//! registrations at other JIDs than its host (the IRC transport, one per
//! IRC server): [`registration_query`] answers a `get`,
//! [`registration_submission`] and [`form_registration`] turn a `set` or a
//! submitted form into the [`Registration`] to store, as [`Gateway`] does.
//!
//! Presence to the service host (XEP-0100 §4.4–4.5, RFC 6121): the first
//! available resource of a registered user signs the user on, the last one
//! going unavailable (or an error presence from the user) signs it off;
//! `subscribe` from a registered user is approved (and returned, if the
//! service has not asked yet), from anyone else refused with
//! `unsubscribed`; `probe` gets the service's presence for that user:
//! available while signed on. `unsubscribe` and `unsubscribed` are
//! acknowledged when they change something we know of, and do not end the
//! registration — only `<remove/>` does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_spool::store::ServiceStore;
use switchboard_xml::{ns, Element};

use crate::credentials::{CredentialError, CredentialStore, Registration, SecretKey};
use crate::forms::{Field, FieldKind, Form, FormKind};
use crate::stanza::{error_reply, iq_result, stanza_type, ErrorType, Kind, StanzaError};
use crate::{Identity, Outbox};

/// The field names XEP-0077 defines for `jabber:iq:register` (its schema),
/// without the obsolete transaction `<key/>`.
pub const REGISTER_FIELDS: &[&str] = &[
    "username", "nick", "password", "name", "first", "last", "email", "address", "city", "state",
    "zip", "phone", "url", "date", "misc", "text",
];

/// The collection of the service's store holding the sealed
/// registrations (`spool/<service>/registrations/` in the file spool).
pub const REGISTRATIONS: &str = "registrations";

/// Maps an address on the legacy network to the local part of its JID
/// (before XEP-0106 escaping, which the gateway applies); `None` when it is
/// not a valid address there.
pub type Translate = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What a transport tells the gateway about itself.
pub struct GatewaySpec {
    /// The service's hostname (`irc.example.org`).
    pub jid: String,
    /// The disco identity type: `irc`, `aim`, `smtp`, … (the category is
    /// always `gateway`).
    pub kind: String,
    /// The human name ("IRC gateway"); also the registration form's title.
    pub name: String,
    /// What to tell a user who asks how to register.
    pub instructions: String,
    /// The registration form's fields. `text-private` ones are secrets.
    /// Vars that are XEP-0077 names ([`REGISTER_FIELDS`]) are also offered
    /// as legacy fields.
    pub fields: Vec<Field>,
    /// The `jabber:iq:gateway` `<desc/>`: how to enter a contact's address.
    pub prompt_desc: String,
    /// The `jabber:iq:gateway` `<prompt/>`: what the address is called.
    pub prompt_label: String,
    pub translate: Translate,
}

impl fmt::Debug for GatewaySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewaySpec")
            .field("jid", &self.jid)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field(
                "fields",
                &self.fields.iter().map(|f| &f.var).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl GatewaySpec {
    /// The disco identity: category `gateway`.
    pub fn identity(&self) -> Identity {
        Identity {
            category: "gateway".into(),
            kind: self.kind.clone(),
            name: self.name.clone(),
        }
    }

    /// The registration form, filled in with `current` (except secrets)
    /// when the user is registered. For a registered user, secrets are not
    /// required: left empty, they keep their stored value.
    pub fn registration_form(&self, current: Option<&Registration>) -> Form {
        let mut form = Form::new(FormKind::Form)
            .with_title(self.name.clone())
            .with_field(Field::form_type(ns::REGISTER));
        if !self.instructions.is_empty() {
            form.instructions.push(self.instructions.clone());
        }
        for spec in &self.fields {
            let mut f = spec.clone();
            if let Some(current) = current {
                if f.kind == FieldKind::TextPrivate {
                    f.values.clear();
                    f.required = false;
                    let keep = "Leave empty to keep the current one.";
                    f.desc = Some(match f.desc.take() {
                        Some(d) => format!("{d} {keep}"),
                        None => keep.to_owned(),
                    });
                } else if f.kind != FieldKind::Fixed && f.kind != FieldKind::Hidden {
                    f.values = current.get_all(&f.var).map(str::to_owned).collect();
                }
            }
            form.fields.push(f);
        }
        form
    }

    /// Whether the legacy XEP-0077 fields can stand in for the form: every
    /// required field has an XEP-0077 name.
    fn legacy_fields_suffice(&self) -> bool {
        self.fields
            .iter()
            .filter(|f| f.required)
            .all(|f| REGISTER_FIELDS.contains(&f.var.as_str()))
    }

    fn legacy_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| {
            REGISTER_FIELDS.contains(&f.var.as_str())
                && !matches!(f.kind, FieldKind::Fixed | FieldKind::Hidden)
        })
    }
}

/// The service's disco#info `<query/>`: the gateway identity, the features
/// every gateway built on this toolkit has (disco#info, disco#items,
/// `jabber:iq:register`, `jabber:iq:gateway`, ad-hoc commands), and the
/// transport's own `extra_features`.
pub fn disco_info(spec: &GatewaySpec, extra_features: &[&str]) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "gateway")
            .with_attr("type", spec.kind.clone())
            .with_attr("name", spec.name.clone()),
    );
    let mut seen = HashSet::new();
    for var in [
        ns::DISCO_INFO,
        ns::DISCO_ITEMS,
        ns::REGISTER,
        ns::GATEWAY,
        ns::COMMANDS,
    ]
    .iter()
    .chain(extra_features)
    {
        if seen.insert(*var) {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *var));
        }
    }
    q
}

/// The characters XEP-0106 escapes, with their escapes. The backslash
/// comes first in meaning, not in order: every backslash is escaped, which
/// keeps escaping injective (XEP-0106, examples 9–12).
const ESCAPES: &[(char, &str)] = &[
    (' ', "\\20"),
    ('"', "\\22"),
    ('&', "\\26"),
    ('\'', "\\27"),
    ('/', "\\2f"),
    (':', "\\3a"),
    ('<', "\\3c"),
    ('>', "\\3e"),
    ('@', "\\40"),
    ('\\', "\\5c"),
];

/// XEP-0106 escaping of a legacy address into a JID local part. `None` for
/// an empty address, or one starting or ending with a space (XEP-0106 does
/// not allow `\20` there).
pub fn escape_localpart(address: &str) -> Option<String> {
    if address.is_empty() || address.starts_with(' ') || address.ends_with(' ') {
        return None;
    }
    let mut out = String::with_capacity(address.len());
    for c in address.chars() {
        match ESCAPES.iter().find(|(from, _)| *from == c) {
            Some((_, esc)) => out.push_str(esc),
            None => out.push(c),
        }
    }
    Some(out)
}

/// Undoes XEP-0106 escaping: only the ten defined sequences (lower-case
/// hex) are replaced, anything else is kept as it is.
pub fn unescape_localpart(local: &str) -> String {
    let mut out = String::with_capacity(local.len());
    let mut rest = local;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match ESCAPES.iter().find(|(_, esc)| tail.starts_with(esc)) {
            Some((c, esc)) => {
                out.push(*c);
                rest = &tail[esc.len()..];
            }
            None => {
                out.push('\\');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `<query xmlns='jabber:iq:register'/>` answering a registration
/// `get`: the instructions, `<registered/>` and the current values (never
/// secrets) when `current` is the user's registration, the legacy XEP-0077
/// fields when they suffice, and the data form. Public so that a transport
/// that takes registrations at other JIDs than its host (per legacy server,
/// say) answers exactly as [`Gateway`] does.
pub fn registration_query(spec: &GatewaySpec, current: Option<&Registration>) -> Element {
    let mut q = Element::new("query", ns::REGISTER);
    if !spec.instructions.is_empty() {
        q.append_child(
            Element::new("instructions", ns::REGISTER).with_text(spec.instructions.clone()),
        );
    }
    if current.is_some() {
        q.append_child(Element::new("registered", ns::REGISTER));
    }
    if spec.legacy_fields_suffice() {
        for f in spec.legacy_fields() {
            let mut e = Element::new(f.var.clone(), ns::REGISTER);
            if let (Some(reg), false) = (current, f.kind == FieldKind::TextPrivate) {
                if let Some(v) = reg.get(&f.var) {
                    e.append_text(v);
                }
            }
            q.append_child(e);
        }
    }
    q.append_child(spec.registration_form(current).to_element());
    q
}

/// The registration a `set` submits (`query` is its `jabber:iq:register`
/// element, without `<remove/>`): the data form if there is one, else the
/// legacy fields (XEP-0077, Precedence Order), validated against the form,
/// with the stored secrets the user left empty put back.
pub fn registration_submission(
    spec: &GatewaySpec,
    query: &Element,
    current: Option<&Registration>,
) -> Result<Registration, StanzaError> {
    let submitted = match query.get_child("x", ns::DATA_FORMS) {
        Some(x) => Form::parse(x).map_err(StanzaError::from)?,
        None => {
            let form = spec.registration_form(current);
            let legacy: Vec<(&str, String)> = query
                .elements()
                .filter(|e| e.ns == ns::REGISTER)
                .filter(|e| spec.legacy_fields().any(|f| f.var == e.name))
                .map(|e| (e.name.as_str(), e.text()))
                .collect();
            if legacy.is_empty() {
                return Err(StanzaError::bad_request()
                    .with_text("the request holds neither a data form nor registration fields"));
            }
            form.submission(legacy.iter().map(|(k, v)| (*k, v.as_str())))
        }
    };
    if submitted.kind == FormKind::Cancel {
        return Err(StanzaError::bad_request()
            .with_text("the registration form was cancelled; nothing was changed"));
    }
    form_registration(spec, &submitted, current)
}

/// A submitted registration form (from `jabber:iq:register` or an ad-hoc
/// command showing [`GatewaySpec::registration_form`]) validated against
/// the form, ordered as the spec's fields are, with the stored secrets the
/// user left empty put back.
pub fn form_registration(
    spec: &GatewaySpec,
    submitted: &Form,
    current: Option<&Registration>,
) -> Result<Registration, StanzaError> {
    let pairs = spec
        .registration_form(current)
        .validate_submission(submitted)?;
    let mut out = Vec::new();
    for f in &spec.fields {
        let mut given: Vec<(String, String)> =
            pairs.iter().filter(|(k, _)| *k == f.var).cloned().collect();
        if given.is_empty() && f.kind == FieldKind::TextPrivate {
            if let Some(cur) = current {
                given = cur
                    .get_all(&f.var)
                    .map(|v| (f.var.clone(), v.to_owned()))
                    .collect();
            }
        }
        out.extend(given);
    }
    Ok(Registration::from_pairs(out))
}

/// What [`Gateway::handle`] did with a stanza.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Not the gateway's business: the transport handles it.
    NotMine,
    /// Answered (or deliberately dropped); the transport acts on the events.
    Done(Vec<GatewayEvent>),
}

/// What changed, for the transport to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// A user registered or changed their registration.
    Registered {
        user: Jid,
        registration: Registration,
    },
    /// A user removed their registration (after [`GatewayEvent::SignOff`]
    /// if they were signed on).
    Unregistered { user: Jid },
    /// The first available resource of a registered user sent presence to
    /// the service host: log in to the legacy network.
    SignOn {
        user: Jid,
        registration: Registration,
    },
    /// The user's last resource went unavailable, the user's server
    /// returned an error presence, or the user unregistered: log out.
    SignOff { user: Jid },
    /// Another resource of a signed-on user became available (or sent new
    /// presence), or went unavailable while others remain.
    Presence { user_full: Jid, available: bool },
}

/// Why a gateway could not start.
#[derive(Debug)]
pub enum GatewayError {
    /// The spec's `jid` is not a bare domain.
    BadJid(String),
    Store(CredentialError),
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::BadJid(j) => write!(f, "'{j}' is not a service hostname"),
            GatewayError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for GatewayError {}

impl From<CredentialError> for GatewayError {
    fn from(e: CredentialError) -> Self {
        GatewayError::Store(e)
    }
}

/// The registration and presence state of one transport.
pub struct Gateway {
    spec: GatewaySpec,
    host: Jid,
    store: CredentialStore,
    registered: BTreeSet<Jid>,
    /// The available full JIDs of each signed-on user.
    online: BTreeMap<Jid, BTreeSet<Jid>>,
    /// Users the service has asked for their presence (`subscribe` sent,
    /// or `subscribed` received) since it started.
    asked: HashSet<Jid>,
    /// Users the service has sent `subscribed` to since it started.
    approved: HashSet<Jid>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("host", &self.host)
            .field("registered", &self.registered.len())
            .field("online", &self.online.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Opens the registrations in the service's store (collection
    /// [`REGISTRATIONS`]) and reads who is registered.
    pub async fn open(
        spec: GatewaySpec,
        store: ServiceStore,
        key: Arc<SecretKey>,
    ) -> Result<Gateway, GatewayError> {
        let host = Jid::parse(&spec.jid)
            .ok()
            .filter(|j| j.node().is_none() && j.is_bare())
            .ok_or_else(|| GatewayError::BadJid(spec.jid.clone()))?;
        let store = CredentialStore::new(store, REGISTRATIONS, key, &host.to_string());
        let registered = store.list().await?;
        Ok(Gateway {
            spec,
            host,
            store,
            registered: registered.into_iter().collect(),
            online: BTreeMap::new(),
            asked: HashSet::new(),
            approved: HashSet::new(),
        })
    }

    pub fn spec(&self) -> &GatewaySpec {
        &self.spec
    }

    /// The store, for transports that need a registration outside the
    /// events.
    pub fn store(&self) -> &CredentialStore {
        &self.store
    }

    /// [`disco_info`] for this gateway.
    pub fn disco_info(&self, extra_features: &[&str]) -> Element {
        disco_info(&self.spec, extra_features)
    }

    pub fn is_registered(&self, user: &Jid) -> bool {
        self.registered.contains(&user.to_bare())
    }

    pub fn registered(&self) -> impl Iterator<Item = &Jid> {
        self.registered.iter()
    }

    pub fn is_signed_on(&self, user: &Jid) -> bool {
        self.online.contains_key(&user.to_bare())
    }

    /// The signed-on users (bare JIDs).
    pub fn signed_on(&self) -> impl Iterator<Item = &Jid> {
        self.online.keys()
    }

    /// The available full JIDs of a signed-on user.
    pub fn resources(&self, user: &Jid) -> impl Iterator<Item = &Jid> {
        self.online.get(&user.to_bare()).into_iter().flatten()
    }

    /// A probe to every registered user, to send when the service
    /// (re)starts: the users' servers answer with the presence of those
    /// online, which signs them on again.
    pub fn startup_probes(&self) -> Vec<Element> {
        self.registered
            .iter()
            .map(|u| self.presence(u, Some("probe")))
            .collect()
    }

    /// Unavailable presence to every signed-on user, to send when the
    /// service shuts down (XEP-0100, Business Rules).
    pub fn shutdown_presences(&self) -> Vec<Element> {
        self.online
            .keys()
            .map(|u| self.presence(u, Some("unavailable")))
            .collect()
    }

    /// Marks a user signed off on the transport's initiative (the legacy
    /// login failed for good, say): the unavailable presence to send, or
    /// `None` if the user was not signed on. The user signs on again with
    /// their next available presence.
    pub fn sign_off(&mut self, user: &Jid) -> Option<Element> {
        let user = user.to_bare();
        self.online
            .remove(&user)
            .map(|_| self.presence(&user, Some("unavailable")))
    }

    /// Handles a stanza if it is the gateway's business (see the module
    /// documentation); replies go out through `out`.
    pub async fn handle(&mut self, stanza: &Element, out: &Outbox) -> Handled {
        let Some(kind) = Kind::of(stanza) else {
            return Handled::NotMine;
        };
        let to_host = stanza
            .attr("to")
            .and_then(|t| Jid::parse(t).ok())
            .is_some_and(|to| to.node().is_none() && to.domain() == self.host.domain());
        if !to_host {
            return Handled::NotMine;
        }
        match kind {
            Kind::Iq => self.handle_iq(stanza, out).await,
            Kind::Presence => self.handle_presence(stanza, out).await,
            Kind::Message => Handled::NotMine,
        }
    }

    async fn handle_iq(&mut self, iq: &Element, out: &Outbox) -> Handled {
        let Some(query) = iq.first_element() else {
            return Handled::NotMine;
        };
        let register = query.is("query", ns::REGISTER);
        if !(register || query.is("query", ns::GATEWAY)) {
            return Handled::NotMine;
        }
        let ty = iq.attr("type");
        if !matches!(ty, Some("get") | Some("set")) {
            // Results and errors are answers to the transport's own
            // requests, if anyone's; they are never replied to.
            return Handled::NotMine;
        }
        let Some(from) = sender(iq) else {
            return Handled::Done(Vec::new());
        };
        let result = match (register, ty == Some("set")) {
            (true, false) => self.registration_get(iq, &from).await,
            (true, true) => self.registration_set(iq, query, &from).await,
            (false, false) => Ok(Reply::just(iq_result(iq, Some(self.prompt())))),
            (false, true) => self
                .translate(query)
                .map(|q| Reply::just(iq_result(iq, Some(q)))),
        };
        match result {
            Ok(Reply { stanzas, events }) => {
                for s in stanzas {
                    send(out, s).await;
                }
                Handled::Done(events)
            }
            Err(e) => {
                if let Some(reply) = error_reply(iq, &e) {
                    send(out, reply).await;
                }
                Handled::Done(Vec::new())
            }
        }
    }

    async fn registration_get(&self, iq: &Element, from: &Jid) -> Result<Reply, StanzaError> {
        let user = from.to_bare();
        let current = if self.registered.contains(&user) {
            self.load(&user).await?
        } else {
            None
        };
        Ok(Reply::just(iq_result(
            iq,
            Some(registration_query(&self.spec, current.as_ref())),
        )))
    }

    async fn registration_set(
        &mut self,
        iq: &Element,
        query: &Element,
        from: &Jid,
    ) -> Result<Reply, StanzaError> {
        let user = from.to_bare();
        if query.get_child("remove", ns::REGISTER).is_some() {
            if query.elements().count() > 1 {
                return Err(StanzaError::bad_request()
                    .with_text("<remove/> must be the only element of the request"));
            }
            return self.unregister(iq, user).await;
        }
        let current = if self.registered.contains(&user) {
            self.load(&user).await?
        } else {
            None
        };
        let registration = registration_submission(&self.spec, query, current.as_ref())?;
        self.store_registration(iq, user, registration).await
    }

    /// Stores a registration a transport prepared itself from a `set` —
    /// one that signs on to the legacy network first and keeps what that
    /// gave (a token) instead of what was typed (a password) — and answers
    /// the `set` as [`Gateway::handle`] does: `answer` (the IQ result, or
    /// an ad-hoc command's completion), then on a first registration the
    /// subscription request, and a [`GatewayEvent::Registered`].
    pub async fn complete_registration(
        &mut self,
        iq: &Element,
        registration: Registration,
        answer: Element,
        out: &Outbox,
    ) -> Handled {
        let Some(from) = sender(iq) else {
            return Handled::Done(Vec::new());
        };
        match self
            .store_registration(iq, from.to_bare(), registration)
            .await
        {
            Ok(Reply {
                mut stanzas,
                events,
            }) => {
                stanzas[0] = answer;
                for s in stanzas {
                    send(out, s).await;
                }
                Handled::Done(events)
            }
            Err(e) => {
                if let Some(reply) = error_reply(iq, &e) {
                    send(out, reply).await;
                }
                Handled::Done(Vec::new())
            }
        }
    }

    async fn store_registration(
        &mut self,
        iq: &Element,
        user: Jid,
        registration: Registration,
    ) -> Result<Reply, StanzaError> {
        self.store.save(&user, &registration).await.map_err(|e| {
            tracing::error!(error = %e, "cannot store a registration");
            StanzaError::internal_server_error().with_text("the registration could not be stored")
        })?;
        let new = self.registered.insert(user.clone());
        // The result first, then the subscription request (XEP-0100
        // §4.1.1 steps 6 and 9).
        let mut stanzas = vec![iq_result(iq, None)];
        if new && self.asked.insert(user.clone()) {
            stanzas.push(self.presence(&user, Some("subscribe")));
        }
        Ok(Reply {
            stanzas,
            events: vec![GatewayEvent::Registered { user, registration }],
        })
    }

    async fn unregister(&mut self, iq: &Element, user: Jid) -> Result<Reply, StanzaError> {
        if !self.registered.contains(&user) {
            return Err(StanzaError::new("registration-required", ErrorType::Auth)
                .with_text("you are not registered with this gateway"));
        }
        self.store.remove(&user).await.map_err(|e| {
            tracing::error!(error = %e, "cannot remove a registration");
            StanzaError::internal_server_error().with_text("the registration could not be removed")
        })?;
        self.registered.remove(&user);
        self.asked.remove(&user);
        self.approved.remove(&user);
        let mut events = Vec::new();
        if self.online.remove(&user).is_some() {
            events.push(GatewayEvent::SignOff { user: user.clone() });
        }
        events.push(GatewayEvent::Unregistered { user: user.clone() });
        // XEP-0100 §4.3.1: the result, then the end of both subscriptions
        // (which takes the service off the user's roster), then the
        // service's unavailable presence.
        let mut stanzas = vec![iq_result(iq, None)];
        for ty in ["unsubscribe", "unsubscribed", "unavailable"] {
            stanzas.push(self.presence(&user, Some(ty)));
        }
        Ok(Reply { stanzas, events })
    }

    fn prompt(&self) -> Element {
        Element::new("query", ns::GATEWAY)
            .with_child(Element::new("desc", ns::GATEWAY).with_text(self.spec.prompt_desc.clone()))
            .with_child(
                Element::new("prompt", ns::GATEWAY).with_text(self.spec.prompt_label.clone()),
            )
    }

    /// `jabber:iq:gateway` set: the legacy address in `<prompt/>` to a JID.
    fn translate(&self, query: &Element) -> Result<Element, StanzaError> {
        let address = query
            .child_text("prompt", ns::GATEWAY)
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| StanzaError::bad_request().with_text("<prompt/> holds no address"))?;
        let not_acceptable = || {
            StanzaError::new("not-acceptable", ErrorType::Modify).with_text(format!(
                "'{address}' is not a valid {} address",
                self.spec.prompt_label
            ))
        };
        let local = (self.spec.translate)(&address).ok_or_else(not_acceptable)?;
        let escaped = escape_localpart(&local).ok_or_else(not_acceptable)?;
        let jid = Jid::from_parts(Some(&escaped), self.host.domain(), None)
            .map_err(|_| not_acceptable())?;
        Ok(Element::new("query", ns::GATEWAY)
            .with_child(Element::new("jid", ns::GATEWAY).with_text(jid.to_string())))
    }

    async fn handle_presence(&mut self, p: &Element, out: &Outbox) -> Handled {
        let Some(from) = sender(p) else {
            return Handled::Done(Vec::new());
        };
        let user = from.to_bare();
        let registered = self.registered.contains(&user);
        let mut events = Vec::new();
        match stanza_type(p) {
            "available" if registered => {
                let resources = self.online.entry(user.clone()).or_default();
                let first = resources.is_empty();
                let new = resources.insert(from.clone());
                if first {
                    match self.load(&user).await {
                        Ok(Some(registration)) => {
                            events.push(GatewayEvent::SignOn {
                                user: user.clone(),
                                registration,
                            });
                        }
                        Ok(None) => {
                            // Removed behind our back (by hand, or by
                            // another process): no longer registered.
                            self.online.remove(&user);
                            self.registered.remove(&user);
                            return Handled::Done(events);
                        }
                        Err(e) => {
                            self.online.remove(&user);
                            if let Some(reply) = error_reply(p, &e) {
                                send(out, reply).await;
                            }
                            return Handled::Done(events);
                        }
                    }
                } else {
                    events.push(GatewayEvent::Presence {
                        user_full: from.clone(),
                        available: true,
                    });
                }
                if new {
                    send(out, self.presence(&from, None)).await;
                }
            }
            // Presence from people who are not registered means nothing to
            // the gateway (it may be left over from an old registration).
            "available" => {}
            "unavailable" => {
                if let Some(resources) = self.online.get_mut(&user) {
                    // Unavailable from the bare JID speaks for every
                    // resource.
                    let removed = if from.is_bare() {
                        std::mem::take(resources);
                        true
                    } else {
                        resources.remove(&from)
                    };
                    if resources.is_empty() {
                        self.online.remove(&user);
                        events.push(GatewayEvent::SignOff { user: user.clone() });
                        send(out, self.presence(&user, Some("unavailable"))).await;
                    } else if removed {
                        events.push(GatewayEvent::Presence {
                            user_full: from.clone(),
                            available: false,
                        });
                    }
                }
            }
            // The user's server bounced our presence: the user is not
            // reachable, whatever we thought. Never answered.
            "error" => {
                if self.online.remove(&user).is_some() {
                    events.push(GatewayEvent::SignOff { user });
                }
            }
            "probe" => {
                let reply = if !registered {
                    self.presence(&from, Some("unsubscribed"))
                } else if self.online.contains_key(&user) {
                    self.presence(&from, None)
                } else {
                    self.presence(&from, Some("unavailable"))
                };
                send(out, reply).await;
            }
            "subscribe" if registered => {
                self.approved.insert(user.clone());
                send(out, self.presence(&user, Some("subscribed"))).await;
                if self.asked.insert(user.clone()) {
                    send(out, self.presence(&user, Some("subscribe"))).await;
                }
            }
            "subscribe" => send(out, self.presence(&user, Some("unsubscribed"))).await,
            "subscribed" => {
                if registered {
                    self.asked.insert(user);
                }
            }
            // Acknowledged only when they change what we know, so that two
            // parties that both acknowledge cannot ping-pong forever.
            "unsubscribe" => {
                if self.approved.remove(&user) {
                    send(out, self.presence(&user, Some("unsubscribed"))).await;
                }
            }
            "unsubscribed" => {
                if self.asked.remove(&user) {
                    send(out, self.presence(&user, Some("unsubscribe"))).await;
                }
            }
            other => {
                let err = StanzaError::bad_request()
                    .with_text(format!("'{other}' is not a presence type"));
                if let Some(reply) = error_reply(p, &err) {
                    send(out, reply).await;
                }
            }
        }
        Handled::Done(events)
    }

    /// A user's registration, as a stanza error if it cannot be read (the
    /// details, which name a file, go to the log, not to the user).
    async fn load(&self, user: &Jid) -> Result<Option<Registration>, StanzaError> {
        self.store.load(user).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read a registration");
            StanzaError::internal_server_error()
                .with_text("your registration cannot be read; the administrator has been told")
        })
    }

    /// Presence from the service host.
    fn presence(&self, to: &Jid, ty: Option<&str>) -> Element {
        let mut p = Element::new("presence", ns::CLIENT)
            .with_attr("from", self.host.to_string())
            .with_attr("to", to.to_string());
        if let Some(ty) = ty {
            p.set_attr("type", ty);
        }
        p
    }
}

/// What an IQ handler wants sent, in order, and the events it produced.
struct Reply {
    stanzas: Vec<Element>,
    events: Vec<GatewayEvent>,
}

impl Reply {
    fn just(stanza: Element) -> Reply {
        Reply {
            stanzas: vec![stanza],
            events: Vec::new(),
        }
    }
}

fn sender(stanza: &Element) -> Option<Jid> {
    let from = stanza.attr("from").and_then(|f| Jid::parse(f).ok());
    if from.is_none() {
        tracing::debug!(stanza = %stanza.to_xml_string(), "dropped: no valid sender to answer");
    }
    from
}

async fn send(out: &Outbox, stanza: Element) {
    if out.send(stanza).await.is_err() {
        tracing::debug!("the outbox is closed; the service is stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_spool::store::memory::MemoryStores;
    use switchboard_xml::{parse_document, Limits};
    use tokio::sync::mpsc;

    const HOST: &str = "irc.example.org";
    const ROMEO: &str = "romeo@montague.lit/orchard";

    fn xml(s: &str) -> Element {
        parse_document(s.as_bytes(), Limits::default()).unwrap()
    }

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    /// IRC-like: a nickname and an optional NickServ password, and a
    /// network that defaults to Libera.
    fn spec() -> GatewaySpec {
        GatewaySpec {
            jid: HOST.into(),
            kind: "irc".into(),
            name: "IRC gateway".into(),
            instructions: "Enter your IRC nickname.".into(),
            fields: vec![
                Field::new("username", FieldKind::TextSingle)
                    .with_label("Nickname")
                    .required(),
                Field::new("password", FieldKind::TextPrivate).with_label("NickServ password"),
                Field::new("network", FieldKind::ListSingle)
                    .with_label("Network")
                    .with_option("Libera", "libera")
                    .with_option("OFTC", "oftc")
                    .with_value("libera"),
            ],
            prompt_desc: "Enter the nickname of the person to contact.".into(),
            prompt_label: "Nickname".into(),
            translate: Box::new(|a: &str| (!a.contains('!')).then(|| a.to_owned())),
        }
    }

    struct Fixture {
        store: ServiceStore,
        gw: Gateway,
        out: Outbox,
        rx: mpsc::Receiver<Element>,
        key: Arc<SecretKey>,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let store = ServiceStore::new(MemoryStores::new().service_data, HOST);
            let key = Arc::new(SecretKey::generate());
            let gw = Gateway::open(spec(), store.clone(), key.clone())
                .await
                .unwrap();
            let (out, rx) = Outbox::channel();
            Fixture {
                store,
                gw,
                out,
                rx,
                key,
            }
        }

        async fn send(&mut self, s: &str) -> Handled {
            self.gw.handle(&xml(s), &self.out).await
        }

        /// Everything the gateway sent, in order.
        fn sent(&mut self) -> Vec<Element> {
            let mut v = Vec::new();
            while let Ok(e) = self.rx.try_recv() {
                v.push(e);
            }
            v
        }

        async fn register(&mut self, from: &str, body: &str) -> Handled {
            self.send(&format!(
                "<iq xmlns='jabber:client' type='set' id='reg2' from='{from}' to='{HOST}'>\
                 <query xmlns='jabber:iq:register'>{body}</query></iq>"
            ))
            .await
        }

        async fn presence(&mut self, from: &str, ty: Option<&str>) -> Handled {
            let ty = ty.map(|t| format!(" type='{t}'")).unwrap_or_default();
            self.send(&format!(
                "<presence xmlns='jabber:client' from='{from}' to='{HOST}'{ty}/>"
            ))
            .await
        }
    }

    fn presence_shape(p: &Element) -> (String, Option<String>, String) {
        assert_eq!(p.name, "presence");
        assert_eq!(p.ns, ns::CLIENT);
        assert_eq!(p.attr("from"), Some(HOST));
        (
            p.attr("to").unwrap().to_owned(),
            p.attr("type").map(str::to_owned),
            p.to_xml_string(),
        )
    }

    fn types(sent: &[Element]) -> Vec<String> {
        sent.iter()
            .map(|e| format!("{}:{}", e.name, e.attr("type").unwrap_or("available")))
            .collect()
    }

    fn error_condition(e: &Element) -> (String, Option<String>) {
        assert_eq!(e.attr("type"), Some("error"), "{}", e.to_xml_string());
        let err = e.get_child("error", ns::CLIENT).unwrap();
        (
            err.elements()
                .find(|c| c.ns == ns::STANZAS && c.name != "text")
                .unwrap()
                .name
                .clone(),
            err.child_text("text", ns::STANZAS),
        )
    }

    fn registered(user: &str, pairs: &[(&str, &str)]) -> GatewayEvent {
        GatewayEvent::Registered {
            user: jid(user),
            registration: Registration::from_pairs(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    const GET: &str = "<iq xmlns='jabber:client' type='get' id='reg1' \
        from='romeo@montague.lit/orchard' to='irc.example.org'>\
        <query xmlns='jabber:iq:register'/></iq>";

    #[tokio::test]
    async fn registration_fields_for_a_newcomer() {
        let mut f = Fixture::new().await;
        assert_eq!(f.send(GET).await, Handled::Done(vec![]));
        let sent = f.sent();
        assert_eq!(sent.len(), 1);
        let reply = &sent[0];
        assert_eq!(reply.attr("type"), Some("result"));
        assert_eq!(reply.attr("id"), Some("reg1"));
        assert_eq!(reply.attr("to"), Some(ROMEO));
        assert_eq!(reply.attr("from"), Some(HOST));
        let q = reply.get_child("query", ns::REGISTER).unwrap();
        assert_eq!(
            q.to_xml_string(),
            "<query xmlns=\"jabber:iq:register\">\
             <instructions>Enter your IRC nickname.</instructions>\
             <username/><password/>\
             <x xmlns=\"jabber:x:data\" type=\"form\"><title>IRC gateway</title>\
             <instructions>Enter your IRC nickname.</instructions>\
             <field var=\"FORM_TYPE\" type=\"hidden\"><value>jabber:iq:register</value></field>\
             <field var=\"username\" type=\"text-single\" label=\"Nickname\"><required/></field>\
             <field var=\"password\" type=\"text-private\" label=\"NickServ password\"/>\
             <field var=\"network\" type=\"list-single\" label=\"Network\"><value>libera</value>\
             <option label=\"Libera\"><value>libera</value></option>\
             <option label=\"OFTC\"><value>oftc</value></option></field></x></query>"
        );
    }

    #[tokio::test]
    async fn legacy_fields_are_left_out_when_they_cannot_complete_the_form() {
        let store = ServiceStore::new(MemoryStores::new().service_data, HOST);
        let mut s = spec();
        s.fields
            .push(Field::new("server", FieldKind::TextSingle).required());
        let mut gw = Gateway::open(s, store, Arc::new(SecretKey::generate()))
            .await
            .unwrap();
        let (out, mut rx) = Outbox::channel();
        gw.handle(&xml(GET), &out).await;
        let q = rx.try_recv().unwrap();
        let q = q.get_child("query", ns::REGISTER).unwrap();
        assert!(q.get_child("username", ns::REGISTER).is_none());
        assert!(q.get_child("instructions", ns::REGISTER).is_some());
        assert!(q.get_child("x", ns::DATA_FORMS).is_some());
    }

    #[tokio::test]
    async fn legacy_registration_then_subscription_request() {
        let mut f = Fixture::new().await;
        let h = f
            .register(
                ROMEO,
                "<username>RomeoMyRomeo</username><password>ILoveJuliet</password>",
            )
            .await;
        assert_eq!(
            h,
            Handled::Done(vec![registered(
                "romeo@montague.lit",
                &[
                    ("username", "RomeoMyRomeo"),
                    ("password", "ILoveJuliet"),
                    ("network", "libera")
                ]
            )])
        );
        let sent = f.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[0].to_xml_string(),
            "<iq xmlns=\"jabber:client\" type=\"result\" id=\"reg2\" \
             from=\"irc.example.org\" to=\"romeo@montague.lit/orchard\"/>"
        );
        assert_eq!(
            presence_shape(&sent[1]).2,
            "<presence xmlns=\"jabber:client\" from=\"irc.example.org\" \
             to=\"romeo@montague.lit\" type=\"subscribe\"/>"
        );
        assert!(f.gw.is_registered(&jid("romeo@montague.lit")));
        let stored =
            f.gw.store()
                .load(&jid("romeo@montague.lit"))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(stored.get("password"), Some("ILoveJuliet"));
    }

    #[tokio::test]
    async fn the_registered_user_sees_values_but_never_secrets() {
        let mut f = Fixture::new().await;
        f.register(
            ROMEO,
            "<username>romeo</username><password>ILoveJuliet</password>",
        )
        .await;
        f.sent();
        f.send(GET).await;
        let reply = f.sent().remove(0);
        let text = reply.to_xml_string();
        assert!(!text.contains("ILoveJuliet"), "{text}");
        let q = reply.get_child("query", ns::REGISTER).unwrap();
        assert!(q.get_child("registered", ns::REGISTER).is_some());
        assert_eq!(
            q.child_text("username", ns::REGISTER).as_deref(),
            Some("romeo")
        );
        assert_eq!(q.child_text("password", ns::REGISTER).as_deref(), Some(""));
        let form = Form::parse(q.get_child("x", ns::DATA_FORMS).unwrap()).unwrap();
        assert_eq!(form.value("username"), Some("romeo"));
        let pw = form.field("password").unwrap();
        assert!(pw.values.is_empty() && !pw.required);
        assert_eq!(
            pw.desc.as_deref(),
            Some("Leave empty to keep the current one.")
        );
    }

    #[tokio::test]
    async fn an_edit_keeps_the_secret_left_empty_and_does_not_resubscribe() {
        let mut f = Fixture::new().await;
        f.register(
            ROMEO,
            "<username>romeo</username><password>ILoveJuliet</password>",
        )
        .await;
        f.sent();
        let h = f
            .register(
                ROMEO,
                "<x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>jabber:iq:register</value></field>\
                 <field var='username'><value>romeo2</value></field>\
                 <field var='password'/>\
                 <field var='network'><value>oftc</value></field></x>",
            )
            .await;
        assert_eq!(
            h,
            Handled::Done(vec![registered(
                "romeo@montague.lit",
                &[
                    ("username", "romeo2"),
                    ("password", "ILoveJuliet"),
                    ("network", "oftc")
                ]
            )])
        );
        assert_eq!(types(&f.sent()), ["iq:result"], "no second subscribe");
    }

    #[tokio::test]
    async fn invalid_registrations_are_refused_and_not_stored() {
        let mut f = Fixture::new().await;
        for (body, condition, text) in [
            (
                "<password>x</password>",
                "not-acceptable",
                Some("'Nickname' is required"),
            ),
            (
                "<username/><password>x</password>",
                "not-acceptable",
                Some("'Nickname' is required"),
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'>\
                 <field var='username'><value>r</value></field>\
                 <field var='network'><value>efnet</value></field></x>",
                "not-acceptable",
                Some("'efnet' is not one of the choices for 'Network'"),
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field/></x>",
                "bad-request",
                None,
            ),
            ("", "bad-request", None),
            (
                "<x xmlns='jabber:x:data' type='cancel'/>",
                "bad-request",
                None,
            ),
        ] {
            assert_eq!(f.register(ROMEO, body).await, Handled::Done(vec![]));
            let sent = f.sent();
            assert_eq!(sent.len(), 1, "{body}");
            let (cond, t) = error_condition(&sent[0]);
            assert_eq!(cond, condition, "{body}");
            if let Some(text) = text {
                assert_eq!(t.as_deref(), Some(text));
            }
            assert!(!sent[0].to_xml_string().contains("<password>"), "no echo");
        }
        assert!(!f.gw.is_registered(&jid("romeo@montague.lit")));
        assert!(f.gw.store().list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn anyone_may_register_from_any_server() {
        let mut f = Fixture::new().await;
        let h = f
            .register(
                "juliet@elsewhere.example/phone",
                "<username>jules</username>",
            )
            .await;
        assert!(matches!(h, Handled::Done(ref e) if e.len() == 1));
        assert!(f.gw.is_registered(&jid("juliet@elsewhere.example")));
    }

    #[tokio::test]
    async fn removal_ends_subscriptions_and_signs_off() {
        let mut f = Fixture::new().await;
        f.register(ROMEO, "<username>romeo</username>").await;
        f.presence(ROMEO, None).await;
        f.sent();
        let h = f.register(ROMEO, "<remove/>").await;
        assert_eq!(
            h,
            Handled::Done(vec![
                GatewayEvent::SignOff {
                    user: jid("romeo@montague.lit")
                },
                GatewayEvent::Unregistered {
                    user: jid("romeo@montague.lit")
                },
            ])
        );
        let sent = f.sent();
        assert_eq!(
            types(&sent),
            [
                "iq:result",
                "presence:unsubscribe",
                "presence:unsubscribed",
                "presence:unavailable"
            ]
        );
        for p in &sent[1..] {
            assert_eq!(presence_shape(p).0, "romeo@montague.lit");
        }
        assert!(!f.gw.is_registered(&jid("romeo@montague.lit")));
        assert!(!f.gw.is_signed_on(&jid("romeo@montague.lit")));
        assert_eq!(
            f.gw.store().load(&jid("romeo@montague.lit")).await.unwrap(),
            None
        );

        f.register(ROMEO, "<remove/>").await;
        let sent = f.sent();
        assert_eq!(error_condition(&sent[0]).0, "registration-required");
        assert_eq!(
            sent[0].get_child("error", ns::CLIENT).unwrap().attr("type"),
            Some("auth")
        );
        f.register(ROMEO, "<username>r</username>").await;
        f.sent();
        f.register(ROMEO, "<remove/><username>r</username>").await;
        assert_eq!(error_condition(&f.sent()[0]).0, "bad-request");
        assert!(f.gw.is_registered(&jid("romeo@montague.lit")));
    }

    #[tokio::test]
    async fn sign_on_and_off_follow_the_users_resources() {
        let mut f = Fixture::new().await;
        let romeo = jid("romeo@montague.lit");
        f.register(ROMEO, "<username>romeo</username><password>pw</password>")
            .await;
        f.sent();

        let h = f.presence(ROMEO, None).await;
        let Handled::Done(events) = h else { panic!() };
        assert_eq!(
            events,
            vec![GatewayEvent::SignOn {
                user: romeo.clone(),
                registration: Registration::from_pairs(vec![
                    ("username".into(), "romeo".into()),
                    ("password".into(), "pw".into()),
                    ("network".into(), "libera".into()),
                ]),
            }]
        );
        let sent = f.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(presence_shape(&sent[0]).0, ROMEO);
        assert_eq!(presence_shape(&sent[0]).1, None, "available");

        let phone = "romeo@montague.lit/phone";
        assert_eq!(
            f.presence(phone, None).await,
            Handled::Done(vec![GatewayEvent::Presence {
                user_full: jid(phone),
                available: true
            }])
        );
        assert_eq!(presence_shape(&f.sent()[0]).0, phone);
        // A status change of a known resource: an event, no new presence.
        assert_eq!(
            f.presence(phone, None).await,
            Handled::Done(vec![GatewayEvent::Presence {
                user_full: jid(phone),
                available: true
            }])
        );
        assert!(f.sent().is_empty());
        assert_eq!(f.gw.resources(&romeo).count(), 2);

        assert_eq!(
            f.presence(phone, Some("unavailable")).await,
            Handled::Done(vec![GatewayEvent::Presence {
                user_full: jid(phone),
                available: false
            }])
        );
        assert!(f.sent().is_empty());
        assert_eq!(
            f.presence(ROMEO, Some("unavailable")).await,
            Handled::Done(vec![GatewayEvent::SignOff {
                user: romeo.clone()
            }])
        );
        let sent = f.sent();
        assert_eq!(
            presence_shape(&sent[0]),
            (
                "romeo@montague.lit".to_owned(),
                Some("unavailable".to_owned()),
                sent[0].to_xml_string()
            )
        );
        assert!(!f.gw.is_signed_on(&romeo));
        // Unavailable again: nothing more to say.
        assert_eq!(
            f.presence(ROMEO, Some("unavailable")).await,
            Handled::Done(vec![])
        );
    }

    #[tokio::test]
    async fn an_error_presence_signs_the_user_off_without_a_reply() {
        let mut f = Fixture::new().await;
        f.register(ROMEO, "<username>romeo</username>").await;
        f.presence(ROMEO, None).await;
        f.sent();
        assert_eq!(
            f.presence("romeo@montague.lit", Some("error")).await,
            Handled::Done(vec![GatewayEvent::SignOff {
                user: jid("romeo@montague.lit")
            }])
        );
        assert!(f.sent().is_empty());
    }

    #[tokio::test]
    async fn the_transport_can_sign_a_user_off() {
        let mut f = Fixture::new().await;
        let romeo = jid("romeo@montague.lit");
        f.register(ROMEO, "<username>romeo</username>").await;
        f.presence(ROMEO, None).await;
        f.sent();
        assert_eq!(f.gw.shutdown_presences().len(), 1);
        let p = f.gw.sign_off(&jid(ROMEO)).unwrap();
        assert_eq!(
            presence_shape(&p).1.as_deref(),
            Some("unavailable"),
            "to the bare JID"
        );
        assert_eq!(presence_shape(&p).0, "romeo@montague.lit");
        assert!(f.gw.sign_off(&romeo).is_none());
        assert!(f.gw.shutdown_presences().is_empty());
        // The next available presence signs the user on again.
        let h = f.presence(ROMEO, None).await;
        assert!(matches!(h, Handled::Done(ref e) if matches!(e[0], GatewayEvent::SignOn { .. })));
    }

    #[tokio::test]
    async fn probes_get_the_services_presence_for_that_user() {
        let mut f = Fixture::new().await;
        f.presence("romeo@montague.lit", Some("probe")).await;
        assert_eq!(
            presence_shape(&f.sent()[0]).1.as_deref(),
            Some("unsubscribed")
        );
        f.register(ROMEO, "<username>romeo</username>").await;
        f.sent();
        f.presence("romeo@montague.lit", Some("probe")).await;
        assert_eq!(
            presence_shape(&f.sent()[0]).1.as_deref(),
            Some("unavailable")
        );
        f.presence(ROMEO, None).await;
        f.sent();
        f.presence("romeo@montague.lit", Some("probe")).await;
        let sent = f.sent();
        assert_eq!(
            presence_shape(&sent[0]),
            (
                "romeo@montague.lit".to_owned(),
                None,
                sent[0].to_xml_string()
            )
        );
    }

    #[tokio::test]
    async fn subscriptions_follow_registration() {
        let mut f = Fixture::new().await;
        // Not registered: refused, and available presence is ignored.
        f.presence("tybalt@capulet.lit", Some("subscribe")).await;
        let sent = f.sent();
        assert_eq!(presence_shape(&sent[0]).0, "tybalt@capulet.lit");
        assert_eq!(presence_shape(&sent[0]).1.as_deref(), Some("unsubscribed"));
        assert_eq!(
            f.presence("tybalt@capulet.lit/x", None).await,
            Handled::Done(vec![])
        );
        assert!(f.sent().is_empty());

        // Registered (and already asked by the registration): approved only.
        f.register(ROMEO, "<username>romeo</username>").await;
        f.sent();
        f.presence("romeo@montague.lit", Some("subscribed")).await;
        assert!(f.sent().is_empty());
        f.presence("romeo@montague.lit", Some("subscribe")).await;
        assert_eq!(types(&f.sent()), ["presence:subscribed"]);

        // Acknowledged once, and still registered.
        f.presence("romeo@montague.lit", Some("unsubscribe")).await;
        assert_eq!(types(&f.sent()), ["presence:unsubscribed"]);
        f.presence("romeo@montague.lit", Some("unsubscribe")).await;
        assert!(f.sent().is_empty(), "no ping-pong");
        f.presence("romeo@montague.lit", Some("unsubscribed")).await;
        assert_eq!(types(&f.sent()), ["presence:unsubscribe"]);
        f.presence("romeo@montague.lit", Some("unsubscribed")).await;
        assert!(f.sent().is_empty());
        assert!(f.gw.is_registered(&jid("romeo@montague.lit")));

        // Subscribing again after that: the service asks back too.
        f.presence("romeo@montague.lit", Some("subscribe")).await;
        assert_eq!(
            types(&f.sent()),
            ["presence:subscribed", "presence:subscribe"]
        );
    }

    #[tokio::test]
    async fn a_restart_probes_every_registered_user() {
        let mut f = Fixture::new().await;
        f.register(ROMEO, "<username>romeo</username>").await;
        f.register("juliet@capulet.lit/balcony", "<username>jules</username>")
            .await;
        let gw = Gateway::open(spec(), f.store.clone(), f.key.clone())
            .await
            .unwrap();
        let probes: Vec<String> = gw
            .startup_probes()
            .iter()
            .map(|p| p.to_xml_string())
            .collect();
        assert_eq!(
            probes,
            [
                "<presence xmlns=\"jabber:client\" from=\"irc.example.org\" \
                 to=\"juliet@capulet.lit\" type=\"probe\"/>",
                "<presence xmlns=\"jabber:client\" from=\"irc.example.org\" \
                 to=\"romeo@montague.lit\" type=\"probe\"/>",
            ]
        );
        // The answer to a probe signs the user on again.
        f.gw = gw;
        let h = f.presence(ROMEO, None).await;
        assert!(matches!(h, Handled::Done(ref e) if matches!(e[0], GatewayEvent::SignOn { .. })));
        assert_eq!(f.gw.shutdown_presences().len(), 1);
    }

    #[tokio::test]
    async fn an_unreadable_registration_is_an_error_not_a_sign_on() {
        let mut f = Fixture::new().await;
        f.register(ROMEO, "<username>romeo</username>").await;
        f.sent();
        let location = f.gw.store().location(&jid("romeo@montague.lit"));
        f.store
            .put(
                REGISTRATIONS,
                "romeo@montague.lit",
                b"<registration".to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(f.presence(ROMEO, None).await, Handled::Done(vec![]));
        let sent = f.sent();
        let (cond, text) = error_condition(&sent[0]);
        assert_eq!(cond, "internal-server-error");
        assert!(!text.unwrap().contains(&location), "no paths to users");
        assert!(!f.gw.is_signed_on(&jid("romeo@montague.lit")));
        assert_eq!(
            f.store
                .get(REGISTRATIONS, "romeo@montague.lit")
                .await
                .unwrap(),
            Some(b"<registration".to_vec()),
            "kept"
        );
    }

    #[tokio::test]
    async fn jabber_iq_gateway_prompts_and_translates() {
        let mut f = Fixture::new().await;
        f.send(
            "<iq xmlns='jabber:client' type='get' id='gate1' from='romeo@montague.lit/orchard' \
             to='irc.example.org'><query xmlns='jabber:iq:gateway'/></iq>",
        )
        .await;
        assert_eq!(
            f.sent()[0]
                .get_child("query", ns::GATEWAY)
                .unwrap()
                .to_xml_string(),
            "<query xmlns=\"jabber:iq:gateway\">\
             <desc>Enter the nickname of the person to contact.</desc>\
             <prompt>Nickname</prompt></query>"
        );
        let set = |p: &str| {
            format!(
                "<iq xmlns='jabber:client' type='set' id='gate2' \
                 from='romeo@montague.lit/orchard' to='irc.example.org'>\
                 <query xmlns='jabber:iq:gateway'><prompt>{p}</prompt></query></iq>"
            )
        };
        f.send(&set(" Foo Bar ")).await;
        assert_eq!(
            f.sent()[0]
                .get_child("query", ns::GATEWAY)
                .unwrap()
                .to_xml_string(),
            "<query xmlns=\"jabber:iq:gateway\"><jid>foo\\20bar@irc.example.org</jid></query>"
        );
        f.send(&set("user@host")).await;
        assert_eq!(
            f.sent()[0]
                .get_child("query", ns::GATEWAY)
                .unwrap()
                .child_text("jid", ns::GATEWAY)
                .as_deref(),
            Some("user\\40host@irc.example.org")
        );
        f.send(&set("bad!nick")).await;
        let (cond, text) = error_condition(&f.sent()[0]);
        assert_eq!(cond, "not-acceptable");
        assert_eq!(
            text.as_deref(),
            Some("'bad!nick' is not a valid Nickname address")
        );
        f.send(&set("")).await;
        assert_eq!(error_condition(&f.sent()[0]).0, "bad-request");
    }

    #[tokio::test]
    async fn what_is_not_the_gateways_is_left_alone() {
        let mut f = Fixture::new().await;
        for s in [
            // To a legacy contact, not to the host.
            "<presence xmlns='jabber:client' from='romeo@montague.lit/o' to='nick@irc.example.org'/>",
            "<iq xmlns='jabber:client' type='get' id='x' from='romeo@montague.lit/o' \
             to='nick@irc.example.org'><query xmlns='jabber:iq:register'/></iq>",
            // Another host.
            "<presence xmlns='jabber:client' from='romeo@montague.lit/o' to='aim.example.org'/>",
            // Not registration or gateway business.
            "<message xmlns='jabber:client' from='romeo@montague.lit/o' to='irc.example.org'>\
             <body>hi</body></message>",
            "<iq xmlns='jabber:client' type='get' id='d' from='romeo@montague.lit/o' \
             to='irc.example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            // Answers are never answered.
            "<iq xmlns='jabber:client' type='result' id='r' from='romeo@montague.lit/o' \
             to='irc.example.org'><query xmlns='jabber:iq:register'/></iq>",
            "<iq xmlns='jabber:client' type='error' id='r' from='romeo@montague.lit/o' \
             to='irc.example.org'><query xmlns='jabber:iq:register'/></iq>",
        ] {
            assert_eq!(f.send(s).await, Handled::NotMine, "{s}");
        }
        assert!(f.sent().is_empty());
    }

    #[test]
    fn xep_0106_escaping() {
        for (raw, escaped) in [
            ("space cadet", "space\\20cadet"),
            ("call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22"),
            ("at&t guy", "at\\26t\\20guy"),
            ("d'artagnan", "d\\27artagnan"),
            ("/.fanboy", "\\2f.fanboy"),
            ("::foo::", "\\3a\\3afoo\\3a\\3a"),
            ("<foo>", "\\3cfoo\\3e"),
            ("user@host", "user\\40host"),
            ("c:\\net", "c\\3a\\5cnet"),
            ("c:\\\\net", "c\\3a\\5c\\5cnet"),
            ("c:\\cool stuff", "c\\3a\\5ccool\\20stuff"),
            ("c:\\5commas", "c\\3a\\5c5commas"),
        ] {
            assert_eq!(escape_localpart(raw).as_deref(), Some(escaped), "{raw}");
            assert_eq!(unescape_localpart(escaped), raw, "{escaped}");
        }
        assert_eq!(escape_localpart(" lead"), None);
        assert_eq!(escape_localpart("trail "), None);
        assert_eq!(escape_localpart(""), None);
        // Sequences that are not escapes are left alone.
        for kept in ["\\2plus\\2is\\4", "foo\\bar", "foob\\41r", "\\2F"] {
            assert_eq!(unescape_localpart(kept), kept);
        }
    }

    #[test]
    fn disco_info_lists_the_gateway_identity_and_features() {
        let q = disco_info(&spec(), &["jabber:iq:version", ns::REGISTER]);
        assert_eq!(
            q.to_xml_string(),
            "<query xmlns=\"http://jabber.org/protocol/disco#info\">\
             <identity category=\"gateway\" type=\"irc\" name=\"IRC gateway\"/>\
             <feature var=\"http://jabber.org/protocol/disco#info\"/>\
             <feature var=\"http://jabber.org/protocol/disco#items\"/>\
             <feature var=\"jabber:iq:register\"/>\
             <feature var=\"jabber:iq:gateway\"/>\
             <feature var=\"http://jabber.org/protocol/commands\"/>\
             <feature var=\"jabber:iq:version\"/></query>"
        );
        assert_eq!(spec().identity().category, "gateway");
    }
}
