//! HTTP requests and responses as values: what the sans-IO machines ask
//! the driver to send, and what the driver hands back. Nothing here
//! performs I/O; [`crate::driver`] does, with `reqwest`.
//!
//! A request names a path under the homeserver's base URL (the driver
//! joins them and adds the access token), so that no machine ever holds
//! a token or builds a URL to another host. Responses come back as the
//! status, the `Retry-After` header and at most [`Request::limit`] bytes
//! of body; everything else about HTTP stays in the driver.

use std::time::Duration;

use serde_json::Value;

/// Which request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// The largest body read for most answers.
pub const SMALL_BODY: usize = 1 << 20;

/// The largest `/sync` or `/messages` answer read: a busy account's batch
/// after a long absence is large, but never unbounded.
pub const LARGE_BODY: usize = 32 << 20;

/// One request to the homeserver.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: RequestId,
    pub method: Method,
    /// The path and query, from `/_matrix/…`, already percent-encoded.
    pub path: String,
    pub body: Option<Value>,
    /// How long the whole exchange may take.
    pub timeout: Duration,
    /// The most body bytes to read.
    pub limit: usize,
    /// A file to fetch from this URL and upload first, its event then
    /// made from `body` by [`crate::session::media::attached`]; only on
    /// the sends of messages that are an XEP-0066 link.
    pub attach: Option<String>,
}

impl Request {
    /// `METHOD path`, for logs (paths hold no secrets).
    pub fn describe(&self) -> String {
        format!("{} {}", self.method.as_str(), self.path)
    }
}

/// A homeserver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The `Retry-After` header in seconds, when there was one.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, `Null` when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The Matrix error code and message of a failed request.
    pub fn error(&self) -> MatrixError {
        let v = self.json();
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        MatrixError {
            status: self.status,
            errcode: s("errcode").unwrap_or_default(),
            message: s("error").unwrap_or_default(),
            retry_after: v
                .get("retry_after_ms")
                .and_then(Value::as_u64)
                .map(Duration::from_millis)
                .or(self.retry_after),
        }
    }
}

/// What went wrong below HTTP, or with HTTP itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection, reset, TLS failure: in the driver's words.
    Network(String),
    /// No complete answer within the request's timeout.
    Timeout,
    /// The body was longer than the request allowed.
    TooLarge,
    /// A redirect (to `location`), which the transport never follows: the
    /// homeserver's URL is what the user registered.
    Redirect(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Network(e) => write!(f, "cannot reach the homeserver: {e}"),
            Failure::Timeout => f.write_str("the homeserver did not answer in time"),
            Failure::TooLarge => f.write_str("the homeserver's answer was too large"),
            Failure::Redirect(to) => write!(
                f,
                "the homeserver redirected elsewhere ({to}); the transport does not follow \
                 redirects"
            ),
        }
    }
}

/// A response or a failure.
pub type Outcome = Result<Response, Failure>;

/// A Matrix error (`{"errcode": …, "error": …}`) with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixError {
    pub status: u16,
    pub errcode: String,
    pub message: String,
    /// From `retry_after_ms`, or the `Retry-After` header.
    pub retry_after: Option<Duration>,
}

impl MatrixError {
    /// 429 or `M_LIMIT_EXCEEDED`: try again later.
    pub fn rate_limited(&self) -> bool {
        self.status == 429 || self.errcode == "M_LIMIT_EXCEEDED"
    }

    /// The access token is no longer valid: signing on again is the only
    /// way on.
    pub fn token_gone(&self) -> bool {
        self.status == 401 || self.errcode == "M_UNKNOWN_TOKEN" || self.errcode == "M_MISSING_TOKEN"
    }

    /// Worth trying again as it is (the server's trouble, not the
    /// request's).
    pub fn transient(&self) -> bool {
        self.rate_limited() || self.status >= 500 || self.status == 408
    }
}

impl std::fmt::Display for MatrixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = crate::text::clean_line(&self.message, crate::text::MAX_LINE);
        match (self.errcode.is_empty(), msg.is_empty()) {
            (true, true) => write!(f, "HTTP {}", self.status),
            (true, false) => write!(f, "HTTP {}: {msg}", self.status),
            (false, true) => write!(f, "{}", self.errcode),
            (false, false) => write!(f, "{}: {msg}", self.errcode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str, header: Option<u64>) -> Response {
        Response {
            status,
            retry_after: header.map(Duration::from_secs),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn rate_limits_say_when_to_come_back() {
        let e = resp(
            429,
            r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":1500}"#,
            Some(9),
        )
        .error();
        assert!(e.rate_limited() && e.transient());
        assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
        // Only the header: it counts.
        let e = resp(429, "{}", Some(3)).error();
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn garbage_is_an_error_without_a_code() {
        let e = resp(502, "<html>bad gateway</html>", None).error();
        assert_eq!(e.errcode, "");
        assert!(e.transient());
        assert_eq!(e.to_string(), "HTTP 502");
        let e = resp(
            401,
            r#"{"errcode":"M_UNKNOWN_TOKEN","error":"x\u0000y"}"#,
            None,
        )
        .error();
        assert!(e.token_gone());
        assert_eq!(e.to_string(), "M_UNKNOWN_TOKEN: xy");
    }
}
