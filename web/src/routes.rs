//! Which endpoint answers a request: by listener, path and method. The
//! metrics listener serves `/metrics` and nothing else; the HTTP and
//! HTTPS listeners serve everything else.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::listener::{Conn, Kind};
use crate::reply::{self, Body};
use crate::App;

pub(crate) async fn route(app: Arc<App>, conn: Conn, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if conn.kind == Kind::Metrics {
        return match path.as_str() {
            "/metrics" => crate::metrics::serve(&app, &method),
            _ => reply::error(StatusCode::NOT_FOUND, "not found; try /metrics"),
        };
    }
    match path.as_str() {
        "/xmpp-websocket" => crate::websocket::upgrade(&app, &conn, req),
        "/http-bind" => crate::bosh::serve(&app, &conn, req).await,
        "/.well-known/host-meta" | "/.well-known/host-meta.json" => {
            crate::host_meta::serve(&app, &conn, &req, path.ends_with(".json"))
        }
        "/" | "/index.html" => {
            get_only(&method).unwrap_or_else(|| crate::chat::page(&app, &conn, &req))
        }
        p if p.starts_with("/chat/") => match get_only(&method) {
            Some(refused) => refused,
            None => crate::chat::asset(&app, &p["/chat/".len()..], &method).await,
        },
        p if p == "/admin" || p.starts_with("/admin/") => {
            crate::admin::serve(&app, &conn, req).await
        }
        p if p.starts_with("/upload/") => {
            let rest = p["/upload/".len()..].to_string();
            crate::upload::serve(&app, &rest, req).await
        }
        "/metrics" => reply::error(
            StatusCode::NOT_FOUND,
            "metrics are served on the <metrics> listener only",
        ),
        _ => reply::not_found(),
    }
}

/// `None` for GET and HEAD; a 405 otherwise.
fn get_only(method: &Method) -> Option<Response<Body>> {
    match *method {
        Method::GET | Method::HEAD => None,
        _ => Some(reply::method_not_allowed("GET, HEAD")),
    }
}
