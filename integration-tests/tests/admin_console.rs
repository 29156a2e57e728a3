//! The web admin console (`/admin/`) against the real binary, over HTTPS
//! with the server's certificate verified, and real XMPP clients on the
//! other side of each action:
//!
//! * a wrong password, a non-admin, a missing or forged cookie and a login
//!   form without its token are refused;
//! * a POST without the session's CSRF token, or from another site's
//!   page, is refused with 403 and does nothing;
//! * a user created in the console logs in over XMPP, a password reset
//!   there takes effect, a deleted user cannot log in;
//! * a session kicked there sees its stream closed; an announcement
//!   reaches an online client; the message of the day is set;
//! * the group chat service's rooms are listed, announced to and
//!   destroyed;
//! * hostile input: a form body past `max-body-bytes` is 413 (declared or
//!   streamed), a bad cookie sends the browser to the login page;
//! * failed console logins make the next attempts wait, XMPP ones too;
//! * over plain HTTP the console is not served at all.

use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::ws::http;
use switchboard_integration_tests::{Client, ServerBuilder, TestServer, HOST};

fn server() -> TestServer {
    ServerBuilder::new()
        .config(
            r#"<host name="localhost"><admin>boss@localhost</admin><registration>off</registration></host>"#,
        )
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><https addr="127.0.0.1:0"/></listen>"#)
        .also(r#"<service id="conference.localhost" type="muc"/>"#)
        .user("boss@localhost", "boss-pw")
        .user("alice@localhost", "alice-pw")
        .start()
}

/// An HTTP answer, taken apart.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The values of header `name` (case-insensitive).
    fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// The value cookie `name` is set to, if this answer sets it.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers("set-cookie").iter().find_map(|c| {
            let (k, v) = c.split(';').next()?.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    fn location(&self) -> Option<String> {
        self.headers("location").into_iter().next()
    }
}

