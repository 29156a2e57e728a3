//! Groupchat, subject, private messages, invitations, voice requests and
//! the message limits (XEP-0045 §7.4–§7.8, §7.13, §8.1, §8.6).

use super::*;
use crate::ns;

const MERCUTIO: &str = "mercutio@example.org/m";

#[test]
fn groupchat_is_reflected_with_ids_the_room_vouches_for() {
    let mut h = H::three();
    let out = h.send(&format!(
        "<message type='groupchat' id='c1' from='{JULIET}' to='{ROOM}'><body>hi</body>\
         <stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM}'/>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>"
    ));
    assert_eq!(out.len(), 3, "to everyone, the sender too: {}", show(&out));
    for m in &out {
        assert_eq!(
            m.attr("from"),
            Some("kitchen@conference.example.org/Juliet")
        );
        assert_eq!(m.attr("id"), Some("c1"), "the sender's id is kept");
        assert_eq!(m.attr("type"), Some("groupchat"));
        let sids: Vec<&Element> = m
            .elements()
            .filter(|c| c.is("stanza-id", ns::SID))
            .collect();
        assert_eq!(sids.len(), 1);
        assert_ne!(sids[0].attr("id"), Some("forged"));
        assert_eq!(sids[0].attr("by"), Some(ROOM));
        let oid = m.get_child("occupant-id", ns::OCCUPANT_ID).unwrap();
        assert_ne!(oid.attr("id"), Some("forged"));
    }
    // Occupant ids are stable per user and differ between users.
    let juliet_oid = out[0]
        .get_child("occupant-id", ns::OCCUPANT_ID)
        .unwrap()
        .attr("id")
        .unwrap()
        .to_string();
    let out2 = h.say(JULIET, "again");
    assert_eq!(
        out2[0]
            .get_child("occupant-id", ns::OCCUPANT_ID)
            .unwrap()
            .attr("id"),
        Some(juliet_oid.as_str())
    );
    let romeo = h.say(ROMEO, "me");
    assert_ne!(
        romeo[0]
            .get_child("occupant-id", ns::OCCUPANT_ID)
            .unwrap()
            .attr("id"),
        Some(juliet_oid.as_str())
    );
}

#[test]
fn outsiders_and_visitors_may_not_speak() {
    let mut h = H::three();
    assert_eq!(
        the_error(&h.say(MERCUTIO, "let me in")),
        e("modify", "not-acceptable")
    );
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>",
    );
    h.join(MERCUTIO, "Mercutio");
    let out = h.say(MERCUTIO, "hello?");
    assert_eq!(the_error(&out), e("auth", "forbidden"));
    assert_eq!(
        out[0].child_text("body", ns::CLIENT).as_deref(),
        Some("hello?"),
        "the error keeps the message"
    );
}

#[test]
fn voice_requests_go_to_moderators_and_approval_gives_voice() {
    let mut h = H::three();
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>",
    );
    h.join(MERCUTIO, "Mercutio");
    let out = h.send(&format!(
        "<message from='{MERCUTIO}' to='{ROOM}'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
         <field var='muc#role'><value>participant</value></field></x></message>"
    ));
    assert_eq!(out.len(), 1, "only Romeo moderates: {}", show(&out));
    assert_eq!(out[0].attr("to"), Some(ROMEO));
    let form = out[0]
        .get_child("x", ns::DATA_FORMS)
        .unwrap()
        .to_xml_string();
    assert!(
        form.contains("<value>Mercutio</value>") && form.contains("mercutio@example.org"),
        "{form}"
    );
    let out = h.send(&format!(
        "<message from='{ROMEO}' to='{ROOM}'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
         <field var='muc#role'><value>participant</value></field>\
         <field var='muc#roomnick'><value>Mercutio</value></field>\
         <field var='muc#request_allow'><value>true</value></field></x></message>"
    ));
    assert_eq!(
        item(to(&out, MERCUTIO)[0]).attr("role"),
        Some("participant")
    );
    assert_eq!(h.say(MERCUTIO, "thanks").len(), 4);
}

#[test]
fn the_subject() {
    let mut h = H::three();
    let subject = |who: &str| {
        format!("<message type='groupchat' from='{who}' to='{ROOM}'><subject>Dinner</subject></message>")
    };
    assert_eq!(the_error(&h.send(&subject(JULIET))), e("auth", "forbidden"));
    let out = h.send(&subject(ROMEO));
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0].child_text("subject", ns::CLIENT).as_deref(),
        Some("Dinner")
    );
    let out = h.join(MERCUTIO, "Mercutio");
    let s = to(&out, MERCUTIO).last().copied().unwrap();
    assert_eq!(s.attr("from"), Some("kitchen@conference.example.org/Romeo"));
    assert_eq!(
        s.child_text("subject", ns::CLIENT).as_deref(),
        Some("Dinner")
    );
    assert!(s.get_child("body", ns::CLIENT).is_none());
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_changesubject'><value>1</value></field>",
    );
    assert_eq!(h.send(&subject(JULIET)).len(), 4);
}

