//! Searching the directory (XEP-0055), with legacy fields or a data form.
//!
//! Each field filled in must appear in the entry's field of the same
//! name, ignoring case (`*` wildcards are accepted and ignored, as users
//! of ejabberd's directory type them). Results are capped at
//! [`MAX_RESULTS`]; a narrower search finds the rest.

use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::stanza::{ErrorType, StanzaError};
use switchboard_xml::{ns, Element};

use crate::entries::{Entries, Entry, FIELDS};

pub const MAX_RESULTS: usize = 100;

fn label(field: &str) -> &'static str {
    match field {
        "first" => "First name",
        "last" => "Last name",
        "nick" => "Nickname",
        "email" => "E-mail",
        _ => "JID",
    }
}

fn search_form() -> Form {
    let mut f = Form::new(FormKind::Form)
        .with_title("Search the user directory")
        .with_instructions("Fill in any fields; each must match part of an entry.")
        .with_field(Field::form_type(ns::SEARCH));
    for name in FIELDS {
        f = f.with_field(Field::new(name, FieldKind::TextSingle).with_label(label(name)));
    }
    f
}

/// Answers a search IQ.
pub fn handle(
    kind: &str,
    query: &Element,
    entries: &Entries,
) -> Result<Option<Element>, StanzaError> {
    if kind == "get" {
        let mut q = Element::new("query", ns::SEARCH).with_child(
            Element::new("instructions", ns::SEARCH)
                .with_text("Fill in any fields; each must match part of an entry."),
        );
        for name in FIELDS {
            q.append_child(Element::new(name, ns::SEARCH));
        }
        q.append_child(search_form().to_element());
        return Ok(Some(q));
    }
    let (criteria, as_form) = match query.get_child("x", ns::DATA_FORMS) {
        Some(x) => {
            let submitted = Form::parse(x)?;
            (search_form().validate_submission(&submitted)?, true)
        }
        None => (
            FIELDS
                .iter()
                .filter_map(|f| Some((f.to_string(), query.child_text(f, ns::SEARCH)?)))
                .collect(),
            false,
        ),
    };
    let criteria: Vec<(String, String)> = criteria
        .into_iter()
        .map(|(k, v)| (k, v.replace('*', "").trim().to_lowercase()))
        .filter(|(k, v)| FIELDS.contains(&k.as_str()) && !v.is_empty())
        .collect();
    if criteria.is_empty() {
        return Err(StanzaError::new("not-acceptable", ErrorType::Modify)
            .with_text("fill in at least one field to search"));
    }
    let hits: Vec<(&String, &Entry)> = entries
        .iter()
        .filter(|(_, e)| {
            criteria
                .iter()
                .all(|(k, v)| e.get(k).to_lowercase().contains(v.as_str()))
        })
        .take(MAX_RESULTS)
        .collect();
    let mut q = Element::new("query", ns::SEARCH);
    if as_form {
        let mut result = Form::new(FormKind::Result).with_field(Field::form_type(ns::SEARCH));
        result
            .reported
            .push(Field::new("jid", FieldKind::JidSingle).with_label("JID"));
        for name in FIELDS {
            result
                .reported
                .push(Field::new(name, FieldKind::TextSingle).with_label(label(name)));
        }
        for (jid, e) in &hits {
            let mut row = vec![Field::new("jid", FieldKind::JidSingle).with_value(jid.as_str())];
            for name in FIELDS {
                row.push(Field::new(name, FieldKind::TextSingle).with_value(e.get(name)));
            }
            result.items.push(row);
        }
        q.append_child(result.to_element());
    } else {
        for (jid, e) in &hits {
            let mut item = Element::new("item", ns::SEARCH).with_attr("jid", jid.as_str());
            for name in FIELDS {
                item.append_child(Element::new(name, ns::SEARCH).with_text(e.get(name)));
            }
            q.append_child(item);
        }
    }
    Ok(Some(q))
}
