//! The message archive (XEP-0313) with paging (XEP-0059): a new device
//! fetching history, offline messages, a retraction's tombstone, the
//! errors the XEP names, and retention.

use switchboard_integration_tests::client::trace;
use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{Client, ServerBuilder};

use crate::{
    assert_error, assert_result, bare, chat, login, message_with, online, password, stanza_id,
    start, text_of,
};

const MAM: &str = "urn:xmpp:mam:2";

/// A query with `inner` (a form, an RSM set) and queryid `q`.
fn query(inner: &str) -> String {
    format!("<query xmlns='{MAM}' queryid='q'>{inner}</query>")
}

fn rsm(inner: &str) -> String {
    format!("<set xmlns='http://jabber.org/protocol/rsm'>{inner}</set>")
}

/// Runs a query: the results (in the order they came) and the IQ result.
async fn run(c: &mut Client, q: &str) -> (Vec<String>, String) {
    let answer = c.iq("set", None, q).await;
    assert_result(&answer);
    let results = c.take_all(|e| {
        local_name(e) == "message" && e.contains(&format!("<result xmlns=\"{MAM}\""))
    });
    (results, answer)
}

fn bodies(results: &[String]) -> Vec<String> {
    results
        .iter()
        .map(|r| text_of(r, "body").unwrap_or_default().to_owned())
        .collect()
}

fn numbered(r: std::ops::RangeInclusive<u32>) -> Vec<String> {
    r.map(|n| format!("note {n}")).collect()
}

#[tokio::test]
async fn a_new_device_fetches_history_page_by_page() {
    let server = start(&["alice", "bob"]);
    let mut desk = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "home", 0).await;
    for n in 1..=60 {
        chat(
            &mut bob,
            &bare("alice"),
            &format!("b{n}"),
            &format!("note {n}"),
        )
        .await;
    }
    for n in 1..=60 {
        let m = desk
            .expect("bob's message", message_with(&format!("note {n}")))
            .await;
        assert!(stanza_id(&m, &bare("alice")).is_some(), "archived: {m}");
    }

    // A new device, logged in without presence, reads back from the end.
    let mut tablet = login(&server, "alice", "tablet").await;
    let (results, answer) = run(&mut tablet, &query(&rsm("<max>25</max><before/>"))).await;
    assert_eq!(bodies(&results), numbered(36..=60));
    assert!(!answer.contains("complete="), "{answer}");
    assert!(answer.contains("<count>60</count>"), "{answer}");
    assert!(
        answer.contains("<first>"),
        "no index on a page read backwards: {answer}"
    );
    assert_eq!(
        attr(&results[0], "from").as_deref(),
        Some("alice@localhost")
    );
    assert!(results[0].contains("queryid=\"q\""));
    assert!(results[0].contains("<delay xmlns=\"urn:xmpp:delay\" stamp=\""));
    let mut first = text_of(&answer, "first").unwrap().to_owned();
    let mut pages = vec![bodies(&results)];
    loop {
        let (results, answer) = run(
            &mut tablet,
            &query(&rsm(&format!("<max>25</max><before>{first}</before>"))),
        )
        .await;
        pages.push(bodies(&results));
        if answer.contains("complete=\"true\"") {
            break;
        }
        first = text_of(&answer, "first").unwrap().to_owned();
    }
    assert_eq!(pages[1], numbered(11..=35));
    assert_eq!(pages[2], numbered(1..=10));
    assert_eq!(pages.len(), 3);

    // An index past the end: an empty page, complete, with the count.
    let (results, answer) = run(&mut tablet, &query(&rsm("<max>25</max><index>60</index>"))).await;
    assert!(results.is_empty());
    assert!(answer.contains("complete=\"true\""), "{answer}");
    assert!(
        answer.contains("<set xmlns=\"http://jabber.org/protocol/rsm\"><count>60</count></set>"),
        "{answer}"
    );
    // Inside the result set an index is a position.
    let (results, answer) = run(&mut tablet, &query(&rsm("<max>2</max><index>58</index>"))).await;
    assert_eq!(bodies(&results), numbered(59..=60));
    assert!(answer.contains("<first index=\"58\">"), "{answer}");

    // Filtered by who it was with and by time: Bob, since the start.
    let (results, _) = run(
        &mut tablet,
        &query(&format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>{MAM}</value></field><field var='with'><value>bob@localhost</value></field>\
             <field var='start'><value>1970-01-01T00:00:00Z</value></field></x>{}",
            rsm("<max>5</max>")
        )),
    )
    .await;
    assert_eq!(bodies(&results), numbered(1..=5));
    tablet.barrier().await;
    desk.barrier().await;
}

