//! The metrics endpoint: a deliberately tiny HTTP/1.1 responder that
//! serves `GET /metrics` in the Prometheus text format and nothing else.
//!
//! It answers one request per connection and closes (`Connection: close`),
//! which is all a scraper needs. Everything a stranger could use to tie it
//! up is bounded: the request head may be at most [`MAX_REQUEST_BYTES`],
//! it must arrive within [`READ_TIMEOUT`], the answer must be taken within
//! [`WRITE_TIMEOUT`], and at most [`MAX_CONNECTIONS`] scrapes are served at
//! once (more are closed at once). Request bodies are never read.
//!
//! Metrics connections are not XMPP connections: they hold no connection
//! guard, so they neither show in `switchboard_connections` nor delay
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::lifecycle::{ShutdownSignal, Tracker};
use crate::routing::Router;

/// The largest request head (request line and headers) accepted.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to read the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrapes served at the same time.
pub const MAX_CONNECTIONS: usize = 16;

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the metrics address, with the same kind of error as the XMPP
/// listeners.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => " (is another exporter running on that port?)",
            _ => "",
        };
        format!("cannot listen for metrics on {addr}: {e}{hint}")
    })
}

/// What a scrape reads: the counters and the gauges read at scrape time.
#[derive(Clone)]
pub struct Scrape {
    pub router: Router,
    pub connections: Tracker,
    /// Its register of links is read for the link gauges.
    pub federation: Arc<crate::s2s::Federation>,
}

impl Scrape {
    /// The counters plus the gauges read now.
    pub fn snapshot(&self) -> crate::metrics::Snapshot {
        let mut s = self.router.metrics().snapshot(
            self.router.sessions().count(),
            self.connections.live(),
            self.router.services().gauges(),
        );
        s.s2s_links = self.federation.registry().established();
        s
    }
}

/// Accepts scrapes until shutdown.
pub async fn run(listener: TcpListener, scrape: Scrape, mut shutdown: ShutdownSignal) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    // Over the limit the connection is dropped unanswered:
                    // a flood must not queue up work or memory.
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, "metrics: too many scrapes at once; closing");
                        continue;
                    };
                    let scrape = scrape.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve(tcp, &scrape).await {
                            tracing::debug!(%peer, "metrics: {e}");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed on metrics: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.wait() => return,
        }
    }
}

/// Reads one request head and writes one response.
async fn serve(mut tcp: TcpStream, scrape: &Scrape) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut tcp)).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(std::io::Error::other("request not received in time")),
    };
    let (response, unread) = match head {
        Head::Complete(text) => (
            respond(&text, || crate::metrics::render(&scrape.snapshot())),
            false,
        ),
        Head::TooLarge => (
            status(
                431,
                "Request Header Fields Too Large",
                "request too large\n",
            ),
            true,
        ),
    };
    match tokio::time::timeout(WRITE_TIMEOUT, async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await
    {
        Ok(r) => r?,
        Err(_) => return Err(std::io::Error::other("response not taken in time")),
    }
    if unread {
        // Closing a socket with unread input makes the kernel send a
        // reset, which can destroy the answer before the client reads it.
        // Read (and drop) a bounded amount for a moment first.
        let _ = tokio::time::timeout(LINGER, async {
            let mut sink = [0u8; 4096];
            let mut left = LINGER_BYTES;
            while left > 0 {
                match tcp.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        })
        .await;
    }
    Ok(())
}

/// How long, and how much, an oversized request is still read after the
/// answer (see [`serve`]).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

enum Head {
    Complete(String),
    TooLarge,
}

/// Reads until the blank line that ends the head, up to the size limit.
async fn read_head(tcp: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed before the request ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n").or_else(|| find(&buf, b"\n\n")) {
            buf.truncate(end);
            return Ok(Head::Complete(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Ok(Head::TooLarge);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The response to a request head. `body` renders the metrics, and is only
/// called for a request that gets them.
pub fn respond(head: &str, body: impl FnOnce() -> String) -> String {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return status(400, "Bad Request", "bad request\n");
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return status(400, "Bad Request", "bad request\n");
    }
    // A query string (`?name[]=…`) is ignored: the endpoint always
    // returns everything.
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return status(404, "Not Found", "not found; try /metrics\n");
    }
    match method {
        "GET" => ok(&body(), true),
        "HEAD" => ok(&body(), false),
        _ => {
            let mut r = status(405, "Method Not Allowed", "only GET\n");
            // The Allow header belongs before the blank line.
            r = r.replacen("\r\n\r\n", "\r\nAllow: GET, HEAD\r\n\r\n", 1);
            r
        }
    }
}

fn ok(body: &str, with_body: bool) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        if with_body { body } else { "" }
    )
}

fn status(code: u16, reason: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(head: &str) -> String {
        respond(head, || "switchboard_sessions 1\n".to_string())
    }

    #[test]
    fn get_metrics_is_the_text_format() {
        let r = answer("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*");
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 23\r\nConnection: close\r\n\r\nswitchboard_sessions 1\n"
        );
        assert!(answer("GET /metrics?name[]=x HTTP/1.0").starts_with("HTTP/1.1 200 "));
    }

    #[test]
    fn head_has_no_body() {
        let r = answer("HEAD /metrics HTTP/1.1");
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        assert!(r.contains("Content-Length: 23\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"), "{r}");
    }

    #[test]
    fn anything_else_is_refused_without_rendering() {
        let never = || -> String { panic!("rendered for a refused request") };
        assert!(respond("GET / HTTP/1.1", never).starts_with("HTTP/1.1 404 "));
        assert!(respond("GET /metricsx HTTP/1.1", never).starts_with("HTTP/1.1 404 "));
        let post = respond("POST /metrics HTTP/1.1", never);
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("\r\nAllow: GET, HEAD\r\n\r\n"), "{post}");
        assert!(respond("GET /metrics", never).starts_with("HTTP/1.1 400 "));
        assert!(respond("", never).starts_with("HTTP/1.1 400 "));
        assert!(respond("GET /metrics SPDY/3", never).starts_with("HTTP/1.1 400 "));
    }
}
