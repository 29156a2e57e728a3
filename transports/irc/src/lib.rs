//! The IRC transport: a service at its own hostname (`irc.example.org`)
//! through which XMPP users join IRC channels as XEP-0045 rooms and write
//! to IRC users, each with their own IRC connection.
//!
//! Addressing is biboumi's (see [`address`]): `#chan%irc.server@host` is a
//! room, `nick%irc.server@host` an IRC user. Only the servers listed in
//! the `<service>` element are reached ([`config`]). Each (XMPP account,
//! IRC server) pair has one IRC connection, shared by the account's
//! resources: a sans-IO [`session`] machine driven by a thin
//! [`connection`] task. IRC events become MUC stanzas ([`muc`]) and text
//! is made safe both ways ([`text`]). Users register their own
//! settings for each server (nick, passwords: [`settings`], sealed at
//! rest), which a connection signs on with ([`signon`]: PASS, SASL PLAIN,
//! NickServ).
//!
//! The protocol layer is `irc-proto` (the parsing half of the `irc` crate)
//! over the transport's own tokio sockets, not the `irc` crate's client:
//! that client decodes every line with one fixed encoding before the
//! caller sees it (no per-line Latin-1 fallback), has no bound of its own
//! on incoming lines, and brings configuration and TLS stacks a
//! multi-connection gateway does not want. TLS is rustls with the link
//! kit's verifiers (`switchboard_link::tls`), as in the rest of
//! Switchboard; so are the reconnection backoff, the flood control's token
//! bucket and the per-user connection table (`switchboard_link`).
//!
//! A message to an IRC server's JID (`irc.server@host`) from one of the
//! host's admins (`ServiceContext::admins`) is sent to that server as a
//! raw IRC command over the admin's own connection; anyone else gets
//! `forbidden`.
//!
//! Map: this file dispatches stanzas; [`address`], [`config`], [`text`],
//! [`muc`], [`modes`], [`signon`] and [`session`] are pure; [`settings`]
//! owns the registrations; [`connection`] owns the sockets.

pub mod address;
pub mod config;
pub mod connection;
pub mod modes;
pub mod muc;
pub mod session;
pub mod settings;
pub mod signon;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_jid::Jid;
use switchboard_link::table::{ConnectionTable, LimitReached, Refused};
use switchboard_link::tls::TrustError;
use switchboard_service::gateway::unescape_localpart;
use switchboard_service::stanza::{error_reply, iq_result, stanza_type, ErrorType, StanzaError};
use switchboard_service::{BoxFuture, Identity, Service, ServiceContext};
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

use address::Address;
use config::IrcConfig;
use connection::{Done, Target, ToIrc};
use settings::Settings;

/// The IRC connections: one per (user's bare JID, IRC server).
type Conns = ConnectionTable<ToIrc>;

/// What opening a connection needs from the service loop.
struct Link<'a> {
    ctx: &'a ServiceContext,
    settings: &'a mut Settings,
    conns: &'a mut Conns,
    done: &'a mpsc::Sender<Done>,
}

