//! Listing oneself in the directory (`jabber:iq:register`, XEP-0077 as
//! jabberd's JUD used it): a get shows the form with the current entry, a
//! set lists or updates, `<remove/>` unlists.

use switchboard_jid::Jid;
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::stanza::{ErrorType, StanzaError};
use switchboard_xml::{ns, Element};

use crate::entries::{Entries, Entry, FIELDS};

/// Longest value kept for one field.
pub const MAX_VALUE_CHARS: usize = 256;

fn label(field: &str) -> &'static str {
    match field {
        "first" => "First name",
        "last" => "Last name",
        "nick" => "Nickname",
        _ => "E-mail",
    }
}

/// The registration form, filled with `entry`'s values.
fn form(entry: Option<&Entry>) -> Form {
    let mut f = Form::new(FormKind::Form)
        .with_title("List yourself in the directory")
        .with_instructions(
            "Fill in what others may find you by. Everything is optional but at least \
             one field; unregister to remove your entry.",
        )
        .with_field(Field::form_type(ns::REGISTER));
    for name in FIELDS {
        let mut field = Field::new(name, FieldKind::TextSingle).with_label(label(name));
        if let Some(v) = entry.map(|e| e.get(name)).filter(|v| !v.is_empty()) {
            field = field.with_value(v);
        }
        f = f.with_field(field);
    }
    f
}

/// Answers a registration IQ from `user` (a bare JID).
pub async fn handle(
    kind: &str,
    query: &Element,
    user: &Jid,
    entries: &mut Entries,
) -> Result<Option<Element>, StanzaError> {
    let current = entries.get(user).cloned();
    if kind == "get" {
        let mut q = Element::new("query", ns::REGISTER).with_child(
            Element::new("instructions", ns::REGISTER)
                .with_text("Fill in what others may find you by; at least one field."),
        );
        if current.is_some() {
            q.append_child(Element::new("registered", ns::REGISTER));
        }
        for name in FIELDS {
            let mut el = Element::new(name, ns::REGISTER);
            if let Some(v) = current
                .as_ref()
                .map(|e| e.get(name))
                .filter(|v| !v.is_empty())
            {
                el.append_text(v);
            }
            q.append_child(el);
        }
        q.append_child(form(current.as_ref()).to_element());
        return Ok(Some(q));
    }
    if query.get_child("remove", ns::REGISTER).is_some() {
        return match entries.remove(user).await {
            Ok(true) => Ok(None),
            Ok(false) => Err(StanzaError::new("registration-required", ErrorType::Auth)
                .with_text("you are not listed")),
            Err(e) => Err(internal(e)),
        };
    }
    let pairs: Vec<(String, String)> = match query.get_child("x", ns::DATA_FORMS) {
        Some(x) => {
            let submitted = Form::parse(x)?;
            form(None).validate_submission(&submitted)?
        }
        None => FIELDS
            .iter()
            .filter_map(|f| Some((f.to_string(), query.child_text(f, ns::REGISTER)?)))
            .collect(),
    };
    let mut entry = Entry::default();
    for (k, v) in pairs {
        let v = v.trim();
        if !FIELDS.contains(&k.as_str()) || v.is_empty() {
            continue;
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(
                StanzaError::new("not-acceptable", ErrorType::Modify).with_text(format!(
                    "{} is longer than {MAX_VALUE_CHARS} characters",
                    label(&k)
                )),
            );
        }
        entry.values.insert(k, v.to_string());
    }
    if entry.values.is_empty() {
        return Err(StanzaError::new("not-acceptable", ErrorType::Modify)
            .with_text("fill in at least one field to be listed"));
    }
    entries.put(user, entry).await.map_err(internal)?;
    Ok(None)
}

fn internal(e: String) -> StanzaError {
    tracing::error!("directory: {e}");
    StanzaError::new("internal-server-error", ErrorType::Wait)
        .with_text("the directory could not save that; try again later")
}
