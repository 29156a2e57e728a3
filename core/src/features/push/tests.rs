//! The protocol as values, without a router: requests and their errors,
//! replacing and removing registrations, the stored form read back, which
//! messages matter, the notification and which errors disable; and how
//! long the cache trusts what it read.
//! (`core/tests/push.rs` drives the feature through the routing table.)

use switchboard_jid::Jid;
use switchboard_xml::{ns, parse_document, Element, Limits};

use super::protocol::*;
use crate::routing::stanza::MessageType;

fn xml(s: &str) -> Element {
    let mut el = parse_document(s.as_bytes(), Limits::default()).unwrap();
    strip_whitespace(&mut el);
    el
}

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

fn reg(service: &str, node: &str) -> Registration {
    Registration {
        jid: jid(service),
        node: node.into(),
        options: None,
    }
}

#[test]
fn enable_needs_a_valid_jid_and_takes_node_and_options() {
    let err = parse_enable(&xml("<enable xmlns='urn:xmpp:push:0' node='n'/>")).unwrap_err();
    assert_eq!(err.condition, "bad-request");
    assert!(err.text.unwrap().contains("needs a 'jid'"));
    let err = parse_enable(&xml(
        "<enable xmlns='urn:xmpp:push:0' jid='a@@b' node='n'/>",
    ))
    .unwrap_err();
    assert_eq!(err.condition, "bad-request");

    let r = parse_enable(&xml("<enable xmlns='urn:xmpp:push:0' jid='Push.Example'/>")).unwrap();
    assert_eq!(
        r,
        reg("push.example", ""),
        "no node is accepted, as Prosody does"
    );

    // XEP-0357 Example 5, which has no form type: options normalized.
    let r = parse_enable(&xml(
        "<enable xmlns='urn:xmpp:push:0' jid='push-5.client.example' node='yxs32'>
           <x xmlns='jabber:x:data'>
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>
             <field var='secret'><value>eruio234vzxc2kla-91</value></field>
           </x>
         </enable>",
    ))
    .unwrap();
    assert_eq!(r.node, "yxs32");
    assert_eq!(
        r.options.unwrap(),
        xml("<x xmlns='jabber:x:data' type='submit'>
               <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>
               <field var='secret'><value>eruio234vzxc2kla-91</value></field>
             </x>")
    );
    // The same options without FORM_TYPE, typed differently: the same.
    let bare_form = parse_enable(&xml(
        "<enable xmlns='urn:xmpp:push:0' jid='push-5.client.example' node='yxs32'>
           <x xmlns='jabber:x:data' type='submit'><field var='secret' type='text-private'><value>eruio234vzxc2kla-91</value></field></x>
         </enable>",
    ))
    .unwrap();
    let full = parse_enable(&xml(
        "<enable xmlns='urn:xmpp:push:0' jid='push-5.client.example' node='yxs32'>
           <x xmlns='jabber:x:data'>
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>
             <field var='secret'><value>eruio234vzxc2kla-91</value></field>
           </x>
         </enable>",
    ))
    .unwrap();
    assert_eq!(bare_form, full);

    let err = parse_enable(&xml(
        "<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'>
           <x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:example:other</value></field></x>
         </enable>",
    ))
    .unwrap_err();
    assert_eq!(err.condition, "bad-request");
    assert!(err.text.unwrap().contains("publish options"));
}

#[test]
fn disable_needs_a_jid_and_may_name_a_node() {
    assert_eq!(
        parse_disable(&xml("<disable xmlns='urn:xmpp:push:0'/>"))
            .unwrap_err()
            .condition,
        "bad-request"
    );
    assert_eq!(
        parse_disable(&xml(
            "<disable xmlns='urn:xmpp:push:0' jid='push.example'/>"
        ))
        .unwrap(),
        (jid("push.example"), None)
    );
    assert_eq!(
        parse_disable(&xml(
            "<disable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/>"
        ))
        .unwrap(),
        (jid("push.example"), Some("n".into()))
    );
}

#[test]
fn enabling_again_replaces_or_changes_nothing_and_disabling_removes() {
    let a = reg("push.example", "a");
    let b = reg("push.example", "b");
    let list = enabled(&[], a.clone()).unwrap();
    let list = enabled(&list, b.clone()).unwrap();
    assert_eq!(list, [a.clone(), b.clone()]);
    assert_eq!(enabled(&list, a.clone()), None, "the same again: no write");
    let mut a2 = a.clone();
    a2.options = Some(Element::new("x", ns::DATA_FORMS));
    assert_eq!(
        enabled(&list, a2.clone()).unwrap(),
        [a2, b.clone()],
        "replaced in place"
    );

    let other = reg("other.example", "a");
    let list = enabled(&list, other.clone()).unwrap();
    assert_eq!(
        disabled(&list, &jid("push.example"), Some("a")).unwrap(),
        [b.clone(), other.clone()]
    );
    assert_eq!(
        disabled(&list, &jid("push.example"), None).unwrap(),
        [other],
        "every node of the service"
    );
    assert_eq!(disabled(&list, &jid("push.example"), Some("zzz")), None);
    assert_eq!(disabled(&list, &jid("nope.example"), None), None);
}

#[test]
fn the_stored_form_reads_back_the_same() {
    let mut a = reg("push.example", "n1");
    a.options = parse_enable(&xml(
        "<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'>
           <x xmlns='jabber:x:data'><field var='secret'><value> spaced </value></field></x>
         </enable>",
    ))
    .unwrap()
    .options;
    let list = vec![a, reg("push.example", "")];
    let doc = to_document(&list).unwrap();
    assert_eq!(doc.name, DOCUMENT);
    assert_eq!(doc.ns, ns::SPOOL);
    // Through text and back, as a store would, indentation added.
    let text = doc.to_xml_string().replace("><", ">\n  <");
    let read = from_document(&parse_document(text.as_bytes(), Limits::default()).unwrap());
    assert_eq!(read, list);
    assert_eq!(
        read[0]
            .options
            .as_ref()
            .unwrap()
            .elements()
            .nth(1)
            .unwrap()
            .child_text("value", ns::DATA_FORMS)
            .as_deref(),
        Some(" spaced "),
        "values keep their spaces"
    );
    assert_eq!(to_document(&[]), None);

    let damaged = xml(
        "<push xmlns='urn:switchboard:spool:1'><service jid='a@@b' node='x'/><service jid='ok.example' node='y'/></push>",
    );
    assert_eq!(from_document(&damaged), [reg("ok.example", "y")]);
}

fn message(ty: &str, inner: &str) -> (Element, MessageType) {
    let el = xml(&format!(
        "<message xmlns='jabber:client' to='alice@localhost' type='{ty}'>{inner}</message>"
    ));
    (el, MessageType::parse(Some(ty)))
}

#[test]
fn what_matters_is_a_body_an_encrypted_payload_or_a_call() {
    let yes = [
        ("chat", "<body>hi</body>"),
        (
            "normal",
            "<body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/>",
        ),
        (
            "chat",
            "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted>",
        ),
        ("chat", "<encrypted xmlns='urn:xmpp:omemo:2'/>"),
        ("chat", "<x xmlns='jabber:x:encrypted'>…</x>"),
        ("chat", "<openpgp xmlns='urn:xmpp:openpgp:0'>…</openpgp>"),
        (
            "chat",
            "<propose xmlns='urn:xmpp:jingle-message:0' id='c1'/>",
        ),
        ("groupchat", "<body>hi all</body>"),
    ];
    for (ty, inner) in yes {
        let (el, t) = message(ty, inner);
        assert!(matters(&el, t), "{ty}: {inner}");
    }
    let no = [
        (
            "chat",
            "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
        ),
        ("chat", "<body></body>"),
        ("chat", "<received xmlns='urn:xmpp:receipts' id='m1'/>"),
        ("headline", "<body>news</body>"),
        ("error", "<body>hi</body>"),
        (
            "groupchat",
            "<subject>new topic</subject><body>x changed the topic</body>",
        ),
        ("chat", "<body xmlns='urn:example:not-a-body'>hi</body>"),
    ];
    for (ty, inner) in no {
        let (el, t) = message(ty, inner);
        assert!(!matters(&el, t), "{ty}: {inner}");
    }
}

#[test]
fn a_notification_is_a_publish_from_the_bare_jid_without_body_or_sender() {
    let mut r = reg("push.example", "yxs32");
    r.options = parse_enable(&xml(
        "<enable xmlns='urn:xmpp:push:0' jid='push.example' node='yxs32'>
           <x xmlns='jabber:x:data'><field var='secret'><value>s3</value></field></x>
         </enable>",
    ))
    .unwrap()
    .options;
    let n = notification(&jid("alice@localhost"), &r, "n1");
    assert_eq!(
        n,
        xml("<iq xmlns='jabber:client' type='set' from='alice@localhost' to='push.example' id='n1'>
               <pubsub xmlns='http://jabber.org/protocol/pubsub'>
                 <publish node='yxs32'><item>
                   <notification xmlns='urn:xmpp:push:0'>
                     <x xmlns='jabber:x:data' type='submit'>
                       <field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>
                       <field var='message-count'><value>1</value></field>
                     </x>
                   </notification>
                 </item></publish>
                 <publish-options>
                   <x xmlns='jabber:x:data' type='submit'>
                     <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>
                     <field var='secret'><value>s3</value></field>
                   </x>
                 </publish-options>
               </pubsub>
             </iq>")
    );
    let without = notification(&jid("alice@localhost"), &reg("push.example", ""), "n2");
    let pubsub = without.first_element().unwrap();
    assert_eq!(
        pubsub.elements().count(),
        1,
        "no publish-options without options"
    );
    assert_eq!(pubsub.first_element().unwrap().attr("node"), None);
}

#[test]
fn cancel_and_auth_errors_disable_the_others_do_not() {
    for (kind, disables_it) in [
        ("cancel", true),
        ("auth", true),
        ("wait", false),
        ("modify", false),
        ("continue", false),
    ] {
        let reply = xml(&format!(
            "<iq xmlns='jabber:client' type='error' id='n1'><error type='{kind}'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ));
        assert_eq!(disables(&reply), disables_it, "{kind}");
    }
    let no_error = xml("<iq xmlns='jabber:client' type='error' id='n1'/>");
    assert!(!disables(&no_error));
}

/// Registrations read from the store are trusted for a while, then read
/// again (an account deleted and made again, a spool edited by hand).
#[tokio::test(start_paused = true)]
async fn cached_registrations_are_read_again_after_a_while() {
    let entry = super::AccountPush::default();
    assert!(entry.cached().is_none(), "never read");
    entry.set(vec![reg("push.example", "a")]);
    tokio::time::advance(super::CACHE_TTL - std::time::Duration::from_secs(1)).await;
    assert_eq!(entry.cached().unwrap().len(), 1);
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    assert!(entry.cached().is_none(), "too old");
    assert!(
        entry.has_registrations(),
        "still worth keeping in the cache"
    );
}
