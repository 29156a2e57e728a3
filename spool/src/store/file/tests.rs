//! What only the file backend can get wrong: what lands on disk, what a
//! crash leaves behind, damaged files, and the migrations from the layouts
//! of earlier releases. (The behaviours every backend shares are in the
//! conformance suite, `tests/file_store.rs`.)

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use switchboard_xml::{ns, parse_document, Element, Limits};

use super::FileStores;
use crate::store::conformance::{entry, message, sample_roster};
use crate::store::{AccountRef, ArchiveQuery, StoreError, Stores};
use crate::{FileSpool, Storage, UserRecord};

const HOST: &str = "example.org";

fn fresh() -> (tempfile::TempDir, Stores, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let stores = FileStores::open(&root).unwrap();
    (dir, stores, root)
}

fn alice() -> AccountRef {
    AccountRef::new(HOST, "alice")
}

async fn with_alice(s: &Stores) -> AccountRef {
    s.accounts.create(&alice(), vec![]).await.unwrap();
    alice()
}

fn bodies(messages: &[crate::store::OfflineMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.stanza.get_child("body", ns::CLIENT).unwrap().text())
        .collect()
}

fn corrupt_at(r: Result<impl std::fmt::Debug, StoreError>, path: &Path) -> String {
    match r {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.starts_with(&path.display().to_string()), "{m}");
            m
        }
        other => panic!(
            "expected a damaged-record error for {}, got {other:?}",
            path.display()
        ),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn an_offline_message_is_one_append_not_a_rewrite() {
    let (_dir, s, root) = fresh();
    let a = with_alice(&s).await;
    let doc = root.join("example.org/alice.xml");
    let log = root.join("example.org/alice.offline");
    let doc_before = std::fs::metadata(&doc).unwrap();
    s.offline
        .append(&a, &message("bob@x", "one"))
        .await
        .unwrap();
    let first = std::fs::read(&log).unwrap();
    let inode = std::fs::metadata(&log).unwrap().ino();
    for i in 0..20 {
        s.offline
            .append(&a, &message("bob@x", &format!("more {i}")))
            .await
            .unwrap();
    }
    let after = std::fs::read(&log).unwrap();
    assert!(after.starts_with(&first), "earlier bytes were rewritten");
    assert_eq!(
        std::fs::metadata(&log).unwrap().ino(),
        inode,
        "the log was replaced"
    );
    let doc_after = std::fs::metadata(&doc).unwrap();
    assert_eq!(
        (doc_after.ino(), doc_after.mtime_nsec()),
        (doc_before.ino(), doc_before.mtime_nsec()),
        "the account's document was touched"
    );
    assert_eq!(mode(&log), 0o600);
    let text = String::from_utf8(after).unwrap();
    assert!(
        text.starts_with("switchboard offline log 1 base=0\n\u{1e}m 1 "),
        "{text}"
    );
    assert!(
        text.contains("<body>more 19</body>"),
        "readable in a pager: {text}"
    );
}

