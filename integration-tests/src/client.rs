//! [`Client`]: the one scripted XMPP client the integration tests share.
//!
//! It logs in the way a client does (STARTTLS, SCRAM, bind; see
//! [`RawClient::login`]) and keeps every stanza the server sends, in
//! arrival order, until the test consumes it. What a test has not
//! consumed is never thrown away, so a stanza nobody expected cannot slip
//! by unnoticed:
//!
//! * [`Client::expect`] takes the earliest unconsumed stanza that matches
//!   (waiting at most [`WAIT`]); the others stay, in order.
//!   [`Client::expect_next`] insists that the very next one matches, and
//!   [`Client::expect_in_order`] that several arrived in a given order.
//! * A second copy of a stanza already consumed (same kind, type, sender
//!   and `id`) fails the test when it arrives, as does consuming a stanza
//!   while a copy of it is still waiting: duplicated delivery is a bug
//!   wherever a stanza carries an id.
//! * [`Client::barrier`] proves that nothing unexpected arrived. It pings
//!   the server, whose answer the router queues behind everything it
//!   queued for this session before, and fails, listing them, if any
//!   stanza that arrived before the answer was not consumed.
//!   [`Client::account_barrier`] does the same through the account's
//!   actor (a vCard get of one's own account, handled in order after the
//!   actor's earlier work: presence broadcasts, subscriptions, offline
//!   messages, the message of the day).
//!
//! A barrier shows what reached *this* session before it. For "X sent
//! something that must not reach Y", first make sure the server has
//! finished with X's stanza (X's own [`Client::sync_account`] or
//! [`Client::sync`], or an answer that proves it), then call Y's barrier.
//! No check here waits a fixed time for something not to happen.
//!
//! Every stanza sent and received by any client of the test is kept in a
//! per-thread trace, printed once when a test fails while a client is
//! alive; call [`reset_trace`] when a test starts.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::raw::{attr, local_name, RawClient, RawError};
use crate::server::TestServer;
use crate::{HOST, WAIT};

// ---------------------------------------------------------------------------
// The trace: every stanza every client of this test sent and received.

struct Trace {
    start: Instant,
    lines: Vec<String>,
    printed: bool,
}

thread_local! {
    static TRACE: RefCell<Trace> = RefCell::new(Trace {
        start: Instant::now(),
        lines: Vec::new(),
        printed: false,
    });
}

/// Adds a line to this test's trace, stamped with the time since
/// [`reset_trace`].
pub fn trace(line: impl Into<String>) {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        let at = t.start.elapsed().as_secs_f64();
        let line = line.into();
        t.lines.push(format!("[{at:7.3}s] {line}"));
    });
}

/// Starts a fresh trace. Tests share a thread when run with
/// `--test-threads=1`, so each test calls this (through its own set-up)
/// before its first client.
pub fn reset_trace() {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        t.start = Instant::now();
        t.lines.clear();
        t.printed = false;
    });
}

fn print_trace_once() {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        if t.printed || t.lines.is_empty() {
            return;
        }
        t.printed = true;
        let skip = t.lines.len().saturating_sub(400);
        eprintln!(
            "--- stanza trace ({} lines{}) ---\n{}\n--- end of trace ---",
            t.lines.len(),
            if skip > 0 { ", last 400 shown" } else { "" },
            t.lines[skip..].join("\n")
        );
    });
}

// ---------------------------------------------------------------------------
// The client.

/// A stanza as it arrived: its place in the arrival order (from 1) and its
/// text.
#[derive(Debug, Clone)]
struct Arrived {
    n: usize,
    xml: String,
}

/// What makes two stanzas copies of each other: element name, type,
/// sender and id. Only stanzas with an id have one.
type Key = (String, String, String, String);

fn key_of(xml: &str) -> Option<Key> {
    let id = attr(xml, "id")?;
    Some((
        local_name(xml),
        attr(xml, "type").unwrap_or_default(),
        attr(xml, "from").unwrap_or_default(),
        id,
    ))
}

