//! XEP-0357 as values, without I/O: the `<enable/>` and `<disable/>`
//! requests, an account's registrations and their stored form, which
//! messages deserve a notification, the notification itself, and what an
//! app server's error reply means.

use switchboard_jid::Jid;
use switchboard_service::forms::{Form, FORM_TYPE};
use switchboard_xml::{ns, Element, Node};

use crate::routing::stanza::MessageType;
use crate::stanza::{ErrorType, StanzaError};

/// The push namespace: the `<enable/>` and `<disable/>` payloads, the
/// account's disco#info feature and the `<notification/>` item.
pub const NS: &str = "urn:xmpp:push:0";
/// XEP-0060 publish-subscribe, which notifications are published with.
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// The FORM_TYPE of the publish options a client may give with `<enable/>`.
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
/// The FORM_TYPE of the summary inside a notification.
pub const SUMMARY: &str = "urn:xmpp:push:summary";
/// The account-data document holding an account's registrations.
pub const DOCUMENT: &str = "push";

/// One app server an account asked to be notified through: its XMPP push
/// service and node, and the publish options to send with each
/// notification (often a secret the app server checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub jid: Jid,
    /// Empty when the client named none: XEP-0357 §5 says the request
    /// SHOULD (not MUST) carry a node, and Prosody's mod_cloud_notify
    /// accepts one without it, so this does too.
    pub node: String,
    /// The publish-options form, normalized (see [`parse_enable`]).
    pub options: Option<Element>,
}

impl Registration {
    fn same_target(&self, other: &Registration) -> bool {
        self.jid == other.jid && self.node == other.node
    }
}

/// Reads an `<enable/>`: `jid` is required and must be a JID
/// (`bad-request` otherwise, as Prosody answers a missing one); an
/// optional data form becomes the publish options.
pub fn parse_enable(payload: &Element) -> Result<Registration, StanzaError> {
    let jid = service_jid(payload, "enable")?;
    let node = payload.attr("node").unwrap_or_default().to_owned();
    let options = match payload.get_child("x", ns::DATA_FORMS) {
        Some(x) => Some(publish_options(x)?),
        None => None,
    };
    Ok(Registration { jid, node, options })
}

/// Reads a `<disable/>`: the service's JID (required) and, optionally,
/// the one node to disable; without a node every registration at that
/// JID goes (XEP-0357 §6).
pub fn parse_disable(payload: &Element) -> Result<(Jid, Option<String>), StanzaError> {
    let jid = service_jid(payload, "disable")?;
    Ok((jid, payload.attr("node").map(str::to_owned)))
}

fn service_jid(payload: &Element, what: &str) -> Result<Jid, StanzaError> {
    let Some(raw) = payload.attr("jid") else {
        return Err(StanzaError::bad_request().with_text(format!(
            "<{what}/> needs a 'jid': the push service's address"
        )));
    };
    Jid::parse(raw).map_err(|e| {
        StanzaError::bad_request().with_text(format!("'{raw}' is not a valid push service: {e}"))
    })
}

/// The publish options as they are stored and sent: a submitted form with
/// the publish-options FORM_TYPE first and each field's values, whatever
/// whitespace or field types the client sent (so that re-enabling with
/// the same options is recognised as no change). XEP-0357's own example
/// leaves out the form's `type`, so a missing one is taken as `submit`;
/// a missing FORM_TYPE is added (XEP-0060 publish options carry one). A
/// form declaring another FORM_TYPE is refused (`bad-request`): it cannot
/// be publish options, and saying so beats failing at every notification.
/// (Prosody stores whatever form it gets.)
fn publish_options(x: &Element) -> Result<Element, StanzaError> {
    let mut x = x.clone();
    if x.attr("type").is_none() {
        x.set_attr("type", "submit");
    }
    let form = Form::parse(&x)?;
    if let Some(t) = form.value(FORM_TYPE) {
        if t != PUBLISH_OPTIONS {
            return Err(StanzaError::bad_request().with_text(format!(
                "the form in <enable/> must be publish options ({PUBLISH_OPTIONS}), not {t}"
            )));
        }
    }
    let mut out = Element::new("x", ns::DATA_FORMS).with_attr("type", "submit");
    out.append_child(field(FORM_TYPE, [PUBLISH_OPTIONS]).with_attr("type", "hidden"));
    for f in form.fields.iter().filter(|f| f.var != FORM_TYPE) {
        if f.var.is_empty() {
            continue; // `fixed` text: nothing to submit
        }
        out.append_child(field(&f.var, f.values.iter().map(String::as_str)));
    }
    Ok(out)
}

