//! The storage interface: one async store per kind of data, behind which a
//! file spool, an in-memory map (tests) or a database can sit.
//!
//! The core and the services never see files, paths or rows. Each part of
//! the server receives only the stores it uses (the roster code gets a
//! [`RosterStore`], a transport gets its [`ServiceStore`]), so a backend is
//! chosen once, at start-up, in the composition root.
//!
//! | kind | trait | what it holds |
//! | --- | --- | --- |
//! | accounts | [`AccountStore`] | which accounts exist and their SCRAM credentials (never a password) |
//! | rosters | [`RosterStore`] | an account's roster items and pending subscription requests |
//! | offline | [`OfflineStore`] | an append-only log of messages that waited for an account |
//! | archive | [`ArchiveStore`] | message archives (XEP-0313) of accounts and rooms |
//! | account data | [`AccountDataStore`] | small documents per account: vCard, private XML, last activity, … |
//! | host data | [`HostDataStore`] | small documents per local host: the message of the day, … |
//! | service data | [`ServiceDataStore`] | a service's own records (registrations, rooms), by collection and key |
//! | blobs | [`BlobStore`] | large files a service keeps (uploads), written and read as streams |
//!
//! # Rules every backend keeps
//!
//! - **Durable on return.** When a write's future resolves `Ok`, the data
//!   survives a crash (the file spool fsyncs; a database commits). The
//!   core answers a client only after that.
//! - **Old or new, never torn.** A crash at any instant leaves each record
//!   as it was before a write or as it is after it.
//! - **Refuse, never guess.** A stored record that does not parse is
//!   [`StoreError::Corrupt`]: reported, never treated as empty and never
//!   overwritten by a write that did not read it.
//! - **Names arrive normalized** (RFC 7622) but are not assumed to be safe
//!   file names, table names or anything else: backends encode them.
//! - **One writer per account at a time is the caller's job** (the core's
//!   per-account actor), but backends stay correct under concurrent calls
//!   for distinct accounts and against other processes sharing the store
//!   (`switchboard user passwd` beside a running server).
//!
//! - **Refuse what cannot be stored, the same way everywhere.** A document
//!   or stanza holding characters XML cannot carry, a reserved key, an empty
//!   name where one is required: [`StoreError::Invalid`], before anything is
//!   written, in every backend (see [`rules`]).
//!
//! The traits are object-safe and return boxed futures, so a backend is an
//! `Arc<dyn …>` picked at run time.
//!
//! # Backends
//!
//! - [`mod@file`]: the embedded default, over the spool directory that
//!   releases before this interface wrote (and that they can still read:
//!   every new file lives beside the old ones); see its module
//!   documentation for the layout and the log formats.
//! - [`memory`]: everything in one process's memory, for tests.
//! - PostgreSQL, in its own crate (`switchboard-store-postgres`), so that
//!   a build without it compiles no database client.
//! - [`copy`]: what a backend holds, listed by its [`copy::Inventory`],
//!   copied into another backend (`switchboard storage migrate`).
//! - `conformance` (behind the `conformance` feature): one test function
//!   per behaviour, each taking a fresh [`Stores`], which every backend's
//!   tests run.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchboard_xml::Element;

pub use crate::ScramCredential;

/// A boxed, sendable future: what every store method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What every store method resolves to.
pub type StoreResult<T> = Result<T, StoreError>;

/// An account on a local host. Both parts are already normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountRef {
    pub host: String,
    pub user: String,
}

impl AccountRef {
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> AccountRef {
        AccountRef {
            host: host.into(),
            user: user.into(),
        }
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host)
    }
}

