//! The user directory: a service at its own hostname (`users.example.org`)
//! where users list themselves and search for each other (XEP-0055).
//!
//! Listing is opt-in, the jabberd 1.4 JUD way: a user registers with the
//! directory (`jabber:iq:register`: first name, last name, nick, e-mail),
//! can change that entry, and removes it with `<remove/>`. Search looks
//! only at those entries, never at the accounts themselves.
//!
//! Only users of the directory's domains may list themselves or search:
//! by default the parent domain of the service (`users.example.org` serves
//! `example.org`), or those named in `domains="a.org b.org"` on its
//! `<service>` element.
//!
//! Map: [`entries`] keeps the listings in the service's store, [`listing`]
//! answers registration, [`search`] answers search, and this file
//! dispatches.

pub mod entries;
pub mod listing;
pub mod search;

use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, iq_result, StanzaError};
use switchboard_service::{BoxFuture, Identity, Service, ServiceContext};
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

use entries::Entries;

/// The directory service kind (`type="directory"`).
#[derive(Debug, Clone)]
pub struct Directory {
    /// The domains whose users may list themselves and search.
    domains: Vec<String>,
}

impl Directory {
    /// Reads the directory's own settings from its `<service>` element.
    pub fn from_config(id: &str, el: &Element) -> Result<Directory, String> {
        let domains: Vec<String> = match el.attr("domains") {
            Some(list) => list
                .split_whitespace()
                .map(|d| {
                    switchboard_jid::normalize_domain(d)
                        .map_err(|e| format!("domains=: \"{d}\" is not a domain: {e}"))
                })
                .collect::<Result<_, _>>()?,
            None => match id.split_once('.') {
                Some((_, parent)) if parent.contains('.') || parent == "localhost" => {
                    vec![parent.to_string()]
                }
                _ => {
                    return Err(format!(
                        "cannot tell which domain {id} serves; say domains=\"example.org\""
                    ))
                }
            },
        };
        if domains.is_empty() {
            return Err("domains= is empty".into());
        }
        Ok(Directory { domains })
    }

    fn serves(&self, from: &Jid) -> bool {
        self.domains.iter().any(|d| d == from.domain())
    }
}

impl Service for Directory {
    fn identity(&self) -> Identity {
        Identity {
            category: "directory".into(),
            kind: "user".into(),
            name: "User directory".into(),
        }
    }

    fn run(&self, ctx: ServiceContext, inbox: mpsc::Receiver<Element>) -> BoxFuture {
        let me = self.clone();
        Box::pin(async move {
            let entries = match Entries::load(ctx.store.clone()).await {
                Ok(e) => e,
                Err(e) => {
                    // The supervisor restarts the service with backoff
                    // and tells the admins.
                    tracing::error!(service = %ctx.jid, "{e}");
                    return;
                }
            };
            tracing::info!(service = %ctx.jid, listed = entries.len(), "user directory up");
            me.serve(ctx, inbox, entries).await;
        })
    }
}

impl Directory {
    async fn serve(
        &self,
        ctx: ServiceContext,
        mut inbox: mpsc::Receiver<Element>,
        mut entries: Entries,
    ) {
        while let Some(stanza) = inbox.recv().await {
            if let Some(reply) = self.handle(&ctx.jid, &stanza, &mut entries).await {
                if ctx.out.send(reply).await.is_err() {
                    return;
                }
            }
        }
    }

    /// One stanza in, at most one reply out. Directory writes are a few
    /// hundred bytes and durable before the reply: a directory is not a
    /// hot path, and awaiting them in turn keeps each user's changes in
    /// order.
    pub async fn handle(
        &self,
        host: &str,
        stanza: &Element,
        entries: &mut Entries,
    ) -> Option<Element> {
        let from = stanza.attr("from").and_then(|f| Jid::parse(f).ok())?;
        let answer = |r: Result<Option<Element>, StanzaError>| match r {
            Ok(payload) => Some(iq_result(stanza, payload)),
            Err(e) => error_reply(stanza, &e),
        };
        match stanza.name.as_str() {
            "iq" => {
                let kind = stanza.attr("type").unwrap_or("");
                if kind != "get" && kind != "set" {
                    return None;
                }
                let to_service = stanza.attr("to") == Some(host);
                let Some(payload) = stanza.first_element() else {
                    return error_reply(stanza, &StanzaError::bad_request());
                };
                if !to_service {
                    return error_reply(stanza, &StanzaError::service_unavailable());
                }
                match (payload.ns.as_str(), payload.name.as_str(), kind) {
                    (ns::DISCO_INFO, "query", "get") if payload.attr("node").is_none() => {
                        answer(Ok(Some(self.disco_info())))
                    }
                    (ns::DISCO_ITEMS, "query", "get") => {
                        answer(Ok(Some(Element::new("query", ns::DISCO_ITEMS))))
                    }
                    (ns::PING, "ping", "get") => answer(Ok(None)),
                    (ns::REGISTER, "query", _) => {
                        if !self.serves(&from) {
                            return error_reply(stanza, &self.outsider());
                        }
                        answer(listing::handle(kind, payload, &from.to_bare(), entries).await)
                    }
                    (ns::SEARCH, "query", _) => {
                        if !self.serves(&from) {
                            return error_reply(stanza, &self.outsider());
                        }
                        answer(search::handle(kind, payload, entries))
                    }
                    _ => error_reply(stanza, &StanzaError::service_unavailable()),
                }
            }
            "message" => error_reply(
                stanza,
                &StanzaError::service_unavailable()
                    .with_text("the directory answers searches, not messages"),
            ),
            // The directory has no presence of its own; presence to it is
            // dropped, as RFC 6121 allows for presence a server cannot use.
            _ => None,
        }
    }

    fn outsider(&self) -> StanzaError {
        StanzaError::forbidden().with_text(format!(
            "this directory is for users of {}",
            self.domains.join(", ")
        ))
    }

    fn disco_info(&self) -> Element {
        let id = self.identity();
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", id.category)
                .with_attr("type", id.kind)
                .with_attr("name", id.name),
        );
        for f in [
            ns::DISCO_INFO,
            ns::DISCO_ITEMS,
            ns::SEARCH,
            ns::REGISTER,
            ns::DATA_FORMS,
            ns::PING,
        ] {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        q
    }
}

#[cfg(test)]
mod tests;