fn field<'a>(var: &str, values: impl IntoIterator<Item = &'a str>) -> Element {
    let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", var);
    for v in values {
        f.append_child(Element::new("value", ns::DATA_FORMS).with_text(v));
    }
    f
}

/// The registrations after enabling `reg`; `None` when that changes
/// nothing (the same service, node and options are enabled already:
/// Conversations enables again on every connect, and a write each time
/// would be wasted). The same (jid, node) enabled again replaces the old
/// registration, keeping its place (XEP-0357 §5: "the last received
/// request").
pub fn enabled(list: &[Registration], reg: Registration) -> Option<Vec<Registration>> {
    match list.iter().position(|r| r.same_target(&reg)) {
        Some(i) if list[i] == reg => None,
        Some(i) => {
            let mut v = list.to_vec();
            v[i] = reg;
            Some(v)
        }
        None => {
            let mut v = list.to_vec();
            v.push(reg);
            Some(v)
        }
    }
}

/// The registrations after disabling `jid` (one node of it, or every node
/// when `node` is `None`); `None` when none matched.
pub fn disabled(list: &[Registration], jid: &Jid, node: Option<&str>) -> Option<Vec<Registration>> {
    let keep: Vec<Registration> = list
        .iter()
        .filter(|r| !(r.jid == *jid && node.is_none_or(|n| r.node == n)))
        .cloned()
        .collect();
    (keep.len() < list.len()).then_some(keep)
}

/// The stored document, or `None` when there is nothing to store:
///
/// ```xml
/// <push xmlns='urn:switchboard:spool:1'>
///   <service jid='push.example' node='n'><x xmlns='jabber:x:data' …/></service>
/// </push>
/// ```
pub fn to_document(list: &[Registration]) -> Option<Element> {
    if list.is_empty() {
        return None;
    }
    let mut doc = Element::new(DOCUMENT, ns::SPOOL);
    for r in list {
        let mut s = Element::new("service", ns::SPOOL)
            .with_attr("jid", r.jid.to_string())
            .with_attr("node", r.node.clone());
        if let Some(x) = &r.options {
            s.append_child(x.clone());
        }
        doc.append_child(s);
    }
    Some(doc)
}

/// The registrations in a stored document. An entry whose JID does not
/// parse (edited by hand) is skipped with a warning rather than failing
/// every notification of the account; the next write drops it.
pub fn from_document(doc: &Element) -> Vec<Registration> {
    doc.elements()
        .filter(|e| e.is("service", ns::SPOOL))
        .filter_map(|e| {
            let raw = e.attr("jid").unwrap_or_default();
            match Jid::parse(raw) {
                Ok(jid) => Some(Registration {
                    jid,
                    node: e.attr("node").unwrap_or_default().to_owned(),
                    options: e.get_child("x", ns::DATA_FORMS).cloned().map(|mut x| {
                        strip_whitespace(&mut x);
                        x
                    }),
                }),
                Err(err) => {
                    tracing::warn!(jid = raw, "skipping a stored push registration: {err}");
                    None
                }
            }
        })
        .collect()
}

