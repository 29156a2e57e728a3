//! The session against a scripted homeserver under a simulated clock:
//! every request it makes is answered by the test, time moves only when
//! the test says, and what the session gives the driver is checked in
//! order.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_jid::Jid;
use switchboard_xml::Element;

use super::*;
use crate::http::{Failure, Method, Request, Response};

const HOST: &str = "matrix.l";
const ME: &str = "@me:x";
const BOB: &str = "@bob:x";
const BOB_JID: &str = "bob%x@matrix.l";
const DM: &str = "!dm:x";
const ROOM: &str = "!Room:x";

struct H {
    s: Session,
    now: Instant,
    /// What the session gave and the test has not looked at yet.
    pending: Vec<Action>,
}

fn xml(s: &str) -> Element {
    switchboard_xml::parse_document(s.as_bytes(), Default::default()).unwrap()
}

fn resp(status: u16, body: Value) -> Outcome {
    Ok(Response {
        status,
        retry_after: None,
        body: serde_json::to_vec(&body).unwrap(),
    })
}

impl H {
    fn new(saved: Saved) -> H {
        let now = Instant::now();
        let s = Session::new(
            Params {
                service_host: HOST.into(),
                user: Jid::parse("u@l").unwrap(),
                user_id: ME.into(),
                saved,
                media_limit: None,
            },
            now,
        );
        let mut h = H {
            s,
            now,
            pending: Vec::new(),
        };
        h.pull();
        h
    }

    /// A session past its start, with `direct` as m.direct and `joined`
    /// rooms, waiting on its first sync (from `since`).
    fn running(since: Option<&str>, direct: Value, joined: &[&str]) -> (H, Request) {
        let mut h = H::new(Saved {
            next_batch: since.map(str::to_owned),
            ..Saved::default()
        });
        let d = h.take_request(|r| r.path.ends_with("/account_data/m.direct"));
        let j = h.take_request(|r| r.path.ends_with("/joined_rooms"));
        h.answer(&d, resp(200, direct));
        h.answer(&j, resp(200, json!({ "joined_rooms": joined })));
        let sync = h.take_request(|r| r.path.starts_with("/_matrix/client/v3/sync"));
        (h, sync)
    }

    fn pull(&mut self) {
        while let Some(a) = self.s.poll_action() {
            self.pending.push(a);
        }
    }

    fn answer(&mut self, req: &Request, outcome: Outcome) {
        self.s.handle_response(req.id, outcome, self.now);
        self.pull();
    }

    fn stanza(&mut self, s: &str) {
        self.s.handle(ToMatrix::Stanza(xml(s)), self.now);
        self.pull();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
        self.pull();
    }

    /// Moves to the session's next deadline.
    fn advance_to_deadline(&mut self) {
        let t = self.s.poll_timeout().expect("a deadline");
        self.now = self.now.max(t);
        self.s.handle_timeout(self.now);
        self.pull();
    }

