//! The roster's form in an account's document, exactly as releases before
//! this interface wrote it (the core's `im::roster`):
//!
//! ```xml
//! <roster xmlns='urn:switchboard:spool:1' ver='7'>
//!   <item jid='bob@example.org' subscription='both' name='Bob' ask='subscribe' approved='true' added='true'>
//!     <group>Friends</group>
//!   </item>
//!   <pending jid='carol@example.org'><presence xmlns='jabber:client' type='subscribe' …/></pending>
//! </roster>
//! ```
//!
//! Read strictly: an element, attribute value or text this form does not
//! have is an error with its position, never skipped, because a roster
//! written back without it would lose it.

use switchboard_xml::{ns, Element, Node};

use crate::record::RecordError;
use crate::store::rules::SUBSCRIPTIONS;
use crate::store::{StoredItem, StoredRoster};

/// The roster element's local name.
pub(super) const ROSTER: &str = "roster";

fn err(el: &Element, message: impl Into<String>) -> RecordError {
    RecordError {
        line: el.span.line,
        col: el.span.col,
        message: message.into(),
    }
}

/// Only whitespace between child elements; every child in the spool
/// namespace.
fn children(el: &Element) -> Result<Vec<&Element>, RecordError> {
    let mut out = Vec::new();
    for node in &el.children {
        match node {
            Node::Element(c) if c.ns == ns::SPOOL => out.push(c),
            Node::Element(c) => {
                return Err(err(
                    c,
                    format!(
                        "<{}/> in namespace '{}' inside <{}/>",
                        c.name, c.ns, el.name
                    ),
                ))
            }
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(_) => return Err(err(el, format!("text directly inside <{}/>", el.name))),
        }
    }
    Ok(out)
}

/// A `true`/`false` flag, absent meaning false.
fn flag(el: &Element, name: &str, yes: &str) -> Result<bool, RecordError> {
    match el.attr(name) {
        None => Ok(false),
        Some(v) if v == yes => Ok(true),
        Some("false") if yes == "true" => Ok(false),
        Some(v) => Err(err(el, format!("{name}='{v}' on <{}/>", el.name))),
    }
}

/// Reads a `<roster/>` element.
pub(super) fn from_element(el: &Element) -> Result<StoredRoster, RecordError> {
    let ver = el
        .attr("ver")
        .ok_or_else(|| err(el, "<roster/> without ver="))?;
    let ver = ver
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| ver.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| err(el, format!("<roster/> ver='{ver}' is not a version number")))?;
    let mut roster = StoredRoster {
        ver,
        ..Default::default()
    };
    for child in children(el)? {
        let jid = child
            .attr("jid")
            .filter(|j| !j.is_empty())
            .ok_or_else(|| err(child, format!("<{}/> without jid=", child.name)))?
            .to_owned();
        match child.name.as_str() {
            "item" => {
                if roster.items.iter().any(|i| i.jid == jid) {
                    return Err(err(child, format!("a second <item/> for {jid}")));
                }
                let subscription = child
                    .attr("subscription")
                    .filter(|s| SUBSCRIPTIONS.contains(s))
                    .ok_or_else(|| {
                        err(
                            child,
                            format!("<item/> for {jid} without a valid subscription="),
                        )
                    })?;
                let mut groups = Vec::new();
                for g in children(child)? {
                    if g.name != "group" || g.elements().next().is_some() {
                        return Err(err(
                            g,
                            format!("<{}/> inside the <item/> for {jid}", g.name),
                        ));
                    }
                    groups.push(g.text());
                }
                roster.items.push(StoredItem {
                    subscription: subscription.to_owned(),
                    name: child.attr("name").map(str::to_owned),
                    ask: flag(child, "ask", "subscribe")?,
                    approved: flag(child, "approved", "true")?,
                    added: flag(child, "added", "true")?,
                    groups,
                    jid,
                });
            }
            "pending" => {
                if roster.pending.iter().any(|(j, _)| *j == jid) {
                    return Err(err(child, format!("a second <pending/> for {jid}")));
                }
                let mut stanzas = child.children.iter().filter_map(|n| match n {
                    Node::Element(e) => Some(Ok(e)),
                    Node::Text(t) if t.trim().is_empty() => None,
                    Node::Text(_) => Some(Err(err(child, "text inside <pending/>"))),
                });
                let stanza = match (stanzas.next(), stanzas.next()) {
                    (Some(s), None) => s?.clone(),
                    _ => {
                        return Err(err(
                            child,
                            format!("<pending/> for {jid} must hold exactly the request"),
                        ))
                    }
                };
                roster.pending.push((jid, stanza));
            }
            other => return Err(err(child, format!("<{other}/> inside <roster/>"))),
        }
    }
    Ok(roster)
}

