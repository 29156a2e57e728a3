//! `muc#owner`: configuration changes and their status codes, who may
//! configure, cancelling a new room, destroying one (XEP-0045 §10).

use super::*;
use crate::ns;

#[test]
fn configuration_changes_are_announced_with_their_codes() {
    let mut h = H::three();
    let out = h.configure(
        ROMEO,
        "<field var='muc#roomconfig_roomname'><value>The Kitchen</value></field>",
    );
    let m = last_to(&out, JULIET, "message");
    assert_eq!(m.attr("from"), Some(ROOM));
    assert_eq!(codes(m), vec![104]);
    let out = h.configure(
        ROMEO,
        "<field var='muc#roomconfig_whois'><value>anyone</value></field>",
    );
    assert_eq!(codes(last_to(&out, JULIET, "message")), vec![172]);
    let out = h.configure(
        ROMEO,
        "<field var='muc#roomconfig_enablearchiving'><value>0</value></field>",
    );
    assert_eq!(codes(last_to(&out, JULIET, "message")), vec![171]);
    let out = h.configure(
        ROMEO,
        "<field var='muc#roomconfig_whois'><value>moderators</value></field>",
    );
    assert_eq!(codes(last_to(&out, JULIET, "message")), vec![173]);
    // The form offers logging under the registry's name (Smack's
    // "public logging"); someone entering a logged room is told (170).
    let form = h.iq(
        ROMEO,
        ROOM,
        "get",
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    assert!(show(&form).contains("var=\"muc#roomconfig_enablelogging\""));
    let out = h.configure(
        ROMEO,
        "<field var='muc#roomconfig_enablelogging'><value>1</value></field>",
    );
    assert_eq!(codes(last_to(&out, JULIET, "message")), vec![170]);
    let out = h.join(MERCUTIO, "Mercutio");
    assert_eq!(codes(last_to(&out, MERCUTIO, "presence")), vec![110, 170]);
}

#[test]
fn only_owners_configure() {
    let mut h = H::three();
    let out = h.iq(
        JULIET,
        ROOM,
        "get",
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    assert_eq!(the_error(&out), e("auth", "forbidden"));
    let out = h.iq(
        ROMEO,
        ROOM,
        "set",
        "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>\
         <field var='muc#roomconfig_maxusers'><value>many</value></field></x></query>",
    );
    assert_eq!(the_error(&out), e("modify", "not-acceptable"));
    // A host admin configures any room.
    let out = h.iq(
        ADMIN,
        ROOM,
        "get",
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    assert_eq!(result_or_error(&out, "q"), "result");
}

#[test]
fn owners_can_be_named_in_the_form() {
    let mut h = H::three();
    let out = h.configure(
        ROMEO,
        "<field var='muc#roomconfig_roomowners'><value>romeo@example.org</value><value>juliet@example.org</value></field>\
         <field var='muc#roomconfig_roomadmins'><value>tybalt@example.org</value></field>",
    );
    // Everyone present sees the new owner and admin, as after muc#admin.
    let about = |who: &str| {
        to(&out, ROMEO)
            .into_iter()
            .find(|p| p.name == "presence" && p.attr("from") == Some(&format!("{ROOM}/{who}")))
            .map(|p| {
                let i = item(p);
                (
                    i.attr("affiliation").unwrap_or("").to_string(),
                    i.attr("role").unwrap_or("").to_string(),
                )
            })
    };
    assert_eq!(about("Juliet"), Some(("owner".into(), "moderator".into())));
    assert_eq!(about("Tybalt"), Some(("admin".into(), "moderator".into())));
    let out = h.configure(ROMEO, "<field var='muc#roomconfig_roomadmins'/>");
    let tybalt = last_to(&out, JULIET, "presence");
    assert_eq!(item(tybalt).attr("affiliation"), Some("none"));
    assert_eq!(item(tybalt).attr("role"), Some("participant"));
    let out = h.iq(
        JULIET,
        ROOM,
        "get",
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    assert_eq!(result_or_error(&out, "q"), "result");
    let out = h.iq(
        ROMEO,
        ROOM,
        "set",
        "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>\
         <field var='muc#roomconfig_roomowners'/></x></query>",
    );
    assert_eq!(the_error(&out), e("cancel", "conflict"));
}

#[test]
fn cancelling_a_new_room_destroys_it() {
    let mut h = H::new();
    h.join(ROMEO, "Romeo");
    let out = h.iq(
        ROMEO,
        ROOM,
        "set",
        "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='cancel'/></query>",
    );
    assert_eq!(result_or_error(&out, "q"), "result");
    assert!(h.muc.rooms.is_empty());
}

#[test]
fn persistent_rooms_are_stored_and_forgotten_when_destroyed() {
    let mut h = H::three();
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field>",
    );
    assert!(h.stored.contains_key("kitchen"));
    h.say(JULIET, "hello");
    assert_eq!(h.archived(ROOM), 1);
    assert_eq!(
        the_error(&h.iq(
            JULIET,
            ROOM,
            "set",
            "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query>"
        )),
        e("auth", "forbidden")
    );
    let out = h.iq(
        ROMEO,
        ROOM,
        "set",
        "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='garden@conference.example.org'>\
         <reason>Moving out</reason></destroy></query>",
    );
    let p = to(&out, JULIET)[0];
    assert_eq!(p.attr("type"), Some("unavailable"));
    let d = p
        .get_child("x", ns::MUC_USER)
        .unwrap()
        .get_child("destroy", ns::MUC_USER)
        .unwrap();
    assert_eq!(d.attr("jid"), Some("garden@conference.example.org"));
    assert_eq!(
        d.child_text("reason", ns::MUC_USER).as_deref(),
        Some("Moving out")
    );
    assert_eq!(
        to(&out, JULIET).len(),
        1,
        "each occupant hears only its own"
    );
    assert_eq!(result_or_error(&out, "q"), "result");
    assert!(h.muc.rooms.is_empty());
    assert!(!h.stored.contains_key("kitchen"));
    assert_eq!(h.archived(ROOM), 0);
}

#[test]
fn a_room_that_stops_being_persistent_leaves_the_store() {
    let mut h = H::three();
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field>",
    );
    h.send(&format!(
        "<presence type='unavailable' from='{ROMEO}' to='{ROOM}/Romeo'/>"
    ));
    h.send(&format!(
        "<presence type='unavailable' from='{JULIET}' to='{ROOM}/Juliet'/>"
    ));
    h.send(&format!(
        "<presence type='unavailable' from='{TYBALT}' to='{ROOM}/Tybalt'/>"
    ));
    assert!(
        h.muc.rooms.contains_key("kitchen"),
        "a persistent room stays empty"
    );
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_persistentroom'><value>0</value></field>",
    );
    assert!(!h.stored.contains_key("kitchen"));
    assert!(h.muc.rooms.is_empty(), "empty and temporary: gone");
}