/// An IRC nick made from a JID's local part, for a connection that no
/// room named: the characters nicks allow, not starting with a digit or
/// `-`, at most 16 of them; `xmpp` when nothing is left.
fn default_nick(local: &str) -> String {
    let nick: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-[]\\`^{}|".contains(*c))
        .skip_while(|c| c.is_ascii_digit() || *c == '-')
        .take(16)
        .collect();
    if nick.is_empty() {
        "xmpp".into()
    } else {
        nick
    }
}

/// The IRC transport service kind (`type="irc"`).
#[derive(Debug, Clone)]
pub struct IrcTransport {
    config: IrcConfig,
    /// The TLS client config of each TLS server, by host.
    tls: HashMap<String, Arc<rustls::ClientConfig>>,
    /// Each server's sign-ons in progress ([`connection::SIGNONS`]), by
    /// host.
    signons: HashMap<String, Arc<tokio::sync::Semaphore>>,
}

impl IrcTransport {
    /// Reads the transport's settings from its `<service>` element.
    pub fn from_config(el: &Element) -> Result<IrcTransport, String> {
        let config = IrcConfig::from_element(el)?;
        let mut tls = HashMap::new();
        for s in config.servers.iter().filter(|s| s.tls) {
            let c = switchboard_link::tls::client_config(&s.trust)
                .map_err(|e| format!("<server host=\"{}\">: {}", s.host, trust_error(e)))?;
            tls.insert(s.host.clone(), Arc::new(c.config));
        }
        let signons = config
            .servers
            .iter()
            .map(|s| {
                let turns = Arc::new(tokio::sync::Semaphore::new(connection::SIGNONS));
                (s.host.clone(), turns)
            })
            .collect();
        Ok(IrcTransport {
            config,
            tls,
            signons,
        })
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
            let mut settings = Settings::open(&me.config, &ctx.jid, &ctx.store, ctx.key.clone());
            tracing::info!(service = %ctx.jid, servers = %me.config.names(), "IRC transport up");
            let (done_tx, mut done_rx) = mpsc::channel::<Done>(64);
            let mut conns = Conns::new(me.config.max_connections);
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
                    Some((key, again)) = done_rx.recv() => {
                        // A connection ended (a newer one under the same
                        // key stays).
                        conns.ended(&key.0, &key.1);
                        // What reached it as it quit, for a new one.
                        for stanza in again {
                            let reply = me.handle(&ctx, &stanza, &mut settings, &mut conns, &done_tx).await;
                            if let Some(r) = reply {
                                if ctx.out.send(r).await.is_err() {
                                    return;
                                }
                            }
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
        let mut features = vec![
            ns::DISCO_INFO,
            ns::DISCO_ITEMS,
            muc::MUC,
            ns::PING,
            ns::VERSION,
        ];
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
        for f in [
            ns::DISCO_INFO,
            muc::MUC,
            "muc_nonanonymous",
            "muc_open",
            // XEP-0410: the room answers its occupants' self-pings.
            "http://jabber.org/protocol/muc#self-ping-optimization",
        ] {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        q
    }

    /// Hands a request to the user's connection to `server` without
    /// waiting: the service loop never blocks on one user's busy
    /// connection. A full queue is an error for the sender; no connection
    /// (or one that is ending), `Err(req)`.
    fn hand(
        conns: &Conns,
        user: &str,
        server: &str,
        req: ToIrc,
    ) -> Result<Result<(), StanzaError>, ToIrc> {
        match conns.hand(user, server, req) {
            Ok(()) => Ok(Ok(())),
            Err(Refused::Busy(_)) => Ok(Err(StanzaError::new(
                "resource-constraint",
                ErrorType::Wait,
            )
            .with_text("your IRC connection is busy; try again in a moment"))),
            Err(Refused::Absent(req)) => Err(req),
        }
    }

    /// One stanza in, at most one direct reply out (IRC-side effects go
    /// through the connections).
    async fn handle(
        &self,
        ctx: &ServiceContext,
        stanza: &Element,
        settings: &mut Settings,
        conns: &mut Conns,
        done: &mpsc::Sender<Done>,
    ) -> Option<Element> {
        let from = stanza.attr("from").and_then(|f| Jid::parse(f).ok())?;
        let to = stanza.attr("to").and_then(|t| Jid::parse(t).ok())?;
        let addr = match address::parse_with_default(
            to.node(),
            to.resource(),
            self.config.default_server.as_deref(),
        ) {
            Ok(a) => a,
            Err(e) => return error_reply(stanza, &e.into()),
        };
        // Whether the address is the default server's short form: replies
        // then come from the same form.
        let short = to
            .node()
            .is_some_and(|n| !unescape_localpart(n).contains('%'));
        let kind = stanza_type(stanza).to_string();
        let bare = from.to_bare().to_string();
        match (stanza.name.as_str(), &addr) {
            (
                "iq",
                Address::Channel {
                    channel,
                    server,
                    nick: Some(_),
                },
            ) if kind == "get"
                && stanza
                    .first_element()
                    .is_some_and(|p| p.is("ping", ns::PING)) =>
            {
                // XEP-0410 self-ping, answered by the connection that
                // knows whether this resource is in the room.
                let key = (bare, server.to_ascii_lowercase());
                let req = ToIrc::SelfPing {
                    channel: channel.clone(),
                    full: from.to_string(),
                    iq: Box::new(stanza.clone()),
                };
                match Self::hand(conns, &key.0, &key.1, req) {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => error_reply(stanza, &e),
                    Err(_) => error_reply(
                        stanza,
                        &StanzaError::new("not-acceptable", ErrorType::Cancel)
                            .with_text("you are not in this room"),
                    ),
                }
            }
            (
                "iq",
                Address::Channel {
                    channel,
                    server,
                    nick: None,
                },
            ) if kind == "set"
                && stanza
                    .first_element()
                    .is_some_and(|p| p.is("query", muc::MUC_ADMIN)) =>
            {
                self.admin(stanza, &from, channel, server, conns)
            }
            ("iq", _) => self.iq(stanza, &addr, &kind, settings).await,
            ("presence", Address::Transport) => {
                for p in Self::gateway_presence(ctx, &from, &kind) {
                    if ctx.out.send(p).await.is_err() {
                        break;
                    }
                }
                None
            }
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
                        // XEP-0045 §7.2.6: the room password, which
                        // IRC calls the channel key.
                        let key = stanza
                            .get_child("x", muc::MUC)
                            .and_then(|x| x.child_text("password", muc::MUC))
                            .map(|k| k.trim().to_string())
                            .filter(|k| {
                                !k.is_empty()
                                    && k.len() <= 64
                                    && !k.contains(|c: char| c.is_whitespace() || c.is_control())
                            });
                        let req = ToIrc::Join {
                            channel: channel.clone(),
                            nick: nick.clone(),
                            full: from.to_string(),
                            short,
                            key,
                        };
                        let link = Link {
                            ctx,
                            settings,
                            conns,
                            done,
                        };
                        match self.hand_or_open(link, &from, &entry, nick, req).await {
                            Ok(()) => None,
                            Err(e) => error_reply(stanza, &e),
                        }
                    }
                    "unavailable" => {
                        let key = (bare, server.to_ascii_lowercase());
                        let _ = Self::hand(
                            conns,
                            &key.0,
                            &key.1,
                            ToIrc::Leave {
                                channel: channel.clone(),
                                full: from.to_string(),
                            },
                        );
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
                let key = (bare, server.to_ascii_lowercase());
                match Self::hand(conns, &key.0, &key.1, req) {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => error_reply(stanza, &e),
                    Err(_) => error_reply(
                        stanza,
                        &StanzaError::new("not-acceptable", ErrorType::Modify)
                            .with_text("join the room before writing to it"),
                    ),
                }
            }
            (
                "message",
                Address::Channel {
                    channel,
                    server,
                    nick: Some(nick),
                },
            ) if kind != "error" && kind != "groupchat" => {
                // XEP-0045 §7.5: a private message to an occupant.
                let body = stanza.child_text("body", &stanza.ns)?;
                let key = (bare, server.to_ascii_lowercase());
                let req = ToIrc::Private {
                    nick: nick.clone(),
                    full: from.to_string(),
                    body,
                    room: Some(channel.clone()),
                };
                match Self::hand(conns, &key.0, &key.1, req) {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => error_reply(stanza, &e),
                    Err(_) => error_reply(
                        stanza,
                        &StanzaError::new("not-acceptable", ErrorType::Modify)
                            .with_text("join the room before writing to its occupants"),
                    ),
                }
            }
            ("message", Address::User { nick, server }) if kind != "error" => {
                let body = stanza.child_text("body", &stanza.ns)?;
                let entry = match self.config.server(server) {
                    Some(e) => e.clone(),
                    None => return error_reply(stanza, &self.not_allowed(server)),
                };
                let req = ToIrc::Private {
                    nick: nick.clone(),
                    full: from.to_string(),
                    body,
                    room: None,
                };
                // Without a room joined on that server, the message opens
                // the connection, with the registered nick or one made
                // from the JID's local part.
                let link = Link {
                    ctx,
                    settings,
                    conns,
                    done,
                };
                let own = default_nick(from.node().unwrap_or(""));
                match self.hand_or_open(link, &from, &entry, &own, req).await {
                    Ok(()) => None,
                    Err(e) => error_reply(stanza, &e),
                }
            }
            ("message", Address::Server { server }) if kind != "error" => {
                let body = stanza.child_text("body", &stanza.ns)?;
                self.raw_command(ctx, stanza, &from, server, body, conns)
            }
            ("message", _) if kind != "error" => error_reply(
                stanza,
                &StanzaError::service_unavailable().with_text("this address takes no messages"),
            ),
            _ => None,
        }
    }

    /// Hands `req` to the user's connection to `entry`, opening one first
    /// when there is none (or the one there is is ending): within the
    /// per-user connection limit, signing on with the user's settings for
    /// that server (`nick` when they name none).
    async fn hand_or_open(
        &self,
        link: Link<'_>,
        from: &Jid,
        entry: &config::ServerEntry,
        nick: &str,
        req: ToIrc,
    ) -> Result<(), StanzaError> {
        let Link {
            ctx,
            settings,
            conns,
            done,
        } = link;
        let bare = from.to_bare().to_string();
        let key = (bare.clone(), entry.host.clone());
        let req = match Self::hand(conns, &key.0, &key.1, req) {
            Ok(r) => return r,
            Err(req) => req,
        };
        if let Err(LimitReached { open }) = conns.make_room(&bare) {
            return Err(
                StanzaError::new("policy-violation", ErrorType::Modify).with_text(format!(
                    "you are connected to {open} IRC servers, the most this gateway allows; \
                     leave the rooms of one of them first"
                )),
            );
        }
        // A new connection signs on with the user's settings for that
        // server, read now.
        let profile = Box::pin(settings.profile(from, entry));
        let target = Target {
            host: entry.host.clone(),
            port: entry.port,
            tls: self.tls.get(&entry.host).cloned(),
            default: self.config.default_server.as_deref() == Some(&entry.host),
            flood: entry.flood,
            signons: self
                .signons
                .get(&entry.host)
                .cloned()
                .unwrap_or_else(|| Arc::new(tokio::sync::Semaphore::new(connection::SIGNONS))),
        };
        let tx = connection::spawn(
            key.clone(),
            ctx.jid.clone(),
            target,
            nick.to_string(),
            profile,
            ctx.out.clone(),
            done.clone(),
        );
        conns.insert(&key.0, &key.1, tx);
        match Self::hand(conns, &key.0, &key.1, req) {
            Ok(r) => r,
            Err(_) => Err(StanzaError::remote_server_not_found()
                .with_text("the IRC connection ended as it started")),
        }
    }

    /// Presence to the transport's own JID (XEP-0100 §4.1): a
    /// subscription request is approved and returned, a probe or an
    /// available presence answered with the gateway's availability, an
    /// unsubscription acknowledged.
    fn gateway_presence(ctx: &ServiceContext, from: &Jid, kind: &str) -> Vec<Element> {
        let p = |to: String, ty: Option<&str>| {
            let mut p = Element::new("presence", ns::CLIENT)
                .with_attr("from", ctx.jid.to_string())
                .with_attr("to", to);
            if let Some(ty) = ty {
                p.set_attr("type", ty);
            }
            p
        };
        let bare = from.to_bare().to_string();
        match kind {
            "subscribe" => vec![
                p(bare.clone(), Some("subscribed")),
                p(bare, Some("subscribe")),
            ],
            "unsubscribe" => vec![p(bare, Some("unsubscribed"))],
            "probe" | "available" => vec![p(from.to_string(), None)],
            _ => Vec::new(),
        }
    }

    /// A `muc#admin` request to a room: a kick (role `none`) becomes IRC
    /// KICK over the moderator's own connection; other changes are not
    /// offered.
    fn admin(
        &self,
        stanza: &Element,
        from: &Jid,
        channel: &str,
        server: &str,
        conns: &Conns,
    ) -> Option<Element> {
        let query = stanza.first_element()?;
        let items: Vec<&Element> = query
            .elements()
            .filter(|e| e.is("item", muc::MUC_ADMIN))
            .collect();
        let [item] = items[..] else {
            return error_reply(
                stanza,
                &StanzaError::bad_request().with_text("one item per request"),
            );
        };
        let (Some("none"), Some(nick)) = (item.attr("role"), item.attr("nick")) else {
            return error_reply(
                stanza,
                &StanzaError::new("feature-not-implemented", ErrorType::Cancel).with_text(
                    "this gateway kicks (role none, by nick); other changes are made on IRC",
                ),
            );
        };
        let req = ToIrc::Kick {
            channel: channel.to_string(),
            full: from.to_string(),
            nick: nick.to_string(),
            reason: item.child_text("reason", muc::MUC_ADMIN),
            iq: Box::new(stanza.clone()),
        };
        let bare = from.to_bare().to_string();
        match Self::hand(conns, &bare, &server.to_ascii_lowercase(), req) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => error_reply(stanza, &e),
            Err(_) => error_reply(
                stanza,
                &StanzaError::new("not-acceptable", ErrorType::Cancel)
                    .with_text("you are not in this room"),
            ),
        }
    }

    /// A message to an IRC server's JID: a raw IRC command, for the host's
    /// admins only, over the admin's own connection to that server.
    fn raw_command(
        &self,
        ctx: &ServiceContext,
        stanza: &Element,
        from: &Jid,
        server: &str,
        body: String,
        conns: &Conns,
    ) -> Option<Element> {
        let bare = from.to_bare();
        if !ctx.admins.iter().any(|a| a.to_bare() == bare) {
            return error_reply(
                stanza,
                &StanzaError::forbidden()
                    .with_text("only this server's admins may send raw IRC commands"),
            );
        }
        // One line: a trailing line end is forgiven, any other CR, LF or
        // NUL would smuggle a second command.
        let line = body.trim_end_matches(['\r', '\n']).trim_start();
        if line.is_empty() || line.contains(['\r', '\n', '\0']) || line.len() > 510 {
            return error_reply(
                stanza,
                &StanzaError::bad_request().with_text(
                    "a raw IRC command is one line of at most 510 bytes, without CR, LF or NUL",
                ),
            );
        }
        let key = (bare.to_string(), server.to_ascii_lowercase());
        let req = ToIrc::Raw {
            line: line.to_string(),
            full: from.to_string(),
        };
        match Self::hand(conns, &key.0, &key.1, req) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => error_reply(stanza, &e),
            Err(_) => error_reply(
                stanza,
                &StanzaError::service_unavailable().with_text(
                    "join a channel on that IRC server first: raw commands use the connection \
                     a room opened",
                ),
            ),
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
            (Address::Transport, Some(p)) if get && p.is("query", ns::VERSION) => Some(iq_result(
                stanza,
                Some(
                    Element::new("query", ns::VERSION)
                        .with_child(
                            Element::new("name", ns::VERSION).with_text("Switchboard IRC gateway"),
                        )
                        .with_child(
                            Element::new("version", ns::VERSION)
                                .with_text(env!("CARGO_PKG_VERSION")),
                        ),
                ),
            )),
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

/// A TLS setting that cannot be used, in the config's words.
fn trust_error(e: TrustError) -> String {
    match e {
        TrustError::Unreadable { path, error } => {
            format!("cannot read ca-file {}: {error}", path.display())
        }
        TrustError::NotPem { path, error } => {
            format!("ca-file {} is not valid PEM: {error}", path.display())
        }
        TrustError::NotAnAnchor { path, error } => format!(
            "ca-file {} holds a certificate that cannot be a trust anchor: {error}",
            path.display()
        ),
        TrustError::Empty { path } => format!("ca-file {} holds no certificate", path.display()),
        TrustError::Setup(e) => format!("cannot set up TLS: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(xml: &str) -> Result<IrcTransport, String> {
        let el = switchboard_xml::parse_document(xml.as_bytes(), Default::default())
            .expect("test XML parses");
        IrcTransport::from_config(&el)
    }

    #[test]
    fn an_unusable_ca_file_is_a_sentence_about_its_server() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = transport(&format!(
            r#"<service><server host="h" ca-file="{}"/></service>"#,
            missing.display()
        ))
        .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "<server host=\"h\">: cannot read ca-file {}: ",
                missing.display()
            )),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = transport(&format!(
            r#"<service><server host="h" ca-file="{}"/></service>"#,
            empty.display()
        ))
        .unwrap_err();
        assert_eq!(
            e,
            format!(
                "<server host=\"h\">: ca-file {} holds no certificate",
                empty.display()
            )
        );
        // The system's store, a pin and no check always build.
        let fp = "AB".repeat(32);
        assert!(transport(&format!(
            r#"<service><server host="h"/><server host="p" fingerprint="{fp}"/><server host="o" verify="false"/></service>"#
        ))
        .is_ok());
    }
}
