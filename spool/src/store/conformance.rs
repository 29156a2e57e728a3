//! The conformance suite: one async function per behaviour of the storage
//! interface, each taking a fresh, empty [`Stores`] and panicking on a
//! deviation. Every backend runs all of them through
//! [`crate::conformance_tests!`], so each backend (the PostgreSQL one in
//! `store-postgres/` too) proves itself against the same list:
//!
//! ```text
//! switchboard_spool::conformance_tests!(fresh_stores().await);
//! ```
//!
//! where the expression yields `(guard, stores)`: the guard (a temporary
//! directory, a scratch database) is kept alive for the test's length.
//!
//! The behaviours are what a user would notice: an account's data back as
//! stored, names that are bad file names kept apart, ids never reused,
//! archive pages that neither skip nor repeat entries. Crash safety and
//! damaged files are backend-specific and tested with each backend.

use switchboard_xml::{ns, Element};

use super::{
    AccountRef, ArchiveEntry, ArchiveQuery, ScramCredential, StoreError, StoredItem, StoredRoster,
    Stores,
};

const HOST: &str = "example.org";

/// Names that must never become paths as they are, or collide.
pub fn awkward_names() -> Vec<String> {
    vec![
        "..".into(),
        ".".into(),
        "con".into(),
        "con.txt".into(),
        "x".repeat(300),
        "x".repeat(301),
        "a\0b".into(),
        "a/b".into(),
        "a\\b".into(),
        "%41".into(),
        "A".into(),
        "ä".into(),
        "+host".into(),
        "x.xml".into(),
        "line\nbreak".into(),
    ]
}

fn cred(hash: &str, fill: u8) -> ScramCredential {
    ScramCredential {
        hash: hash.into(),
        salt: vec![fill; 16],
        iterations: 4096,
        stored_key: vec![fill ^ 1; 32],
        server_key: vec![fill ^ 2; 32],
    }
}

fn account(user: &str) -> AccountRef {
    AccountRef::new(HOST, user)
}

async fn created(s: &Stores, user: &str) -> AccountRef {
    let a = account(user);
    s.accounts
        .create(&a, vec![cred("SHA-256", 1)])
        .await
        .unwrap();
    a
}

/// A chat message as the core stores it.
pub fn message(from: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("type", "chat")
        .with_attr("xml:lang", "en")
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
        .with_child(
            Element::new("delay", ns::DELAY)
                .with_attr("from", HOST)
                .with_attr("stamp", "2026-12-07T12:00:00Z"),
        )
}

fn doc(name: &str, text: &str) -> Element {
    Element::new(name, ns::SPOOL).with_child(Element::new("x", "urn:test").with_text(text))
}

fn invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
}

pub async fn accounts_create_exists_list_delete(s: Stores) {
    let alice = account("alice");
    assert!(!s.accounts.exists(&alice).await.unwrap());
    assert_eq!(s.accounts.credentials(&alice).await.unwrap(), None);
    assert_eq!(s.accounts.list(HOST).await.unwrap(), Vec::<String>::new());
    let creds = vec![cred("SHA-256", 1), cred("SHA-1", 2)];
    s.accounts.create(&alice, creds.clone()).await.unwrap();
    assert_eq!(
        s.accounts.create(&alice, vec![]).await,
        Err(StoreError::AlreadyExists)
    );
    created(&s, "bob").await;
    s.accounts
        .create(&AccountRef::new("other.org", "carol"), vec![])
        .await
        .unwrap();
    assert!(s.accounts.exists(&alice).await.unwrap());
    assert_eq!(s.accounts.credentials(&alice).await.unwrap(), Some(creds));
    assert_eq!(s.accounts.list(HOST).await.unwrap(), ["alice", "bob"]);
    assert_eq!(s.accounts.list("other.org").await.unwrap(), ["carol"]);
    assert_eq!(
        s.accounts.list("nowhere.org").await.unwrap(),
        Vec::<String>::new()
    );
    assert!(s.accounts.delete(&alice).await.unwrap());
    assert!(!s.accounts.delete(&alice).await.unwrap());
    assert!(!s.accounts.exists(&alice).await.unwrap());
    assert_eq!(s.accounts.list(HOST).await.unwrap(), ["bob"]);
}

pub async fn accounts_credentials_are_replaced_whole(s: Stores) {
    let alice = created(&s, "alice").await;
    let new = vec![cred("SHA-1", 7)];
    s.accounts
        .set_credentials(&alice, new.clone())
        .await
        .unwrap();
    assert_eq!(s.accounts.credentials(&alice).await.unwrap(), Some(new));
    assert_eq!(
        s.accounts.set_credentials(&account("nobody"), vec![]).await,
        Err(StoreError::NotFound)
    );
    assert!(!s.accounts.exists(&account("nobody")).await.unwrap());
}

