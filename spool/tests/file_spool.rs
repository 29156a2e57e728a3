//! The file spool on a real file system, in temporary directories.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_spool::filename::encode_name;
use switchboard_spool::lock::FileLock;
use switchboard_spool::{FileSpool, ScramCredential, SpoolError, Storage, UserRecord};
use switchboard_xml::{ns, Element};

const HOST: &str = "example.com";

fn cred(hash: &str, iterations: u32) -> ScramCredential {
    ScramCredential {
        hash: hash.into(),
        salt: b"0123456789abcdef".to_vec(),
        iterations,
        stored_key: (0..32).collect(),
        server_key: (100..132).collect(),
    }
}

fn sample() -> UserRecord {
    UserRecord {
        credentials: vec![cred("SHA-1", 4096), cred("SHA-256", 4096)],
        extra: vec![
            Element::new("query", "jabber:iq:roster").with_child(
                Element::new("item", "jabber:iq:roster")
                    .with_attr("jid", "bob@example.com")
                    .with_attr("name", "Bob <&> 'the' \"builder\"")
                    .with_child(
                        Element::new("group", "jabber:iq:roster").with_text("Friends & Co"),
                    ),
            ),
            Element::new("vCard", "vcard-temp").with_child(
                Element::new("FN", "vcard-temp").with_text("Alice Ä. Liddell\n  line two"),
            ),
            Element::new("message", "jabber:client")
                .with_attr("from", "carol@example.com")
                .with_attr("xml:lang", "de")
                .with_child(Element::new("body", "jabber:client").with_text("hallo <world>")),
        ],
    }
}

fn spool() -> (tempfile::TempDir, FileSpool) {
    let dir = tempfile::tempdir().unwrap();
    let spool = FileSpool::open(dir.path().join("spool")).unwrap();
    (dir, spool)
}

/// Every file and directory under `dir`, relative to it.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().to_owned());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp."))
        .collect()
}

#[test]
fn round_trip() {
    let (_dir, spool) = spool();
    assert_eq!(spool.load_user(HOST, "alice").unwrap(), None);
    assert!(!spool.user_exists(HOST, "alice").unwrap());
    spool.create_user(HOST, "alice", &sample()).unwrap();
    assert!(spool.user_exists(HOST, "alice").unwrap());
    assert_eq!(spool.load_user(HOST, "alice").unwrap(), Some(sample()));
    assert_eq!(spool.list_users(HOST).unwrap(), ["alice"]);

    let path = spool.root().join("example.com").join("alice.xml");
    assert_eq!(spool.user_path(HOST, "alice"), path);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("<?xml version='1.0' encoding='UTF-8'?>\n<user xmlns=\"urn:switchboard:spool:1\" name=\"alice\">\n  <scram hash=\"SHA-1\""), "{text}");
    // Only keys are stored, never anything password-like.
    assert!(!text.contains("password"));

    // An empty record round-trips too.
    spool
        .create_user(HOST, "empty", &UserRecord::default())
        .unwrap();
    assert_eq!(
        spool.load_user(HOST, "empty").unwrap(),
        Some(UserRecord::default())
    );
}

#[test]
fn update_changes_and_keeps_extra_in_order() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    spool
        .update_user(HOST, "alice", &mut |r| {
            r.credentials.retain(|c| c.hash != "SHA-1");
            r.credentials[0].iterations = 10_000;
            r.extra
                .push(Element::new("note", "urn:test").with_text("x"));
        })
        .unwrap();
    let got = spool.load_user(HOST, "alice").unwrap().unwrap();
    assert_eq!(got.credentials, [cred("SHA-256", 10_000)]);
    let mut want = sample().extra;
    want.push(Element::new("note", "urn:test").with_text("x"));
    assert_eq!(got.extra, want);
}

