//! Entering, creating, changing nick and leaving (XEP-0045 §7.1–§7.6,
//! §10.1), with every refusal's exact error.

use super::*;

#[test]
fn creating_a_room_locks_it_until_the_owner_configures_it() {
    let mut h = H::new();
    let out = h.join(ROMEO, "Romeo");
    assert_eq!(out.len(), 2, "own presence and the subject: {}", show(&out));
    let p = &out[0];
    assert_eq!(p.attr("from"), Some("kitchen@conference.example.org/Romeo"));
    assert_eq!(codes(p), vec![110, 170, 201]);
    assert_eq!(item(p).attr("affiliation"), Some("owner"));
    assert_eq!(item(p).attr("role"), Some("moderator"));
    assert!(p.get_child("occupant-id", crate::ns::OCCUPANT_ID).is_some());

    assert_eq!(
        the_error(&h.join(JULIET, "Juliet")),
        e("cancel", "item-not-found")
    );
    let form = h.iq(
        ROMEO,
        ROOM,
        "get",
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    let x = form[0]
        .get_child("query", crate::ns::MUC_OWNER)
        .and_then(|q| q.get_child("x", crate::ns::DATA_FORMS))
        .unwrap();
    assert!(x.to_xml_string().contains("muc#roomconfig_roomname"));
    h.configure(ROMEO, "");
    let out = h.join(JULIET, "Juliet");
    assert_eq!(codes(last_to(&out, JULIET, "presence")), vec![110, 170]);
}

#[test]
fn a_client_without_muc_support_gets_an_instant_room() {
    let mut h = H::new();
    h.send(&format!("<presence from='{ROMEO}' to='{ROOM}/Romeo'/>"));
    let out = h.join(JULIET, "Juliet");
    assert_eq!(
        item(last_to(&out, JULIET, "presence")).attr("role"),
        Some("participant")
    );
}

#[test]
fn the_join_sequence_is_others_then_self_then_subject() {
    let mut h = H::three();
    let out = h.join("mercutio@example.org/m", "Mercutio");
    let mine = to(&out, "mercutio@example.org/m");
    let froms: Vec<&str> = mine.iter().map(|e| e.attr("from").unwrap()).collect();
    assert_eq!(
        froms,
        [
            "kitchen@conference.example.org/Romeo",
            "kitchen@conference.example.org/Juliet",
            "kitchen@conference.example.org/Tybalt",
            "kitchen@conference.example.org/Mercutio",
            "kitchen@conference.example.org",
        ]
    );
    assert_eq!(mine[4].name, "message");
    assert_eq!(
        mine[4].child_text("subject", crate::ns::CLIENT).as_deref(),
        Some("")
    );
    // Semi-anonymous: Juliet (a participant) does not see the newcomer's
    // real JID; Romeo (a moderator) does.
    let seen_by_juliet = last_to(&out, JULIET, "presence");
    assert_eq!(item(seen_by_juliet).attr("jid"), None);
    assert_eq!(
        item(last_to(&out, ROMEO, "presence")).attr("jid"),
        Some("mercutio@example.org/m")
    );
    assert!(codes(seen_by_juliet).is_empty());
}

#[test]
fn non_anonymous_rooms_say_so_with_100_and_show_jids() {
    let mut h = H::new();
    h.join(ROMEO, "Romeo");
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_whois'><value>anyone</value></field>",
    );
    let out = h.join(JULIET, "Juliet");
    let own = last_to(&out, JULIET, "presence");
    assert_eq!(codes(own), vec![100, 110, 170]);
    let romeo = to(&out, JULIET)[0];
    assert_eq!(item(romeo).attr("jid"), Some(ROMEO));
}

