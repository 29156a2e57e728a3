//! The XMPP side stanza by stanza, on in-memory stores.

use std::sync::Arc;

use switchboard_spool::store::memory::MemoryStores;
use switchboard_xml::{ns, parse_document, Element, Limits};

use super::{handle, NS};
use crate::{UploadSettings, Uploads};

fn uploads(attrs: &[(&str, &str)]) -> Arc<Uploads> {
    let mut el = Element::new("service", "urn:switchboard:config:1");
    for (k, v) in attrs {
        el.set_attr(*k, *v);
    }
    let settings = UploadSettings::from_config("upload.example.org", &el).unwrap();
    let u = Uploads::new("upload.example.org", settings, MemoryStores::new().blobs);
    u.set_key(&[1; 32]);
    u.set_default_base_url("https://example.org:5281".into());
    u
}

fn iq(from: &str, payload: &str) -> Element {
    parse_document(
        format!(
            "<iq xmlns='jabber:client' type='get' id='r1' from='{from}' to='upload.example.org'>{payload}</iq>"
        )
        .as_bytes(),
        Limits::default(),
    )
    .unwrap()
}

fn request(name: &str, size: u64) -> String {
    format!("<request xmlns='{NS}' filename='{name}' size='{size}' content-type='image/png'/>")
}

#[tokio::test]
async fn disco_names_the_feature_and_the_limit() {
    let u = uploads(&[("max-file-size", "1M")]);
    let r = handle(
        &u,
        &iq(
            "alice@example.org/a",
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        ),
    )
    .await
    .unwrap()
    .to_xml_string();
    assert!(r.contains("category=\"store\""), "{r}");
    assert!(r.contains(&format!("var=\"{NS}\"")), "{r}");
    assert!(r.contains("<value>1048576</value>"), "{r}");
}

#[tokio::test]
async fn a_local_user_gets_a_signed_slot() {
    let u = uploads(&[]);
    let r = handle(&u, &iq("alice@example.org/a", &request("../cat.png", 1000)))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml_string());
    let slot = r.get_child("slot", NS).unwrap();
    let get = slot.get_child("get", NS).unwrap().attr("url").unwrap();
    let put = slot.get_child("put", NS).unwrap().attr("url").unwrap();
    assert!(
        get.starts_with("https://example.org:5281/upload/upload.example.org/"),
        "{get}"
    );
    assert!(get.ends_with("/cat.png"), "{get}");
    assert!(
        put.starts_with(&format!(
            "{get}?o=alice%40example.org&s=1000&t=image%2Fpng&e="
        )),
        "{put}"
    );
    assert!(put.contains("&sig="), "{put}");
}

#[tokio::test]
async fn limits_are_refused_with_their_errors() {
    let u = uploads(&[("max-file-size", "10K"), ("quota", "15K")]);
    let r = handle(&u, &iq("alice@example.org/a", &request("big.png", 20_000)))
        .await
        .unwrap()
        .to_xml_string();
    assert!(r.contains("not-acceptable"), "{r}");
    assert!(
        r.contains(
            "<file-too-large xmlns=\"urn:xmpp:http:upload:0\"><max-file-size>10240</max-file-size>"
        ),
        "{r}"
    );
    // Alice already keeps 8 KiB: another 8 KiB is over her 15 KiB.
    let mut w = u
        .blobs
        .create(
            "upload.example.org",
            "old",
            switchboard_spool::store::BlobMeta {
                owner: "alice@example.org".into(),
                name: "old.bin".into(),
                content_type: "application/octet-stream".into(),
                size: 8192,
                created: 0,
                expires: None,
            },
        )
        .await
        .unwrap();
    w.write(&[0; 8192]).await.unwrap();
    w.commit().await.unwrap();
    let r = handle(&u, &iq("alice@example.org/a", &request("more.png", 8192)))
        .await
        .unwrap()
        .to_xml_string();
    assert!(r.contains("resource-constraint"), "{r}");
    assert!(
        r.contains("over your upload quota: 8192 of 15360 bytes used"),
        "{r}"
    );
    // Bob's quota is his own.
    let r = handle(&u, &iq("bob@example.org/b", &request("more.png", 8192)))
        .await
        .unwrap();
    assert_eq!(r.attr("type"), Some("result"));
    // Strangers and bad requests.
    let r = handle(&u, &iq("eve@elsewhere.example/e", &request("x.png", 10)))
        .await
        .unwrap()
        .to_xml_string();
    assert!(r.contains("forbidden"), "{r}");
    let r = handle(&u, &iq("alice@example.org/a", &request("..", 10)))
        .await
        .unwrap()
        .to_xml_string();
    assert!(
        r.contains("bad-request") && r.contains("file name is empty"),
        "{r}"
    );
    let r = handle(&u, &iq("alice@example.org/a", &request("x.png", 0)))
        .await
        .unwrap()
        .to_xml_string();
    assert!(r.contains("bad-request"), "{r}");
}