/// One request over HTTPS; `extra` are more header lines.
async fn request(
    server: &TestServer,
    method: &str,
    path: &str,
    extra: &[String],
    body: &str,
) -> Answer {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let raw = http(
        server.listener("https"),
        Some(server.tls_config()),
        req.as_bytes(),
    )
    .await;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {raw}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `application/x-www-form-urlencoded` for these fields.
fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the first hidden `csrf` field in a page.
fn csrf_in(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

const SESSION: &str = "__Host-switchboard-admin";
const LOGIN: &str = "__Host-switchboard-login";

/// Posts the login form (after fetching it, as a browser does).
async fn try_login(server: &TestServer, jid: &str, password: &str) -> Answer {
    let page = request(server, "GET", "/admin/login", &[], "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = page.cookie(LOGIN).expect("the login form sets its cookie");
    assert_eq!(csrf_in(&page.body), token, "double-submitted");
    request(
        server,
        "POST",
        "/admin/login",
        &[format!("Cookie: {LOGIN}={token}")],
        &form(&[
            ("csrf", token.as_str()),
            ("jid", jid),
            ("password", password),
        ]),
    )
    .await
}

/// A logged-in console: its cookie header and CSRF token.
struct Console {
    cookie: String,
    csrf: String,
}

async fn login(server: &TestServer) -> Console {
    let a = try_login(server, "boss@localhost", "boss-pw").await;
    assert_eq!(a.status, 303, "{}\n{}", a.head, a.body);
    assert_eq!(a.location().as_deref(), Some("/admin/"));
    let set = a
        .headers("set-cookie")
        .into_iter()
        .find(|c| c.starts_with(SESSION))
        .expect("a session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = format!("Cookie: {SESSION}={}", a.cookie(SESSION).unwrap());
    let status = request(server, "GET", "/admin/", std::slice::from_ref(&cookie), "").await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert!(status.body.contains("Server status"), "{}", status.body);
    Console {
        csrf: csrf_in(&status.body),
        cookie,
    }
}

impl Console {
    async fn get(&self, server: &TestServer, path: &str) -> Answer {
        request(server, "GET", path, std::slice::from_ref(&self.cookie), "").await
    }

    /// Posts a form with the CSRF token; expects the redirect back, and
    /// returns the page it leads to (with the outcome's message).
    async fn post(&self, server: &TestServer, path: &str, fields: &[(&str, &str)]) -> String {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let a = request(
            server,
            "POST",
            path,
            &[self.cookie.clone(), "Origin: https://localhost".into()],
            &form(&all),
        )
        .await;
        assert_eq!(a.status, 303, "{path}: {}\n{}", a.head, a.body);
        let back = a.location().expect("a redirect");
        let page = self.get(server, &back).await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.body
    }
}

/// The text of the page's flash message.
fn flash(page: &str) -> String {
    let at = page
        .find("class=\"flash")
        .unwrap_or_else(|| panic!("no message on the page: {page}"));
    let rest = &page[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest.find("</p>").unwrap();
    rest[start..end].to_string()
}

#[tokio::test]
async fn wrong_passwords_non_admins_and_strangers_are_refused() {
    let server = server();
    let a = try_login(&server, "boss@localhost", "not-the-password").await;
    assert_eq!(a.status, 403);
    assert!(
        a.cookie(SESSION).is_none(),
        "no session for a wrong password"
    );
    assert!(
        a.body.contains("The Jabber ID or the password is wrong."),
        "{}",
        a.body
    );

    // An unknown account reads the same.
    let a = try_login(&server, "nobody@localhost", "x").await;
    assert_eq!(a.status, 403);
    assert!(
        a.body.contains("The Jabber ID or the password is wrong."),
        "{}",
        a.body
    );

    // Alice's password is right, but she administers nothing.
    let a = try_login(&server, "alice@localhost", "alice-pw").await;
    assert_eq!(a.status, 403);
    assert!(a.cookie(SESSION).is_none());
    assert!(
        a.body
            .contains("alice@localhost is not an administrator of any host"),
        "{}",
        a.body
    );

    // Without a session, every page leads to the login form.
    for path in ["/admin/", "/admin/users", "/admin/sessions"] {
        let a = request(&server, "GET", path, &[], "").await;
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(a.location().as_deref(), Some("/admin/login"));
    }
    // A cookie the server never gave, or one that is not a token at all.
    let forged = format!("Cookie: {SESSION}={}", "ab".repeat(32));
    for cookie in [
        forged,
        format!("Cookie: {SESSION}=<script>"),
        "Cookie: ;;=;".into(),
    ] {
        let a = request(
            &server,
            "GET",
            "/admin/users",
            std::slice::from_ref(&cookie),
            "",
        )
        .await;
        assert_eq!(a.status, 303, "{cookie}");
        assert_eq!(a.location().as_deref(), Some("/admin/login"));
    }
    // The login form without its double-submitted token.
    let a = request(
        &server,
        "POST",
        "/admin/login",
        &[],
        &form(&[("jid", "boss@localhost"), ("password", "boss-pw")]),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.cookie(SESSION).is_none());

    // The right admin gets in, and out again.
    let c = login(&server).await;
    let page = c.post(&server, "/admin/logout", &[]).await;
    assert!(page.contains("Log in"), "{page}");
    let a = c.get(&server, "/admin/").await;
    assert_eq!(a.status, 303, "the session is over on the server");
}

#[tokio::test]
async fn posts_without_the_token_or_from_another_site_are_refused() {
    let server = server();
    let c = login(&server).await;
    let mut alice = Client::online(&server, "alice", "alice-pw", "desk", 0).await;
    for (extra, fields) in [
        (vec![], form(&[("jid", "alice@localhost/desk")])),
        (
            vec![],
            form(&[("csrf", "00"), ("jid", "alice@localhost/desk")]),
        ),
        (
            vec!["Origin: https://evil.example".to_string()],
            form(&[("csrf", c.csrf.as_str()), ("jid", "alice@localhost/desk")]),
        ),
    ] {
        let mut headers = vec![c.cookie.clone()];
        headers.extend(extra);
        let a = request(&server, "POST", "/admin/sessions/kick", &headers, &fields).await;
        assert_eq!(a.status, 403, "{}", a.body);
    }
    // Nothing happened: alice is still connected and online.
    alice.barrier().await;
    let page = c.get(&server, "/admin/sessions").await;
    assert!(page.body.contains("alice@localhost/desk"), "{}", page.body);
}

#[tokio::test]
async fn a_user_created_in_the_console_logs_in_over_xmpp() {
    let server = server();
    let c = login(&server).await;
    let page = c
        .post(
            &server,
            "/admin/users/add",
            &[
                ("host", "localhost"),
                ("user", "Carol"),
                ("password", "carol-pw"),
            ],
        )
        .await;
    assert_eq!(flash(&page), "carol@localhost is created.");
    assert!(page.contains(">carol@localhost</td>"), "{page}");
    let carol = Client::login(&server, "carol", "carol-pw", "web").await;
    assert!(carol.jid().starts_with("carol@localhost/"));
    carol.close(&server).await;

    // A taken name is said so.
    let page = c
        .post(
            &server,
            "/admin/users/add",
            &[("host", "localhost"), ("user", "carol"), ("password", "x")],
        )
        .await;
    assert!(flash(&page).contains("that user name is taken"), "{page}");

    let page = c
        .post(
            &server,
            "/admin/users/password",
            &[("jid", "carol@localhost"), ("password", "new-pw")],
        )
        .await;
    assert_eq!(flash(&page), "The password of carol@localhost is changed.");
    assert!(Client::try_login(&server, "carol", "carol-pw", "web")
        .await
        .is_err());
    Client::login(&server, "carol", "new-pw", "web")
        .await
        .close(&server)
        .await;

    let page = c
        .post(
            &server,
            "/admin/users/delete",
            &[("jid", "carol@localhost")],
        )
        .await;
    assert_eq!(flash(&page), "carol@localhost is deleted.");
    assert!(!page.contains(">carol@localhost</td>"), "{page}");
    assert!(Client::try_login(&server, "carol", "new-pw", "web")
        .await
        .is_err());

    // Another server's account is not this admin's to touch.
    let page = c
        .post(
            &server,
            "/admin/users/delete",
            &[("jid", "someone@example.org")],
        )
        .await;
    assert!(
        flash(&page).contains("not an administrator of example.org"),
        "{page}"
    );
}

#[tokio::test]
async fn a_kicked_session_sees_its_stream_closed() {
    let server = server();
    let c = login(&server).await;
    let mut alice = Client::online(&server, "alice", "alice-pw", "desk", 0).await;
    let page = c.get(&server, "/admin/sessions").await;
    assert!(
        page.body.contains(">alice@localhost/desk</td>"),
        "{}",
        page.body
    );
    let page = c
        .post(
            &server,
            "/admin/sessions/kick",
            &[("jid", "alice@localhost/desk")],
        )
        .await;
    assert_eq!(flash(&page), "alice@localhost/desk: 1 session(s) closed.");
    let rest = alice.expect_closed().await;
    assert!(rest.contains("<policy-violation"), "{rest}");
    assert!(rest.contains("kicked by an administrator"), "{rest}");
    // Kicking it again finds nobody.
    let page = c
        .post(
            &server,
            "/admin/sessions/kick",
            &[("jid", "alice@localhost/desk")],
        )
        .await;
    assert!(flash(&page).contains("has no session"), "{page}");
}

#[tokio::test]
async fn an_announcement_and_the_message_of_the_day_reach_online_clients() {
    let server = server();
    let c = login(&server).await;
    let mut alice = Client::online(&server, "alice", "alice-pw", "desk", 0).await;
    let page = c
        .post(
            &server,
            "/admin/announce",
            &[
                ("host", "localhost"),
                ("subject", "Maintenance"),
                ("body", "Back at <five> & done."),
            ],
        )
        .await;
    assert_eq!(
        flash(&page),
        "The announcement was sent to 1 online session(s) on localhost."
    );
    let m = alice
        .expect("the announcement", |e| {
            local_name(e) == "message" && attr(e, "from").as_deref() == Some(HOST)
        })
        .await;
    assert!(
        m.contains("<body>Back at &lt;five&gt; &amp; done.</body>"),
        "{m}"
    );
    assert!(m.contains("<subject>Maintenance</subject>"), "{m}");

    let page = c
        .post(
            &server,
            "/admin/motd",
            &[
                ("host", "localhost"),
                ("op", "set"),
                ("body", "Welcome <b>in</b>"),
            ],
        )
        .await;
    assert!(flash(&page).contains("is set; 1 online user(s)"), "{page}");
    assert!(
        page.contains("<blockquote class=\"motd\">Welcome &lt;b&gt;in&lt;/b&gt;</blockquote>"),
        "shown escaped: {page}"
    );
    let m = alice
        .expect("the message of the day", |e| {
            local_name(e) == "message" && e.contains("Welcome &lt;b&gt;in&lt;/b&gt;")
        })
        .await;
    assert_eq!(attr(&m, "from").as_deref(), Some(HOST), "{m}");
    let page = c
        .post(
            &server,
            "/admin/motd",
            &[("host", "localhost"), ("op", "delete")],
        )
        .await;
    assert_eq!(
        flash(&page),
        "The message of the day of localhost is deleted."
    );
    assert!(page.contains("No message of the day."), "{page}");
    alice.account_barrier().await;
}

#[tokio::test]
async fn rooms_are_listed_and_destroyed_through_the_service() {
    let server = server();
    let c = login(&server).await;
    let mut alice = Client::online(&server, "alice", "alice-pw", "desk", 0).await;
    alice
        .send("<presence to='lobby@conference.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        .await;
    alice
        .expect("her own presence in the room", |e| {
            local_name(e) == "presence"
                && attr(e, "from").as_deref() == Some("lobby@conference.localhost/alice")
        })
        .await;
    let page = c.get(&server, "/admin/rooms").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<td>lobby@conference.localhost</td>"),
        "{}",
        page.body
    );
    let page = c
        .post(
            &server,
            "/admin/rooms/announce",
            &[("body", "The rooms close at six.")],
        )
        .await;
    assert_eq!(flash(&page), "sent to 1 rooms");
    let m = alice
        .expect("the rooms' announcement", |e| {
            local_name(e) == "message" && e.contains("The rooms close at six.")
        })
        .await;
    assert!(
        attr(&m, "from")
            .unwrap_or_default()
            .starts_with("lobby@conference.localhost"),
        "{m}"
    );
    let page = c
        .post(
            &server,
            "/admin/rooms/destroy",
            &[
                ("room", "lobby@conference.localhost"),
                ("reason", "closing"),
            ],
        )
        .await;
    assert!(
        flash(&page).starts_with("lobby@conference.localhost is destroyed."),
        "{page}"
    );
    let p = alice
        .expect("the room's end", |e| {
            local_name(e) == "presence" && e.contains("<destroy")
        })
        .await;
    assert!(p.contains("closing"), "{p}");
    assert!(page.contains("0 rooms."), "{page}");
}

#[tokio::test]
async fn hostile_input_is_refused_plainly() {
    let server = server();
    let c = login(&server).await;
    // A body declared larger than max-body-bytes: refused before it is read.
    let req = format!(
        "POST /admin/announce HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000000\r\n\r\ncsrf=",
        c.cookie
    );
    let raw = http(
        server.listener("https"),
        Some(server.tls_config()),
        req.as_bytes(),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    // A streamed body that only turns out too large.
    let chunk = "a".repeat(300_000);
    let req = format!(
        "POST /admin/announce HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        c.cookie,
        chunk.len()
    );
    let raw = http(
        server.listener("https"),
        Some(server.tls_config()),
        req.as_bytes(),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    // Not a form at all.
    let req = format!(
        "POST /admin/announce HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{}\r\n\
         Content-Type: text/xml\r\nContent-Length: 3\r\n\r\n<a>",
        c.cookie
    );
    let raw = http(
        server.listener("https"),
        Some(server.tls_config()),
        req.as_bytes(),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 415 "), "{raw}");
    // Markup in a submitted name comes back escaped.
    let page = c
        .post(
            &server,
            "/admin/users/add",
            &[
                ("host", "localhost"),
                ("user", "<script>x"),
                ("password", "p"),
            ],
        )
        .await;
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;x"), "{page}");
    // Pages carry the headers that keep them out of frames and caches.
    let a = c.get(&server, "/admin/").await;
    assert_eq!(a.headers("x-frame-options"), ["DENY"]);
    assert_eq!(a.headers("cache-control"), ["no-store"]);
    assert!(a.headers("content-security-policy")[0].contains("frame-ancestors 'none'"));
    // The console is still there afterwards.
    assert!(a.body.contains("Server status"));
}

#[tokio::test]
async fn the_console_is_not_served_over_plain_http() {
    let server = ServerBuilder::new()
        .config(
            r#"<host name="localhost"><admin>boss@localhost</admin><registration>off</registration></host>"#,
        )
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><http addr="127.0.0.1:0"/></listen>"#)
        .user("boss@localhost", "boss-pw")
        .start();
    let raw = http(
        server.listener("http"),
        None,
        b"GET /admin/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 403 "), "{raw}");
    assert!(raw.contains("served over HTTPS only"), "{raw}");
    assert!(!raw.contains("Set-Cookie"), "{raw}");
}

#[tokio::test]
async fn failed_console_logins_slow_the_next_attempts_like_xmpp_ones() {
    let server = ServerBuilder::new()
        .config(
            r#"<host name="localhost"><admin>boss@localhost</admin><registration>off</registration></host>"#,
        )
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><https addr="127.0.0.1:0"/></listen>"#)
        .config(
            r#"<auth-delay forget="10m"><address after="2" first="3s" max="3s"/><account after="10" first="1s" max="5s"/></auth-delay>"#,
        )
        .user("boss@localhost", "boss-pw")
        .user("alice@localhost", "alice-pw")
        .start();
    for _ in 0..2 {
        let a = try_login(&server, "boss@localhost", "guess").await;
        assert_eq!(a.status, 403);
    }
    // The next attempt from this address waits, the right password too.
    let started = std::time::Instant::now();
    let a = try_login(&server, "boss@localhost", "boss-pw").await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
    // The console's failures count for XMPP logins from the address too.
    let started = std::time::Instant::now();
    Client::login(&server, "alice", "alice-pw", "desk").await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "logged in after {:?}",
        started.elapsed()
    );
}
