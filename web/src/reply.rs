//! Building responses: one body type for every endpoint, and errors that
//! say what was wrong in a sentence (plain text, so that `curl` shows it).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

/// Every response's body: in memory, or streamed (a file).
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A body held in memory.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with a body and its content type.
pub(crate) fn ok(content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    with(StatusCode::OK, content_type, body)
}

pub(crate) fn with(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(content_type)
            .unwrap_or(header::HeaderValue::from_static("application/octet-stream")),
    );
    r
}

/// An error: the status and a sentence.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut text = message.into();
    text.push('\n');
    with(status, "text/plain; charset=utf-8", text)
}

/// 405 with the methods that are allowed.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; use {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}

pub(crate) fn not_found() -> Response<Body> {
    error(StatusCode::NOT_FOUND, "not found")
}

/// `r` readable by pages on any origin (CORS): BOSH and upload serve web
/// clients wherever they are hosted.
pub(crate) fn cors(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// The answer to a CORS preflight for a resource that takes `methods`.
pub(crate) fn preflight(methods: &'static str) -> Response<Body> {
    let mut r = with(StatusCode::NO_CONTENT, "text/plain", "");
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_on_other_origins_may_read_and_ask_first() {
        let r = cors(with(StatusCode::OK, "text/plain", "x"));
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let p = preflight("POST, OPTIONS");
        assert_eq!(p.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            p.headers()[header::ACCESS_CONTROL_ALLOW_METHODS],
            "POST, OPTIONS"
        );
        assert_eq!(
            p.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "Content-Type"
        );
    }
}
