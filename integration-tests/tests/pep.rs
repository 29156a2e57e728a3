//! Personal eventing as users see it, against the real binary with the
//! shared scripted client: entity capabilities deciding who hears what
//! (XEP-0115, XEP-0163), avatars through PEP and vCards (XEP-0084,
//! XEP-0153, XEP-0398), bookmarks through PEP and private XML (XEP-0402,
//! XEP-0411), and the last published item on login.
//!
//! "Must not arrive" is always a barrier taken once the server has
//! provably finished with the stanza that could have caused it (the
//! publisher's own round trip through its account's actor first).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use switchboard_integration_tests::client::reset_trace;
use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{Client, ServerBuilder, TestServer, HOST};

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const DATA: &str = "urn:xmpp:avatar:data";
const METADATA: &str = "urn:xmpp:avatar:metadata";
const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
const NICK: &str = "http://jabber.org/protocol/nick";

fn password(user: &str) -> String {
    format!("{user}-pep-pw")
}

fn start(users: &[&str]) -> TestServer {
    reset_trace();
    users
        .iter()
        .fold(ServerBuilder::new(), |b, u| {
            b.user(&format!("{u}@{HOST}"), &password(u))
        })
        .start()
}

/// Logged in and available (no capabilities yet).
async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = Client::login(server, user, &password(user), resource).await;
    c.available(0, "").await;
    c
}

/// Drops everything that arrived up to a round trip through both
/// accounts' actors and the router: the roster pushes and presence a
/// subscription handshake produces.
async fn drain(a: &mut Client, b: &mut Client) {
    let (aj, bj) = (a.bare(), b.bare());
    for _ in 0..2 {
        a.sync_account().await;
        a.sync_account_of(&bj).await;
        b.sync_account().await;
        b.sync_account_of(&aj).await;
        a.sync().await;
        b.sync().await;
    }
    a.take_all(|_| true);
    b.take_all(|_| true);
}

/// Lets every client's account actor finish (presence broadcasts are
/// routed by then), reads what that brought, and drops the presence
/// among it: the state of everyone's contacts is not what these tests
/// look at.
async fn quiet(clients: &mut [&mut Client]) {
    for c in clients.iter_mut() {
        c.sync_account().await;
    }
    for c in clients.iter_mut() {
        c.sync().await;
        c.take_all(|e| local_name(e) == "presence");
    }
}

/// `a` and `b` subscribe to each other's presence (`both`), through the
/// protocol, both online.
async fn befriend(a: &mut Client, b: &mut Client) {
    let (aj, bj) = (a.bare(), b.bare());
    let request = |from: String| {
        move |e: &str| {
            local_name(e) == "presence"
                && attr(e, "type").as_deref() == Some("subscribe")
                && attr(e, "from").is_some_and(|f| f == from)
        }
    };
    a.send(&format!("<presence to='{bj}' type='subscribe'/>"))
        .await;
    b.expect("the subscription request", request(aj.clone()))
        .await;
    b.send(&format!("<presence to='{aj}' type='subscribed'/>"))
        .await;
    b.send(&format!("<presence to='{aj}' type='subscribe'/>"))
        .await;
    a.expect("the subscription request", request(bj.clone()))
        .await;
    a.send(&format!("<presence to='{bj}' type='subscribed'/>"))
        .await;
    drain(a, b).await;
}

/// The disco#info a client answers with: one identity, caps, disco, and
/// `NODE+notify` for each node it wants.
fn disco_info(nodes: &[&str]) -> (String, String) {
    let mut features = vec![
        "http://jabber.org/protocol/caps".to_string(),
        "http://jabber.org/protocol/disco#info".to_string(),
    ];
    features.extend(nodes.iter().map(|n| format!("{n}+notify")));
    features.sort();
    let mut s = String::from("client/pc//switchboard-tests<");
    for f in &features {
        s.push_str(f);
        s.push('<');
    }
    let ver = B64.encode(Sha1::digest(s.as_bytes()));
    let mut query =
        String::from("<identity category='client' type='pc' name='switchboard-tests'/>");
    for f in &features {
        query.push_str(&format!("<feature var='{f}'/>"));
    }
    (ver, query)
}