    fn requests(&self) -> Vec<&Request> {
        self.pending
            .iter()
            .filter_map(|a| match a {
                Action::Http(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn take_request(&mut self, pred: impl Fn(&Request) -> bool) -> Request {
        let i = self
            .pending
            .iter()
            .position(|a| matches!(a, Action::Http(r) if pred(r)))
            .unwrap_or_else(|| panic!("no such request in {:#?}", self.pending));
        match self.pending.remove(i) {
            Action::Http(r) => r,
            _ => unreachable!(),
        }
    }

    fn no_request(&self, pred: impl Fn(&Request) -> bool) {
        assert!(
            !self.requests().into_iter().any(pred),
            "unexpected request in {:#?}",
            self.pending
        );
    }

    fn stanzas(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.pending.retain(|a| match a {
            Action::Stanza(s) => {
                out.push(s.to_xml_string());
                false
            }
            _ => true,
        });
        out
    }

    /// Everything pending, in order, as short labels.
    fn order(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|a| match a {
                Action::Http(r) => format!("http {}", r.path.split('?').next().unwrap_or("")),
                Action::Stanza(s) => format!(
                    "stanza {}",
                    s.child_text("body", "jabber:client").unwrap_or_default()
                ),
                Action::Persist(s) => format!("persist {}", s.next_batch.unwrap_or_default()),
                Action::Media(j) => format!("media {}/{}", j.server, j.media_id),
                Action::End { signed_out } => format!("end {signed_out}"),
            })
            .collect()
    }
}

fn direct() -> Value {
    json!({ BOB: [DM] })
}

fn msg(id: &str, sender: &str, body: &str) -> Value {
    json!({"type":"m.room.message","event_id":id,"sender":sender,"origin_server_ts":1_700_000_000_000u64,
           "content":{"msgtype":"m.text","body":body}})
}

fn batch(next: &str, room: &str, events: Vec<Value>) -> Value {
    json!({"next_batch": next, "rooms": {"join": {room: {"timeline": {"events": events}}}}})
}

#[test]
fn the_first_sync_delivers_no_history_and_saves_its_token() {
    let (mut h, sync) = H::running(None, direct(), &[DM]);
    assert!(sync.path.contains("timeout=0"), "{}", sync.path);
    assert!(!sync.path.contains("since="), "{}", sync.path);
    assert!(sync.path.contains("set_presence=offline"), "{}", sync.path);
    // bob is announced as a contact, once.
    let s = h.stanzas();
    assert!(
        s.iter()
            .any(|s| s.contains("type=\"subscribe\"") && s.contains(BOB_JID)),
        "{s:?}"
    );
    h.pending.clear();
    h.answer(
        &sync,
        resp(200, batch("s1", DM, vec![msg("$old", BOB, "history")])),
    );
    assert_eq!(
        h.order()[..2],
        ["persist s1", "http /_matrix/client/v3/sync"]
    );
}

#[test]
fn a_batch_is_delivered_then_saved_then_the_next_sync_starts() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    assert!(sync.path.contains("since=s0") && sync.path.contains("timeout=30000"));
    h.pending.clear();
    h.answer(
        &sync,
        resp(
            200,
            batch("s1", DM, vec![msg("$1", BOB, "one"), msg("$2", BOB, "two")]),
        ),
    );
    assert_eq!(
        h.order(),
        [
            "stanza one",
            "stanza two",
            "persist s1",
            "http /_matrix/client/v3/sync"
        ]
    );
}

#[test]
fn messages_from_matrix_are_escaped_bounded_and_from_the_contact() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    h.answer(
        &sync,
        resp(200, batch("s1", DM, vec![msg("$1", BOB, "<b>&\u{1}</b>")])),
    );
    let s = h.stanzas();
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].contains(&format!("from=\"{BOB_JID}\"")), "{}", s[0]);
    assert!(
        s[0].contains("<body>&lt;b&gt;&amp;&lt;/b&gt;</body>"),
        "{}",
        s[0]
    );
    assert!(
        s[0].contains("id=\"$1\"") && s[0].contains("type=\"chat\""),
        "{}",
        s[0]
    );
}

#[test]
fn a_limited_gap_is_filled_before_the_batch_and_nothing_twice() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    let mut b = batch(
        "s1",
        DM,
        vec![msg("$3", BOB, "three"), msg("$4", BOB, "four")],
    );
    b["rooms"]["join"][DM]["timeline"]["limited"] = json!(true);
    b["rooms"]["join"][DM]["timeline"]["prev_batch"] = json!("p1");
    h.answer(&sync, resp(200, b));
    // Nothing is delivered or saved before the gap is read.
    let page = h.take_request(|r| r.path.contains("/messages"));
    assert!(
        page.path.contains("dir=b") && page.path.contains("from=p1") && page.path.contains("to=s0"),
        "{}",
        page.path
    );
    assert!(h.pending.is_empty(), "{:?}", h.pending);
    // Newest first, and overlapping the timeline ($3).
    h.answer(
        &page,
        resp(
            200,
            json!({"chunk": [msg("$3", BOB, "three"), msg("$2", BOB, "two")], "end": "p2"}),
        ),
    );
    let page2 = h.take_request(|r| r.path.contains("/messages") && r.path.contains("from=p2"));
    h.answer(
        &page2,
        resp(200, json!({"chunk": [msg("$1", BOB, "one")], "end": "p3"})),
    );
    let page3 = h.take_request(|r| r.path.contains("from=p3"));
    h.answer(&page3, resp(200, json!({"chunk": []})));
    assert_eq!(
        h.order(),
        [
            "stanza one",
            "stanza two",
            "stanza three",
            "stanza four",
            "persist s1",
            "http /_matrix/client/v3/sync"
        ]
    );
}

