//! Slow HTTP clients against the real binary (slowloris and its body
//! variants): a request head trickled a byte a second, a connection that
//! sends nothing, a BOSH body trickled, an upload that stalls half way
//! and one trickled just fast enough never to be idle. Each is cut off by
//! a time limit from `<web>` (`header-timeout`, `body-timeout`,
//! `min-body-rate`) while other clients are served meanwhile, and an
//! upload given up stores nothing and takes none of the quota.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_integration_tests::ws::http;
use switchboard_integration_tests::{Client, ServerBuilder, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Limits of a few seconds so the tests are quick (the defaults are 10 s
/// and 30 s); the head's is the longer so that the clients served while
/// a slow head trickles in (a login among them) are done well before it
/// is cut off, even on a busy machine.
const HEADER_TIMEOUT: u64 = 6;
const BODY_TIMEOUT: u64 = 3;

fn server() -> TestServer {
    ServerBuilder::new()
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><http addr="127.0.0.1:0"/></listen>"#)
        .config(&format!(
            r#"<web header-timeout="{HEADER_TIMEOUT}s" body-timeout="{BODY_TIMEOUT}s" min-body-rate="1K"/>"#
        ))
        .also(r#"<service id="upload.localhost" type="upload" max-file-size="100000" quota="120000"/>"#)
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start()
}

/// What a slow client saw: how long until the server answered or closed,
/// and what it answered.
struct Cut {
    after: Duration,
    answer: String,
}

/// Sends `start` at once, then `trickle` one byte every `every`, until the
/// server answers or closes (or 30 s pass, which fails the test).
async fn trickle(server: &TestServer, start: &[u8], trickle: &[u8], every: Duration) -> Cut {
    let mut tcp = TcpStream::connect(server.listener("http")).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let began = Instant::now();
    tcp.write_all(start).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let reader = async move {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        out
    };
    let writer = async move {
        for b in trickle {
            tokio::time::sleep(every).await;
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
        }
        // Everything was sent and the server has not given up: hold the
        // connection open without sending more.
        std::future::pending::<()>().await;
    };
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            out = reader => out,
            _ = writer => unreachable!(),
        }
    })
    .await
    .expect("the server never cut the slow client off");
    Cut {
        after: began.elapsed(),
        answer: String::from_utf8_lossy(&answer).into_owned(),
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The files of the upload service's blob store: stored blobs, their
/// metadata, and bodies being written.
fn upload_files(server: &TestServer) -> Vec<PathBuf> {
    files_under(&server.home().join("spool"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("+blobs"))
        .collect()
}

/// A slot's PUT URL, as a path on the test server.
async fn put_path(c: &mut Client, name: &str, size: usize) -> String {
    let answer = c
        .iq(
            "get",
            Some("upload.localhost"),
            &format!(
                "<request xmlns='urn:xmpp:http:upload:0' filename='{name}' size='{size}' content-type='image/png'/>"
            ),
        )
        .await;
    let at = answer
        .find("<put ")
        .unwrap_or_else(|| panic!("no slot: {answer}"));
    let rest = &answer[at..];
    let start = rest.find("url=\"").unwrap() + 5;
    let url = rest[start..start + rest[start..].find('"').unwrap()].replace("&amp;", "&");
    let after = url.split_once("://").unwrap().1;
    after[after.find('/').unwrap()..].to_string()
}

fn put_head(path: &str, length: usize) -> String {
    format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_request_head_is_cut_off_while_others_are_served() {
    let server = Arc::new(server());
    let cut = Arc::new(AtomicBool::new(false));
    let slow = {
        let (server, cut) = (server.clone(), cut.clone());
        tokio::spawn(async move {
            let c = trickle(
                &server,
                b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
                &[b'a'; 60],
                Duration::from_secs(1),
            )
            .await;
            cut.store(true, Ordering::SeqCst);
            c
        })
    };
    // A connection that sends nothing at all is cut off too.
    let silent = {
        let server = server.clone();
        tokio::spawn(async move { trickle(&server, b"", b"", Duration::ZERO).await })
    };
    // Meanwhile the web side and the XMPP side serve everyone else.
    let answer = http(
        server.listener("http"),
        None,
        b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    bob.barrier().await;
    assert!(
        !cut.load(Ordering::SeqCst),
        "the others were served only after the slow client was cut off"
    );

    for (what, c) in [
        ("trickled", slow.await.unwrap()),
        ("silent", silent.await.unwrap()),
    ] {
        assert!(
            c.after >= Duration::from_secs(HEADER_TIMEOUT - 1)
                && c.after < Duration::from_secs(HEADER_TIMEOUT + 5),
            "{what}: cut off after {:?}",
            c.after
        );
        assert!(!c.answer.contains(" 200 "), "{what}: {}", c.answer);
    }
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_bosh_body_is_cut_off_with_408() {
    let server = server();
    let body = "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='10' hold='1' ver='1.6'/>";
    let head = format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let c = trickle(
        &server,
        head.as_bytes(),
        body.as_bytes(),
        Duration::from_secs(1),
    )
    .await;
    assert!(c.answer.starts_with("HTTP/1.1 408 "), "{}", c.answer);
    assert!(
        c.answer.contains("did not arrive within 3 s"),
        "{}",
        c.answer
    );
    assert!(
        c.after < Duration::from_secs(BODY_TIMEOUT + 5),
        "after {:?}",
        c.after
    );
    // The same body sent at once opens a session.
    let whole = http(
        server.listener("http"),
        None,
        format!("{head}{body}")
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(whole.starts_with("HTTP/1.1 200 "), "{whole}");
    assert!(whole.contains("sid="), "{whole}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_stores_nothing_and_frees_its_quota() {
    let server = server();
    let mut alice = Client::login(&server, "alice", "alice-pw", "phone").await;
    let file = vec![7u8; 100_000];

    // Half the body, then nothing: the server gives up after the body
    // timeout, and removes what it had written.
    let path = put_path(&mut alice, "stalled.png", file.len()).await;
    let mut start = put_head(&path, file.len()).into_bytes();
    start.extend_from_slice(&file[..50_000]);
    let c = trickle(&server, &start, b"", Duration::ZERO).await;
    assert!(c.answer.starts_with("HTTP/1.1 408 "), "{}", c.answer);
    assert!(c.answer.contains("nothing stored"), "{}", c.answer);
    assert!(
        c.after < Duration::from_secs(BODY_TIMEOUT + 5),
        "after {:?}",
        c.after
    );
    server.wait_for_log(&["upload too slow; given up", "alice@localhost"]);
    assert_eq!(upload_files(&server), Vec::<PathBuf>::new());

    // A client that goes away half way leaves nothing behind either.
    let path = put_path(&mut alice, "dropped.png", file.len()).await;
    let mut tcp = TcpStream::connect(server.listener("http")).await.unwrap();
    tcp.write_all(put_head(&path, file.len()).as_bytes())
        .await
        .unwrap();
    tcp.write_all(&file[..50_000]).await.unwrap();
    // The part being written is there while the upload runs...
    let began = Instant::now();
    while !upload_files(&server)
        .iter()
        .any(|p| p.to_string_lossy().contains(".part"))
    {
        assert!(began.elapsed() < Duration::from_secs(20), "no part file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and gone once the client is.
    drop(tcp);
    while !upload_files(&server).is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "left behind: {:?}",
            upload_files(&server)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Neither counts against the 120000-byte quota: a whole 100000-byte
    // file still fits, and is stored.
    let path = put_path(&mut alice, "whole.png", file.len()).await;
    let mut req = put_head(&path, file.len())
        .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
        .into_bytes();
    req.extend_from_slice(&file);
    let answer = http(server.listener("http"), None, &req).await;
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    alice.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_trickled_under_the_minimum_rate_is_cut_off() {
    let server = server();
    let mut alice = Client::login(&server, "alice", "alice-pw", "phone").await;
    // A byte every half second is never idle for the body timeout, but
    // far slower than 1 KiB a second on average.
    let path = put_path(&mut alice, "trickle.png", 1000).await;
    let c = trickle(
        &server,
        put_head(&path, 1000).as_bytes(),
        &[7u8; 1000],
        Duration::from_millis(500),
    )
    .await;
    assert!(c.answer.starts_with("HTTP/1.1 408 "), "{}", c.answer);
    assert!(
        c.after >= Duration::from_secs(BODY_TIMEOUT)
            && c.after < Duration::from_secs(BODY_TIMEOUT + 5),
        "after {:?}",
        c.after
    );
    assert_eq!(upload_files(&server), Vec::<PathBuf>::new());
    alice.barrier().await;
}
