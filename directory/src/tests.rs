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
    _tmp: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let el = Element::new("service", "").with_attr("id", HOST);
    Fixture {
        dir: Directory::from_config(HOST, &el).unwrap(),
        entries: Entries::load(tmp.path()).unwrap(),
        _tmp: tmp,
    }
}

impl Fixture {
    fn send(&mut self, s: &str) -> String {
        self.dir
            .handle(HOST, &xml(s), &mut self.entries)
            .map(|r| r.to_xml_string())
            .unwrap_or_default()
    }

    fn list(&mut self, who: &str, fields: &str) -> String {
        self.send(&format!(
            "<iq type='set' id='r' from='{who}/x' to='{HOST}'><query xmlns='jabber:iq:register'>{fields}</query></iq>"
        ))
    }

    fn search(&mut self, fields: &str) -> String {
        self.send(&format!(
            "<iq type='set' id='s' from='carol@example.org/x' to='{HOST}'><query xmlns='jabber:iq:search'>{fields}</query></iq>"
        ))
    }
}

#[test]
fn the_parent_domain_is_served_by_default_and_domains_can_be_named() {
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

#[test]
fn registration_form_offers_legacy_fields_and_a_data_form() {
    let mut f = fixture();
    let r = f.send(&format!(
        "<iq type='get' id='g' from='alice@example.org/x' to='{HOST}'><query xmlns='jabber:iq:register'/></iq>"
    ));
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

#[test]
fn listing_then_searching_finds_the_user_case_insensitively() {
    let mut f = fixture();
    let r = f.list(
        "alice@example.org",
        "<first>Alice</first><last>Liddell</last><email>alice@example.org</email>",
    );
    assert!(r.contains(r#"type="result""#), "{r}");
    f.list("bob@example.org", "<first>Bob</first><nick>bobby</nick>");

    let r = f.search("<last>lidd</last>");
    assert!(r.contains(r#"jid="alice@example.org""#), "{r}");
    assert!(r.contains("<first>Alice</first>"), "{r}");
    assert!(!r.contains("bob@"), "{r}");

    let r = f.search("<first>*b*</first>");
    assert!(r.contains(r#"jid="bob@example.org""#), "{r}");
    assert!(!r.contains("alice@"), "{r}");

    // Every filled field must match.
    let r = f.search("<first>alice</first><nick>bobby</nick>");
    assert!(!r.contains("<item"), "{r}");
}

#[test]
fn a_data_form_search_gets_a_result_table() {
    let mut f = fixture();
    f.list("alice@example.org", "<first>Alice</first>");
    let r = f.search(
        "<x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>jabber:iq:search</value></field>\
         <field var='first'><value>ali</value></field></x>",
    );
    assert!(r.contains(r#"type="result""#), "{r}");
    assert!(r.contains("<reported>"), "{r}");
    assert!(r.contains("<value>alice@example.org</value>"), "{r}");
}

#[test]
fn a_data_form_registration_lists_the_user() {
    let mut f = fixture();
    let r = f.list(
        "alice@example.org",
        "<x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>\
         <field var='nick'><value>al</value></field></x>",
    );
    assert!(r.contains(r#"type="result""#), "{r}");
    assert!(f.search("<nick>al</nick>").contains("alice@example.org"));
}

#[test]
fn an_empty_search_or_listing_is_not_acceptable() {
    let mut f = fixture();
    assert!(f.search("<first> </first>").contains("not-acceptable"));
    assert!(f
        .list("alice@example.org", "<first/>")
        .contains("not-acceptable"));
}

#[test]
fn removing_oneself_unlists() {
    let mut f = fixture();
    f.list("alice@example.org", "<first>Alice</first>");
    let r = f.list("alice@example.org", "<remove/>");
    assert!(r.contains(r#"type="result""#), "{r}");
    assert!(!f.search("<first>alice</first>").contains("<item"));
    let r = f.list("alice@example.org", "<remove/>");
    assert!(r.contains("registration-required"), "{r}");
}

#[test]
fn users_of_other_domains_may_neither_list_nor_search() {
    let mut f = fixture();
    let r = f.list("mallory@elsewhere.net", "<first>M</first>");
    assert!(r.contains("forbidden"), "{r}");
    let r = f.send(&format!(
        "<iq type='set' id='s' from='mallory@elsewhere.net/x' to='{HOST}'><query xmlns='jabber:iq:search'><first>a</first></query></iq>"
    ));
    assert!(r.contains("forbidden"), "{r}");
}

#[test]
fn disco_info_names_a_user_directory_with_search() {
    let mut f = fixture();
    let r = f.send(&format!(
        "<iq type='get' id='d' from='alice@example.org/x' to='{HOST}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ));
    assert!(
        r.contains(r#"category="directory""#) && r.contains(r#"type="user""#),
        "{r}"
    );
    assert!(r.contains("jabber:iq:search"), "{r}");
}

#[test]
fn messages_are_refused_and_unknown_queries_unavailable() {
    let mut f = fixture();
    let r = f.send(&format!(
        "<message from='alice@example.org/x' to='{HOST}'><body>hi</body></message>"
    ));
    assert!(r.contains("service-unavailable"), "{r}");
    let r = f.send(&format!(
        "<iq type='get' id='v' from='alice@example.org/x' to='{HOST}'><query xmlns='urn:example:unknown'/></iq>"
    ));
    assert!(r.contains("service-unavailable"), "{r}");
}

#[test]
fn a_value_too_long_is_refused() {
    let mut f = fixture();
    let long = "x".repeat(listing::MAX_VALUE_CHARS + 1);
    let r = f.list("alice@example.org", &format!("<first>{long}</first>"));
    assert!(r.contains("not-acceptable"), "{r}");
}
