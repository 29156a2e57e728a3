//! Registration, discovery, the archive, moderation, self-ping, relayed
//! IQs, the room's avatar and the admins' commands.

use super::*;
use crate::ns;

fn register(h: &mut H, who: &str, nick: &str) -> Vec<Element> {
    h.iq(
        who,
        ROOM,
        "set",
        &format!(
            "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
             <field var='muc#register_roomnick'><value>{nick}</value></field></x></query>"
        ),
    )
}

#[test]
fn registering_a_nick_reserves_it() {
    let mut h = H::three();
    let out = h.iq(MERCUTIO, ROOM, "get", "<query xmlns='jabber:iq:register'/>");
    assert!(out[0].to_xml_string().contains("muc#register_roomnick"));
    assert_eq!(
        result_or_error(&register(&mut h, MERCUTIO, "Merc"), "q"),
        "result"
    );
    let out = h.iq(MERCUTIO, ROOM, "get", "<query xmlns='jabber:iq:register'/>");
    let q = out[0].get_child("query", ns::REGISTER).unwrap();
    assert!(q.get_child("registered", ns::REGISTER).is_some());
    assert_eq!(
        q.child_text("username", ns::REGISTER).as_deref(),
        Some("Merc")
    );
    assert_eq!(
        the_error(&register(&mut h, "benvolio@example.org/b", "merc")),
        e("cancel", "conflict")
    );
    assert_eq!(
        the_error(&register(&mut h, "benvolio@example.org/b", "Juliet")),
        e("cancel", "conflict")
    );
    assert_eq!(
        the_error(&h.join("benvolio@example.org/b", "MERC")),
        e("cancel", "conflict")
    );
    let out = h.join(MERCUTIO, "Merc");
    assert_eq!(
        item(last_to(&out, MERCUTIO, "presence")).attr("affiliation"),
        Some("member")
    );
    // §7.12: the registered nick is discoverable.
    let out = h.iq(
        MERCUTIO,
        ROOM,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>",
    );
    assert!(out[0].to_xml_string().contains("name=\"Merc\""));
    let out = h.iq(
        MERCUTIO,
        ROOM,
        "set",
        "<query xmlns='jabber:iq:register'><remove/></query>",
    );
    assert_eq!(result_or_error(&out, "q"), "result");
    assert_eq!(
        the_error(&h.iq(
            MERCUTIO,
            ROOM,
            "set",
            "<query xmlns='jabber:iq:register'><remove/></query>"
        )),
        e("auth", "registration-required")
    );
}

