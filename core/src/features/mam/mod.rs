//! Message archive management (XEP-0313, `urn:xmpp:mam:2` with its
//! `#extended` feature) for every user: the chats each user sends and
//! receives are kept on the server, and any of the user's clients pages
//! through them.
//!
//! - **What is kept** (`archiving.rs`): chat and normal messages with a
//!   body (or a `<store/>` hint, or a retraction), not those with
//!   `<no-store/>` or `<no-permanent-store/>` (XEP-0334), filed under the
//!   other party, as the user's preferences say (`prefs.rs`, XEP-0441).
//!   Incoming messages are kept at the recipient's `message/bare` and
//!   `message/full` rows, outgoing ones at the sender's `pre-message/…`
//!   rows; a message for an account without a session is kept when its
//!   actor stores it offline (an account observer), so it is delivered
//!   once and sits in the archive too.
//! - **Stanza ids** (XEP-0359): a kept message delivered to the user gets
//!   `<stanza-id by='user@host' id='…'/>` with the id the archive has it
//!   under, after any forged one naming the user's archive is removed;
//!   the sender's other devices see the id of their own archive in the
//!   carbon copy, and it is removed before the message goes on.
//! - **Writing** (`writer.rs`): hooks only queue; one writer task per host
//!   stores in batches, and the sender's ticket goes when its message is
//!   durable.
//! - **Queries** (`query.rs`, `handlers.rs`): async IQ handlers for the
//!   form, queries with RSM paging, preferences and archive metadata.
//! - **Retractions** (`retract.rs`, XEP-0424) leave a tombstone; old
//!   messages go after the host's retention (`retention.rs`).
//!
//! The preferences of accounts with a session are cached (an
//! `OnlineCache`), loaded before the session can receive anything, with
//! the roster's JIDs when the `roster` default needs them (kept current by
//! an account observer). A stanza the router re-routes
//! (`Origin::Redelivery`) was kept already and is not kept twice.

mod archiving;
mod handlers;
pub mod prefs;
pub mod query;
pub mod retention;
pub mod retract;
pub mod writer;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use switchboard_config::ArchiveDefault;
use switchboard_jid::Jid;
use switchboard_spool::store::{
    AccountDataStore, AccountRef, ArchiveStore, RosterStore, StoredRoster,
};

use super::online::OnlineCache;
use crate::routing::iq::{IqKey, IqType, Scope};
use crate::routing::stanza::{Class, Kind};
use crate::routing::table::Event;
use crate::settings::LiveSettings;
use prefs::Prefs;
use writer::Writers;

/// `urn:xmpp:mam:2`.
pub const NS: &str = "urn:xmpp:mam:2";
/// `urn:xmpp:mam:2#extended`: `before-id`, `after-id`, `ids`, flipped
/// pages, metadata.
pub const NS_EXTENDED: &str = "urn:xmpp:mam:2#extended";
/// Tombstones for retracted messages (XEP-0424).
pub const NS_TOMBSTONE: &str = "urn:xmpp:message-retract:1#tombstone";
const MODULE: &str = "mam";
/// Below blocking (a refused message is not kept), above carbons (copies
/// carry the stanza-id) and delivery.
const PRIORITY: i32 = 30;

/// The JIDs in a user's roster, at a roster version.
#[derive(Debug, Default)]
pub struct RosterSet {
    ver: u64,
    jids: HashSet<Jid>,
}

impl RosterSet {
    fn of(stored: &StoredRoster) -> RosterSet {
        RosterSet {
            ver: stored.ver,
            jids: stored
                .items
                .iter()
                .filter_map(|i| Jid::parse(&i.jid).ok())
                .collect(),
        }
    }
}

/// An online account's archive settings.
pub struct ArchiveState {
    prefs: RwLock<Arc<Prefs>>,
    /// The roster's JIDs, while the `roster` default needs them.
    roster: RwLock<Option<Arc<RosterSet>>>,
}

impl ArchiveState {
    fn prefs(&self) -> Arc<Prefs> {
        self.prefs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_prefs(&self, prefs: Prefs) {
        *self.prefs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(prefs);
    }

    /// Keeps a roster unless a newer one is kept already.
    fn set_roster(&self, roster: Option<RosterSet>) {
        let mut kept = self.roster.write().unwrap_or_else(|e| e.into_inner());
        match (roster, kept.as_ref()) {
            (Some(new), Some(old)) if new.ver < old.ver => {}
            (new, _) => *kept = new.map(Arc::new),
        }
    }

    /// Whether a message with `with` is archived.
    fn archives(&self, with: &Jid) -> bool {
        let prefs = self.prefs();
        prefs.archives(with, |bare| {
            self.roster
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|r| r.jids.contains(bare))
        })
    }
}

struct Module {
    cache: OnlineCache<ArchiveState>,
    writers: Writers,
    store: Arc<dyn ArchiveStore>,
    data: Arc<dyn AccountDataStore>,
    rosters: Arc<dyn RosterStore>,
    settings: Arc<LiveSettings>,
    /// Preference changes, one at a time (two resources setting them at
    /// once must leave the store and the cache alike).
    prefs_change: tokio::sync::Mutex<()>,
}

fn account_ref(bare: &Jid) -> Option<AccountRef> {
    Some(AccountRef::new(bare.domain(), bare.node()?))
}