#[test]
fn create_twice_is_already_exists() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let before = std::fs::read(spool.user_path(HOST, "alice")).unwrap();
    let err = spool
        .create_user(HOST, "alice", &UserRecord::default())
        .unwrap_err();
    assert!(matches!(err, SpoolError::AlreadyExists), "{err:?}");
    assert_eq!(
        std::fs::read(spool.user_path(HOST, "alice")).unwrap(),
        before
    );
}

#[test]
fn update_nonexistent_is_not_found() {
    let (_dir, spool) = spool();
    let mut called = false;
    // No host directory at all, which must not be created by the attempt.
    let err = spool
        .update_user(HOST, "ghost", &mut |_| called = true)
        .unwrap_err();
    assert!(matches!(err, SpoolError::NotFound), "{err:?}");
    assert!(!spool.host_dir(HOST).exists());
    // A host directory without that account.
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let err = spool
        .update_user(HOST, "ghost", &mut |_| called = true)
        .unwrap_err();
    assert!(matches!(err, SpoolError::NotFound), "{err:?}");
    assert!(!called);
    assert!(!spool.user_exists(HOST, "ghost").unwrap());
}

#[test]
fn delete_removes_file_and_lock() {
    let (_dir, spool) = spool();
    assert!(!spool.delete_user(HOST, "alice").unwrap());
    spool.create_user(HOST, "alice", &sample()).unwrap();
    spool
        .update_user(HOST, "alice", &mut |r| r.extra.clear())
        .unwrap();
    assert!(spool.delete_user(HOST, "alice").unwrap());
    assert!(!spool.user_exists(HOST, "alice").unwrap());
    assert_eq!(spool.load_user(HOST, "alice").unwrap(), None);
    assert!(!spool.delete_user(HOST, "alice").unwrap());
    assert_eq!(spool.list_users(HOST).unwrap(), Vec::<String>::new());
    assert_eq!(walk(&spool.host_dir(HOST)), [PathBuf::from(".locks")]);
    // The name is free again.
    spool
        .create_user(HOST, "alice", &UserRecord::default())
        .unwrap();
}

fn assert_corrupt(err: SpoolError, path: &Path, lines: RangeInclusive<u32>) -> (u32, String) {
    match err {
        SpoolError::Corrupt {
            path: p,
            line,
            col,
            message,
        } => {
            assert_eq!(p, path);
            assert!(
                lines.contains(&line),
                "line {line} not in {lines:?}: {message}"
            );
            assert!(col >= 1, "{message}");
            (col, message)
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corrupt_files_are_refused_and_never_overwritten() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let path = spool.user_path(HOST, "alice");
    let cases: &[(&str, RangeInclusive<u32>)] = &[
        // Not well-formed: truncated inside a tag; reported where the
        // tag starts or at the end.
        ("<?xml version='1.0'?>\n<user xmlns='urn:switchboard:spool:1' name='alice'>\n  <scram hash='SHA-1'", 2..=3),
        // Mismatched tags.
        ("<user xmlns='urn:switchboard:spool:1'>\n\n  <a></b>\n</user>", 3..=3),
        // The wrong root namespace.
        ("\n<user xmlns='jabber:client' name='alice'/>", 2..=2),
        // A bad base64 key, reported at the <scram/> element.
        ("<user xmlns='urn:switchboard:spool:1' name='alice'>\n\n\n  <scram hash='SHA-1' iterations='4096' salt='c2FsdA==' stored-key='***' server-key='AA=='/>\n</user>", 4..=4),
        // A bad iteration count.
        ("<user xmlns='urn:switchboard:spool:1' name='alice'>\n  <scram hash='SHA-1' iterations='lots' salt='c2FsdA==' stored-key='AA==' server-key='AA=='/>\n</user>", 2..=2),
        // Empty file.
        ("", 1..=1),
        // A NUL character, which XML forbids.
        ("<user xmlns='urn:switchboard:spool:1' name='\u{0}'/>", 1..=1),
    ];
    for (content, line) in cases.iter().cloned() {
        std::fs::write(&path, content).unwrap();
        let (_, message) = assert_corrupt(
            spool.load_user(HOST, "alice").unwrap_err(),
            &path,
            line.clone(),
        );

        let mut called = false;
        let err = spool.update_user(HOST, "alice", &mut |r| {
            called = true;
            r.extra.clear();
        });
        assert_corrupt(err.unwrap_err(), &path, line.clone());
        assert!(!called, "the closure ran on a corrupt record ({message})");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            content,
            "overwritten after: {message}"
        );
        // It still counts as existing, so the name cannot be re-registered
        // over the damaged account.
        assert!(spool.user_exists(HOST, "alice").unwrap());
        assert!(matches!(
            spool.create_user(HOST, "alice", &UserRecord::default()),
            Err(SpoolError::AlreadyExists)
        ));
    }
    assert!(temp_files(spool.root()).is_empty());
}

#[test]
fn corrupt_error_displays_position() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let path = spool.user_path(HOST, "alice");
    std::fs::write(
        &path,
        "<user xmlns='urn:switchboard:spool:1'>\n  <x>\n</user>",
    )
    .unwrap();
    let err = spool.load_user(HOST, "alice").unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}:", path.display())),
        "{shown}"
    );
}

