//! The thin driver of a [`Session`]: one task per signed-on user that
//! performs the session's HTTP requests with `reqwest` (several at once:
//! the `/sync` long-poll, each room's send, typing notifications), hands
//! it the service's requests, the responses and the time, delivers its
//! stanzas and stores its sync state, in the order the session gives
//! them.
//!
//! [`Homeserver`] is the one place a request becomes a URL and gets the
//! access token; it never follows a redirect, reads at most the
//! request's limit of body, and turns every failure into a
//! [`Failure`] value.
//!
//! [`Media`] moves files for the session ([`crate::session::media`]):
//! downloads from Matrix into the server's upload service, and files
//! users link to (their XEP-0363 uploads) up to the homeserver.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_jid::Jid;
use switchboard_service::files::FileShare;
use switchboard_service::Outbox;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::http::{Failure, Method, Outcome, Request, RequestId, Response};
use crate::session::media::{self, MediaJob};
use crate::session::{Action, Params, Session, ToMatrix};
use crate::state::SyncStore;

/// How long opening a connection to a homeserver may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long moving one file (a download, a fetch, an upload) may take.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(120);

/// Files already uploaded to the homeserver, by the URL they came from,
/// so that a send retried after a rate limit does not upload again.
const UPLOADED: usize = 64;

/// What a session's driver moves files with.
#[derive(Clone)]
pub struct Media {
    /// The server's upload service, when it has one: files from Matrix
    /// are stored there; links to it are read from it directly.
    pub files: Option<Arc<dyn FileShare>>,
    /// The client for links to anywhere else (the transport's default
    /// trust, no redirects).
    pub web: reqwest::Client,
    /// The largest file moved either way (`max-media-size`).
    pub limit: u64,
    /// Whether links to anything but `files` are fetched
    /// (`fetch-links="any"`).
    pub fetch_any_link: bool,
    /// Files uploaded already, by the URL they came from.
    uploaded: Arc<Mutex<HashMap<String, Uploaded>>>,
}

/// A file on the homeserver: its `mxc://` URL, name, type and size.
type Uploaded = (String, String, String, u64);

impl Media {
    pub fn new(
        files: Option<Arc<dyn FileShare>>,
        web: reqwest::Client,
        limit: u64,
        fetch_any_link: bool,
    ) -> Media {
        Media {
            files,
            web,
            limit,
            fetch_any_link,
            uploaded: Arc::default(),
        }
    }

    /// The limit on files from Matrix, when they can be stored at all.
    pub fn download_limit(&self) -> Option<u64> {
        self.files.as_ref().map(|f| f.max_size().min(self.limit))
    }

    /// Performs a [`MediaJob`]: the messages to deliver.
    async fn fetch(&self, hs: &Homeserver, job: MediaJob) -> Vec<switchboard_xml::Element> {
        let stored = async {
            let files = self
                .files
                .as_ref()
                .ok_or_else(|| "the server keeps no files".to_string())?;
            let data = download(hs, &job).await?;
            files
                .store(&job.owner, &job.name, &job.content_type, data)
                .await
        }
        .await;
        if let Err(why) = &stored {
            tracing::info!(user = %job.owner, server = %job.server, media = %job.media_id, "a Matrix file was not fetched: {why}");
        }
        job.finish(stored)
    }

    /// `req` (the send of a text message linking to `url`) made into the
    /// send of the file itself, once uploaded; as it was when that fails.
    async fn attach(&self, hs: &Homeserver, mut req: Request, url: &str) -> Request {
        let cached = self
            .uploaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(url)
            .cloned();
        let up = match cached {
            Some(up) => Ok(up),
            None => self.upload(hs, url).await,
        };
        match up {
            Ok(up) => {
                if let Some(text) = &req.body {
                    req.body = Some(media::attached(text, &up.0, &up.1, &up.2, up.3));
                }
                let mut map = self.uploaded.lock().unwrap_or_else(|e| e.into_inner());
                if map.len() >= UPLOADED {
                    map.clear();
                }
                map.insert(url.to_owned(), up);
            }
            Err(why) => {
                tracing::info!("a linked file goes to Matrix as its link only: {why}");
            }
        }
        req
    }