/// Cuts `path` to `len` bytes, then adds `junk`.
fn tear(path: &Path, len: usize, junk: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(len);
    bytes.extend_from_slice(junk);
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_torn_offline_tail_is_dropped_and_the_rest_kept() {
    let (_dir, s, root) = fresh();
    let a = with_alice(&s).await;
    let log = root.join("example.org/alice.offline");
    s.offline
        .append(&a, &message("bob@x", "one"))
        .await
        .unwrap();
    s.offline
        .append(&a, &message("bob@x", "two"))
        .await
        .unwrap();
    let whole = std::fs::metadata(&log).unwrap().len() as usize;
    s.offline
        .append(&a, &message("bob@x", "three"))
        .await
        .unwrap();
    let three = std::fs::metadata(&log).unwrap().len() as usize;
    // Every way the third append can have been cut short by a crash, as a
    // new process finds it.
    for (cut, junk) in [
        (whole + 1, &b""[..]),
        (whole + 20, b""),
        (three - 1, b""),
        (whole, &[0u8; 64][..]),
        (whole, b"\x1em 3 999 00000000\n<message"),
    ] {
        tear(&log, cut, junk);
        let s = FileStores::open(&root).unwrap();
        assert_eq!(
            bodies(&s.offline.list(&a).await.unwrap()),
            ["one", "two"],
            "cut at {cut}"
        );
        assert_eq!(s.offline.usage(&a).await.unwrap().messages, 2);
        s.offline
            .append(&a, &message("bob@x", "again"))
            .await
            .unwrap();
        assert_eq!(
            bodies(&s.offline.list(&a).await.unwrap()),
            ["one", "two", "again"]
        );
        // Back to three messages for the next round.
        tear(&log, three, b"");
        let text = std::fs::read(&log).unwrap();
        assert!(text.len() == three);
    }
}

#[tokio::test]
async fn a_damaged_offline_log_is_refused_and_kept() {
    let (_dir, s, root) = fresh();
    let a = with_alice(&s).await;
    let log = root.join("example.org/alice.offline");
    for body in ["one", "two", "three"] {
        s.offline.append(&a, &message("bob@x", body)).await.unwrap();
    }
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.windows(3).position(|w| w == b"two").unwrap();
    bytes[at] = b'T';
    std::fs::write(&log, &bytes).unwrap();
    let s = FileStores::open(&root).unwrap();
    let m = corrupt_at(s.offline.list(&a).await, &log);
    assert!(m.contains(":4:"), "the damaged record's line: {m}");
    corrupt_at(s.offline.append(&a, &message("bob@x", "four")).await, &log);
    corrupt_at(s.offline.remove_through(&a, 1).await, &log);
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "left as found");
    // A log of another kind is refused as well.
    std::fs::write(&log, "switchboard archive log 1\n").unwrap();
    let m = corrupt_at(s.offline.usage(&a).await, &log);
    assert!(m.contains("another kind"), "{m}");
}

/// The offline element of a release's account document, with two
/// messages.
const RELEASE_OFFLINE: &str = "<offline><message xmlns=\"jabber:client\" type=\"chat\" to=\"alice@example.org\" id=\"m1\" from=\"bob@example.org/x\"><body>first ✓ &lt;b&gt;</body><delay xmlns=\"urn:xmpp:delay\" from=\"example.org\" stamp=\"2026-12-07T12:50:22Z\"/></message><message xmlns=\"jabber:client\" type=\"normal\" to=\"alice@example.org\" id=\"m2\" from=\"bob@example.org/x\"><body>second\nline</body><subject>Plans</subject></message></offline>";

fn release_document(extra: &str) -> String {
    format!(
        "<?xml version='1.0' encoding='UTF-8'?>\n<user xmlns=\"urn:switchboard:spool:1\" name=\"alice\">\n  <motd-seen series=\"1\"/>\n  {extra}\n</user>\n"
    )
}

fn release_messages() -> Vec<Element> {
    let doc = release_document(RELEASE_OFFLINE);
    let root = parse_document(doc.as_bytes(), Limits::default()).unwrap();
    root.get_child("offline", ns::SPOOL)
        .unwrap()
        .elements()
        .cloned()
        .collect()
}

fn offline_in_document(root: &Path) -> bool {
    let spool = FileSpool::open(root).unwrap();
    let rec = spool.load_user(HOST, "alice").unwrap().unwrap();
    rec.extra.iter().any(|e| e.is("offline", ns::SPOOL))
}

