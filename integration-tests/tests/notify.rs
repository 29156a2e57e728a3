//! `switchboard send` (the notify tool) against the real server, as a
//! monitoring script would run it: the binary in a child process, the
//! message on its standard input, the account in its environment or in a
//! file, and recipients that are real sessions (scripted raw clients) or
//! offline accounts that log in afterwards.
//!
//! Each failure mode is provoked for real and checked by its exit code and
//! by what standard error tells the operator: a closed port, a listener
//! that never speaks, an untrusted or wrongly pinned certificate, a wrong
//! password, malformed and unknown recipients, bad input.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use switchboard_integration_tests::raw::{attr, between, local_name};
use switchboard_integration_tests::server::run_cli_with;
use switchboard_integration_tests::{CliOutput, RawClient, ServerBuilder, TestServer, WAIT};

const BOT: &str = "bot@localhost";
const BOT_PW: &str = "bot-secret-pw";

fn server() -> TestServer {
    ServerBuilder::new()
        .user(BOT, BOT_PW)
        .user("ops@localhost", "ops-pw")
        .user("carol@localhost", "carol-pw")
        .start()
}

/// The account in the environment, as most scripts would give it.
const ENV: &[(&str, &str)] = &[
    ("SWITCHBOARD_SEND_JID", BOT),
    ("SWITCHBOARD_SEND_PASSWORD", BOT_PW),
];

/// `switchboard send --server ADDR ARGS…` with `stdin` and `env`.
fn send(addr: SocketAddr, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> CliOutput {
    let addr = addr.to_string();
    let mut all = vec!["send", "--server", addr.as_str()];
    all.extend_from_slice(args);
    run_cli_with(&all, stdin, env)
}

/// The same, trusting the server's own certificate through `--ca-file`.
fn send_trusting(
    server: &TestServer,
    args: &[&str],
    stdin: &[u8],
    env: &[(&str, &str)],
) -> CliOutput {
    let cert = server.cert_path();
    let mut all = vec!["--ca-file", cert.to_str().expect("UTF-8 temp path")];
    all.extend_from_slice(args);
    send(server.c2s(), &all, stdin, env)
}

/// Runs [`send_trusting`] off the async runtime (the recipients' raw
/// clients run on it meanwhile).
async fn send_async(server: &TestServer, args: &[&str], stdin: &'static [u8]) -> CliOutput {
    let cert = server.cert_path().to_str().expect("UTF-8").to_owned();
    let addr = server.c2s();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["--ca-file", cert.as_str()];
        all.extend(args.iter().map(String::as_str));
        send(addr, &all, stdin, ENV)
    })
    .await
    .expect("the send thread")
}

fn code(out: &CliOutput) -> Option<i32> {
    out.status.code()
}

/// The SHA-256 fingerprint the server logged for its generated certificate.
fn logged_fingerprint(server: &TestServer) -> String {
    let log = server.log_text();
    let at = log
        .find("SHA-256 fingerprint ")
        .unwrap_or_else(|| panic!("no fingerprint in the log:\n{log}"));
    log[at + "SHA-256 fingerprint ".len()..]
        .split_whitespace()
        .next()
        .expect("a fingerprint")
        .to_owned()
}

/// Logs `user` in, makes it available, and waits for its own presence.
async fn online(server: &TestServer, user: &str, password: &str) -> RawClient {
    let mut c = RawClient::login(server.c2s(), server.tls_config(), user, password, "desk")
        .await
        .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"));
    c.send("<presence/>").await.expect("send presence");
    next_named(&mut c, "presence").await;
    c
}

