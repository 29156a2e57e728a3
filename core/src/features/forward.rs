//! Stanza forwarding (XEP-0297): a stanza wrapped in `<forwarded/>`,
//! optionally with the XEP-0203 `<delay/>` saying when it was first
//! received. Message carbons and archive results carry their messages so.

use switchboard_xml::{ns, Element};

/// `urn:xmpp:forward:0`.
pub const NS: &str = "urn:xmpp:forward:0";

/// `<forwarded><delay stamp/>?{stanza}</forwarded>`.
pub fn forwarded(stanza: Element, stamp: Option<String>) -> Element {
    let mut f = Element::new("forwarded", NS);
    if let Some(stamp) = stamp {
        f.append_child(Element::new("delay", ns::DELAY).with_attr("stamp", stamp));
    }
    f.with_child(stanza)
}

/// The stanza inside a `<forwarded/>` child of `wrapper`, if any.
pub fn inner(wrapper: &Element) -> Option<&Element> {
    wrapper
        .get_child("forwarded", NS)?
        .elements()
        .find(|e| e.ns != ns::DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_stanza_keeps_its_namespace_and_its_delay() {
        let m = Element::new("message", ns::CLIENT).with_attr("id", "m1");
        let f = forwarded(m.clone(), Some("2024-05-01T12:00:00Z".into()));
        assert_eq!(
            f.to_xml_string(),
            "<forwarded xmlns=\"urn:xmpp:forward:0\"><delay xmlns=\"urn:xmpp:delay\" \
             stamp=\"2024-05-01T12:00:00Z\"/><message xmlns=\"jabber:client\" id=\"m1\"/></forwarded>"
        );
        let wrapper = Element::new("result", "urn:xmpp:mam:2").with_child(f);
        assert_eq!(inner(&wrapper), Some(&m));
    }
}
