//! Server administration: announcements, the message of the day, who is
//! online, kicking a session, the links to other servers, and messages to
//! the server's own JID.
//!
//! The functions at the top of this module are the one seam every admin
//! interface calls: messages to `HOST/announce/…` ([`server_jid`]), the
//! admin socket behind `switchboard announce|users online|kick`
//! ([`socket`]), XEP-0133 ad-hoc commands on each host ([`commands`]), and
//! the web side's admin console (`switchboard-web`). Each checks
//! what it is given and returns an [`AdminError`] the caller turns into a
//! stanza error or a line for the command line; none of them checks *who*
//! asks — that is the interface's job (admin JIDs for XMPP, the socket's
//! file permissions for the command line).
//!
//! * [`commands`]: XEP-0133 service administration as ad-hoc commands on
//!   each local host, run by one task the routing table hands command IQs
//!   to;
//! * [`server_jid`]: `<message to='HOST…'/>` from users and admins;
//! * [`socket`]: the Unix admin socket and its line protocol, server and
//!   client side;
//! * [`service_commands`]: a service's own XEP-0050 admin commands (the
//!   group chat rooms), run for the socket from the server's domain JID;
//! * `users.rs`: adding users, changing their passwords and deleting them
//!   ([`add_user`], [`set_password`], [`delete_user`]), for XEP-0133 and
//!   the web admin console.
//!
//! The models they share with the account actors (announcements, the
//! message of the day, notices to admins) live in `crate::notices`.
//!
//! Nothing here blocks the router: announcements to online users are
//! `try_send`s into session outboxes through the router's delivery path,
//! and message-of-the-day changes, which write to the spool, are queued to
//! one task that applies them in order (see [`start`]).

pub mod commands;
pub mod server_jid;
pub mod service_commands;
pub mod socket;
mod users;

pub use users::{add_user, delete_user, set_password};

use std::sync::{Arc, Weak};

use switchboard_jid::Jid;
use switchboard_spool::store::{AccountStore, HostDataStore, StoreError};
use switchboard_xml::Element;
use tokio::sync::mpsc;

use crate::im::Accounts;
use crate::notices::motd::{self, MotdBoard, MotdState};
pub use crate::notices::{Announcement, EmptyAnnouncement};
use crate::routing::stanza::{Class, IqType, Kind};
use crate::routing::table::{Event, Flow, TableBuilder};
use crate::routing::Router;
use crate::s2s::links::LinkView;
use crate::s2s::Federation;
use crate::sessions::Outbound;
use crate::settings::LiveSettings;
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
    Store(StoreError),
    /// The server is stopping.
    ShuttingDown,
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::UnknownHost(h) => write!(f, "{h} is not a host of this server"),
            AdminError::NoSession(j) => write!(f, "{j} has no session on this server"),
            AdminError::Empty => EmptyAnnouncement.fmt(f),
            AdminError::Store(e) => write!(f, "cannot store the message of the day: {e}"),
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
            AdminError::Store(e) => crate::accounts::store_error(e, "the message of the day"),
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

/// The handles every admin interface works with: the one seam.
pub struct Admin {
    pub router: Router,
    pub accounts: Arc<Accounts>,
    /// Accounts and credentials (XEP-0133 add-user, change-user-password).
    pub account_store: Arc<dyn AccountStore>,
    /// The hosts' own data (the message of the day).
    pub host_data: Arc<dyn HostDataStore>,
    pub settings: Arc<LiveSettings>,
    pub motds: Arc<MotdBoard>,
    /// Federation, for its links.
    pub federation: Arc<Federation>,
    /// Held across a message-of-the-day change's spool write, so two
    /// changes never interleave (the socket and the queue may both make
    /// them).
    changing: tokio::sync::Mutex<()>,
}

impl Admin {
    pub fn new(
        router: Router,
        accounts: Arc<Accounts>,
        account_store: Arc<dyn AccountStore>,
        host_data: Arc<dyn HostDataStore>,
        settings: Arc<LiveSettings>,
        motds: Arc<MotdBoard>,
        federation: Arc<Federation>,
    ) -> Admin {
        Admin {
            router,
            accounts,
            account_store,
            host_data,
            settings,
            motds,
            federation,
            changing: tokio::sync::Mutex::new(()),
        }
    }
}