impl Module {
    /// The `<archive default>` of a host.
    fn host_default(&self, host: &str) -> ArchiveDefault {
        self.settings
            .get()
            .hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.archive.default)
            .unwrap_or(ArchiveDefault::Always)
    }

    /// The user's preferences as stored, or the host's default.
    async fn load_prefs(&self, bare: &Jid) -> Prefs {
        let fallback = || Prefs::with_default(self.host_default(bare.domain()));
        let Some(account) = account_ref(bare) else {
            return fallback();
        };
        match self.data.get(&account, prefs::DOC).await {
            Ok(Some(doc)) => Prefs::from_doc(&doc).unwrap_or_else(|| {
                tracing::warn!(%account, "stored archive preferences do not read; the host's default applies");
                fallback()
            }),
            Ok(None) => fallback(),
            Err(e) => {
                tracing::error!(%account, "cannot read archive preferences: {e}");
                fallback()
            }
        }
    }

    async fn load_roster(&self, bare: &Jid) -> Option<RosterSet> {
        let account = account_ref(bare)?;
        match self.rosters.load(&account).await {
            Ok(Some(r)) => Some(RosterSet::of(&r)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(%account, "cannot read the roster for archive preferences: {e}");
                None
            }
        }
    }

    async fn load_state(&self, bare: &Jid) -> ArchiveState {
        let prefs = self.load_prefs(bare).await;
        let roster = if prefs.default == ArchiveDefault::Roster {
            self.load_roster(bare).await
        } else {
            None
        };
        ArchiveState {
            prefs: RwLock::new(Arc::new(prefs)),
            roster: RwLock::new(roster.map(Arc::new)),
        }
    }
}

pub fn register(setup: &mut super::Setup<'_>) {
    let store = setup.stores.archive.clone();
    let hosts = setup.settings.get().host_names();
    let (writers, tasks) = Writers::new(&hosts, &store);
    for t in tasks {
        setup.spawn(t);
    }
    setup.spawn(retention::run(store.clone(), setup.settings.clone()));
    let m = Arc::new(Module {
        cache: OnlineCache::default(),
        writers,
        store,
        data: setup.stores.account_data.clone(),
        rosters: setup.stores.rosters.clone(),
        settings: setup.settings.clone(),
        prefs_change: tokio::sync::Mutex::new(()),
    });
    for f in [NS, NS_EXTENDED, super::stanza_id::NS, NS_TOMBSTONE] {
        setup.iq.feature(Scope::Account, f);
    }
    setup.accounts.observers().add(m.clone());

    let t = &mut *setup.table;
    let outgoing = [
        Event::pre(Kind::Message, Class::Bare),
        Event::pre(Kind::Message, Class::Full),
        Event::pre(Kind::Message, Class::Service),
        Event::pre(Kind::Message, Class::Remote),
    ];
    let me = m.clone();
    t.hook_each(
        &outgoing,
        PRIORITY,
        MODULE,
        "a message the user sends is kept in their archive as their preferences say, with its <stanza-id/> for the carbon copies",
        move |_, s| archiving::outgoing(&me, s),
    );
    t.hook_each(
        &outgoing,
        -100,
        MODULE,
        "the sender's own <stanza-id/> is removed before the message leaves",
        |_, s| archiving::strip_outgoing(s),
    );
    let me = m.clone();
    t.hook_each(
        &[
            Event::at(Kind::Message, Class::Bare),
            Event::at(Kind::Message, Class::Full),
        ],
        PRIORITY,
        MODULE,
        "forged <stanza-id/>s naming the addressee's archive are removed; a message kept in the archive gets its <stanza-id/>; a result whose session ended is dropped",
        move |_, s| archiving::incoming(&me, s),
    );
    let me = m.clone();
    t.on_session_start(MODULE, move |_, session| {
        let me = me.clone();
        let bare = session.jid.to_bare();
        Box::pin(async move {
            let loader = me.clone();
            let account = bare.clone();
            me.cache
                .enter(&bare, || async move { loader.load_state(&account).await })
                .await;
        })
    });
    let me = m.clone();
    t.on_session_end(MODULE, move |_, end| {
        let bare = end.jid.to_bare();
        if me.cache.leave(&bare) {
            me.cache.evict(&bare);
        }
    });

    let key = |name, kind| IqKey { name, ns: NS, kind };
    let me = m.clone();
    setup
        .iq
        .handle_async(key("query", IqType::Get), Scope::Account, move |call| {
            let me = me.clone();
            Box::pin(async move { handlers::form(&me, call).await })
        });
    let me = m.clone();
    setup
        .iq
        .handle_async(key("query", IqType::Set), Scope::Account, move |call| {
            let me = me.clone();
            Box::pin(async move { handlers::query(&me, call).await })
        });
    let me = m.clone();
    setup
        .iq
        .handle_async(key("prefs", IqType::Get), Scope::Account, move |call| {
            let me = me.clone();
            Box::pin(async move { handlers::prefs_get(&me, call).await })
        });
    let me = m.clone();
    setup
        .iq
        .handle_async(key("prefs", IqType::Set), Scope::Account, move |call| {
            let me = me.clone();
            Box::pin(async move { handlers::prefs_set(&me, call).await })
        });
    let me = m;
    setup
        .iq
        .handle_async(key("metadata", IqType::Get), Scope::Account, move |call| {
            let me = me.clone();
            Box::pin(async move { handlers::metadata(&me, call).await })
        });
}
