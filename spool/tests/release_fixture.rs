//! A spool written by the release before the storage interface
//! (`tests/fixtures/release-spool`, made by `make_release_spool.py`: see
//! there for what each piece is) read through the file backend, every
//! piece compared with what the release wrote. Each test works on its own
//! copy, since reading it migrates parts of it.
//!
//! The sealed IRC registrations are opened with the fixture's key by the
//! IRC transport's own tests; here they must come back byte for byte.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use switchboard_spool::store::file::FileStores;
use switchboard_spool::store::{AccountRef, ScramCredential, StoredItem, StoredRoster, Stores};
use switchboard_spool::{FileSpool, Storage};
use switchboard_xml::{ns, parse_document, Element, Limits};

const HOST: &str = "example.org";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-spool")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the release's spool, and the stores over it.
fn release() -> (tempfile::TempDir, PathBuf, Stores) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture().join("spool"), &dir.path().join("spool"));
    let root = dir.path().join("spool");
    let stores = FileStores::open(&root).unwrap();
    (dir, root, stores)
}

fn xml(s: &str) -> Element {
    parse_document(s.as_bytes(), Limits::default()).unwrap()
}

fn account(user: &str) -> AccountRef {
    AccountRef::new(HOST, user)
}

#[tokio::test]
async fn accounts_and_credentials() {
    let (_dir, _root, s) = release();
    let long = "x".repeat(200);
    let mut users = vec![
        "admin",
        "alice",
        "bob",
        "carol",
        "con",
        "dave",
        long.as_str(),
    ];
    users.sort();
    assert_eq!(s.accounts.list(HOST).await.unwrap(), users);
    let b64 = |t: &str| BASE64.decode(t).unwrap();
    assert_eq!(
        s.accounts.credentials(&account("alice")).await.unwrap(),
        Some(vec![
            ScramCredential {
                hash: "SHA-256".into(),
                salt: b64("Okw4wQ+ha5qKHIOuYe1oAQ=="),
                iterations: 4096,
                stored_key: b64("odEraFdat0o4JA6ksn2CylMnnh23zgBHde7wAeKoofI="),
                server_key: b64("gKPp8pAon9clILBoMIpztutdpmCRBXDGut4f2iITVAU="),
            },
            ScramCredential {
                hash: "SHA-1".into(),
                salt: b64("BCDTUI9M/yAowrLCqKEIvA=="),
                iterations: 4096,
                stored_key: b64("sOelfMbFPQlRbebZjyoq4t2Ym1o="),
                server_key: b64("BDMD62XJ0uJMp5Cu+uinkFXHeFs="),
            },
        ])
    );
    for user in &users {
        let creds = s
            .accounts
            .credentials(&account(user))
            .await
            .unwrap()
            .unwrap();
        let hashes: Vec<&str> = creds.iter().map(|c| c.hash.as_str()).collect();
        assert_eq!(hashes, ["SHA-256", "SHA-1"], "{user}");
    }
    assert!(s.accounts.exists(&account("con")).await.unwrap());
    assert!(!s.accounts.exists(&account("eve")).await.unwrap());
}

fn item(jid: &str, subscription: &str) -> StoredItem {
    StoredItem {
        jid: jid.into(),
        name: None,
        subscription: subscription.into(),
        ask: false,
        approved: false,
        added: false,
        groups: vec![],
    }
}