    async fn upload(&self, hs: &Homeserver, url: &str) -> Result<Uploaded, String> {
        let own = match &self.files {
            Some(f) => f.open(url, self.limit).await,
            None => None,
        };
        let (name, content_type, data) = match own {
            Some(Ok(f)) => (f.name, f.content_type, f.data),
            Some(Err(why)) => return Err(why),
            // Fetching whatever a user links to would let any user make
            // the transport read addresses inside the network and post
            // them to Matrix: only when the admin said so.
            None if !self.fetch_any_link => {
                return Err(
                    "it is not a file of this server's upload service (fetch-links=\"own\")".into(),
                )
            }
            None => self.fetch_url(url).await?,
        };
        let size = data.len() as u64;
        let mxc = hs.upload(&name, &content_type, data).await?;
        Ok((mxc, name, content_type, size))
    }

    /// GETs a file a user linked to: only `http(s)`, no redirects, at most
    /// the limit.
    async fn fetch_url(&self, url: &str) -> Result<(String, String, Vec<u8>), String> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err("not an http(s) link".into());
        }
        let mut resp = self
            .web
            .get(url)
            .timeout(MEDIA_TIMEOUT)
            .send()
            .await
            .map_err(|e| failure(e).to_string())?;
        if !resp.status().is_success() {
            return Err(format!(
                "fetching it answered HTTP {}",
                resp.status().as_u16()
            ));
        }
        if resp.content_length().is_some_and(|n| n > self.limit) {
            return Err(format!("it is larger than {} bytes", self.limit));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| {
                v.contains('/')
                    && v.len() <= 100
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/!#$&-^_.+".contains(&b))
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        let mut data = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| failure(e).to_string())? {
            if (data.len() + chunk.len()) as u64 > self.limit {
                return Err(format!("it is larger than {} bytes", self.limit));
            }
            data.extend_from_slice(&chunk);
        }
        Ok((media::name_from_url(url), content_type, data))
    }
}

/// Downloads a job's file with the user's token: authenticated media,
/// then the older path when the homeserver does not know the first.
async fn download(hs: &Homeserver, job: &MediaJob) -> Result<Vec<u8>, String> {
    let [first, legacy] = job.paths();
    for (i, path) in [first, legacy].into_iter().enumerate() {
        let req = Request {
            id: RequestId(0),
            method: Method::Get,
            path,
            body: None,
            timeout: MEDIA_TIMEOUT,
            limit: usize::try_from(job.limit).unwrap_or(usize::MAX),
            attach: None,
        };
        match hs.perform(&req).await {
            Ok(r) if r.ok() => return Ok(r.body),
            Ok(r) => {
                let e = r.error();
                if i == 0 && (e.status == 404 || e.errcode == "M_UNRECOGNIZED") {
                    continue;
                }
                return Err(e.to_string());
            }
            Err(Failure::TooLarge) => {
                return Err(format!(
                    "it is larger than the gateway's limit of {} bytes",
                    job.limit
                ))
            }
            Err(f) => return Err(f.to_string()),
        }
    }
    Err("the homeserver does not have it".into())
}