/// The queues the routing table's admin rows fill; [`start`] runs the
/// tasks that empty them.
pub struct AdminQueues {
    motd: mpsc::Receiver<MotdChange>,
    commands: mpsc::Receiver<Element>,
}

/// Adds the admin rows to the routing table: messages to a host's own JID
/// (announcements, messages for the admins) and XEP-0133 command IQs,
/// which wait for the spool or for account actors and so go to their own
/// task, which replies when done.
pub fn register(t: &mut TableBuilder, settings: Arc<LiveSettings>) -> AdminQueues {
    let (motd_tx, motd) = mpsc::channel(QUEUED_CHANGES);
    let (commands_tx, commands) = mpsc::channel(commands::QUEUED_COMMANDS);
    t.hook(
        Event::at(Kind::Iq, Class::Host),
        10,
        "admin",
        "XEP-0133 command requests go to the admin commands task",
        move |r, s| {
            let is_command = matches!(s.iq_type(), Some(IqType::Get | IqType::Set))
                && commands::is_command_iq(&s.el);
            if !is_command {
                return Flow::Next(s);
            }
            if let Err(e) = commands_tx.try_send(s.el) {
                let (iq, err) = match e {
                    mpsc::error::TrySendError::Full(iq) => (
                        iq,
                        StanzaError::new("resource-constraint", ErrorType::Wait)
                            .with_text("too many admin commands are waiting; try again later"),
                    ),
                    mpsc::error::TrySendError::Closed(iq) => {
                        (iq, StanzaError::service_unavailable())
                    }
                };
                r.bounce(&iq, err);
            }
            Flow::Done
        },
    );
    t.hook(
        Event::at(Kind::Message, Class::Host),
        0,
        "admin",
        "announcements (HOST/announce/…) from admins; other messages to the host go to its admins",
        move |r, s| {
            server_jid::message_to_server(r, &settings.get(), &motd_tx, &s.from, &s.to, s.el);
            Flow::Done
        },
    );
    AdminQueues { motd, commands }
}

/// Reads every host's message of the day from the host data into the
/// board.
/// Called once at start-up; an unreadable host file stops start-up,
/// because treating it as empty would let the next change overwrite it.
pub async fn load_motds(
    host_data: &dyn HostDataStore,
    hosts: &[String],
    board: &MotdBoard,
) -> Result<(), String> {
    for host in hosts {
        let doc = host_data.get(host, motd::MOTD).await.map_err(|e| {
            format!("cannot read the data of {host} (the message of the day): {e}; repair or remove that file")
        })?;
        if let Some(el) = doc {
            let state = MotdState::from_spool(&el).map_err(|e| {
                format!("the message of the day of {host} in the spool is malformed: {e}; repair or remove it")
            })?;
            board.set(host, state);
        }
    }
    Ok(())
}

/// Starts the task that applies message-of-the-day changes sent as
/// messages, and the task that runs the XEP-0133 commands. They hold the
/// admin seam weakly, so they never keep it alive.
pub fn start(admin: &Arc<Admin>, queues: AdminQueues) {
    tokio::spawn(apply_changes(Arc::downgrade(admin), queues.motd));
    tokio::spawn(commands::run(Arc::downgrade(admin), queues.commands));
}

/// Applies queued message-of-the-day changes one after the other, in the
/// order the router queued them.
async fn apply_changes(admin: Weak<Admin>, mut rx: mpsc::Receiver<MotdChange>) {
    while let Some(change) = rx.recv().await {
        let Some(admin) = admin.upgrade() else {
            return;
        };
        let host = change.host.clone();
        let result = match change.op {
            MotdOp::Set(a) => set_motd(&admin, &host, a).await.map(|_| ()),
            MotdOp::Update(a) => update_motd(&admin, &host, a).await.map(|_| ()),
            MotdOp::Delete => delete_motd(&admin, &host).await.map(|_| ()),
        };
        if let Err(e) = result {
            admin.router.bounce(&change.request, e.to_stanza_error());
        }
    }
}