#[tokio::test]
async fn malformed_queries_get_the_errors_the_xep_names() {
    let server = start(&["alice"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let r = alice
        .iq(
            "set",
            None,
            &query(
                "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
                 <value>urn:xmpp:mam:2</value></field><field var='end'><value>tomorrow</value></field></x>",
            ),
        )
        .await;
    assert_error(&r, "bad-request");
    assert!(
        r.contains("&apos;end&apos; is not an XEP-0082 date-time: &quot;tomorrow&quot;")
            || r.contains("'end' is not an XEP-0082 date-time: \"tomorrow\""),
        "{r}"
    );
    let r = alice
        .iq(
            "set",
            None,
            &query(&rsm("<max>10</max><after>nonexistent</after>")),
        )
        .await;
    assert_error(&r, "item-not-found");
    assert_eq!(attr(&r, "from").as_deref(), Some("alice@localhost"));
    let r = alice
        .iq(
            "set",
            None,
            &query(&rsm("<before>x</before><index>2</index>")),
        )
        .await;
    assert_error(&r, "bad-request");
    let r = alice.iq("set", None, &query(&rsm("<max>lots</max>"))).await;
    assert_error(&r, "bad-request");
    alice.barrier().await;
}

#[tokio::test]
async fn offline_messages_are_delivered_once_and_sit_in_the_archive() {
    let server = start(&["alice", "bob"]);
    let mut bob = online(&server, "bob", "home", 0).await;
    chat(&mut bob, &bare("alice"), "o1", "while you were away").await;
    chat(&mut bob, &bare("alice"), "o2", "and once more").await;
    bob.sync_account_of(&bare("alice")).await;

    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut ids = Vec::new();
    for body in ["while you were away", "and once more"] {
        let m = alice.expect("an offline message", message_with(body)).await;
        assert!(m.contains("<delay xmlns=\"urn:xmpp:delay\""), "{m}");
        ids.push(stanza_id(&m, &bare("alice")).expect("the archive's id"));
    }
    alice.account_barrier().await;
    let (results, _) = run(&mut alice, &query("")).await;
    assert_eq!(bodies(&results), ["while you were away", "and once more"]);
    let result_ids: Vec<String> = results
        .iter()
        .map(|r| {
            let at = r.find("<result ").unwrap();
            attr(&r[at..], "id").unwrap()
        })
        .collect();
    assert_eq!(result_ids, ids, "the ids delivered are the archive's");
    // Logging in again delivers nothing twice.
    let mut again = online(&server, "alice", "phone", 0).await;
    again.sync_account().await;
    again.take_all(|e| e.starts_with("<presence"));
    again.barrier().await;
    alice.sync().await;
    alice.take_all(|e| e.starts_with("<presence"));
    alice.barrier().await;
}

#[tokio::test]
async fn a_retraction_leaves_a_tombstone_in_the_archive() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "home", 0).await;
    bob.send(&format!(
        "<message to='{}' type='chat' id='w1'><body>meant for carol</body>\
         <origin-id xmlns='urn:xmpp:sid:0' id='origin-w1'/></message>",
        bare("alice")
    ))
    .await;
    bob.send(&format!(
        "<message to='{}' type='chat' id='w2'><retract xmlns='urn:xmpp:message-retract:1' id='origin-w1'/>\
         <fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>\
         <body>retracted</body><store xmlns='urn:xmpp:hints'/></message>",
        bare("alice")
    ))
    .await;
    alice
        .expect("the message", message_with("meant for carol"))
        .await;
    alice
        .expect("the retraction", message_with("retracted"))
        .await;
    bob.sync().await;
    let (results, _) = run(&mut alice, &query("")).await;
    assert_eq!(results.len(), 2);
    assert!(
        results[0].contains("<retracted xmlns=\"urn:xmpp:message-retract:1\" stamp=\""),
        "{}",
        results[0]
    );
    assert!(!results[0].contains("meant for carol"), "{}", results[0]);
    assert!(results[0].contains("origin-w1"));
    assert!(results[1].contains("<retract xmlns=\"urn:xmpp:message-retract:1\" id=\"origin-w1\"/>"));
    alice.barrier().await;
}

#[tokio::test]
async fn old_messages_go_after_the_hosts_retention() {
    let home = tempfile::tempdir().unwrap();
    let mut first = ServerBuilder::new()
        .user(&bare("alice"), &password("alice"))
        .user(&bare("bob"), &password("bob"))
        .home(home.path())
        .start();
    let mut alice = online(&first, "alice", "desk", 0).await;
    let mut bob = online(&first, "bob", "home", 0).await;
    chat(&mut bob, &bare("alice"), "r1", "soon forgotten").await;
    alice
        .expect("the message", message_with("soon forgotten"))
        .await;
    let (results, _) = run(&mut alice, &query("")).await;
    assert_eq!(results.len(), 1);
    alice.close(&first).await;
    bob.close(&first).await;
    assert!(first.terminate().success());

    // Retention is a matter of time: the message must be older than it.
    trace("waiting two seconds for the message to age past a one-second retention");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let second = ServerBuilder::new()
        .config(
            "<host name=\"localhost\"><registration>open</registration>\
             <archive retention=\"1s\"/></host>",
        )
        .home(home.path())
        .start();
    // Alice's archive and Bob's (what he sent) lose the message.
    second.wait_for_log(&["expired old archived messages"]);
    let mut alice = online(&second, "alice", "desk", 0).await;
    let (results, answer) = run(&mut alice, &query("")).await;
    assert!(results.is_empty());
    assert!(answer.contains("<count>0</count>"), "{answer}");
    alice.barrier().await;
}