/// Sends presence with capabilities that want notifications of `nodes`,
/// and answers the server's disco#info query if it asks (it does not for
/// a `ver` it has verified before).
async fn advertise(c: &mut Client, nodes: &[&str]) {
    let (ver, query) = disco_info(nodes);
    let node = "https://switchboard.example/tests";
    let caps = format!(
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{node}' ver='{ver}'/>"
    );
    c.send(&format!("<presence>{caps}</presence>")).await;
    let (me, v) = (c.jid().to_owned(), ver.clone());
    c.expect(
        "my own presence with capabilities, shown back to me",
        move |e: &str| {
            local_name(e) == "presence"
                && attr(e, "type").is_none()
                && attr(e, "from").as_deref() == Some(me.as_str())
                && attr(e, "to").as_deref() == Some(me.as_str())
                && e.contains(&v)
        },
    )
    .await;
    let asked = c.take_all(|e| {
        local_name(e) == "iq"
            && attr(e, "type").as_deref() == Some("get")
            && attr(e, "from").as_deref() == Some(HOST)
            && e.contains("http://jabber.org/protocol/disco#info")
    });
    for q in asked {
        assert!(
            q.contains(&format!("node='{node}#{ver}'"))
                || q.contains(&format!("node=\"{node}#{ver}\"")),
            "the query names node#ver: {q}"
        );
        let id = attr(&q, "id").unwrap();
        c.send(&format!(
            "<iq type='result' id='{id}' to='{HOST}'><query xmlns='http://jabber.org/protocol/disco#info' node='{node}#{ver}'>{query}</query></iq>"
        ))
        .await;
    }
    c.sync().await;
}

/// A headline event from `from` about `node` naming `item`.
fn event(from: &str, node: &str, item: &str) -> impl Fn(&str) -> bool {
    let (from, node, item) = (from.to_owned(), node.to_owned(), item.to_owned());
    move |e: &str| {
        local_name(e) == "message"
            && attr(e, "type").as_deref() == Some("headline")
            && attr(e, "from").as_deref() == Some(from.as_str())
            && e.contains(EVENT)
            && (e.contains(&format!("node='{node}'")) || e.contains(&format!("node=\"{node}\"")))
            && (e.contains(&format!("id='{item}'")) || e.contains(&format!("id=\"{item}\"")))
    }
}

/// Available presence from `from` carrying the avatar hash `hash`.
fn presence_with_hash(from: &str, hash: &str) -> impl Fn(&str) -> bool {
    let (from, hash) = (from.to_owned(), hash.to_owned());
    move |e: &str| {
        local_name(e) == "presence"
            && attr(e, "type").is_none()
            && attr(e, "from").as_deref() == Some(from.as_str())
            && e.contains("vcard-temp:x:update")
            && e.contains(&format!("<photo>{hash}</photo>"))
    }
}

fn assert_result(answer: &str) {
    assert_eq!(attr(answer, "type").as_deref(), Some("result"), "{answer}");
}

/// A small "image" and its XEP-0084 id.
fn image(text: &str) -> (String, String) {
    let bytes = text.as_bytes();
    let hash: String = Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (hash, B64.encode(bytes))
}

fn publish(node: &str, id: &str, payload: &str) -> String {
    format!(
        "<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{id}'>{payload}</item></publish></pubsub>"
    )
}