/// Why a store could not do what it was asked. Not file-shaped: the
/// detail texts may name a path or a table (and, for a damaged file, its
/// line and column), but callers decide only by the variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The account (or other required record) does not exist.
    NotFound,
    /// The account already exists.
    AlreadyExists,
    /// Out of space (a full disk) or over a backend's size limit: nothing
    /// was written. Clients are told `resource-constraint` (type `wait`).
    Full(String),
    /// The backend failed (an I/O error, a database that is down, a
    /// panic in a blocking task): nothing is known to have been written.
    Unavailable(String),
    /// A stored record does not parse or has the wrong shape. It is left
    /// as it is for an admin to look at.
    Corrupt(String),
    /// What the caller asked to store cannot be stored as given (text XML
    /// cannot carry, a reserved key, a document outside the spool
    /// namespace, an empty collection name): nothing was written. Input a
    /// client could send is the caller's to check first; reaching this is
    /// a bug, answered like `Unavailable`.
    Invalid(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("no such account"),
            StoreError::AlreadyExists => f.write_str("the account already exists"),
            StoreError::Full(d) => write!(f, "storage full: {d}"),
            StoreError::Unavailable(d) => write!(f, "storage unavailable: {d}"),
            StoreError::Corrupt(d) => write!(f, "damaged record: {d}"),
            StoreError::Invalid(d) => write!(f, "refused to store: {d}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Accounts and their credentials.
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account with these credentials; `AlreadyExists` if it
    /// exists.
    fn create<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>>;
    fn exists<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>>;
    /// The account's credentials; `None` when there is no such account.
    fn credentials<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<ScramCredential>>>>;
    /// Replaces the credentials (a password change); `NotFound` without
    /// the account.
    fn set_credentials<'a>(
        &'a self,
        account: &'a AccountRef,
        credentials: Vec<ScramCredential>,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// Removes the account and everything stored for it in every kind
    /// (roster, offline log, archive, account data). `false` when there
    /// was no such account.
    fn delete<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<bool>>;
    /// The user names of a host, sorted.
    fn list<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>>;
}

/// One roster item as stored (RFC 6121 §2.1.2 plus server-side state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The contact's bare JID, normalized.
    pub jid: String,
    pub name: Option<String>,
    /// `none`, `to`, `from` or `both`.
    pub subscription: String,
    /// An outbound request is pending (`ask='subscribe'`).
    pub ask: bool,
    /// The contact is pre-approved (RFC 6121 §3.4).
    pub approved: bool,
    /// The user added or edited the item (it survives `subscription='none'`).
    pub added: bool,
    pub groups: Vec<String>,
}

/// An account's roster as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRoster {
    /// The roster version (XEP-0237), bumped by the core on each change.
    pub ver: u64,
    pub items: Vec<StoredItem>,
    /// Inbound subscription requests waiting for an answer: the contact's
    /// bare JID and the original `<presence type='subscribe'/>`.
    pub pending: Vec<(String, Element)>,
}

/// Rosters.
pub trait RosterStore: Send + Sync + 'static {
    /// The roster; an account that never had one has an empty roster,
    /// `None` means there is no such account.
    fn load<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Option<StoredRoster>>>;
    /// Replaces the roster; `NotFound` without the account.
    fn save<'a>(
        &'a self,
        account: &'a AccountRef,
        roster: &'a StoredRoster,
    ) -> BoxFuture<'a, StoreResult<()>>;
}

/// How much an account's offline log holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfflineUsage {
    pub messages: usize,
    /// Serialized bytes of the stored stanzas.
    pub bytes: usize,
}

/// One stored offline message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Increases with each append to one account's log; never reused.
    pub id: u64,
    pub stanza: Element,
}

/// Offline messages: an append-only log per account. Storing one message
/// costs one append, not a rewrite of what is already stored.
///
/// Without the account, `usage` is zero, `list` empty and `remove_through`
/// does nothing; only `append` says `NotFound`. Deleting the account
/// deletes its log, and ids start again from 1 for an account created
/// later under the same name.
pub trait OfflineStore: Send + Sync + 'static {
    /// Appends a message (durable on return) and returns the log's usage
    /// afterwards; `NotFound` without the account.
    fn append<'a>(
        &'a self,
        account: &'a AccountRef,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>>;
    /// Appends several messages at once, durable on return with one flush
    /// to disk for all of them (group commit: the core hands over every
    /// message that waited in an account's queue together), and returns the
    /// usage afterwards. All or nothing: on an error none of them is
    /// stored. Backends that can should override this; the default appends
    /// one at a time and is neither atomic nor batched.
    fn append_batch<'a>(
        &'a self,
        account: &'a AccountRef,
        stanzas: &'a [Element],
    ) -> BoxFuture<'a, StoreResult<OfflineUsage>> {
        Box::pin(async move {
            let mut usage = self.usage(account).await?;
            for s in stanzas {
                usage = self.append(account, s).await?;
            }
            Ok(usage)
        })
    }
    fn usage<'a>(&'a self, account: &'a AccountRef) -> BoxFuture<'a, StoreResult<OfflineUsage>>;
    /// Every stored message, oldest first (empty without the account).
    fn list<'a>(
        &'a self,
        account: &'a AccountRef,
    ) -> BoxFuture<'a, StoreResult<Vec<OfflineMessage>>>;
    /// Removes the messages with `id <= through` (those delivered);
    /// anything appended since stays.
    fn remove_through<'a>(
        &'a self,
        account: &'a AccountRef,
        through: u64,
    ) -> BoxFuture<'a, StoreResult<()>>;
}