#[tokio::test]
async fn rosters_with_groups_and_pending_subscriptions() {
    let (_dir, _root, s) = release();
    let alice = StoredRoster {
        ver: 8,
        items: vec![
            StoredItem {
                name: Some("Bob".into()),
                added: true,
                groups: vec!["Friends".into(), "Work".into()],
                ..item("bob@example.org", "both")
            },
            StoredItem {
                name: Some("Dave <the> & 'dev'".into()),
                ask: true,
                added: true,
                groups: vec!["Ops".into()],
                ..item("dave@example.org", "none")
            },
        ],
        pending: vec![(
            "carol@example.org".into(),
            xml("<presence xmlns=\"jabber:client\" type=\"subscribe\" from=\"carol@example.org\" id=\"6d2c4cacde9e4734a3dd656ec5a6174d\"><status>It's Carol from accounting</status></presence>"),
        )],
    };
    assert_eq!(
        s.rosters.load(&account("alice")).await.unwrap(),
        Some(alice)
    );
    assert_eq!(
        s.rosters.load(&account("bob")).await.unwrap(),
        Some(StoredRoster {
            ver: 4,
            items: vec![item("alice@example.org", "both")],
            pending: vec![],
        })
    );
    assert_eq!(
        s.rosters.load(&account("carol")).await.unwrap(),
        Some(StoredRoster {
            ver: 1,
            items: vec![StoredItem {
                ask: true,
                ..item("alice@example.org", "none")
            }],
            pending: vec![],
        })
    );
    assert_eq!(
        s.rosters.load(&account("dave")).await.unwrap(),
        Some(StoredRoster {
            ver: 1,
            items: vec![],
            pending: vec![(
                "alice@example.org".into(),
                xml("<presence xmlns=\"jabber:client\" type=\"subscribe\" from=\"alice@example.org\" id=\"09f01fd5dc844a2a88dc7979946c326b\"/>"),
            )],
        })
    );
    assert_eq!(
        s.rosters.load(&account("admin")).await.unwrap(),
        Some(StoredRoster::default())
    );
}

#[tokio::test]
async fn account_data_and_the_message_of_the_day() {
    let (_dir, _root, s) = release();
    let a = account("alice");
    let get = |key: &'static str| {
        let s = s.clone();
        let a = a.clone();
        async move { s.account_data.get(&a, key).await.unwrap() }
    };
    assert_eq!(
        get("vcard").await,
        Some(xml("<vcard xmlns=\"urn:switchboard:spool:1\"><vCard xmlns=\"vcard-temp\"><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME></vCard></vcard>"))
    );
    assert_eq!(
        get("private").await,
        Some(xml("<private xmlns=\"urn:switchboard:spool:1\"><storage xmlns=\"storage:bookmarks\"><conference jid=\"room@conference.example.org\" autojoin=\"true\" name=\"Room\"><nick>al</nick></conference></storage></private>"))
    );
    assert_eq!(
        get("last").await,
        Some(xml("<last xmlns=\"urn:switchboard:spool:1\" seconds-since-epoch=\"1796647822\" status=\"Gone fishing\"/>"))
    );
    assert_eq!(
        get("motd-seen").await,
        Some(xml(
            "<motd-seen xmlns=\"urn:switchboard:spool:1\" series=\"1\"/>"
        ))
    );
    assert_eq!(
        s.account_data
            .get(&account("dave"), "motd-seen")
            .await
            .unwrap(),
        None,
        "dave never logged in"
    );
    assert_eq!(
        s.host_data.get(HOST, "motd").await.unwrap(),
        Some(xml("<motd xmlns=\"urn:switchboard:spool:1\" last-series=\"1\"><current series=\"1\" set=\"1796647821\" updated=\"1796647821\"><body xmlns=\"jabber:client\">The server restarts on Sunday at 06:00 UTC.</body><subject xmlns=\"jabber:client\">Maintenance</subject></current></motd>"))
    );
}

