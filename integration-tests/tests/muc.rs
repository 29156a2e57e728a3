//! Group chat (XEP-0045 and the extensions clients rely on) on the real
//! binary: three users, alice, bob and carol, in scripted sessions, one
//! per part of the XEP, every refusal with its exact error; persistence
//! across a restart; and the same service run as `switchboard component`
//! over XEP-0114.
//!
//! "Nothing else arrived" is checked with a barrier: a ping to the group
//! chat service, which answers after everything it sent that client
//! before.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_integration_tests::muc::{codes, error_of, item, Occupant};
use switchboard_integration_tests::server::binary;
use switchboard_integration_tests::{ServerBuilder, TestServer};

const MUC: &str = "conference.localhost";
const ROOM: &str = "kitchen@conference.localhost";

fn server(extra: &str) -> TestServer {
    builder(extra, None).start()
}

fn builder(extra: &str, home: Option<&std::path::Path>) -> ServerBuilder {
    with_users(extra, home, true)
}

fn with_users(extra: &str, home: Option<&std::path::Path>, add_users: bool) -> ServerBuilder {
    let mut b = ServerBuilder::new()
        .config(r#"<host name="localhost"><admin>admin@localhost</admin><registration>open</registration></host>"#)
        .also(&format!(r#"<service id="{MUC}" type="muc" {extra}/>"#));
    if let Some(h) = home {
        b = b.home(h);
    }
    if !add_users {
        return b;
    }
    ["alice", "bob", "carol", "dave", "admin"]
        .iter()
        .fold(b, |b, u| {
            b.user(&format!("{u}@localhost"), &format!("{u}-pw"))
        })
}

async fn users(server: &TestServer) -> (Occupant, Occupant, Occupant) {
    (
        Occupant::login(server, "alice", MUC).await,
        Occupant::login(server, "bob", MUC).await,
        Occupant::login(server, "carol", MUC).await,
    )
}

fn e(kind: &str, cond: &str) -> (String, String) {
    (kind.to_string(), cond.to_string())
}

/// Alice creates and configures the kitchen; bob and carol come in.
async fn kitchen(alice: &mut Occupant, bob: &mut Occupant, carol: &mut Occupant) {
    alice.create(ROOM, "Alice").await;
    bob.join(ROOM, "Bob").await;
    carol.join(ROOM, "Carol").await;
    alice.drain().await;
    bob.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_entering_talking_and_leaving() {
    let server = server("");
    let (mut alice, mut bob, mut carol) = users(&server).await;

    // §10.1: a new room is locked until its owner configures it.
    let seq = alice.join(ROOM, "Alice").await;
    let own = seq.last().unwrap();
    assert_eq!(codes(own), vec![110, 170, 201]);
    assert_eq!(item(own).attr("affiliation"), Some("owner"));
    assert_eq!(
        bob.refused(ROOM, "Bob", "").await,
        e("cancel", "item-not-found")
    );
    alice
        .configure(
            ROOM,
            "<field var='muc#roomconfig_roomname'><value>Kitchen</value></field>",
        )
        .await;
    alice.drain().await;

    // §7.2: the join sequence, others first, then oneself, then the subject.
    let seq = bob.join(ROOM, "Bob").await;
    let froms: Vec<&str> = seq.iter().map(|e| e.attr("from").unwrap()).collect();
    assert_eq!(
        froms,
        [&format!("{ROOM}/Alice"), &format!("{ROOM}/Bob"), ROOM]
    );
    assert_eq!(codes(&seq[1]), vec![110, 170]);
    assert!(seq[1]
        .get_child("occupant-id", "urn:xmpp:occupant-id:0")
        .is_some());
    let seen = alice
        .wait_for("bob's presence", |e| e.name == "presence")
        .await;
    assert_eq!(
        item(&seen).attr("jid"),
        Some(bob.jid.as_str()),
        "the owner moderates and sees real JIDs"
    );
    carol.join(ROOM, "Carol").await;
    let seen = bob
        .wait_for("carol's presence", |e| e.name == "presence")
        .await;
    assert_eq!(
        item(&seen).attr("jid"),
        None,
        "semi-anonymous for participants"
    );
    alice.drain().await;

    // §7.4: groupchat is reflected to everyone with the room's stanza-id.
    bob.say(ROOM, "hello").await;
    for u in [&mut alice, &mut bob, &mut carol] {
        let m = u.heard().await;
        assert_eq!(m.attr("from"), Some(format!("{ROOM}/Bob").as_str()));
        let sid = m.get_child("stanza-id", "urn:xmpp:sid:0").unwrap();
        assert_eq!(sid.attr("by"), Some(ROOM));
        u.quiet().await;
    }

    // §7.5: a private message reaches only its addressee.
    carol
        .send(&format!(
            "<message type='chat' to='{ROOM}/Bob'><body>psst</body></message>"
        ))
        .await;
    let pm = bob.heard().await;
    assert_eq!(pm.attr("from"), Some(format!("{ROOM}/Carol").as_str()));
    assert_eq!(pm.attr("type"), Some("chat"));
    alice.quiet().await;
    carol.quiet().await;

    // §7.6: a nick change is a 303 departure and a return.
    bob.send(&format!("<presence to='{ROOM}/Robert'/>")).await;
    let gone = carol.wait_for("303", |e| e.name == "presence").await;
    assert_eq!(codes(&gone), vec![303]);
    assert_eq!(item(&gone).attr("nick"), Some("Robert"));
    let back = carol
        .wait_for("the new nick", |e| e.name == "presence")
        .await;
    assert_eq!(back.attr("from"), Some(format!("{ROOM}/Robert").as_str()));

    // §7.14: leaving.
    carol
        .send(&format!("<presence type='unavailable' to='{ROOM}/Carol'/>"))
        .await;
    let own = carol
        .wait_for("own departure", |e| e.name == "presence")
        .await;
    assert_eq!(codes(&own), vec![110]);
    let seen = alice
        .wait_for("carol leaving", |e| {
            e.attr("from") == Some(format!("{ROOM}/Carol").as_str())
        })
        .await;
    assert_eq!(seen.attr("type"), Some("unavailable"));
    assert_eq!(item(&seen).attr("role"), Some("none"));

    // A client that goes away without leaving is taken out of the room:
    // the server ends its directed presence, and everyone sees it go.
    let mut dave = Occupant::login(&server, "dave", MUC).await;
    dave.join(ROOM, "Dave").await;
    alice
        .wait_for("dave entering", |e| {
            e.attr("from") == Some(format!("{ROOM}/Dave").as_str())
        })
        .await;
    dave.raw.close().await;
    drop(dave);
    let seen = alice
        .wait_for("dave leaving", |e| {
            e.attr("from") == Some(format!("{ROOM}/Dave").as_str())
        })
        .await;
    assert_eq!(seen.attr("type"), Some("unavailable"));

    // §6: the service lists the room; the room describes itself.
    let items = bob
        .iq(&format!("<iq type='get' id='@ID@' to='{MUC}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"))
        .await;
    assert!(
        items
            .to_xml_string()
            .contains(&format!("jid=\"{ROOM}\" name=\"Kitchen\"")),
        "{}",
        items.to_xml_string()
    );
    let info = carol
        .iq(&format!("<iq type='get' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
        .await
        .to_xml_string();
    for f in [
        "muc_public",
        "muc_temporary",
        "muc_semianonymous",
        "urn:xmpp:mam:2",
        "muc#roominfo",
    ] {
        assert!(info.contains(f), "{f} missing from {info}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_error() {
    let server = server(r#"max-occupants="3""#);
    let (mut alice, mut bob, mut carol) = users(&server).await;
    alice.create(ROOM, "Alice").await;

    // Speaking without being in the room.
    bob.say(ROOM, "let me in").await;
    let err = bob
        .wait_for("an error", |e| e.attr("type") == Some("error"))
        .await;
    assert_eq!(error_of(&err), e("modify", "not-acceptable"));

    // A password.
    alice
        .configure(
            ROOM,
            "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>\
             <field var='muc#roomconfig_roomsecret'><value>basil</value></field>",
        )
        .await;
    assert_eq!(
        bob.refused(ROOM, "Bob", "").await,
        e("auth", "not-authorized")
    );
    assert_eq!(
        bob.refused(ROOM, "Bob", "<password>thyme</password>").await,
        e("auth", "not-authorized")
    );
    bob.join_with(ROOM, "Bob", "<password>basil</password>")
        .await;

    // A nick in use; a nick the Nickname profile leaves empty (the
    // server's address check already refuses direction overrides and
    // invisible characters in any resource).
    assert_eq!(
        carol
            .refused(ROOM, "bob", "<password>basil</password>")
            .await,
        e("cancel", "conflict")
    );
    assert_eq!(
        carol
            .refused(ROOM, "   ", "<password>basil</password>")
            .await,
        e("modify", "jid-malformed")
    );

    // A ban.
    let r = alice
        .iq(&format!(
            "<iq type='set' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item affiliation='outcast' jid='carol@localhost'/></query></iq>"
        ))
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(
        carol
            .refused(ROOM, "Carol", "<password>basil</password>")
            .await,
        e("auth", "forbidden")
    );

    // Members only (bob is made a member first, or he would be removed
    // with 322).
    alice
        .iq(&format!(
            "<iq type='set' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item affiliation='member' jid='bob@localhost'/></query></iq>"
        ))
        .await;
    alice
        .configure(
            ROOM,
            "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
        )
        .await;
    let mut admin = Occupant::login(&server, "admin", MUC).await;
    assert_eq!(
        carol
            .refused(ROOM, "Carol", "<password>basil</password>")
            .await,
        e("auth", "forbidden"),
        "the ban comes first"
    );
    alice
        .iq(&format!(
            "<iq type='set' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item affiliation='none' jid='carol@localhost'/></query></iq>"
        ))
        .await;
    assert_eq!(
        carol
            .refused(ROOM, "Carol", "<password>basil</password>")
            .await,
        e("auth", "registration-required")
    );

    // A full room: the service allows three; the host's admin still
    // enters as the third, a member as the fourth does not.
    admin.join(ROOM, "Admin").await;
    alice
        .iq(&format!(
            "<iq type='set' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item affiliation='member' jid='carol@localhost'/></query></iq>"
        ))
        .await;
    assert_eq!(
        carol
            .refused(ROOM, "Carol", "<password>basil</password>")
            .await,
        e("wait", "service-unavailable")
    );

    // Configuring is for owners.
    let r = bob
        .iq(&format!("<iq type='get' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>"))
        .await;
    assert_eq!(error_of(&r), e("auth", "forbidden"));
}

async fn admin_set(u: &mut Occupant, item: &str) -> switchboard_xml::Element {
    u.iq(&format!(
        "<iq type='set' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>{item}</query></iq>"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_affiliations_and_moderation() {
    let server = server("");
    let (mut alice, mut bob, mut carol) = users(&server).await;
    kitchen(&mut alice, &mut bob, &mut carol).await;
    carol.drain().await;

    // §8.2: bob may not kick; alice kicks carol with a reason.
    let r = admin_set(&mut bob, "<item nick='Carol' role='none'/>").await;
    assert_eq!(error_of(&r), e("auth", "forbidden"));
    let r = admin_set(
        &mut alice,
        "<item nick='Carol' role='none'><reason>Too loud</reason></item>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    let own = carol.wait_for("the kick", |e| e.name == "presence").await;
    assert_eq!(codes(&own), vec![110, 307]);
    assert_eq!(
        item(&own)
            .child_text("reason", switchboard_integration_tests::muc::MUC_USER)
            .as_deref(),
        Some("Too loud")
    );
    let seen = bob.wait_for("carol kicked", |e| e.name == "presence").await;
    assert_eq!(codes(&seen), vec![307]);
    carol.quiet().await;

    // §8.4: voice taken away and given back.
    carol.join(ROOM, "Carol").await;
    admin_set(&mut alice, "<item nick='Carol' role='visitor'/>").await;
    carol.drain().await;
    carol.say(ROOM, "can you hear me").await;
    let err = carol
        .wait_for("an error", |e| e.attr("type") == Some("error"))
        .await;
    assert_eq!(error_of(&err), e("auth", "forbidden"));
    admin_set(&mut alice, "<item nick='Carol' role='participant'/>").await;

    // §9.6: only admins make moderators; a moderator may not kick the owner.
    admin_set(&mut alice, "<item nick='Bob' role='moderator'/>").await;
    let r = admin_set(&mut bob, "<item nick='Alice' role='none'/>").await;
    assert_eq!(error_of(&r), e("cancel", "not-allowed"));
    let r = admin_set(
        &mut bob,
        "<item affiliation='admin' jid='carol@localhost'/>",
    )
    .await;
    assert_eq!(error_of(&r), e("auth", "forbidden"));

    // §10.6: the last owner stays.
    let r = admin_set(
        &mut alice,
        "<item affiliation='member' jid='alice@localhost'/>",
    )
    .await;
    assert_eq!(error_of(&r), e("cancel", "conflict"));

    // §9.1: a ban removes carol with 301 and lists her.
    bob.drain().await;
    carol.drain().await;
    admin_set(
        &mut alice,
        "<item affiliation='outcast' jid='carol@localhost'><reason>Out</reason></item>",
    )
    .await;
    let own = carol.wait_for("the ban", |e| e.name == "presence").await;
    assert_eq!(codes(&own), vec![110, 301]);
    let list = alice
        .iq(&format!(
            "<iq type='get' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query></iq>"
        ))
        .await;
    assert!(list.to_xml_string().contains("jid=\"carol@localhost\""));

    // XEP-0425: a moderator retracts a message by its stanza-id.
    alice.drain().await;
    bob.say(ROOM, "oops").await;
    let m = alice.heard().await;
    let id = m
        .get_child("stanza-id", "urn:xmpp:sid:0")
        .unwrap()
        .attr("id")
        .unwrap()
        .to_string();
    let r = alice
        .iq(&format!(
            "<iq type='set' id='@ID@' to='{ROOM}'><moderate xmlns='urn:xmpp:message-moderate:1' id='{id}'>\
             <retract xmlns='urn:xmpp:message-retract:1'/><reason>Typo</reason></moderate></iq>"
        ))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml_string());
    let notice = bob
        .wait_for("the retraction", |e| {
            e.get_child("retract", "urn:xmpp:message-retract:1")
                .is_some()
        })
        .await;
    assert_eq!(
        notice
            .get_child("retract", "urn:xmpp:message-retract:1")
            .unwrap()
            .attr("id"),
        Some(id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_subject_archive_and_self_ping() {
    let server = server("");
    let (mut alice, mut bob, mut carol) = users(&server).await;
    alice.create(ROOM, "Alice").await;
    bob.join(ROOM, "Bob").await;
    alice.drain().await;
    for i in 1..=4 {
        bob.say(ROOM, &format!("line {i}")).await;
    }
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><subject>Dinner</subject></message>"
        ))
        .await;
    bob.drain().await;

    // §7.2.15: two lines of history, delayed, then the subject.
    let seq = carol
        .join_with(ROOM, "Carol", "<history maxstanzas='2'/>")
        .await;
    let bodies: Vec<String> = seq
        .iter()
        .filter_map(|m| m.child_text("body", "jabber:client"))
        .collect();
    assert_eq!(bodies, ["line 3", "line 4"]);
    assert!(seq
        .iter()
        .filter(|m| m.name == "message" && m.get_child("body", "jabber:client").is_some())
        .all(|m| m.get_child("delay", "urn:xmpp:delay").is_some()));
    let subject = seq.last().unwrap();
    assert_eq!(
        subject.child_text("subject", "jabber:client").as_deref(),
        Some("Dinner")
    );
    assert_eq!(subject.attr("from"), Some(format!("{ROOM}/Alice").as_str()));

    // XEP-0313 with RSM: the last two of the archive.
    carol
        .send(&format!(
            "<iq type='set' id='mam1' to='{ROOM}'><query xmlns='urn:xmpp:mam:2' queryid='f'>\
             <set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set></query></iq>"
        ))
        .await;
    let mut got = Vec::new();
    loop {
        let e = carol.next().await;
        if e.name == "iq" {
            assert_eq!(e.attr("type"), Some("result"), "{}", e.to_xml_string());
            assert!(e.get_child("fin", "urn:xmpp:mam:2").is_some());
            break;
        }
        got.push(e);
    }
    let archived: Vec<String> = got
        .iter()
        .filter_map(|m| m.get_child("result", "urn:xmpp:mam:2"))
        .filter_map(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
        .filter_map(|f| f.get_child("message", "jabber:client"))
        .filter_map(|m| m.child_text("body", "jabber:client"))
        .collect();
    assert_eq!(archived, ["line 3", "line 4"]);

    // XEP-0410: a self-ping is answered by the room; an outsider's is not.
    let r = carol
        .iq(&format!(
            "<iq type='get' id='@ID@' to='{ROOM}/Carol'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let mut admin = Occupant::login(&server, "admin", MUC).await;
    let r = admin
        .iq(&format!(
            "<iq type='get' id='@ID@' to='{ROOM}/Carol'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    assert_eq!(error_of(&r), e("modify", "not-acceptable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_and_registration() {
    let server = server("");
    let (mut alice, mut bob, mut carol) = users(&server).await;
    // Invitations and declines go to bare JIDs: everyone is available.
    alice.online().await;
    bob.online().await;
    carol.online().await;
    alice.create(ROOM, "Alice").await;
    alice
        .configure(
            ROOM,
            "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
        )
        .await;

    // §7.8.2: a mediated invitation makes bob a member of the
    // members-only room; carol declines hers.
    alice
        .send(&format!(
            "<message to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <invite to='bob@localhost'><reason>Dinner</reason></invite>\
             <invite to='carol@localhost'/></x></message>"
        ))
        .await;
    let inv = bob
        .wait_for("the invitation", |e| e.name == "message")
        .await;
    assert_eq!(inv.attr("from"), Some(ROOM));
    let x = inv
        .get_child("x", switchboard_integration_tests::muc::MUC_USER)
        .unwrap();
    assert_eq!(
        x.get_child("invite", switchboard_integration_tests::muc::MUC_USER)
            .unwrap()
            .attr("from"),
        Some("alice@localhost")
    );
    let seq = bob.join(ROOM, "Bob").await;
    let own = seq.iter().find(|p| codes(p).contains(&110)).unwrap();
    assert_eq!(item(own).attr("affiliation"), Some("member"));
    carol
        .wait_for("the invitation", |e| e.name == "message")
        .await;
    carol
        .send(&format!(
            "<message to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <decline to='alice@localhost'><reason>Busy</reason></decline></x></message>"
        ))
        .await;
    let d = alice
        .wait_for("the decline", |e| {
            e.name == "message" && e.to_xml_string().contains("decline")
        })
        .await;
    assert!(d.to_xml_string().contains("from=\"carol@localhost\""));

    // XEP-0249: a direct invitation goes from client to client.
    alice
        .send(&format!(
            "<message to='carol@localhost'><x xmlns='jabber:x:conference' jid='{ROOM}' reason='Come'/></message>"
        ))
        .await;
    let direct = carol
        .wait_for("a direct invitation", |e| {
            e.get_child("x", "jabber:x:conference").is_some()
        })
        .await;
    assert_eq!(
        direct
            .get_child("x", "jabber:x:conference")
            .unwrap()
            .attr("jid"),
        Some(ROOM)
    );

    // §7.10: bob registers "Robert"; nobody else may use it.
    let r = bob
        .iq(&format!(
            "<iq type='set' id='@ID@' to='{ROOM}'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
             <field var='muc#register_roomnick'><value>Robert</value></field></x></query></iq>"
        ))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml_string());
    alice
        .iq(&format!(
            "<iq type='set' id='@ID@' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item affiliation='member' jid='carol@localhost'/></query></iq>"
        ))
        .await;
    assert_eq!(
        carol.refused(ROOM, "robert", "").await,
        e("cancel", "conflict")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_rooms_survive_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let mut srv = builder("", Some(home.path())).start();
    let (mut alice, mut bob, mut carol) = users(&srv).await;
    kitchen(&mut alice, &mut bob, &mut carol).await;
    alice
        .configure(
            ROOM,
            "<field var='muc#roomconfig_persistentroom'><value>1</value></field>\
             <field var='muc#roomconfig_roomname'><value>Kitchen</value></field>",
        )
        .await;
    let r = admin_set(
        &mut alice,
        "<item affiliation='outcast' jid='carol@localhost'/>",
    )
    .await;
    assert_eq!(r.attr("type"), Some("result"));
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><subject>Kept</subject></message>"
        ))
        .await;
    alice.drain().await;
    drop((alice, bob, carol));
    srv.terminate();

    let srv = with_users("", Some(home.path()), false).start();
    let (mut alice, mut bob, mut carol) = users(&srv).await;
    let seq = bob.join(ROOM, "Bob").await;
    assert_eq!(
        seq.last()
            .unwrap()
            .child_text("subject", "jabber:client")
            .as_deref(),
        Some("Kept")
    );
    assert!(
        !codes(&seq[seq.len() - 2]).contains(&201),
        "not created anew"
    );
    assert_eq!(
        carol.refused(ROOM, "Carol", "").await,
        e("auth", "forbidden")
    );
    let seq = alice.join(ROOM, "Alice").await;
    let own = seq.iter().find(|p| codes(p).contains(&110)).unwrap();
    assert_eq!(item(own).attr("affiliation"), Some("owner"));
}

/// A `switchboard component` process, killed when dropped.
struct Component(Child);

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_service_runs_as_a_component() {
    const SECRET: &str = "muc-component-secret";
    let server = ServerBuilder::new()
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:0"/></listen>"#)
        .also(&format!(
            r#"<service id="{MUC}" type="external" secret="{SECRET}"/>"#
        ))
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .user("carol@localhost", "carol-pw")
        .start();
    let home = tempfile::tempdir().unwrap();
    let _component = Component(
        Command::new(binary())
            .arg("-H")
            .arg(home.path())
            .args(["component", MUC, "--type", "muc", "--server"])
            .arg(server.listener("component").to_string())
            .env("SWITCHBOARD_COMPONENT_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run switchboard component"),
    );
    let (mut alice, mut bob, mut carol) = users(&server).await;
    // Until the component attaches, the service bounces.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = bob
            .iq(&format!("<iq type='get' id='@ID@' to='{MUC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
            .await;
        if r.attr("type") == Some("result") {
            break;
        }
        assert!(Instant::now() < deadline, "the component never attached");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    kitchen(&mut alice, &mut bob, &mut carol).await;
    bob.say(ROOM, "over the component").await;
    for u in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(
            u.heard()
                .await
                .child_text("body", "jabber:client")
                .as_deref(),
            Some("over the component")
        );
    }
    let r = admin_set(&mut alice, "<item nick='Carol' role='none'/>").await;
    assert_eq!(r.attr("type"), Some("result"));
    let own = carol.wait_for("the kick", |e| e.name == "presence").await;
    assert_eq!(codes(&own), vec![110, 307]);
    // The component keeps its rooms in its own home.
    assert!(home.path().join("spool").is_dir());
}