pub async fn accounts_with_awkward_names_stay_apart(s: Stores) {
    let names = awkward_names();
    for (i, name) in names.iter().enumerate() {
        s.accounts
            .create(&account(name), vec![cred("SHA-256", i as u8)])
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(s.accounts.list(HOST).await.unwrap(), sorted);
    for (i, name) in names.iter().enumerate() {
        let a = account(name);
        assert_eq!(
            s.accounts.credentials(&a).await.unwrap(),
            Some(vec![cred("SHA-256", i as u8)]),
            "{name:?}"
        );
        // Debug form: a NUL is a fine name, but no text XML can carry.
        let text = format!("{name:?}");
        s.account_data
            .put(&a, doc("vcard", &text))
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        s.offline
            .append(&a, &message("bob@example.org", &text))
            .await
            .unwrap();
    }
    for name in &names {
        let a = account(name);
        let text = format!("{name:?}");
        assert_eq!(
            s.account_data.get(&a, "vcard").await.unwrap(),
            Some(doc("vcard", &text))
        );
        let stored = s.offline.list(&a).await.unwrap();
        assert_eq!(stored.len(), 1, "{name:?}");
        assert_eq!(stored[0].stanza, message("bob@example.org", &text));
    }
    // Hosts may be awkward too.
    for host in ["..", "con", &"h".repeat(300)] {
        let a = AccountRef::new(host, "..");
        s.accounts.create(&a, vec![]).await.unwrap();
        assert_eq!(s.accounts.list(host).await.unwrap(), [".."]);
    }
    for name in &names {
        assert!(s.accounts.delete(&account(name)).await.unwrap(), "{name:?}");
    }
    assert_eq!(s.accounts.list(HOST).await.unwrap(), Vec::<String>::new());
}

pub async fn account_delete_removes_every_kind(s: Stores) {
    let alice = created(&s, "alice").await;
    let roster = sample_roster();
    s.rosters.save(&alice, &roster).await.unwrap();
    s.account_data.put(&alice, doc("vcard", "a")).await.unwrap();
    s.offline
        .append(&alice, &message("bob@example.org", "hi"))
        .await
        .unwrap();
    s.archive
        .append(&alice.to_string(), &entry(1, "bob@example.org"))
        .await
        .unwrap();
    assert!(s.accounts.delete(&alice).await.unwrap());
    assert_eq!(s.rosters.load(&alice).await.unwrap(), None);
    s.accounts.create(&alice, vec![]).await.unwrap();
    assert_eq!(
        s.rosters.load(&alice).await.unwrap(),
        Some(StoredRoster::default())
    );
    assert_eq!(s.account_data.get(&alice, "vcard").await.unwrap(), None);
    assert_eq!(s.offline.list(&alice).await.unwrap(), vec![]);
    assert_eq!(s.offline.usage(&alice).await.unwrap().messages, 0);
    let page = s
        .archive
        .query(&alice.to_string(), &all(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.entries, vec![]);
}

fn item(jid: &str) -> StoredItem {
    StoredItem {
        jid: jid.into(),
        name: None,
        subscription: "none".into(),
        ask: false,
        approved: false,
        added: false,
        groups: vec![],
    }
}

/// A roster with every field used.
pub fn sample_roster() -> StoredRoster {
    StoredRoster {
        ver: 7,
        items: vec![
            StoredItem {
                name: Some("Bob <&> 'the' \"builder\"".into()),
                subscription: "both".into(),
                added: true,
                groups: vec!["Friends & Co".into(), "Work".into()],
                ..item("bob@example.org")
            },
            StoredItem {
                subscription: "none".into(),
                ask: true,
                approved: true,
                added: true,
                ..item("dave@example.org")
            },
            StoredItem {
                subscription: "from".into(),
                ..item("irc.example.org")
            },
        ],
        pending: vec![(
            "carol@example.org".into(),
            Element::new("presence", ns::CLIENT)
                .with_attr("from", "carol@example.org")
                .with_attr("type", "subscribe")
                .with_child(Element::new("status", ns::CLIENT).with_text("It's Carol")),
        )],
    }
}

pub async fn roster_round_trips_and_is_replaced(s: Stores) {
    let nobody = account("nobody");
    assert_eq!(s.rosters.load(&nobody).await.unwrap(), None);
    assert_eq!(
        s.rosters.save(&nobody, &sample_roster()).await,
        Err(StoreError::NotFound)
    );
    let alice = created(&s, "alice").await;
    assert_eq!(
        s.rosters.load(&alice).await.unwrap(),
        Some(StoredRoster::default())
    );
    let roster = sample_roster();
    s.rosters.save(&alice, &roster).await.unwrap();
    assert_eq!(s.rosters.load(&alice).await.unwrap(), Some(roster.clone()));
    let smaller = StoredRoster {
        ver: 8,
        items: roster.items[..1].to_vec(),
        pending: vec![],
    };
    s.rosters.save(&alice, &smaller).await.unwrap();
    assert_eq!(s.rosters.load(&alice).await.unwrap(), Some(smaller));
    // The roster does not disturb the credentials, nor they it.
    s.accounts
        .set_credentials(&alice, vec![cred("SHA-1", 9)])
        .await
        .unwrap();
    assert_eq!(s.rosters.load(&alice).await.unwrap().unwrap().ver, 8);
}

pub async fn roster_refuses_what_it_could_not_read_back(s: Stores) {
    let alice = created(&s, "alice").await;
    s.rosters.save(&alice, &sample_roster()).await.unwrap();
    let mut twice = sample_roster();
    twice.items.push(item("bob@example.org"));
    invalid(s.rosters.save(&alice, &twice).await);
    let mut odd = sample_roster();
    odd.items[0].subscription = "maybe".into();
    invalid(s.rosters.save(&alice, &odd).await);
    let mut nul = sample_roster();
    nul.items[0].groups.push("a\0b".into());
    invalid(s.rosters.save(&alice, &nul).await);
    assert_eq!(
        s.rosters.load(&alice).await.unwrap(),
        Some(sample_roster()),
        "nothing was written"
    );
}

pub async fn account_data_get_put_remove(s: Stores) {
    let nobody = account("nobody");
    assert_eq!(s.account_data.get(&nobody, "vcard").await.unwrap(), None);
    assert_eq!(
        s.account_data.put(&nobody, doc("vcard", "x")).await,
        Err(StoreError::NotFound)
    );
    s.account_data.remove(&nobody, "vcard").await.unwrap();

    let alice = created(&s, "alice").await;
    s.rosters.save(&alice, &sample_roster()).await.unwrap();
    s.account_data
        .put(&alice, doc("vcard", "one"))
        .await
        .unwrap();
    s.account_data
        .put(&alice, doc("private", "two"))
        .await
        .unwrap();
    s.account_data
        .put(
            &alice,
            Element::new("last", ns::SPOOL).with_attr("seconds-since-epoch", "1700000000"),
        )
        .await
        .unwrap();
    s.account_data
        .put(&alice, doc("vcard", "three"))
        .await
        .unwrap();
    assert_eq!(
        s.account_data.get(&alice, "vcard").await.unwrap(),
        Some(doc("vcard", "three"))
    );
    assert_eq!(
        s.account_data.get(&alice, "private").await.unwrap(),
        Some(doc("private", "two"))
    );
    s.account_data.remove(&alice, "private").await.unwrap();
    s.account_data.remove(&alice, "private").await.unwrap();
    assert_eq!(s.account_data.get(&alice, "private").await.unwrap(), None);
    assert_eq!(
        s.account_data
            .get(&alice, "last")
            .await
            .unwrap()
            .unwrap()
            .attr("seconds-since-epoch"),
        Some("1700000000")
    );
    // The other kinds in the same account are untouched.
    assert_eq!(s.rosters.load(&alice).await.unwrap(), Some(sample_roster()));
    assert_eq!(
        s.accounts.credentials(&alice).await.unwrap(),
        Some(vec![cred("SHA-256", 1)])
    );
}

pub async fn account_data_refuses_reserved_keys_and_foreign_documents(s: Stores) {
    let alice = created(&s, "alice").await;
    for key in super::rules::RESERVED_ACCOUNT_KEYS {
        invalid(s.account_data.put(&alice, doc(key, "x")).await);
        invalid(s.account_data.get(&alice, key).await);
        invalid(s.account_data.remove(&alice, key).await);
    }
    invalid(
        s.account_data
            .put(&alice, Element::new("vCard", "vcard-temp"))
            .await,
    );
    invalid(s.account_data.put(&alice, doc("vcard", "a\0b")).await);
    invalid(s.account_data.get(&alice, "").await);
    assert_eq!(
        s.accounts.credentials(&alice).await.unwrap(),
        Some(vec![cred("SHA-256", 1)])
    );
}

pub async fn host_data_get_put_remove(s: Stores) {
    assert_eq!(s.host_data.get(HOST, "motd").await.unwrap(), None);
    s.host_data.remove(HOST, "motd").await.unwrap();
    // A host may have data before it has an account.
    let motd = Element::new("motd", ns::SPOOL)
        .with_attr("last-series", "3")
        .with_child(Element::new("body", ns::CLIENT).with_text("Sunday <06:00>"));
    s.host_data.put(HOST, motd.clone()).await.unwrap();
    s.host_data.put("..", doc("motd", "dots")).await.unwrap();
    s.host_data.put(HOST, doc("other", "x")).await.unwrap();
    assert_eq!(s.host_data.get(HOST, "motd").await.unwrap(), Some(motd));
    assert_eq!(
        s.host_data.get("..", "motd").await.unwrap(),
        Some(doc("motd", "dots"))
    );
    s.host_data.remove(HOST, "motd").await.unwrap();
    assert_eq!(s.host_data.get(HOST, "motd").await.unwrap(), None);
    assert_eq!(
        s.host_data.get(HOST, "other").await.unwrap(),
        Some(doc("other", "x"))
    );
    s.host_data.remove(HOST, "other").await.unwrap();
    // Host data is no account.
    assert_eq!(s.accounts.list(HOST).await.unwrap(), Vec::<String>::new());
    invalid(
        s.host_data
            .put(HOST, Element::new("motd", "urn:other"))
            .await,
    );
    invalid(s.host_data.put(HOST, doc("motd", "\u{1}")).await);
}

pub async fn offline_log_appends_lists_and_removes_in_order(s: Stores) {
    let nobody = account("nobody");
    assert_eq!(
        s.offline.append(&nobody, &message("b@x", "lost")).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(s.offline.usage(&nobody).await.unwrap().messages, 0);
    assert_eq!(s.offline.list(&nobody).await.unwrap(), vec![]);
    s.offline.remove_through(&nobody, 10).await.unwrap();

    let alice = created(&s, "alice").await;
    let bodies = ["one", "two ✓ <b> & 'q'", "three\nlines\n\n", "four"];
    let mut bytes = 0;
    for (i, body) in bodies.iter().enumerate() {
        let m = message("bob@example.org/phone", body);
        bytes += m.to_bytes(None).len();
        let usage = s.offline.append(&alice, &m).await.unwrap();
        assert_eq!((usage.messages, usage.bytes), (i + 1, bytes));
    }
    assert_eq!(s.offline.usage(&alice).await.unwrap().bytes, bytes);
    let stored = s.offline.list(&alice).await.unwrap();
    let got: Vec<_> = stored.iter().map(|m| m.stanza.clone()).collect();
    let want: Vec<_> = bodies
        .iter()
        .map(|b| message("bob@example.org/phone", b))
        .collect();
    assert_eq!(got, want, "oldest first, exactly as stored");
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));

    // The delivered ones go; anything after them stays.
    s.offline
        .remove_through(&alice, stored[1].id)
        .await
        .unwrap();
    let left = s.offline.list(&alice).await.unwrap();
    assert_eq!(left, stored[2..].to_vec());
    assert_eq!(s.offline.usage(&alice).await.unwrap().messages, 2);
    // Removing what is already gone changes nothing.
    s.offline
        .remove_through(&alice, stored[0].id)
        .await
        .unwrap();
    assert_eq!(s.offline.list(&alice).await.unwrap(), left);

    // Ids are never reused, not even after the log was emptied.
    s.offline.remove_through(&alice, u64::MAX).await.unwrap();
    assert_eq!(s.offline.usage(&alice).await.unwrap(), Default::default());
    s.offline
        .append(&alice, &message("b@x", "five"))
        .await
        .unwrap();
    let after = s.offline.list(&alice).await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0].id > stored[3].id, "{} reused", after[0].id);
}

