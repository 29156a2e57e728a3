//! The directory driven stanza by stanza, as a client would use it.

use super::*;
use switchboard_xml::parse_document;

const HOST: &str = "users.example.org";

fn xml(s: &str) -> Element {
    let mut el = parse_document(s.as_bytes(), switchboard_xml::Limits::default()).unwrap();
    el.rename_ns("", ns::CLIENT);
    el
}

struct Fixture {
    dir: Directory,
    entries: Entries,
}

async fn fixture() -> Fixture {
    let el = Element::new("service", "").with_attr("id", HOST);
    let store = switchboard_service::ServiceStore::new(
        switchboard_spool::store::memory::MemoryStores::new().service_data,
        HOST,
    );
    Fixture {
        dir: Directory::from_config(HOST, &el).unwrap(),
        entries: Entries::load(store).await.unwrap(),
    }
}

impl Fixture {
    async fn send(&mut self, s: &str) -> String {
        self.dir
            .handle(HOST, &xml(s), &mut self.entries)
            .await
            .map(|r| r.to_xml_string())
            .unwrap_or_default()
    }

    async fn list(&mut self, who: &str, fields: &str) -> String {
        self.send(&format!(
            "<iq type='set' id='r' from='{who}/x' to='{HOST}'><query xmlns='jabber:iq:register'>{fields}</query></iq>"
        ))
        .await
    }

    async fn search(&mut self, fields: &str) -> String {
        self.send(&format!(
            "<iq type='set' id='s' from='carol@example.org/x' to='{HOST}'><query xmlns='jabber:iq:search'>{fields}</query></iq>"
        ))
        .await
    }
}

#[tokio::test]
async fn the_parent_domain_is_served_by_default_and_domains_can_be_named() {
    let el = Element::new("service", "");
    assert_eq!(
        Directory::from_config("users.example.org", &el)
            .unwrap()
            .domains,
        vec!["example.org"]
    );
    let el = Element::new("service", "").with_attr("domains", "a.org b.org");
    assert_eq!(
        Directory::from_config("dir.example.org", &el)
            .unwrap()
            .domains,
        vec!["a.org", "b.org"]
    );
    assert!(Directory::from_config("dir", &Element::new("service", "")).is_err());
}

#[tokio::test]
async fn registration_form_offers_legacy_fields_and_a_data_form() {
    let mut f = fixture().await;
    let r = f.send(&format!(
        "<iq type='get' id='g' from='alice@example.org/x' to='{HOST}'><query xmlns='jabber:iq:register'/></iq>"
    )).await;
    assert!(r.contains(r#"type="result""#), "{r}");
    for field in [
        "<first/>",
        "<last/>",
        "<nick/>",
        "<email/>",
        "jabber:x:data",
    ] {
        assert!(r.contains(field), "{field} missing: {r}");
    }
    assert!(!r.contains("<registered/>"), "{r}");
}

#[tokio::test]
async fn listing_then_searching_finds_the_user_case_insensitively() {
    let mut f = fixture().await;
    let r = f
        .list(
            "alice@example.org",
            "<first>Alice</first><last>Liddell</last><email>alice@example.org</email>",
        )
        .await;
    assert!(r.contains(r#"type="result""#), "{r}");
    f.list("bob@example.org", "<first>Bob</first><nick>bobby</nick>")
        .await;

    let r = f.search("<last>lidd</last>").await;
    assert!(r.contains(r#"jid="alice@example.org""#), "{r}");
    assert!(r.contains("<first>Alice</first>"), "{r}");
    assert!(!r.contains("bob@"), "{r}");

    let r = f.search("<first>*b*</first>").await;
    assert!(r.contains(r#"jid="bob@example.org""#), "{r}");
    assert!(!r.contains("alice@"), "{r}");

    // Every filled field must match.
    let r = f.search("<first>alice</first><nick>bobby</nick>").await;
    assert!(!r.contains("<item"), "{r}");
}

#[tokio::test]
async fn a_data_form_search_gets_a_result_table() {
    let mut f = fixture().await;
    f.list("alice@example.org", "<first>Alice</first>").await;
    let r = f
        .search(
            "<x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>jabber:iq:search</value></field>\
         <field var='first'><value>ali</value></field></x>",
        )
        .await;
    assert!(r.contains(r#"type="result""#), "{r}");
    assert!(r.contains("<reported>"), "{r}");
    assert!(r.contains("<value>alice@example.org</value>"), "{r}");
}

#[tokio::test]
async fn a_data_form_registration_lists_the_user() {
    let mut f = fixture().await;
    let r = f
        .list(
            "alice@example.org",
            "<x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>\
         <field var='nick'><value>al</value></field></x>",
        )
        .await;
    assert!(r.contains(r#"type="result""#), "{r}");
    assert!(f
        .search("<nick>al</nick>")
        .await
        .contains("alice@example.org"));
}

#[tokio::test]
async fn an_empty_search_or_listing_is_not_acceptable() {
    let mut f = fixture().await;
    assert!(f
        .search("<first> </first>")
        .await
        .contains("not-acceptable"));
    assert!(f
        .list("alice@example.org", "<first/>")
        .await
        .contains("not-acceptable"));
}

#[tokio::test]
async fn removing_oneself_unlists() {
    let mut f = fixture().await;
    f.list("alice@example.org", "<first>Alice</first>").await;
    let r = f.list("alice@example.org", "<remove/>").await;
    assert!(r.contains(r#"type="result""#), "{r}");
    assert!(!f.search("<first>alice</first>").await.contains("<item"));
    let r = f.list("alice@example.org", "<remove/>").await;
    assert!(r.contains("registration-required"), "{r}");
}

#[tokio::test]
async fn users_of_other_domains_may_neither_list_nor_search() {
    let mut f = fixture().await;
    let r = f.list("mallory@elsewhere.net", "<first>M</first>").await;
    assert!(r.contains("forbidden"), "{r}");
    let r = f.send(&format!(
        "<iq type='set' id='s' from='mallory@elsewhere.net/x' to='{HOST}'><query xmlns='jabber:iq:search'><first>a</first></query></iq>"
    )).await;
    assert!(r.contains("forbidden"), "{r}");
}

#[tokio::test]
async fn disco_info_names_a_user_directory_with_search() {
    let mut f = fixture().await;
    let r = f.send(&format!(
        "<iq type='get' id='d' from='alice@example.org/x' to='{HOST}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )).await;
    assert!(
        r.contains(r#"category="directory""#) && r.contains(r#"type="user""#),
        "{r}"
    );
    assert!(r.contains("jabber:iq:search"), "{r}");
}

#[tokio::test]
async fn messages_are_refused_and_unknown_queries_unavailable() {
    let mut f = fixture().await;
    let r = f
        .send(&format!(
            "<message from='alice@example.org/x' to='{HOST}'><body>hi</body></message>"
        ))
        .await;
    assert!(r.contains("service-unavailable"), "{r}");
    let r = f.send(&format!(
        "<iq type='get' id='v' from='alice@example.org/x' to='{HOST}'><query xmlns='urn:example:unknown'/></iq>"
    )).await;
    assert!(r.contains("service-unavailable"), "{r}");
}

#[tokio::test]
async fn a_value_too_long_is_refused() {
    let mut f = fixture().await;
    let long = "x".repeat(listing::MAX_VALUE_CHARS + 1);
    let r = f
        .list("alice@example.org", &format!("<first>{long}</first>"))
        .await;
    assert!(r.contains("not-acceptable"), "{r}");
}
