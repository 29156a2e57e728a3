//! Asking the user something in the middle of a conversation: a transport
//! needs a CAPTCHA answered, a channel key, a confirmation that a legacy
//! contact may see the user's presence.
//!
//! [`Questions::ask`] builds a `<message/>` carrying the question twice: as
//! a data form (XEP-0004 allows forms in messages) for clients that
//! render one, and as a plain `<body/>` for those that do not, which says
//! how to answer in text. A fresh `<thread/>` ties the answer to the
//! question: XEP-0004 asks the reply to copy it.
//!
//! [`Questions::answer`] recognizes the reply: a submitted form, a
//! `cancel` form, or a plain text body, which stands for the form's first
//! field (for list fields, the option's number, label or value; for
//! booleans, yes or no). Answers are checked against the form with
//! [`Form::validate_submission`]. An answer that does not satisfy the form
//! is reported as [`Answer::Invalid`] and the question stays open, so the
//! transport can say what was wrong and the user can try again. A reply
//! without a thread (some chat clients drop it) is matched when exactly one
//! question is open between the two addresses. Only the JID that was asked
//! can answer, and only to the address that asked.
//!
//! Questions expire (an hour by default); [`Questions::expire`] says which.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use crate::forms::{Field, FieldKind, Form, FormError, FormKind};
use crate::stanza::stanza_type;

/// How long a question waits for its answer by default.
pub const QUESTION_TTL: Duration = Duration::from_secs(60 * 60);

/// At most this many questions are open at once; asking one more forgets
/// the oldest.
pub const MAX_PENDING: usize = 4096;

/// Which question an answer belongs to: the `<thread/>` of its message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuestionId(String);

impl QuestionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QuestionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the user answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The validated `(var, value)` pairs (see
    /// [`Form::validate_submission`]). The question is closed.
    Submitted(Vec<(String, String)>),
    /// The user declined (a `cancel` form). The question is closed.
    Cancelled,
    /// The answer does not satisfy the form; the question stays open.
    Invalid(FormError),
    /// The question bounced (an error message came back). It is closed.
    Undeliverable,
}

#[derive(Debug)]
struct Pending {
    /// Who was asked.
    to: Jid,
    /// Who asked.
    from: Jid,
    form: Form,
    asked: Instant,
}

/// The open questions of a service.
#[derive(Debug)]
pub struct Questions {
    pending: HashMap<String, Pending>,
    ttl: Duration,
}

impl Default for Questions {
    fn default() -> Self {
        Questions::new()
    }
}

impl Questions {
    pub fn new() -> Questions {
        Questions::with_ttl(QUESTION_TTL)
    }

    pub fn with_ttl(ttl: Duration) -> Questions {
        Questions {
            pending: HashMap::new(),
            ttl,
        }
    }

    /// How many questions are open (expired ones included until
    /// [`Questions::expire`] collects them).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Asks `to`, from `from`, to fill in `form` (of kind `form`; `title`
    /// names it if it has no title of its own). Returns the question's id
    /// and the message to send.
    pub fn ask(&mut self, to: Jid, from: Jid, title: &str, form: Form) -> (QuestionId, Element) {
        self.ask_at(to, from, title, form, Instant::now())
    }