/// A batch is stored as one: in order after what was there, with
/// increasing ids; one stanza the store cannot keep refuses the whole
/// batch, and an empty batch changes nothing.
pub async fn offline_batches_are_appended_whole_or_not_at_all(s: Stores) {
    let nobody = account("nobody");
    assert_eq!(
        s.offline
            .append_batch(&nobody, &[message("b@x", "lost")])
            .await,
        Err(StoreError::NotFound)
    );
    let alice = created(&s, "alice").await;
    s.offline
        .append(&alice, &message("b@x", "first"))
        .await
        .unwrap();
    let batch: Vec<_> = ["two", "three", "four"]
        .iter()
        .map(|b| message("b@x", b))
        .collect();
    let usage = s.offline.append_batch(&alice, &batch).await.unwrap();
    assert_eq!(usage.messages, 4);
    let stored = s.offline.list(&alice).await.unwrap();
    let bodies: Vec<_> = stored
        .iter()
        .map(|m| m.stanza.child_text("body", "jabber:client").unwrap())
        .collect();
    assert_eq!(bodies, ["first", "two", "three", "four"]);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    invalid(
        s.offline
            .append_batch(&alice, &[message("b@x", "fine"), message("b@x", "a\0b")])
            .await,
    );
    assert_eq!(
        s.offline.list(&alice).await.unwrap().len(),
        4,
        "none stored"
    );
    let same = s.offline.append_batch(&alice, &[]).await.unwrap();
    assert_eq!(same, usage);
}

