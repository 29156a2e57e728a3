//! The XMPP side of the upload service: disco (identity `store/file`,
//! the feature, the size limit in a data form, XEP-0363 §3) and slot
//! requests (§4): the size limit (`file-too-large` with the limit), the
//! user's quota (`resource-constraint`), a safe file name, then a slot.
//! A task of the service removes expired files.

use std::sync::Arc;
use std::time::Duration;

use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, iq_result, ErrorType, StanzaError};
use switchboard_service::{BoxFuture, Identity, Service, ServiceContext};
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

use crate::slot::{self, Slot};
use crate::store::{remove_expired, unix_now, usage};
use crate::Uploads;

/// XEP-0363's namespace.
pub const NS: &str = "urn:xmpp:http:upload:0";

/// The service kind `type="upload"`.
pub struct UploadService {
    shared: Arc<Uploads>,
}

impl UploadService {
    pub fn new(shared: Arc<Uploads>) -> UploadService {
        UploadService { shared }
    }
}

impl Service for UploadService {
    fn identity(&self) -> Identity {
        Identity {
            category: "store".into(),
            kind: "file".into(),
            name: "HTTP file upload".into(),
        }
    }

    fn run(&self, ctx: ServiceContext, mut inbox: mpsc::Receiver<Element>) -> BoxFuture {
        let shared = self.shared.clone();
        Box::pin(async move {
            shared.set_key(ctx.key.bytes());
            let expiry = tokio::spawn(expire_loop(shared.clone()));
            while let Some(stanza) = inbox.recv().await {
                if let Some(reply) = handle(&shared, &stanza).await {
                    if ctx.out.send(reply).await.is_err() {
                        break;
                    }
                }
            }
            expiry.abort();
        })
    }
}