#[test]
fn a_gap_that_cannot_be_read_drops_the_batch_and_syncs_again_from_the_old_token() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    let mut b = batch("s1", DM, vec![msg("$3", BOB, "three")]);
    b["rooms"]["join"][DM]["timeline"]["limited"] = json!(true);
    b["rooms"]["join"][DM]["timeline"]["prev_batch"] = json!("p1");
    h.answer(&sync, resp(200, b));
    let page = h.take_request(|r| r.path.contains("/messages"));
    h.answer(&page, resp(502, json!({})));
    let s = h.stanzas();
    assert_eq!(s.len(), 1, "only the notice: {s:?}");
    assert!(
        s[0].contains("Lost the connection") && s[0].contains(&format!("from=\"{HOST}\"")),
        "{s:?}"
    );
    assert!(
        h.pending.is_empty(),
        "nothing saved, no sync yet: {:?}",
        h.pending
    );
    h.advance_to_deadline();
    let again = h.take_request(|r| r.path.starts_with("/_matrix/client/v3/sync"));
    assert!(again.path.contains("since=s0"), "{}", again.path);
    // This time the room is not limited; $3 comes once, and the user
    // hears the link is back.
    h.answer(
        &again,
        resp(200, batch("s1", DM, vec![msg("$3", BOB, "three")])),
    );
    let order = h.order();
    assert_eq!(order[0], "stanza Reconnected to your Matrix homeserver.");
    assert_eq!(
        order[1..],
        ["stanza three", "persist s1", "http /_matrix/client/v3/sync"]
    );
}

#[test]
fn history_before_entering_a_room_is_not_delivered_nor_back_filled() {
    let (mut h, sync) = H::running(Some("s0"), json!({}), &[]);
    h.pending.clear();
    join_room(&mut h);
    h.pending.clear();
    let joined = json!({"type":"m.room.member","event_id":"$j","sender":ME,"state_key":ME,
                        "content":{"membership":"join"}});
    let mut b = batch(
        "s1",
        ROOM,
        vec![
            msg("$old", BOB, "before"),
            joined,
            msg("$new", BOB, "after"),
        ],
    );
    b["rooms"]["join"][ROOM]["timeline"]["limited"] = json!(true);
    b["rooms"]["join"][ROOM]["timeline"]["prev_batch"] = json!("p0");
    h.answer(&sync, resp(200, b));
    h.no_request(|r| r.path.contains("/messages"));
    let order = h.order();
    assert_eq!(order[..2], ["stanza after", "persist s1"], "{order:?}");
}

#[test]
fn in_a_direct_chat_what_was_said_while_invited_arrives() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    let invited = json!({"type":"m.room.member","event_id":"$i","sender":BOB,"state_key":ME,
                         "content":{"membership":"invite","is_direct":true}});
    let joined = json!({"type":"m.room.member","event_id":"$j","sender":ME,"state_key":ME,
                        "content":{"membership":"join"},"unsigned":{"prev_content":{"membership":"invite"}}});
    h.answer(
        &sync,
        resp(
            200,
            batch(
                "s1",
                DM,
                vec![
                    msg("$0", BOB, "old"),
                    invited,
                    msg("$1", BOB, "hi, are you there"),
                    joined,
                ],
            ),
        ),
    );
    let order = h.order();
    assert_eq!(
        order[..2],
        ["stanza hi, are you there", "persist s1"],
        "{order:?}"
    );
}

#[test]
fn sync_failures_back_off_and_garbage_is_a_failure() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    h.answer(&sync, Err(Failure::Network("connection refused".into())));
    assert_eq!(h.stanzas().len(), 1);
    let first = h.s.poll_timeout().unwrap() - h.now;
    assert!(first <= RECONNECT.first, "{first:?}");
    h.no_request(|_| true);
    h.advance_to_deadline();
    let s2 = h.take_request(|r| r.path.contains("/sync"));
    h.answer(
        &s2,
        Ok(Response {
            status: 200,
            retry_after: None,
            body: b"<html>oops</html>".to_vec(),
        }),
    );
    // Told once per outage.
    assert!(h.stanzas().is_empty());
    let second = h.s.poll_timeout().unwrap() - h.now;
    assert!(
        second > first / 2 && second <= RECONNECT.first * 2,
        "{second:?}"
    );
}