/// Whether a message is worth waking a device for, as Prosody's
/// mod_cloud_notify `is_important` decides: a body that is not empty, an
/// encrypted payload (whose body, if any, is only a fallback text: OMEMO
/// in its old and current namespaces, XEP-0027 and XEP-0373 OpenPGP), or
/// an incoming call (a XEP-0353 `<propose/>`). Chat states, receipts and
/// markers alone are not; neither are headlines, errors, nor a group
/// chat's subject change.
///
/// (Message carbons do not exist here yet; when they do, a received copy
/// should be judged by the message it wraps and a sent copy never, as
/// Prosody does.)
pub fn matters(el: &Element, ty: MessageType) -> bool {
    match ty {
        MessageType::Headline | MessageType::Error => return false,
        MessageType::Groupchat if el.get_child("subject", &el.ns).is_some() => return false,
        _ => {}
    }
    const WORTH_IT: &[(&str, &str)] = &[
        ("encrypted", "eu.siacs.conversations.axolotl"),
        ("encrypted", "urn:xmpp:omemo:2"),
        ("x", "jabber:x:encrypted"),
        ("openpgp", "urn:xmpp:openpgp:0"),
        ("propose", "urn:xmpp:jingle-message:0"),
    ];
    el.elements().any(|c| {
        WORTH_IT.iter().any(|(name, ns)| c.is(name, ns))
            || (c.is("body", &el.ns) && !c.text().is_empty())
    })
}

/// The notification for one registration: a pubsub publish from the
/// account's bare JID to the push service, with the summary form and the
/// stored publish options (XEP-0357 §7, Examples 9 and 10).
///
/// Privacy as Prosody's default: neither the body nor the sender is sent
/// (the app server and the push network behind it are third parties).
/// There is no switch to include them: it would need a per-host config
/// option, and XEP-0357 §10 advises against in-band ones. The count is
/// always 1, as in Prosody: the XEP does not say what to count, and an
/// app server only needs to know there is something to fetch.
pub fn notification(account: &Jid, reg: &Registration, id: &str) -> Element {
    let summary = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "submit")
        .with_child(field(FORM_TYPE, [SUMMARY]))
        .with_child(field("message-count", ["1"]));
    let mut publish = Element::new("publish", PUBSUB);
    if !reg.node.is_empty() {
        publish.set_attr("node", reg.node.clone());
    }
    publish.append_child(
        Element::new("item", PUBSUB)
            .with_child(Element::new("notification", NS).with_child(summary)),
    );
    let mut pubsub = Element::new("pubsub", PUBSUB).with_child(publish);
    if let Some(x) = &reg.options {
        pubsub.append_child(Element::new("publish-options", PUBSUB).with_child(x.clone()));
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("from", account.to_string())
        .with_attr("to", reg.jid.to_string())
        .with_attr("id", id)
        .with_child(pubsub)
}

/// Whether an app server's error reply ends the registration. XEP-0357
/// §7.1 says an error SHOULD disable it and lets a server keep it for
/// errors "deemed recoverable or transient": `cancel` and `auth` say the
/// node is gone or the server may not publish there, so the registration
/// goes at once; `wait` (the service busy or down), `modify` and
/// `continue` keep it. (Prosody instead counts every error but `wait` and
/// disables after 16 of them; an app server that says "no such node"
/// means it the first time.)
pub fn disables(reply: &Element) -> bool {
    let kind = reply
        .get_child("error", &reply.ns)
        .and_then(|e| e.attr("type"));
    matches!(kind, Some(k) if k == ErrorType::Cancel.as_str() || k == ErrorType::Auth.as_str())
}

/// Whitespace-only text between elements (indentation), which a stored
/// document read back may carry and a fresh one does not; removed so that
/// options read from the store compare fairly with those of a request.
/// Text in an element without child elements (a `<value/>`) is data and
/// stays.
pub fn strip_whitespace(el: &mut Element) {
    if el.first_element().is_some() {
        el.children.retain(|n| match n {
            Node::Text(t) => !t.trim().is_empty(),
            Node::Element(_) => true,
        });
    }
    for c in el.elements_mut() {
        strip_whitespace(c);
    }
}