/// A stanza predicate, as [`Client::expect_in_order`] takes them.
pub type Matcher<'a> = &'a dyn Fn(&str) -> bool;

/// A logged-in test client. See the module docs.
pub struct Client {
    raw: RawClient,
    jid: String,
    /// Arrived and not consumed, oldest first.
    unread: VecDeque<Arrived>,
    /// The most recently consumed stanzas, for failure messages.
    recent: VecDeque<Arrived>,
    /// Every consumed stanza with an id, by [`Key`], with its arrival
    /// number.
    consumed: HashMap<Key, usize>,
    /// How many stanzas have arrived.
    arrivals: usize,
    /// Why reading stopped, once the stream has ended.
    ended: Option<String>,
    /// The domain of the account (its server answers the barrier's ping).
    domain: String,
}

/// How many consumed stanzas a failure message shows.
const RECENT: usize = 20;

impl Drop for Client {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_trace_once();
        }
    }
}

impl Client {
    /// Connects to `server`'s STARTTLS listener and logs in as
    /// `user@localhost` with `password`, binding `resource`; panics with
    /// the reason if it cannot.
    pub async fn login(server: &TestServer, user: &str, password: &str, resource: &str) -> Client {
        match Client::try_login(server, user, password, resource).await {
            Ok(c) => c,
            Err(e) => panic!("{user}/{resource} cannot log in: {e}"),
        }
    }

    /// [`Client::login`], returning the failure (a refused password, say).
    pub async fn try_login(
        server: &TestServer,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Result<Client, RawError> {
        // Boxed, as are the other reads and writes: debug builds of deeply
        // nested async test bodies otherwise overflow the test thread's stack.
        let raw = Box::pin(RawClient::login(
            server.c2s(),
            server.tls_config(),
            user,
            password,
            resource,
        ))
        .await?;
        Ok(Client::from_raw(raw))
    }

    /// Takes over a connection a test set up itself (after
    /// [`RawClient::bind`], its JID is the bound one).
    pub fn from_raw(raw: RawClient) -> Client {
        let jid = raw.jid.clone().unwrap_or_else(|| "(not bound)".into());
        trace(format!("{jid} logged in"));
        let domain = raw
            .jid
            .as_deref()
            .and_then(|j| j.split('/').next())
            .and_then(|b| b.rsplit('@').next())
            .unwrap_or(HOST)
            .to_owned();
        Client {
            raw,
            jid,
            unread: VecDeque::new(),
            recent: VecDeque::new(),
            consumed: HashMap::new(),
            arrivals: 0,
            ended: None,
            domain,
        }
    }

    /// [`Client::login`] as `user@domain` at `server`, trusting `tls`
    /// (a server of another domain, federating with the first).
    pub async fn login_at(
        server: &TestServer,
        tls: std::sync::Arc<rustls::ClientConfig>,
        domain: &str,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Client {
        match Box::pin(RawClient::login_at(
            server.c2s(),
            tls,
            domain,
            user,
            password,
            resource,
        ))
        .await
        {
            Ok(raw) => Client::from_raw(raw),
            Err(e) => panic!("{user}@{domain}/{resource} cannot log in: {e}"),
        }
    }

    /// [`Client::online`] for [`Client::login_at`].
    pub async fn online_at(
        server: &TestServer,
        tls: std::sync::Arc<rustls::ClientConfig>,
        domain: &str,
        user: &str,
        password: &str,
        resource: &str,
        priority: i8,
    ) -> Client {
        let mut c = Client::login_at(server, tls, domain, user, password, resource).await;
        let roster = c.iq("get", None, "<query xmlns='jabber:iq:roster'/>").await;
        if attr(&roster, "type").as_deref() != Some("result") {
            c.fail(&format!("the roster get failed: {roster}"));
        }
        c.available(priority, "").await;
        c
    }

    /// Logs in, asks for the roster (so that roster pushes come) and sends
    /// initial presence with `priority`; returns once the server has shown
    /// that presence back to this resource.
    pub async fn online(
        server: &TestServer,
        user: &str,
        password: &str,
        resource: &str,
        priority: i8,
    ) -> Client {
        let mut c = Client::login(server, user, password, resource).await;
        let roster = c.iq("get", None, "<query xmlns='jabber:iq:roster'/>").await;
        if attr(&roster, "type").as_deref() != Some("result") {
            c.fail(&format!("the roster get failed: {roster}"));
        }
        c.available(priority, "").await;
        c
    }

    /// The bound full JID.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The bound JID without its resource.
    pub fn bare(&self) -> String {
        self.jid.split('/').next().unwrap_or_default().to_owned()
    }

    /// A fresh stanza id starting with `prefix`.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.raw.new_id(prefix)
    }

    /// Fails the test with `msg` and what this client has received.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{}: {msg}\n{}", self.jid, self.received());
    }

