//! A spool copied into PostgreSQL and back holds what it held: every kind
//! of record, names that are awkward as file names included.

use switchboard_spool::store::conformance::{
    awkward_names, blob_meta, entry, message, sample_roster,
};
use switchboard_spool::store::copy::{copy_all, snapshot, Inventory};
use switchboard_spool::store::file::FileStores;
use switchboard_spool::store::{AccountRef, ArchiveEntry, ScramCredential, Stores};
use switchboard_store_postgres::scratch::ScratchCluster;
use switchboard_store_postgres::PgStores;
use switchboard_xml::{ns, Element};

fn cred(fill: u8) -> ScramCredential {
    ScramCredential {
        hash: "SHA-256".into(),
        salt: vec![fill; 16],
        iterations: 4096,
        stored_key: vec![fill ^ 1; 32],
        server_key: vec![fill ^ 2; 32],
    }
}

/// A spool with some of everything.
async fn fill(s: &Stores) {
    let host = "example.org";
    // Names as the file backend can name them back (one too long for a
    // file name is kept as a digest, and only an account's document
    // says what it was).
    let short: Vec<String> = awkward_names()
        .into_iter()
        .filter(|n| n.len() < 100)
        .collect();
    for (i, user) in awkward_names().iter().enumerate() {
        let a = AccountRef::new(host, user.clone());
        s.accounts.create(&a, vec![cred(i as u8)]).await.unwrap();
        s.rosters.save(&a, &sample_roster()).await.unwrap();
        let vcard = Element::new("vcard", ns::SPOOL)
            .with_child(Element::new("FN", "vcard-temp").with_text(format!("{user:?}")));
        s.account_data.put(&a, vcard).await.unwrap();
        s.account_data
            .put(
                &a,
                Element::new("last", ns::SPOOL).with_attr("seconds-since-epoch", "1700000000"),
            )
            .await
            .unwrap();
        let waiting: Vec<Element> = (0..3)
            .map(|n| message("bob@example.org/phone", &format!("{user:?} {n}")))
            .collect();
        s.offline.append_batch(&a, &waiting).await.unwrap();
    }
    // An account with nothing but credentials, on another host.
    s.accounts
        .create(&AccountRef::new("other.org", "carol"), vec![])
        .await
        .unwrap();
    let motd = Element::new("motd", ns::SPOOL)
        .with_child(Element::new("body", ns::CLIENT).with_text("Sunday <06:00>"));
    s.host_data.put(host, motd).await.unwrap();
    s.host_data
        .put("quiet.org", Element::new("motd", ns::SPOOL))
        .await
        .unwrap();
    for owner in [
        "alice@example.org",
        "example.org",
        "room@conference.example.org",
    ] {
        let entries: Vec<_> = (1..=30)
            .map(|n| entry(n, "bob@example.org/phone"))
            .collect();
        s.archive.append_batch(owner, &entries).await.unwrap();
    }
    for name in &short {
        s.archive
            .append(
                &format!("{name}@conference.example.org"),
                &ArchiveEntry {
                    id: format!("{name} 1"),
                    with: name.clone(),
                    ..entry(1, "bob@example.org")
                },
            )
            .await
            .unwrap();
        s.service_data
            .put(
                "irc.example.org",
                &format!("registrations/{name}"),
                name,
                vec![1, 2, 3],
            )
            .await
            .unwrap();
        s.service_data
            .put(
                "users.example.org",
                "entries",
                name,
                name.as_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
    s.service_data
        .put(
            "irc.example.org",
            "registrations",
            "romeo@montague.lit",
            (0..=255).collect(),
        )
        .await
        .unwrap();
    for (id, size) in [("a1", 300_000u64), ("b2", 0), ("c3", 17)] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut w = s
            .blobs
            .create(
                "upload.example.org",
                id,
                blob_meta("alice@example.org", size),
            )
            .await
            .unwrap();
        w.write(&data).await.unwrap();
        w.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_copied_to_postgres_and_back_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let spool = FileStores::open_backend(dir.path().join("spool")).unwrap();
    fill(&spool.stores()).await;
    let before = snapshot(&spool.stores(), &spool).await.unwrap();
    assert_eq!(before.accounts.len(), awkward_names().len() + 1);
    assert_eq!(before.blobs.len(), 3);
    assert!(spool.listing().await.unwrap().unnamed.is_empty());

    let pg = PgStores::open(&ScratchCluster::shared().database(), 4)
        .await
        .unwrap();
    let there = copy_all(&spool.stores(), &spool, &pg.stores())
        .await
        .unwrap();
    assert_eq!(there.accounts, awkward_names().len() + 1);
    assert_eq!(there.offline_messages, 3 * awkward_names().len());
    assert_eq!(there.blobs, 3);
    assert!(there.unnamed.is_empty());
    assert_eq!(snapshot(&pg.stores(), &pg).await.unwrap(), before);

    let back = FileStores::open_backend(dir.path().join("back")).unwrap();
    let copied = copy_all(&pg.stores(), &pg, &back.stores()).await.unwrap();
    assert_eq!(copied, there);
    assert_eq!(snapshot(&back.stores(), &back).await.unwrap(), before);

    // Into a destination that has the accounts already: refused.
    let again = copy_all(&spool.stores(), &spool, &pg.stores()).await;
    assert!(again.is_err(), "{again:?}");
}
