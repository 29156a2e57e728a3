//! Fast reconnect as a phone lives it, against the real binary: one SASL2
//! request (XEP-0388) logs in, binds a resource (Bind 2, XEP-0386), turns
//! stream management on and asks for a FAST token (XEP-0484); after its
//! network drops, one request with the token resumes the session inline,
//! and what it missed follows the `<success/>`. Tokens are per client,
//! refused when wrong, forgotten when invalidated, and a client that binds
//! anew replaces its own earlier session.

use base64::Engine as _;
use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, HOST, WAIT};

const SASL2: &str = "urn:xmpp:sasl:2";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn server() -> TestServer {
    ServerBuilder::new()
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start()
}

/// A connection after STARTTLS, with the features it was offered.
async fn secure(server: &TestServer) -> (RawClient, String) {
    let mut c = RawClient::connect(server.c2s()).await.unwrap();
    c.open_stream(HOST).await.unwrap();
    c.starttls(server.tls_config()).await.unwrap();
    let features = c.open_stream(HOST).await.unwrap();
    (c, features)
}

async fn next(c: &mut RawClient) -> String {
    c.read_element(WAIT)
        .await
        .unwrap_or_else(|e| panic!("waiting for the next element: {e}"))
}

/// The text of the first `<name>` in `xml`.
fn text_in(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}"))?;
    let rest = &xml[start..];
    let open_end = rest.find('>')?;
    let close = rest.find(&format!("</{name}>"))?;
    Some(rest[open_end + 1..close].to_string())
}

/// HMAC-SHA-256(token, label) without channel binding (`HT-SHA-256-NONE`).
fn ht(token: &str, label: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn token_response(user: &str, token: &str) -> String {
    let mut initial = format!("{user}\0").into_bytes();
    initial.extend(ht(token, "Initiator"));
    B64.encode(initial)
}

async fn barrier(c: &mut RawClient) {
    let id = c.new_id("b");
    c.send(&format!(
        "<iq type='get' id='{id}' to='{HOST}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await
    .unwrap();
    let reply = next(c).await;
    assert_eq!(attr(&reply, "id").as_deref(), Some(id.as_str()), "{reply}");
}

#[tokio::test]
async fn a_phone_logs_in_once_then_comes_back_with_a_token_in_one_round_trip() {
    let server = server();
    let mut bob = RawClient::login(server.c2s(), server.tls_config(), "bob", "bob-pw", "desk")
        .await
        .unwrap();

    // First login: password, Bind 2 with stream management, a token.
    let (mut phone, features) = secure(&server).await;
    assert!(
        features.contains(&format!("<authentication xmlns=\"{SASL2}\"")),
        "{features}"
    );
    assert!(features.contains("HT-SHA-256-NONE"), "{features}");
    phone
        .send(&format!(
            "<authenticate xmlns='{SASL2}' mechanism='PLAIN'>\
               <initial-response>{}</initial-response>\
               <user-agent id='7c5e6bd4-7d8b-4b1a-9a51-0b0c2f1d3e4f'><software>Test</software><device>Phone</device></user-agent>\
               <bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>\
               <request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>\
             </authenticate>",
            B64.encode(b"\0alice\0alice-pw")
        ))
        .await
        .unwrap();
    let success = next(&mut phone).await;
    assert_eq!(local_name(&success), "success", "{success}");
    let jid = text_in(&success, "authorization-identifier").unwrap();
    assert!(jid.starts_with("alice@localhost/Phone/"), "{success}");
    let enabled_at = success.find("<enabled").expect("stream management on");
    let enabled = &success[enabled_at..];
    let previd = attr(enabled, "id").expect("resumable");
    let token_at = success.find("<token").expect("a token");
    let token = attr(&success[token_at..], "token").unwrap();
    let features = next(&mut phone).await;
    assert_eq!(
        local_name(&features),
        "features",
        "no restart, features at once"
    );
    assert!(
        !features.contains("xmpp-bind"),
        "nothing left to bind: {features}"
    );

    // A conversation; the phone acknowledges nothing, then its network goes.
    bob.send(&format!(
        "<message to='{jid}' type='chat' id='m1'><body>one</body></message>"
    ))
    .await
    .unwrap();
    let m1 = next(&mut phone).await;
    assert_eq!(attr(&m1, "id").as_deref(), Some("m1"), "{m1}");
    drop(phone);
    server.wait_for_log(&["session hibernates", "alice@localhost"]);
    bob.send(&format!(
        "<message to='{jid}' type='chat' id='m2'><body>two</body></message>"
    ))
    .await
    .unwrap();
    barrier(&mut bob).await;

    // Back: the token and the resumption in one request.
    let (mut phone, _) = secure(&server).await;
    phone
        .send(&format!(
            "<authenticate xmlns='{SASL2}' mechanism='HT-SHA-256-NONE'>\
               <initial-response>{}</initial-response>\
               <user-agent id='7c5e6bd4-7d8b-4b1a-9a51-0b0c2f1d3e4f'/>\
               <fast xmlns='urn:xmpp:fast:0'/>\
               <resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>\
               <bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag></bind>\
             </authenticate>",
            token_response("alice", &token)
        ))
        .await
        .unwrap();
    let success = next(&mut phone).await;
    assert_eq!(local_name(&success), "success", "{success}");
    // The server proves it knows the token too.
    let additional = text_in(&success, "additional-data").unwrap();
    assert_eq!(
        B64.decode(additional.trim()).unwrap(),
        ht(&token, "Responder")
    );
    assert_eq!(text_in(&success, "authorization-identifier").unwrap(), jid);
    assert!(success.contains("<resumed"), "{success}");
    assert!(
        !success.contains("<bound"),
        "resumed, not bound anew: {success}"
    );
    // What it missed, after the success: m1 again (never acknowledged),
    // then m2; the features come between.
    let mut got = Vec::new();
    for _ in 0..3 {
        let el = next(&mut phone).await;
        if local_name(&el) == "message" {
            got.push(attr(&el, "id").unwrap());
        }
    }
    assert_eq!(got, ["m1", "m2"]);
    barrier(&mut phone).await;
}

#[tokio::test]
async fn tokens_are_refused_when_wrong_and_dead_once_invalidated() {
    let server = server();
    let agent = "<user-agent id='laptop-1'/>";
    let (mut c, _) = secure(&server).await;
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response>{agent}\
           <request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>",
        B64.encode(b"\0alice\0alice-pw")
    ))
    .await
    .unwrap();
    let success = next(&mut c).await;
    let token = attr(&success[success.find("<token").unwrap()..], "token").unwrap();
    // Bare JID: nothing was bound.
    assert_eq!(
        text_in(&success, "authorization-identifier").unwrap(),
        "alice@localhost"
    );
    drop(c);

    let try_token = |token: String, agent: &'static str, extra: &'static str| {
        let server = &server;
        async move {
            let (mut c, _) = secure(server).await;
            c.send(&format!(
                "<authenticate xmlns='{SASL2}' mechanism='HT-SHA-256-NONE'>\
                   <initial-response>{}</initial-response>{agent}<fast xmlns='urn:xmpp:fast:0'{extra}/>\
                 </authenticate>",
                token_response("alice", &token)
            ))
            .await
            .unwrap();
            next(&mut c).await
        }
    };
    let wrong = try_token("not-the-token".into(), agent, "").await;
    assert!(wrong.contains("<not-authorized"), "{wrong}");
    let other_client = try_token(token.clone(), "<user-agent id='someone-else'/>", "").await;
    assert!(other_client.contains("<not-authorized"), "{other_client}");
    let no_agent = try_token(token.clone(), "", "").await;
    assert!(no_agent.contains("<malformed-request"), "{no_agent}");
    let logout = try_token(token.clone(), agent, " invalidate='true'").await;
    assert_eq!(local_name(&logout), "success", "{logout}");
    assert!(
        !logout.contains("<token"),
        "no new token after invalidation"
    );
    let after = try_token(token, agent, "").await;
    assert!(after.contains("<not-authorized"), "{after}");
}

#[tokio::test]
async fn a_client_that_binds_anew_replaces_its_own_earlier_session() {
    let server = server();
    let login = |agent: &'static str| {
        let server = &server;
        async move {
            let (mut c, _) = secure(server).await;
            c.send(&format!(
                "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response>\
                   <user-agent id='{agent}'/><bind xmlns='urn:xmpp:bind:0'/></authenticate>",
                B64.encode(b"\0alice\0alice-pw")
            ))
            .await
            .unwrap();
            let success = next(&mut c).await;
            assert_eq!(local_name(&success), "success", "{success}");
            next(&mut c).await; // features
            c
        }
    };
    let mut first = login("tablet").await;
    let mut other_device = login("desktop").await;
    let mut again = login("tablet").await;
    let rest = first.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("conflict"), "{rest}");
    barrier(&mut other_device).await;
    barrier(&mut again).await;
}

