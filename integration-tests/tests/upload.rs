//! HTTP file upload (XEP-0363) against the real binary: a slot from the
//! upload service over XMPP, the file PUT over HTTPS and fetched by
//! another user, and everything a hostile or careless client can try: a
//! forged signature, a slot used twice, a body larger than the slot, an
//! upload past the quota, a file over the size limit, path traversal.
//! Files expire and the service's task removes them from the spool.

use std::path::{Path, PathBuf};

use switchboard_integration_tests::ws::{http, http_bytes};
use switchboard_integration_tests::{Client, ServerBuilder, TestServer};

fn server_with(expire: &str) -> TestServer {
    ServerBuilder::new()
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><https addr="127.0.0.1:0"/></listen>"#)
        .also(&format!(
            r#"<service id="upload.localhost" type="upload" max-file-size="1M" quota="1536K" expire="{expire}"/>"#
        ))
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start()
}

fn server() -> TestServer {
    server_with("1h")
}

/// The PUT and GET URLs of a slot answer.
fn urls(answer: &str) -> (String, String) {
    let attr = |tag: &str| {
        let at = answer
            .find(&format!("<{tag} "))
            .unwrap_or_else(|| panic!("no <{tag}> in {answer}"));
        let rest = &answer[at..];
        let start = rest.find("url=\"").unwrap() + 5;
        let end = start + rest[start..].find('"').unwrap();
        rest[start..end].replace("&amp;", "&")
    };
    (attr("put"), attr("get"))
}

async fn slot_of_type(c: &mut Client, name: &str, size: usize, content_type: &str) -> String {
    c.iq(
        "get",
        Some("upload.localhost"),
        &format!(
            "<request xmlns='urn:xmpp:http:upload:0' filename='{name}' size='{size}' content-type='{content_type}'/>"
        ),
    )
    .await
}

async fn slot(c: &mut Client, name: &str, size: usize) -> String {
    slot_of_type(c, name, size, "image/png").await
}

/// The path and query of a URL on the test server.
fn target(url: &str) -> &str {
    let after = url.split_once("://").unwrap().1;
    &after[after.find('/').unwrap()..]
}

/// A raw request over HTTPS; the answer as text.
async fn request(server: &TestServer, head: &str, body: &[u8]) -> String {
    let mut req = head.as_bytes().to_vec();
    req.extend_from_slice(body);
    http(server.listener("https"), Some(server.tls_config()), &req).await
}

async fn put_typed(
    server: &TestServer,
    url: &str,
    body: &[u8],
    length: usize,
    content_type: &str,
) -> String {
    request(
        server,
        &format!(
            "PUT {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
             Content-Length: {length}\r\nConnection: close\r\n\r\n",
            target(url)
        ),
        body,
    )
    .await
}

async fn put(server: &TestServer, url: &str, body: &[u8], length: usize) -> String {
    put_typed(server, url, body, length, "image/png").await
}

