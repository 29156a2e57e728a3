//! Server administration: announcements, the message of the day, who is
//! online, kicking a session, and messages to the server's own JID.
//!
//! The functions at the top of this module are the one seam every admin
//! interface calls: messages to `HOST/announce/…` ([`server_jid`]), the
//! admin socket behind `switchboard announce|users online|kick`
//! ([`socket`]), and XEP-0133 ad-hoc commands on each host ([`commands`]). Each checks
//! what it is given and returns an [`AdminError`] the caller turns into a
//! stanza error or a line for the command line; none of them checks *who*
//! asks — that is the interface's job (admin JIDs for XMPP, the socket's
//! file permissions for the command line).
//!
//! * [`announcement`]: what an announcement carries, and its message;
//! * [`commands`]: XEP-0133 service administration as ad-hoc commands on
//!   each local host, run by one task the router hands command IQs to;
//! * [`motd`]: the message-of-the-day model and its spool forms (pure);
//! * [`server_jid`]: `<message to='HOST…'/>` from users and admins, and the
//!   notices admins get (new registrations);
//! * [`notify`]: sending admins a notice (registrations, service failures);
//! * [`socket`]: the Unix admin socket and its line protocol, server and
//!   client side.
//!
//! Nothing here blocks the router: announcements to online users are
//! `try_send`s into session outboxes through the router's delivery path,
//! and message-of-the-day changes, which write to the spool, are queued to
//! one task that applies them in order (see [`start`]).

pub mod announcement;
pub mod commands;
pub mod motd;
pub mod notify;
pub mod server_jid;
pub mod socket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use switchboard_jid::Jid;
use switchboard_spool::SpoolError;
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

pub use announcement::{Announcement, EmptyAnnouncement};
use motd::{Motd, MotdState};

use crate::server::Shared;
use crate::sessions::Outbound;
use crate::stanza::{ErrorType, StanzaError};
use crate::stream::StreamError;

/// How many message-of-the-day changes sent as messages may wait for the
/// task that applies them. Past that, admins are told to wait.
const QUEUED_CHANGES: usize = 64;

/// The stream error text a kicked session gets.
pub const KICK_TEXT: &str = "kicked by an administrator";

