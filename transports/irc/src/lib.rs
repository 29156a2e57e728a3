//! The IRC transport: a service at its own hostname (`irc.example.org`)
//! through which XMPP users join IRC channels as XEP-0045 rooms and write
//! to IRC users, each with their own IRC connection.
//!
//! Addressing is biboumi's (see [`address`]): `#chan%irc.server@host` is a
//! room, `nick%irc.server@host` an IRC user. Only the servers listed in
//! the `<service>` element are reached ([`config`]). Each (XMPP account,
//! IRC server) pair has one IRC connection, shared by the account's
//! resources ([`connection`]); IRC events become MUC stanzas ([`muc`]) and
//! text is made safe both ways ([`text`]). Users register their own
//! settings for each server (nick, passwords: [`settings`], sealed at
//! rest), which a connection signs on with ([`signon`]: PASS, SASL PLAIN,
//! NickServ).
//!
//! The protocol layer is `irc-proto` (the parsing half of the `irc` crate)
//! over the transport's own tokio sockets, not the `irc` crate's client:
//! that client decodes every line with one fixed encoding before the
//! caller sees it (no per-line Latin-1 fallback), has no bound of its own
//! on incoming lines, and brings configuration and TLS stacks a
//! multi-connection gateway does not want. TLS is rustls ([`tls`]), as in
//! the rest of Switchboard.
//!
//! Map: this file dispatches stanzas; [`address`], [`config`], [`text`],
//! [`muc`], [`signon`] are pure; [`settings`] owns the registrations;
//! [`connection`] owns the sockets.

pub mod address;
pub mod config;
pub mod connection;
pub mod muc;
pub mod settings;
pub mod signon;
pub mod text;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, iq_result, stanza_type, StanzaError};
use switchboard_service::{BoxFuture, Identity, Service, ServiceContext};
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

use address::Address;
use config::IrcConfig;
use connection::{Key, ToIrc};
use settings::Settings;

/// The IRC transport service kind (`type="irc"`).
#[derive(Debug, Clone)]
pub struct IrcTransport {
    config: IrcConfig,
    /// The TLS client config of each TLS server, by host.
    tls: HashMap<String, Arc<rustls::ClientConfig>>,
}

impl IrcTransport {
    /// Reads the transport's settings from its `<service>` element.
    pub fn from_config(el: &Element) -> Result<IrcTransport, String> {
        let config = IrcConfig::from_element(el)?;
        let mut tls = HashMap::new();
        for s in config.servers.iter().filter(|s| s.tls) {
            let c = tls::client_config(s.ca_file.as_deref())
                .map_err(|e| format!("<server host=\"{}\">: {e}", s.host))?;
            tls.insert(s.host.clone(), c);
        }
        Ok(IrcTransport { config, tls })
    }
}

impl Service for IrcTransport {
    fn identity(&self) -> Identity {
        Identity {
            category: "gateway".into(),
            kind: "irc".into(),
            name: "IRC gateway".into(),
        }
    }