/// A GET: the response head as text and the body as bytes.
async fn get(server: &TestServer, path: &str) -> (String, Vec<u8>) {
    let raw = http_bytes(
        server.listener("https"),
        Some(server.tls_config()),
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {}", String::from_utf8_lossy(&raw)));
    (
        String::from_utf8_lossy(&raw[..split]).into_owned(),
        raw[split + 4..].to_vec(),
    )
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The stored blobs (`*.blob`) in the server's spool.
fn blobs_in_spool(server: &TestServer) -> Vec<PathBuf> {
    files_under(&server.home().join("spool"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "blob"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_up_and_another_user_fetches_it() {
    let server = server();
    let mut alice = Client::login(&server, "alice", "alice-pw", "phone").await;
    let info = alice
        .iq(
            "get",
            Some("upload.localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert!(info.contains("urn:xmpp:http:upload:0"), "{info}");
    assert!(info.contains("<value>1048576</value>"), "{info}");

    let picture: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
    let answer = slot(&mut alice, "../../holiday photo.png", picture.len()).await;
    let (put_url, get_url) = urls(&answer);
    assert!(
        put_url.starts_with(&format!(
            "https://localhost:{}/upload/upload.localhost/",
            server.listener("https").port()
        )),
        "{put_url}"
    );
    assert!(get_url.ends_with("/holiday%20photo.png"), "{get_url}");
    let stored = put(&server, &put_url, &picture, picture.len()).await;
    assert!(stored.starts_with("HTTP/1.1 201 "), "{stored}");
    // Kept in the spool's blob store, one file with the bytes.
    let blobs = blobs_in_spool(&server);
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), picture);

    // Bob (or anyone with the URL) fetches it, whole, with its type.
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    bob.available(0, "").await;
    alice
        .send(&format!(
            "<message to='bob@localhost/desk' type='chat' id='file1'><body>{get_url}</body>\
             <x xmlns='jabber:x:oob'><url>{get_url}</url></x></message>"
        ))
        .await;
    let message = bob
        .expect("the message with the link", |m| {
            m.contains("id=\"file1\"") || m.contains("id='file1'")
        })
        .await;
    let url = urls_in_oob(&message);
    let (head, body) = get(&server, target(&url)).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("Content-Type: image/png"), "{head}");
    assert!(
        head.contains("Content-Disposition: inline; filename*=UTF-8''holiday%20photo.png"),
        "{head}"
    );
    assert!(head.contains("Access-Control-Allow-Origin: *"), "{head}");
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    assert_eq!(body.len(), picture.len());
    assert!(body == picture, "the bytes differ");

    // A CORS preflight from a web client on another origin.
    let pre = request(
        &server,
        &format!(
            "OPTIONS {} HTTP/1.1\r\nHost: localhost\r\nOrigin: https://chat.example\r\n\
             Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n",
            target(&put_url)
        ),
        b"",
    )
    .await;
    assert!(pre.starts_with("HTTP/1.1 204 "), "{pre}");
    assert!(
        pre.contains("Access-Control-Allow-Methods: GET, HEAD, PUT, OPTIONS"),
        "{pre}"
    );
    assert!(
        pre.contains("Access-Control-Allow-Headers: Content-Type"),
        "{pre}"
    );

    // Anything else than a picture is a download, and a stored page
    // cannot script this origin.
    let page = b"<script>alert(1)</script>";
    let (p, g) = urls(&slot_of_type(&mut alice, "page.html", page.len(), "text/html").await);
    let stored = put_typed(&server, &p, page, page.len(), "text/html").await;
    assert!(stored.starts_with("HTTP/1.1 201 "), "{stored}");
    let (head, body) = get(&server, target(&g)).await;
    assert!(
        head.contains("Content-Disposition: attachment; filename*=UTF-8''page.html"),
        "{head}"
    );
    assert!(
        head.contains("Content-Security-Policy: default-src 'none'; sandbox"),
        "{head}"
    );
    assert_eq!(body, page);

    alice.barrier().await;
    bob.barrier().await;
}

/// The URL in a message's `jabber:x:oob` element.
fn urls_in_oob(message: &str) -> String {
    let start = message.find("<url>").expect("an OOB url") + 5;
    let end = start + message[start..].find("</url>").unwrap();
    message[start..end].replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_reused_and_wrong_uploads_are_refused() {
    let server = server();
    let mut alice = Client::login(&server, "alice", "alice-pw", "phone").await;
    let (put_url, get_url) = urls(&slot(&mut alice, "a.png", 10).await);

    // The signature covers every field: a bigger size, another owner (to
    // use someone else's quota), a changed name or a made-up signature.
    for (what, forged) in [
        ("a bigger size", put_url.replace("&s=10&", "&s=20&")),
        ("another owner", put_url.replace("o=alice%40", "o=bob%40")),
        ("another name", put_url.replace("/a.png?", "/b.png?")),
        (
            "another signature",
            format!("{}0", &put_url[..put_url.len() - 1]),
        ),
    ] {
        let answer = put(&server, &forged, &[0; 10], 10).await;
        assert!(answer.starts_with("HTTP/1.1 403 "), "{what}: {answer}");
        assert!(
            answer.contains("signature is not valid"),
            "{what}: {answer}"
        );
    }
    let answer = put(&server, &get_url, &[0; 10], 10).await;
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(answer.contains("not an upload slot"), "{answer}");
    // More or fewer bytes than the slot's, another type, no length.
    let answer = put(&server, &put_url, &[0; 11], 11).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(
        answer.contains("the slot is for 10 bytes, not 11"),
        "{answer}"
    );
    let answer = put(&server, &put_url, &[0; 9], 9).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let answer = put_typed(&server, &put_url, &[0; 10], 10, "text/html").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("the slot is for image/png, not text/html"),
        "{answer}"
    );
    let answer = request(
        &server,
        &format!(
            "PUT {} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n",
            target(&put_url)
        ),
        b"a\r\n0123456789\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 411 "), "{answer}");
    // None of that stored anything; the slot still works, once.
    assert!(blobs_in_spool(&server).is_empty());
    let answer = put(&server, &put_url, b"0123456789", 10).await;
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    let again = put(&server, &put_url, b"0123456789", 10).await;
    assert!(again.starts_with("HTTP/1.1 409 "), "{again}");
    assert!(again.contains("this slot has been used already"), "{again}");

    // Path traversal finds nothing; a file is found only under its name.
    for evil in [
        "/upload/upload.localhost/../../etc/passwd",
        "/upload/upload.localhost/%2e%2e/%2e%2e/etc/passwd",
        "/upload/upload.localhost/..%2f..%2fspool/x",
        "/upload/../spool/x",
        "/upload/upload.localhost/x/..",
    ] {
        let (head, _) = get(&server, evil).await;
        assert!(
            head.starts_with("HTTP/1.1 404 ") || head.starts_with("HTTP/1.1 400 "),
            "{evil}: {head}"
        );
    }
    let renamed = target(&get_url).replace("/a.png", "/other.png");
    let (head, _) = get(&server, &renamed).await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let (head, body) = get(&server, target(&get_url)).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"0123456789");

    // The server is still serving everyone.
    alice.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_at_the_slot_and_at_the_upload() {
    let server = server();
    let mut alice = Client::login(&server, "alice", "alice-pw", "phone").await;
    let too_big = slot(&mut alice, "big.png", 2 << 20).await;
    assert!(too_big.contains("<file-too-large"), "{too_big}");
    assert!(
        too_big.contains("<max-file-size>1048576</max-file-size>"),
        "{too_big}"
    );

    // 600 KB stored; two more slots of 600 KB are each within the quota
    // on their own (1.2 MB of 1.5 MB), but not together.
    let file = vec![7u8; 600_000];
    let (p1, _) = urls(&slot(&mut alice, "one.png", file.len()).await);
    assert!(put(&server, &p1, &file, file.len())
        .await
        .starts_with("HTTP/1.1 201 "));
    let (p2, _) = urls(&slot(&mut alice, "two.png", file.len()).await);
    let (p3, _) = urls(&slot(&mut alice, "three.png", file.len()).await);
    assert!(put(&server, &p2, &file, file.len())
        .await
        .starts_with("HTTP/1.1 201 "));
    let over = put(&server, &p3, &file, file.len()).await;
    assert!(over.starts_with("HTTP/1.1 413 "), "{over}");
    assert!(
        over.contains("over the upload quota: 1200000 of 1572864 bytes used"),
        "{over}"
    );
    // And a new slot is refused at once.
    let refused = slot(&mut alice, "four.png", file.len()).await;
    assert!(refused.contains("resource-constraint"), "{refused}");
    assert_eq!(blobs_in_spool(&server).len(), 2);
    alice.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_files_are_removed_from_the_spool() {
    let server = server_with("2s");
    let mut alice = Client::login(&server, "alice", "alice-pw", "phone").await;
    let (p, g) = urls(&slot(&mut alice, "soon.png", 3).await);
    let stored = put(&server, &p, b"abc", 3).await;
    assert!(stored.starts_with("HTTP/1.1 201 "), "{stored}");
    assert_eq!(blobs_in_spool(&server).len(), 1);
    // The service's task removes it once its time is up, and says so.
    server.wait_for_log(&["removed expired uploads", "removed=1"]);
    assert!(blobs_in_spool(&server).is_empty());
    let (head, _) = get(&server, target(&g)).await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    alice.barrier().await;
}