pub async fn offline_log_refuses_what_xml_cannot_carry(s: Stores) {
    let alice = created(&s, "alice").await;
    s.offline
        .append(&alice, &message("b@x", "ok"))
        .await
        .unwrap();
    invalid(s.offline.append(&alice, &message("b@x", "a\0b")).await);
    invalid(
        s.offline
            .append(&alice, &message("b@x", "record\u{1e}sep"))
            .await,
    );
    assert_eq!(s.offline.list(&alice).await.unwrap().len(), 1);
}

pub async fn offline_logs_of_distinct_accounts_do_not_wait_for_each_other(s: Stores) {
    let users: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
    for u in &users {
        created(&s, u).await;
    }
    let mut tasks = Vec::new();
    for u in users.clone() {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                s.offline
                    .append(&account(&u), &message("b@x", &format!("{u} {i}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for u in &users {
        let bodies: Vec<String> = s
            .offline
            .list(&account(u))
            .await
            .unwrap()
            .iter()
            .map(|m| m.stanza.get_child("body", ns::CLIENT).unwrap().text())
            .collect();
        let want: Vec<String> = (0..10).map(|i| format!("{u} {i}")).collect();
        assert_eq!(bodies, want);
    }
}

/// Entry `n`: id `m<n>`, at `n` seconds (in microseconds).
pub fn entry(n: u64, with: &str) -> ArchiveEntry {
    ArchiveEntry {
        id: format!("m{n}"),
        timestamp: n * 1_000_000,
        with: with.into(),
        stanza: message(with, &format!("message {n}")),
    }
}

fn all(max: usize) -> ArchiveQuery {
    ArchiveQuery {
        max,
        ..Default::default()
    }
}

fn ids(page: &super::ArchivePage) -> Vec<String> {
    page.entries.iter().map(|e| e.id.clone()).collect()
}

fn names(range: impl IntoIterator<Item = u64>) -> Vec<String> {
    range.into_iter().map(|n| format!("m{n}")).collect()
}

pub async fn archive_empty_and_unknown_ids(s: Stores) {
    let owner = "alice@example.org";
    let page = s.archive.query(owner, &all(50)).await.unwrap().unwrap();
    assert_eq!(page.entries, vec![]);
    assert!(page.complete);
    assert_eq!(page.count, Some(0));
    for q in [
        ArchiveQuery {
            after_id: Some("nope".into()),
            ..all(5)
        },
        ArchiveQuery {
            before_id: Some("nope".into()),
            ..all(5)
        },
    ] {
        assert_eq!(s.archive.query(owner, &q).await.unwrap(), None);
    }
    let el = message("b@x", "x");
    assert!(!s.archive.replace(owner, "nope", &el).await.unwrap());
    s.archive.remove_owner(owner).await.unwrap();
    s.archive
        .append(owner, &entry(1, "bob@example.org"))
        .await
        .unwrap();
    assert!(!s.archive.replace(owner, "nope", &el).await.unwrap());
    let q = ArchiveQuery {
        after_id: Some("nope".into()),
        ..all(5)
    };
    assert_eq!(s.archive.query(owner, &q).await.unwrap(), None);
}

async fn filled(s: &Stores, owner: &str, n: u64) {
    let partners = [
        "bob@example.org",
        "carol@example.org/desk",
        "bob@example.org/phone",
    ];
    for i in 1..=n {
        let e = entry(i, partners[(i % 3) as usize]);
        s.archive.append(owner, &e).await.unwrap();
    }
}

pub async fn archive_pages_forward_and_backward_without_gaps(s: Stores) {
    let owner = "alice@example.org";
    filled(&s, owner, 25).await;
    let first = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
    assert_eq!(ids(&first), names(1..=10));
    assert!(!first.complete);
    assert_eq!(first.count, Some(25));
    assert_eq!(first.entries[0], entry(1, "carol@example.org/desk"));

    // Forward with after_id until complete.
    let mut seen = ids(&first);
    let mut last = first;
    while !last.complete {
        let q = ArchiveQuery {
            after_id: Some(last.entries.last().unwrap().id.clone()),
            ..all(10)
        };
        last = s.archive.query(owner, &q).await.unwrap().unwrap();
        seen.extend(ids(&last));
    }
    assert_eq!(seen, names(1..=25));
    assert_eq!(ids(&last), names(21..=25));

    // Backward from the end with before_id until complete.
    let q = ArchiveQuery {
        from_end: true,
        ..all(10)
    };
    let mut page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(16..=25), "the newest page, oldest first");
    let mut back = ids(&page);
    while !page.complete {
        let q = ArchiveQuery {
            before_id: Some(page.entries[0].id.clone()),
            from_end: true,
            ..all(10)
        };
        page = s.archive.query(owner, &q).await.unwrap().unwrap();
        let mut older = ids(&page);
        older.extend(back);
        back = older;
    }
    assert_eq!(back, names(1..=25));
    assert_eq!(ids(&page), names(1..=5));

    // An exact fit is complete; max 0 only counts.
    let q = ArchiveQuery {
        after_id: Some("m15".into()),
        ..all(10)
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(16..=25));
    assert!(page.complete);
    let page = s.archive.query(owner, &all(0)).await.unwrap().unwrap();
    assert_eq!(
        (page.entries.len(), page.complete, page.count),
        (0, false, Some(25))
    );
    // Between two ids.
    let q = ArchiveQuery {
        after_id: Some("m3".into()),
        before_id: Some("m7".into()),
        ..all(10)
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(4..=6));
    assert!(page.complete);
}

pub async fn archive_filters_by_with_time_and_ids(s: Stores) {
    let owner = "room@conference.example.org";
    filled(&s, owner, 12).await;
    let q = ArchiveQuery {
        with: Some("bob@example.org".into()),
        ..all(50)
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    // Both the bare and the full JID entries of bob.
    let want: Vec<u64> = (1..=12).filter(|i| i % 3 != 1).collect();
    assert_eq!(ids(&page), names(want.clone()));
    assert_eq!(page.count, Some(want.len()));
    let q = ArchiveQuery {
        with: Some("bob@example.org/phone".into()),
        ..all(50)
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names([2, 5, 8, 11]));
    let q = ArchiveQuery {
        with: Some("carol@example.org".into()),
        start: Some(4_000_000),
        end: Some(10_000_000),
        ..all(50)
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names([4, 7, 10]), "start and end are inclusive");
    let q = ArchiveQuery {
        ids: vec!["m9".into(), "m2".into(), "nope".into()],
        ..all(50)
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names([2, 9]), "in archive order");
    assert_eq!(page.count, Some(2));
    // A filtered page from the end, then the one before it.
    let q = ArchiveQuery {
        with: Some("bob@example.org".into()),
        from_end: true,
        ..all(3)
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names([9, 11, 12]));
    assert!(!page.complete);
    let q = ArchiveQuery {
        before_id: Some("m9".into()),
        ..q
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names([5, 6, 8]));
    // Another owner's archive is another archive.
    let page = s
        .archive
        .query("other@example.org", &all(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.count, Some(0));
}

pub async fn archive_replace_keeps_the_place(s: Stores) {
    let owner = "alice@example.org";
    filled(&s, owner, 5).await;
    let tombstone = Element::new("message", ns::CLIENT)
        .with_child(Element::new("retracted", "urn:xmpp:message-retract:1"));
    assert!(s.archive.replace(owner, "m3", &tombstone).await.unwrap());
    let again = tombstone.clone().with_attr("id", "twice");
    assert!(s.archive.replace(owner, "m3", &again).await.unwrap());
    s.archive
        .append(owner, &entry(6, "bob@example.org"))
        .await
        .unwrap();
    let page = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(1..=6));
    let e = &page.entries[2];
    assert_eq!(e.stanza, again);
    assert_eq!((e.id.as_str(), e.timestamp), ("m3", 3_000_000));
    assert_eq!(e.with, entry(3, "bob@example.org").with);
    assert_eq!(page.entries[3], entry(4, "carol@example.org/desk"));
    invalid(s.archive.replace(owner, "m1", &message("b@x", "\0")).await);
}

pub async fn archive_expire_and_remove_owner(s: Stores) {
    filled(&s, "alice@example.org", 10).await;
    filled(&s, "example.org", 3).await;
    filled(&s, "room@conference.example.org", 4).await;
    // Entries of example.org's archives before 5 s go; the one at
    // exactly 5 s stays, and so does everything at other domains.
    assert_eq!(
        s.archive.expire("example.org", 5_000_000).await.unwrap(),
        4 + 3
    );
    let page = s
        .archive
        .query("alice@example.org", &all(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&page), names(5..=10));
    let page = s
        .archive
        .query("example.org", &all(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.count, Some(0));
    let room = "room@conference.example.org";
    let page = s.archive.query(room, &all(50)).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(1..=4), "another domain keeps its own");
    assert_eq!(
        s.archive
            .expire("conference.example.org", 5_000_000)
            .await
            .unwrap(),
        4
    );
    let page = s.archive.query(room, &all(50)).await.unwrap().unwrap();
    assert_eq!(page.count, Some(0));
    assert_eq!(s.archive.expire("example.org", 5_000_000).await.unwrap(), 0);
    assert_eq!(
        s.archive
            .expire("nowhere.example", 5_000_000)
            .await
            .unwrap(),
        0
    );
    // Paging still works on what is left, and appends continue it.
    s.archive
        .append("alice@example.org", &entry(11, "bob@example.org"))
        .await
        .unwrap();
    let q = ArchiveQuery {
        after_id: Some("m9".into()),
        ..all(50)
    };
    let page = s
        .archive
        .query("alice@example.org", &q)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&page), names([10, 11]));
    s.archive.remove_owner("alice@example.org").await.unwrap();
    let page = s
        .archive
        .query("alice@example.org", &all(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.count, Some(0));
}

pub async fn archive_batches_are_appended_whole_and_in_order(s: Stores) {
    let owner = "alice@example.org";
    s.archive
        .append(owner, &entry(1, "bob@example.org"))
        .await
        .unwrap();
    let batch: Vec<ArchiveEntry> = (2..=4).map(|n| entry(n, "carol@example.org")).collect();
    s.archive.append_batch(owner, &batch).await.unwrap();
    s.archive.append_batch(owner, &[]).await.unwrap();
    s.archive
        .append(owner, &entry(5, "bob@example.org"))
        .await
        .unwrap();
    let page = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(1..=5));
    assert_eq!(page.entries[2], entry(3, "carol@example.org"));
    let q = ArchiveQuery {
        after_id: Some("m2".into()),
        before_id: Some("m5".into()),
        ..all(10)
    };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(3..=4));
    // One stanza that cannot be stored refuses the whole batch.
    let bad = ArchiveEntry {
        stanza: message("b@x", "a\0b"),
        ..entry(7, "bob@example.org")
    };
    invalid(
        s.archive
            .append_batch(owner, &[entry(6, "bob@example.org"), bad])
            .await,
    );
    let page = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(1..=5), "nothing of a refused batch");
}