    /// [`Questions::ask`] at a given time.
    pub fn ask_at(
        &mut self,
        to: Jid,
        from: Jid,
        title: &str,
        mut form: Form,
        now: Instant,
    ) -> (QuestionId, Element) {
        form.kind = FormKind::Form;
        if form.title.is_none() && !title.is_empty() {
            form.title = Some(title.to_owned());
        }
        let thread = new_thread_id();
        let mut msg = Element::new("message", ns::CLIENT)
            .with_attr("from", from.to_string())
            .with_attr("to", to.to_string())
            .with_attr("type", "normal")
            // The id is the thread too, so that a bounce that drops the
            // payload still names the question.
            .with_attr("id", thread.clone());
        if !title.is_empty() {
            msg.append_child(Element::new("subject", ns::CLIENT).with_text(title));
        }
        msg.append_child(Element::new("body", ns::CLIENT).with_text(text_prompt(title, &form)));
        msg.append_child(Element::new("thread", ns::CLIENT).with_text(thread.clone()));
        msg.append_child(form.to_element());

        if self.pending.len() >= MAX_PENDING {
            if let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.asked)
                .map(|(k, _)| k.clone())
            {
                self.pending.remove(&oldest);
            }
        }
        self.pending.insert(
            thread.clone(),
            Pending {
                to,
                from,
                form,
                asked: now,
            },
        );
        (QuestionId(thread), msg)
    }

    /// Withdraws a question (the transport no longer needs the answer);
    /// whether it was open.
    pub fn withdraw(&mut self, id: &QuestionId) -> bool {
        self.pending.remove(&id.0).is_some()
    }

    /// Removes the questions that waited too long, and says which they
    /// were, with whom they were asked.
    pub fn expire(&mut self, now: Instant) -> Vec<(QuestionId, Jid)> {
        let ttl = self.ttl;
        let gone: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.asked) >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter()
            .filter_map(|k| self.pending.remove(&k).map(|p| (QuestionId(k), p.to)))
            .collect()
    }

    /// Recognizes the answer to an open question; `None` if the message is
    /// not one (the transport handles it as any other message).
    pub fn answer(&mut self, stanza: &Element) -> Option<(QuestionId, Answer)> {
        self.answer_at(stanza, Instant::now())
    }

    /// [`Questions::answer`] at a given time: expired questions are not
    /// answered any more.
    pub fn answer_at(&mut self, stanza: &Element, now: Instant) -> Option<(QuestionId, Answer)> {
        if stanza.name != "message" {
            return None;
        }
        let from = Jid::parse(stanza.attr("from")?).ok()?;
        let to = Jid::parse(stanza.attr("to")?).ok()?;
        let thread = stanza.child_text("thread", &stanza.ns);
        let key = self.find(thread.as_deref(), stanza, &from, &to, now)?;
        let id = QuestionId(key.clone());

        if stanza_type(stanza) == "error" {
            self.pending.remove(&key);
            return Some((id, Answer::Undeliverable));
        }
        let pending = &self.pending[&key];
        let answer = match stanza.get_child("x", ns::DATA_FORMS).map(Form::parse) {
            Some(Ok(f)) if f.kind == FormKind::Cancel => Answer::Cancelled,
            Some(Ok(f)) => match pending.form.validate_submission(&f) {
                Ok(pairs) => Answer::Submitted(pairs),
                Err(e) => Answer::Invalid(e),
            },
            Some(Err(e)) => Answer::Invalid(e),
            None => {
                let body = stanza.child_text("body", &stanza.ns)?;
                let submitted = text_answer(&pending.form, body.trim());
                match pending.form.validate_submission(&submitted) {
                    Ok(pairs) => Answer::Submitted(pairs),
                    Err(e) => Answer::Invalid(e),
                }
            }
        };
        if !matches!(answer, Answer::Invalid(_)) {
            self.pending.remove(&key);
        }
        Some((id, answer))
    }

    /// The open question this message answers.
    fn find(
        &self,
        thread: Option<&str>,
        stanza: &Element,
        from: &Jid,
        to: &Jid,
        now: Instant,
    ) -> Option<String> {
        let is_error = stanza_type(stanza) == "error";
        // A reply comes from the asked JID to the asking one; a bounce
        // comes back from the asked address (or its server) with the
        // addresses swapped, so only the domain can be relied on.
        let matches = |p: &Pending| {
            let from_ok = if is_error {
                from.domain() == p.to.domain()
            } else {
                from.to_bare() == p.to.to_bare()
            };
            from_ok
                && to.to_bare() == p.from.to_bare()
                && now.saturating_duration_since(p.asked) < self.ttl
        };
        let by_key = |k: &str| {
            self.pending
                .get(k)
                .filter(|p| matches(p))
                .map(|_| k.to_owned())
        };
        if let Some(t) = thread {
            return by_key(t);
        }
        if is_error {
            return by_key(stanza.attr("id")?);
        }
        // No thread: a chat client that does not copy it. Only an
        // unambiguous match counts, and only a text reply.
        stanza.get_child("body", &stanza.ns)?;
        let mut candidates = self.pending.iter().filter(|(_, p)| matches(p));
        match (candidates.next(), candidates.next()) {
            (Some((k, _)), None) => Some(k.clone()),
            _ => None,
        }
    }
}