#[tokio::test]
async fn offline_messages_move_into_logs_and_stay_readable_by_the_release_format() {
    let (_dir, root, s) = release();
    let dave = s.offline.list(&account("dave")).await.unwrap();
    let stanzas: Vec<Element> = dave.iter().map(|m| m.stanza.clone()).collect();
    assert_eq!(
        stanzas,
        [
            xml("<message xmlns=\"jabber:client\" type=\"chat\" to=\"dave@example.org\" id=\"7789630898a5415c9b17438e7ffbb423\" xml:lang=\"en\" from=\"bob@example.org/fixture\"><body>first ✓ &lt;b&gt; &amp; 'quotes'</body><delay xmlns=\"urn:xmpp:delay\" from=\"example.org\" stamp=\"2026-12-07T12:50:22Z\"/></message>"),
            xml("<message xmlns=\"jabber:client\" type=\"normal\" to=\"dave@example.org\" id=\"cd16fc520c824a4b82ee070b3427e0b7\" xml:lang=\"en\" from=\"bob@example.org/fixture\"><body>second\nwith a line break</body><subject>Plans</subject><delay xmlns=\"urn:xmpp:delay\" from=\"example.org\" stamp=\"2026-12-07T12:50:22Z\"/></message>"),
        ]
    );
    let alice = s.offline.usage(&account("alice")).await.unwrap();
    assert_eq!(alice.messages, 1);
    let listed = s.offline.list(&account("alice")).await.unwrap();
    assert_eq!(
        listed[0]
            .stanza
            .get_child("body", ns::CLIENT)
            .unwrap()
            .text(),
        "while you were out"
    );
    assert_eq!(alice.bytes, listed[0].stanza.to_bytes(None).len());
    // Moved: the documents no longer hold them, the logs do, and the rest
    // of each document is untouched (the older synchronous path reads it).
    let spool = FileSpool::open(&root).unwrap();
    for user in ["alice", "dave"] {
        let rec = spool.load_user(HOST, user).unwrap().unwrap();
        assert!(
            !rec.extra.iter().any(|e| e.is("offline", ns::SPOOL)),
            "{user}"
        );
        assert!(
            rec.extra.iter().any(|e| e.is("roster", ns::SPOOL)),
            "{user}"
        );
        assert!(root.join(HOST).join(format!("{user}.offline")).exists());
    }
    // What another process sees afterwards.
    let again = FileStores::open(&root).unwrap();
    assert_eq!(again.offline.list(&account("dave")).await.unwrap(), dave);
}

#[tokio::test]
async fn service_files_come_back_byte_for_byte() {
    let (_dir, root, s) = release();
    let original = |p: &str| std::fs::read(fixture().join("spool").join(p)).unwrap();
    let svc = &s.service_data;
    assert_eq!(
        svc.keys("users.example.org", "entries").await.unwrap(),
        ["alice@example.org", "bob@example.org"]
    );
    for who in ["alice", "bob"] {
        assert_eq!(
            svc.get(
                "users.example.org",
                "entries",
                &format!("{who}@example.org")
            )
            .await
            .unwrap(),
            Some(original(&format!(
                "users.example.org/{who}%40example.org.xml"
            )))
        );
    }
    assert_eq!(
        svc.keys("irc.example.org", "registrations/127.0.0.1")
            .await
            .unwrap(),
        ["alice@example.org"]
    );
    assert_eq!(
        svc.get(
            "irc.example.org",
            "registrations/127.0.0.1",
            "alice@example.org"
        )
        .await
        .unwrap(),
        Some(original(
            "irc.example.org/registrations/127.0.0.1/alice%40example.org.xml"
        ))
    );
    assert_eq!(
        svc.keys("irc.example.org", "registrations/::1")
            .await
            .unwrap(),
        ["bob@example.org"]
    );
    assert_eq!(
        svc.get("irc.example.org", "registrations/::1", "bob@example.org")
            .await
            .unwrap(),
        Some(original(
            "irc.example.org/registrations/::1/bob%40example.org.xml"
        ))
    );
    // The 127.0.0.1 directory was already where its name leads; the IPv6
    // one and the listings moved.
    assert!(root
        .join("irc.example.org/registrations/127.0.0.1")
        .is_dir());
    assert!(root.join("irc.example.org/registrations/%3A%3A1").is_dir());
    assert!(root.join("users.example.org/entries").is_dir());
}
