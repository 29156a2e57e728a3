//! XEP-0172 User Nickname, published through PEP (§4.6) on the node
//! `http://jabber.org/protocol/nick`: the node takes a `<nick/>` holding
//! text only, at most [`MAX_NICK_BYTES`]; anything else is refused with
//! `bad-request` and `<invalid-payload/>` (XEP-0060 §7.1.3.5) and not
//! stored. The node has XEP-0163's defaults (contacts who see the user's
//! presence see the nickname); the nickname in subscription requests
//! (§4.2) is the clients' business and travels with the request.

use std::sync::Arc;

use switchboard_xml::{Element, Node};

use super::pep::{errors, NodeRules, Pep};
use crate::stanza::StanzaError;

/// The namespace, also the node.
pub const NS: &str = "http://jabber.org/protocol/nick";

/// The longest nickname stored: far more than any name a client shows.
pub const MAX_NICK_BYTES: usize = 1023;

pub fn register(pep: &Arc<Pep>) {
    pep.add_rules(Arc::new(Nick));
}

struct Nick;

impl NodeRules for Nick {
    fn node(&self) -> &str {
        NS
    }

    fn check(&self, _id: &str, payload: &Element) -> Result<(), StanzaError> {
        check(payload)
    }
}

fn check(payload: &Element) -> Result<(), StanzaError> {
    if !payload.is("nick", NS) {
        return Err(errors::invalid_payload(format!(
            "a nickname is a <nick xmlns='{NS}'/>"
        )));
    }
    if payload
        .children
        .iter()
        .any(|c| matches!(c, Node::Element(_)))
    {
        return Err(errors::invalid_payload("a nickname is text only"));
    }
    if payload.text().len() > MAX_NICK_BYTES {
        return Err(errors::invalid_payload(format!(
            "a nickname is at most {MAX_NICK_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::test_support::{env, error_of, events, items, notified, publish};

    #[test]
    fn only_text_nicknames_of_reasonable_length() {
        assert_eq!(
            check(&Element::new("nick", NS).with_text("Ishmael")),
            Ok(())
        );
        let bad = [
            Element::new("name", NS).with_text("x"),
            Element::new("nick", NS).with_child(Element::new("b", "urn:x")),
            Element::new("nick", NS).with_text("x".repeat(MAX_NICK_BYTES + 1)),
        ];
        for b in bad {
            let e = check(&b).unwrap_err();
            assert_eq!(
                (e.condition, e.app.unwrap().name.as_str()),
                ("bad-request", "invalid-payload")
            );
        }
    }

    #[tokio::test]
    async fn a_nickname_reaches_contacts_that_want_it() {
        let e = env(&["alice", "bob"]).await;
        e.befriend("alice", "bob").await;
        let mut a = notified(&e, "alice@localhost/phone", &[]).await;
        let mut b = notified(&e, "bob@localhost/pc", &[NS]).await;
        let nick = Element::new("nick", NS).with_text("CallMeIshmael");
        let (reply, _) = e.iq(&mut a, "set", None, publish(NS, None, nick)).await;
        assert_eq!(reply.attr("type"), Some("result"));
        let got = e.settle(&mut b, "bob@localhost").await;
        assert_eq!(events(&got).len(), 1);
        let bad = Element::new("nick", NS).with_child(Element::new("b", "urn:x"));
        let (reply, _) = e.iq(&mut a, "set", None, publish(NS, None, bad)).await;
        assert_eq!(
            error_of(&reply),
            ("bad-request".into(), Some("invalid-payload".into()))
        );
        let (reply, _) = e
            .iq(&mut b, "get", Some("alice@localhost"), items(NS))
            .await;
        assert_eq!(reply.attr("type"), Some("result"));
        let list = reply.first_element().unwrap().first_element().unwrap();
        assert_eq!(list.elements().count(), 1);
    }
}