#[test]
fn private_messages_as_the_room_allows() {
    let mut h = H::three();
    let pm = |from: &str, to_nick: &str, kind: &str| {
        format!("<message type='{kind}' from='{from}' to='{ROOM}/{to_nick}'><body>psst</body></message>")
    };
    let out = h.send(&pm(JULIET, "Tybalt", "chat"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].attr("to"), Some(TYBALT));
    assert_eq!(
        out[0].attr("from"),
        Some("kitchen@conference.example.org/Juliet")
    );
    assert_eq!(out[0].attr("type"), Some("chat"));
    assert!(out[0].get_child("x", ns::MUC_USER).is_some());
    assert_eq!(
        the_error(&h.send(&pm(JULIET, "Nobody", "chat"))),
        e("cancel", "item-not-found")
    );
    assert_eq!(
        the_error(&h.send(&pm(MERCUTIO, "Tybalt", "chat"))),
        e("modify", "not-acceptable")
    );
    assert_eq!(
        the_error(&h.send(&pm(JULIET, "Tybalt", "groupchat"))),
        e("modify", "bad-request")
    );
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_allowpm'><value>moderators</value></field>",
    );
    assert_eq!(
        the_error(&h.send(&pm(JULIET, "Tybalt", "chat"))),
        e("auth", "forbidden")
    );
    assert_eq!(h.send(&pm(ROMEO, "Tybalt", "chat")).len(), 1);
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_allowpm'><value>none</value></field>",
    );
    assert_eq!(
        the_error(&h.send(&pm(ROMEO, "Tybalt", "chat"))),
        e("auth", "forbidden")
    );
}

#[test]
fn mediated_invitations_and_declines() {
    let mut h = H::three();
    let invite = |from: &str| {
        format!(
            "<message from='{from}' to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <invite to='mercutio@example.org'><reason>Join us</reason></invite></x></message>"
        )
    };
    let out = h.send(&invite(JULIET));
    assert_eq!(out.len(), 1);
    let m = &out[0];
    assert_eq!(m.attr("from"), Some(ROOM));
    assert_eq!(m.attr("to"), Some("mercutio@example.org"));
    let inv = m
        .get_child("x", ns::MUC_USER)
        .unwrap()
        .get_child("invite", ns::MUC_USER)
        .unwrap();
    assert_eq!(inv.attr("from"), Some("juliet@example.org"));
    assert_eq!(
        inv.child_text("reason", ns::MUC_USER).as_deref(),
        Some("Join us")
    );
    assert!(m.child_text("body", ns::CLIENT).unwrap().contains(ROOM));

    let out = h.send(&format!(
        "<message from='{MERCUTIO}' to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <decline to='juliet@example.org'><reason>Busy</reason></decline></x></message>"
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].attr("to"), Some("juliet@example.org"));
    let d = out[0]
        .get_child("x", ns::MUC_USER)
        .unwrap()
        .get_child("decline", ns::MUC_USER)
        .unwrap();
    assert_eq!(d.attr("from"), Some("mercutio@example.org"));

    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_allowinvites'><value>0</value></field>",
    );
    assert_eq!(the_error(&h.send(&invite(JULIET))), e("auth", "forbidden"));
    assert_eq!(
        the_error(&h.send(&invite(MERCUTIO))),
        e("modify", "not-acceptable")
    );

    // In a members-only, password-protected room the invitee becomes a
    // member and learns the password.
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>\
         <field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>\
         <field var='muc#roomconfig_roomsecret'><value>pw</value></field>",
    );
    let out = h.send(&invite(ROMEO));
    let x = out[0].get_child("x", ns::MUC_USER).unwrap();
    assert_eq!(
        x.child_text("password", ns::MUC_USER).as_deref(),
        Some("pw")
    );
    let out = h.join_with(MERCUTIO, "Mercutio", "<password>pw</password>");
    assert_eq!(
        item(last_to(&out, MERCUTIO, "presence")).attr("affiliation"),
        Some("member")
    );
}

#[test]
fn size_and_rate_limits() {
    let mut h = H::with(&[("max-message-bytes", "600"), ("message-rate", "2/10s")]);
    h.instant_room();
    h.join(JULIET, "Juliet");
    let big = "x".repeat(700);
    assert_eq!(
        the_error(&h.say(JULIET, &big)),
        e("modify", "policy-violation")
    );
    assert_eq!(h.say(JULIET, "one").len(), 2);
    // The refused one above took no token; this is the second.
    assert_eq!(h.say(JULIET, "two").len(), 2);
    assert_eq!(
        the_error(&h.say(JULIET, "three")),
        e("wait", "resource-constraint")
    );
    // Five seconds (stanzas) later a token is back.
    for _ in 0..5 {
        h.send(&format!("<presence from='{JULIET}' to='{ROOM}/Juliet'/>"));
    }
    assert_eq!(h.say(JULIET, "four").len(), 2);
}

#[test]
fn a_bounced_message_removes_the_dead_session() {
    let mut h = H::three();
    let out = h.send(&format!(
        "<message type='error' from='{TYBALT}' to='{ROOM}/Romeo'><error type='cancel'>\
         <recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    ));
    assert_eq!(codes(to(&out, ROMEO)[0]), vec![333]);
}