pub async fn archive_appends_to_many_archives_at_once(s: Stores) {
    assert!(s.archive.append_many(&[]).await.is_empty());
    s.archive
        .append("alice@example.org", &entry(1, "bob@example.org"))
        .await
        .unwrap();
    let bad = ArchiveEntry {
        stanza: message("b@x", "a\0b"),
        ..entry(9, "bob@example.org")
    };
    let batches = vec![
        (
            "alice@example.org".to_string(),
            (2..=3).map(|n| entry(n, "bob@example.org")).collect(),
        ),
        // An archive that does not exist yet, another host's, and a room's.
        (
            "bob@example.org".to_string(),
            vec![entry(2, "alice@example.org")],
        ),
        (
            "carol@example.net".to_string(),
            vec![entry(4, "alice@example.org")],
        ),
        (
            "kitchen@conference.example.org".to_string(),
            vec![entry(5, "kitchen@conference.example.org/Alice")],
        ),
        // A batch that cannot be stored refuses only itself.
        (
            "dave@example.org".to_string(),
            vec![entry(8, "bob@example.org"), bad],
        ),
    ];
    let results = s.archive.append_many(&batches).await;
    assert_eq!(results.len(), 5, "one result per archive");
    for (i, r) in results.iter().enumerate().take(4) {
        assert!(r.is_ok(), "archive {i}: {r:?}");
    }
    invalid(results[4].clone());
    let page = s
        .archive
        .query("alice@example.org", &all(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ids(&page),
        names(1..=3),
        "appended after what was there, in order"
    );
    for (owner, n) in [
        ("bob@example.org", 2),
        ("carol@example.net", 4),
        ("kitchen@conference.example.org", 5),
    ] {
        let page = s.archive.query(owner, &all(10)).await.unwrap().unwrap();
        assert_eq!(ids(&page), names(n..=n), "{owner}");
    }
    let dave = s.archive.query("dave@example.org", &all(10)).await.unwrap();
    assert!(
        dave.is_none_or(|p| p.entries.is_empty()),
        "nothing of a refused batch"
    );
    // One archive alone, as a quiet server's writer hands it over.
    let one = s
        .archive
        .append_many(&[(
            "alice@example.org".to_string(),
            vec![entry(4, "bob@example.org")],
        )])
        .await;
    assert!(one[0].is_ok());
    let page = s
        .archive
        .query("alice@example.org", &all(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&page), names(1..=4));
}

pub async fn archive_pages_start_at_an_index(s: Stores) {
    let owner = "alice@example.org";
    filled(&s, owner, 10).await;
    let q = ArchiveQuery { skip: 3, ..all(4) };
    let page = s.archive.query(owner, &q).await.unwrap().unwrap();
    assert_eq!(ids(&page), names(4..=7));
    assert!(!page.complete);
    assert_eq!(page.count, Some(10));
    let past = ArchiveQuery { skip: 10, ..all(4) };
    let page = s.archive.query(owner, &past).await.unwrap().unwrap();
    assert_eq!(page.entries, vec![]);
    assert!(page.complete);
    assert_eq!(page.count, Some(10));
}

pub async fn archive_owners_ids_and_partners_with_awkward_names(s: Stores) {
    // Any text is an id or a `with`; only the stanza must be XML.
    let odd = |i: usize, name: &str| ArchiveEntry {
        id: format!("{name} {i}"),
        with: name.to_owned(),
        ..entry(i as u64, "bob@example.org")
    };
    for (i, name) in awkward_names().iter().enumerate() {
        for owner in [format!("{name}@example.org"), name.clone()] {
            s.archive
                .append(&owner, &odd(i, name))
                .await
                .unwrap_or_else(|e| panic!("{owner:?}: {e}"));
        }
    }
    for (i, name) in awkward_names().iter().enumerate() {
        for owner in [format!("{name}@example.org"), name.clone()] {
            let page = s.archive.query(&owner, &all(5)).await.unwrap().unwrap();
            assert_eq!(page.entries, vec![odd(i, name)], "{owner:?}");
            let q = ArchiveQuery {
                with: Some(name.clone()),
                ids: vec![odd(i, name).id],
                ..all(5)
            };
            let page = s.archive.query(&owner, &q).await.unwrap().unwrap();
            assert_eq!(page.count, Some(1), "{owner:?}");
        }
    }
}

pub async fn service_data_round_trips_opaque_values(s: Stores) {
    let svc = s.service_data.clone();
    assert_eq!(
        svc.get("irc.example.org", "registrations", "a")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        svc.keys("irc.example.org", "registrations").await.unwrap(),
        Vec::<String>::new()
    );
    assert!(!svc
        .remove("irc.example.org", "registrations", "a")
        .await
        .unwrap());
    let binary: Vec<u8> = (0..=255).collect();
    svc.put(
        "irc.example.org",
        "registrations",
        "romeo@montague.lit",
        binary.clone(),
    )
    .await
    .unwrap();
    svc.put(
        "irc.example.org",
        "registrations",
        "juliet@capulet.lit",
        b"<x/>".to_vec(),
    )
    .await
    .unwrap();
    svc.put(
        "irc.example.org",
        "registrations/irc.example.net",
        "romeo@montague.lit",
        b"nested".to_vec(),
    )
    .await
    .unwrap();
    svc.put(
        "users.example.org",
        "registrations",
        "romeo@montague.lit",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(
        svc.get("irc.example.org", "registrations", "romeo@montague.lit")
            .await
            .unwrap(),
        Some(binary)
    );
    assert_eq!(
        svc.keys("irc.example.org", "registrations").await.unwrap(),
        ["juliet@capulet.lit", "romeo@montague.lit"]
    );
    assert_eq!(
        svc.keys("irc.example.org", "registrations/irc.example.net")
            .await
            .unwrap(),
        ["romeo@montague.lit"]
    );
    assert_eq!(
        svc.get("users.example.org", "registrations", "romeo@montague.lit")
            .await
            .unwrap(),
        Some(vec![])
    );
    svc.put(
        "irc.example.org",
        "registrations",
        "romeo@montague.lit",
        b"v2".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(
        svc.get("irc.example.org", "registrations", "romeo@montague.lit")
            .await
            .unwrap(),
        Some(b"v2".to_vec())
    );
    assert!(svc
        .remove("irc.example.org", "registrations", "romeo@montague.lit")
        .await
        .unwrap());
    assert_eq!(
        svc.keys("irc.example.org", "registrations").await.unwrap(),
        ["juliet@capulet.lit"]
    );
    assert_eq!(
        svc.get(
            "irc.example.org",
            "registrations/irc.example.net",
            "romeo@montague.lit"
        )
        .await
        .unwrap(),
        Some(b"nested".to_vec())
    );
    // The scoped view sees its own service only.
    let scoped = super::ServiceStore::new(svc.clone(), "users.example.org");
    assert_eq!(scoped.service(), "users.example.org");
    assert_eq!(
        scoped.keys("registrations").await.unwrap(),
        ["romeo@montague.lit"]
    );
    assert!(!scoped
        .location("registrations", "romeo@montague.lit")
        .is_empty());
}

pub async fn service_data_with_awkward_names_stays_apart(s: Stores) {
    let svc = s.service_data.clone();
    let names = awkward_names();
    for (i, name) in names.iter().enumerate() {
        for collection in [name.clone(), format!("c/{name}")] {
            svc.put("s.example.org", &collection, name, vec![i as u8])
                .await
                .unwrap_or_else(|e| panic!("{collection:?}/{name:?}: {e}"));
        }
        svc.put("s.example.org", "keys", name, vec![i as u8])
            .await
            .unwrap();
        svc.put(name, "c", "k", vec![i as u8]).await.unwrap();
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(svc.keys("s.example.org", "keys").await.unwrap(), sorted);
    for (i, name) in names.iter().enumerate() {
        for collection in [name.clone(), format!("c/{name}")] {
            assert_eq!(
                svc.keys("s.example.org", &collection).await.unwrap(),
                std::slice::from_ref(name),
                "{collection:?}"
            );
            assert_eq!(
                svc.get("s.example.org", &collection, name).await.unwrap(),
                Some(vec![i as u8])
            );
        }
        assert_eq!(svc.get(name, "c", "k").await.unwrap(), Some(vec![i as u8]));
    }
    for name in &names {
        assert!(svc.remove("s.example.org", "keys", name).await.unwrap());
    }
    assert_eq!(
        svc.keys("s.example.org", "keys").await.unwrap(),
        Vec::<String>::new()
    );
}

pub async fn service_data_refuses_empty_names(s: Stores) {
    let svc = s.service_data.clone();
    invalid(svc.put("s", "c", "", vec![]).await);
    for collection in ["", "a//b", "/a", "a/"] {
        invalid(svc.put("s", collection, "k", vec![]).await);
        invalid(svc.get("s", collection, "k").await);
        invalid(svc.keys("s", collection).await);
    }
}

/// A blob's metadata for the tests.
pub fn blob_meta(owner: &str, size: u64) -> crate::store::BlobMeta {
    crate::store::BlobMeta {
        owner: owner.into(),
        name: "photo of the cat.jpg".into(),
        content_type: "image/jpeg".into(),
        size,
        created: 1_700_000_000,
        expires: Some(1_800_000_000),
    }
}

async fn read_blob(s: &Stores, scope: &str, id: &str) -> Option<(crate::store::BlobMeta, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let (meta, mut r) = s.blobs.open(scope, id).await.unwrap()?;
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).await.unwrap();
    Some((meta, bytes))
}

/// A blob written in chunks reads back whole, with its metadata, and is
/// listed and removed by id; scopes do not see each other's blobs.
pub async fn blobs_stream_in_and_out_whole(s: Stores) {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = s
        .blobs
        .create(
            "upload.example.org",
            "a1",
            blob_meta("alice@example.org", data.len() as u64),
        )
        .await
        .unwrap();
    for chunk in data.chunks(65_536) {
        w.write(chunk).await.unwrap();
    }
    // Not visible before the commit.
    assert!(s
        .blobs
        .open("upload.example.org", "a1")
        .await
        .unwrap()
        .is_none());
    w.commit().await.unwrap();
    let (meta, bytes) = read_blob(&s, "upload.example.org", "a1").await.unwrap();
    assert_eq!(meta, blob_meta("alice@example.org", data.len() as u64));
    assert_eq!(bytes, data);
    let listed = s.blobs.list("upload.example.org").await.unwrap();
    assert_eq!(listed, vec![("a1".to_string(), meta)]);
    assert!(s.blobs.list("other.example.org").await.unwrap().is_empty());
    assert!(s
        .blobs
        .open("other.example.org", "a1")
        .await
        .unwrap()
        .is_none());
    assert!(s.blobs.remove("upload.example.org", "a1").await.unwrap());
    assert!(!s.blobs.remove("upload.example.org", "a1").await.unwrap());
    assert!(s
        .blobs
        .open("upload.example.org", "a1")
        .await
        .unwrap()
        .is_none());
}

/// A writer dropped before its commit, or committed short, leaves no blob;
/// writing past the size is refused.
pub async fn blobs_abandoned_or_short_leave_nothing(s: Stores) {
    let mut w = s
        .blobs
        .create("up.example.org", "gone", blob_meta("a@example.org", 10))
        .await
        .unwrap();
    w.write(b"12345").await.unwrap();
    drop(w);
    assert!(s.blobs.list("up.example.org").await.unwrap().is_empty());
    let mut w = s
        .blobs
        .create("up.example.org", "short", blob_meta("a@example.org", 10))
        .await
        .unwrap();
    w.write(b"12345").await.unwrap();
    assert!(matches!(w.commit().await, Err(StoreError::Invalid(_))));
    let mut w = s
        .blobs
        .create("up.example.org", "long", blob_meta("a@example.org", 4))
        .await
        .unwrap();
    assert!(matches!(
        w.write(b"12345").await,
        Err(StoreError::Invalid(_))
    ));
    drop(w);
    assert!(s.blobs.list("up.example.org").await.unwrap().is_empty());
}

/// Ids are plain names; an id in use is refused.
pub async fn blobs_refuse_bad_ids_and_duplicates(s: Stores) {
    for bad in ["", "../x", "a/b", "a.b", &"x".repeat(65)] {
        assert!(
            matches!(
                s.blobs
                    .create("up.example.org", bad, blob_meta("a@example.org", 1))
                    .await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    let mut control = blob_meta("a@example.org", 1);
    control.name = "evil\nname".into();
    assert!(matches!(
        s.blobs.create("up.example.org", "ok", control).await,
        Err(StoreError::Invalid(_))
    ));
    let mut w = s
        .blobs
        .create("up.example.org", "dup", blob_meta("a@example.org", 1))
        .await
        .unwrap();
    w.write(b"x").await.unwrap();
    w.commit().await.unwrap();
    assert!(matches!(
        s.blobs
            .create("up.example.org", "dup", blob_meta("a@example.org", 1))
            .await,
        Err(StoreError::AlreadyExists)
    ));
}

/// Every behaviour, for a backend's tests: `conformance_tests!(expr)`
/// defines one `#[tokio::test]` per function above, each evaluating `expr`
/// to a fresh `(guard, Stores)`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            accounts_create_exists_list_delete,
            accounts_credentials_are_replaced_whole,
            accounts_with_awkward_names_stay_apart,
            account_delete_removes_every_kind,
            roster_round_trips_and_is_replaced,
            roster_refuses_what_it_could_not_read_back,
            account_data_get_put_remove,
            account_data_refuses_reserved_keys_and_foreign_documents,
            host_data_get_put_remove,
            offline_log_appends_lists_and_removes_in_order,
            offline_batches_are_appended_whole_or_not_at_all,
            offline_log_refuses_what_xml_cannot_carry,
            offline_logs_of_distinct_accounts_do_not_wait_for_each_other,
            archive_empty_and_unknown_ids,
            archive_pages_forward_and_backward_without_gaps,
            archive_filters_by_with_time_and_ids,
            archive_replace_keeps_the_place,
            archive_expire_and_remove_owner,
            archive_batches_are_appended_whole_and_in_order,
            archive_appends_to_many_archives_at_once,
            archive_pages_start_at_an_index,
            archive_owners_ids_and_partners_with_awkward_names,
            service_data_round_trips_opaque_values,
            service_data_with_awkward_names_stays_apart,
            service_data_refuses_empty_names,
            blobs_stream_in_and_out_whole,
            blobs_abandoned_or_short_leave_nothing,
            blobs_refuse_bad_ids_and_duplicates,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_guard, stores) = $make;
                $crate::store::conformance::$name(stores).await;
            }
        )*
    };
}
