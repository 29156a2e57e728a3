//! What today's clients need (XEP-0479's Advanced Server profile for IM
//! and mobile), as users see it against the real binary with the shared
//! [`Client`]: two devices kept in sync by message carbons, a new device
//! paging through the message archive, offline messages and retractions
//! in the archive, its errors, retention, a blocked spammer, and a phone
//! going inactive and active again.
//!
//! Every "nothing else arrives" check is a barrier taken once the server
//! has provably finished with what could have caused it.

mod archive;
mod blocking;
mod carbons;
mod csi;

use switchboard_integration_tests::client::reset_trace;
use switchboard_integration_tests::raw::{attr, between, local_name};
use switchboard_integration_tests::{Client, ServerBuilder, TestServer, HOST};

pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

pub fn bare(user: &str) -> String {
    format!("{user}@{HOST}")
}

pub fn password(user: &str) -> String {
    format!("{user}-secret-pw")
}

/// The default server with these users, and `host` as its `<host>`
/// element when given.
pub fn start_with(users: &[&str], host: Option<&str>) -> TestServer {
    reset_trace();
    let b = users
        .iter()
        .fold(ServerBuilder::new(), |b, u| b.user(&bare(u), &password(u)));
    match host {
        Some(h) => b.config(h),
        None => b,
    }
    .start()
}

pub fn start(users: &[&str]) -> TestServer {
    start_with(users, None)
}

/// Logged in, with the roster asked for and available presence sent.
pub async fn online(server: &TestServer, user: &str, resource: &str, priority: i8) -> Client {
    Client::online(server, user, &password(user), resource, priority).await
}

/// Logged in and bound, nothing else.
pub async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    Client::login(server, user, &password(user), resource).await
}

pub async fn chat(c: &mut Client, to: &str, id: &str, body: &str) {
    c.send(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>"
    ))
    .await;
}

/// A message (not an error) with `<body>body</body>`, itself or forwarded.
pub fn message_with(body: &str) -> impl Fn(&str) -> bool {
    let b = format!("<body>{body}</body>");
    move |e: &str| {
        local_name(e) == "message" && attr(e, "type").as_deref() != Some("error") && e.contains(&b)
    }
}

/// The id a `<stanza-id by='by'/>` in `el` gives, if any.
pub fn stanza_id(el: &str, by: &str) -> Option<String> {
    let mut rest = el;
    while let Some(i) = rest.find("<stanza-id ") {
        let tag = &rest[i..];
        let end = tag.find('>').map_or(tag.len(), |e| e + 1);
        let t = &tag[..end];
        if t.contains(&format!("by='{by}'")) || t.contains(&format!("by=\"{by}\"")) {
            return attr(t, "id");
        }
        rest = &tag[end..];
    }
    None
}

#[track_caller]
pub fn assert_result(reply: &str) {
    assert_eq!(
        attr(reply, "type").as_deref(),
        Some("result"),
        "expected a result: {reply}"
    );
}

#[track_caller]
pub fn assert_error(reply: &str, condition: &str) {
    assert_eq!(
        attr(reply, "type").as_deref(),
        Some("error"),
        "expected a <{condition}/> error: {reply}"
    );
    assert!(
        reply.contains(&format!("<{condition} xmlns=\"{STANZAS}\"")),
        "expected a <{condition}/> error: {reply}"
    );
}

/// The text of the first `<name>…</name>` in `el`.
pub fn text_of<'a>(el: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}");
    let i = el.find(&open)?;
    let after = &el[i..];
    let gt = after.find('>')?;
    if after[..gt].ends_with('/') {
        return Some("");
    }
    between(&after[gt..], ">", &format!("</{name}>"))
}