#[tokio::test]
async fn an_avatar_reaches_the_contact_that_asked_for_it_and_not_the_one_that_did_not() {
    let server = start(&["alice", "bob", "carol"]);
    let mut alice = online(&server, "alice", "desk").await;
    let mut bob = online(&server, "bob", "phone").await;
    let mut carol = online(&server, "carol", "laptop").await;
    befriend(&mut alice, &mut bob).await;
    befriend(&mut alice, &mut carol).await;
    advertise(&mut bob, &[METADATA]).await;
    advertise(&mut carol, &[NICK]).await;
    advertise(&mut alice, &[]).await;
    quiet(&mut [&mut alice, &mut bob, &mut carol]).await;

    let (hash, b64) = image("a picture of alice");
    let answer = alice
        .iq(
            "set",
            None,
            &publish(DATA, &hash, &format!("<data xmlns='{DATA}'>{b64}</data>")),
        )
        .await;
    assert_result(&answer);
    let metadata = format!(
        "<metadata xmlns='{METADATA}'><info bytes='18' id='{hash}' type='image/png'/></metadata>"
    );
    assert_result(
        &alice
            .iq("set", None, &publish(METADATA, &hash, &metadata))
            .await,
    );

    bob.expect(
        "the avatar metadata notification",
        event("alice@localhost", METADATA, &hash),
    )
    .await;
    // XEP-0398: the avatar is now the vCard photo, and alice's presence
    // goes out again with its hash, to both contacts and to herself.
    let from = alice.jid().to_owned();
    bob.expect(
        "alice's presence with the new hash",
        presence_with_hash(&from, &hash),
    )
    .await;
    carol
        .expect(
            "alice's presence with the new hash",
            presence_with_hash(&from, &hash),
        )
        .await;
    alice
        .expect(
            "her own presence with the new hash",
            presence_with_hash(&from, &hash),
        )
        .await;
    // Alice's actor has finished with the publication: carol, whose
    // client wants no avatars, got no notification.
    alice.sync_account().await;
    carol.barrier().await;
    bob.barrier().await;
    alice.barrier().await;

    // Bob fetches the image itself.
    let items = bob
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{DATA}'/></pubsub>"),
        )
        .await;
    assert_result(&items);
    assert!(items.contains(&b64), "{items}");
}

#[tokio::test]
async fn a_vcard_photo_shows_up_as_a_presence_hash_and_a_pep_avatar() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk").await;
    let mut bob = online(&server, "bob", "phone").await;
    befriend(&mut alice, &mut bob).await;
    advertise(&mut bob, &[METADATA]).await;
    advertise(&mut alice, &[]).await;
    quiet(&mut [&mut alice, &mut bob]).await;

    let (hash, b64) = image("a photo in a vCard");
    let vcard = format!(
        "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>{b64}</BINVAL></PHOTO></vCard>"
    );
    assert_result(&alice.iq("set", None, &vcard).await);
    let from = alice.jid().to_owned();
    bob.expect(
        "the avatar metadata notification",
        event("alice@localhost", METADATA, &hash),
    )
    .await;
    bob.expect(
        "alice's presence with the photo's hash",
        presence_with_hash(&from, &hash),
    )
    .await;
    alice
        .expect(
            "her own presence with the photo's hash",
            presence_with_hash(&from, &hash),
        )
        .await;
    let items = bob
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{METADATA}'/></pubsub>"),
        )
        .await;
    assert!(
        items.contains("image/jpeg") && items.contains(&hash),
        "{items}"
    );
    let data = bob
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{DATA}'/></pubsub>"),
        )
        .await;
    assert!(data.contains(&b64), "{data}");
    // A later presence of alice's (her client says nothing of avatars)
    // carries the hash too.
    alice.send("<presence><show>away</show></presence>").await;
    bob.expect(
        "alice's next presence, with the hash",
        presence_with_hash(&from, &hash),
    )
    .await;
    alice
        .expect("her own next presence", presence_with_hash(&from, &hash))
        .await;
    alice.sync_account().await;
    bob.barrier().await;
    alice.barrier().await;
}

