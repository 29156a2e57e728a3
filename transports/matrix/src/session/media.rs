//! Files and images both ways, as values: what the session asks the
//! driver to fetch and store, and what the results become. The driver
//! performs the transfers (`crate::driver`); nothing here does I/O.
//!
//! - **Matrix → XMPP**: an `m.image`, `m.file`, `m.video` or `m.audio`
//!   event with an `mxc://` URL, when the transport has the server's
//!   upload service to store files in, becomes a [`MediaJob`]: the
//!   messages as they would go without the file (described in words),
//!   and what to download. The driver downloads it with the user's
//!   token (authenticated media, [`AUTHENTICATED`], then the older
//!   [`LEGACY`] path when the homeserver does not know the first),
//!   bounded by the transport's `max-media-size`, stores it as one of
//!   the user's uploads, and sends the messages from
//!   [`MediaJob::finish`]: the file's URL as the body with an XEP-0066
//!   `<x xmlns='jabber:x:oob'/>` (shown inline by Conversations, Gajim
//!   and Dino), or, when that failed, the description saying so. A file
//!   the event says is larger than the limit is only described. The
//!   job is an action in the session's order, so the messages after it
//!   wait for it and the sync token is stored only once it is done.
//! - **XMPP → Matrix**: a message whose body is exactly its XEP-0066 URL
//!   (what clients send after an XEP-0363 upload, [`oob_link`]) is
//!   queued as a text message carrying the URL as an attachment; the
//!   driver fetches the file (from the upload service directly when the
//!   URL is one of its own, otherwise over HTTP(S), bounded), uploads it
//!   to the homeserver and sends [`attached`] instead, an `m.image`,
//!   `m.video`, `m.audio` or `m.file` by its content type. When any of
//!   that fails, the text with the URL is sent: never dropped.

use serde_json::{json, Value};
use switchboard_xml::{ns as xns, Element};

use crate::text::{clean_line, path_segment, MAX_LINE};

/// Where media are downloaded with the access token (Matrix 1.11).
pub const AUTHENTICATED: &str = "/_matrix/client/v1/media/download";

/// The unauthenticated download of older homeservers.
pub const LEGACY: &str = "/_matrix/media/v3/download";

/// Where files are uploaded to a homeserver.
pub const UPLOAD: &str = "/_matrix/media/v3/upload";

/// A file from Matrix to store and link to, with the messages that
/// announce it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaJob {
    /// The `mxc://` URL's server name and media id.
    pub server: String,
    pub media_id: String,
    /// The file's name and type, as the event gives them.
    pub name: String,
    pub content_type: String,
    /// The user's bare JID: the stored file is theirs.
    pub owner: String,
    /// The most bytes to download.
    pub limit: u64,
    /// The messages, with the file described in words.
    pub stanzas: Vec<Element>,
}

impl MediaJob {
    /// The download paths, in the order to try them: authenticated
    /// media first, the older path when the homeserver answers the first
    /// with 404 or `M_UNRECOGNIZED`.
    pub fn paths(&self) -> [String; 2] {
        let tail = format!(
            "/{}/{}",
            path_segment(&self.server),
            path_segment(&self.media_id)
        );
        [format!("{AUTHENTICATED}{tail}"), format!("{LEGACY}{tail}")]
    }

    /// The messages to send: with the file's URL as body and XEP-0066
    /// link when it was stored (`Ok(url)`), or described as before with
    /// why it could not be fetched (`Err(why)`).
    pub fn finish(self, stored: Result<String, String>) -> Vec<Element> {
        self.stanzas
            .into_iter()
            .map(|mut m| {
                rewrite(&mut m, &stored);
                m
            })
            .collect()
    }
}

/// Sets the body of `m` (or of the message a carbon forwards) for the
/// outcome.
fn rewrite(m: &mut Element, stored: &Result<String, String>) {
    if m.name == "message" {
        if let Some(body) = m.get_child_mut("body", xns::CLIENT) {
            let text = match stored {
                Ok(url) => url.clone(),
                Err(why) => format!(
                    "{} (the gateway could not fetch it: {})",
                    body.text(),
                    clean_line(why, MAX_LINE)
                ),
            };
            body.children.clear();
            body.append_text(text);
            if let Ok(url) = stored {
                m.append_child(
                    Element::new("x", xns::OOB)
                        .with_child(Element::new("url", xns::OOB).with_text(url.clone())),
                );
            }
            return;
        }
    }
    for child in m.elements_mut() {
        rewrite(child, stored);
    }
}