#[test]
fn the_service_lists_public_rooms_only() {
    let mut h = H::three();
    h.send(&format!(
        "<presence from='{ROMEO}' to='secret@{HOST}/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    h.send(&format!(
        "<iq type='set' id='c' from='{ROMEO}' to='secret@{HOST}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_publicroom'><value>0</value></field></x></query></iq>"
    ));
    h.send(&format!(
        "<presence from='{ROMEO}' to='locked@{HOST}/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    let out = h.iq(
        JULIET,
        HOST,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    );
    let listed: Vec<&str> = out[0]
        .get_child("query", ns::DISCO_ITEMS)
        .unwrap()
        .elements()
        .filter_map(|i| i.attr("jid"))
        .collect();
    assert_eq!(listed, [ROOM]);
    let out = h.iq(
        JULIET,
        HOST,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    let text = out[0].to_xml_string();
    assert!(
        text.contains("category=\"conference\"") && text.contains(ns::MUC),
        "{text}"
    );
    // The locked room does not exist for others yet.
    let out = h.iq(
        JULIET,
        &format!("locked@{HOST}"),
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    assert_eq!(the_error(&out), e("cancel", "item-not-found"));
}

#[test]
fn a_room_describes_itself() {
    let mut h = H::three();
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_roomname'><value>The Kitchen</value></field>\
         <field var='muc#roomconfig_roomdesc'><value>Food</value></field>\
         <field var='muc#roomconfig_moderatedroom'><value>1</value></field>",
    );
    let out = h.iq(
        MERCUTIO,
        ROOM,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    let q = out[0].get_child("query", ns::DISCO_INFO).unwrap();
    let features: Vec<&str> = q.elements().filter_map(|f| f.attr("var")).collect();
    for f in [
        ns::MUC,
        "muc_public",
        "muc_temporary",
        "muc_open",
        "muc_moderated",
        "muc_semianonymous",
        "muc_unsecured",
        ns::MAM,
        ns::OCCUPANT_ID,
        ns::SID,
        ns::MODERATE,
    ] {
        assert!(features.contains(&f), "{f} missing: {features:?}");
    }
    let info = crate::tests::show(&out);
    assert!(info.contains("name=\"The Kitchen\""), "{info}");
    assert!(
        info.contains("<value>Food</value>") && info.contains("muc#roominfo_occupants"),
        "{info}"
    );
    assert!(info.contains("<field var=\"muc#roominfo_occupants\" type=\"text-single\" label=\"Number of occupants\"><value>3</value>"), "{info}");
    // A public room lists its occupants to anyone, a hidden one to its
    // occupants only.
    let items = |h: &mut H, who: &str| {
        let out = h.iq(
            who,
            ROOM,
            "get",
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        );
        out[0]
            .get_child("query", ns::DISCO_ITEMS)
            .unwrap()
            .elements()
            .count()
    };
    assert_eq!(items(&mut h, JULIET), 3);
    assert_eq!(items(&mut h, MERCUTIO), 3);
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_publicroom'><value>0</value></field>",
    );
    assert_eq!(items(&mut h, JULIET), 3);
    assert_eq!(items(&mut h, MERCUTIO), 0);
}

fn mam(h: &mut H, who: &str, form: &str, rsm: &str) -> Vec<Element> {
    h.iq(
        who,
        ROOM,
        "set",
        &format!(
            "<query xmlns='urn:xmpp:mam:2' queryid='f1'>{form}<set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set></query>"
        ),
    )
}

fn archived_bodies(out: &[Element]) -> Vec<String> {
    out.iter()
        .filter_map(|m| m.get_child("result", ns::MAM))
        .filter_map(|r| r.get_child("forwarded", ns::FORWARD))
        .filter_map(|f| f.get_child("message", ns::CLIENT))
        .filter_map(|m| m.child_text("body", ns::CLIENT))
        .collect()
}

#[test]
fn the_archive_pages_with_rsm() {
    let mut h = H::three();
    for i in 1..=5 {
        h.say(if i % 2 == 0 { JULIET } else { ROMEO }, &format!("m{i}"));
    }
    let out = mam(&mut h, MERCUTIO, "", "<max>2</max>");
    assert_eq!(archived_bodies(&out), ["m1", "m2"]);
    let fin = out.last().unwrap().get_child("fin", ns::MAM).unwrap();
    assert_eq!(fin.attr("complete"), None);
    let last = fin
        .get_child("set", ns::RSM)
        .unwrap()
        .child_text("last", ns::RSM)
        .unwrap();
    assert_eq!(
        out[0].get_child("result", ns::MAM).unwrap().attr("queryid"),
        Some("f1")
    );
    let out = mam(
        &mut h,
        MERCUTIO,
        "",
        &format!("<max>10</max><after>{last}</after>"),
    );
    assert_eq!(archived_bodies(&out), ["m3", "m4", "m5"]);
    assert_eq!(
        out.last()
            .unwrap()
            .get_child("fin", ns::MAM)
            .unwrap()
            .attr("complete"),
        Some("true")
    );
    let out = mam(&mut h, MERCUTIO, "", "<max>2</max><before/>");
    assert_eq!(archived_bodies(&out), ["m4", "m5"]);
    let with = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>\
         <field var='with'><value>{ROOM}/Juliet</value></field></x>"
    );
    assert_eq!(
        archived_bodies(&mam(&mut h, MERCUTIO, &with, "")),
        ["m2", "m4"]
    );
    assert_eq!(
        the_error(&mam(&mut h, MERCUTIO, "", "<after>nonesuch</after>")),
        e("cancel", "item-not-found")
    );
    // Members-only: outsiders may not read.
    h.configure(
        ROMEO,
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
    );
    assert_eq!(
        the_error(&mam(&mut h, MERCUTIO, "", "")),
        e("auth", "forbidden")
    );
}

#[test]
fn moderators_retract_messages() {
    let mut h = H::three();
    let out = h.say(TYBALT, "rude words");
    let id = out[0]
        .get_child("stanza-id", ns::SID)
        .unwrap()
        .attr("id")
        .unwrap()
        .to_string();
    let moderate = |id: &str| {
        format!(
            "<moderate xmlns='urn:xmpp:message-moderate:1' id='{id}'><retract xmlns='urn:xmpp:message-retract:1'/><reason>Spam</reason></moderate>"
        )
    };
    assert_eq!(
        the_error(&h.iq(JULIET, ROOM, "set", &moderate(&id))),
        e("auth", "forbidden")
    );
    assert_eq!(
        the_error(&h.iq(ROMEO, ROOM, "set", &moderate("nonesuch"))),
        e("cancel", "item-not-found")
    );
    let out = h.iq(ROMEO, ROOM, "set", &moderate(&id));
    assert_eq!(result_or_error(&out, "q"), "result");
    let notice = to(&out, JULIET)[0];
    let r = notice.get_child("retract", ns::RETRACT).unwrap();
    assert_eq!(r.attr("id"), Some(id.as_str()));
    assert_eq!(
        r.get_child("moderated", ns::MODERATE)
            .and_then(|m| m.attr("by")),
        Some("kitchen@conference.example.org/Romeo")
    );
    assert_eq!(r.child_text("reason", ns::RETRACT).as_deref(), Some("Spam"));
    assert!(
        notice.get_child("apply-to", ns::FASTEN).is_some(),
        "version 0 too"
    );
    // Gone from the history and a tombstone in the archive.
    let out = h.join(MERCUTIO, "Mercutio");
    assert!(!show(&out).contains("rude words"));
    let out = mam(&mut h, MERCUTIO, "", "");
    assert!(!show(&out).contains("rude words"));
    assert!(show(&out).contains("retracted"));
}

#[test]
fn self_ping_and_relayed_iqs() {
    let mut h = H::three();
    let ping = |h: &mut H, who: &str, nick: &str| {
        h.iq(
            who,
            &format!("{ROOM}/{nick}"),
            "get",
            "<ping xmlns='urn:xmpp:ping'/>",
        )
    };
    let out = ping(&mut h, JULIET, "Juliet");
    assert_eq!(out.len(), 1);
    assert_eq!(result_or_error(&out, "q"), "result");
    assert_eq!(
        out[0].attr("from"),
        Some("kitchen@conference.example.org/Juliet")
    );
    assert_eq!(
        the_error(&ping(&mut h, MERCUTIO, "Juliet")),
        e("modify", "not-acceptable")
    );
    // §6.6: outsiders may not query occupants.
    let out = h.iq(
        MERCUTIO,
        &format!("{ROOM}/Juliet"),
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    );
    assert_eq!(the_error(&out), e("modify", "bad-request"));
    // A vCard request to an occupant goes to its bare JID and back.
    let out = h.iq(
        JULIET,
        &format!("{ROOM}/Tybalt"),
        "get",
        "<vCard xmlns='vcard-temp'/>",
    );
    assert_eq!(out.len(), 1);
    let fwd = &out[0];
    assert_eq!(fwd.attr("to"), Some("tybalt@example.org"));
    assert_eq!(
        fwd.attr("from"),
        Some("kitchen@conference.example.org/Juliet")
    );
    let id = fwd.attr("id").unwrap().to_string();
    let out = h.send(&format!(
        "<iq type='result' id='{id}' from='tybalt@example.org' to='{ROOM}/Juliet'><vCard xmlns='vcard-temp'><FN>T</FN></vCard></iq>"
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].attr("to"), Some(JULIET));
    assert_eq!(
        out[0].attr("from"),
        Some("kitchen@conference.example.org/Tybalt")
    );
    assert_eq!(out[0].attr("id"), Some("q"));
}

#[test]
fn the_room_avatar() {
    let mut h = H::three();
    let card = "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard>";
    assert_eq!(
        the_error(&h.iq(JULIET, ROOM, "set", card)),
        e("auth", "forbidden")
    );
    let out = h.iq(ROMEO, ROOM, "set", card);
    assert_eq!(result_or_error(&out, "q"), "result");
    let hash = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"; // SHA-1 of "hello"
    let update = to(&out, JULIET)[0];
    assert_eq!(update.name, "presence");
    assert!(update.to_xml_string().contains(hash));
    let out = h.iq(
        JULIET,
        ROOM,
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    assert!(show(&out).contains(hash));
    let out = h.iq(MERCUTIO, ROOM, "get", "<vCard xmlns='vcard-temp'/>");
    assert!(show(&out).contains("aGVsbG8="));
}

fn command(h: &mut H, who: &str, node: &str, form: &str) -> Vec<Element> {
    h.iq(
        who,
        HOST,
        "set",
        &format!("<command xmlns='http://jabber.org/protocol/commands' node='{node}' action='execute'>{form}</command>"),
    )
}

#[test]
fn admins_list_destroy_and_announce() {
    let mut h = H::three();
    let out = command(&mut h, ADMIN, crate::commands::LIST, "");
    assert!(show(&out).contains(ROOM), "{}", show(&out));
    assert_eq!(
        the_error(&command(&mut h, JULIET, crate::commands::LIST, "")),
        e("auth", "forbidden")
    );
    let out = command(
        &mut h,
        ADMIN,
        crate::commands::ANNOUNCE,
        "<x xmlns='jabber:x:data' type='submit'><field var='body'><value>Closing at ten</value></field></x>",
    );
    let m = to(&out, JULIET)[0];
    assert_eq!(m.attr("from"), Some(ROOM));
    assert_eq!(
        m.child_text("body", ns::CLIENT).as_deref(),
        Some("Closing at ten")
    );
    let out = command(
        &mut h,
        ADMIN,
        crate::commands::DESTROY,
        &format!("<x xmlns='jabber:x:data' type='submit'><field var='room'><value>{ROOM}</value></field></x>"),
    );
    assert!(to(&out, JULIET)[0].to_xml_string().contains("destroy"));
    assert!(h.muc.rooms.is_empty());
}

#[test]
fn the_service_counts_rooms_occupants_and_messages() {
    let mut h = H::three();
    assert_eq!(h.muc.stats.occupants, 3);
    h.say(JULIET, "hello");
    assert_eq!((h.muc.stats.messages, h.muc.stats.copies), (1, 3));
    h.admin(ROMEO, "<item nick='Tybalt' role='none'/>");
    assert_eq!(h.muc.stats.occupants, 2);
    h.send(&format!(
        "<presence from='{ROMEO}' to='cellar@{HOST}/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    assert_eq!((h.muc.rooms.len(), h.muc.stats.occupants), (2, 3));
    // The server itself (its domain's JID) may use the admins' commands,
    // and a destroyed room's occupants are no longer counted.
    let out = command(
        &mut h,
        "example.org",
        crate::commands::DESTROY,
        &format!("<x xmlns='jabber:x:data' type='submit'><field var='room'><value>{ROOM}</value></field></x>"),
    );
    assert_eq!(result_or_error(&out, "q"), "result", "{}", show(&out));
    assert_eq!((h.muc.rooms.len(), h.muc.stats.occupants), (1, 1));
    h.send(&format!(
        "<presence type='unavailable' from='{ROMEO}' to='cellar@{HOST}/Romeo'/>"
    ));
    assert_eq!((h.muc.rooms.len(), h.muc.stats.occupants), (0, 0));
}