/// The field a text answer fills in: the first one a user can see.
fn first_field(form: &Form) -> Option<&Field> {
    form.fields
        .iter()
        .find(|f| !matches!(f.kind, FieldKind::Fixed | FieldKind::Hidden) && !f.var.is_empty())
}

/// The question in words, for clients that do not show forms.
fn text_prompt(title: &str, form: &Form) -> String {
    let mut lines: Vec<String> = Vec::new();
    let heading = form.title.as_deref().unwrap_or(title);
    if !heading.is_empty() {
        lines.push(heading.to_owned());
    }
    lines.extend(form.instructions.iter().cloned());
    lines.extend(
        form.fields
            .iter()
            .filter(|f| f.kind == FieldKind::Fixed)
            .flat_map(|f| f.values.iter().cloned()),
    );
    if let Some(f) = first_field(form) {
        let mut ask = f.display_name().to_owned();
        if let Some(d) = &f.desc {
            ask.push_str(&format!(" ({d})"));
        }
        lines.push(ask);
        match f.kind {
            FieldKind::Boolean => lines.push("Reply with yes or no.".into()),
            FieldKind::ListSingle | FieldKind::ListMulti if !f.options.is_empty() => {
                for (i, (label, value)) in f.options.iter().enumerate() {
                    let shown = if label.is_empty() { value } else { label };
                    lines.push(format!("{}. {shown}", i + 1));
                }
                lines.push(if f.kind == FieldKind::ListMulti {
                    "Reply with the numbers of your choices, separated by commas.".into()
                } else {
                    "Reply with the number of your choice.".into()
                });
            }
            _ => lines.push("Reply to this message with your answer.".into()),
        }
    }
    lines.join("\n")
}

/// A text reply as a submission of the form's first field.
fn text_answer(form: &Form, text: &str) -> Form {
    let Some(field) = first_field(form) else {
        return form.submission([]);
    };
    let values: Vec<String> = match field.kind {
        FieldKind::Boolean => vec![match text.to_lowercase().as_str() {
            "yes" | "y" | "true" | "1" | "on" => "1".into(),
            "no" | "n" | "false" | "0" | "off" => "0".into(),
            _ => text.to_owned(),
        }],
        FieldKind::ListSingle => vec![choose(field, text)],
        FieldKind::ListMulti => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| choose(field, t))
            .collect(),
        FieldKind::JidMulti => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        FieldKind::TextMulti => text.lines().map(str::to_owned).collect(),
        _ => vec![text.to_owned()],
    };
    form.submission(values.iter().map(|v| (field.var.as_str(), v.as_str())))
}

/// An option picked by its number (as listed in the body), its value, or
/// its label (ignoring case); anything else is passed on for validation to
/// refuse.
fn choose(field: &Field, text: &str) -> String {
    if let Ok(n) = text.parse::<usize>() {
        if let Some((_, v)) = n.checked_sub(1).and_then(|i| field.options.get(i)) {
            return v.clone();
        }
    }
    field
        .options
        .iter()
        .find(|(_, v)| v == text)
        .or_else(|| {
            field
                .options
                .iter()
                .find(|(l, v)| l.eq_ignore_ascii_case(text) || v.eq_ignore_ascii_case(text))
        })
        .map_or_else(|| text.to_owned(), |(_, v)| v.clone())
}

