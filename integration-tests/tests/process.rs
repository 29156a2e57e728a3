//! The server as an operator sees it: `check-config` diagnostics, the
//! pidfile (stale and live), and signals — SIGTERM closes every stream
//! with `<system-shutdown/>` and exits 0, SIGHUP leaves sessions alone.

use std::fs;

use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::server::run_cli;
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, HOST, WAIT};

const PASSWORD: &str = "process-secret";

#[test]
fn check_config_accepts_the_test_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.xml");
    fs::write(&path, ServerBuilder::new().config_xml()).unwrap();
    let out = run_cli(&["-c", path.to_str().unwrap(), "check-config"], None);
    assert!(
        out.status.success(),
        "check-config rejected a valid config: {out}"
    );
}

#[test]
fn check_config_points_at_a_typo_and_suggests_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.xml");
    // `<lisen>` is on line 3, its `<` in column 3.
    let config = "<switchboard>\n  <host name=\"localhost\"/>\n  <lisen><c2s addr=\"127.0.0.1:0\"/></lisen>\n</switchboard>\n";
    fs::write(&path, config).unwrap();
    let path_str = path.to_str().unwrap();
    let out = run_cli(&["-c", path_str, "check-config"], None);
    assert!(
        !out.status.success(),
        "a typo must fail check-config: {out}"
    );

    let prefix = format!("{path_str}:3:");
    let at = out
        .stderr
        .find(&prefix)
        .unwrap_or_else(|| panic!("no `{prefix}COL:` location in stderr: {out}"));
    let col: String = out.stderr[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(
        matches!(col.as_str(), "3" | "4")
            && out.stderr[at + prefix.len() + col.len()..].starts_with(':'),
        "the column should point at `<lisen>` (3 or 4): {out}"
    );
    assert!(
        out.stderr.contains("did you mean <listen>"),
        "a suggestion for the typo: {out}"
    );
}

/// The pid of a process that has certainly exited.
fn dead_pid() -> u32 {
    for _ in 0..10 {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("run `true`");
        let pid = child.id();
        child.wait().unwrap();
        // SAFETY: kill(pid, 0) only checks for existence.
        let gone = unsafe { libc::kill(pid as libc::pid_t, 0) } != 0;
        if gone {
            return pid;
        }
    }
    panic!("could not find a dead pid");
}

#[test]
fn stale_pidfile_is_replaced() {
    let stale = dead_pid();
    let server = ServerBuilder::new()
        .prepare(move |home| {
            fs::create_dir_all(home.join("run")).unwrap();
            fs::write(home.join("run/switchboard.pid"), format!("{stale}\n")).unwrap();
        })
        .start();
    let pid = fs::read_to_string(server.pidfile()).expect("pidfile");
    assert_eq!(
        pid.trim(),
        server.pid().to_string(),
        "the pidfile names the new server"
    );
}

#[test]
fn live_pidfile_stops_a_second_start() {
    let mut first = TestServer::start(&[]);
    let second = ServerBuilder::new().home(first.home()).try_start();
    let err = match second {
        Ok(_) => panic!("a second server started in a home whose server is running"),
        Err(e) => e,
    };
    let status = err
        .status
        .unwrap_or_else(|| panic!("the second server should exit: {err}"));
    assert!(!status.success(), "it should exit non-zero: {err}");
    let said = format!("{}\n{}", err.stdout, err.stderr).to_lowercase();
    assert!(
        said.contains(&first.pid().to_string()) || said.contains("running"),
        "the message should name the running server (pid {}): {err}",
        first.pid()
    );
    assert!(first.is_running(), "the first server is untouched");
    let pid = fs::read_to_string(first.pidfile()).expect("pidfile still there");
    assert_eq!(pid.trim(), first.pid().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_system_shutdown_and_exits_cleanly() {
    let mut server = TestServer::start(&[]);
    server.add_user("alice@localhost", PASSWORD);
    let pidfile = server.pidfile();
    assert_eq!(
        fs::read_to_string(&pidfile)
            .expect("pidfile while running")
            .trim(),
        server.pid().to_string()
    );

    let mut authed = RawClient::login(server.c2s(), server.tls_config(), "alice", PASSWORD, "t")
        .await
        .expect("login");
    let mut fresh = RawClient::connect(server.c2s()).await.unwrap();
    fresh.open_stream(HOST).await.unwrap();

    server.signal(libc::SIGTERM);
    for (what, c) in [("authenticated", &mut authed), ("pre-TLS", &mut fresh)] {
        let reply = c
            .read_to_close(WAIT)
            .await
            .unwrap_or_else(|e| panic!("{what} stream not closed after SIGTERM: {e}"));
        assert!(
            reply.contains("<system-shutdown"),
            "{what} stream should get <system-shutdown/>: {reply:?}"
        );
        assert!(reply.contains("</stream:stream>"), "{what}: {reply:?}");
    }
    let status = server
        .wait_exit(WAIT)
        .expect("the server exits after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    assert!(!pidfile.exists(), "the pidfile is removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_sessions_connected() {
    let mut server = TestServer::start(&[]);
    server.add_user("alice@localhost", PASSWORD);
    let mut c = RawClient::login(server.c2s(), server.tls_config(), "alice", PASSWORD, "hup")
        .await
        .expect("login");
    let pong = c.ping(HOST).await.unwrap();
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"), "{pong}");

    server.signal(libc::SIGHUP);
    // The reload is logged once it is done: whatever SIGHUP does to the
    // process and its sessions has happened by then.
    server.wait_for_log(&["reloaded the config on SIGHUP"]);
    assert!(server.is_running(), "SIGHUP must not stop the server");

    let pong = c.ping(HOST).await.expect("the session survives SIGHUP");
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"), "{pong}");
    // And new logins still work.
    let mut again = RawClient::login(server.c2s(), server.tls_config(), "alice", PASSWORD, "new")
        .await
        .expect("login after SIGHUP");
    let pong = again.ping(HOST).await.unwrap();
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"), "{pong}");
}