    fn run(&self, ctx: ServiceContext, mut inbox: mpsc::Receiver<Element>) -> BoxFuture {
        let me = self.clone();
        Box::pin(async move {
            let (config, host, dir, key) = (
                me.config.clone(),
                ctx.jid.clone(),
                ctx.data_dir.clone(),
                ctx.key.clone(),
            );
            let opened =
                tokio::task::spawn_blocking(move || Settings::open(&config, &host, &dir, key))
                    .await;
            let mut settings = match opened {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    // The supervisor restarts the service with backoff and
                    // tells the admins.
                    tracing::error!(service = %ctx.jid, error = %e, "cannot open the IRC registrations");
                    return;
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            tracing::info!(service = %ctx.jid, servers = %me.config.names(), "IRC transport up");
            let (done_tx, mut done_rx) = mpsc::channel::<Key>(64);
            let mut conns: HashMap<Key, mpsc::Sender<ToIrc>> = HashMap::new();
            loop {
                tokio::select! {
                    stanza = inbox.recv() => {
                        let Some(stanza) = stanza else { return };
                        let reply = me.handle(&ctx, &stanza, &mut settings, &mut conns, &done_tx).await;
                        if let Some(r) = reply {
                            if ctx.out.send(r).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(key) = done_rx.recv() => {
                        // A connection ended; a newer one under the same
                        // key would still have its receiver open.
                        if conns.get(&key).is_some_and(|tx| tx.is_closed()) {
                            conns.remove(&key);
                        }
                    }
                }
            }
        })
    }
}

impl IrcTransport {
    fn disco_info(&self, settings: &Settings) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO)
            .with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "gateway")
                    .with_attr("type", "irc")
                    .with_attr("name", "IRC gateway"),
            )
            .with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "conference")
                    .with_attr("type", "irc")
                    .with_attr("name", "IRC channels"),
            );
        let mut features = vec![ns::DISCO_INFO, ns::DISCO_ITEMS, muc::MUC, ns::PING];
        if settings.default_server().is_some() {
            features.extend([ns::REGISTER, ns::COMMANDS]);
        }
        for f in features {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        q
    }

    /// An IRC server's JID: where its settings are registered.
    fn server_info(server: &str) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "gateway")
                .with_attr("type", "irc")
                .with_attr("name", server),
        );
        for f in [ns::DISCO_INFO, ns::DISCO_ITEMS, ns::REGISTER, ns::COMMANDS] {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        q
    }

    fn room_info(channel: &str) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "conference")
                .with_attr("type", "irc")
                .with_attr("name", channel),
        );
        for f in [ns::DISCO_INFO, muc::MUC, "muc_nonanonymous", "muc_open"] {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        q
    }

    /// One stanza in, at most one direct reply out (IRC-side effects go
    /// through the connections).
    async fn handle(
        &self,
        ctx: &ServiceContext,
        stanza: &Element,
        settings: &mut Settings,
        conns: &mut HashMap<Key, mpsc::Sender<ToIrc>>,
        done: &mpsc::Sender<Key>,
    ) -> Option<Element> {
        let from = stanza.attr("from").and_then(|f| Jid::parse(f).ok())?;
        let to = stanza.attr("to").and_then(|t| Jid::parse(t).ok())?;
        let addr = match address::parse(to.node(), to.resource()) {
            Ok(a) => a,
            Err(e) => return error_reply(stanza, &e.into()),
        };
        let kind = stanza_type(stanza).to_string();
        match (stanza.name.as_str(), &addr) {
            ("iq", _) => self.iq(stanza, &addr, &kind, settings).await,
            (
                "presence",
                Address::Channel {
                    channel,
                    server,
                    nick,
                },
            ) => {
                let Some(nick) = nick else {
                    return error_reply(
                        stanza,
                        &StanzaError::jid_malformed().with_text("say which nick to join with"),
                    );
                };
                match kind.as_str() {
                    "available" => {
                        let entry = match self.config.server(server) {
                            Some(e) => e.clone(),
                            None => return error_reply(stanza, &self.not_allowed(server)),
                        };
                        let key = (from.to_bare().to_string(), entry.host.clone());
                        // A new connection signs on with the user's
                        // settings for that server, read now.
                        let live = conns.get(&key).is_some_and(|tx| !tx.is_closed());
                        let profile = if live {
                            signon::Profile::default()
                        } else {
                            match settings.profile(&from, &entry).await {
                                Ok(p) => p,
                                Err(e) => return error_reply(stanza, &e),
                            }
                        };
                        let req = ToIrc::Join {
                            channel: channel.clone(),
                            nick: nick.clone(),
                            full: from.to_string(),
                        };
                        let start = || {
                            connection::spawn(
                                key.clone(),
                                ctx.jid.clone(),
                                (entry.host.clone(), entry.port),
                                self.tls.get(&entry.host).cloned(),
                                nick.clone(),
                                profile.clone(),
                                ctx.out.clone(),
                                done.clone(),
                            )
                        };
                        let tx = conns.entry(key.clone()).or_insert_with(start);
                        // A connection that is ending refuses new requests:
                        // the join goes to a fresh one.
                        if let Err(mpsc::error::SendError(req)) = tx.send(req).await {
                            *tx = start();
                            let _ = tx.send(req).await;
                        }
                        None
                    }
                    "unavailable" => {
                        let key = (from.to_bare().to_string(), server.to_ascii_lowercase());
                        if let Some(tx) = conns.get(&key) {
                            let _ = tx
                                .send(ToIrc::Leave {
                                    channel: channel.clone(),
                                    full: from.to_string(),
                                })
                                .await;
                        }
                        None
                    }
                    _ => None,
                }
            }
            (
                "message",
                Address::Channel {
                    channel,
                    server,
                    nick: None,
                },
            ) if kind == "groupchat" => {
                let body = stanza.child_text("body", &stanza.ns);
                let subject = stanza.child_text("subject", &stanza.ns);
                let req = match (body, subject) {
                    (Some(body), _) => ToIrc::Say {
                        channel: channel.clone(),
                        full: from.to_string(),
                        body,
                    },
                    (None, Some(subject)) => ToIrc::Topic {
                        channel: channel.clone(),
                        full: from.to_string(),
                        subject,
                    },
                    (None, None) => return None, // chat states and the like
                };
                let key = (from.to_bare().to_string(), server.to_ascii_lowercase());
                match conns.get(&key) {
                    Some(tx) => {
                        let _ = tx.send(req).await;
                        None
                    }
                    None => error_reply(
                        stanza,
                        &StanzaError::new(
                            "not-acceptable",
                            switchboard_service::stanza::ErrorType::Modify,
                        )
                        .with_text("join the room before writing to it"),
                    ),
                }
            }
            ("message", Address::User { nick, server }) if kind != "error" => {
                let body = stanza.child_text("body", &stanza.ns)?;
                let key = (from.to_bare().to_string(), server.to_ascii_lowercase());
                match conns.get(&key) {
                    Some(tx) => {
                        let _ = tx
                            .send(ToIrc::Private {
                                nick: nick.clone(),
                                body,
                            })
                            .await;
                        None
                    }
                    None => error_reply(
                        stanza,
                        &StanzaError::service_unavailable().with_text(
                            "join a channel on that IRC server first: private messages use the \
                             connection a room opened",
                        ),
                    ),
                }
            }
            ("message", _) => error_reply(
                stanza,
                &StanzaError::service_unavailable().with_text("this address takes no messages"),
            ),
            _ => None,
        }
    }

    async fn iq(
        &self,
        stanza: &Element,
        addr: &Address,
        kind: &str,
        settings: &mut Settings,
    ) -> Option<Element> {
        if kind != "get" && kind != "set" {
            return None;
        }
        let payload = stanza.first_element();
        let get = kind == "get";
        // Settings live at a server's JID, and at the transport's when it
        // has one server (see [`settings`]).
        let settings_of = match addr {
            Address::Server { server } => match self.config.server(server) {
                Some(e) => Some((e.host.clone(), false)),
                None => return error_reply(stanza, &self.not_allowed(server)),
            },
            Address::Transport => settings.default_server().map(|s| (s.to_owned(), true)),
            _ => None,
        };
        if let (Some((server, at_transport)), Some(p)) = (&settings_of, payload) {
            if p.is("query", ns::REGISTER) {
                return settings.register(stanza, server).await;
            }
            if settings.is_command_iq(stanza) {
                return settings.command(stanza, server, *at_transport).await;
            }
        }
        match (addr, payload) {
            (Address::Transport, Some(p)) if get && p.is("query", ns::DISCO_INFO) => {
                Some(iq_result(stanza, Some(self.disco_info(settings))))
            }
            (Address::Transport | Address::Server { .. }, Some(p))
                if get && p.is("query", ns::DISCO_ITEMS) =>
            {
                Some(iq_result(
                    stanza,
                    Some(Element::new("query", ns::DISCO_ITEMS)),
                ))
            }
            (Address::Transport, Some(p)) if get && p.is("ping", ns::PING) => {
                Some(iq_result(stanza, None))
            }
            (Address::Server { server }, Some(p)) if get && p.is("query", ns::DISCO_INFO) => {
                Some(iq_result(stanza, Some(Self::server_info(server))))
            }
            (
                Address::Channel {
                    channel,
                    nick: None,
                    ..
                },
                Some(p),
            ) if get && p.is("query", ns::DISCO_INFO) => {
                Some(iq_result(stanza, Some(Self::room_info(channel))))
            }
            _ => error_reply(stanza, &StanzaError::service_unavailable()),
        }
    }

    fn not_allowed(&self, server: &str) -> StanzaError {
        StanzaError::not_allowed().with_text(format!(
            "this gateway does not connect to {server}; it connects to: {}",
            self.config.names()
        ))
    }
}
