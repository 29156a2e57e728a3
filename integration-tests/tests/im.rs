//! Instant messaging and presence (RFC 6121) as users see it, driven from
//! outside with scripted raw XML against the real binary:
//!
//! * rosters: add, edit, remove, pushes to every interested resource,
//!   versioning, and each refused set;
//! * subscriptions: the observable transitions of RFC 6121 Appendix A
//!   between two local users, checking both what the other side receives
//!   (or must not receive) and both rosters afterwards;
//! * presence: initial broadcast, probes, own resources, directed presence
//!   and the unavailable presence a session leaves behind however it ends;
//! * messages: full and bare JIDs, priorities, offline storage with delay
//!   stamps, unknown recipients, headlines, the offline quota;
//! * account data: vCard, private XML, last activity, password change.
//!
//! Every test runs its own server and uses the shared [`Client`]: every
//! stanza a client receives must be expected, and "must not arrive" is a
//! barrier taken once the server has provably finished with the stanza
//! that could have caused it (the sender's own round trip through the
//! actor that handled it, then the receiver's). When a test fails, the
//! stanza trace of all its clients is printed.

use std::time::{SystemTime, UNIX_EPOCH};

use switchboard_integration_tests::client::{reset_trace, trace};
use switchboard_integration_tests::raw::{attr, between, inner_text, local_name};
use switchboard_integration_tests::{Client, ServerBuilder, TestServer, HOST};

const ROSTER: &str = "jabber:iq:roster";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const CAROL: &str = "carol@localhost";

fn bare(user: &str) -> String {
    format!("{user}@{HOST}")
}

