//! The shared client against a scripted stand-in server on loopback: what
//! its expectations and barriers accept, and that each failure they exist
//! for does fail, naming what arrived.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const A: &str = "<message from='bob@localhost/r' id='a' type='chat'><body>one</body></message>";
const B: &str = "<presence from='carol@localhost/r'/>";
const C: &str = "<message from='bob@localhost/r' id='c' type='chat'><body>two</body></message>";

/// A client connected to a stand-in server that first sends `script`, then
/// answers every IQ it is sent with an empty result (after sending `late`,
/// once, before the first answer).
async fn client(script: &'static [&'static str], late: &'static [&'static str]) -> Client {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.write_all(script.concat().as_bytes()).await.unwrap();
        let mut late = Some(late.concat());
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(start) = got.find("<iq ") {
                let Some(end) = got[start..].find("</iq>") else {
                    break;
                };
                let iq = got[start..start + end].to_owned();
                got.drain(..start + end + "</iq>".len());
                let id = attr(&iq, "id").unwrap_or_default();
                let mut out = late.take().unwrap_or_default();
                out.push_str(&format!("<iq type='result' id='{id}' from='localhost'/>"));
                if sock.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    });
    Client::from_raw(RawClient::connect(addr).await.unwrap())
}

fn is_message(e: &str) -> bool {
    local_name(e) == "message"
}

/// Runs `f` and returns its panic message; fails if it does not panic.
async fn panic_of(f: impl std::future::Future<Output = ()>) -> String {
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(()) => panic!("expected a failure"),
        Err(e) => e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn expectations_take_the_earliest_match_and_a_barrier_passes_once_all_are_taken() {
    let mut c = client(&[A, B, C], &[]).await;
    assert_eq!(c.expect("a message", is_message).await, A);
    assert_eq!(c.expect("a message", is_message).await, C);
    assert_eq!(c.expect_next("the presence", |e| e == B).await, B);
    c.barrier().await;
}

#[tokio::test]
async fn a_barrier_fails_listing_what_was_not_consumed() {
    let mut c = client(&[A, B], &[]).await;
    c.expect("a message", is_message).await;
    let msg = panic_of(async move { c.barrier().await }).await;
    assert!(msg.contains("1 unexpected stanza(s)"), "{msg}");
    assert!(msg.contains(&format!("#2 {B}")), "{msg}");
}

#[tokio::test]
async fn a_barrier_catches_what_arrives_just_before_its_answer() {
    let mut c = client(&[], &[B]).await;
    let msg = panic_of(async move { c.barrier().await }).await;
    assert!(msg.contains(&format!("#1 {B}")), "{msg}");
}

#[tokio::test]
async fn a_copy_arriving_after_the_original_was_consumed_fails() {
    let mut c = client(&[A], &[A]).await;
    c.expect("a message", is_message).await;
    let msg = panic_of(async move { c.sync().await }).await;
    assert!(msg.contains("a second copy (#2) of stanza #1"), "{msg}");
}

#[tokio::test]
async fn consuming_a_stanza_whose_copy_is_waiting_fails() {
    let mut c = client(&[A, B, A], &[]).await;
    c.sync().await;
    let msg = panic_of(async move {
        c.expect("a message", is_message).await;
    })
    .await;
    assert!(
        msg.contains("stanza #1 arrived twice (again as #3)"),
        "{msg}"
    );
}

#[tokio::test]
async fn expect_next_fails_when_something_else_comes_first() {
    let mut c = client(&[B, A], &[]).await;
    let msg = panic_of(async move {
        c.expect_next("a message", is_message).await;
    })
    .await;
    assert!(msg.contains("expected a message next, not #1"), "{msg}");
}

#[tokio::test]
async fn expect_in_order_fails_when_the_order_is_reversed() {
    let mut c = client(&[C, A], &[]).await;
    let one = |e: &str| e.contains("<body>one</body>");
    let two = |e: &str| e.contains("<body>two</body>");
    let msg = panic_of(async move {
        c.expect_in_order(&[("one", &one), ("two", &two)]).await;
    })
    .await;
    assert!(
        msg.contains("expected two after #2") && msg.contains("as #1"),
        "{msg}"
    );
    let mut c = client(&[A, B, C], &[]).await;
    let got = c.expect_in_order(&[("one", &one), ("two", &two)]).await;
    assert_eq!(got, [A, C]);
}

#[test]
fn copies_share_a_key_and_other_stanzas_do_not() {
    let a = key_of("<message from='b@x/r' id='m1' type='chat'><body>1</body></message>");
    let b = key_of("<message type=\"chat\" id=\"m1\" from=\"b@x/r\"><body>1</body></message>");
    assert!(a.is_some());
    assert_eq!(a, b);
    let other_sender = key_of("<message from='c@x/r' id='m1' type='chat'/>");
    assert_ne!(a, other_sender);
    let error = key_of("<message from='b@x/r' id='m1' type='error'/>");
    assert_ne!(a, error);
    assert_eq!(key_of("<presence from='b@x/r'/>"), None);
}