#[test]
fn invalid_bytes_are_corrupt() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let path = spool.user_path(HOST, "alice");
    std::fs::write(
        &path,
        b"<user xmlns='urn:switchboard:spool:1' name='al\xffice'/>",
    )
    .unwrap();
    assert!(matches!(
        spool.load_user(HOST, "alice"),
        Err(SpoolError::Corrupt { .. })
    ));
}

#[test]
fn file_of_another_account_is_refused() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "bob", &sample()).unwrap();
    std::fs::copy(spool.user_path(HOST, "bob"), spool.user_path(HOST, "alice")).unwrap();
    let err = spool.load_user(HOST, "alice").unwrap_err();
    let (_, message) = assert_corrupt(err, &spool.user_path(HOST, "alice"), 2..=2);
    assert!(message.contains("bob"), "{message}");
}

#[test]
fn hand_edit_is_picked_up_on_next_load() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    assert_eq!(spool.load_user(HOST, "alice").unwrap(), Some(sample()));
    let path = spool.user_path(HOST, "alice");
    // A hand-written file: different quoting, comments, no name= at all.
    std::fs::write(
        &path,
        "<?xml version=\"1.0\"?>\n<!-- edited by the admin -->\n<user xmlns=\"urn:switchboard:spool:1\">\n\
         <scram hash='SHA-256' iterations='9999' salt='AAEC' stored-key='AAEC' server-key='AAEC'/>\n\
         <foo xmlns='urn:x'>bar</foo>\n</user>\n",
    )
    .unwrap();
    let got = spool.load_user(HOST, "alice").unwrap().unwrap();
    assert_eq!(got.credentials.len(), 1);
    assert_eq!(got.credential("SHA-256").unwrap().iterations, 9999);
    assert_eq!(got.credential("SHA-256").unwrap().salt, [0, 1, 2]);
    assert_eq!(got.extra, [Element::new("foo", "urn:x").with_text("bar")]);
    // And updates start from the edited content.
    spool
        .update_user(HOST, "alice", &mut |r| r.credentials[0].iterations += 1)
        .unwrap();
    let got = spool.load_user(HOST, "alice").unwrap().unwrap();
    assert_eq!(got.credential("SHA-256").unwrap().iterations, 10_000);
    assert_eq!(got.extra, [Element::new("foo", "urn:x").with_text("bar")]);
}