fn password(user: &str) -> String {
    format!("{user}-secret-pw")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A fresh server with `users` (password: [`password`]).
fn start(users: &[&str]) -> TestServer {
    reset_trace();
    users
        .iter()
        .fold(ServerBuilder::new(), |b, u| b.user(&bare(u), &password(u)))
        .start()
}

// ---------------------------------------------------------------------------
// Roster items as a client reads them.

#[derive(Debug, Clone, PartialEq)]
struct Item {
    jid: String,
    subscription: String,
    ask: Option<String>,
    approved: bool,
    name: Option<String>,
    groups: Vec<String>,
}

/// Where a start tag `<name …>` / `<name/>` begins in `s`.
fn find_tag(s: &str, name: &str) -> Option<usize> {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(i) = s[from..].find(&open) {
        let at = from + i;
        match s[at + open.len()..].chars().next() {
            Some(' ' | '/' | '>' | '\t' | '\n' | '\r') => return Some(at),
            _ => from = at + open.len(),
        }
    }
    None
}

/// Every `<item/>` in a roster result or push, in document order.
fn items(xml: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = find_tag(rest, "item") {
        let el = &rest[i..];
        let Some(tag_end) = el.find('>') else { break };
        let (text, used) = if el[..=tag_end].ends_with("/>") {
            (&el[..=tag_end], tag_end + 1)
        } else {
            let end = el
                .find("</item>")
                .map(|j| j + "</item>".len())
                .unwrap_or(el.len());
            (&el[..end], end)
        };
        let mut groups = Vec::new();
        let mut g = text;
        while let Some(j) = find_tag(g, "group") {
            let ge = &g[j..];
            let Some(end) = ge.find('>') else { break };
            if ge[..=end].ends_with("/>") {
                groups.push(String::new());
                g = &ge[end + 1..];
            } else {
                let close = ge.find("</group>").unwrap_or(ge.len());
                groups.push(ge[end + 1..close].to_owned());
                g = &ge[close..];
            }
        }
        out.push(Item {
            jid: attr(text, "jid").unwrap_or_default(),
            subscription: attr(text, "subscription").unwrap_or_else(|| "none".into()),
            ask: attr(text, "ask"),
            approved: attr(text, "approved").is_some_and(|a| a == "true" || a == "1"),
            name: attr(text, "name"),
            groups,
        });
        rest = &el[used..];
    }
    out
}

/// A roster item's subscription state in one word, as the user sees it:
/// `none`, `to`, `from`, `both`, plus `+ask` (pending out) and `+approved`
/// (pre-approval). No item (or a removal push) reads as `none`.
fn describe(item: Option<&Item>) -> String {
    match item {
        None => "none".into(),
        Some(i) if i.subscription == "remove" => "none".into(),
        Some(i) => {
            let mut s = i.subscription.clone();
            if i.ask.as_deref() == Some("subscribe") {
                s.push_str("+ask");
            }
            if i.approved {
                s.push_str("+approved");
            }
            s
        }
    }
}

/// The `ver` of the `<query/>` in a roster result or push.
fn query_ver(el: &str) -> Option<String> {
    let i = find_tag(el, "query")?;
    attr(&el[i..], "ver")
}

// ---------------------------------------------------------------------------
// Stanza predicates.

fn is_push(e: &str) -> bool {
    local_name(e) == "iq" && attr(e, "type").as_deref() == Some("set") && e.contains(ROSTER)
}

/// A roster push for `contact` (any state).
fn push_for(contact: &str) -> impl Fn(&str) -> bool {
    let contact = contact.to_owned();
    move |e: &str| is_push(e) && items(e).iter().any(|i| i.jid == contact)
}

/// A roster push for `contact` whose item reads as `state` (see [`describe`]).
fn push_with(contact: &str, state: &str) -> impl Fn(&str) -> bool {
    let contact = contact.to_owned();
    let state = state.to_owned();
    move |e: &str| {
        is_push(e)
            && items(e)
                .iter()
                .any(|i| i.jid == contact && describe(Some(i)) == state)
    }
}

/// Presence from exactly `from`, of type `ty` (`None`: available).
fn presence_from(from: &str, ty: Option<&str>) -> impl Fn(&str) -> bool {
    let from = from.to_owned();
    let ty = ty.map(str::to_owned);
    move |e: &str| {
        local_name(e) == "presence"
            && attr(e, "from").as_deref() == Some(&from)
            && attr(e, "type") == ty
    }
}

/// Available presence from exactly `from` carrying `<status>status</status>`.
fn status_from(from: &str, status: &str) -> impl Fn(&str) -> bool {
    let p = presence_from(from, None);
    let s = format!("<status>{status}</status>");
    move |e: &str| p(e) && e.contains(&s)
}

/// Presence of type `ty` from `account` or any of its resources.
fn presence_of_account(account: &str, ty: Option<&str>) -> impl Fn(&str) -> bool {
    let account = account.to_owned();
    let ty = ty.map(str::to_owned);
    move |e: &str| {
        local_name(e) == "presence"
            && attr(e, "type") == ty
            && attr(e, "from").is_some_and(|f| {
                f == account
                    || f.strip_prefix(account.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
    }
}

/// A message with `<body>body</body>`.
fn message_with(body: &str) -> impl Fn(&str) -> bool {
    let b = format!("<body>{body}</body>");
    move |e: &str| {
        local_name(e) == "message" && attr(e, "type").as_deref() != Some("error") && e.contains(&b)
    }
}

/// A message whose body contains `part`.
fn message_containing(part: &str) -> impl Fn(&str) -> bool {
    let part = part.to_owned();
    move |e: &str| {
        local_name(e) == "message"
            && attr(e, "type").as_deref() != Some("error")
            && between(e, "<body>", "</body>").is_some_and(|b| b.contains(&part))
    }
}

/// Any stanza of type `error` with `id`.
fn error_with_id(id: &str) -> impl Fn(&str) -> bool {
    let id = id.to_owned();
    move |e: &str| {
        attr(e, "type").as_deref() == Some("error") && attr(e, "id").as_deref() == Some(&id)
    }
}

/// Any stanza with `id`.
fn with_id(id: &str) -> impl Fn(&str) -> bool {
    let id = id.to_owned();
    move |e: &str| attr(e, "id").as_deref() == Some(&id)
}

fn any_error_message(e: &str) -> bool {
    local_name(e) == "message" && attr(e, "type").as_deref() == Some("error")
}

#[track_caller]
fn assert_result(reply: &str) {
    assert_eq!(
        attr(reply, "type").as_deref(),
        Some("result"),
        "expected a result: {reply}"
    );
}

#[track_caller]
fn assert_error(reply: &str, condition: &str) {
    assert_eq!(
        attr(reply, "type").as_deref(),
        Some("error"),
        "expected a <{condition}/> error: {reply}"
    );
    assert!(
        reply.contains(&format!("<{condition}")) && reply.contains(STANZAS),
        "expected a <{condition}/> error: {reply}"
    );
}

// ---------------------------------------------------------------------------
// The shared client, with the roster and presence vocabulary of these tests.

/// Logs in as `user` and binds `resource`; nothing else.
async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    Client::login(server, user, &password(user), resource).await
}

/// Logs in, asks for the roster (so roster pushes come) and sends initial
/// presence with `priority`; returns once the server has shown that
/// presence back to this resource.
async fn online(server: &TestServer, user: &str, resource: &str, priority: i8) -> Client {
    Client::online(server, user, &password(user), resource, priority).await
}

/// What these tests do with a [`Client`] beyond sending and expecting.
trait Im {
    async fn roster_get(&mut self, ver: Option<&str>) -> String;
    async fn roster(&mut self) -> Vec<Item>;
    async fn roster_set(&mut self, item: &str) -> String;
    async fn state_of(&mut self, contact: &str) -> String;
    async fn assert_state(&mut self, contact: &str, want: &str);
    async fn expect_push(&mut self, contact: &str, state: &str) -> Item;
    async fn expect_subscription(&mut self, account: &str, ty: &str) -> String;
    async fn update(&mut self, status: &str);
    async fn subscription(&mut self, to: &str, ty: &str);
    async fn chat(&mut self, to: &str, id: &str, body: &str);
}

impl Im for Client {
    async fn roster_get(&mut self, ver: Option<&str>) -> String {
        let ver = ver.map(|v| format!(" ver='{v}'")).unwrap_or_default();
        self.iq("get", None, &format!("<query xmlns='{ROSTER}'{ver}/>"))
            .await
    }

    async fn roster(&mut self) -> Vec<Item> {
        let r = self.roster_get(None).await;
        if attr(&r, "type").as_deref() != Some("result") {
            self.fail(&format!("roster get failed: {r}"));
        }
        items(&r)
    }

    async fn roster_set(&mut self, item: &str) -> String {
        self.iq(
            "set",
            None,
            &format!("<query xmlns='{ROSTER}'>{item}</query>"),
        )
        .await
    }

    /// The roster's view of `contact` in one word (see [`describe`]).
    async fn state_of(&mut self, contact: &str) -> String {
        let items = self.roster().await;
        describe(items.iter().find(|i| i.jid == contact))
    }

    async fn assert_state(&mut self, contact: &str, want: &str) {
        let got = self.state_of(contact).await;
        if got != want {
            self.fail(&format!(
                "roster item {contact}: expected {want:?}, got {got:?}"
            ));
        }
    }

    /// Waits for a roster push for `contact` whose item reads as `state`.
    async fn expect_push(&mut self, contact: &str, state: &str) -> Item {
        let push = self
            .expect(
                &format!("a roster push for {contact} showing {state:?}"),
                push_with(contact, state),
            )
            .await;
        items(&push)
            .into_iter()
            .find(|i| i.jid == contact)
            .expect("matched")
    }

    /// Waits for a subscription stanza of type `ty` from `account` and
    /// checks that it comes from the bare JID (RFC 6121 §3.1.2 and alike).
    async fn expect_subscription(&mut self, account: &str, ty: &str) -> String {
        let el = self
            .expect(
                &format!("presence type={ty} from {account}"),
                presence_of_account(account, Some(ty)),
            )
            .await;
        if attr(&el, "from").as_deref() != Some(account) {
            self.fail(&format!(
                "a routed {ty} must come from the bare JID {account}: {el}"
            ));
        }
        el
    }

    /// A presence update with a status text (priority 0).
    async fn update(&mut self, status: &str) {
        self.available(0, &format!("<status>{status}</status>"))
            .await;
    }

    async fn subscription(&mut self, to: &str, ty: &str) {
        self.send(&format!("<presence to='{to}' type='{ty}'/>"))
            .await;
    }

    async fn chat(&mut self, to: &str, id: &str, body: &str) {
        self.send(&format!(
            "<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>"
        ))
        .await;
    }
}

/// `user` asks for `contact`'s presence and `contact` approves; both are
/// online and have asked for their rosters. Returns once each has
/// everything the exchange sends it: `user` its pending push, the
/// approval, the push showing the subscription and `contact`'s presence;
/// `contact` the request and its own push.
async fn grant(user: &mut Client, contact: &mut Client) {
    let (u, c) = (user.bare(), contact.bare());
    user.subscription(&c, "subscribe").await;
    let pending = {
        let c = c.clone();
        move |e: &str| {
            is_push(e)
                && items(e)
                    .iter()
                    .any(|i| i.jid == c && i.ask.as_deref() == Some("subscribe"))
        }
    };
    user.expect(&format!("a roster push showing {u} asking {c}"), pending)
        .await;
    contact.expect_subscription(&u, "subscribe").await;
    contact.subscription(&u, "subscribed").await;
    user.expect_subscription(&c, "subscribed").await;
    let subscribed = {
        let c = c.clone();
        move |e: &str| {
            is_push(e)
                && items(e).iter().any(|i| {
                    i.jid == c
                        && matches!(i.subscription.as_str(), "to" | "both")
                        && i.ask.is_none()
                })
        }
    };
    user.expect(
        &format!("a roster push showing {u} subscribed to {c}"),
        subscribed,
    )
    .await;
    let cj = contact.jid().to_owned();
    user.expect(
        "the contact's presence after the approval",
        presence_from(&cj, None),
    )
    .await;
    let granted = move |e: &str| {
        is_push(e)
            && items(e)
                .iter()
                .any(|i| i.jid == u && matches!(i.subscription.as_str(), "from" | "both"))
    };
    contact
        .expect("a roster push showing the granted subscription", granted)
        .await;
}

/// alice and bob, both online as alice/desk and bob/phone, subscribed to
/// each other (`both` on each side), with nothing left unread.
async fn mutual(server: &TestServer) -> (Client, Client) {
    let mut alice = online(server, "alice", "desk", 0).await;
    let mut bob = online(server, "bob", "phone", 0).await;
    grant(&mut alice, &mut bob).await;
    grant(&mut bob, &mut alice).await;
    alice.assert_state(BOB, "both").await;
    bob.assert_state(ALICE, "both").await;
    settle(&mut alice, &mut bob).await;
    (alice, bob)
}

/// Both accounts' actors have finished with everything either client
/// sent, and neither client got anything it did not expect.
async fn settle(a: &mut Client, b: &mut Client) {
    a.sync_account().await;
    b.account_barrier().await;
    a.account_barrier().await;
}

// ===========================================================================
// 1. Rosters

#[tokio::test]
async fn roster_items_are_added_edited_pushed_versioned_and_removed() {
    let server = start(&["alice", "bob"]);
    let mut one = login(&server, "alice", "one").await;
    let mut two = login(&server, "alice", "two").await;
    // A resource that never asks for the roster gets no pushes.
    let mut three = login(&server, "alice", "three").await;

    let first = one.roster_get(None).await;
    assert_result(&first);
    assert!(
        items(&first).is_empty(),
        "a new account's roster is empty: {first}"
    );
    let v0 = query_ver(&first).expect("the roster carries a version");
    two.roster_get(None).await;

    // A client whose cached copy is current gets an empty result.
    let same = one.roster_get(Some(&v0)).await;
    assert_result(&same);
    assert!(
        !same.contains("<query"),
        "RFC 6121 §2.6.3: empty result when current: {same}"
    );

    // Add with a name and two groups: pushed to both interested resources.
    let r = one
        .roster_set(
            "<item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item>",
        )
        .await;
    assert_result(&r);
    let mut v1 = String::new();
    for c in [&mut one, &mut two] {
        let push = c.expect("the push of the new item", push_for(BOB)).await;
        let its = items(&push);
        assert_eq!(its.len(), 1, "a push carries one item: {push}");
        let it = &its[0];
        assert_eq!(it.name.as_deref(), Some("Bob"), "{push}");
        assert_eq!(it.groups, ["Friends", "Work"], "{push}");
        assert_eq!(describe(Some(it)), "none", "{push}");
        v1 = query_ver(&push).expect("a push carries the new version");
        assert_ne!(v1, v0, "the version changes with the roster: {push}");
    }
    // alice's actor made the pushes; three's barrier goes through it.
    three.account_barrier().await;

    // Versioning: the old version gets the whole roster with the new
    // version; the new version gets an empty result.
    let full = one.roster_get(Some(&v0)).await;
    assert_result(&full);
    assert_eq!(query_ver(&full).as_deref(), Some(v1.as_str()), "{full}");
    let its = items(&full);
    assert_eq!(its.len(), 1, "{full}");
    assert_eq!(its[0].jid, BOB, "{full}");
    let current = one.roster_get(Some(&v1)).await;
    assert_result(&current);
    assert!(!current.contains("<item"), "{current}");

    // Edit: name and groups replaced.
    let r = one
        .roster_set("<item jid='bob@localhost' name='Robert'><group>Friends</group></item>")
        .await;
    assert_result(&r);
    for c in [&mut one, &mut two] {
        let push = c
            .expect("the push of the edit", |e: &str| {
                push_for(BOB)(e) && e.contains("Robert")
            })
            .await;
        let it = &items(&push)[0];
        assert_eq!(it.groups, ["Friends"], "{push}");
    }
    let its = one.roster().await;
    let bob = its.iter().find(|i| i.jid == BOB).expect("bob is there");
    assert_eq!(bob.name.as_deref(), Some("Robert"));
    assert_eq!(bob.groups, ["Friends"]);

    // A client cannot set the subscription state (RFC 6121 §2.1.2.5).
    let r = one
        .roster_set(
            "<item jid='carol@localhost' name='Carol' subscription='both' ask='subscribe'/>",
        )
        .await;
    assert_result(&r);
    for c in [&mut one, &mut two] {
        let carol = c.expect_push(CAROL, "none").await;
        assert_eq!(carol.name.as_deref(), Some("Carol"));
    }
    one.account_barrier().await;
    two.account_barrier().await;

    // Remove: pushed as subscription='remove' to both, gone from the roster.
    let r = one
        .roster_set("<item jid='bob@localhost' subscription='remove'/>")
        .await;
    assert_result(&r);
    for c in [&mut one, &mut two] {
        let push = c
            .expect("the removal push", |e: &str| {
                is_push(e)
                    && items(e)
                        .iter()
                        .any(|i| i.jid == BOB && i.subscription == "remove")
            })
            .await;
        assert_ne!(query_ver(&push).as_deref(), Some(v1.as_str()), "{push}");
    }
    let jids: Vec<String> = one.roster().await.into_iter().map(|i| i.jid).collect();
    assert_eq!(jids, [CAROL]);
    three.account_barrier().await;
    one.account_barrier().await;
    two.account_barrier().await;
}

#[tokio::test]
async fn refused_roster_sets_are_answered_and_change_nothing() {
    let server = start(&["alice", "bob"]);
    let mut one = login(&server, "alice", "one").await;
    let mut two = login(&server, "alice", "two").await;
    one.roster().await;
    two.roster().await;
    for item in [
        "<item jid='bob@localhost' name='Bob'/>",
        "<item jid='carol@localhost'/>",
    ] {
        assert_result(&one.roster_set(item).await);
    }
    for c in [&mut one, &mut two] {
        c.expect_push(BOB, "none").await;
        c.expect_push(CAROL, "none").await;
    }
    let before = one.roster_get(None).await;
    let ver = query_ver(&before).expect("a version");
    one.account_barrier().await;
    two.account_barrier().await;

    let roster = |item: &str| format!("<query xmlns='{ROSTER}'>{item}</query>");
    let refused = [
        // RFC 6121 §2.3.3: exactly one item per set.
        (
            "set",
            None,
            roster("<item jid='dave@localhost'/><item jid='erin@localhost'/>"),
            "bad-request",
        ),
        // §2.1.2.1 / §2.3.3: items are bare JIDs.
        (
            "set",
            None,
            roster("<item jid='bob@localhost/phone'/>"),
            "bad-request",
        ),
        // §2.3.3: not one's own JID.
        (
            "set",
            None,
            roster("<item jid='alice@localhost' name='Me'/>"),
            "not-allowed",
        ),
        // §2.3.3: a group listed twice.
        (
            "set",
            None,
            roster("<item jid='dave@localhost'><group>A</group><group>A</group></item>"),
            "bad-request",
        ),
        // §2.3.3: an empty group name.
        (
            "set",
            None,
            roster("<item jid='dave@localhost'><group></group></item>"),
            "not-acceptable",
        ),
        // §2.5.3: removing what is not there.
        (
            "set",
            None,
            roster("<item jid='nobody@localhost' subscription='remove'/>"),
            "item-not-found",
        ),
        // §2.1.5 / §2.3.3: another user's roster.
        ("get", Some(BOB), roster(""), "forbidden"),
        (
            "set",
            Some(BOB),
            roster("<item jid='dave@localhost'/>"),
            "forbidden",
        ),
    ];
    // All at once, then every answer, each exactly once.
    let mut sent = Vec::new();
    for (ty, to, payload, condition) in &refused {
        let id = one.new_id("refused");
        let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
        let iq = format!("<iq type='{ty}' id='{id}'{to}>{payload}</iq>");
        one.send(&iq).await;
        sent.push((id, iq, *condition));
    }
    let mut problems = Vec::new();
    for (id, iq, condition) in sent {
        let r = one
            .expect(&format!("an answer (<{condition}/>) to {iq}"), with_id(&id))
            .await;
        let ok =
            attr(&r, "type").as_deref() == Some("error") && r.contains(&format!("<{condition}"));
        if !ok {
            problems.push(format!("expected <{condition}/> for {iq}, got {r}"));
        }
    }
    if !problems.is_empty() {
        one.fail(&format!(
            "{} of {} refused requests were not answered as RFC 6121 says:\n{}",
            problems.len(),
            refused.len(),
            problems.join("\n")
        ));
    }

    // Nothing changed, nothing was pushed: alice's actor, which refused
    // the sets, has nothing more for either resource.
    two.account_barrier().await;
    one.account_barrier().await;
    let after = one.roster_get(None).await;
    assert_eq!(query_ver(&after).as_deref(), Some(ver.as_str()), "{after}");
    let mut jids: Vec<String> = items(&after).into_iter().map(|i| i.jid).collect();
    jids.sort();
    assert_eq!(jids, [BOB, CAROL]);
    let mut bobs = login(&server, "bob", "phone").await;
    assert!(
        bobs.roster().await.is_empty(),
        "alice's attempt did not touch bob's roster"
    );
}

// ===========================================================================
// 2. Subscriptions (RFC 6121 §3 and Appendix A)

#[tokio::test]
async fn subscribe_then_approve_gives_to_and_from() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;

    // None → None + Pending Out.
    alice
        .send("<presence to='bob@localhost' type='subscribe' id='s1'><status>It is Alice</status></presence>")
        .await;
    let item = alice.expect_push(BOB, "none+ask").await;
    assert_eq!(item.ask.as_deref(), Some("subscribe"));
    let req = bob.expect_subscription(ALICE, "subscribe").await;
    assert!(
        req.contains("It is Alice"),
        "the request keeps its status text: {req}"
    );
    alice.assert_state(BOB, "none+ask").await;
    bob.assert_state(ALICE, "none").await;

    // Approval: To for alice, From for bob.
    bob.subscription(ALICE, "subscribed").await;
    bob.expect_push(ALICE, "from").await;
    alice.expect_subscription(BOB, "subscribed").await;
    alice.expect_push(BOB, "to").await;
    let bj = bob.jid().to_owned();
    alice
        .expect(
            "bob's presence after his approval (§3.1.5)",
            presence_from(&bj, None),
        )
        .await;
    alice.assert_state(BOB, "to").await;
    bob.assert_state(ALICE, "from").await;

    // Presence now flows from bob to alice only.
    bob.update("on the phone").await;
    alice
        .expect("bob's update", status_from(&bj, "on the phone"))
        .await;
    alice.update("at my desk").await;
    alice.sync_account().await;
    bob.barrier().await;
    alice.barrier().await;
}

#[tokio::test]
async fn subscriptions_both_ways_give_both() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;
    grant(&mut alice, &mut bob).await;
    settle(&mut alice, &mut bob).await;

    // bob: From → From + Pending Out; alice: To → To + Pending In.
    bob.subscription(ALICE, "subscribe").await;
    bob.expect_push(ALICE, "from+ask").await;
    alice.expect_subscription(BOB, "subscribe").await;
    alice.assert_state(BOB, "to").await;

    alice.subscription(BOB, "subscribed").await;
    alice.expect_push(BOB, "both").await;
    bob.expect_subscription(ALICE, "subscribed").await;
    bob.expect_push(ALICE, "both").await;
    let aj = alice.jid().to_owned();
    bob.expect(
        "alice's presence after her approval",
        presence_from(&aj, None),
    )
    .await;
    alice.assert_state(BOB, "both").await;
    bob.assert_state(ALICE, "both").await;

    let bj = bob.jid().to_owned();
    alice.update("ready").await;
    bob.expect("alice's update", status_from(&aj, "ready"))
        .await;
    bob.update("set").await;
    alice.expect("bob's update", status_from(&bj, "set")).await;
    settle(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn unsubscribe_from_both_leaves_from_and_to() {
    let server = start(&["alice", "bob"]);
    let (mut alice, mut bob) = mutual(&server).await;

    alice.subscription(BOB, "unsubscribe").await;
    alice.expect_push(BOB, "from").await;
    bob.expect_subscription(ALICE, "unsubscribe").await;
    bob.expect_push(ALICE, "to").await;
    // RFC 6121 §3.3.3 step 3: the contact's server sends unavailable
    // presence from each of the contact's available resources to the user.
    let bj = bob.jid().to_owned();
    alice
        .expect(
            "unavailable from bob's resource after unsubscribing (RFC 6121 §3.3.3)",
            presence_from(&bj, Some("unavailable")),
        )
        .await;
    alice.assert_state(BOB, "from").await;
    bob.assert_state(ALICE, "to").await;

    // bob's update no longer reaches alice; hers still reaches him.
    let aj = alice.jid().to_owned();
    bob.update("no longer seen by alice").await;
    bob.sync_account().await;
    alice.barrier().await;
    alice.update("still seen by bob").await;
    bob.expect("alice's update", status_from(&aj, "still seen by bob"))
        .await;
    settle(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn unsubscribed_from_both_leaves_to_and_from() {
    let server = start(&["alice", "bob"]);
    let (mut alice, mut bob) = mutual(&server).await;

    // alice cancels bob's subscription to her presence.
    alice.subscription(BOB, "unsubscribed").await;
    alice.expect_push(BOB, "to").await;
    bob.expect_subscription(ALICE, "unsubscribed").await;
    bob.expect_push(ALICE, "from").await;
    // RFC 6121 §3.2.2: unavailable from each of alice's available resources.
    let aj = alice.jid().to_owned();
    bob.expect(
        "unavailable from alice's resource after the cancellation (RFC 6121 §3.2.2)",
        presence_from(&aj, Some("unavailable")),
    )
    .await;
    alice.assert_state(BOB, "to").await;
    bob.assert_state(ALICE, "from").await;

    // alice's update no longer reaches bob; his still reaches her.
    let bj = bob.jid().to_owned();
    alice.update("hidden from bob").await;
    alice.sync_account().await;
    bob.barrier().await;
    bob.update("still seen by alice").await;
    alice
        .expect("bob's update", status_from(&bj, "still seen by alice"))
        .await;
    settle(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn a_denied_request_leaves_nothing_pending() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;

    alice.subscription(BOB, "subscribe").await;
    alice.expect_push(BOB, "none+ask").await;
    bob.expect_subscription(ALICE, "subscribe").await;

    // Deny: None + Pending Out → None for alice, and unavailable from
    // bob's resource (as for a cancellation, RFC 6121 §3.2.2).
    bob.subscription(ALICE, "unsubscribed").await;
    alice.expect_subscription(BOB, "unsubscribed").await;
    alice.expect_push(BOB, "none").await;
    let b1 = bob.jid().to_owned();
    alice
        .expect(
            "unavailable from bob's resource after the denial",
            presence_from(&b1, Some("unavailable")),
        )
        .await;
    alice.assert_state(BOB, "none").await;
    bob.assert_state(ALICE, "none").await;

    // The request is not shown again to a new resource of bob's, and bob's
    // presence does not reach alice.
    let mut bob2 = online(&server, "bob", "tablet", 0).await;
    // bob's two resources see each other, and nothing else.
    let b2 = bob2.jid().to_owned();
    bob2.expect("bob's other resource", presence_from(&b1, None))
        .await;
    bob.expect("bob's new resource", presence_from(&b2, None))
        .await;
    bob2.account_barrier().await;
    alice.barrier().await;
    bob.update("alone").await;
    bob2.expect("bob's other resource's update", status_from(&b1, "alone"))
        .await;
    bob.sync_account().await;
    alice.barrier().await;
    bob.barrier().await;
    bob2.barrier().await;
}

#[tokio::test]
async fn a_cancelled_request_is_not_delivered_later() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;

    // bob is offline: the request waits for him…
    alice.subscription(BOB, "subscribe").await;
    alice.expect_push(BOB, "none+ask").await;
    // …until alice withdraws it (None + Pending Out → None).
    alice.subscription(BOB, "unsubscribe").await;
    alice.expect_push(BOB, "none").await;
    alice.assert_state(BOB, "none").await;

    // bob's actor has shown him all it stores once his barrier is past.
    let mut bob = online(&server, "bob", "phone", 0).await;
    bob.account_barrier().await;
    bob.assert_state(ALICE, "none").await;

    // Approving now grants nothing: there is no request to approve.
    bob.subscription(ALICE, "subscribed").await;
    bob.sync_account().await;
    alice.account_barrier().await;
    alice.assert_state(BOB, "none").await;
    let state = bob.state_of(ALICE).await;
    assert!(
        !state.starts_with("from") && !state.starts_with("both"),
        "bob gave alice no subscription: {state}"
    );
}

#[tokio::test]
async fn a_request_cancelled_while_the_contact_is_online_cannot_be_approved() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;

    alice.subscription(BOB, "subscribe").await;
    alice.expect_push(BOB, "none+ask").await;
    bob.expect_subscription(ALICE, "subscribe").await;
    alice.subscription(BOB, "unsubscribe").await;
    alice.expect_push(BOB, "none").await;
    // bob's side handles the withdrawal: he is told, and his roster does
    // not change (no push).
    bob.expect_subscription(ALICE, "unsubscribe").await;
    alice.sync_account().await;
    bob.account_barrier().await;

    bob.subscription(ALICE, "subscribed").await;
    bob.sync_account().await;
    alice.account_barrier().await;
    alice.assert_state(BOB, "none").await;
    let state = bob.state_of(ALICE).await;
    assert!(
        !state.starts_with("from") && !state.starts_with("both"),
        "bob gave alice no subscription: {state}"
    );
}

#[tokio::test]
async fn a_pre_approved_request_is_approved_by_the_server() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;

    // RFC 6121 §3.4: bob approves before anyone asks.
    bob.subscription(ALICE, "subscribed").await;
    let item = bob.expect_push(ALICE, "none+approved").await;
    assert!(item.approved);
    bob.sync_account().await;
    alice.account_barrier().await;
    alice.assert_state(BOB, "none").await;

    // alice's request is answered at once and never shown to bob.
    alice.subscription(BOB, "subscribe").await;
    alice.expect_push(BOB, "none+ask").await;
    alice.expect_subscription(BOB, "subscribed").await;
    alice.expect_push(BOB, "to").await;
    let bj = bob.jid().to_owned();
    alice
        .expect(
            "bob's presence after the approval",
            presence_from(&bj, None),
        )
        .await;
    bob.expect_push(ALICE, "from").await;
    alice.assert_state(BOB, "to").await;
    bob.assert_state(ALICE, "from").await;
    settle(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn subscribing_again_when_subscribed_bothers_nobody() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;
    grant(&mut alice, &mut bob).await;
    settle(&mut alice, &mut bob).await;

    // The request is routed (A.2.1: To, no state change); bob's server
    // answers it for him (§3.1.3, A.3.1: From, MUST NOT deliver,
    // auto-reply `subscribed`); alice's server does not show that answer
    // to her either (A.3.3: To, MUST NOT deliver). No roster push on
    // either side: alice's actor routes the request to bob's, bob's
    // answers to alice's, and each barrier comes after that.
    alice.subscription(BOB, "subscribe").await;
    alice.sync_account().await;
    bob.account_barrier().await;
    // What alice does get is bob's current presence again, which his
    // server sends after its answer as after any approval (§3.1.5).
    let bj = bob.jid().to_owned();
    alice
        .expect("bob's current presence again", presence_from(&bj, None))
        .await;
    alice.account_barrier().await;
    alice.assert_state(BOB, "to").await;
    bob.assert_state(ALICE, "from").await;
    settle(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn a_request_to_an_offline_user_is_delivered_at_the_next_login() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    alice
        .send(
            "<presence to='bob@localhost' type='subscribe'><status>Add me, Bob</status></presence>",
        )
        .await;
    alice.expect_push(BOB, "none+ask").await;
    alice.assert_state(BOB, "none+ask").await;

    let mut bob = online(&server, "bob", "phone", 0).await;
    let req = bob.expect_subscription(ALICE, "subscribe").await;
    assert!(
        req.contains("Add me, Bob"),
        "the stored request keeps its text: {req}"
    );
    bob.account_barrier().await;

    // Unanswered, it is shown again at the next login.
    bob.close(&server).await;
    let mut bob = online(&server, "bob", "laptop", 0).await;
    bob.expect_subscription(ALICE, "subscribe").await;
    bob.account_barrier().await;

    bob.subscription(ALICE, "subscribed").await;
    bob.expect_push(ALICE, "from").await;
    alice.expect_subscription(BOB, "subscribed").await;
    alice.expect_push(BOB, "to").await;
    let bj = bob.jid().to_owned();
    alice
        .expect(
            "bob's presence after his approval",
            presence_from(&bj, None),
        )
        .await;
    alice.assert_state(BOB, "to").await;
    bob.assert_state(ALICE, "from").await;

    // Answered: not shown again.
    bob.close(&server).await;
    let mut bob = online(&server, "bob", "phone", 0).await;
    bob.account_barrier().await;
}

#[tokio::test]
async fn a_request_to_a_nonexistent_user_is_answered_unsubscribed() {
    let server = start(&["alice"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    alice.subscription("nobody@localhost", "subscribe").await;
    alice.expect_push("nobody@localhost", "none+ask").await;
    alice
        .expect_subscription("nobody@localhost", "unsubscribed")
        .await;
    alice.expect_push("nobody@localhost", "none").await;
    alice.assert_state("nobody@localhost", "none").await;
    alice.account_barrier().await;
}

// ===========================================================================
// 3. Presence

/// alice ⇄ bob `both`; alice → carol `to` (alice sees carol, carol does not
/// see alice). Every session used to set it up is gone on return, and the
/// accounts' actors are done with their goodbyes.
async fn presence_world(server: &TestServer) {
    let mut a = online(server, "alice", "setup", 0).await;
    let mut b = online(server, "bob", "setup", 0).await;
    let mut c = online(server, "carol", "setup", 0).await;
    grant(&mut a, &mut b).await;
    grant(&mut b, &mut a).await;
    grant(&mut a, &mut c).await;
    a.assert_state(BOB, "both").await;
    a.assert_state(CAROL, "to").await;
    c.assert_state(ALICE, "from").await;
    for client in [a, b, c] {
        client.logout(server).await;
    }
    // Each account's actor has its goodbyes queued; a vCard get to each,
    // queued behind them, proves they have all been said, so that no
    // later session of these tests gets a stray one.
    let mut helper = login(server, "carol", "sync").await;
    for account in [ALICE, BOB, CAROL] {
        helper.sync_account_of(account).await;
    }
    helper.barrier().await;
    helper.close(server).await;
    trace("--- the world is set up ---");
}

#[tokio::test]
async fn initial_presence_reaches_subscribers_and_own_resources() {
    let server = start(&["alice", "bob", "carol"]);
    presence_world(&server).await;
    let mut bob = online(&server, "bob", "phone", 0).await;
    let mut carol = online(&server, "carol", "laptop", 0).await;
    let (bj, cj) = (bob.jid().to_owned(), carol.jid().to_owned());
    // alice is offline: bob's probe of her is answered from her bare JID.
    bob.expect(
        "unavailable from alice's bare JID (probe while she is offline)",
        presence_from(ALICE, Some("unavailable")),
    )
    .await;
    bob.account_barrier().await;
    carol.account_barrier().await;

    let mut a1 = login(&server, "alice", "desk").await;
    a1.roster().await;
    a1.available(1, "<status>at the desk</status>").await;
    let a1j = a1.jid().to_owned();
    bob.expect("alice's initial presence", status_from(&a1j, "at the desk"))
        .await;
    // Probes: alice sees those she is subscribed to.
    a1.expect("bob's presence (probe)", presence_from(&bj, None))
        .await;
    a1.expect("carol's presence (probe)", presence_from(&cj, None))
        .await;
    a1.sync_account().await;
    carol.barrier().await;

    // A second resource: both of alice's resources see each other.
    let mut a2 = login(&server, "alice", "phone").await;
    a2.roster().await;
    a2.available(0, "<status>on the go</status>").await;
    let a2j = a2.jid().to_owned();
    a2.expect("alice's other resource", status_from(&a1j, "at the desk"))
        .await;
    a2.expect("bob's presence (probe)", presence_from(&bj, None))
        .await;
    a2.expect("carol's presence (probe)", presence_from(&cj, None))
        .await;
    a1.expect("alice's new resource", status_from(&a2j, "on the go"))
        .await;
    bob.expect("alice's second resource", status_from(&a2j, "on the go"))
        .await;
    a2.sync_account().await;
    carol.barrier().await;

    // Updates.
    bob.update("busy").await;
    a1.expect("bob's update", status_from(&bj, "busy")).await;
    a2.expect("bob's update", status_from(&bj, "busy")).await;
    bob.sync_account().await;
    carol.barrier().await;
    carol.update("lunch").await;
    a1.expect("carol's update", status_from(&cj, "lunch")).await;
    a2.expect("carol's update", status_from(&cj, "lunch")).await;
    carol.sync_account().await;
    bob.barrier().await;
    a1.update("away").await;
    bob.expect("alice's update", status_from(&a1j, "away"))
        .await;
    a2.expect("alice's update", status_from(&a1j, "away")).await;
    a1.sync_account().await;
    carol.barrier().await;

    // Going unavailable without leaving.
    a2.send("<presence type='unavailable'><status>bye</status></presence>")
        .await;
    a2.expect(
        "my own unavailable presence shown back to me",
        presence_from(&a2j, Some("unavailable")),
    )
    .await;
    bob.expect(
        "alice's second resource leaving",
        presence_from(&a2j, Some("unavailable")),
    )
    .await;
    a1.expect(
        "alice's second resource leaving",
        presence_from(&a2j, Some("unavailable")),
    )
    .await;
    a2.sync_account().await;
    carol.barrier().await;
    for c in [&mut a1, &mut a2, &mut bob] {
        c.barrier().await;
    }
}

#[tokio::test]
async fn probes_are_answered_at_login() {
    let server = start(&["alice", "bob", "carol"]);
    presence_world(&server).await;
    let mut alice = online(&server, "alice", "desk", 0).await;
    // bob is offline: alice's probe of him is answered from his bare JID
    // (carol's too).
    for account in [BOB, CAROL] {
        alice
            .expect(
                &format!("unavailable from {account} (probe while offline)"),
                presence_from(account, Some("unavailable")),
            )
            .await;
    }
    alice.update("writing").await;
    let aj = alice.jid().to_owned();

    // bob logs in after alice and gets her current presence at once.
    let mut bob = login(&server, "bob", "phone").await;
    bob.roster().await;
    bob.available(0, "").await;
    bob.expect("alice's current presence", status_from(&aj, "writing"))
        .await;
    let bj = bob.jid().to_owned();
    alice
        .expect("bob's initial presence", presence_from(&bj, None))
        .await;
    // carol, who is not subscribed to alice, does not.
    let mut carol = online(&server, "carol", "laptop", 0).await;
    let cj = carol.jid().to_owned();
    alice
        .expect("carol's initial presence", presence_from(&cj, None))
        .await;
    carol.account_barrier().await;

    // With alice gone, a probe gets unavailable from her bare JID.
    alice.logout(&server).await;
    bob.expect("alice leaving", presence_from(&aj, Some("unavailable")))
        .await;
    let mut bob2 = login(&server, "bob", "tablet").await;
    bob2.roster().await;
    bob2.available(0, "").await;
    bob2.expect(
        "unavailable from alice's bare JID (probe while she is offline)",
        presence_from(ALICE, Some("unavailable")),
    )
    .await;
    bob2.expect("bob's other resource", presence_from(&bj, None))
        .await;
    bob.expect("bob's new resource", presence_from(bob2.jid(), None))
        .await;
    // Nothing else: in particular not alice as available.
    bob2.account_barrier().await;
    bob.barrier().await;
}

#[tokio::test]
async fn directed_presence_is_withdrawn_when_the_session_ends() {
    let server = start(&["alice", "bob", "carol"]);
    presence_world(&server).await;
    let mut carol = online(&server, "carol", "laptop", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;
    bob.expect(
        "unavailable from alice's bare JID (probe while she is offline)",
        presence_from(ALICE, Some("unavailable")),
    )
    .await;
    let mut alice = online(&server, "alice", "desk", 0).await;
    let aj = alice.jid().to_owned();
    let (bj, cj) = (bob.jid().to_owned(), carol.jid().to_owned());
    alice
        .expect("bob's presence (probe)", presence_from(&bj, None))
        .await;
    alice
        .expect("carol's presence (probe)", presence_from(&cj, None))
        .await;
    bob.expect("alice's initial presence", presence_from(&aj, None))
        .await;
    alice.sync_account().await;
    carol.barrier().await;

    // Directed presence to carol, who has no subscription to alice.
    alice
        .send("<presence to='carol@localhost/laptop'><status>hello carol</status></presence>")
        .await;
    carol
        .expect("alice's directed presence", status_from(&aj, "hello carol"))
        .await;

    // A clean close without unavailable presence.
    alice.close(&server).await;
    carol
        .expect(
            "unavailable from alice after her session ended",
            presence_from(&aj, Some("unavailable")),
        )
        .await;
    bob.expect(
        "unavailable from alice",
        presence_from(&aj, Some("unavailable")),
    )
    .await;

    // Directed presence to carol's bare JID, then the socket just drops.
    let mut alice = online(&server, "alice", "phone", 0).await;
    let aj = alice.jid().to_owned();
    alice
        .expect("bob's presence (probe)", presence_from(&bj, None))
        .await;
    alice
        .expect("carol's presence (probe)", presence_from(&cj, None))
        .await;
    bob.expect("alice's initial presence", presence_from(&aj, None))
        .await;
    alice
        .send("<presence to='carol@localhost'><status>hi again</status></presence>")
        .await;
    carol
        .expect("alice's directed presence", status_from(&aj, "hi again"))
        .await;
    trace(format!("{aj} drops its socket"));
    drop(alice);
    carol
        .expect(
            "unavailable from alice after her socket dropped",
            presence_from(&aj, Some("unavailable")),
        )
        .await;
    bob.expect(
        "unavailable from alice after her socket dropped",
        presence_from(&aj, Some("unavailable")),
    )
    .await;
    carol.barrier().await;
    bob.barrier().await;
}

#[tokio::test]
async fn a_dropped_socket_makes_the_user_unavailable() {
    let server = start(&["alice", "bob", "carol"]);
    presence_world(&server).await;
    let mut bob = online(&server, "bob", "phone", 0).await;
    bob.expect(
        "unavailable from alice's bare JID (probe while she is offline)",
        presence_from(ALICE, Some("unavailable")),
    )
    .await;
    let mut carol = online(&server, "carol", "laptop", 0).await;
    let mut other = online(&server, "alice", "desk", 0).await;
    let alice = online(&server, "alice", "phone", 0).await;
    let (aj, oj) = (alice.jid().to_owned(), other.jid().to_owned());
    for j in [&oj, &aj] {
        bob.expect("alice's presence", presence_from(j, None)).await;
    }
    other
        .expect("alice's other resource", presence_from(&aj, None))
        .await;
    let (bj, cj) = (bob.jid().to_owned(), carol.jid().to_owned());
    other
        .expect("bob's presence (probe)", presence_from(&bj, None))
        .await;
    other
        .expect("carol's presence (probe)", presence_from(&cj, None))
        .await;
    other.account_barrier().await;

    trace(format!("{aj} drops its socket"));
    drop(alice);
    bob.expect(
        "unavailable from alice after her socket dropped",
        presence_from(&aj, Some("unavailable")),
    )
    .await;
    other
        .expect(
            "unavailable from the dropped resource",
            presence_from(&aj, Some("unavailable")),
        )
        .await;
    // alice's actor told everyone it tells: carol is not among them.
    other.sync_account().await;
    carol.barrier().await;
    // bob still sees the remaining resource as available: it answers.
    other.update("still here").await;
    bob.expect("alice's remaining resource", status_from(&oj, "still here"))
        .await;
    bob.barrier().await;
}

// ===========================================================================
// 4. Messages

#[tokio::test]
async fn messages_follow_full_jids_and_priorities() {
    let server = start(&["alice", "bob"]);
    let mut bob = online(&server, "bob", "phone", 0).await;
    let mut low = online(&server, "alice", "low", 1).await;
    let mut high = online(&server, "alice", "high", 5).await;
    let (bj, lj, hj) = (
        bob.jid().to_owned(),
        low.jid().to_owned(),
        high.jid().to_owned(),
    );
    // alice's resources see each other; bob and alice share no
    // subscription.
    high.expect("alice's other resource", presence_from(&lj, None))
        .await;
    low.expect("alice's new resource", presence_from(&hj, None))
        .await;
    high.account_barrier().await;
    low.barrier().await;
    bob.barrier().await;

    // To a full JID: that resource only. The router delivers it while
    // handling bob's stanza, so bob's round trip comes after.
    bob.chat("alice@localhost/low", "m1", "to the low one")
        .await;
    let m = low
        .expect("the message", message_with("to the low one"))
        .await;
    assert_eq!(attr(&m, "from").as_deref(), Some(bj.as_str()), "{m}");
    bob.sync().await;
    high.barrier().await;

    // To the bare JID: the highest priority.
    bob.chat(ALICE, "m2", "to alice").await;
    high.expect("the message", message_with("to alice")).await;
    bob.sync().await;
    low.barrier().await;

    // Priorities change.
    high.available(0, "<status>lowered</status>").await;
    low.expect("high's new presence", status_from(&hj, "lowered"))
        .await;
    bob.chat(ALICE, "m3", "after the change").await;
    low.expect("the message", message_with("after the change"))
        .await;
    bob.sync().await;
    high.barrier().await;

    // A chat to a resource that is not there goes to the bare JID
    // (RFC 6121 §8.5.3.2.1).
    bob.chat("alice@localhost/gone", "m4", "to a gone resource")
        .await;
    low.expect("the message", message_with("to a gone resource"))
        .await;

    // A negative priority resource gets no bare JID messages…
    low.available(-1, "<status>do not disturb</status>").await;
    high.expect("low's new presence", status_from(&lj, "do not disturb"))
        .await;
    bob.chat(ALICE, "m5", "while low is negative").await;
    high.expect("the message", message_with("while low is negative"))
        .await;
    bob.sync().await;
    low.barrier().await;
    // …but still those sent to it.
    bob.chat("alice@localhost/low", "m6", "directly to low")
        .await;
    low.expect("the message", message_with("directly to low"))
        .await;
    // No errors: every message was delivered by the router as it routed
    // bob's stanzas.
    bob.barrier().await;
    low.barrier().await;
    high.barrier().await;
}

#[tokio::test]
async fn offline_messages_wait_for_a_non_negative_priority_login() {
    let server = start(&["alice", "bob"]);
    let mut bob = online(&server, "bob", "phone", 0).await;
    let bj = bob.jid().to_owned();
    let t0 = unix_now();

    bob.chat(ALICE, "o1", "first while away").await;
    bob.chat("alice@localhost/desk", "o2", "second while away")
        .await;
    // Stored, not refused: alice's actor has them once it answers bob.
    bob.sync_account_of(ALICE).await;
    bob.barrier().await;

    // A negative priority login does not get them.
    let mut pager = login(&server, "alice", "pager").await;
    pager.roster().await;
    pager.available(-1, "").await;
    pager.account_barrier().await;
    // A bare JID message with only a negative resource waits too.
    bob.chat(ALICE, "o3", "third while away").await;
    bob.sync().await;
    pager.account_barrier().await;
    bob.chat("alice@localhost/pager", "o4", "to the pager")
        .await;
    pager
        .expect("the message", message_with("to the pager"))
        .await;
    bob.sync_account_of(ALICE).await;
    bob.barrier().await;

    // A priority 0 login gets all three, in order, with delay stamps.
    let mut desk = login(&server, "alice", "desk").await;
    desk.roster().await;
    desk.available(0, "").await;
    let t1 = unix_now();
    for want in ["first while away", "second while away", "third while away"] {
        let m = desk
            .expect("an offline message", message_containing("while away"))
            .await;
        assert!(
            m.contains(&format!("<body>{want}</body>")),
            "expected {want:?} next: {m}"
        );
        assert_eq!(attr(&m, "from").as_deref(), Some(bj.as_str()), "{m}");
        let i = find_tag(&m, "delay").unwrap_or_else(|| panic!("no <delay/>: {m}"));
        let delay = &m[i..];
        assert!(delay.contains("urn:xmpp:delay"), "{m}");
        assert_eq!(attr(delay, "from").as_deref(), Some(HOST), "{m}");
        let stamp = attr(delay, "stamp").unwrap_or_else(|| panic!("no stamp: {m}"));
        let at = parse_stamp(&stamp).unwrap_or_else(|| panic!("bad stamp {stamp:?}: {m}"));
        assert!(
            at >= t0 - 1 && at <= t1 + 1,
            "stamp {stamp} ({at}) not within [{t0}, {t1}]"
        );
    }
    // alice's resources see each other (the pager at priority -1 is
    // available all the same).
    let (pj, dj) = (pager.jid().to_owned(), desk.jid().to_owned());
    desk.expect("alice's pager", presence_from(&pj, None)).await;
    pager.expect("alice's desk", presence_from(&dj, None)).await;
    desk.account_barrier().await;
    pager.barrier().await;

    // Delivered once. (The pager sees the desk go before the laptop
    // comes, so that the laptop gets no stray goodbye.)
    desk.close(&server).await;
    pager
        .expect("the desk leaving", presence_from(&dj, Some("unavailable")))
        .await;
    pager.sync_account().await;
    let mut laptop = online(&server, "alice", "laptop", 0).await;
    laptop
        .expect("alice's pager", presence_from(&pj, None))
        .await;
    laptop.account_barrier().await;
}

#[tokio::test]
async fn unknown_recipients_headlines_and_errors() {
    let server = start(&["alice", "bob"]);
    let mut bob = online(&server, "bob", "phone", 0).await;

    // Unknown user: service-unavailable from that address.
    bob.chat("nobody@localhost", "u1", "anyone there?").await;
    let err = bob.expect("an error", error_with_id("u1")).await;
    assert_error(&err, "service-unavailable");
    assert_eq!(
        attr(&err, "from").as_deref(),
        Some("nobody@localhost"),
        "{err}"
    );

    // Never an error in reply to an error. A chat sent after it takes the
    // same way and is refused; anything said about the error would have
    // come first.
    bob.send(&format!(
        "<message to='nobody@localhost' type='error' id='u2'><error type='cancel'><item-not-found xmlns='{STANZAS}'/></error></message>"
    ))
    .await;
    bob.chat("nobody@localhost", "u3", "still nobody?").await;
    let err = bob
        .expect_next("the error for u3", error_with_id("u3"))
        .await;
    assert_error(&err, "service-unavailable");
    bob.barrier().await;

    // A headline to an offline user is dropped silently; a chat is kept.
    bob.send("<message to='alice@localhost' type='headline' id='h1'><body>breaking news</body></message>")
        .await;
    bob.chat(ALICE, "h2", "after the news").await;
    bob.sync_account_of(ALICE).await;
    bob.barrier().await;
    let mut alice = online(&server, "alice", "desk", 0).await;
    alice
        .expect("the stored chat", message_with("after the news"))
        .await;
    // Nothing else: not the headline.
    alice.account_barrier().await;
}

#[tokio::test]
async fn the_offline_store_has_a_quota() {
    let server = start(&["alice", "bob"]);
    let mut bob = online(&server, "bob", "phone", 0).await;

    // Small bursts, each followed by a request that alice's account
    // answers only after storing them, so no single wait grows with the
    // number already stored.
    const BURST: usize = 20;
    for burst in 0..1000 / BURST {
        let mut xml = String::new();
        for i in burst * BURST..(burst + 1) * BURST {
            xml.push_str(&format!(
                "<message to='alice@localhost' type='chat' id='q{i}'><body>note {i}</body></message>"
            ));
        }
        bob.send(&xml).await;
        bob.sync_account_of(ALICE).await;
        let refused = bob.take_all(any_error_message);
        if !refused.is_empty() {
            bob.fail(&format!(
                "messages below the quota were refused: {refused:?}"
            ));
        }
    }
    bob.barrier().await;
    bob.chat(ALICE, "q1000", "one too many").await;
    let err = bob.expect("the quota error", error_with_id("q1000")).await;
    assert_error(&err, "resource-constraint");
    assert!(
        err.contains("type=\"wait\"") || err.contains("type='wait'"),
        "{err}"
    );
    bob.barrier().await;

    // All 1000 reach alice at her next login, in order (each once: the
    // client fails on a second copy), and the refused one is not among
    // them.
    let mut alice = online(&server, "alice", "desk", 0).await;
    for i in 0..1000 {
        let m = alice
            .expect("the next stored message", message_containing("note "))
            .await;
        assert!(
            m.contains(&format!("<body>note {i}</body>")),
            "expected note {i} next: {m}"
        );
    }
    alice.account_barrier().await;

    // Delivery emptied the store: once alice is offline again, a new
    // message is stored, not refused as if the store were still full.
    alice.logout(&server).await;
    bob.chat(ALICE, "again", "room again").await;
    bob.sync_account_of(ALICE).await;
    bob.barrier().await;
    let mut alice = online(&server, "alice", "desk", 0).await;
    alice
        .expect(
            "the message stored after delivery",
            message_with("room again"),
        )
        .await;
    alice.account_barrier().await;
}

// ===========================================================================
// 5. Account data

#[tokio::test]
async fn vcards_are_world_readable_and_owner_written() {
    let server = start(&["alice", "bob"]);
    let mut alice = login(&server, "alice", "desk").await;
    let mut bob = login(&server, "bob", "phone").await;

    let r = alice
        .iq(
            "set",
            None,
            "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>ally</NICKNAME></vCard>",
        )
        .await;
    assert_result(&r);
    let own = alice.iq("get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_result(&own);
    assert!(own.contains("<FN>Alice Liddell</FN>"), "{own}");

    let seen = bob
        .iq("get", Some(ALICE), "<vCard xmlns='vcard-temp'/>")
        .await;
    assert_result(&seen);
    assert!(
        seen.contains("<FN>Alice Liddell</FN>") && seen.contains("<NICKNAME>ally</NICKNAME>"),
        "{seen}"
    );
    assert_eq!(attr(&seen, "from").as_deref(), Some(ALICE), "{seen}");

    let r = bob
        .iq(
            "set",
            Some(ALICE),
            "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>",
        )
        .await;
    assert_error(&r, "forbidden");
    let again = bob
        .iq("get", Some(ALICE), "<vCard xmlns='vcard-temp'/>")
        .await;
    assert!(
        again.contains("Alice Liddell") && !again.contains("Mallory"),
        "{again}"
    );

    // It lasts beyond the session.
    alice.close(&server).await;
    let mut alice = login(&server, "alice", "laptop").await;
    let own = alice.iq("get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert!(own.contains("<FN>Alice Liddell</FN>"), "{own}");
}

#[tokio::test]
async fn private_xml_is_for_its_owner_only() {
    let server = start(&["alice", "bob"]);
    let mut alice = login(&server, "alice", "desk").await;
    let mut bob = login(&server, "bob", "phone").await;

    let r = alice
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><theme>dark</theme></prefs></query>",
        )
        .await;
    assert_result(&r);
    let get = "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>";
    let own = alice.iq("get", None, get).await;
    assert_result(&own);
    assert!(own.contains("<theme>dark</theme>"), "{own}");

    let r = bob.iq("get", Some(ALICE), get).await;
    assert_error(&r, "forbidden");
    assert!(!r.contains("dark"), "{r}");
    let r = bob
        .iq(
            "set",
            Some(ALICE),
            "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><theme>pink</theme></prefs></query>",
        )
        .await;
    assert_error(&r, "forbidden");
    // bob's own storage is his own.
    let bobs = bob.iq("get", None, get).await;
    assert_result(&bobs);
    assert!(!bobs.contains("dark"), "{bobs}");

    alice.close(&server).await;
    let mut alice = login(&server, "alice", "laptop").await;
    let own = alice.iq("get", None, get).await;
    assert!(
        own.contains("<theme>dark</theme>") && !own.contains("pink"),
        "{own}"
    );

    // A query naming no fragment is refused (XEP-0049 §2.3:
    // not-acceptable), also when sent without 'to' to one's own account.
    let r = alice
        .iq("get", None, "<query xmlns='jabber:iq:private'/>")
        .await;
    assert_error(&r, "not-acceptable");
}

#[tokio::test]
async fn last_activity_is_told_to_subscribers_only() {
    let server = start(&["alice", "bob", "carol"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;
    let mut carol = login(&server, "carol", "laptop").await;
    grant(&mut bob, &mut alice).await;
    let aj = alice.jid().to_owned();
    let last = "<query xmlns='jabber:iq:last'/>";

    let r = bob.iq("get", Some(ALICE), last).await;
    assert_result(&r);
    assert_eq!(
        attr(&r[find_tag(&r, "query").expect("a query")..], "seconds").as_deref(),
        Some("0"),
        "online: {r}"
    );
    let r = carol.iq("get", Some(ALICE), last).await;
    assert_error(&r, "forbidden");

    // alice leaves the way clients do: unavailable with a status, then close.
    alice
        .send("<presence type='unavailable'><status>Heading Home</status></presence>")
        .await;
    alice.close(&server).await;
    bob.expect("alice leaving", presence_from(&aj, Some("unavailable")))
        .await;
    // Seconds are what is measured here: the clock has to move on.
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    let r = bob.iq("get", Some(ALICE), last).await;
    assert_result(&r);
    let q = &r[find_tag(&r, "query").expect("a query")..];
    let seconds: u64 = attr(q, "seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no seconds: {r}"));
    assert!((2..60).contains(&seconds), "seconds since logout: {r}");
    assert_eq!(
        inner_text(q.split("</iq>").next().unwrap_or(q)),
        "Heading Home",
        "XEP-0012 §3: the status of the last unavailable presence: {r}"
    );
    let r = carol.iq("get", Some(ALICE), last).await;
    assert_error(&r, "forbidden");
    bob.barrier().await;
    carol.barrier().await;
}

#[tokio::test]
async fn a_user_changes_the_password_in_band() {
    let server = start(&["alice", "bob"]);
    let mut alice = login(&server, "alice", "desk").await;
    let mut bob = login(&server, "bob", "phone").await;
    let change = |user: &str, pw: &str| {
        format!("<query xmlns='jabber:iq:register'><username>{user}</username><password>{pw}</password></query>")
    };

    // Not someone else's account.
    let r = bob
        .iq("set", Some(ALICE), &change("alice", "taken-over"))
        .await;
    assert_error(&r, "forbidden");

    let r = alice
        .iq("set", None, &change("alice", "brand-new-pw"))
        .await;
    assert_result(&r);

    match Client::try_login(&server, "alice", &password("alice"), "x").await {
        Err(e) => assert!(e.to_string().contains("not-authorized"), "{e}"),
        Ok(_) => panic!("the old password still works"),
    }
    let mut new = Client::login(&server, "alice", "brand-new-pw", "y").await;
    new.barrier().await;
    // bob's password is unchanged.
    Client::login(&server, "bob", &password("bob"), "z").await;

    // Naming another user in one's own change is refused (XEP-0077 §3.3),
    // without echoing the password.
    let r = alice.iq("set", None, &change("bob", "taken-over")).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("error"), "{r}");
    assert!(
        !r.contains("taken-over"),
        "the error does not echo the password: {r}"
    );
    // bob's password is still unchanged.
    Client::login(&server, "bob", &password("bob"), "w").await;
}

/// XEP-0082 `YYYY-MM-DDThh:mm:ss[.fff]Z` → Unix seconds.
fn parse_stamp(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let time = time.strip_suffix('Z')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    // Days since 1970-01-01 in the proleptic Gregorian calendar.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + sec)
}

#[test]
fn stamps_parse() {
    assert_eq!(parse_stamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_stamp("2000-02-29T00:00:00Z"), Some(951_782_400));
    assert_eq!(parse_stamp("2026-11-23T23:09:12.123Z"), Some(1_795_475_352));
    assert_eq!(parse_stamp("yesterday"), None);
}