/// `mxc://server/id` → (server, id), when both are what the spec
/// allows (a server name; an id of letters, digits, `-` and `_`).
pub fn parse_mxc(url: &str) -> Option<(String, String)> {
    let (server, id) = url.strip_prefix("mxc://")?.split_once('/')?;
    let server_ok = !server.is_empty()
        && server.len() <= 255
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    let id_ok = !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    (server_ok && id_ok).then(|| (server.to_owned(), id.to_owned()))
}

/// What to download for a media message's `content`: its server, id,
/// file name and type; `None` when it is not a plain media message with
/// an `mxc://` URL (an encrypted file has none), or says it is larger
/// than `limit`.
pub fn source(content: &Value, limit: u64) -> Option<(String, String, String, String)> {
    let s = |k: &str| content.get(k).and_then(Value::as_str);
    if !matches!(
        s("msgtype"),
        Some("m.image" | "m.file" | "m.video" | "m.audio")
    ) {
        return None;
    }
    let (server, id) = parse_mxc(s("url")?)?;
    let info = content.get("info");
    if info
        .and_then(|i| i.get("size"))
        .and_then(Value::as_u64)
        .is_some_and(|n| n > limit)
    {
        return None;
    }
    let name = s("filename")
        .or_else(|| s("body"))
        .filter(|n| !n.is_empty() && !n.starts_with("mxc://"))
        .map(|n| clean_line(n, 200))
        .unwrap_or_else(|| id.clone());
    let content_type = info
        .and_then(|i| i.get("mimetype"))
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_owned();
    Some((server, id, name, content_type))
}

/// The URL a message links to when its body is exactly that URL, as
/// clients send an XEP-0363 upload: an `http(s)` URL in `<x
/// xmlns='jabber:x:oob'><url/></x>` equal to the trimmed body.
pub fn oob_link(s: &Element) -> Option<String> {
    let url = s.get_child("x", xns::OOB)?.child_text("url", xns::OOB)?;
    let url = url.trim();
    let body = s.child_text("body", &s.ns)?;
    let web = url.starts_with("https://") || url.starts_with("http://");
    (web && body.trim() == url && !url.contains(char::is_whitespace)).then(|| url.to_owned())
}

/// The Matrix message type for a content type.
pub fn msgtype_for(content_type: &str) -> &'static str {
    match content_type.split('/').next().unwrap_or_default() {
        "image" => "m.image",
        "video" => "m.video",
        "audio" => "m.audio",
        _ => "m.file",
    }
}