#[test]
fn dangerous_names_stay_inside_the_host_dir_and_round_trip() {
    let (_dir, spool) = spool();
    let long = "l".repeat(1000);
    let long_other = format!("{}m", "l".repeat(999));
    let names: Vec<String> = [
        "..",
        ".",
        "...",
        ".hidden",
        "con",
        "CON",
        "Con",
        "nul",
        "com1",
        "lpt9.txt",
        "aux.",
        "a/b",
        "../../etc/passwd",
        "a\\b",
        "a\0b",
        "\0",
        "Ä",
        "ä",
        "%41",
        "A",
        "a",
        "%",
        "%25",
        "~",
        "x~0000",
        "a.xml",
        "a.tmp.1.2",
        ".a.tmp.1.2",
        "a b",
        "a\nb",
        "trailing ",
        "日本語",
        "\u{FFFF}",
        "\u{1F600}",
        &long,
        &long_other,
        "",
        "-rf",
        ".locks",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    for hosts in ["example.com", "..", "Evil/Host", "con"] {
        for (i, name) in names.iter().enumerate() {
            let mut rec = UserRecord::default();
            rec.extra
                .push(Element::new("i", "urn:test").with_text(i.to_string()));
            spool
                .create_user(hosts, name, &rec)
                .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        }
        let host_dir = spool.host_dir(hosts);
        assert_eq!(host_dir.parent(), Some(spool.root()), "{hosts:?}");
        for (i, name) in names.iter().enumerate() {
            let path = spool.user_path(hosts, name);
            // Strictly inside: exactly one path component below the host
            // directory, and not a dot entry.
            assert_eq!(path.parent(), Some(host_dir.as_path()), "{name:?}");
            let file = path.file_name().unwrap().to_str().unwrap();
            assert!(
                !file.starts_with('.') && file.len() <= 160,
                "{name:?} -> {file}"
            );
            let rec = spool.load_user(hosts, name).unwrap().unwrap();
            assert_eq!(rec.extra[0].text(), i.to_string(), "{name:?}");
        }
        let want: BTreeSet<String> = names.iter().cloned().collect();
        let listed = spool.list_users(hosts).unwrap();
        assert_eq!(listed.len(), names.len(), "{listed:?}");
        assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), want);
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
    }
    // Nothing escaped the spool root, and no two names shared a file, even
    // ignoring case.
    for rel in walk(spool.root()) {
        assert!(!rel.components().any(|c| c.as_os_str() == ".."), "{rel:?}");
    }
    let files: Vec<_> = walk(spool.root())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .map(|p| p.to_string_lossy().to_lowercase())
        .collect();
    assert_eq!(files.len(), 4 * names.len());
    assert_eq!(files.iter().collect::<BTreeSet<_>>().len(), files.len());
    assert!(spool.root().join("example.com").is_dir());
    assert!(spool.root().join("%2E%2E").is_dir());
    assert!(!spool.root().parent().unwrap().join("etc").exists());
    for name in &names {
        assert!(spool.delete_user(HOST, name).unwrap(), "{name:?}");
    }
    assert_eq!(spool.list_users(HOST).unwrap(), Vec::<String>::new());
}

#[test]
fn list_ignores_temp_and_foreign_files() {
    let (_dir, spool) = spool();
    assert_eq!(
        spool.list_users("nowhere.example").unwrap(),
        Vec::<String>::new()
    );
    spool.create_user(HOST, "bob", &sample()).unwrap();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let dir = spool.host_dir(HOST);
    for junk in [
        ".alice.tmp.1.2",
        "Carol.xml",
        "readme.txt",
        "%zz.xml",
        "x%2fy.xml",
        ".hidden.xml",
    ] {
        std::fs::write(dir.join(junk), "junk").unwrap();
    }
    std::fs::create_dir(dir.join("dir.xml")).unwrap();
    assert_eq!(spool.list_users(HOST).unwrap(), ["alice", "bob"]);
}