#[tokio::test]
async fn bookmarks_set_through_pep_are_read_through_private_xml_and_the_other_way_round() {
    let server = start(&["alice"]);
    let mut modern = online(&server, "alice", "modern").await;
    let mut legacy = online(&server, "alice", "legacy").await;
    advertise(&mut modern, &[BOOKMARKS]).await;
    advertise(&mut legacy, &[]).await;
    quiet(&mut [&mut modern, &mut legacy]).await;

    let options = "<publish-options><x xmlns='jabber:x:data' type='submit'>\
        <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
        <field var='pubsub#persist_items'><value>true</value></field>\
        <field var='pubsub#max_items'><value>max</value></field>\
        <field var='pubsub#send_last_published_item'><value>never</value></field>\
        <field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>";
    let add = format!(
        "<pubsub xmlns='{PUBSUB}'><publish node='{BOOKMARKS}'><item id='play@conference.localhost'>\
         <conference xmlns='{BOOKMARKS}' name='The Play' autojoin='true'><nick>JC</nick></conference>\
         </item></publish>{options}</pubsub>"
    );
    assert_result(&modern.iq("set", None, &add).await);
    modern
        .expect(
            "its own bookmark notification",
            event("alice@localhost", BOOKMARKS, "play@conference.localhost"),
        )
        .await;
    let private = legacy
        .iq(
            "get",
            None,
            "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>",
        )
        .await;
    assert_result(&private);
    assert!(
        private.contains("jid='play@conference.localhost'")
            || private.contains("jid=\"play@conference.localhost\""),
        "{private}"
    );
    assert!(private.contains("<nick>JC</nick>"), "{private}");

    // The legacy client replaces the list: the new room is published and
    // the old one retracted, and the modern client hears of both.
    let set = "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>\
        <conference jid='orchard@conference.localhost' name='The Orchard' autojoin='true'><nick>JC</nick></conference>\
        </storage></query>";
    assert_result(&legacy.iq("set", None, set).await);
    modern
        .expect(
            "the new bookmark",
            event("alice@localhost", BOOKMARKS, "orchard@conference.localhost"),
        )
        .await;
    modern
        .expect("the retraction of the old one", |e: &str| {
            local_name(e) == "message"
                && e.contains("<retract")
                && e.contains("play@conference.localhost")
        })
        .await;
    let items = modern
        .iq(
            "get",
            None,
            &format!("<pubsub xmlns='{PUBSUB}'><items node='{BOOKMARKS}'/></pubsub>"),
        )
        .await;
    assert!(items.contains("orchard@conference.localhost"), "{items}");
    assert!(!items.contains("play@conference.localhost"), "{items}");

    // A bookmark for a nonsense room JID: the XEP's error, nothing kept,
    // nobody told.
    let bad = add.replace("play@conference.localhost", "conference.localhost");
    let answer = modern.iq("set", None, &bad).await;
    assert_eq!(attr(&answer, "type").as_deref(), Some("error"), "{answer}");
    assert!(
        answer.contains("bad-request") && answer.contains("invalid-payload"),
        "{answer}"
    );
    modern.sync_account().await;
    legacy.barrier().await;
    modern.barrier().await;
}

#[tokio::test]
async fn the_last_published_item_arrives_on_login() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk").await;
    let mut bob = online(&server, "bob", "phone").await;
    befriend(&mut alice, &mut bob).await;
    bob.logout(&server).await;
    quiet(&mut [&mut alice]).await;
    let nick = format!("<nick xmlns='{NICK}'>Alice in Wonderland</nick>");
    assert_result(&alice.iq("set", None, &publish(NICK, "n1", &nick)).await);

    let mut bob = Client::login(&server, "bob", &password("bob"), "laptop").await;
    advertise(&mut bob, &[NICK]).await;
    let got = bob
        .expect(
            "alice's nickname, published while away",
            event("alice@localhost", NICK, "n1"),
        )
        .await;
    assert!(got.contains("Alice in Wonderland"), "{got}");
    assert!(
        got.contains("urn:xmpp:delay"),
        "stamped with when it was published: {got}"
    );
    // One copy only, and nothing else but presence.
    quiet(&mut [&mut alice, &mut bob]).await;
    bob.sync_account_of("alice@localhost").await;
    bob.barrier().await;
}