fn check_host(router: &Router, host: &str) -> Result<(), AdminError> {
    if router.is_local(host) {
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
    router: &Router,
    host: &str,
    announcement: &Announcement,
) -> Result<usize, AdminError> {
    check_host(router, host)?;
    let mut n = 0;
    for (full, s) in router.sessions().of_host(host) {
        if s.priority.is_some_and(|p| p >= 0) {
            router.deliver(&s, announcement.message(host, &full.to_string()));
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
    admin: &Admin,
    host: &str,
    announcement: Announcement,
) -> Result<usize, AdminError> {
    change_motd(admin, host, |st, now| {
        st.set(announcement, now);
    })
    .await?;
    tracing::info!(host, "message of the day set");
    Ok(show_motd_to_online(admin, host))
}

/// Changes the text of `host`'s message of the day, keeping its series:
/// users who have seen it are not shown it again; those who have not get
/// the new text (online ones now, the others at their next login). With
/// no message of the day, this sets one. Returns how many online accounts
/// were asked to check.
pub async fn update_motd(
    admin: &Admin,
    host: &str,
    announcement: Announcement,
) -> Result<usize, AdminError> {
    change_motd(admin, host, |st, now| {
        st.update(announcement, now);
    })
    .await?;
    tracing::info!(host, "message of the day updated");
    Ok(show_motd_to_online(admin, host))
}

/// Removes `host`'s message of the day; whether there was one.
pub async fn delete_motd(admin: &Admin, host: &str) -> Result<bool, AdminError> {
    let mut existed = false;
    change_motd(admin, host, |st, _| existed = st.delete()).await?;
    tracing::info!(host, existed, "message of the day deleted");
    Ok(existed)
}

/// Applies `f` to the host's MOTD state, stores the result (fsynced) and
/// only then makes it current, under the change lock.
async fn change_motd(
    admin: &Admin,
    host: &str,
    f: impl FnOnce(&mut MotdState, u64),
) -> Result<(), AdminError> {
    check_host(&admin.router, host)?;
    let _changing = admin.changing.lock().await;
    let mut state = admin.motds.state(host);
    f(&mut state, crate::time::unix_now());
    let r = match state.to_spool() {
        Some(el) => admin.host_data.put(host, el).await,
        None => admin.host_data.remove(host, motd::MOTD).await,
    };
    r.map_err(AdminError::Store)?;
    admin.motds.set(host, state);
    Ok(())
}

/// Asks the actor of every account with a session on `host` to show the
/// current MOTD unless the account has seen it (the actor reads and
/// writes the account's "seen" stamp, in order with its other work).
fn show_motd_to_online(admin: &Admin, host: &str) -> usize {
    let mut accounts: Vec<Jid> = admin
        .router
        .sessions()
        .of_host(host)
        .into_iter()
        .map(|(full, _)| full.to_bare())
        .collect();
    accounts.sort();
    accounts.dedup();
    for bare in &accounts {
        admin
            .accounts
            .send(&admin.router, bare, crate::im::Work::Motd);
    }
    accounts.len()
}

/// Every bound session (full JID) of `host`, sorted; with `None`, of every
/// host.
pub fn online_users(router: &Router, host: Option<&str>) -> Result<Vec<Jid>, AdminError> {
    let hosts = match host {
        Some(h) => {
            check_host(router, h)?;
            vec![h.to_string()]
        }
        None => router.hosts().to_vec(),
    };
    let mut all: Vec<Jid> = hosts
        .iter()
        .flat_map(|h| router.sessions().of_host(h))
        .map(|(full, _)| full)
        .collect();
    all.sort();
    Ok(all)
}

/// The links to and from other servers now, outgoing first; `None` with
/// federation off.
pub fn s2s_links(federation: &Federation) -> Option<Vec<LinkView>> {
    federation.is_on().then(|| federation.registry().views())
}

/// Closes a session (full JID) or every session of an account (bare JID)
/// with the stream error `policy-violation`, "kicked by an administrator".
/// Returns how many sessions were told to close.
pub fn kick(router: &Router, jid: &Jid) -> Result<usize, AdminError> {
    check_host(router, jid.domain())?;
    let sessions = match jid.resource() {
        Some(_) => router.sessions().get(jid).into_iter().collect(),
        None => router.sessions().of_account(jid),
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
            s.shared.kill.notify_one();
        }
    }
    tracing::info!(%jid, sessions = sessions.len(), "kicked by an administrator");
    Ok(sessions.len())
}

#[cfg(test)]
mod tests;
