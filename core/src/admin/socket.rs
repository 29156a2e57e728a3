//! The admin socket: a Unix socket at `HOME/run/admin.sock` through which
//! the command line (`switchboard announce`, `users online`, `kick`) asks
//! the running server to act, and the client side of it.
//!
//! # Who may connect
//!
//! Only the user the server runs as (and root). `run/` is made mode 0700
//! before the socket is created, so nobody else can even reach the socket
//! while it is being bound; the socket itself is mode 0600 (some systems
//! ignore a socket's own mode, none ignore the directory's); and each
//! connection's peer credentials are checked on top of that. A socket left
//! by a crashed server is removed at start — the pidfile has already made
//! sure no other server uses this home — and the server removes its socket
//! when it stops.
//!
//! # Protocol (version 1)
//!
//! Text lines in UTF-8, each ending in `\n`. One request per connection:
//!
//! 1. the server greets: `switchboard-admin 1`;
//! 2. the client sends one request line: a command, then `key=value`
//!    fields, separated by single spaces;
//! 3. the server answers with zero or more `data VALUE` lines, then one
//!    final `ok TEXT` or `error CODE TEXT` line, and closes.
//!
//! Values (in fields and `data` lines) are percent-encoded: `%`, space and
//! every byte below 0x20 or equal to 0x7F become `%XX` (upper-case hex), so
//! a value never holds a space or a line break. `TEXT` is plain text for
//! people, to the end of the line.
//!
//! | request | answer |
//! | --- | --- |
//! | `announce [host=H] [subject=S] body=B` | `ok N`: handed to N sessions (every host when `host` is absent) |
//! | `users-online [host=H]` | one `data JID` per session (full JID, sorted), then `ok N` |
//! | `kick jid=J` | `ok N`: N sessions closed; `error not-found …` when J has none |
//! | `service-command service=H node=N [field.NAME=VALUE]…` | a service's XEP-0050 command run with those field values (see `service_commands.rs`): one `data LINE` per line of its answer, then `ok`; `error service …` when the service refuses, fails or does not answer |
//!
//! Error codes: `bad-request` (a request that does not parse, an empty
//! announcement, an invalid JID), `unknown-host`, `not-found`, `service`,
//! `internal`.
//! A request line longer than [`MAX_REQUEST`] bytes is refused.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard_jid::Jid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::Admin;
use super::{announce_online, kick, online_users, AdminError, Announcement};

/// The first line the server sends.
pub const GREETING: &str = "switchboard-admin 1";

/// The longest request line accepted (an announcement's text included).
pub const MAX_REQUEST: usize = 256 * 1024;

/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request, as the client builds it and the server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Announce {
        host: Option<String>,
        subject: Option<String>,
        body: String,
    },
    UsersOnline {
        host: Option<String>,
    },
    Kick {
        jid: String,
    },
    ServiceCommand {
        service: String,
        node: String,
        /// Field values, in the order given.
        fields: Vec<(String, String)>,
    },
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The `data` lines, decoded.
    pub data: Vec<String>,
    /// `ok TEXT`, or `error CODE TEXT`.
    pub outcome: Result<String, Failure>,
}

/// An `error CODE TEXT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub text: String,
}

