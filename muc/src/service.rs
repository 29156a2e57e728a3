//! The [`Service`] implementation: the driver around [`Muc`]. It loads
//! the persistent rooms and the occupant-id secret from the service's
//! `ServiceStore`, feeds every stanza from the inbox to the room logic,
//! stores what changed before sending the answers, and hands archive
//! work to a task of its own so that a slow archive never holds up the
//! rooms (answers to queries come back through a channel; appends that
//! waited together are stored with one flush). After each
//! stanza it copies the room logic's counts into the metrics the host
//! gave it (`stats.rs`).
//!
//! The stores are given to the constructor by the composition root, so
//! the same service runs in-process or as `switchboard component`, over
//! whatever backend the server uses.

use std::sync::Arc;
use std::time::Duration;

use switchboard_service::{BoxFuture, Identity, Outbox, Service, ServiceContext};
use switchboard_spool::store::{ArchiveStore, ServiceStore, StoreError};
use switchboard_xml::Element;
use tokio::sync::mpsc;

use crate::muc::Muc;
use crate::output::{Answer, ArchiveOp, Out, Persist, Ticket};
use crate::record;
use crate::room::Room;
use crate::settings::Settings;
use crate::stats::Published;
use crate::time::now_micros;

/// How often old archive entries are deleted.
const EXPIRY_EVERY: Duration = Duration::from_secs(3600);

/// Archive operations that may wait for the archive task.
const ARCHIVE_QUEUE: usize = 4096;

/// The group chat service kind (`type="muc"`).
#[derive(Clone)]
pub struct MucService {
    id: String,
    settings: Settings,
    rooms: ServiceStore,
    archive: Arc<dyn ArchiveStore>,
}

impl std::fmt::Debug for MucService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MucService")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MucService {
    /// The service `id` with the settings of its `<service>` element,
    /// storing rooms in `rooms` and messages in `archive`.
    pub fn from_config(
        id: &str,
        el: &Element,
        rooms: ServiceStore,
        archive: Arc<dyn ArchiveStore>,
    ) -> Result<MucService, String> {
        Ok(MucService {
            id: id.to_string(),
            settings: Settings::from_config(id, el)?,
            rooms,
            archive,
        })
    }
}

impl Service for MucService {
    fn identity(&self) -> Identity {
        Identity {
            category: "conference".into(),
            kind: "text".into(),
            name: "Group chat".into(),
        }
    }

    fn run(&self, ctx: ServiceContext, inbox: mpsc::Receiver<Element>) -> BoxFuture {
        let me = self.clone();
        Box::pin(async move {
            match me.start(&ctx).await {
                Ok(muc) => me.serve(ctx, inbox, muc).await,
                Err(e) => tracing::error!(service = %ctx.jid, "group chat cannot start: {e}"),
            }
        })
    }
}

impl MucService {
    /// Reads the secret and the rooms.
    async fn start(&self, ctx: &ServiceContext) -> Result<Muc, StoreError> {
        let secret = match self.rooms.get(record::SERVICE, record::SECRET_KEY).await? {
            Some(s) if s.len() >= 16 => s,
            _ => {
                let mut s = vec![0u8; 32];
                getrandom::fill(&mut s)
                    .map_err(|e| StoreError::Unavailable(format!("no randomness: {e}")))?;
                self.rooms
                    .put(record::SERVICE, record::SECRET_KEY, s.clone())
                    .await?;
                s
            }
        };
        let rooms = load_rooms(&self.rooms, &ctx.jid, &self.settings).await?;
        let admins: Vec<String> = ctx.admins.iter().map(|a| a.to_bare().to_string()).collect();
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let mut muc = Muc::new(
            &ctx.jid,
            self.settings.clone(),
            &admins,
            secret,
            u64::from_le_bytes(seed),
        );
        tracing::info!(service = %ctx.jid, rooms = rooms.len(), "group chat up");
        muc.restore(rooms);
        Ok(muc)
    }

    async fn serve(&self, ctx: ServiceContext, mut inbox: mpsc::Receiver<Element>, mut muc: Muc) {
        let (work_tx, work_rx) = mpsc::channel(ARCHIVE_QUEUE);
        let (answer_tx, mut answers) = mpsc::channel::<(Ticket, Answer)>(64);
        let worker = tokio::spawn(archive_worker(self.archive.clone(), work_rx, answer_tx));
        let mut expiry = tokio::time::interval(EXPIRY_EVERY);
        let mut published = Published::register(&ctx.metrics);
        published.publish(muc.rooms.len(), muc.stats);
        loop {
            let out = tokio::select! {
                s = inbox.recv() => match s {
                    Some(stanza) => muc.handle(&stanza, now_micros()),
                    None => break,
                },
                Some((ticket, answer)) = answers.recv() => muc.answer(ticket, answer, now_micros()),
                _ = expiry.tick() => {
                    if let Some(keep) = self.settings.archive_retention {
                        let before = now_micros().saturating_sub(keep.as_micros() as u64);
                        let domain = ctx.jid.clone();
                        let _ = work_tx.send(ArchiveOp::Expire { domain, before }).await;
                    }
                    continue;
                }
            };
            published.publish(muc.rooms.len(), muc.stats);
            if execute(out, &self.rooms, &work_tx, &ctx.out).await.is_err() {
                break;
            }
        }
        // The server is going away: tell everyone (332), best effort.
        let _ = execute(muc.shutdown(), &self.rooms, &work_tx, &ctx.out).await;
        drop(work_tx);
        let _ = worker.await;
    }
}