    /// What arrived and was not consumed, and the last stanzas that were,
    /// for failure messages.
    fn received(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "not consumed ({}):", self.unread.len());
        for a in self.unread.iter().take(50) {
            let _ = writeln!(s, "  #{} {}", a.n, a.xml);
        }
        if self.unread.len() > 50 {
            let _ = writeln!(s, "  … and {} more", self.unread.len() - 50);
        }
        let _ = writeln!(
            s,
            "consumed ({} of {} arrived; the last {} shown):",
            self.arrivals - self.unread.len(),
            self.arrivals,
            self.recent.len()
        );
        for a in &self.recent {
            let _ = writeln!(s, "  #{} {}", a.n, a.xml);
        }
        if let Some(why) = &self.ended {
            let _ = writeln!(s, "the stream has ended: {why}");
        }
        s
    }

    /// Writes `xml` as is.
    pub async fn send(&mut self, xml: &str) {
        trace(format!("{} SENDS {xml}", self.jid));
        if let Err(e) = Box::pin(self.raw.send(xml)).await {
            self.fail(&format!("cannot send {xml}: {e}"));
        }
    }

    /// Reads one element into `unread` before `deadline`: `true` when one
    /// arrived, `false` on a timeout. Fails the test on a duplicate; marks
    /// the stream ended when the connection goes.
    async fn read_one(&mut self, deadline: Instant) -> bool {
        if self.ended.is_some() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match Box::pin(self.raw.read_element(left)).await {
            Ok(xml) => {
                trace(format!("{} GETS {xml}", self.jid));
                self.arrivals += 1;
                if let Some(first) = key_of(&xml).and_then(|k| self.consumed.get(&k)) {
                    self.fail(&format!(
                        "a second copy (#{}) of stanza #{first}, which was already consumed: {xml}",
                        self.arrivals
                    ));
                }
                if xml.starts_with("</") {
                    self.ended = Some(format!("the server closed the stream (#{})", self.arrivals));
                }
                self.unread.push_back(Arrived {
                    n: self.arrivals,
                    xml,
                });
                true
            }
            Err(RawError::Timeout { .. }) => false,
            Err(e) => {
                trace(format!("{} reading ended: {e}", self.jid));
                self.ended = Some(e.to_string());
                false
            }
        }
    }

    /// Removes the unread stanza at `i`, checking that no copy of it is
    /// still waiting, and records it as consumed.
    fn consume(&mut self, i: usize) -> Arrived {
        let a = self.unread.remove(i).expect("index in range");
        if let Some(k) = key_of(&a.xml) {
            if let Some(copy) = self
                .unread
                .iter()
                .find(|o| key_of(&o.xml).as_ref() == Some(&k))
            {
                let copy = copy.n;
                self.fail(&format!(
                    "stanza #{} arrived twice (again as #{copy}): {}",
                    a.n, a.xml
                ));
            }
            self.consumed.insert(k, a.n);
        }
        self.recent.push_back(a.clone());
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        a
    }

    /// The earliest unconsumed stanza matching `pred`, waiting at most
    /// `timeout`; `None` if none arrived by then.
    async fn find(&mut self, timeout: Duration, pred: &dyn Fn(&str) -> bool) -> Option<Arrived> {
        let deadline = Instant::now() + timeout;
        let mut checked = 0;
        loop {
            if let Some(i) = self.unread.iter().skip(checked).position(|a| pred(&a.xml)) {
                return Some(self.consume(checked + i));
            }
            checked = self.unread.len();
            if !self.read_one(deadline).await {
                return None;
            }
        }
    }

    /// Takes the earliest unconsumed stanza matching `pred`, waiting at
    /// most [`WAIT`] for it; fails naming `what` and listing what arrived
    /// otherwise.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.find(WAIT, &pred).await {
            Some(a) => a.xml,
            None => self.fail(&format!("expected {what} within {WAIT:?}")),
        }
    }

    /// Takes the next unconsumed stanza, which must match `pred`: nothing
    /// else may have arrived before it (or be left from before).
    pub async fn expect_next(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        while self.unread.is_empty() {
            if !self.read_one(deadline).await {
                self.fail(&format!("expected {what} next within {WAIT:?}"));
            }
        }
        if !pred(&self.unread[0].xml) {
            self.fail(&format!("expected {what} next, not #{}", self.unread[0].n));
        }
        self.consume(0).xml
    }

    /// Takes one stanza for each `(what, pred)`, each the earliest match,
    /// and fails unless they arrived in the order given. Other stanzas may
    /// come between them.
    pub async fn expect_in_order(&mut self, expected: &[(&str, Matcher<'_>)]) -> Vec<String> {
        let mut got: Vec<Arrived> = Vec::new();
        for (what, pred) in expected {
            let a = match self.find(WAIT, pred).await {
                Some(a) => a,
                None => self.fail(&format!("expected {what} within {WAIT:?}")),
            };
            if let Some(prev) = got.last() {
                if a.n < prev.n {
                    self.fail(&format!(
                        "expected {what} after #{} ({}), but it came before, as #{}: {}",
                        prev.n, prev.xml, a.n, a.xml
                    ));
                }
            }
            got.push(a);
        }
        got.into_iter().map(|a| a.xml).collect()
    }

    /// Consumes every stanza already arrived that matches `pred`, without
    /// waiting; after a sync or a barrier that is everything that matches
    /// and arrived before it.
    pub fn take_all(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.unread.len() {
            if pred(&self.unread[i].xml) {
                out.push(self.consume(i).xml);
            } else {
                i += 1;
            }
        }
        out
    }

    /// Sends an IQ of type `ty` (to `to`, or without `to`) and returns its
    /// answer, a result or an error.
    pub async fn iq(&mut self, ty: &str, to: Option<&str>, payload: &str) -> String {
        let id = self.new_id("iq");
        let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
        self.send(&format!("<iq type='{ty}' id='{id}'{to}>{payload}</iq>"))
            .await;
        self.expect(&format!("the answer to IQ {id}"), |e: &str| {
            local_name(e) == "iq"
                && attr(e, "id").as_deref() == Some(id.as_str())
                && matches!(attr(e, "type").as_deref(), Some("result" | "error"))
        })
        .await
    }

    /// Sends available presence with `priority` (and `extra` children) and
    /// waits until the server shows it back to this resource.
    pub async fn available(&mut self, priority: i8, extra: &str) {
        self.send(&format!(
            "<presence><priority>{priority}</priority>{extra}</presence>"
        ))
        .await;
        let me = self.jid.clone();
        let prio = format!("<priority>{priority}</priority>");
        let extra = extra.to_owned();
        self.expect("my own presence shown back to me", move |e: &str| {
            local_name(e) == "presence"
                && attr(e, "from").as_deref() == Some(me.as_str())
                && attr(e, "type").is_none()
                && e.contains(&prio)
                && e.contains(&extra)
        })
        .await;
    }

    /// A round trip through the router: a ping to the server. Once it
    /// returns, everything the router queued for this session before the
    /// ping is in hand (consumed or waiting). Asserts nothing.
    pub async fn sync(&mut self) {
        let answer = self
            .iq(
                "get",
                Some(&self.domain.clone()),
                "<ping xmlns='urn:xmpp:ping'/>",
            )
            .await;
        if attr(&answer, "type").as_deref() != Some("result") {
            self.fail(&format!("the server did not answer a ping: {answer}"));
        }
    }

    /// A round trip through this account's actor: a vCard get of one's
    /// own account, which the actor handles after all its earlier work
    /// (and which, unlike a roster get, changes nothing about the
    /// session). Asserts nothing.
    pub async fn sync_account(&mut self) {
        let answer = self.iq("get", None, "<vCard xmlns='vcard-temp'/>").await;
        if attr(&answer, "type").as_deref() != Some("result") {
            self.fail(&format!("the account did not answer a vCard get: {answer}"));
        }
    }

    /// A round trip through another existing local account's actor: a
    /// vCard get to its bare JID, which that actor answers (with the
    /// vCard, or `service-unavailable` if there is none) after everything
    /// queued for it before, such as messages to be stored offline or
    /// subscriptions. Asserts nothing.
    pub async fn sync_account_of(&mut self, bare: &str) {
        self.iq("get", Some(bare), "<vCard xmlns='vcard-temp'/>")
            .await;
    }

    /// [`Client::sync`], then fails if anything that arrived before the
    /// answer has not been consumed.
    pub async fn barrier(&mut self) {
        self.sync().await;
        self.assert_all_consumed("the router's barrier (a ping to the server)");
    }

    /// [`Client::sync_account`], then fails if anything that arrived
    /// before the answer has not been consumed.
    pub async fn account_barrier(&mut self) {
        self.sync_account().await;
        self.assert_all_consumed("the account's barrier (a vCard get)");
    }

    #[track_caller]
    fn assert_all_consumed(&self, barrier: &str) {
        if !self.unread.is_empty() {
            self.fail(&format!(
                "{} unexpected stanza(s) arrived before {barrier}",
                self.unread.len()
            ));
        }
    }

    /// Closes the stream politely and waits (each at most [`WAIT`]) for
    /// the server to hang up and to log the session's end, which it does
    /// after queueing the goodbye for the account's actor: whatever the
    /// test does next is queued behind it. What arrives meanwhile is not
    /// checked.
    pub async fn close(mut self, server: &TestServer) {
        let jid = format!("jid={} ", self.jid);
        let ended = ["session ended", jid.as_str()];
        let before = server.log_lines(&ended).len();
        trace(format!("{} closes its stream", self.jid));
        Box::pin(self.raw.close()).await;
        let _ = Box::pin(self.raw.read_to_close(WAIT)).await;
        server.wait_for_log_lines(&ended, before + 1);
    }

    /// Sends unavailable presence, then [`Client::close`].
    pub async fn logout(mut self, server: &TestServer) {
        self.send("<presence type='unavailable'/>").await;
        self.close(server).await;
    }

    /// Waits (at most [`WAIT`]) for the server to end the stream; returns
    /// everything not consumed, as text, up to the end (a stream error and
    /// the closing tag, typically).
    pub async fn expect_closed(&mut self) -> String {
        let mut text: String = self
            .unread
            .drain(..)
            .map(|a| a.xml)
            .collect::<Vec<_>>()
            .join("");
        if self.ended.is_none() {
            match Box::pin(self.raw.read_to_close(WAIT)).await {
                Ok(rest) => text.push_str(&rest),
                Err(e) => self.fail(&format!(
                    "expected the server to close the stream: {e}\nread: {text}"
                )),
            }
            self.ended = Some("closed, as expected".into());
        }
        trace(format!("{} stream closed: {text}", self.jid));
        text
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