/// Whose archive: an account's bare JID or a room's JID.
pub type ArchiveOwner = str;

/// One archived stanza (XEP-0313).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// The archive id (the XEP-0359 stanza-id the owner's server gave it):
    /// unique within the owner's archive. Uniqueness is the caller's
    /// promise, not checked on append; were an id appended twice, lookups
    /// by id would find the older entry.
    pub id: String,
    /// When it was archived, microseconds since the Unix epoch.
    pub timestamp: u64,
    /// The other party's JID, bare or full as the owner's server saw it
    /// (for a room: the occupant's nick or real JID, as the room chooses),
    /// for `with` filters.
    pub with: String,
    /// The stanza as archived; a retracted entry keeps a tombstone here.
    pub stanza: Element,
}

/// An archive query (XEP-0313 filters with XEP-0059 paging).
///
/// An archive is in *archive order*: the order entries were appended in
/// (which need not be timestamp order, if a clock went back). A query
/// selects:
///
/// - the **result set**: the entries matching `with`, `start`, `end` and
///   `ids`, in archive order; its size is [`ArchivePage::count`];
/// - the **window**: the part of the result set after `after_id` and
///   before `before_id` (by archive position; the entries those ids name
///   need not match the filters themselves);
/// - the **page**: the first `max` entries of the window after `skip`
///   of them, or with `from_end` the last `max` before the `skip` newest,
///   returned oldest first either way.
///
/// [`ArchivePage::complete`] says the page reaches the window's end in
/// the direction of paging: its last entry forward, its first one with
/// `from_end`. An empty window is complete; a page of `max: 0` over a
/// non-empty window is not (XEP-0059 asks for the count that way).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Only entries with this `with`: a query without `/` matches an
    /// entry whose `with` is that bare JID or any full JID of it; one with
    /// `/` matches only itself.
    pub with: Option<String>,
    /// Entries at or after this time (microseconds since the epoch).
    pub start: Option<u64>,
    /// Entries at or before this time.
    pub end: Option<u64>,
    /// Only entries after (newer than) this id.
    pub after_id: Option<String>,
    /// Only entries before (older than) this id.
    pub before_id: Option<String>,
    /// Only these ids (XEP-0313 `ids` filter), in archive order.
    pub ids: Vec<String>,
    /// The most entries to return.
    pub max: usize,
    /// Take the page from the newest end (RSM `<before/>`): the last `max`
    /// entries that match, still returned oldest first.
    pub from_end: bool,
    /// Leave out this many entries of the window before the page starts,
    /// counted in the direction of paging (RSM `<index/>`: the page that
    /// starts at that position of the result set). A skip at or past the
    /// window's end gives an empty, complete page.
    pub skip: usize,
}

/// The answer to an [`ArchiveQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivePage {
    /// Oldest first.
    pub entries: Vec<ArchiveEntry>,
    /// No more entries match beyond this page in the direction of paging
    /// (XEP-0313 `<fin complete='true'/>`).
    pub complete: bool,
    /// The size of the result set (the entries matching the filters,
    /// whatever the paging), when the backend knows it cheaply (RSM
    /// `<count/>`). Both backends here always know it.
    pub count: Option<usize>,
}