#[tokio::test]
async fn carbons_enabled_inside_the_bind_2_request_copy_the_first_message() {
    let server = server();
    let (mut phone, features) = secure(&server).await;
    // The server says which features a bind request may enable inline.
    assert!(
        features.contains("<feature var=\"urn:xmpp:carbons:2\"/>"),
        "{features}"
    );
    phone
        .send(&format!(
            "<authenticate xmlns='{SASL2}' mechanism='PLAIN'>\
               <initial-response>{}</initial-response>\
               <user-agent id='phone-carbons'/>\
               <bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='urn:xmpp:carbons:2'/></bind>\
             </authenticate>",
            B64.encode(b"\0alice\0alice-pw")
        ))
        .await
        .unwrap();
    let success = next(&mut phone).await;
    assert_eq!(local_name(&success), "success", "{success}");
    let features = next(&mut phone).await;
    assert_eq!(local_name(&features), "features", "{features}");
    // No IQ to enable carbons: a message alice's laptop sends reaches the
    // phone as a <sent/> copy at once.
    let mut laptop = RawClient::login(
        server.c2s(),
        server.tls_config(),
        "alice",
        "alice-pw",
        "laptop",
    )
    .await
    .unwrap();
    laptop
        .send("<message to='bob@localhost' type='chat' id='c1'><body>from the laptop</body></message>")
        .await
        .unwrap();
    let copy = next(&mut phone).await;
    assert!(
        copy.contains("<sent xmlns=\"urn:xmpp:carbons:2\"") && copy.contains("from the laptop"),
        "{copy}"
    );
    barrier(&mut phone).await;
}