/// Percent-encodes a value (see the module documentation).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    // Every byte that needs escaping is ASCII, so escaping per character
    // leaves multi-byte characters whole.
    for c in value.chars() {
        if c == '%' || c == ' ' || c < '\u{20}' || c == '\u{7f}' {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Undoes [`encode`]; `None` for a malformed escape or bytes that are not
/// UTF-8.
pub fn decode(value: &str) -> Option<String> {
    let src = value.as_bytes();
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        if src[i] == b'%' {
            let hex = std::str::from_utf8(src.get(i + 1..i + 3)?).ok()?;
            if !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(src[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Request {
    /// The request line, without its `\n`.
    pub fn to_line(&self) -> String {
        let mut line = String::new();
        let mut field = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                line.push(' ');
                line.push_str(k);
                line.push('=');
                line.push_str(&encode(v));
            }
        };
        match self {
            Request::Announce {
                host,
                subject,
                body,
            } => {
                field("host", host);
                field("subject", subject);
                field("body", &Some(body.clone()));
                format!("announce{line}")
            }
            Request::UsersOnline { host } => {
                field("host", host);
                format!("users-online{line}")
            }
            Request::Kick { jid } => {
                field("jid", &Some(jid.clone()));
                format!("kick{line}")
            }
            Request::ServiceCommand {
                service,
                node,
                fields,
            } => {
                field("service", &Some(service.clone()));
                field("node", &Some(node.clone()));
                for (k, v) in fields {
                    field(&format!("field.{k}"), &Some(v.clone()));
                }
                format!("service-command{line}")
            }
        }
    }

    /// Reads a request line (without its line break).
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split(' ');
        let command = words.next().unwrap_or_default();
        let mut fields = std::collections::BTreeMap::new();
        let mut form = Vec::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("'{w}' is not a key=value field"))?;
            let v = decode(v).ok_or_else(|| format!("the value of {k} is badly encoded"))?;
            if let Some(name) = k.strip_prefix("field.") {
                if form.iter().any(|(n, _)| n == name) {
                    return Err(format!("{k} is given twice"));
                }
                form.push((name.to_string(), v));
                continue;
            }
            if fields.insert(k.to_string(), v).is_some() {
                return Err(format!("{k} is given twice"));
            }
        }
        let mut take = |k: &str| fields.remove(k);
        let request = match command {
            "announce" => Request::Announce {
                host: take("host"),
                subject: take("subject"),
                body: take("body").ok_or("announce needs body=")?,
            },
            "users-online" => Request::UsersOnline { host: take("host") },
            "kick" => Request::Kick {
                jid: take("jid").ok_or("kick needs jid=")?,
            },
            "service-command" => Request::ServiceCommand {
                service: take("service").ok_or("service-command needs service=")?,
                node: take("node").ok_or("service-command needs node=")?,
                fields: std::mem::take(&mut form),
            },
            other => return Err(format!("unknown command '{other}'")),
        };
        if !form.is_empty() {
            return Err(format!("{command} takes no field.{}=", form[0].0));
        }
        match fields.keys().next() {
            Some(k) => Err(format!("{command} takes no {k}=")),
            None => Ok(request),
        }
    }
}

impl Response {
    fn ok(data: Vec<String>, text: impl Into<String>) -> Response {
        Response {
            data,
            outcome: Ok(text.into()),
        }
    }

    fn error(code: &str, text: impl Into<String>) -> Response {
        Response {
            data: Vec::new(),
            outcome: Err(Failure {
                code: code.into(),
                text: text.into(),
            }),
        }
    }

    /// The answer as it goes on the wire.
    pub fn to_text(&self) -> String {
        let one_line = |s: &str| s.replace(['\r', '\n'], " ");
        let mut out = String::new();
        for d in &self.data {
            out.push_str("data ");
            out.push_str(&encode(d));
            out.push('\n');
        }
        match &self.outcome {
            Ok(t) => out.push_str(&format!("ok {}\n", one_line(t))),
            Err(f) => out.push_str(&format!("error {} {}\n", f.code, one_line(&f.text))),
        }
        out
    }

    /// Reads an answer line by line; `Ok(None)` until the final line.
    fn read_line(&mut self, line: &str) -> Result<bool, String> {
        if let Some(d) = line.strip_prefix("data ") {
            self.data
                .push(decode(d).ok_or_else(|| format!("badly encoded data line: {line}"))?);
            return Ok(false);
        }
        if line == "ok" || line.starts_with("ok ") {
            self.outcome = Ok(line.get(3..).unwrap_or_default().to_string());
            return Ok(true);
        }
        if let Some(rest) = line.strip_prefix("error ") {
            let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
            self.outcome = Err(Failure {
                code: code.to_string(),
                text: text.to_string(),
            });
            return Ok(true);
        }
        Err(format!("unexpected line from the server: {line}"))
    }
}

fn from_admin_error(e: &AdminError) -> Response {
    let code = match e {
        AdminError::UnknownHost(_) => "unknown-host",
        AdminError::NoSession(_) => "not-found",
        AdminError::Empty => "bad-request",
        AdminError::Store(_) | AdminError::ShuttingDown => "internal",
    };
    Response::error(code, e.to_string())
}

/// Carries out a request against the running server.
pub fn execute(admin: &Admin, request: Request) -> Response {
    let normalize_host = |h: Option<String>| -> Result<Option<String>, Response> {
        h.map(|h| {
            switchboard_jid::normalize_domain(&h)
                .map_err(|e| Response::error("bad-request", format!("'{h}' is not a domain: {e}")))
        })
        .transpose()
    };
    match request {
        Request::Announce {
            host,
            subject,
            body,
        } => {
            let host = match normalize_host(host) {
                Ok(h) => h,
                Err(r) => return r,
            };
            let announcement = match Announcement::new(subject.as_deref(), &body) {
                Ok(a) => a,
                Err(e) => return Response::error("bad-request", e.to_string()),
            };
            let hosts = match host {
                Some(h) => vec![h],
                None => admin.router.hosts().to_vec(),
            };
            let mut n = 0;
            for h in hosts {
                match announce_online(&admin.router, &h, &announcement) {
                    Ok(k) => n += k,
                    Err(e) => return from_admin_error(&e),
                }
            }
            Response::ok(Vec::new(), n.to_string())
        }
        Request::UsersOnline { host } => {
            let host = match normalize_host(host) {
                Ok(h) => h,
                Err(r) => return r,
            };
            match online_users(&admin.router, host.as_deref()) {
                Ok(users) => {
                    let n = users.len();
                    Response::ok(users.iter().map(Jid::to_string).collect(), n.to_string())
                }
                Err(e) => from_admin_error(&e),
            }
        }
        Request::Kick { jid } => {
            let jid = match Jid::parse(&jid) {
                Ok(j) => j,
                Err(e) => {
                    return Response::error("bad-request", format!("'{jid}' is not a JID: {e}"))
                }
            };
            match kick(&admin.router, &jid) {
                Ok(n) => Response::ok(Vec::new(), n.to_string()),
                Err(e) => from_admin_error(&e),
            }
        }
        Request::ServiceCommand { .. } => Response::error(
            "internal",
            "a service command is asked of the service, not carried out here",
        ),
    }
}

/// Carries out a request, waiting for a service when it asks one.
pub async fn execute_async(admin: &Admin, request: Request) -> Response {
    match request {
        Request::ServiceCommand {
            service,
            node,
            fields,
        } => {
            let service = match switchboard_jid::normalize_domain(&service) {
                Ok(s) => s,
                Err(e) => {
                    return Response::error(
                        "bad-request",
                        format!("'{service}' is not a hostname: {e}"),
                    )
                }
            };
            match super::service_commands::run(&admin.router, &service, &node, &fields).await {
                Ok(lines) => Response::ok(lines, ""),
                Err(e) => Response::error("service", e),
            }
        }
        other => execute(admin, other),
    }
}

/// The listening socket. Dropping it stops accepting and removes the
/// socket file (if it is still the one this server created).
pub struct AdminSocket {
    path: PathBuf,
    /// Device and inode of the socket file, so that shutdown never removes
    /// a socket some later server put at the same path.
    id: (u64, u64),
    task: tokio::task::JoinHandle<()>,
}

impl AdminSocket {
    /// Creates the socket at `path` (see the module documentation for the
    /// permissions) and starts serving it. Errors are sentences for the
    /// admin.
    pub async fn bind(path: &Path, admin: Arc<Admin>) -> Result<AdminSocket, String> {
        let dir = path
            .parent()
            .ok_or_else(|| format!("{}: the admin socket needs a directory", path.display()))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mode = std::fs::metadata(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                format!(
                    "cannot make {} private (mode 0700) for the admin socket: {e}",
                    dir.display()
                )
            })?;
            tracing::info!(dir = %dir.display(), "made the run directory private (mode 0700) for the admin socket");
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|e| {
                    format!(
                        "cannot remove the stale admin socket {}: {e}",
                        path.display()
                    )
                })?;
                tracing::info!(path = %path.display(), "removed a stale admin socket");
            }
            Ok(_) => {
                return Err(format!(
                    "{} exists and is not a socket; remove it so the admin socket can be created",
                    path.display()
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| format!("cannot create the admin socket {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let owner = meta.uid();
        tracing::info!(path = %path.display(), "admin socket ready");
        let task = tokio::spawn(accept(listener, admin, owner));
        Ok(AdminSocket {
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
            task,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

async fn accept(listener: UnixListener, admin: Arc<Admin>, owner: u32) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("admin socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == owner || cred.uid() == 0 => {}
            Ok(cred) => {
                tracing::warn!(
                    uid = cred.uid(),
                    "admin socket: refused a connection from another user"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!("admin socket: cannot tell who connected, refused: {e}");
                continue;
            }
        }
        tokio::spawn(serve(stream, admin.clone()));
    }
}

async fn serve(mut stream: UnixStream, admin: Arc<Admin>) {
    let (read, mut write) = stream.split();
    if write
        .write_all(format!("{GREETING}\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let response = match read {
        Err(_) => Response::error("bad-request", "no request within 30 seconds"),
        Ok(Err(e)) => return tracing::debug!("admin socket: read failed: {e}"),
        Ok(Ok(_)) if line.len() > MAX_REQUEST => Response::error(
            "bad-request",
            format!("the request is longer than {MAX_REQUEST} bytes"),
        ),
        Ok(Ok(_)) if !line.ends_with(b"\n") => {
            Response::error("bad-request", "the request line did not end")
        }
        Ok(Ok(_)) => match std::str::from_utf8(&line[..line.len() - 1]) {
            Err(_) => Response::error("bad-request", "the request is not UTF-8"),
            Ok(text) => match Request::parse(text.trim_end_matches('\r')) {
                Err(e) => Response::error("bad-request", e),
                Ok(request) => {
                    tracing::info!(command = %text.split(' ').next().unwrap_or_default(), "admin socket request");
                    execute_async(&admin, request).await
                }
            },
        },
    };
    let _ = write.write_all(response.to_text().as_bytes()).await;
    let _ = write.shutdown().await;
}

/// Why the client side could not get an answer.
#[derive(Debug)]
pub enum ClientError {
    /// No socket, or nobody listening on it: the server is not running
    /// (for this home).
    NotRunning { path: PathBuf },
    /// The socket exists but belongs to another user.
    PermissionDenied { path: PathBuf },
    /// Anything else: I/O trouble, or a server that does not speak this
    /// protocol.
    Failed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning { path } => write!(
                f,
                "the server is not running (nothing answers on its admin socket {})",
                path.display()
            ),
            ClientError::PermissionDenied { path } => write!(
                f,
                "permission denied on the admin socket {}: run this as the user the server runs as",
                path.display()
            ),
            ClientError::Failed(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends one request to the server listening at `path` and reads its
/// answer, each step bounded by `timeout`. Blocking: for the command line.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    use std::io::ErrorKind;
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::NotRunning {
            path: path.to_path_buf(),
        },
        ErrorKind::PermissionDenied => ClientError::PermissionDenied {
            path: path.to_path_buf(),
        },
        _ => ClientError::Failed(format!("cannot connect to {}: {e}", path.display())),
    })?;
    let failed = |e: std::io::Error| {
        ClientError::Failed(format!(
            "talking to the server over {}: {e}",
            path.display()
        ))
    };
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(failed)?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(failed)?;
    if line.trim_end() != GREETING {
        return Err(ClientError::Failed(format!(
            "{} does not speak the admin protocol this command does (it said {:?}); is the server the same version?",
            path.display(),
            line.trim_end()
        )));
    }
    let mut w = &stream;
    w.write_all(format!("{}\n", req.to_line()).as_bytes())
        .map_err(failed)?;
    let mut response = Response {
        data: Vec::new(),
        outcome: Ok(String::new()),
    };
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(failed)? == 0 {
            return Err(ClientError::Failed(
                "the server closed the admin connection without an answer".into(),
            ));
        }
        let done = response
            .read_line(line.trim_end_matches('\n'))
            .map_err(ClientError::Failed)?;
        if done {
            return Ok(response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_encoding_and_never_hold_spaces_or_line_breaks() {
        for v in [
            "",
            "plain",
            "two words",
            "line\nbreak\r\n",
            "100% sure",
            "tab\there",
            "Grüße, 你好 🎉",
            "a=b",
            "%41",
            "\u{7f}\u{1}",
        ] {
            let e = encode(v);
            assert!(!e.contains([' ', '\n', '\r', '\t']), "{v:?} -> {e:?}");
            assert_eq!(decode(&e).as_deref(), Some(v), "{e:?}");
        }
        assert_eq!(encode("a b%"), "a%20b%25");
        for bad in ["%", "%4", "%zz", "%4a", "%FF"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Announce {
                host: Some("example.com".into()),
                subject: Some("Maintenance tonight".into()),
                body: "Down at 22:00.\n\nBack soon = promise.".into(),
            },
            Request::Announce {
                host: None,
                subject: None,
                body: "x".into(),
            },
            Request::UsersOnline { host: None },
            Request::UsersOnline {
                host: Some("example.com".into()),
            },
            Request::Kick {
                jid: "alice@example.com/desk top".into(),
            },
            Request::ServiceCommand {
                service: "conference.example.com".into(),
                node: "http://jabber.org/protocol/muc#admin-destroy-room".into(),
                fields: vec![
                    ("room".into(), "kitchen@conference.example.com".into()),
                    ("reason".into(), "closed\nfor the night".into()),
                ],
            },
        ] {
            let line = r.to_line();
            assert!(!line.contains('\n'));
            assert_eq!(Request::parse(&line), Ok(r), "{line}");
        }
    }

    #[test]
    fn bad_requests_are_explained() {
        for (line, want) in [
            ("shutdown", "unknown command"),
            ("kick", "needs jid"),
            ("announce host=x", "needs body"),
            ("kick jid=a jid=b", "twice"),
            ("kick jid=a extra=1", "takes no extra"),
            ("kick jid", "key=value"),
            ("kick jid=%Z1", "badly encoded"),
            ("service-command node=n", "needs service"),
            (
                "service-command service=s node=n field.a=1 field.a=2",
                "twice",
            ),
            ("kick jid=a field.x=1", "takes no field.x"),
        ] {
            let e = Request::parse(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::ok(vec!["a@x/1".into(), "b c".into()], "2");
        let mut back = Response {
            data: Vec::new(),
            outcome: Ok(String::new()),
        };
        let mut done = false;
        for line in r.to_text().lines() {
            assert!(!done);
            done = back.read_line(line).unwrap();
        }
        assert!(done);
        assert_eq!(back, r);
        let r = Response::error("not-found", "nobody\nhere");
        assert_eq!(r.to_text(), "error not-found nobody here\n");
        let mut back = Response::ok(Vec::new(), "");
        assert!(back.read_line("error not-found nobody here").unwrap());
        assert_eq!(back.outcome.as_ref().unwrap_err().code, "not-found");
        assert!(back.read_line("hello").is_err());
    }
}