#[test]
fn an_access_token_that_is_gone_ends_the_session_signed_out() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    h.answer(
        &sync,
        resp(
            401,
            json!({"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token"}),
        ),
    );
    let order = h.order();
    assert!(order[0].contains("no longer accepts"), "{order:?}");
    assert_eq!(order.last().unwrap(), "end true");
    assert!(h.s.is_ended());
}

fn chat(id: &str, body: &str) -> String {
    format!(
        "<message xmlns='jabber:client' from='u@l/r' to='{BOB_JID}' type='chat' id='{id}'><body>{body}</body></message>"
    )
}

/// A running session whose direct room with bob is known unencrypted.
fn with_dm() -> H {
    let (mut h, _sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    h.stanza(&chat("m0", "warm-up"));
    let check = h.take_request(|r| r.path.contains("/state/m.room.encryption/"));
    h.answer(&check, resp(404, json!({"errcode":"M_NOT_FOUND"})));
    let send = h.take_request(|r| r.method == Method::Put && r.path.contains("/send/"));
    h.answer(&send, resp(200, json!({"event_id":"$w"})));
    h.pending.clear();
    h
}

#[test]
fn sends_wait_out_a_rate_limit_and_keep_their_order_and_transaction_id() {
    let mut h = with_dm();
    h.stanza(&chat("a", "first"));
    h.stanza(&chat("b", "second"));
    let first = h.take_request(|r| r.path.contains("/send/m.room.message/"));
    assert_eq!(first.body.as_ref().unwrap()["body"], "first");
    // One at a time per room.
    h.no_request(|r| r.path.contains("/send/"));
    h.answer(
        &first,
        resp(
            429,
            json!({"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1500}),
        ),
    );
    h.no_request(|_| true);
    assert_eq!(
        h.s.poll_timeout(),
        Some(h.now + Duration::from_millis(1500))
    );
    h.advance(Duration::from_millis(1400));
    h.no_request(|_| true);
    h.advance(Duration::from_millis(100));
    let again = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(again.path, first.path, "the same transaction id");
    h.answer(&again, resp(200, json!({"event_id":"$a"})));
    let second = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(second.body.as_ref().unwrap()["body"], "second");
    // A 5xx and a timeout retry too, with backoff; nothing is dropped.
    h.answer(&second, resp(503, json!({})));
    h.advance_to_deadline();
    let third = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(third.path, second.path);
    h.answer(&third, Err(Failure::Timeout));
    h.advance_to_deadline();
    let fourth = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(fourth.path, second.path);
    h.answer(&fourth, resp(200, json!({"event_id":"$b"})));
    assert!(h.stanzas().is_empty(), "no errors");
}

fn image(id: &str, sender: &str, media: &str, size: u64) -> Value {
    json!({"type":"m.room.message","event_id":id,"sender":sender,"origin_server_ts":1_700_000_000_000u64,
           "content":{"msgtype":"m.image","body":"cat.png","url":format!("mxc://x/{media}"),
                      "info":{"mimetype":"image/png","size":size}}})
}

#[test]
fn files_from_matrix_are_fetched_in_their_place_in_the_batch() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.s.media_limit = Some(1000);
    h.pending.clear();
    h.answer(
        &sync,
        resp(
            200,
            batch(
                "s1",
                DM,
                vec![
                    msg("$1", BOB, "before"),
                    image("$2", BOB, "small", 100),
                    image("$3", BOB, "big", 5000),
                    msg("$4", BOB, "after"),
                ],
            ),
        ),
    );
    let job = h
        .pending
        .iter()
        .find_map(|a| match a {
            Action::Media(j) => Some(j.clone()),
            _ => None,
        })
        .expect("a media job");
    // The job keeps its place: the token is stored after it, and a file
    // over the limit is only described.
    let order = h.order();
    assert_eq!(
        order[..3],
        [
            "stanza before",
            "media x/small",
            "stanza [image: cat.png, 4 KB — sent on Matrix; open it in a Matrix client]"
        ]
    );
    assert_eq!(order[3..5], ["stanza after", "persist s1"]);
    assert_eq!(
        (
            job.name.as_str(),
            job.content_type.as_str(),
            job.owner.as_str(),
            job.limit
        ),
        ("cat.png", "image/png", "u@l", 1000)
    );
    let url = "https://l:5281/upload/upload.l/0a/cat.png";
    let out = job.clone().finish(Ok(url.into()));
    assert_eq!(out.len(), 1);
    let m = out[0].to_xml_string();
    assert!(
        m.contains(&format!("from=\"{BOB_JID}\"")) && m.contains("id=\"$2\""),
        "{m}"
    );
    assert!(m.contains(&format!("<body>{url}</body>")), "{m}");
    assert!(
        m.contains(&format!("<x xmlns=\"jabber:x:oob\"><url>{url}</url></x>")),
        "{m}"
    );
    assert!(!m.contains("mxc://"), "{m}");
    let failed = job.finish(Err("HTTP 502".into()))[0].to_xml_string();
    assert!(
        failed.contains("could not fetch it: HTTP 502") && !failed.contains("jabber:x:oob"),
        "{failed}"
    );
}

#[test]
fn without_an_upload_service_files_from_matrix_are_described() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    h.answer(
        &sync,
        resp(200, batch("s1", DM, vec![image("$2", BOB, "small", 100)])),
    );
    assert_eq!(
        h.order()[..2],
        [
            "stanza [image: cat.png, 100 bytes — sent on Matrix; open it in a Matrix client]",
            "persist s1"
        ]
    );
}

#[test]
fn a_message_that_is_its_oob_link_is_sent_with_the_file_attached() {
    let mut h = with_dm();
    let url = "https://l:5281/upload/upload.l/0a/dog.png";
    h.stanza(&format!(
        "<message xmlns='jabber:client' from='u@l/r' to='{BOB_JID}' type='chat' id='f1'><body>{url}</body>\
         <x xmlns='jabber:x:oob'><url>{url}</url></x></message>"
    ));
    let send = h.take_request(|r| r.path.contains("/send/m.room.message/"));
    assert_eq!(send.attach.as_deref(), Some(url));
    // Until the driver swaps it for the file: the link as text.
    assert_eq!(send.body.as_ref().unwrap()["msgtype"], "m.text");
    assert_eq!(send.body.as_ref().unwrap()["body"], url);
    h.answer(&send, resp(200, json!({"event_id":"$f"})));
    // A link in words, or a correction, is text only.
    h.stanza(&chat("t1", url));
    let send = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(send.attach, None);
    h.answer(&send, resp(200, json!({"event_id":"$t"})));
    h.stanza(&format!(
        "<message xmlns='jabber:client' from='u@l/r' to='{BOB_JID}' type='chat' id='f2'><body>{url}</body>\
         <x xmlns='jabber:x:oob'><url>{url}</url></x><replace xmlns='urn:xmpp:message-correct:0' id='f1'/></message>"
    ));
    let send = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(send.attach, None);
}

#[test]
fn the_same_stanza_twice_is_the_same_transaction() {
    let mut h = with_dm();
    h.stanza(&chat("same", "x"));
    let a = h.take_request(|r| r.path.contains("/send/"));
    h.answer(&a, resp(200, json!({"event_id":"$x"})));
    h.stanza(&chat("same", "x"));
    let b = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(a.path, b.path);
}

#[test]
fn a_refused_send_is_bounced_and_the_queue_goes_on() {
    let mut h = with_dm();
    h.stanza(&chat("a", "first"));
    h.stanza(&chat("b", "second"));
    let first = h.take_request(|r| r.path.contains("/send/"));
    h.answer(
        &first,
        resp(403, json!({"errcode":"M_FORBIDDEN","error":"not in room"})),
    );
    let s = h.stanzas();
    assert_eq!(s.len(), 1);
    assert!(
        s[0].contains("type=\"error\"")
            && s[0].contains("<forbidden")
            && s[0].contains("not in room"),
        "{}",
        s[0]
    );
    let second = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(second.body.as_ref().unwrap()["body"], "second");
}

#[test]
fn nothing_is_posted_into_an_encrypted_room() {
    let (mut h, _sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    h.stanza(&chat("a", "secret"));
    let check = h.take_request(|r| r.path.contains("/state/m.room.encryption/"));
    h.answer(
        &check,
        resp(200, json!({"algorithm":"m.megolm.v1.aes-sha2"})),
    );
    h.no_request(|r| r.path.contains("/send/"));
    let s = h.stanzas();
    assert_eq!(s.len(), 1);
    assert!(
        s[0].contains("not-acceptable") && s[0].contains("encrypted"),
        "{}",
        s[0]
    );
}

#[test]
fn echoes_are_dropped_and_other_devices_come_as_carbons() {
    let (mut h, sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    let mut echo = msg("$e", ME, "sent here");
    echo["unsigned"] = json!({"transaction_id": "sbabc"});
    h.answer(
        &sync,
        resp(
            200,
            batch("s1", DM, vec![echo, msg("$o", ME, "sent elsewhere")]),
        ),
    );
    let s = h.stanzas();
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(
        s[0].contains("urn:xmpp:carbons:2") && s[0].contains("sent elsewhere"),
        "{}",
        s[0]
    );
    assert!(s[0].contains(&format!("from=\"{BOB_JID}\"")), "{}", s[0]);
}

#[test]
fn a_first_message_to_a_matrix_user_opens_a_direct_chat() {
    let (mut h, _sync) = H::running(Some("s0"), json!({}), &[]);
    h.pending.clear();
    h.stanza(&chat("a", "hello"));
    h.stanza(&chat("b", "again"));
    let create = h.take_request(|r| r.path.ends_with("/createRoom"));
    assert_eq!(create.body.as_ref().unwrap()["invite"], json!([BOB]));
    assert_eq!(create.body.as_ref().unwrap()["is_direct"], json!(true));
    h.no_request(|r| r.path.contains("/createRoom") || r.path.contains("/send/"));
    h.answer(&create, resp(200, json!({"room_id": DM})));
    let put = h.take_request(|r| r.path.ends_with("/account_data/m.direct"));
    assert_eq!(put.body.as_ref().unwrap(), &json!({ BOB: [DM] }));
    let send = h.take_request(|r| r.path.contains("/send/"));
    assert!(
        send.path.contains(&crate::text::path_segment(DM)),
        "{}",
        send.path
    );
    assert_eq!(send.body.as_ref().unwrap()["body"], "hello");
    h.answer(&send, resp(200, json!({"event_id":"$h"})));
    let send2 = h.take_request(|r| r.path.contains("/send/"));
    assert_eq!(send2.body.as_ref().unwrap()["body"], "again");
}

#[test]
fn stopping_sends_what_waits_then_ends_or_bounces_it_after_the_grace() {
    let mut h = with_dm();
    h.stanza(&chat("a", "last words"));
    let send = h.take_request(|r| r.path.contains("/send/"));
    h.s.handle(ToMatrix::Stop, h.now);
    h.pull();
    // Presence offline, no more syncs, not ended yet.
    let offline = h.take_request(|r| r.path.contains("/presence/"));
    assert_eq!(offline.body.as_ref().unwrap()["presence"], "offline");
    assert!(!h.s.is_ended());
    h.answer(&offline, resp(200, json!({})));
    h.answer(&send, resp(200, json!({"event_id":"$l"})));
    assert_eq!(h.order(), ["end false"]);

    let mut h = with_dm();
    h.stanza(&chat("a", "stuck"));
    let send = h.take_request(|r| r.path.contains("/send/"));
    h.s.handle(ToMatrix::Stop, h.now);
    h.pull();
    h.pending.clear();
    h.answer(&send, Err(Failure::Network("down".into())));
    // Retried until the grace runs out, then bounced, never dropped.
    let mut ended = false;
    for _ in 0..100 {
        h.advance_to_deadline();
        if let Some(r) = h.requests().first().map(|r| (*r).clone()) {
            h.pending.clear();
            h.answer(&r, Err(Failure::Network("down".into())));
        }
        if h.s.is_ended() {
            ended = true;
            break;
        }
    }
    assert!(ended);
    let s = h.stanzas();
    assert!(
        s.iter()
            .any(|s| s.contains("remote-server-timeout") && s.contains("stuck")),
        "{s:?}"
    );
}

fn join_room(h: &mut H) {
    h.stanza(&format!(
        "<presence xmlns='jabber:client' from='u@l/r' to='!^room%x@{HOST}/me'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    let join = h.take_request(|r| r.path.contains("/join/"));
    assert!(
        join.path.ends_with(&crate::text::path_segment(ROOM)),
        "{}",
        join.path
    );
    h.answer(&join, resp(200, json!({"room_id": ROOM})));
    for _ in 0..5 {
        let r = h.take_request(|r| r.path.contains("/rooms/"));
        let body = if r.path.ends_with("/joined_members") {
            resp(
                200,
                json!({"joined": {ME: {"display_name":"Me"}, BOB: {"display_name":"Bob"}, "@bob2:y": {"display_name":"Bob"}}}),
            )
        } else if r.path.ends_with("/m.room.topic/") {
            resp(200, json!({"topic":"the topic"}))
        } else if r.path.ends_with("/m.room.power_levels/") {
            resp(200, json!({"users": {BOB: 100}}))
        } else {
            resp(404, json!({"errcode":"M_NOT_FOUND"}))
        };
        h.answer(&r, body);
    }
}

#[test]
fn joining_a_room_shows_occupants_then_self_then_subject() {
    let (mut h, _sync) = H::running(Some("s0"), json!({}), &[]);
    h.pending.clear();
    join_room(&mut h);
    let s = h.stanzas();
    assert_eq!(s.len(), 4, "{s:?}");
    let room = format!("!^room%x@{HOST}");
    // Members in the order of their ids: the second Bob is told apart
    // by his.
    assert!(
        s[0].contains(&format!("from=\"{room}/Bob\"")) && s[0].contains("bob2%y@"),
        "{}",
        s[0]
    );
    assert!(
        s[1].contains(&format!("from=\"{room}/Bob (@bob:x)\"")) && s[1].contains("owner"),
        "{}",
        s[1]
    );
    assert!(
        s[2].contains(&format!("from=\"{room}/me\"")) && s[2].contains("code=\"110\""),
        "{}",
        s[2]
    );
    assert!(s[3].contains("<subject>the topic</subject>"), "{}", s[3]);
}

#[test]
fn a_kick_is_307_and_a_ban_301() {
    let (mut h, sync) = H::running(Some("s0"), json!({}), &[]);
    h.pending.clear();
    join_room(&mut h);
    h.pending.clear();
    let kick = json!({"type":"m.room.member","event_id":"$k","sender":BOB,"state_key":"@bob2:y",
                      "content":{"membership":"leave","reason":"bye"}});
    let ban = json!({"type":"m.room.member","event_id":"$b","sender":BOB,"state_key":ME,
                     "content":{"membership":"ban"}});
    h.answer(&sync, resp(200, batch("s1", ROOM, vec![kick, ban])));
    let s = h.stanzas();
    assert!(
        s[0].contains("code=\"307\"") && s[0].contains("/Bob\"") && s[0].contains("bye"),
        "{}",
        s[0]
    );
    assert!(
        s[1].contains("code=\"301\"") && s[1].contains("code=\"110\""),
        "{}",
        s[1]
    );
}

#[test]
fn groupchat_is_reflected_with_the_event_id_once_matrix_took_it() {
    let (mut h, _sync) = H::running(Some("s0"), json!({}), &[]);
    h.pending.clear();
    join_room(&mut h);
    h.pending.clear();
    h.stanza(&format!(
        "<message xmlns='jabber:client' from='u@l/r' to='!^room%x@{HOST}' type='groupchat' id='g1'><body>hi</body></message>"
    ));
    // The join read the room's encryption already.
    let send = h.take_request(|r| r.path.contains("/send/"));
    assert!(
        h.stanzas().is_empty(),
        "no reflection before Matrix took it"
    );
    h.answer(&send, resp(200, json!({"event_id":"$g"})));
    let s = h.stanzas();
    assert_eq!(s.len(), 1);
    assert!(
        s[0].contains("id=\"g1\"") && s[0].contains("<stanza-id") && s[0].contains("$g"),
        "{}",
        s[0]
    );
    // A correction refers to g1, which the session knows as $g.
    h.stanza(&format!(
        "<message xmlns='jabber:client' from='u@l/r' to='!^room%x@{HOST}' type='groupchat' id='g2'><body>hi!</body><replace xmlns='urn:xmpp:message-correct:0' id='g1'/></message>"
    ));
    let edit = h.take_request(|r| r.path.contains("/send/"));
    let c = edit.body.as_ref().unwrap();
    assert_eq!(c["m.relates_to"]["event_id"], "$g");
    assert_eq!(c["m.new_content"]["body"], "hi!");
}

#[test]
fn reactions_are_sent_as_a_difference_and_received_as_sets() {
    let mut h = with_dm();
    h.stanza(&format!(
        "<message xmlns='jabber:client' from='u@l/r' to='{BOB_JID}' type='chat' id='r1'><reactions xmlns='urn:xmpp:reactions:0' id='$m'><reaction>👍</reaction><reaction>🎉</reaction></reactions></message>"
    ));
    // In the order of the keys: 🎉 (U+1F389) is $r1, 👍 $r2.
    for ev in ["$r1", "$r2"] {
        let r = h.take_request(|r| r.path.contains("/send/m.reaction/"));
        h.answer(&r, resp(200, json!({ "event_id": ev })));
    }
    // Taking one back is a redaction of that reaction's event.
    h.stanza(&format!(
        "<message xmlns='jabber:client' from='u@l/r' to='{BOB_JID}' type='chat' id='r2'><reactions xmlns='urn:xmpp:reactions:0' id='$m'><reaction>👍</reaction></reactions></message>"
    ));
    let redact = h.take_request(|r| r.path.contains("/redact/"));
    assert!(redact.path.contains("/redact/%24r1/"), "{}", redact.path);
    h.no_request(|r| r.path.contains("/send/"));
}

#[test]
fn chat_states_and_markers_become_typing_and_receipts() {
    let mut h = with_dm();
    h.stanza(&format!(
        "<message xmlns='jabber:client' from='u@l/r' to='{BOB_JID}' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
    ));
    let t = h.take_request(|r| r.path.contains("/typing/"));
    assert_eq!(t.body.as_ref().unwrap()["typing"], json!(true));
    h.stanza(&format!(
        "<message xmlns='jabber:client' from='u@l/r' to='{BOB_JID}' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='$7'/></message>"
    ));
    let rr = h.take_request(|r| r.path.contains("/receipt/m.read/"));
    assert!(rr.path.ends_with("%247"), "{}", rr.path);
}

#[test]
fn the_latest_presence_wins_and_a_rate_limit_is_waited_out() {
    let (mut h, _sync) = H::running(Some("s0"), direct(), &[DM]);
    h.pending.clear();
    let away = |status: &str| OwnPresence {
        available: true,
        show: Some("away".into()),
        status: Some(status.into()),
    };
    h.s.handle(ToMatrix::Presence(away("one")), h.now);
    h.s.handle(ToMatrix::Presence(away("two")), h.now);
    h.s.handle(ToMatrix::Presence(away("three")), h.now);
    h.pull();
    let first = h.take_request(|r| r.path.contains("/presence/"));
    assert_eq!(first.body.as_ref().unwrap()["status_msg"], "one");
    h.no_request(|r| r.path.contains("/presence/"));
    h.answer(
        &first,
        resp(
            429,
            json!({"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":4000}),
        ),
    );
    h.no_request(|_| true);
    h.advance(Duration::from_secs(4));
    // "two" was overtaken by "three".
    let next = h.take_request(|r| r.path.contains("/presence/"));
    assert_eq!(next.body.as_ref().unwrap()["status_msg"], "three");
    assert_eq!(next.body.as_ref().unwrap()["presence"], "unavailable");
    h.answer(&next, resp(200, json!({})));
    h.no_request(|_| true);
}

#[test]
fn stanzas_wait_while_the_session_starts() {
    let mut h = H::new(Saved::default());
    h.stanza(&chat("early", "early bird"));
    h.no_request(|r| r.path.contains("/createRoom") || r.path.contains("/send/"));
    let d = h.take_request(|r| r.path.ends_with("/account_data/m.direct"));
    let j = h.take_request(|r| r.path.ends_with("/joined_rooms"));
    h.answer(&d, resp(404, json!({"errcode":"M_NOT_FOUND"})));
    h.answer(&j, resp(200, json!({"joined_rooms": []})));
    h.take_request(|r| r.path.ends_with("/createRoom"));
}