#[test]
fn passwords_members_only_and_bans_each_have_their_error() {
    let mut h = H::new();
    h.join(ROMEO, "Romeo");
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>\
         <field var='muc#roomconfig_roomsecret'><value>cauldron</value></field>",
    );
    assert_eq!(
        the_error(&h.join(JULIET, "Juliet")),
        e("auth", "not-authorized")
    );
    let out = h.join_with(JULIET, "Juliet", "<password>toil</password>");
    assert_eq!(the_error(&out), e("auth", "not-authorized"));
    assert!(
        !out[0].to_xml_string().contains("toil"),
        "the password is not echoed"
    );
    let out = h.join_with(JULIET, "Juliet", "<password>cauldron</password>");
    assert_eq!(
        item(last_to(&out, JULIET, "presence")).attr("role"),
        Some("participant")
    );

    h.admin(
        ROMEO,
        "<item affiliation='outcast' jid='tybalt@example.org'/>",
    );
    assert_eq!(
        the_error(&h.join_with(TYBALT, "Tybalt", "<password>cauldron</password>")),
        e("auth", "forbidden")
    );

    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
    );
    let out = h.join_with(
        "mercutio@example.org/m",
        "Mercutio",
        "<password>cauldron</password>",
    );
    assert_eq!(the_error(&out), e("auth", "registration-required"));
}

#[test]
fn nick_conflicts_and_shared_nicks() {
    let mut h = H::three();
    let out = h.join("mercutio@example.org/m", "juliet");
    assert_eq!(the_error(&out), e("cancel", "conflict"));
    assert_eq!(
        out[0].attr("from"),
        Some("kitchen@conference.example.org/juliet")
    );
    // Juliet's phone shares her nick; nobody else hears of it.
    let out = h.join("juliet@example.org/phone", "Juliet");
    assert!(
        out.iter()
            .all(|s| s.attr("to") == Some("juliet@example.org/phone")),
        "{}",
        show(&out)
    );
    assert_eq!(
        codes(last_to(&out, "juliet@example.org/phone", "presence")),
        vec![110, 170]
    );
    // A message reaches both of her resources.
    let out = h.say(ROMEO, "hello");
    assert_eq!(to(&out, JULIET).len(), 1);
    assert_eq!(to(&out, "juliet@example.org/phone").len(), 1);
}

#[test]
fn the_room_can_be_full() {
    let mut h = H::with(&[("max-occupants", "2")]);
    h.instant_room();
    h.join(JULIET, "Juliet");
    assert_eq!(
        the_error(&h.join(TYBALT, "Tybalt")),
        e("wait", "service-unavailable")
    );
    // An admin still gets in.
    let out = h.join(ADMIN, "Prince");
    assert_eq!(
        item(last_to(&out, ADMIN, "presence")).attr("affiliation"),
        Some("owner")
    );
}