/// The next top-level element named `name` (others are skipped).
async fn next_named(c: &mut RawClient, name: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let el = c
            .read_element(left)
            .await
            .unwrap_or_else(|e| panic!("no <{name}/> arrived: {e}"));
        if local_name(&el) == name {
            return el;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_recipient_gets_the_body_type_and_subject() {
    let server = server();
    let mut ops = online(&server, "ops", "ops-pw").await;
    let out = send_async(
        &server,
        &[
            "--type",
            "headline",
            "--subject",
            "disk check",
            "ops@localhost",
        ],
        b"CRITICAL: /var is 95% full & <rising>\nsecond line\x1b[0m\n",
    )
    .await;
    assert_eq!(code(&out), Some(0), "{out}");
    let msg = next_named(&mut ops, "message").await;
    assert_eq!(attr(&msg, "type").as_deref(), Some("headline"), "{msg}");
    assert!(
        attr(&msg, "from").is_some_and(|f| f.starts_with("bot@localhost/")),
        "{msg}"
    );
    assert_eq!(
        between(&msg, "<subject>", "</subject>"),
        Some("disk check"),
        "{msg}"
    );
    // Escaped on the wire, the ESC removed, the trailing newline dropped.
    assert_eq!(
        between(&msg, "<body>", "</body>"),
        Some("CRITICAL: /var is 95% full &amp; &lt;rising&gt;\nsecond line[0m"),
        "{msg}"
    );
    assert!(
        out.stderr.contains("removed 1 character XML cannot carry")
            && out.stderr.contains("U+001B"),
        "the operator is told what was removed: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_recipients_one_online_one_offline_both_get_it() {
    let server = server();
    let mut ops = online(&server, "ops", "ops-pw").await;
    let out = send_async(
        &server,
        &["ops@localhost", "Carol@LOCALHOST"],
        b"backup finished\n",
    )
    .await;
    assert_eq!(code(&out), Some(0), "{out}");
    assert_eq!(out.stderr, "", "success is silent (cron mails any output)");
    let msg = next_named(&mut ops, "message").await;
    assert_eq!(
        attr(&msg, "type").as_deref(),
        Some("chat"),
        "chat by default: {msg}"
    );
    assert_eq!(between(&msg, "<body>", "</body>"), Some("backup finished"));
    // The offline recipient's copy was stored (exit 0 waited for that) and
    // comes at the next login.
    let mut carol = online(&server, "carol", "carol-pw").await;
    let stored = next_named(&mut carol, "message").await;
    assert_eq!(
        between(&stored, "<body>", "</body>"),
        Some("backup finished")
    );
    assert!(stored.contains("urn:xmpp:delay"), "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_local_user_is_65_naming_the_recipient() {
    let server = server();
    let mut ops = online(&server, "ops", "ops-pw").await;
    let out = send_async(&server, &["nobody@localhost", "ops@localhost"], b"hello\n").await;
    assert_eq!(code(&out), Some(65), "{out}");
    assert!(
        out.stderr
            .contains("not delivered to nobody@localhost: service-unavailable"),
        "{out}"
    );
    assert!(
        out.stderr.contains("handed over for ops@localhost"),
        "{out}"
    );
    // The other recipient did get it.
    let msg = next_named(&mut ops, "message").await;
    assert_eq!(between(&msg, "<body>", "</body>"), Some("hello"));
}

#[test]
fn a_remote_domain_is_65_with_remote_server_not_found() {
    let server = server();
    let out = send_trusting(&server, &["ops@elsewhere.example"], b"hi", ENV);
    assert_eq!(code(&out), Some(65), "{out}");
    assert!(
        out.stderr
            .contains("ops@elsewhere.example: remote-server-not-found"),
        "{out}"
    );
}

#[test]
fn a_malformed_recipient_is_65_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let out = send(addr, &["ops@localhost", "bad@@localhost"], b"hi", ENV);
    assert_eq!(code(&out), Some(65), "{out}");
    assert!(out.stderr.contains("\"bad@@localhost\""), "{out}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing may connect when a recipient is malformed"
    );
}

#[test]
fn a_closed_port_is_68() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let out = send(addr, &["ops@localhost"], b"hi", ENV);
    assert_eq!(code(&out), Some(68), "{out}");
    assert!(out.stderr.contains("cannot connect to 127.0.0.1:"), "{out}");
}

#[test]
fn a_server_that_never_speaks_is_75_after_the_timeout() {
    // Connections complete in the backlog; nobody ever reads or writes.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let started = Instant::now();
    let out = send(addr, &["--timeout", "1", "ops@localhost"], b"hi", ENV);
    let took = started.elapsed();
    assert_eq!(code(&out), Some(75), "{out}");
    assert!(
        out.stderr
            .contains("timed out after 1 s waiting for the server's stream header"),
        "{out}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    drop(listener);
}

#[test]
fn an_untrusted_certificate_is_74_with_its_fingerprint_which_can_then_be_pinned() {
    let server = server();
    let fp = logged_fingerprint(&server);
    // The system roots do not know the self-signed certificate.
    let out = send(server.c2s(), &["ops@localhost"], b"hi", ENV);
    assert_eq!(code(&out), Some(74), "{out}");
    assert!(out.stderr.contains("not signed by an authority"), "{out}");
    assert!(
        out.stderr.contains(&format!("--fingerprint {fp}")),
        "the logged fingerprint {fp} is printed: {out}"
    );

    // Pinned: delivered (lower case and without colons is fine too).
    let pin = fp.replace(':', "").to_lowercase();
    let out = send(
        server.c2s(),
        &["--fingerprint", &pin, "ops@localhost"],
        b"hi",
        ENV,
    );
    assert_eq!(code(&out), Some(0), "{out}");

    // Pinned to another certificate: refused, with what was presented.
    let other = "00:".repeat(31) + "00";
    let out = send(
        server.c2s(),
        &["--fingerprint", &other, "ops@localhost"],
        b"hi",
        ENV,
    );
    assert_eq!(code(&out), Some(74), "{out}");
    assert!(out.stderr.contains("does not match the pinned"), "{out}");
    assert!(out.stderr.contains(&fp), "{out}");

    // Not a fingerprint at all: a usage error.
    let out = send(
        server.c2s(),
        &["--fingerprint", "AB:CD", "ops@localhost"],
        b"hi",
        ENV,
    );
    assert_eq!(code(&out), Some(64), "{out}");
}

#[test]
fn a_wrong_password_is_77() {
    let server = server();
    let env = [
        ("SWITCHBOARD_SEND_JID", BOT),
        ("SWITCHBOARD_SEND_PASSWORD", "not-the-password"),
    ];
    let out = send_trusting(&server, &["ops@localhost"], b"hi", &env);
    assert_eq!(code(&out), Some(77), "{out}");
    assert!(
        out.stderr
            .contains("the server refused the login of bot@localhost (not-authorized"),
        "{out}"
    );
    assert!(!out.stderr.contains("not-the-password"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_can_come_from_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let server = server();
    let mut ops = online(&server, "ops", "ops-pw").await;
    let file = server.home().join("send-account");
    std::fs::write(
        &file,
        format!("# for the disk check\njid = {BOT}\npassword = {BOT_PW}\n"),
    )
    .expect("write the account file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let path = file.to_str().expect("UTF-8").to_owned();
    // The environment names someone else: the file wins.
    let env = [("SWITCHBOARD_SEND_JID", "ops@localhost")];
    let out = {
        let path = path.clone();
        let (cert, addr) = (server.cert_path(), server.c2s());
        tokio::task::spawn_blocking(move || {
            let cert = cert.to_str().expect("UTF-8").to_owned();
            send(
                addr,
                &["--ca-file", &cert, "--account-file", &path, "ops@localhost"],
                b"from the file",
                &env,
            )
        })
        .await
        .expect("the send thread")
    };
    assert_eq!(code(&out), Some(0), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    let msg = next_named(&mut ops, "message").await;
    assert!(
        attr(&msg, "from").is_some_and(|f| f.starts_with("bot@localhost/")),
        "{msg}"
    );

    // Readable by others: still sent, with a warning that says what to do.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = send_trusting(
        &server,
        &["--account-file", &path, "ops@localhost"],
        b"x",
        &[],
    );
    assert_eq!(code(&out), Some(0), "{out}");
    assert!(out.stderr.contains(&format!("chmod 600 {path}")), "{out}");

    // A missing file is a usage error.
    let missing = server.home().join("nope");
    let out = send_trusting(
        &server,
        &[
            "--account-file",
            missing.to_str().expect("UTF-8"),
            "ops@localhost",
        ],
        b"x",
        ENV,
    );
    assert_eq!(code(&out), Some(64), "{out}");
}

#[test]
fn there_is_no_password_flag_and_no_account_is_a_usage_error() {
    let out = run_cli_with(&["send", "--help"], b"", &[]);
    assert_eq!(code(&out), Some(0), "{out}");
    assert!(out.stdout.contains("SWITCHBOARD_SEND_PASSWORD"), "{out}");
    assert!(!out.stdout.contains("--password"), "{out}");
    assert!(
        out.stdout.contains("77"),
        "the exit codes are documented: {out}"
    );
    let out = run_cli_with(
        &["send", "--password", "hunter2", "ops@localhost"],
        b"hi",
        &[],
    );
    assert_eq!(code(&out), Some(64), "{out}");
    // Nothing to log in with.
    let out = run_cli_with(&["send", "ops@localhost"], b"hi", &[]);
    assert_eq!(code(&out), Some(64), "{out}");
    assert!(out.stderr.contains("--account-file"), "{out}");
    // No recipient.
    let out = run_cli_with(&["send"], b"hi", ENV);
    assert_eq!(code(&out), Some(64), "{out}");
}

#[test]
fn empty_or_non_utf8_input_is_65() {
    let server = server();
    for (stdin, needle) in [
        (&b""[..], "empty"),
        (b"\n\n", "empty"),
        (b"caf\xe9\n", "not valid UTF-8"),
    ] {
        let out = send_trusting(&server, &["ops@localhost"], stdin, ENV);
        assert_eq!(code(&out), Some(65), "{stdin:?}: {out}");
        assert!(out.stderr.contains(needle), "{stdin:?}: {out}");
    }
}