/// A file's name from the last segment of its URL's path.
pub fn name_from_url(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    let decoded = percent_decode(last).unwrap_or_else(|| last.to_owned());
    let name = clean_line(&decoded, 200);
    if name.is_empty() {
        "file".into()
    } else {
        name
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The event content for an uploaded file, in place of the text message
/// `text` (whose relations, a reply, it keeps).
pub fn attached(text: &Value, mxc: &str, name: &str, content_type: &str, size: u64) -> Value {
    let mut content = json!({
        "msgtype": msgtype_for(content_type),
        "body": name,
        "filename": name,
        "url": mxc,
        "info": { "mimetype": content_type, "size": size },
    });
    if let Some(rel) = text.get("m.relates_to") {
        content["m.relates_to"] = rel.clone();
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(s: &str) -> Element {
        switchboard_xml::parse_document(s.as_bytes(), Default::default()).unwrap()
    }

    #[test]
    fn mxc_urls_are_checked() {
        assert_eq!(
            parse_mxc("mxc://example.org/AbC-d_9"),
            Some(("example.org".into(), "AbC-d_9".into()))
        );
        for bad in [
            "mxc://example.org/../x",
            "mxc://ex/ample.org/x",
            "mxc:///x",
            "mxc://x/",
            "https://x/y",
            "mxc://x/a?b",
        ] {
            assert_eq!(parse_mxc(bad), None, "{bad}");
        }
    }

    #[test]
    fn sources_need_a_url_and_a_size_within_the_limit() {
        let img = json!({"msgtype":"m.image","body":"cat.png","url":"mxc://x/abc",
                         "info":{"size":2048,"mimetype":"image/png"}});
        assert_eq!(
            source(&img, 4096),
            Some((
                "x".into(),
                "abc".into(),
                "cat.png".into(),
                "image/png".into()
            ))
        );
        assert_eq!(source(&img, 1000), None, "larger than the limit");
        let encrypted = json!({"msgtype":"m.file","body":"a","file":{"url":"mxc://x/y"}});
        assert_eq!(source(&encrypted, 4096), None);
        let text = json!({"msgtype":"m.text","body":"hi","url":"mxc://x/y"});
        assert_eq!(source(&text, 4096), None);
        let unnamed = json!({"msgtype":"m.file","body":"mxc://x/y","url":"mxc://x/y"});
        assert_eq!(source(&unnamed, 10).unwrap().2, "y");
    }

    #[test]
    fn a_stored_file_becomes_its_url_with_an_oob_link_and_a_failure_is_said() {
        let job = MediaJob {
            server: "x".into(),
            media_id: "abc".into(),
            name: "cat.png".into(),
            content_type: "image/png".into(),
            owner: "u@l".into(),
            limit: 100,
            stanzas: vec![
                xml("<message xmlns='jabber:client' to='u@l/a'><body>[image: cat.png]</body></message>"),
                xml("<message xmlns='jabber:client' to='u@l'><sent xmlns='urn:xmpp:carbons:2'>\
                     <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>\
                     <body>[image: cat.png]</body></message></forwarded></sent></message>"),
            ],
        };
        assert_eq!(
            job.paths(),
            [
                "/_matrix/client/v1/media/download/x/abc".to_string(),
                "/_matrix/media/v3/download/x/abc".to_string()
            ]
        );
        let url = "https://up.l/upload/upload.l/1/cat.png";
        let ok = job.clone().finish(Ok(url.into()));
        assert_eq!(ok[0].child_text("body", xns::CLIENT).unwrap(), url);
        assert_eq!(
            ok[0]
                .get_child("x", xns::OOB)
                .and_then(|x| x.child_text("url", xns::OOB))
                .unwrap(),
            url
        );
        let inner = ok[1]
            .elements()
            .next()
            .unwrap()
            .elements()
            .next()
            .unwrap()
            .elements()
            .next()
            .unwrap();
        assert_eq!(inner.child_text("body", xns::CLIENT).unwrap(), url);
        assert!(inner.get_child("x", xns::OOB).is_some());
        let failed = job.finish(Err("HTTP 404".into()));
        assert_eq!(
            failed[0].child_text("body", xns::CLIENT).unwrap(),
            "[image: cat.png] (the gateway could not fetch it: HTTP 404)"
        );
        assert!(failed[0].get_child("x", xns::OOB).is_none());
    }

    #[test]
    fn only_a_body_that_is_its_oob_url_is_a_file() {
        let m = |body: &str, url: &str| {
            xml(&format!(
                "<message xmlns='jabber:client'><body>{body}</body>\
                 <x xmlns='jabber:x:oob'><url>{url}</url></x></message>"
            ))
        };
        let u = "https://up.l/upload/s/1/a%20b.png";
        assert_eq!(oob_link(&m(u, u)), Some(u.to_owned()));
        assert_eq!(oob_link(&m(&format!("{u}\n"), u)), Some(u.to_owned()));
        assert_eq!(oob_link(&m("look at this", u)), None);
        assert_eq!(oob_link(&m("ftp://x/y", "ftp://x/y")), None);
        assert_eq!(
            oob_link(&xml(
                "<message xmlns='jabber:client'><body>https://a/b</body></message>"
            )),
            None
        );
        assert_eq!(name_from_url(u), "a b.png");
        assert_eq!(name_from_url("https://a/"), "file");
    }

    #[test]
    fn uploaded_files_get_their_msgtype_and_keep_a_reply() {
        let text = json!({"msgtype":"m.text","body":"https://u/x.png",
                          "m.relates_to":{"m.in_reply_to":{"event_id":"$e"}}});
        let c = attached(&text, "mxc://hs/id", "x.png", "image/png", 4);
        assert_eq!(c["msgtype"], "m.image");
        assert_eq!(c["url"], "mxc://hs/id");
        assert_eq!(c["info"]["size"], 4);
        assert_eq!(c["m.relates_to"]["m.in_reply_to"]["event_id"], "$e");
        assert_eq!(msgtype_for("video/mp4"), "m.video");
        assert_eq!(msgtype_for("audio/ogg"), "m.audio");
        assert_eq!(msgtype_for("application/pdf"), "m.file");
    }
}