#[test]
fn who_may_create_rooms() {
    let mut h = H::with(&[("create", "admins")]);
    assert_eq!(
        the_error(&h.join(ROMEO, "Romeo")),
        e("cancel", "not-allowed")
    );
    assert!(h.muc.rooms.is_empty());
    let out = h.join(ADMIN, "Prince");
    assert!(codes(last_to(&out, ADMIN, "presence")).contains(&201));

    let mut h = H::new();
    let out = h.send(&format!("<presence from='eve@elsewhere.net/x' to='{ROOM}/Eve'><x xmlns='http://jabber.org/protocol/muc'/></presence>"));
    assert_eq!(the_error(&out), e("cancel", "not-allowed"));

    let mut h = H::with(&[("max-rooms-per-user", "1")]);
    h.instant_room();
    let out = h.send(&format!(
        "<presence from='{ROMEO}' to='garden@{HOST}/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    assert_eq!(the_error(&out), e("wait", "policy-violation"));
}

#[test]
fn nicks_follow_the_nickname_profile() {
    let mut h = H::three();
    let out = h.join("mercutio@example.org/m", "abc\u{202E}def");
    assert_eq!(the_error(&out), e("modify", "jid-malformed"));
    let out = h.join("mercutio@example.org/m", "Ｍｅｒｃｕｔｉｏ");
    let own = last_to(&out, "mercutio@example.org/m", "presence");
    assert_eq!(
        own.attr("from"),
        Some("kitchen@conference.example.org/Mercutio")
    );
    assert!(codes(own).contains(&210), "the service changed the nick");
    // "ROMEO" is Romeo's nick in another case.
    assert_eq!(
        the_error(&h.join("benvolio@example.org/b", "ROMEO")),
        e("cancel", "conflict")
    );
    let out = h.send(&format!(
        "<presence from='benvolio@example.org/b' to='{ROOM}'/>"
    ));
    assert_eq!(the_error(&out), e("modify", "jid-malformed"));
}

#[test]
fn changing_nick_is_a_303_departure_and_a_return() {
    let mut h = H::three();
    let out = h.send(&format!("<presence from='{JULIET}' to='{ROOM}/Jules'/>"));
    let gone = &to(&out, ROMEO)[0];
    assert_eq!(gone.attr("type"), Some("unavailable"));
    assert_eq!(
        gone.attr("from"),
        Some("kitchen@conference.example.org/Juliet")
    );
    assert_eq!(codes(gone), vec![303]);
    assert_eq!(item(gone).attr("nick"), Some("Jules"));
    let back = &to(&out, ROMEO)[1];
    assert_eq!(
        back.attr("from"),
        Some("kitchen@conference.example.org/Jules")
    );
    assert_eq!(back.attr("type"), None);
    assert_eq!(codes(to(&out, JULIET)[0]), vec![110, 303]);
    assert_eq!(codes(to(&out, JULIET)[1]), vec![110]);
    // Taken nick.
    let out = h.send(&format!("<presence from='{JULIET}' to='{ROOM}/Tybalt'/>"));
    assert_eq!(the_error(&out), e("cancel", "conflict"));
}

#[test]
fn status_changes_reach_everyone() {
    let mut h = H::three();
    let out = h.send(&format!("<presence from='{JULIET}' to='{ROOM}/Juliet'><show>away</show><status>brb</status></presence>"));
    assert_eq!(out.len(), 3);
    let p = &to(&out, TYBALT)[0];
    assert_eq!(
        p.child_text("show", crate::ns::CLIENT).as_deref(),
        Some("away")
    );
    assert_eq!(
        p.child_text("status", crate::ns::CLIENT).as_deref(),
        Some("brb")
    );
}

#[test]
fn the_sender_gets_its_presence_id_back() {
    // The room advertises muc#stable_id: a client matches the reflection
    // of its join, change, nick change and leave by the presence's id.
    let mut h = H::three();
    let out = h.send(&format!(
        "<presence id='j1' from='{ROMEO}' to='{ROOM}/Romeo'><show>away</show></presence>"
    ));
    assert_eq!(last_to(&out, ROMEO, "presence").attr("id"), Some("j1"));
    assert_eq!(last_to(&out, JULIET, "presence").attr("id"), None);
    let out = h.send(&format!(
        "<presence id='n1' from='{JULIET}' to='{ROOM}/Jules'/>"
    ));
    assert_eq!(last_to(&out, JULIET, "presence").attr("id"), Some("n1"));
    let out = h.send(&format!(
        "<presence id='l1' type='unavailable' from='{TYBALT}' to='{ROOM}/Tybalt'/>"
    ));
    let own = last_to(&out, TYBALT, "presence");
    assert_eq!(own.attr("id"), Some("l1"));
    assert!(codes(own).contains(&110));
    assert_eq!(last_to(&out, ROMEO, "presence").attr("id"), None);
    let out = h.send(&format!(
        "<presence id='e1' from='{TYBALT}' to='{ROOM}/Tybalt'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    let own = out
        .iter()
        .find(|e| e.attr("to") == Some(TYBALT) && codes(e).contains(&110))
        .expect("Tybalt's own presence");
    assert_eq!(own.attr("id"), Some("e1"));
}

#[test]
fn leaving_and_the_temporary_room_vanishing() {
    let mut h = H::three();
    let out = h.send(&format!("<presence type='unavailable' from='{TYBALT}' to='{ROOM}/Tybalt'><status>bye</status></presence>"));
    assert_eq!(out.len(), 3);
    let p = &to(&out, ROMEO)[0];
    assert_eq!(p.attr("type"), Some("unavailable"));
    assert_eq!(item(p).attr("role"), Some("none"));
    assert_eq!(
        p.child_text("status", crate::ns::CLIENT).as_deref(),
        Some("bye")
    );
    assert_eq!(codes(to(&out, TYBALT)[0]), vec![110]);
    h.send(&format!(
        "<presence type='unavailable' from='{JULIET}' to='{ROOM}/Juliet'/>"
    ));
    h.say(ROMEO, "last words");
    assert!(h.archived(ROOM) > 0);
    h.send(&format!(
        "<presence type='unavailable' from='{ROMEO}' to='{ROOM}/Romeo'/>"
    ));
    assert!(
        h.muc.rooms.is_empty(),
        "a temporary room goes with its last occupant"
    );
    assert_eq!(h.archived(ROOM), 0, "and so does its archive");
}

#[test]
fn history_honours_every_limit() {
    let mut h = H::three();
    for i in 1..=4 {
        h.say(ROMEO, &format!("line {i}"));
    }
    let bodies = |out: &[Element], who: &str| -> Vec<String> {
        to(out, who)
            .iter()
            .filter(|m| m.name == "message")
            .filter_map(|m| m.child_text("body", crate::ns::CLIENT))
            .collect()
    };
    let m = "mercutio@example.org/m";
    let out = h.join(m, "Mercutio");
    assert_eq!(bodies(&out, m), ["line 1", "line 2", "line 3", "line 4"]);
    let delayed = to(&out, m)
        .into_iter()
        .find(|e| e.name == "message")
        .unwrap();
    assert!(delayed.get_child("delay", crate::ns::DELAY).is_some());
    assert!(delayed.get_child("stanza-id", crate::ns::SID).is_some());
    h.send(&format!(
        "<presence type='unavailable' from='{m}' to='{ROOM}/Mercutio'/>"
    ));
    let out = h.join_with(m, "Mercutio", "<history maxstanzas='2'/>");
    assert_eq!(bodies(&out, m), ["line 3", "line 4"]);
    h.send(&format!(
        "<presence type='unavailable' from='{m}' to='{ROOM}/Mercutio'/>"
    ));
    let out = h.join_with(m, "Mercutio", "<history maxchars='0'/>");
    assert!(bodies(&out, m).is_empty());
    h.send(&format!(
        "<presence type='unavailable' from='{m}' to='{ROOM}/Mercutio'/>"
    ));
    // The clock moves one second per stanza.
    h.say(ROMEO, "line 5");
    let said = h.now;
    let out = h.join_with(m, "Mercutio", "<history seconds='2'/>");
    assert_eq!(bodies(&out, m), ["line 5"]);
    h.send(&format!(
        "<presence type='unavailable' from='{m}' to='{ROOM}/Mercutio'/>"
    ));
    let since = crate::time::stamp(said);
    let out = h.join_with(m, "Mercutio", &format!("<history since='{since}'/>"));
    assert_eq!(bodies(&out, m), ["line 5"]);
}

#[test]
fn a_presence_error_from_an_occupant_removes_it_with_333() {
    let mut h = H::three();
    let out = h.send(&format!(
        "<presence type='error' from='{TYBALT}' to='{ROOM}/Tybalt'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
    ));
    assert_eq!(codes(to(&out, ROMEO)[0]), vec![333]);
    assert!(to(&out, TYBALT).is_empty());
    assert_eq!(h.muc.rooms["kitchen"].occupants.len(), 2);
}