/// Removes expired files at start and then now and then: every quarter
/// of the expiry (a file outlives its time by at most a quarter more), at
/// least a second and at most an hour apart. A listing of the scope's
/// blobs each time: cheap next to the files themselves.
async fn expire_loop(shared: Arc<Uploads>) {
    let Some(expire) = shared.settings.expire else {
        return;
    };
    let every = Duration::from_secs((expire / 4).clamp(1, 3600));
    loop {
        match remove_expired(shared.blobs.as_ref(), &shared.jid, unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(service = %shared.jid, removed = n, "removed expired uploads"),
            Err(e) => tracing::warn!(service = %shared.jid, "removing expired uploads: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// One stanza in, at most one reply out.
pub async fn handle(shared: &Uploads, stanza: &Element) -> Option<Element> {
    if stanza.name != "iq" {
        if stanza.name == "message" {
            return error_reply(
                stanza,
                &StanzaError::service_unavailable().with_text("this service takes upload requests"),
            );
        }
        return None;
    }
    let kind = stanza.attr("type").unwrap_or_default();
    if kind != "get" && kind != "set" {
        return None;
    }
    let from = stanza.attr("from").and_then(|f| Jid::parse(f).ok())?;
    let Some(payload) = stanza.first_element() else {
        return error_reply(stanza, &StanzaError::bad_request());
    };
    if stanza.attr("to") != Some(shared.jid.as_str()) {
        return error_reply(stanza, &StanzaError::service_unavailable());
    }
    match (payload.ns.as_str(), payload.name.as_str(), kind) {
        (ns::DISCO_INFO, "query", "get") if payload.attr("node").is_none() => {
            Some(iq_result(stanza, Some(disco_info(shared))))
        }
        (ns::DISCO_ITEMS, "query", "get") => Some(iq_result(
            stanza,
            Some(Element::new("query", ns::DISCO_ITEMS)),
        )),
        (ns::PING, "ping", "get") => Some(iq_result(stanza, None)),
        (NS, "request", "get") => match request(shared, &from, payload).await {
            Ok(slot) => Some(iq_result(stanza, Some(slot))),
            Err(Refusal::TooLarge) => {
                let mut r = error_reply(
                    stanza,
                    &StanzaError::new("not-acceptable", ErrorType::Modify).with_text(format!(
                        "the file is larger than the limit of {} bytes",
                        shared.settings.max_file_size
                    )),
                )?;
                if let Some(e) = r.elements_mut().find(|e| e.name == "error") {
                    e.append_child(
                        Element::new("file-too-large", NS).with_child(
                            Element::new("max-file-size", NS)
                                .with_text(shared.settings.max_file_size.to_string()),
                        ),
                    );
                }
                Some(r)
            }
            Err(Refusal::Error(e)) => error_reply(stanza, &e),
        },
        _ => error_reply(stanza, &StanzaError::service_unavailable()),
    }
}

enum Refusal {
    TooLarge,
    Error(StanzaError),
}

impl From<StanzaError> for Refusal {
    fn from(e: StanzaError) -> Refusal {
        Refusal::Error(e)
    }
}

async fn request(shared: &Uploads, from: &Jid, req: &Element) -> Result<Element, Refusal> {
    let s = &shared.settings;
    if !s.domains.iter().any(|d| d == from.domain()) {
        return Err(StanzaError::forbidden()
            .with_text(format!("uploads are for users of {}", s.domains.join(", ")))
            .into());
    }
    let name = slot::file_name(req.attr("filename").unwrap_or_default())
        .map_err(|why| StanzaError::bad_request().with_text(why))?;
    let size: u64 = req
        .attr("size")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            StanzaError::bad_request().with_text("size= must be a number of bytes above 0")
        })?;
    if size > s.max_file_size {
        return Err(Refusal::TooLarge);
    }
    let owner = from.to_bare().to_string();
    let used = usage(shared.blobs.as_ref(), &shared.jid, &owner)
        .await
        .map_err(|e| {
            tracing::error!(service = %shared.jid, "reading upload usage: {e}");
            StanzaError::internal_server_error()
        })?;
    if used.saturating_add(size) > s.quota {
        return Err(StanzaError::new("resource-constraint", ErrorType::Wait)
            .with_text(format!(
                "over your upload quota: {used} of {} bytes used; this file needs {size}",
                s.quota
            ))
            .into());
    }
    let (Some(key), Some(base)) = (shared.key(), shared.base_url()) else {
        return Err(StanzaError::new("internal-server-error", ErrorType::Wait)
            .with_text("the server has no HTTP listener for uploads")
            .into());
    };
    let slot = Slot {
        service: shared.jid.clone(),
        id: slot::new_id(),
        name,
        owner,
        size,
        content_type: slot::content_type(req.attr("content-type")),
        expires: unix_now() + s.slot_lifetime,
    };
    let get = format!("{base}{}", slot.path());
    let put = format!("{get}?{}", slot.put_query(key));
    Ok(Element::new("slot", NS)
        .with_child(Element::new("put", NS).with_attr("url", put))
        .with_child(Element::new("get", NS).with_attr("url", get)))
}

fn disco_info(shared: &Uploads) -> Element {
    Element::new("query", ns::DISCO_INFO)
        .with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "store")
                .with_attr("type", "file")
                .with_attr("name", "HTTP file upload"),
        )
        .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", NS))
        .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::DISCO_INFO))
        .with_child(
            Element::new("x", ns::DATA_FORMS)
                .with_attr("type", "result")
                .with_child(
                    Element::new("field", ns::DATA_FORMS)
                        .with_attr("var", "FORM_TYPE")
                        .with_attr("type", "hidden")
                        .with_child(Element::new("value", ns::DATA_FORMS).with_text(NS)),
                )
                .with_child(
                    Element::new("field", ns::DATA_FORMS)
                        .with_attr("var", "max-file-size")
                        .with_child(
                            Element::new("value", ns::DATA_FORMS)
                                .with_text(shared.settings.max_file_size.to_string()),
                        ),
                ),
        )
}

#[cfg(test)]
mod tests;
