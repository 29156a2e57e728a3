//! `/xmpp-websocket`: the HTTP side of XMPP over WebSocket (RFC 7395).
//! The upgrade request is checked here (RFC 6455 §4.2.1, the `xmpp`
//! subprotocol, the page's origin); once answered with 101, the upgraded
//! connection goes to the core's client driver, which runs it like a TCP
//! connection with WebSocket frames on the wire.

use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::listener::Conn;
use crate::reply::{self, Body};
use crate::App;

/// Why an upgrade request is refused: the status and a sentence.
type Refusal = (StatusCode, String);

pub(crate) fn upgrade(app: &App, conn: &Conn, mut req: Request<Incoming>) -> Response<Body> {
    let accept = match check(req.method(), req.headers(), app.web.origins.as_deref()) {
        Ok(accept) => accept,
        Err((status, text)) => {
            tracing::debug!(peer = %conn.peer, "websocket upgrade refused: {text}");
            let mut r = reply::error(status, text);
            if status == StatusCode::UPGRADE_REQUIRED {
                r.headers_mut().insert(
                    "sec-websocket-version",
                    header::HeaderValue::from_static("13"),
                );
            }
            return r;
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let handles = app.handles.clone();
    let peer = conn.peer;
    let secure = conn.secure();
    let cb = conn.channel_binding.as_deref().cloned();
    // The session holds a connection guard from here on, as a TCP client's
    // does: it counts as a connection and shutdown waits for it.
    let guard = handles.connections.guard();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                switchboard_core::net::connection::serve_websocket(
                    TokioIo::new(upgraded),
                    peer,
                    handles.c2s.clone(),
                    secure,
                    cb,
                )
                .await
            }
            Err(e) => tracing::debug!(%peer, "websocket upgrade failed: {e}"),
        }
        drop(guard);
    });
    let mut r = Response::new(reply::full(""));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        header::HeaderValue::from_static("xmpp"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Checks an upgrade request; `Ok` with the `Sec-WebSocket-Accept` value.
fn check(method: &Method, h: &HeaderMap, origins: Option<&[String]>) -> Result<String, Refusal> {
    let bad = |text: &str| (StatusCode::BAD_REQUEST, text.to_string());
    if method != Method::GET {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket is opened with GET".into(),
        ));
    }
    if !has_token(h, header::UPGRADE, "websocket") {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "this is the XMPP WebSocket endpoint (RFC 7395): connect with a WebSocket client"
                .into(),
        ));
    }
    if !has_token(h, header::CONNECTION, "upgrade") {
        return Err(bad("the Connection header must include \"Upgrade\""));
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 (RFC 6455) is supported".into(),
        ));
    }
    let key = h
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| k.len() == 24 && k.ends_with("=="))
        .ok_or_else(|| bad("Sec-WebSocket-Key is missing or not 16 bytes in base64"))?;
    if !has_token(h, header::SEC_WEBSOCKET_PROTOCOL, "xmpp") {
        return Err(bad(
            "the \"xmpp\" subprotocol is required (Sec-WebSocket-Protocol: xmpp, RFC 7395 §3.1)",
        ));
    }
    if let (Some(allowed), Some(origin)) = (origins, h.get(header::ORIGIN)) {
        let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
        if !allowed.contains(&origin) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("pages from {origin} may not connect here (see <web origins>)"),
            ));
        }
    }
    Ok(switchboard_core::stream::websocket::accept_key(key))
}

/// Whether a comma-separated header has `token` (case-insensitive).
fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .unwrap_or_default()
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, header::HeaderValue::from_static(v));
        }
        h
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-protocol", "xmpp"),
        ("origin", "https://chat.example.org"),
    ];

    #[test]
    fn a_good_upgrade_gets_the_accept_key() {
        assert_eq!(
            check(&Method::GET, &headers(GOOD), None).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let allowed = vec!["https://chat.example.org".to_string()];
        assert!(check(&Method::GET, &headers(GOOD), Some(&allowed)).is_ok());
    }

    #[test]
    fn refusals_say_why() {
        let without = |name: &str| {
            let pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != name).collect();
            check(&Method::GET, &headers(&pairs), None).unwrap_err()
        };
        assert_eq!(without("upgrade").0, StatusCode::UPGRADE_REQUIRED);
        assert!(without("sec-websocket-protocol").1.contains("xmpp"));
        assert!(without("sec-websocket-key").1.contains("Sec-WebSocket-Key"));
        let other = vec!["https://elsewhere.example".to_string()];
        let (status, text) = check(&Method::GET, &headers(GOOD), Some(&other)).unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(text.contains("https://chat.example.org"), "{text}");
    }
}