/// Message archives.
pub trait ArchiveStore: Send + Sync + 'static {
    /// Appends an entry (durable on return).
    fn append<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entry: &'a ArchiveEntry,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// Appends several entries to one archive, in order, durable on return
    /// with one flush to disk for all of them (group commit: the core's
    /// archive writer hands over what waited in its queue together). All or
    /// nothing: on an error none of them is stored. Backends that can
    /// should override this; the default appends one at a time and is
    /// neither atomic nor batched.
    fn append_batch<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entries: &'a [ArchiveEntry],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            for e in entries {
                self.append(owner, e).await?;
            }
            Ok(())
        })
    }
    /// Appends to several archives at once (the core's archive writer
    /// hands over everything that waited in its queue, for many users):
    /// each archive's entries as [`ArchiveStore::append_batch`] would, all
    /// durable on return, with one flush for all of them where the backend
    /// can (group commit across archives: one `syncfs` for the file spool,
    /// where a flush per archive would cost a device flush per user). One
    /// result per archive, in order. The default appends one archive after
    /// the other.
    fn append_many<'a>(
        &'a self,
        batches: &'a [(String, Vec<ArchiveEntry>)],
    ) -> BoxFuture<'a, Vec<StoreResult<()>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(batches.len());
            for (owner, entries) in batches {
                results.push(self.append_batch(owner, entries).await);
            }
            results
        })
    }
    /// `Ok(None)` when `after_id`/`before_id` names an id the archive does
    /// not hold (XEP-0313 answers `item-not-found`).
    fn query<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        query: &'a ArchiveQuery,
    ) -> BoxFuture<'a, StoreResult<Option<ArchivePage>>>;
    /// Replaces an entry's stanza (a retraction's tombstone, XEP-0424);
    /// `false` when there is no such id.
    fn replace<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        id: &'a str,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// Removes entries older than `before` (microseconds since the epoch)
    /// from every archive at `domain`: the owners `…@domain` and `domain`
    /// itself (a host's accounts, or a group chat service's rooms, each
    /// with a retention of its own); returns how many went. Entries at
    /// `before` or later stay, and so do other domains' archives.
    fn expire<'a>(&'a self, domain: &'a str, before: u64) -> BoxFuture<'a, StoreResult<u64>>;
    /// Removes an owner's whole archive (a deleted account, a destroyed
    /// room).
    fn remove_owner<'a>(&'a self, owner: &'a ArchiveOwner) -> BoxFuture<'a, StoreResult<()>>;
}

/// Small documents per account, each keyed by its element's local name in
/// the spool namespace (`<vcard xmlns='urn:switchboard:spool:1'>…`): the
/// key of a document is `element.name`, and what comes back is the
/// element as stored.
///
/// A document must be in the spool namespace, and the keys the other
/// kinds keep in an account's record ([`rules::RESERVED_ACCOUNT_KEYS`]:
/// credentials, roster, the offline queue of older releases) are refused
/// with [`StoreError::Invalid`] by every method.
pub trait AccountDataStore: Send + Sync + 'static {
    /// `None` when the account has no such document (or no account).
    fn get<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>>;
    /// Stores `doc` under `doc.name`, replacing what was there; `NotFound`
    /// without the account.
    fn put<'a>(&'a self, account: &'a AccountRef, doc: Element) -> BoxFuture<'a, StoreResult<()>>;
    /// Removes a document (nothing happens if there is none).
    fn remove<'a>(
        &'a self,
        account: &'a AccountRef,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>>;
}

/// Small documents per local host (the message of the day), keyed as in
/// [`AccountDataStore`] (in the spool namespace; no key is reserved).
pub trait HostDataStore: Send + Sync + 'static {
    fn get<'a>(
        &'a self,
        host: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Element>>>;
    fn put<'a>(&'a self, host: &'a str, doc: Element) -> BoxFuture<'a, StoreResult<()>>;
    fn remove<'a>(&'a self, host: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>>;
}

/// A service's own records: opaque values by collection and key (a
/// transport's sealed registrations, the directory's listings, a MUC
/// service's rooms). Keys are any non-empty UTF-8 text. A collection is one
/// or more `/`-separated segments, each any non-empty UTF-8 text
/// (`registrations/irc.example.net`): the file backend makes each segment
/// a directory. Backends encode both. Values are at most
/// [`rules::MAX_VALUE_BYTES`].
pub trait ServiceDataStore: Send + Sync + 'static {
    fn get<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
    /// Stores a value (durable on return), replacing what was there.
    fn put<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// `false` when there was nothing under that key.
    fn remove<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// The keys of a collection, sorted.
    fn keys<'a>(
        &'a self,
        service: &'a str,
        collection: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>>;
    /// Where a record lives (a path, a table and key), for messages that
    /// send an admin to look at it.
    fn location(&self, service: &str, collection: &str, key: &str) -> String;
}