#[tokio::test]
async fn offline_messages_in_a_release_document_move_into_the_log_once() {
    let (_dir, _s, root) = fresh();
    std::fs::create_dir_all(root.join(HOST)).unwrap();
    let doc = root.join("example.org/alice.xml");
    std::fs::write(&doc, release_document(RELEASE_OFFLINE)).unwrap();
    let s = FileStores::open(&root).unwrap();
    let listed = s.offline.list(&alice()).await.unwrap();
    let stanzas: Vec<Element> = listed.iter().map(|m| m.stanza.clone()).collect();
    assert_eq!(stanzas, release_messages());
    assert_eq!(listed.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
    assert!(
        !offline_in_document(&root),
        "the document still holds the queue"
    );
    // The rest of the document is as it was.
    let rec = FileSpool::open(&root)
        .unwrap()
        .load_user(HOST, "alice")
        .unwrap()
        .unwrap();
    assert_eq!(rec.extra.len(), 1);
    assert!(rec.extra[0].is("motd-seen", ns::SPOOL));
    // And the messages are still there, once, for the next process.
    let s = FileStores::open(&root).unwrap();
    assert_eq!(s.offline.list(&alice()).await.unwrap(), listed);
    s.offline.remove_through(&alice(), 2).await.unwrap();
    assert_eq!(s.offline.list(&alice()).await.unwrap(), vec![]);
    let after = s
        .offline
        .append(&alice(), &message("c@x", "three"))
        .await
        .unwrap();
    assert_eq!(after.messages, 1);
    assert_eq!(s.offline.list(&alice()).await.unwrap()[0].id, 3);
}

#[tokio::test]
async fn a_migration_interrupted_between_its_steps_finishes_without_duplicates() {
    let (_dir, _s, root) = fresh();
    std::fs::create_dir_all(root.join(HOST)).unwrap();
    let doc = root.join("example.org/alice.xml");
    let original = release_document(RELEASE_OFFLINE);
    std::fs::write(&doc, &original).unwrap();
    let s = FileStores::open(&root).unwrap();
    s.offline.usage(&alice()).await.unwrap();
    // The crash came after the log was written and before the document
    // was: the log holds the messages, the document still has them too.
    std::fs::write(&doc, &original).unwrap();
    let s = FileStores::open(&root).unwrap();
    let listed = s.offline.list(&alice()).await.unwrap();
    assert_eq!(listed.len(), 2, "delivered twice: {listed:?}");
    assert!(!offline_in_document(&root));

    // A crash in the middle of writing the log leaves a temporary file,
    // which the next start removes; the migration then runs whole.
    let log = root.join("example.org/alice.offline");
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&doc, &original).unwrap();
    let junk = root.join("example.org/.alice.tmp.999.1");
    std::fs::write(&junk, b"switchboard offline log 1 base=0\n\x1em 1 40").unwrap();
    let s = FileStores::open(&root).unwrap();
    assert!(!junk.exists());
    assert_eq!(s.offline.list(&alice()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn messages_queued_by_an_older_release_after_the_move_are_added_after_the_log() {
    let (_dir, _s, root) = fresh();
    std::fs::create_dir_all(root.join(HOST)).unwrap();
    let doc = root.join("example.org/alice.xml");
    std::fs::write(&doc, release_document("")).unwrap();
    let s = FileStores::open(&root).unwrap();
    s.offline
        .append(&alice(), &message("c@x", "in the log"))
        .await
        .unwrap();
    // An older binary, run again, queued two in the document.
    let mut text = std::fs::read_to_string(&doc).unwrap();
    text = text.replace("</user>", &format!("  {RELEASE_OFFLINE}\n</user>"));
    std::fs::write(&doc, text).unwrap();
    let listed = s.offline.list(&alice()).await.unwrap();
    assert_eq!(
        bodies(&listed),
        ["in the log", "first ✓ <b>", "second\nline"]
    );
    assert_eq!(listed.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
}

#[tokio::test]
async fn deleting_an_account_removes_its_logs_before_its_document() {
    let (_dir, s, root) = fresh();
    let a = with_alice(&s).await;
    s.offline.append(&a, &message("b@x", "hi")).await.unwrap();
    s.archive
        .append("alice@example.org", &entry(1, "b@x"))
        .await
        .unwrap();
    let files = ["alice.xml", "alice.offline", "alice.archive"].map(|f| root.join(HOST).join(f));
    assert!(files.iter().all(|f| f.exists()));
    // The older synchronous path (the `user del` command) does the same.
    let spool = FileSpool::open(&root).unwrap();
    assert!(spool.delete_user(HOST, "alice").unwrap());
    assert!(files.iter().all(|f| !f.exists()), "left behind");
    s.accounts.create(&a, vec![]).await.unwrap();
    assert_eq!(s.offline.list(&a).await.unwrap(), vec![]);
    // Logs left over from elsewhere do not become a new account's.
    s.accounts.delete(&a).await.unwrap();
    std::fs::write(&files[1], b"switchboard offline log 1 base=0\n").unwrap();
    s.accounts.create(&a, vec![]).await.unwrap();
    assert!(!files[1].exists());
}

fn all(max: usize) -> ArchiveQuery {
    ArchiveQuery {
        max,
        ..Default::default()
    }
}

fn ids(page: &crate::store::ArchivePage) -> Vec<String> {
    page.entries.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn a_torn_archive_tail_is_dropped_and_appends_continue() {
    let (_dir, s, root) = fresh();
    let owner = "alice@example.org";
    let log = root.join("example.org/alice.archive");
    for i in 1..=4 {
        s.archive.append(owner, &entry(i, "bob@x")).await.unwrap();
    }
    let whole = std::fs::metadata(&log).unwrap().len() as usize;
    s.archive.append(owner, &entry(5, "bob@x")).await.unwrap();
    let five = std::fs::metadata(&log).unwrap().len() as usize;
    for (cut, junk) in [
        (five - 1, &b""[..]),
        (whole + 3, b""),
        (whole, &[0u8; 100][..]),
    ] {
        tear(&log, cut, junk);
        // A fresh process appends first (no index), then queries.
        let s = FileStores::open(&root).unwrap();
        s.archive.append(owner, &entry(6, "bob@x")).await.unwrap();
        let page = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
        assert_eq!(ids(&page), ["m1", "m2", "m3", "m4", "m6"], "cut at {cut}");
        // And one that queries first (an index over the torn log).
        tear(&log, cut, junk);
        let s = FileStores::open(&root).unwrap();
        let page = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
        assert_eq!(page.count, Some(4));
        s.archive.append(owner, &entry(7, "bob@x")).await.unwrap();
        assert!(s
            .archive
            .replace(owner, "m2", &message("b@x", "gone"))
            .await
            .unwrap());
        let page = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
        assert_eq!(ids(&page), ["m1", "m2", "m3", "m4", "m7"]);
        assert_eq!(page.entries[1].stanza, message("b@x", "gone"));
        tear(&log, whole, b"");
        s.archive.append(owner, &entry(5, "bob@x")).await.unwrap();
    }
}

#[tokio::test]
async fn damaged_archive_records_are_refused() {
    let (_dir, s, root) = fresh();
    let owner = "alice@example.org";
    let log = root.join("example.org/alice.archive");
    for i in 1..=5 {
        s.archive.append(owner, &entry(i, "bob@x")).await.unwrap();
    }
    let good = std::fs::read(&log).unwrap();
    // A damaged payload in the middle: the pages that include it are
    // refused, the others still answer.
    let mut bytes = good.clone();
    let at = bytes.windows(9).position(|w| w == b"message 2").unwrap();
    bytes[at] = b'M';
    std::fs::write(&log, &bytes).unwrap();
    let s = FileStores::open(&root).unwrap();
    let m = corrupt_at(s.archive.query(owner, &all(10)).await, &log);
    assert!(m.contains(":4:"), "{m}");
    let last = ArchiveQuery {
        from_end: true,
        ..all(2)
    };
    let page = s.archive.query(owner, &last).await.unwrap().unwrap();
    assert_eq!(ids(&page), ["m4", "m5"]);
    // A damaged header line in the middle is refused at once.
    let mut bytes = good.clone();
    let at = bytes.windows(5).position(|w| w == b"\x1ea 20").unwrap();
    bytes[at + 1] = b'z';
    std::fs::write(&log, &bytes).unwrap();
    let s = FileStores::open(&root).unwrap();
    corrupt_at(s.archive.query(owner, &last).await, &log);
    // An append reads only the last record, so it goes on (the message is
    // kept); the damage stays as found, for the admin, and queries keep
    // reporting it.
    s.archive.append(owner, &entry(6, "b@x")).await.unwrap();
    assert!(
        std::fs::read(&log).unwrap().starts_with(&bytes),
        "damage overwritten"
    );
    corrupt_at(s.archive.query(owner, &last).await, &log);
}

#[tokio::test]
async fn an_index_follows_appends_and_compaction_by_another_process() {
    let (_dir, s, root) = fresh();
    let other = FileStores::open(&root).unwrap();
    let owner = "room@conference.example.org";
    for i in 1..=3 {
        s.archive.append(owner, &entry(i, "bob@x")).await.unwrap();
    }
    assert_eq!(
        other
            .archive
            .query(owner, &all(10))
            .await
            .unwrap()
            .unwrap()
            .count,
        Some(3)
    );
    for i in 4..=6 {
        s.archive.append(owner, &entry(i, "bob@x")).await.unwrap();
    }
    assert!(s
        .archive
        .replace(owner, "m5", &message("b@x", "edited"))
        .await
        .unwrap());
    let page = other.archive.query(owner, &all(10)).await.unwrap().unwrap();
    assert_eq!(page.count, Some(6));
    assert_eq!(page.entries[4].stanza, message("b@x", "edited"));
    assert_eq!(
        s.archive
            .expire("conference.example.org", 3_000_000)
            .await
            .unwrap(),
        2
    );
    let page = other.archive.query(owner, &all(10)).await.unwrap().unwrap();
    assert_eq!(ids(&page), ["m3", "m4", "m5", "m6"]);
    assert_eq!(
        page.entries[2].stanza,
        message("b@x", "edited"),
        "replacement kept"
    );
    other
        .archive
        .append(owner, &entry(7, "bob@x"))
        .await
        .unwrap();
    let page = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
    assert_eq!(ids(&page), ["m3", "m4", "m5", "m6", "m7"]);
    // A room's archive lives in its service's directory.
    assert!(root.join("conference.example.org/room.archive").exists());
    s.archive.remove_owner(owner).await.unwrap();
    assert_eq!(
        other
            .archive
            .query(owner, &all(10))
            .await
            .unwrap()
            .unwrap()
            .count,
        Some(0)
    );
}

#[tokio::test]
async fn damaged_documents_are_refused_with_their_position() {
    let (_dir, s, root) = fresh();
    let a = with_alice(&s).await;
    s.rosters.save(&a, &sample_roster()).await.unwrap();
    let doc = root.join("example.org/alice.xml");
    let text = std::fs::read_to_string(&doc).unwrap();
    let bad = text.replace("subscription=\"both\"", "subscription=\"all\"");
    std::fs::write(&doc, &bad).unwrap();
    let m = corrupt_at(s.rosters.load(&a).await, &doc);
    assert!(m.contains(":3:") && m.contains("subscription"), "{m}");
    let broken = text.replace("</user>", "</usr>");
    std::fs::write(&doc, &broken).unwrap();
    corrupt_at(s.rosters.load(&a).await, &doc);
    corrupt_at(
        s.account_data
            .put(&a, Element::new("vcard", ns::SPOOL))
            .await,
        &doc,
    );
    corrupt_at(s.accounts.credentials(&a).await, &doc);
    assert_eq!(
        std::fs::read_to_string(&doc).unwrap(),
        broken,
        "overwritten"
    );
    let host = root.join("example.org/+host.xml");
    std::fs::write(&host, "<host xmlns='urn:switchboard:spool:1'>motd</host>").unwrap();
    corrupt_at(s.host_data.get(HOST, "motd").await, &host);
}

#[tokio::test]
async fn service_values_land_where_the_services_kept_them() {
    let (_dir, s, root) = fresh();
    let svc = &s.service_data;
    svc.put(
        "irc.example.org",
        "registrations/127.0.0.1",
        "alice@example.org",
        b"<r/>".to_vec(),
    )
    .await
    .unwrap();
    let file = root.join("irc.example.org/registrations/127.0.0.1/alice%40example.org.xml");
    assert_eq!(std::fs::read(&file).unwrap(), b"<r/>");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&root.join("irc.example.org/registrations")), 0o700);
    assert_eq!(
        svc.location(
            "irc.example.org",
            "registrations/127.0.0.1",
            "alice@example.org"
        ),
        file.display().to_string()
    );
    // A long key is a hash on disk, with the key beside it.
    let long = format!("{}@example.org", "x".repeat(200));
    svc.put("s.example.org", "c", &long, b"v".to_vec())
        .await
        .unwrap();
    assert_eq!(
        svc.keys("s.example.org", "c").await.unwrap(),
        std::slice::from_ref(&long)
    );
    let names: Vec<String> = std::fs::read_dir(root.join("s.example.org/c"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(svc.remove("s.example.org", "c", &long).await.unwrap());
    let left = std::fs::read_dir(root.join("s.example.org/c"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(left, 0);
    // A hashed file of a release (no key file): its document says whose.
    let stem = crate::filename::encode_name(&long);
    std::fs::write(
        root.join(format!("s.example.org/c/{stem}.xml")),
        format!("<registration xmlns='urn:switchboard:spool:1' user='{long}'/>"),
    )
    .unwrap();
    assert_eq!(
        svc.keys("s.example.org", "c").await.unwrap(),
        std::slice::from_ref(&long)
    );
    // A file whose name is no key's is reported, not skipped.
    let stray = root.join("s.example.org/c/Stray.xml");
    std::fs::write(&stray, b"<x/>").unwrap();
    corrupt_at(svc.keys("s.example.org", "c").await, &stray);
}

#[tokio::test]
async fn release_service_layouts_move_on_first_access() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    // The directory's listings at the top of its directory, and an IRC
    // server's registrations under its raw name.
    let users = root.join("users.example.org");
    std::fs::create_dir_all(&users).unwrap();
    for (file, jid) in [
        ("alice%40example.org.xml", "alice@example.org"),
        ("bob%40example.org.xml", "bob@example.org"),
    ] {
        std::fs::write(
            users.join(file),
            format!("<entry xmlns='urn:switchboard:spool:1' jid='{jid}'/>"),
        )
        .unwrap();
    }
    let raw = root.join("irc.example.org/registrations/::1");
    std::fs::create_dir_all(&raw).unwrap();
    std::fs::write(raw.join("bob%40example.org.xml"), b"<sealed/>").unwrap();
    // A crash had moved one listing already.
    std::fs::create_dir_all(users.join("entries")).unwrap();
    std::fs::rename(
        users.join("bob%40example.org.xml"),
        users.join("entries/bob%40example.org.xml"),
    )
    .unwrap();

    let s = FileStores::open(&root).unwrap();
    let svc = &s.service_data;
    assert_eq!(
        svc.keys("users.example.org", "entries").await.unwrap(),
        ["alice@example.org", "bob@example.org"]
    );
    assert!(!users.join("alice%40example.org.xml").exists());
    assert_eq!(
        svc.keys("irc.example.org", "registrations/::1")
            .await
            .unwrap(),
        ["bob@example.org"]
    );
    assert!(!raw.exists());
    assert_eq!(
        svc.get("irc.example.org", "registrations/::1", "bob@example.org")
            .await
            .unwrap(),
        Some(b"<sealed/>".to_vec())
    );
    assert!(root.join("irc.example.org/registrations/%3A%3A1").is_dir());

    // Both spellings at once: refused, nothing moved.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    std::fs::create_dir_all(root.join("irc.example.org/registrations/::1")).unwrap();
    std::fs::create_dir_all(root.join("irc.example.org/registrations/%3A%3A1")).unwrap();
    let s = FileStores::open(&root).unwrap();
    let r = s
        .service_data
        .keys("irc.example.org", "registrations/::1")
        .await;
    assert!(
        matches!(r, Err(StoreError::Corrupt(ref m)) if m.contains("merge")),
        "{r:?}"
    );
    assert!(root.join("irc.example.org/registrations/::1").is_dir());

    // A host's directory used as a service's: its accounts stay put.
    let (_dir, s, root) = fresh();
    with_alice(&s).await;
    let r = s.service_data.keys(HOST, "entries").await;
    assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
    assert!(root.join("example.org/alice.xml").exists());
    assert!(s.accounts.exists(&alice()).await.unwrap());
}

#[tokio::test]
async fn the_synchronous_storage_and_the_stores_share_the_files() {
    let (_dir, s, root) = fresh();
    let a = with_alice(&s).await;
    s.rosters.save(&a, &sample_roster()).await.unwrap();
    let spool = FileSpool::open(&root).unwrap();
    spool
        .update_user(HOST, "alice", &mut |r: &mut UserRecord| {
            r.extra
                .push(Element::new("note", "urn:test").with_text("kept"))
        })
        .unwrap();
    assert_eq!(s.rosters.load(&a).await.unwrap(), Some(sample_roster()));
    s.account_data
        .put(&a, Element::new("vcard", ns::SPOOL))
        .await
        .unwrap();
    let rec = spool.load_user(HOST, "alice").unwrap().unwrap();
    let names: Vec<&str> = rec.extra.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["roster", "note", "vcard"]);
}