/// Reads every stored room; one that does not parse is logged and left
/// out (its record stays for an admin to look at).
pub async fn load_rooms(
    store: &ServiceStore,
    host: &str,
    settings: &Settings,
) -> Result<Vec<Room>, StoreError> {
    let mut rooms = Vec::new();
    for key in store.keys(record::ROOMS).await? {
        match store.get(record::ROOMS, &key).await {
            Ok(Some(bytes)) => match record::decode(&key, host, &bytes, &settings.bounds) {
                Ok(r) => rooms.push(r),
                Err(e) => {
                    tracing::error!(service = %host, room = %key, "skipping a damaged room record: {e}")
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::error!(service = %host, room = %key, "cannot read a room record: {e}")
            }
        }
    }
    Ok(rooms)
}

/// Carries out one output: records first (a client hears of a change
/// once it is stored), then archive work, then the stanzas.
pub async fn execute(
    out: Out,
    store: &ServiceStore,
    archive: &mpsc::Sender<ArchiveOp>,
    outbox: &Outbox,
) -> Result<(), switchboard_service::Closed> {
    for p in out.persist {
        let (room, r) = match p {
            Persist::Save { room, record } => {
                let r = store.put(record::ROOMS, &room, record).await;
                (room, r)
            }
            Persist::Remove { room } => {
                let r = store.remove(record::ROOMS, &room).await.map(|_| ());
                (room, r)
            }
        };
        if let Err(e) = r {
            // The room lives on in memory; the admins see why it may not
            // survive a restart.
            tracing::error!(service = %store.service(), room = %room, "cannot store a room: {e}");
        }
    }
    for op in out.archive {
        if archive.send(op).await.is_err() {
            tracing::error!(service = %store.service(), "the archive task is gone");
        }
    }
    for s in out.stanzas {
        outbox.send(s).await?;
    }
    Ok(())
}

/// Appends taken together at most: one write and one flush to disk.
const ARCHIVE_BATCH: usize = 256;

/// The archive task: operations in order, so a query sees every message
/// archived before it. Appends to one room that waited together are
/// stored together (group commit): a busy room's archive costs one
/// flush per batch, not one per message.
async fn archive_worker(
    store: Arc<dyn ArchiveStore>,
    mut work: mpsc::Receiver<ArchiveOp>,
    answers: mpsc::Sender<(Ticket, Answer)>,
) {
    let mut next = None;
    loop {
        let op = match next.take() {
            Some(op) => op,
            None => match work.recv().await {
                Some(op) => op,
                None => return,
            },
        };
        let op = match op {
            ArchiveOp::Append { owner, entry } => {
                let mut batch = vec![entry];
                while batch.len() < ARCHIVE_BATCH {
                    match work.try_recv() {
                        Ok(ArchiveOp::Append { owner: o, entry }) if o == owner => {
                            batch.push(entry)
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = store.append_batch(&owner, &batch).await {
                    tracing::error!(room = %owner, messages = batch.len(), "cannot archive messages: {e}");
                }
                continue;
            }
            op => op,
        };
        if let Some(a) = run_archive_op(store.as_ref(), op).await {
            if answers.send(a).await.is_err() {
                return;
            }
        }
    }
}

/// Carries out one archive operation; queries return their answer.
pub async fn run_archive_op(store: &dyn ArchiveStore, op: ArchiveOp) -> Option<(Ticket, Answer)> {
    match op {
        ArchiveOp::Append { owner, entry } => {
            if let Err(e) = store.append(&owner, &entry).await {
                tracing::error!(room = %owner, "cannot archive a message: {e}");
            }
            None
        }
        ArchiveOp::Replace { owner, id, stanza } => {
            if let Err(e) = store.replace(&owner, &id, &stanza).await {
                tracing::error!(room = %owner, "cannot replace an archived message: {e}");
            }
            None
        }
        ArchiveOp::RemoveOwner { owner } => {
            if let Err(e) = store.remove_owner(&owner).await {
                tracing::error!(room = %owner, "cannot remove a room's archive: {e}");
            }
            None
        }
        ArchiveOp::Expire { domain, before } => {
            match store.expire(&domain, before).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "expired old room archive entries"),
                Ok(_) => {}
                Err(e) => tracing::error!("cannot expire room archives: {e}"),
            }
            None
        }
        ArchiveOp::Query {
            owner,
            query,
            ticket,
        } => Some((ticket, store.query(&owner, &query).await)),
    }
}