/// 128 random bits, hex: unique, and unguessable by anyone who did not see
/// the question.
fn new_thread_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::{error_reply, StanzaError};
    use switchboard_xml::{parse_document, Limits};

    const USER: &str = "romeo@montague.lit";
    const ASKER: &str = "#verona@irc.example.org";

    fn xml(s: &str) -> Element {
        parse_document(s.as_bytes(), Limits::default()).unwrap()
    }

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn network_form() -> Form {
        Form::new(FormKind::Form)
            .with_instructions("The channel needs a network.")
            .with_field(
                Field::new("network", FieldKind::ListSingle)
                    .with_label("Network")
                    .required()
                    .with_option("Libera Chat", "libera")
                    .with_option("OFTC", "oftc"),
            )
            .with_field(Field::new("remember", FieldKind::Boolean).with_label("Remember"))
    }

    fn ask(q: &mut Questions, now: Instant) -> (QuestionId, Element) {
        q.ask_at(jid(USER), jid(ASKER), "Which network?", network_form(), now)
    }

    fn reply(thread: Option<&str>, from: &str, to: &str, payload: &str) -> Element {
        let thread = thread
            .map(|t| format!("<thread>{t}</thread>"))
            .unwrap_or_default();
        xml(&format!(
            "<message xmlns='jabber:client' from='{from}' to='{to}'>{thread}{payload}</message>"
        ))
    }

    fn pairs(p: &[(&str, &str)]) -> Answer {
        Answer::Submitted(
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_question_carries_a_form_a_text_prompt_and_a_thread() {
        let mut q = Questions::new();
        let (id, msg) = ask(&mut q, Instant::now());
        assert_eq!(msg.attr("to"), Some(USER));
        assert_eq!(msg.attr("from"), Some(ASKER));
        assert_eq!(msg.attr("type"), Some("normal"));
        assert_eq!(
            msg.child_text("thread", ns::CLIENT).as_deref(),
            Some(id.as_str())
        );
        assert_eq!(
            msg.child_text("subject", ns::CLIENT).as_deref(),
            Some("Which network?")
        );
        assert_eq!(
            msg.child_text("body", ns::CLIENT).unwrap(),
            "Which network?\nThe channel needs a network.\nNetwork\n\
             1. Libera Chat\n2. OFTC\nReply with the number of your choice."
        );
        let form = Form::parse(msg.get_child("x", ns::DATA_FORMS).unwrap()).unwrap();
        assert_eq!(form.kind, FormKind::Form);
        assert_eq!(form.title.as_deref(), Some("Which network?"));
        assert_eq!(form.fields.len(), 2);
        let (other, _) = ask(&mut q, Instant::now());
        assert_ne!(id, other, "every question has its own thread");
        assert_eq!(q.pending(), 2);
    }

    #[test]
    fn a_submitted_form_answers_and_closes_the_question() {
        let mut q = Questions::new();
        let now = Instant::now();
        let (id, _) = ask(&mut q, now);
        let form = "<x xmlns='jabber:x:data' type='submit'>\
            <field var='network'><value>oftc</value></field>\
            <field var='remember'><value>true</value></field></x>";
        let m = reply(Some(id.as_str()), "romeo@montague.lit/orchard", ASKER, form);
        assert_eq!(
            q.answer_at(&m, now),
            Some((id.clone(), pairs(&[("network", "oftc"), ("remember", "1")])))
        );
        assert_eq!(q.answer_at(&m, now), None, "answered once");
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn text_replies_fill_in_the_first_field() {
        let now = Instant::now();
        for (text, expect) in [
            ("2", "oftc"),
            ("libera", "libera"),
            ("libera chat", "libera"),
            ("  OFTC ", "oftc"),
        ] {
            let mut q = Questions::new();
            let (id, _) = ask(&mut q, now);
            let m = reply(
                Some(id.as_str()),
                "romeo@montague.lit/phone",
                ASKER,
                &format!("<body>{text}</body>"),
            );
            assert_eq!(
                q.answer_at(&m, now),
                Some((id, pairs(&[("network", expect), ("remember", "0")]))),
                "{text}"
            );
        }
    }

    #[test]
    fn a_wrong_answer_leaves_the_question_open() {
        let mut q = Questions::new();
        let now = Instant::now();
        let (id, _) = ask(&mut q, now);
        let m = reply(Some(id.as_str()), USER, ASKER, "<body>3</body>");
        let Some((got, Answer::Invalid(e))) = q.answer_at(&m, now) else {
            panic!("expected an invalid answer");
        };
        assert_eq!(got, id);
        assert_eq!(e.to_string(), "'3' is not one of the choices for 'Network'");
        let m = reply(Some(id.as_str()), USER, ASKER, "<body>1</body>");
        assert!(matches!(
            q.answer_at(&m, now),
            Some((_, Answer::Submitted(_)))
        ));
    }

    #[test]
    fn cancel_and_bounces_close_the_question() {
        let mut q = Questions::new();
        let now = Instant::now();
        let (id, _) = ask(&mut q, now);
        let m = reply(
            Some(id.as_str()),
            USER,
            ASKER,
            "<x xmlns='jabber:x:data' type='cancel'/>",
        );
        assert_eq!(q.answer_at(&m, now), Some((id, Answer::Cancelled)));

        let (id, question) = ask(&mut q, now);
        let bounce = error_reply(&question, &StanzaError::service_unavailable()).unwrap();
        assert_eq!(q.answer_at(&bounce, now), Some((id, Answer::Undeliverable)));
        assert_eq!(q.pending(), 0);

        // A bounce that lost its payload is still recognized by its id.
        let (id, question) = ask(&mut q, now);
        let mut bare = error_reply(&question, &StanzaError::service_unavailable()).unwrap();
        bare.children
            .retain(|c| !matches!(c, switchboard_xml::Node::Element(e) if e.name == "thread"));
        bare.set_attr("from", "montague.lit");
        assert_eq!(q.answer_at(&bare, now), Some((id, Answer::Undeliverable)));
    }

    #[test]
    fn only_the_asked_user_answers_only_the_asker() {
        let mut q = Questions::new();
        let now = Instant::now();
        let (id, _) = ask(&mut q, now);
        let body = "<body>1</body>";
        assert_eq!(
            q.answer_at(
                &reply(Some(id.as_str()), "tybalt@capulet.lit/x", ASKER, body),
                now
            ),
            None
        );
        assert_eq!(
            q.answer_at(
                &reply(Some(id.as_str()), USER, "#other@irc.example.org", body),
                now
            ),
            None
        );
        assert_eq!(
            q.answer_at(&reply(Some("made-up"), USER, ASKER, body), now),
            None
        );
        assert_eq!(q.pending(), 1);
    }

    #[test]
    fn a_reply_without_thread_matches_only_when_unambiguous() {
        let mut q = Questions::new();
        let now = Instant::now();
        let (id, _) = ask(&mut q, now);
        let m = reply(None, USER, ASKER, "<body>oftc</body>");
        assert_eq!(
            q.answer_at(&m, now),
            Some((id, pairs(&[("network", "oftc"), ("remember", "0")])))
        );
        ask(&mut q, now);
        ask(&mut q, now);
        assert_eq!(q.answer_at(&m, now), None, "two open questions: ambiguous");
        assert_eq!(
            q.answer_at(&reply(None, USER, ASKER, "<subject>x</subject>"), now),
            None,
            "no body, no answer"
        );
    }

    #[test]
    fn questions_expire() {
        let mut q = Questions::with_ttl(Duration::from_secs(60));
        let t0 = Instant::now();
        let (id, _) = ask(&mut q, t0);
        let late = t0 + Duration::from_secs(61);
        let m = reply(Some(id.as_str()), USER, ASKER, "<body>1</body>");
        assert_eq!(q.answer_at(&m, late), None);
        assert_eq!(q.expire(t0), vec![]);
        assert_eq!(q.expire(late), vec![(id, jid(USER))]);
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn yes_and_no_answer_a_boolean() {
        let form = Form::new(FormKind::Form).with_field(
            Field::new("ok", FieldKind::Boolean)
                .with_label("Allow?")
                .required(),
        );
        let now = Instant::now();
        for (text, v) in [("Yes", "1"), ("n", "0"), ("true", "1")] {
            let mut q = Questions::new();
            let (id, msg) = q.ask_at(jid(USER), jid(ASKER), "", form.clone(), now);
            assert_eq!(
                msg.child_text("body", ns::CLIENT).unwrap(),
                "Allow?\nReply with yes or no."
            );
            assert!(msg.get_child("subject", ns::CLIENT).is_none());
            let m = reply(
                Some(id.as_str()),
                USER,
                ASKER,
                &format!("<body>{text}</body>"),
            );
            assert_eq!(q.answer_at(&m, now), Some((id, pairs(&[("ok", v)]))));
        }
    }
}