/// One service's view of the [`ServiceDataStore`]: what a service gets in
/// its context, so it can read and write its own records and nobody
/// else's.
#[derive(Clone)]
pub struct ServiceStore {
    inner: Arc<dyn ServiceDataStore>,
    service: Arc<str>,
}

impl fmt::Debug for ServiceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceStore")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl ServiceStore {
    pub fn new(inner: Arc<dyn ServiceDataStore>, service: &str) -> ServiceStore {
        ServiceStore {
            inner,
            service: Arc::from(service),
        }
    }

    /// The service's hostname.
    pub fn service(&self) -> &str {
        &self.service
    }

    pub async fn get(&self, collection: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get(&self.service, collection, key).await
    }

    pub async fn put(&self, collection: &str, key: &str, value: Vec<u8>) -> StoreResult<()> {
        self.inner.put(&self.service, collection, key, value).await
    }

    pub async fn remove(&self, collection: &str, key: &str) -> StoreResult<bool> {
        self.inner.remove(&self.service, collection, key).await
    }

    pub async fn keys(&self, collection: &str) -> StoreResult<Vec<String>> {
        self.inner.keys(&self.service, collection).await
    }

    /// Where a record lives, for messages to the admin.
    pub fn location(&self, collection: &str, key: &str) -> String {
        self.inner.location(&self.service, collection, key)
    }
}

/// What is kept with a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Who stored it (a bare JID).
    pub owner: String,
    /// The file name its owner gave (shown to whoever fetches it).
    pub name: String,
    pub content_type: String,
    /// Its exact length in bytes.
    pub size: u64,
    /// When it was stored, in seconds since the Unix epoch.
    pub created: u64,
    /// When it may be removed (seconds since the epoch); `None`: never.
    pub expires: Option<u64>,
}

/// A blob's bytes, read as they are wanted.
pub type BlobReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// Large files a service keeps (HTTP uploads, XEP-0363), in a scope of
/// their own (the service's hostname) under ids the service chooses:
/// 1 to 64 ASCII letters, digits, `-` or `_` (anything else is
/// `Invalid`). A blob is written as a stream and becomes visible, whole,
/// only when its writer commits: memory stays one chunk however large the
/// file, and a crash or an abandoned upload leaves nothing behind.
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing blob `id`; `AlreadyExists` if there is one.
    fn create<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
        meta: BlobMeta,
    ) -> BoxFuture<'a, StoreResult<Box<dyn BlobWriter>>>;
    /// The blob and its bytes; `None` when there is none.
    fn open<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<(BlobMeta, BlobReader)>>>;
    /// Every blob of the scope, by id (sorted).
    fn list<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, StoreResult<Vec<(String, BlobMeta)>>>;
    /// `false` when there was none.
    fn remove<'a>(&'a self, scope: &'a str, id: &'a str) -> BoxFuture<'a, StoreResult<bool>>;
}

/// A blob being written. Dropped without [`BlobWriter::commit`], it is
/// abandoned and nothing of it remains.
pub trait BlobWriter: Send {
    /// Appends bytes. More than the size the blob was created with is
    /// `Invalid`.
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, StoreResult<()>>;
    /// Makes the blob visible (durable on return). Fewer bytes than its
    /// size is `Invalid`, and the blob is abandoned.
    fn commit(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>>;
}

/// Every store of one backend, for the composition root to hand out one
/// kind at a time.
#[derive(Clone)]
pub struct Stores {
    pub accounts: Arc<dyn AccountStore>,
    pub rosters: Arc<dyn RosterStore>,
    pub offline: Arc<dyn OfflineStore>,
    pub archive: Arc<dyn ArchiveStore>,
    pub account_data: Arc<dyn AccountDataStore>,
    pub host_data: Arc<dyn HostDataStore>,
    pub service_data: Arc<dyn ServiceDataStore>,
    pub blobs: Arc<dyn BlobStore>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

mod archive_query;
pub mod copy;
pub mod file;
pub mod memory;
pub mod rules;

#[cfg(feature = "conformance")]
pub mod conformance;