#[test]
fn hashed_name_is_listed_from_the_document() {
    let (_dir, spool) = spool();
    let long = "Ä".repeat(300);
    spool.create_user(HOST, &long, &sample()).unwrap();
    let file = spool.user_path(HOST, &long);
    assert!(file.file_name().unwrap().to_str().unwrap().contains('~'));
    assert_eq!(spool.list_users(HOST).unwrap(), [long.as_str()]);
    // A hashed file whose document names another account is not listed
    // under that name.
    let other = spool
        .host_dir(HOST)
        .join(format!("{}.xml", encode_name(&"q".repeat(400))));
    std::fs::copy(&file, &other).unwrap();
    assert_eq!(spool.list_users(HOST).unwrap(), [long]);
}

#[test]
fn unreadable_records_are_refused_before_writing() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let before = std::fs::read(spool.user_path(HOST, "alice")).unwrap();
    let bad_updates: [fn(&mut UserRecord); 4] = [
        // XML cannot carry a NUL character, even escaped.
        |r| {
            r.extra
                .push(Element::new("x", "urn:test").with_text("a\0b"))
        },
        // Zero iterations would not read back.
        |r| r.credentials[0].iterations = 0,
        // Two credentials for one hash are ambiguous.
        |r| r.credentials.push(cred("SHA-1", 1)),
        // An extra element posing as a credential.
        |r| r.extra.push(Element::new("scram", ns::SPOOL)),
    ];
    for bad in bad_updates {
        let err = spool
            .update_user(HOST, "alice", &mut |r| bad(r))
            .unwrap_err();
        match err {
            SpoolError::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{source}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            std::fs::read(spool.user_path(HOST, "alice")).unwrap(),
            before
        );
    }
    let mut rec = sample();
    rec.credentials[0].iterations = 0;
    assert!(spool.create_user(HOST, "bob", &rec).is_err());
    assert!(!spool.user_exists(HOST, "bob").unwrap());
    assert!(temp_files(spool.root()).is_empty());
}

#[test]
fn modes_and_no_temp_files_left() {
    let (dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    for _ in 0..3 {
        spool
            .update_user(HOST, "alice", &mut |r| r.credentials[0].iterations += 1)
            .unwrap();
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&spool.user_path(HOST, "alice")), 0o600);
    assert_eq!(mode(&dir.path().join("spool")), 0o700);
    assert_eq!(mode(&spool.host_dir(HOST)), 0o700);
    assert_eq!(mode(&spool.host_dir(HOST).join(".locks")), 0o700);
    assert_eq!(mode(&spool.host_dir(HOST).join(".locks/alice.lock")), 0o600);
    assert!(temp_files(spool.root()).is_empty());
    assert_eq!(
        walk(&spool.host_dir(HOST)),
        [
            PathBuf::from(".locks"),
            PathBuf::from(".locks/alice.lock"),
            PathBuf::from("alice.xml")
        ]
    );
}

