//! Connection discovery (XEP-0156): `/.well-known/host-meta` (XRD) and
//! `/.well-known/host-meta.json` (JRD) name this listener's WebSocket and
//! BOSH endpoints, so a web client given only a domain finds where to
//! connect.
//! The addresses are built from the request's `Host` (the name and port
//! the client reached) and the listener's scheme.

use http::{header, Request, Response, StatusCode};

use crate::listener::Conn;
use crate::reply::{self, Body};
use crate::App;

/// The link relation of XEP-0156 for RFC 7395 WebSocket endpoints.
const WEBSOCKET_REL: &str = "urn:xmpp:alt-connections:websocket";
/// The one for BOSH (XEP-0206) endpoints.
const BOSH_REL: &str = "urn:xmpp:alt-connections:xbosh";

pub(crate) fn serve<B>(_app: &App, conn: &Conn, req: &Request<B>, json: bool) -> Response<Body> {
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return reply::method_not_allowed("GET, HEAD");
    }
    let Some(authority) = authority(req) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "a Host header naming this server is required",
        );
    };
    let ws = format!(
        "{}://{authority}/xmpp-websocket",
        if conn.secure() { "wss" } else { "ws" }
    );
    let bosh = format!(
        "{}://{authority}/http-bind",
        if conn.secure() { "https" } else { "http" }
    );
    let mut r = if json {
        reply::ok(
            "application/json",
            format!(
                "{{\"links\":[{{\"rel\":\"{WEBSOCKET_REL}\",\"href\":\"{ws}\"}},\
                 {{\"rel\":\"{BOSH_REL}\",\"href\":\"{bosh}\"}}]}}\n"
            ),
        )
    } else {
        reply::ok(
            "application/xrd+xml; charset=utf-8",
            format!(
                "<?xml version='1.0' encoding='utf-8'?>\n\
                 <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  \
                 <Link rel='{WEBSOCKET_REL}' href='{ws}'/>\n  \
                 <Link rel='{BOSH_REL}' href='{bosh}'/>\n</XRD>\n"
            ),
        )
    };
    // XEP-0156 §3: web clients on other origins read it.
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    r
}

/// The request's `Host`, if it is a plain `name[:port]` (nothing that
/// would need escaping in a URL, XML or JSON).
pub(crate) fn authority<B>(req: &Request<B>) -> Option<String> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    let ok = !host.is_empty()
        && host.len() <= 300
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    ok.then(|| host.to_ascii_lowercase())
}
