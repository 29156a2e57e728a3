//! The chat page: converse.js, from the directory the admin installed it
//! in (`<web chat-dir>`; the README gives the one npm command), set up for
//! this server's WebSocket endpoint, so a user with no client installed
//! can log in, chat and join rooms from a browser. Without the directory
//! the page says how to install it.
//!
//! converse.js is an ES module since version 12 (`dist/converse.min.js`
//! exports it and loads its chunks relative to itself), so the page
//! imports it from a module script.

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::files::{self, FileBody};
use crate::listener::Conn;
use crate::reply::{self, Body};
use crate::App;

/// The files converse.js's npm package keeps its build in.
const DIST: &str = "dist";

pub(crate) fn page<B>(app: &App, conn: &Conn, req: &Request<B>) -> Response<Body> {
    let Some(dir) = &app.web.chat_dir else {
        return not_installed("no chat-dir is set in <web>");
    };
    if !dir.join(DIST).join("converse.min.js").is_file() {
        return not_installed(&format!("{} has no {DIST}/converse.min.js", dir.display()));
    }
    let Some(authority) = crate::host_meta::authority(req) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "a Host header naming this server is required",
        );
    };
    let scheme = if conn.secure() { "wss" } else { "ws" };
    let domain = app.hosts.first().cloned().unwrap_or_default();
    let muc = app.muc.clone().unwrap_or_default();
    let html = PAGE
        .replace("{WS}", &format!("{scheme}://{authority}/xmpp-websocket"))
        .replace("{DOMAIN}", &js_string(&domain))
        .replace("{MUC}", &js_string(&muc));
    let mut r = reply::ok("text/html; charset=utf-8", html);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// A file of the converse.js directory, streamed.
pub(crate) async fn asset(app: &App, rel: &str, method: &Method) -> Response<Body> {
    let Some(dir) = &app.web.chat_dir else {
        return reply::not_found();
    };
    let Some(path) = files::resolve(dir, rel) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "not a file name this server serves",
        );
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return reply::not_found(),
    };
    let len = match file.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        _ => return reply::not_found(),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let body = if *method == Method::HEAD {
        reply::full("")
    } else {
        FileBody::new(file, len).boxed_unsync()
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(files::content_type(name)) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, len.into());
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

fn not_installed(why: &str) -> Response<Body> {
    let html = NOT_INSTALLED.replace("{WHY}", &crate::html::esc(why));
    reply::with(StatusCode::NOT_FOUND, "text/html; charset=utf-8", html)
}

/// A JavaScript string literal's inside (the values are host names, but
/// nothing is trusted into a script).
fn js_string(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-".contains(*c))
        .collect()
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat</title>
<link rel="stylesheet" type="text/css" media="screen" href="/chat/dist/converse.min.css">
</head>
<body class="converse-fullscreen">
<noscript>The chat needs JavaScript.</noscript>
<script type="module">
import converse from '/chat/dist/converse.min.js';
converse.initialize({
  websocket_url: '{WS}',
  discover_connection_methods: false,
  view_mode: 'fullscreen',
  default_domain: '{DOMAIN}',
  locked_domain: '{DOMAIN}',
  muc_domain: '{MUC}',
  assets_path: '/chat/dist/',
  allow_registration: false,
  show_controlbox_by_default: true,
  auto_reconnect: true,
  loglevel: 'info',
});
</script>
</body>
</html>
"#;

const NOT_INSTALLED: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Chat not installed</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;color:#222}
code{background:#f2f2f2;padding:.1em .3em}</style></head>
<body><h1>The chat page is not installed</h1>
<p>{WHY}.</p>
<p>The administrator installs converse.js with one command in the server's
home directory, <code>npm install --prefix web/converse converse.js</code>,
and sets <code>&lt;web chat-dir="web/converse/node_modules/converse.js"/&gt;</code>
in the config.</p>
<p>XMPP clients connect over WebSocket at <code>/xmpp-websocket</code>.</p>
</body></html>
"#;
