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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use switchboard_jid::Jid;
use switchboard_service::Outbox;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::http::{Failure, Method, Outcome, Request, RequestId, Response};
use crate::session::{Action, Params, Session, ToMatrix};
use crate::state::SyncStore;

/// How long opening a connection to a homeserver may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

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
        if resp.content_length().is_some_and(|n| n > req.limit as u64) {
            return Err(Failure::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failure)? {
            if body.len() + chunk.len() > req.limit {
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
    out: Outbox,
    done: mpsc::Sender<Done>,
) -> mpsc::Sender<ToMatrix> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let bare = user.to_bare();
        let signed_out = match loading.await {
            Ok((params, hs)) => {
                let mut session = Session::new(params, clock());
                drive(&mut session, &hs, &sync, &bare, rx, &out).await
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
                    let id = req.id;
                    let handle = requests.spawn(async move { hs.perform(&req).await });
                    ids.insert(handle.id(), id);
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