#[test]
fn open_removes_stale_temp_files_but_not_live_ones() {
    let (dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    spool.create_user(HOST, "bob", &sample()).unwrap();
    let host = spool.host_dir(HOST);
    // A crash's leftover for alice, and a write in progress for bob (whose
    // lock someone holds).
    std::fs::write(host.join(".alice.tmp.999999.7"), "<user").unwrap();
    std::fs::write(host.join(".bob.tmp.999999.8"), "<user").unwrap();
    let held = FileLock::acquire(&host.join(".locks/bob.lock")).unwrap();
    let reopened = FileSpool::open(dir.path().join("spool")).unwrap();
    assert_eq!(
        temp_files(reopened.root()),
        [PathBuf::from("example.com/.bob.tmp.999999.8")]
    );
    drop(held);
    FileSpool::open(dir.path().join("spool")).unwrap();
    assert!(temp_files(spool.root()).is_empty());
    assert_eq!(reopened.load_user(HOST, "alice").unwrap(), Some(sample()));
}

fn counter(r: &UserRecord) -> u64 {
    r.extra
        .iter()
        .find(|e| e.is("counter", "urn:test"))
        .map_or(0, |e| e.text().parse().unwrap())
}

fn increment(spool: &dyn Storage, user: &str) {
    spool
        .update_user(HOST, user, &mut |r| {
            let n = counter(r) + 1;
            r.extra.retain(|e| !e.is("counter", "urn:test"));
            r.extra
                .push(Element::new("counter", "urn:test").with_text(n.to_string()));
        })
        .unwrap();
}

#[test]
fn concurrent_updates_lose_nothing() {
    let (dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    // Two independent instances, as two processes would have: nothing is
    // shared between them but the file system.
    let other = Arc::new(FileSpool::open(dir.path().join("spool")).unwrap());
    let spool = Arc::new(spool);
    const THREADS: usize = 8;
    const ROUNDS: usize = 25;
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let s = if i % 2 == 0 {
                spool.clone()
            } else {
                other.clone()
            };
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    increment(&*s, "alice");
                    // Readers never see a torn file.
                    s.load_user(HOST, "alice").unwrap().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let rec = spool.load_user(HOST, "alice").unwrap().unwrap();
    assert_eq!(counter(&rec), (THREADS * ROUNDS) as u64);
    assert_eq!(rec.credentials, sample().credentials);
    assert!(temp_files(spool.root()).is_empty());
}

#[test]
fn concurrent_creates_admit_exactly_one() {
    let (dir, _spool) = spool();
    let root = dir.path().join("spool");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let spool = FileSpool::open(root).unwrap();
                let mut rec = UserRecord::default();
                rec.extra
                    .push(Element::new("winner", "urn:test").with_text(i.to_string()));
                spool.create_user("new.example", "alice", &rec).is_ok()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&w| w)
        .count();
    assert_eq!(wins, 1);
}

/// The environment variable that turns a run of this test binary into a
/// child worker for the cross-process tests.
const CHILD_ENV: &str = "SWITCHBOARD_SPOOL_TEST_CHILD";

/// Does nothing in a normal run. Started as a child by the tests below,
/// either increments the counter or holds the account's lock until told to
/// let go.
#[test]
fn child_process_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, root) = spec.split_once(':').unwrap();
    let spool = FileSpool::open(root).unwrap();
    match mode {
        "increment" => {
            for _ in 0..CHILD_ROUNDS {
                increment(&spool, "alice");
            }
        }
        "hold" => {
            let host = spool.host_dir(HOST);
            let _lock = FileLock::acquire(&host.join(".locks/alice.lock")).unwrap();
            std::fs::write(host.join("holding"), "").unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !host.join("release").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

const CHILD_ROUNDS: usize = 30;

fn spawn_child(mode: &str, root: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_worker",
            "--exact",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", root.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn updates_from_other_processes_are_serialized() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| spawn_child("increment", spool.root()))
        .collect();
    let spool = Arc::new(spool);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let s = spool.clone();
            std::thread::spawn(move || {
                for _ in 0..CHILD_ROUNDS {
                    increment(&*s, "alice");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let rec = spool.load_user(HOST, "alice").unwrap().unwrap();
    assert_eq!(counter(&rec), 4 * CHILD_ROUNDS as u64);
}

#[test]
fn a_lock_held_by_another_process_blocks_writers() {
    let (_dir, spool) = spool();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    let host = spool.host_dir(HOST);
    let mut child = spawn_child("hold", spool.root());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !host.join("holding").exists() {
        assert!(Instant::now() < deadline, "the child never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(FileLock::try_acquire(&host.join(".locks/alice.lock"))
        .unwrap()
        .is_none());

    // An update started now waits for the child.
    let spool = Arc::new(spool);
    let writer = {
        let s = spool.clone();
        std::thread::spawn(move || {
            increment(&*s, "alice");
            Instant::now()
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        counter(&spool.load_user(HOST, "alice").unwrap().unwrap()),
        0
    );
    let released = Instant::now();
    std::fs::write(host.join("release"), "").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(writer.join().unwrap() >= released);
    assert_eq!(
        counter(&spool.load_user(HOST, "alice").unwrap().unwrap()),
        1
    );
}

#[test]
fn host_data_round_trips_survives_reopening_and_is_no_account() {
    let (dir, spool) = spool();
    assert!(spool.load_host(HOST).unwrap().is_empty());
    let motd = Element::new("motd", ns::SPOOL)
        .with_attr("series", "1")
        .with_child(Element::new("body", "jabber:client").with_text("Back <soon> & ok"));
    // The host directory does not exist yet: the host file creates it.
    spool
        .update_host(HOST, &mut |d| d.push(motd.clone()))
        .unwrap();
    let path = spool.host_data_path(HOST);
    assert_eq!(path, spool.root().join("example.com").join("+host.xml"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(spool.load_host(HOST).unwrap(), std::slice::from_ref(&motd));

    // Durable and independent of the process that wrote it.
    let again = FileSpool::open(dir.path().join("spool")).unwrap();
    assert_eq!(again.load_host(HOST).unwrap(), [motd]);

    // Accounts and the host file never see each other: a user literally
    // named "+host" gets its own file, and listings show only accounts.
    again
        .create_user(HOST, "+host", &UserRecord::default())
        .unwrap();
    spool.create_user(HOST, "alice", &sample()).unwrap();
    assert_eq!(again.list_users(HOST).unwrap(), ["+host", "alice"]);
    assert_eq!(again.load_host(HOST).unwrap().len(), 1);
    assert!(again.user_path(HOST, "+host") != path);

    // Emptied, the file goes away; no temporary files are left.
    again.update_host(HOST, &mut |d| d.clear()).unwrap();
    assert!(!path.exists());
    assert!(again.load_host(HOST).unwrap().is_empty());
    assert!(temp_files(spool.root()).is_empty());
}

#[test]
fn corrupt_or_foreign_host_data_is_refused_and_kept() {
    let (_dir, spool) = spool();
    spool
        .update_host(HOST, &mut |d| d.push(Element::new("motd", ns::SPOOL)))
        .unwrap();
    let path = spool.host_data_path(HOST);
    std::fs::write(&path, "<host xmlns='urn:switchboard:spool:1'><motd>").unwrap();
    assert!(matches!(
        spool.load_host(HOST),
        Err(SpoolError::Corrupt { .. })
    ));
    // A failed read stops the update before anything is written.
    assert!(spool.update_host(HOST, &mut |d| d.clear()).is_err());
    assert!(path.exists());
    std::fs::write(
        &path,
        "<host xmlns='urn:switchboard:spool:1' name='other.org'><motd/></host>",
    )
    .unwrap();
    match spool.load_host(HOST) {
        Err(SpoolError::Corrupt { message, .. }) => assert!(message.contains("other.org")),
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
}

#[test]
fn a_crashed_host_data_write_is_cleaned_up_at_open() {
    let (dir, spool) = spool();
    // Written by hand rather than with `update_host`: a child process that
    // another test forks at the wrong moment would briefly share this
    // test's lock and keep the leftover alive, which is correct behaviour
    // but not what is being tested here.
    std::fs::create_dir_all(spool.host_dir(HOST)).unwrap();
    std::fs::write(
        spool.host_data_path(HOST),
        "<host xmlns='urn:switchboard:spool:1' name='example.com'><motd/></host>",
    )
    .unwrap();
    let stale = spool.host_dir(HOST).join(".+host.tmp.999999.7");
    std::fs::write(&stale, "half").unwrap();
    let reopened = FileSpool::open(dir.path().join("spool")).unwrap();
    assert!(!stale.exists(), "{:?}", walk(dir.path()));
    assert_eq!(reopened.load_host(HOST).unwrap().len(), 1);
}