/// A homeserver as the driver reaches it: a client (with its TLS
/// verifier), the base URL and the access token.
#[derive(Clone)]
pub struct Homeserver {
    client: reqwest::Client,
    base: Arc<str>,
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for Homeserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Homeserver")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP client for one trust setting: HTTP/1.1 over the link
/// kit's rustls config, no redirects, no proxy from the environment.
pub fn client(tls: rustls::ClientConfig) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .no_proxy()
        .user_agent(concat!(
            "Switchboard-Matrix-transport/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

impl Homeserver {
    pub fn new(client: reqwest::Client, base: &str, token: Option<&str>) -> Homeserver {
        Homeserver {
            client,
            base: Arc::from(base.trim_end_matches('/')),
            token: token.map(Arc::from),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same homeserver with another access token.
    pub fn with_token(&self, token: &str) -> Homeserver {
        Homeserver {
            token: Some(Arc::from(token)),
            ..self.clone()
        }
    }

    /// Performs one request; never panics, never follows a redirect.
    pub async fn perform(&self, req: &Request) -> Outcome {
        let url = format!("{}{}", self.base, req.path);
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        };
        let mut rb = self.client.request(method, url).timeout(req.timeout);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(body) = &req.body {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        read(rb, req.limit).await
    }

    /// Uploads a file (`POST /_matrix/media/v3/upload`); its `mxc://`
    /// URL, or why not.
    pub async fn upload(
        &self,
        name: &str,
        content_type: &str,
        data: Vec<u8>,
    ) -> Result<String, String> {
        let url = format!(
            "{}{}?filename={}",
            self.base,
            media::UPLOAD,
            crate::text::path_segment(name)
        );
        let mut rb = self
            .client
            .post(url)
            .timeout(MEDIA_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(data);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let r = read(rb, crate::http::SMALL_BODY)
            .await
            .map_err(|f| f.to_string())?;
        if !r.ok() {
            return Err(format!("the homeserver refused the upload: {}", r.error()));
        }
        r.json()
            .get("content_uri")
            .and_then(serde_json::Value::as_str)
            .filter(|u| media::parse_mxc(u).is_some())
            .map(str::to_owned)
            .ok_or_else(|| "the homeserver's answer to the upload has no mxc:// URL".into())
    }
}

/// Sends a request and reads its answer: never follows a redirect, reads
/// at most `limit` bytes of body.
async fn read(rb: reqwest::RequestBuilder, limit: usize) -> Outcome {
    let mut resp = rb.send().await.map_err(failure)?;
    let status = resp.status();
    if status.is_redirection() {
        let to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| crate::text::clean_line(l, 200))
            .unwrap_or_else(|| "no location".into());
        return Err(Failure::Redirect(to));
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Failure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failure)? {
        if body.len() + chunk.len() > limit {
            return Err(Failure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status: status.as_u16(),
        retry_after,
        body,
    })
}

/// A reqwest error as a failure, in the words of its innermost cause
/// (`connection refused`, a certificate problem), without the URL.
fn failure(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::Timeout;
    }
    let e = e.without_url();
    let mut words = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        words = s.to_string();
        source = s.source();
    }
    Failure::Network(words)
}

/// What a session task needs to start, still being read (the user's
/// registration and sync state): the task awaits it, so that the service
/// loop never waits for a file.
pub type Loading =
    Pin<Box<dyn Future<Output = Result<(Params, Homeserver), String>> + Send + 'static>>;

/// What an ending session tells the service: the user's bare JID, and
/// whether the homeserver signed the session out.
pub type Done = (String, bool);

/// Starts a session task for `user`; it reports to `done` when it ends.
pub fn spawn(
    user: Jid,
    loading: Loading,
    sync: SyncStore,
    media: Media,
    out: Outbox,
    done: mpsc::Sender<Done>,
) -> mpsc::Sender<ToMatrix> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let bare = user.to_bare();
        let signed_out = match loading.await {
            Ok((params, hs)) => {
                let mut session = Session::new(params, clock());
                drive(&mut session, &hs, &sync, &media, &bare, rx, &out).await
            }
            Err(why) => {
                tracing::error!(user = %bare, error = %why, "cannot start a Matrix session");
                let _ = out
                    .send(crate::session::notice(
                        &sync_host(&sync),
                        &bare,
                        &format!("Your Matrix session cannot start: {why}"),
                    ))
                    .await;
                false
            }
        };
        let _ = done.send((bare.to_string(), signed_out)).await;
    });
    tx
}

fn sync_host(sync: &SyncStore) -> String {
    sync.service().to_owned()
}

/// The session's clock: tokio's, so that tests may pause it.
fn clock() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the session until it ends; whether the homeserver signed it out.
async fn drive(
    session: &mut Session,
    hs: &Homeserver,
    sync: &SyncStore,
    media: &Media,
    user: &Jid,
    mut rx: mpsc::Receiver<ToMatrix>,
    out: &Outbox,
) -> bool {
    let mut requests: JoinSet<Outcome> = JoinSet::new();
    let mut ids: HashMap<tokio::task::Id, RequestId> = HashMap::new();
    let mut open = true;
    loop {
        while let Some(action) = session.poll_action() {
            match action {
                Action::Http(req) => {
                    let hs = hs.clone();
                    let media = media.clone();
                    let id = req.id;
                    let handle = requests.spawn(async move {
                        let req = match req.attach.clone() {
                            Some(url) => media.attach(&hs, req, &url).await,
                            None => req,
                        };
                        hs.perform(&req).await
                    });
                    ids.insert(handle.id(), id);
                }
                Action::Media(job) => {
                    for s in media.fetch(hs, job).await {
                        if out.send(s).await.is_err() {
                            return false;
                        }
                    }
                }
                Action::Stanza(s) => {
                    if out.send(s).await.is_err() {
                        // The service is going away.
                        return false;
                    }
                }
                Action::Persist(saved) => {
                    if let Err(e) = sync.save(user, &saved).await {
                        tracing::error!(user = %user, error = %e, "cannot store the Matrix sync state");
                    }
                }
                Action::End { signed_out } => {
                    requests.abort_all();
                    return signed_out;
                }
            }
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            req = rx.recv(), if open => match req {
                Some(r) => session.handle(r, clock()),
                None => {
                    open = false;
                    session.handle(ToMatrix::Stop, clock());
                }
            },
            Some(done) = requests.join_next_with_id(), if !requests.is_empty() => {
                let (task, outcome) = match done {
                    Ok((task, outcome)) => (task, outcome),
                    Err(e) => (e.id(), Err(Failure::Network("the request's task failed".into()))),
                };
                if let Some(id) = ids.remove(&task) {
                    session.handle_response(id, outcome, clock());
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline.unwrap_or_else(clock))), if deadline.is_some() => {
                session.handle_timeout(clock());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The file transfers against a stand-in homeserver on loopback: one
    //! HTTP/1.1 exchange per connection, every request recorded.

    use std::sync::Mutex as StdMutex;

    use serde_json::json;
    use switchboard_service::files::{FileFuture, SharedFile};
    use switchboard_xml::Element;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Four strings of bytes: a request as the stand-in saw it (method,
    /// path, headers in lower case, body), or a file as stored (owner,
    /// name, type, bytes).
    type Record = (String, String, String, Vec<u8>);

    /// What the stand-in saw.
    type Seen = Arc<StdMutex<Vec<Record>>>;

    /// Serves `answer(method, path)` → (status, content type, body).
    async fn homeserver(
        answer: impl Fn(&str, &str) -> (u16, &'static str, Vec<u8>) + Send + Sync + 'static,
    ) -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let raw_head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let mut first = raw_head.split_whitespace();
                let (method, path) = (
                    first.next().unwrap().to_owned(),
                    first.next().unwrap().to_owned(),
                );
                let (status, ctype, body) = answer(&method, &path);
                log.lock()
                    .unwrap()
                    .push((method, path, head, buf[head_end..].to_vec()));
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                sock.write_all(reply.as_bytes()).await.unwrap();
                sock.write_all(&body).await.unwrap();
                let _ = sock.shutdown().await;
            }
        });
        (base, seen)
    }

    /// An upload service in memory: what was stored, and one file of its
    /// own at `OWN`.
    #[derive(Default)]
    struct Share {
        stored: StdMutex<Vec<Record>>,
    }

    const OWN: &str = "https://up.l/upload/upload.l/1/dog.png";

    impl FileShare for Share {
        fn max_size(&self) -> u64 {
            1000
        }

        fn store<'a>(
            &'a self,
            owner: &'a str,
            name: &'a str,
            content_type: &'a str,
            data: Vec<u8>,
        ) -> FileFuture<'a, Result<String, String>> {
            self.stored.lock().unwrap().push((
                owner.into(),
                name.into(),
                content_type.into(),
                data,
            ));
            Box::pin(async { Ok("https://up.l/upload/upload.l/2/cat.png".to_string()) })
        }

        fn open<'a>(
            &'a self,
            url: &'a str,
            _limit: u64,
        ) -> FileFuture<'a, Option<Result<SharedFile, String>>> {
            let found = (url == OWN).then(|| {
                Ok(SharedFile {
                    name: "dog.png".into(),
                    content_type: "image/png".into(),
                    data: b"dog!".to_vec(),
                })
            });
            Box::pin(async move { found })
        }
    }

    fn media(share: &Arc<Share>) -> Media {
        let files: Arc<dyn FileShare> = share.clone();
        Media::new(Some(files), client(), 1000, true)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    fn job() -> MediaJob {
        MediaJob {
            server: "x".into(),
            media_id: "abc".into(),
            name: "cat.png".into(),
            content_type: "image/png".into(),
            owner: "u@l".into(),
            limit: 1000,
            stanzas: vec![Element::new("message", "jabber:client")
                .with_child(Element::new("body", "jabber:client").with_text("[image: cat.png]"))],
        }
    }

    #[tokio::test]
    async fn a_matrix_file_falls_back_to_the_older_path_and_is_stored_for_the_user() {
        let (base, seen) = homeserver(|_, path| {
            if path.starts_with("/_matrix/client/v1/") {
                (
                    404,
                    "application/json",
                    br#"{"errcode":"M_UNRECOGNIZED"}"#.to_vec(),
                )
            } else {
                (200, "image/png", b"png!".to_vec())
            }
        })
        .await;
        let hs = Homeserver::new(client(), &base, Some("tok"));
        let share = Arc::new(Share::default());
        let out = media(&share).fetch(&hs, job()).await;
        let paths: Vec<String> = seen.lock().unwrap().iter().map(|s| s.1.clone()).collect();
        assert_eq!(
            paths,
            [
                "/_matrix/client/v1/media/download/x/abc",
                "/_matrix/media/v3/download/x/abc"
            ]
        );
        assert!(seen.lock().unwrap()[0]
            .2
            .contains("authorization: bearer tok"));
        assert_eq!(
            share.stored.lock().unwrap()[0],
            (
                "u@l".into(),
                "cat.png".into(),
                "image/png".into(),
                b"png!".to_vec()
            )
        );
        assert_eq!(
            out[0].child_text("body", "jabber:client").unwrap(),
            "https://up.l/upload/upload.l/2/cat.png"
        );
    }

    #[tokio::test]
    async fn a_matrix_file_over_the_limit_or_missing_is_described_saying_why() {
        let (base, _) = homeserver(|_, path| {
            if path.contains("/big") {
                (200, "image/png", vec![0; 2000])
            } else {
                (
                    404,
                    "application/json",
                    br#"{"errcode":"M_NOT_FOUND","error":"gone"}"#.to_vec(),
                )
            }
        })
        .await;
        let hs = Homeserver::new(client(), &base, Some("tok"));
        let share = Arc::new(Share::default());
        let big = MediaJob {
            media_id: "big".into(),
            ..job()
        };
        let out = media(&share).fetch(&hs, big).await;
        let body = out[0].child_text("body", "jabber:client").unwrap();
        assert!(
            body.starts_with("[image: cat.png] (the gateway could not fetch it: it is larger"),
            "{body}"
        );
        let out = media(&share).fetch(&hs, job()).await;
        let body = out[0].child_text("body", "jabber:client").unwrap();
        assert!(
            body.ends_with("(the gateway could not fetch it: M_NOT_FOUND: gone)"),
            "{body}"
        );
        assert!(share.stored.lock().unwrap().is_empty());
    }

    fn send(url: &str) -> Request {
        Request {
            id: RequestId(1),
            method: Method::Put,
            path: "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t1".into(),
            body: Some(json!({"msgtype":"m.text","body":url})),
            timeout: Duration::from_secs(5),
            limit: 1000,
            attach: Some(url.into()),
        }
    }

    #[tokio::test]
    async fn a_linked_file_of_ours_is_uploaded_once_and_sent_as_an_image() {
        let (base, seen) = homeserver(|_, _| {
            (
                200,
                "application/json",
                br#"{"content_uri":"mxc://x/up1"}"#.to_vec(),
            )
        })
        .await;
        let hs = Homeserver::new(client(), &base, Some("tok"));
        let share = Arc::new(Share::default());
        let m = media(&share);
        let req = m.attach(&hs, send(OWN), OWN).await;
        let body = req.body.unwrap();
        assert_eq!(
            (
                body["msgtype"].as_str(),
                body["url"].as_str(),
                body["body"].as_str()
            ),
            (Some("m.image"), Some("mxc://x/up1"), Some("dog.png"))
        );
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].0, "POST");
            assert_eq!(seen[0].1, "/_matrix/media/v3/upload?filename=dog.png");
            assert!(seen[0].2.contains("content-type: image/png"));
            assert_eq!(seen[0].3, b"dog!");
        }
        // The same send again (after a rate limit): no second upload.
        let again = m.attach(&hs, send(OWN), OWN).await;
        assert_eq!(again.body.unwrap()["url"], "mxc://x/up1");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_link_that_cannot_be_uploaded_is_sent_as_its_text() {
        let (base, _) = homeserver(|method, path| match (method, path) {
            ("GET", "/elsewhere/x.pdf") => (200, "application/pdf", b"%PDF".to_vec()),
            _ => (
                413,
                "application/json",
                br#"{"errcode":"M_TOO_LARGE"}"#.to_vec(),
            ),
        })
        .await;
        let hs = Homeserver::new(client(), &base, Some("tok"));
        let share = Arc::new(Share::default());
        let url = format!("{base}/elsewhere/x.pdf");
        let req = media(&share).attach(&hs, send(&url), &url).await;
        assert_eq!(req.body.unwrap(), json!({"msgtype":"m.text","body":url}));
    }

    #[tokio::test]
    async fn a_link_elsewhere_is_not_fetched_unless_the_admin_allows_it() {
        let (base, seen) = homeserver(|_, _| (200, "application/pdf", b"%PDF".to_vec())).await;
        let hs = Homeserver::new(client(), &base, Some("tok"));
        let share = Arc::new(Share::default());
        let files: Arc<dyn FileShare> = share.clone();
        let own_only = Media::new(Some(files), client(), 1000, false);
        let url = format!("{base}/internal/secret.pdf");
        let req = own_only.attach(&hs, send(&url), &url).await;
        assert_eq!(req.body.unwrap(), json!({"msgtype":"m.text","body":url}));
        assert!(
            seen.lock().unwrap().is_empty(),
            "nothing was fetched or uploaded"
        );
    }
}