/// The `<roster/>` element for `roster`, attribute for attribute as the
/// core writes it.
pub(super) fn to_element(roster: &StoredRoster) -> Element {
    let mut el = Element::new(ROSTER, ns::SPOOL).with_attr("ver", roster.ver.to_string());
    for item in &roster.items {
        let mut e = Element::new("item", ns::SPOOL)
            .with_attr("jid", item.jid.clone())
            .with_attr("subscription", item.subscription.clone());
        if let Some(n) = &item.name {
            e.set_attr("name", n.clone());
        }
        if item.ask {
            e.set_attr("ask", "subscribe");
        }
        if item.approved {
            e.set_attr("approved", "true");
        }
        if item.added {
            e.set_attr("added", "true");
        }
        for g in &item.groups {
            e.append_child(Element::new("group", ns::SPOOL).with_text(g.clone()));
        }
        el.append_child(e);
    }
    for (jid, stanza) in &roster.pending {
        el.append_child(
            Element::new("pending", ns::SPOOL)
                .with_attr("jid", jid.clone())
                .with_child(stanza.clone()),
        );
    }
    el
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::{parse_document, Limits};

    fn parse(s: &str) -> Result<StoredRoster, RecordError> {
        from_element(&parse_document(s.as_bytes(), Limits::default()).unwrap())
    }

    #[test]
    fn the_release_form_reads_and_writes_back_identically() {
        let text = "<roster xmlns=\"urn:switchboard:spool:1\" ver=\"8\"><item jid=\"bob@example.org\" subscription=\"both\" name=\"Bob\" added=\"true\"><group>Friends</group><group>Work</group></item><item jid=\"dave@example.org\" subscription=\"none\" name=\"Dave &lt;the&gt; &amp; &apos;dev&apos;\" ask=\"subscribe\" added=\"true\"><group>Ops</group></item><pending jid=\"carol@example.org\"><presence xmlns=\"jabber:client\" type=\"subscribe\" from=\"carol@example.org\" id=\"6d2c\"><status>It's Carol</status></presence></pending></roster>";
        let r = parse(text).unwrap();
        assert_eq!(r.ver, 8);
        assert_eq!(r.items[1].name.as_deref(), Some("Dave <the> & 'dev'"));
        assert!(r.items[1].ask && !r.items[0].ask);
        assert_eq!(r.items[0].groups, ["Friends", "Work"]);
        assert_eq!(r.pending[0].0, "carol@example.org");
        let back = String::from_utf8(to_element(&r).to_bytes(None)).unwrap();
        let again = parse(&back).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn anything_else_is_refused_with_its_position() {
        for (bad, what) in [
            ("<roster xmlns='urn:switchboard:spool:1'/>", "ver"),
            ("<roster xmlns='urn:switchboard:spool:1' ver='x'/>", "version"),
            ("<roster xmlns='urn:switchboard:spool:1' ver='1'>\n  <item subscription='none'/></roster>", "jid"),
            ("<roster xmlns='urn:switchboard:spool:1' ver='1'>\n  <item jid='a@b' subscription='some'/></roster>", "subscription"),
            ("<roster xmlns='urn:switchboard:spool:1' ver='1'>\n  <item jid='a@b' subscription='none' ask='yes'/></roster>", "ask"),
            ("<roster xmlns='urn:switchboard:spool:1' ver='1'>\n  <item jid='a@b' subscription='none'><note/></item></roster>", "note"),
            ("<roster xmlns='urn:switchboard:spool:1' ver='1'>\n  <other jid='a@b'/></roster>", "other"),
            ("<roster xmlns='urn:switchboard:spool:1' ver='1'>\n  <pending jid='a@b'/></roster>", "exactly"),
            ("<roster xmlns='urn:switchboard:spool:1' ver='1'>\n  <item jid='a@b' subscription='none'/><item jid='a@b' subscription='to'/></roster>", "second"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.message.contains(what), "{bad}: {e}");
            assert!(e.line >= 1, "{bad}: {e}");
        }
        let e = parse("<roster xmlns='urn:switchboard:spool:1' ver='1'>\n  <item jid='a@b' subscription='nix'/></roster>").unwrap_err();
        assert_eq!((e.line, e.col), (2, 3));
    }
}
