//! A service's XEP-0050 commands, run by the server for the admin
//! socket: `switchboard rooms list|show|destroy|announce` are the group
//! chat service's admin commands (list, inspect, destroy, announce),
//! asked from the server's own domain JID, which the service trusts as
//! its operator. The same commands serve admins in their XMPP clients,
//! so there is one implementation of each, in the service, and it works
//! the same whether the service runs in-process or as a component
//! attached to this server.
//!
//! A command is executed with its form filled in at once (the service's
//! commands accept that, as Prosody's and ejabberd's do); a command that
//! answers with a form to fill in instead gets the fields in a second
//! request of the same session. The answer becomes text lines for the
//! socket: a table (the reported columns, then one line per item, fields
//! separated by tabs), or one `Label: value` line per field, then the
//! command's notes.

use std::time::Duration;

use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_xml::Element;

use crate::routing::Router;

/// XEP-0050's namespace.
const COMMANDS: &str = "http://jabber.org/protocol/commands";

/// How long one request to the service may take.
const LIMIT: Duration = Duration::from_secs(10);

/// The domain a request to `service` comes from: the local domain the
/// service's name sits under (`conference.example.org` → `example.org`),
/// else the first one.
pub fn requester(router: &Router, service: &str) -> Option<String> {
    let hosts = router.hosts();
    hosts
        .iter()
        .find(|h| service.ends_with(&format!(".{h}")))
        .or_else(|| hosts.first())
        .cloned()
}

fn request(node: &str, session: Option<&str>, fields: &[(String, String)]) -> Element {
    let mut cmd = Element::new("command", COMMANDS)
        .with_attr("node", node)
        .with_attr(
            "action",
            if session.is_some() {
                "complete"
            } else {
                "execute"
            },
        );
    if let Some(s) = session {
        cmd.set_attr("sessionid", s);
    }
    if !fields.is_empty() {
        let mut form = Form::new(FormKind::Submit);
        for (var, value) in fields {
            form = form.with_field(
                Field::new(var.clone(), FieldKind::TextSingle).with_value(value.clone()),
            );
        }
        cmd.append_child(form.to_element());
    }
    Element::new("iq", switchboard_xml::ns::CLIENT)
        .with_attr("type", "set")
        .with_child(cmd)
}

/// The error text of an IQ error, for people.
fn error_text(iq: &Element) -> String {
    let Some(err) = iq.get_child("error", &iq.ns) else {
        return "the service answered with an error".into();
    };
    let condition = err
        .elements()
        .find(|c| c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "error".into());
    match err.elements().find(|c| c.name == "text").map(|t| t.text()) {
        Some(t) if !t.is_empty() => format!("{condition}: {t}"),
        _ => condition,
    }
}

/// Runs `node` at `service` with these field values; the answer as
/// lines, or why not.
pub async fn run(
    router: &Router,
    service: &str,
    node: &str,
    fields: &[(String, String)],
) -> Result<Vec<String>, String> {
    let from = requester(router, service).ok_or("this server hosts no domain")?;
    let ask = |iq: Element| async {
        let answer = router
            .services()
            .ask(service, &from, iq, LIMIT)
            .await
            .map_err(|e| format!("{service}: {e}"))?;
        if answer.attr("type") == Some("error") {
            return Err(format!("{service}: {}", error_text(&answer)));
        }
        Ok(answer)
    };
    let mut answer = ask(request(node, None, fields)).await?;
    let executing = |a: &Element| {
        a.get_child("command", COMMANDS)
            .is_some_and(|c| c.attr("status") == Some("executing"))
    };
    if executing(&answer) && !fields.is_empty() {
        let session = answer
            .get_child("command", COMMANDS)
            .and_then(|c| c.attr("sessionid"))
            .map(str::to_string);
        answer = ask(request(node, session.as_deref(), fields)).await?;
    }
    if executing(&answer) {
        return Err(format!(
            "{service}: the command {node} wants more input than was given"
        ));
    }
    Ok(lines(&answer))
}

/// The completed command as text lines.
pub fn lines(answer: &Element) -> Vec<String> {
    let mut out = Vec::new();
    let Some(cmd) = answer.get_child("command", COMMANDS) else {
        return out;
    };
    if let Some(form) = cmd
        .get_child("x", switchboard_xml::ns::DATA_FORMS)
        .and_then(|x| Form::parse(x).ok())
    {
        if !form.reported.is_empty() {
            out.push(
                form.reported
                    .iter()
                    .map(|f| f.display_name().to_string())
                    .collect::<Vec<_>>()
                    .join("\t"),
            );
            for item in &form.items {
                let row: Vec<String> = form
                    .reported
                    .iter()
                    .map(|r| {
                        item.iter()
                            .find(|f| f.var == r.var)
                            .map(|f| f.values.join(", "))
                            .unwrap_or_default()
                    })
                    .collect();
                out.push(row.join("\t"));
            }
        } else {
            for f in form
                .fields
                .iter()
                .filter(|f| f.kind != FieldKind::Hidden && f.var != "FORM_TYPE")
            {
                out.push(format!("{}: {}", f.display_name(), f.values.join(", ")));
            }
        }
    }
    for note in cmd.elements().filter(|e| e.name == "note") {
        out.push(note.text());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(inner: &str) -> Element {
        let xml = format!(
            "<iq xmlns='jabber:client' type='result'><command xmlns='{COMMANDS}' status='completed'>{inner}</command></iq>"
        );
        switchboard_xml::parse_document(xml.as_bytes(), switchboard_xml::Limits::default()).unwrap()
    }

    #[test]
    fn a_table_is_a_header_and_a_line_per_item() {
        let a = answer(
            "<x xmlns='jabber:x:data' type='result'>\
             <reported><field var='jid' label='Room'/><field var='occupants' label='Occupants'/></reported>\
             <item><field var='occupants'><value>3</value></field><field var='jid'><value>a@c</value></field></item>\
             <item><field var='jid'><value>b@c</value></field><field var='occupants'><value>0</value></field></item>\
             </x>",
        );
        assert_eq!(lines(&a), ["Room\tOccupants", "a@c\t3", "b@c\t0"]);
    }

    #[test]
    fn fields_and_notes_are_lines() {
        let a = answer(
            "<x xmlns='jabber:x:data' type='result'>\
             <field var='FORM_TYPE' type='hidden'><value>x</value></field>\
             <field var='name' label='Name'><value>Kitchen</value></field>\
             <field var='o' label='Occupants' type='text-multi'><value>a</value><value>b</value></field>\
             </x><note type='info'>sent to 2 rooms</note>",
        );
        assert_eq!(
            lines(&a),
            ["Name: Kitchen", "Occupants: a, b", "sent to 2 rooms"]
        );
    }
}