/// Why an admin operation did not happen.
#[derive(Debug)]
pub enum AdminError {
    /// Not a host this server serves.
    UnknownHost(String),
    /// Nobody to kick.
    NoSession(Jid),
    /// An announcement without text.
    Empty,
    /// The message of the day could not be stored.
    Spool(SpoolError),
    /// The server is stopping.
    ShuttingDown,
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::UnknownHost(h) => write!(f, "{h} is not a host of this server"),
            AdminError::NoSession(j) => write!(f, "{j} has no session on this server"),
            AdminError::Empty => EmptyAnnouncement.fmt(f),
            AdminError::Spool(e) => write!(f, "cannot store the message of the day: {e}"),
            AdminError::ShuttingDown => f.write_str("the server is shutting down"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<EmptyAnnouncement> for AdminError {
    fn from(_: EmptyAnnouncement) -> Self {
        AdminError::Empty
    }
}

impl AdminError {
    /// What an admin's client is told.
    pub fn to_stanza_error(&self) -> StanzaError {
        match self {
            AdminError::UnknownHost(_) | AdminError::NoSession(_) => {
                StanzaError::new("item-not-found", ErrorType::Cancel).with_text(self.to_string())
            }
            AdminError::Empty => StanzaError::bad_request().with_text(self.to_string()),
            AdminError::Spool(e) => {
                tracing::error!("message of the day: {e}");
                StanzaError::internal_server_error()
            }
            AdminError::ShuttingDown => StanzaError::service_unavailable(),
        }
    }
}

/// A message-of-the-day change asked for by a message to
/// `HOST/announce/motd…`, waiting for the task that applies changes.
#[derive(Debug)]
pub(crate) struct MotdChange {
    pub host: String,
    pub op: MotdOp,
    /// The admin's message, for an error reply.
    pub request: Element,
}

#[derive(Debug)]
pub(crate) enum MotdOp {
    Set(Announcement),
    Update(Announcement),
    Delete,
}

/// The admin state every connection shares (a field of [`Shared`]).
pub struct AdminState {
    /// Each host's MOTD, read at start and kept in step with the spool.
    motds: RwLock<HashMap<String, MotdState>>,
    /// Held across a change's spool write, so two changes never interleave
    /// (the socket and the queue may both make them).
    changing: tokio::sync::Mutex<()>,
    queue: mpsc::Sender<MotdChange>,
    /// Taken by [`start`], which runs the task that empties the queue.
    queue_rx: Mutex<Option<mpsc::Receiver<MotdChange>>>,
    /// The inbox of the XEP-0133 commands task ([`commands::run`]).
    commands: mpsc::Sender<Element>,
    /// Taken by [`start`], which runs that task.
    commands_rx: Mutex<Option<mpsc::Receiver<Element>>>,
}

impl Default for AdminState {
    fn default() -> Self {
        let (queue, rx) = mpsc::channel(QUEUED_CHANGES);
        let (commands, commands_rx) = mpsc::channel(commands::QUEUED_COMMANDS);
        AdminState {
            motds: RwLock::default(),
            changing: tokio::sync::Mutex::new(()),
            queue,
            queue_rx: Mutex::new(Some(rx)),
            commands,
            commands_rx: Mutex::new(Some(commands_rx)),
        }
    }
}

impl AdminState {
    /// A host's current message of the day.
    pub fn current_motd(&self, host: &str) -> Option<Motd> {
        self.motds
            .read()
            .expect("motd lock")
            .get(host)
            .and_then(|s| s.current.clone())
    }

    fn motd_state(&self, host: &str) -> MotdState {
        self.motds
            .read()
            .expect("motd lock")
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// Hands an ad-hoc command IQ to the commands task without waiting;
    /// gives it back with the error for its sender if the task is too far
    /// behind or gone.
    pub(crate) fn queue_command(&self, iq: Element) -> Result<(), Box<(Element, StanzaError)>> {
        self.commands.try_send(iq).map_err(|e| {
            Box::new(match e {
                mpsc::error::TrySendError::Full(iq) => (
                    iq,
                    StanzaError::new("resource-constraint", ErrorType::Wait)
                        .with_text("too many admin commands are waiting; try again later"),
                ),
                mpsc::error::TrySendError::Closed(iq) => (iq, StanzaError::service_unavailable()),
            })
        })
    }

    /// Queues a change without waiting; gives it back if the queue is full
    /// or its task is gone.
    pub(crate) fn queue(&self, change: MotdChange) -> Result<(), Box<MotdChange>> {
        self.queue.try_send(change).map_err(|e| match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => {
                Box::new(c)
            }
        })
    }
}

/// Reads every host's message of the day from the spool and starts the
/// task that applies changes sent as messages, and the task that runs
/// the XEP-0133 commands. Called once by
/// `Server::start`; an unreadable host file stops start-up, because
/// treating it as empty would let the next change overwrite it.
pub async fn start(shared: &Arc<Shared>, hosts: &[String]) -> Result<(), String> {
    let store = shared.storage.clone();
    let hosts = hosts.to_vec();
    let loaded = tokio::task::spawn_blocking(move || {
        let mut out = HashMap::new();
        for host in hosts {
            let data = store.load_host(&host).map_err(|e| {
                format!("cannot read the data of {host} (the message of the day): {e}; repair or remove that file")
            })?;
            if let Some(el) = data.iter().find(|e| e.is(motd::MOTD, ns::SPOOL)) {
                let state = MotdState::from_spool(el).map_err(|e| {
                    format!("the message of the day of {host} in the spool is malformed: {e}; repair or remove it")
                })?;
                out.insert(host, state);
            }
        }
        Ok::<_, String>(out)
    })
    .await
    .map_err(|e| format!("reading the messages of the day failed: {e}"))??;
    *shared.admin.motds.write().expect("motd lock") = loaded;
    let rx = shared.admin.queue_rx.lock().expect("queue lock").take();
    if let Some(rx) = rx {
        tokio::spawn(apply_changes(Arc::downgrade(shared), rx));
    }
    let rx = shared.admin.commands_rx.lock().expect("queue lock").take();
    if let Some(rx) = rx {
        tokio::spawn(commands::run(Arc::downgrade(shared), rx));
    }
    Ok(())
}

/// Applies queued message-of-the-day changes one after the other, in the
/// order the router queued them. Holds the server state weakly, so it
/// never keeps it alive.
async fn apply_changes(shared: Weak<Shared>, mut rx: mpsc::Receiver<MotdChange>) {
    while let Some(change) = rx.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let host = change.host.clone();
        let result = match change.op {
            MotdOp::Set(a) => set_motd(&shared, &host, a).await.map(|_| ()),
            MotdOp::Update(a) => update_motd(&shared, &host, a).await.map(|_| ()),
            MotdOp::Delete => delete_motd(&shared, &host).await.map(|_| ()),
        };
        if let Err(e) = result {
            shared.router.bounce(&change.request, e.to_stanza_error());
        }
    }
}

fn check_host(shared: &Shared, host: &str) -> Result<(), AdminError> {
    if shared.router.is_local(host) {
        Ok(())
    } else {
        Err(AdminError::UnknownHost(host.to_string()))
    }
}

/// Sends an announcement to every available resource with non-negative
/// priority on `host`, now; nothing is stored for anyone offline. Returns
/// how many sessions it was handed to.
///
/// Every such resource gets it, as ejabberd's `announce/online` does (and
/// as a headline to a bare JID would be, RFC 6121 §8.5.2.1.1): an operator's
/// notice should be seen on whichever device the user looks at. Sessions
/// that have sent no presence yet, or a negative priority, asked not to get
/// messages meant for the user at large, so they do not.
pub fn announce_online(
    shared: &Shared,
    host: &str,
    announcement: &Announcement,
) -> Result<usize, AdminError> {
    check_host(shared, host)?;
    let mut n = 0;
    for (full, s) in shared.router.sessions.of_host(host) {
        if s.priority.is_some_and(|p| p >= 0) {
            shared
                .router
                .deliver(&s, announcement.message(host, &full.to_string()));
            n += 1;
        }
    }
    tracing::info!(host, sessions = n, "announcement sent to online users");
    Ok(n)
}

/// Sets a new message of the day on `host` (a new series: everyone sees
/// it once). Stored durably first; then every account online on the host
/// is asked to show it to its available resources. Returns how many
/// accounts were asked.
pub async fn set_motd(
    shared: &Arc<Shared>,
    host: &str,
    announcement: Announcement,
) -> Result<usize, AdminError> {
    change_motd(shared, host, |st, now| {
        st.set(announcement, now);
    })
    .await?;
    tracing::info!(host, "message of the day set");
    Ok(show_motd_to_online(shared, host))
}

/// Changes the text of `host`'s message of the day, keeping its series:
/// users who have seen it are not shown it again; those who have not get
/// the new text (online ones now, the others at their next login). With
/// no message of the day, this sets one. Returns how many online accounts
/// were asked to check.
pub async fn update_motd(
    shared: &Arc<Shared>,
    host: &str,
    announcement: Announcement,
) -> Result<usize, AdminError> {
    change_motd(shared, host, |st, now| {
        st.update(announcement, now);
    })
    .await?;
    tracing::info!(host, "message of the day updated");
    Ok(show_motd_to_online(shared, host))
}

/// Removes `host`'s message of the day; whether there was one.
pub async fn delete_motd(shared: &Arc<Shared>, host: &str) -> Result<bool, AdminError> {
    let mut existed = false;
    change_motd(shared, host, |st, _| existed = st.delete()).await?;
    tracing::info!(host, existed, "message of the day deleted");
    Ok(existed)
}

/// Applies `f` to the host's MOTD state, stores the result (fsynced) and
/// only then makes it current, under the change lock.
async fn change_motd(
    shared: &Arc<Shared>,
    host: &str,
    f: impl FnOnce(&mut MotdState, u64),
) -> Result<(), AdminError> {
    check_host(shared, host)?;
    let _changing = shared.admin.changing.lock().await;
    let mut state = shared.admin.motd_state(host);
    f(&mut state, crate::time::unix_now());
    let el = state.to_spool();
    let store = shared.storage.clone();
    let h = host.to_string();
    tokio::task::spawn_blocking(move || {
        store.update_host(&h, &mut |data| {
            data.retain(|e| !e.is(motd::MOTD, ns::SPOOL));
            data.extend(el.clone());
        })
    })
    .await
    .map_err(|_| AdminError::ShuttingDown)?
    .map_err(AdminError::Spool)?;
    shared
        .admin
        .motds
        .write()
        .expect("motd lock")
        .insert(host.to_string(), state);
    Ok(())
}

/// Asks the actor of every account with a session on `host` to show the
/// current MOTD unless the account has seen it (the actor reads and
/// writes the account's "seen" stamp, in order with its other work).
fn show_motd_to_online(shared: &Arc<Shared>, host: &str) -> usize {
    let mut accounts: Vec<Jid> = shared
        .router
        .sessions
        .of_host(host)
        .into_iter()
        .map(|(full, _)| full.to_bare())
        .collect();
    accounts.sort();
    accounts.dedup();
    for bare in &accounts {
        shared
            .router
            .accounts
            .send(shared, bare, crate::im::Work::Motd);
    }
    accounts.len()
}

/// Every bound session (full JID) of `host`, sorted; with `None`, of every
/// host.
pub fn online_users(shared: &Shared, host: Option<&str>) -> Result<Vec<Jid>, AdminError> {
    let hosts = match host {
        Some(h) => {
            check_host(shared, h)?;
            vec![h.to_string()]
        }
        None => shared.c2s_settings().hosts,
    };
    let mut all: Vec<Jid> = hosts
        .iter()
        .flat_map(|h| shared.router.sessions.of_host(h))
        .map(|(full, _)| full)
        .collect();
    all.sort();
    Ok(all)
}

/// Closes a session (full JID) or every session of an account (bare JID)
/// with the stream error `policy-violation`, "kicked by an administrator".
/// Returns how many sessions were told to close.
pub fn kick(shared: &Shared, jid: &Jid) -> Result<usize, AdminError> {
    check_host(shared, jid.domain())?;
    let sessions = match jid.resource() {
        Some(_) => shared.router.sessions.get(jid).into_iter().collect(),
        None => shared.router.sessions.of_account(jid),
    };
    if sessions.is_empty() {
        return Err(AdminError::NoSession(jid.clone()));
    }
    let err = StreamError::with_text("policy-violation", KICK_TEXT);
    for s in &sessions {
        // A full outbox cannot take the close request; the kill switch
        // closes such a session anyway (with its own text).
        if s.tx
            .try_send(Outbound::Close(Box::new(err.clone())))
            .is_err()
        {
            s.kill.notify_one();
        }
    }
    tracing::info!(%jid, sessions = sessions.len(), "kicked by an administrator");
    Ok(sessions.len())
}

#[cfg(test)]
mod tests;
