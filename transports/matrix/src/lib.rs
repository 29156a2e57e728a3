//! The Matrix transport: a service at its own hostname
//! (`matrix.example.org`) through which XMPP users reach Matrix with
//! their own Matrix accounts: rooms as XEP-0045 rooms, direct chats as
//! contacts. It runs in-process or as `switchboard component
//! matrix.example.org` attached to any XMPP server.
//!
//! Map:
//!
//! - [`address`]: Matrix ids ↔ JIDs (`alice%example.org@host`,
//!   `#room%example.org@host`, room ids with their case kept);
//! - [`config`]: the homeservers users may reach, the largest file moved;
//! - [`registration`] and [`login`]: XEP-0100 registration (and the
//!   *Configure* command) signing on with a password or a pasted token,
//!   keeping only the access token; unregistering logs the device out;
//! - [`session`]: one user's Matrix session as a sans-IO machine (sync,
//!   sends, rooms, the mappings both ways), driven by [`driver`] with
//!   `reqwest`; [`state`] keeps its sync token between runs;
//! - [`http`], [`events`], [`text`], [`time`], [`recent`], [`ns`]: the
//!   values and helpers those share.
//!
//! This file is the service loop: the XEP-0100 gateway (registration,
//! presence to the transport, which signs a user on and off), the
//! sessions by user (the link kit's connection table), and dispatch:
//! everything addressed to a JID at the transport goes to the sender's
//! session. The loop never waits on the network: signing on runs in a
//! task of its own and reports back.

pub mod address;
pub mod config;
pub mod driver;
pub mod events;
pub mod http;
pub mod login;
pub mod ns;
pub mod recent;
pub mod registration;
pub mod session;
pub mod state;
pub mod text;
pub mod time;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use switchboard_jid::Jid;
use switchboard_link::table::{ConnectionTable, Refused};
use switchboard_link::tls::Trust;
use switchboard_service::adhoc::Commands;
use switchboard_service::credentials::Registration;
use switchboard_service::files::FileShare;
use switchboard_service::gateway::{Gateway, GatewayEvent, Handled};
use switchboard_service::stanza::{error_reply, iq_result, stanza_type, ErrorType, StanzaError};
use switchboard_service::{BoxFuture, Identity, Service, ServiceContext};
use switchboard_xml::{ns as xns, Element};
use tokio::sync::mpsc;

use config::MatrixConfig;
use driver::{Done, Homeserver};
use registration::{Account, Slot, Submitted};
use session::{OwnPresence, Params, ToMatrix};
use state::SyncStore;

/// The connection table's "server": one Matrix session per user.
const LINK: &str = "matrix";

/// The HTTP clients, one per trust setting, shared by every session (and
/// their connection pools with them).
#[derive(Default)]
struct Clients {
    by_trust: Mutex<HashMap<String, reqwest::Client>>,
}

impl Clients {
    fn for_trust(&self, trust: &Trust) -> Result<reqwest::Client, String> {
        let key = format!("{trust:?}");
        let mut map = self.by_trust.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let tls = switchboard_link::tls::client_config(trust)
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let c = driver::client(tls.config)?;
        map.insert(key, c.clone());
        Ok(c)
    }
}

/// The Matrix transport service kind (`type="matrix"`).
#[derive(Clone)]
pub struct MatrixTransport {
    config: Arc<MatrixConfig>,
    clients: Arc<Clients>,
    /// The server's upload service, where files from Matrix are stored
    /// for XMPP users (none as a component, or without one).
    files: Option<Arc<dyn FileShare>>,
}

impl std::fmt::Debug for MatrixTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixTransport")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MatrixTransport {
    /// Reads the transport's settings from its `<service>` element.
    pub fn from_config(el: &Element) -> Result<MatrixTransport, String> {
        let config = MatrixConfig::from_element(el)?;
        let clients = Arc::new(Clients::default());
        // Every listed trust setting is tried now, so that a bad ca-file
        // is a config error, not a user's.
        for h in &config.homeservers {
            clients
                .for_trust(&h.trust)
                .map_err(|e| format!("<homeserver name=\"{}\">: {e}", h.name))?;
        }
        Ok(MatrixTransport {
            config: Arc::new(config),
            clients,
            files: None,
        })
    }

    /// Files from Matrix are stored in `files` (the server's upload
    /// service) and linked to, instead of being described in words.
    pub fn with_files(mut self, files: Arc<dyn FileShare>) -> MatrixTransport {
        self.files = Some(files);
        self
    }

    /// Whether files from Matrix are stored and linked to
    /// ([`MatrixTransport::with_files`]).
    pub fn keeps_files(&self) -> bool {
        self.files.is_some()
    }

    /// What sessions move files with.
    fn media(&self) -> Result<driver::Media, String> {
        Ok(driver::Media::new(
            self.files.clone(),
            self.clients.for_trust(&Trust::System)?,
            self.config.max_media_size,
            self.config.fetch_any_link,
        ))
    }

    /// A homeserver at `base` as the config allows it, with `token`.
    fn homeserver(&self, base: &str, token: Option<&str>) -> Result<Homeserver, String> {
        let trust = self.config.allows(base)?;
        Ok(Homeserver::new(
            self.clients.for_trust(&trust)?,
            base,
            token,
        ))
    }
}

impl Service for MatrixTransport {
    fn identity(&self) -> Identity {
        Identity {
            category: "gateway".into(),
            kind: "matrix".into(),
            name: "Matrix gateway".into(),
        }
    }

    fn run(&self, ctx: ServiceContext, mut inbox: mpsc::Receiver<Element>) -> BoxFuture {
        let me = self.clone();
        Box::pin(async move {
            let default = me.config.default_homeserver().map(str::to_owned);
            let spec = registration::spec(&ctx.jid, default.as_deref());
            let gateway = match Gateway::open(spec, ctx.store.clone(), ctx.key.clone()).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(service = %ctx.jid, error = %e, "cannot open the registrations");
                    return;
                }
            };
            let slot = Slot::default();
            let commands = registration::configure_commands(
                &ctx.jid,
                Arc::new(registration::spec(&ctx.jid, default.as_deref())),
                slot.clone(),
            );
            let (done_tx, mut done_rx) = mpsc::channel::<Done>(64);
            let (login_tx, mut login_rx) = mpsc::channel::<SignedOn>(64);
            let mut t = Transport {
                sync: SyncStore::new(ctx.store.clone()),
                me,
                ctx,
                gateway,
                commands,
                slot,
                conns: ConnectionTable::new(1),
                done: done_tx,
                logins: login_tx,
            };
            tracing::info!(service = %t.ctx.jid, homeservers = %t.me.config.names(), "Matrix transport up");
            // Users online before a restart sign on again with their
            // servers' answers.
            for p in t.gateway.startup_probes() {
                if t.ctx.out.send(p).await.is_err() {
                    return;
                }
            }
            loop {
                let ok = tokio::select! {
                    stanza = inbox.recv() => match stanza {
                        Some(s) => t.handle(s).await,
                        None => return,
                    },
                    Some((user, signed_out)) = done_rx.recv() => t.ended(&user, signed_out).await,
                    Some(signed) = login_rx.recv() => t.signed_on(signed).await,
                };
                if !ok {
                    return;
                }
            }
        })
    }
}

/// A sign-on that finished: the request it answers, the outcome, and the
/// command's answer to send instead of an IQ result.
type SignedOn = (Element, Result<Registration, String>, Option<Element>);

struct Transport {
    me: MatrixTransport,
    ctx: ServiceContext,
    gateway: Gateway,
    commands: Commands,
    slot: Slot,
    sync: SyncStore,
    conns: ConnectionTable<ToMatrix>,
    done: mpsc::Sender<Done>,
    logins: mpsc::Sender<SignedOn>,
}

impl Transport {
    /// Sends a stanza; false when the service is stopping.
    async fn send(&self, s: Element) -> bool {
        self.ctx.out.send(s).await.is_ok()
    }

    async fn refuse(&self, s: &Element, e: StanzaError) -> bool {
        match error_reply(s, &e) {
            Some(r) => self.send(r).await,
            None => true,
        }
    }

    /// One stanza from the router.
    async fn handle(&mut self, stanza: Element) -> bool {
        let (Some(from), Some(to)) = (
            stanza.attr("from").and_then(|f| Jid::parse(f).ok()),
            stanza.attr("to").and_then(|t| Jid::parse(t).ok()),
        ) else {
            return true;
        };
        if to.node().is_none() {
            return self.stanza_to_transport(&stanza, &from).await;
        }
        if !self.gateway.is_registered(&from) {
            let answer = matches!(
                (stanza.name.as_str(), stanza_type(&stanza)),
                ("presence", "available") | ("message", _) | ("iq", "get" | "set")
            );
            if answer {
                return self
                    .refuse(
                        &stanza,
                        StanzaError::new("registration-required", ErrorType::Auth).with_text(
                            format!("register with the Matrix gateway {} first", self.ctx.jid),
                        ),
                    )
                    .await;
            }
            return true;
        }
        self.hand(&from, ToMatrix::Stanza(stanza)).await
    }

    /// Hands a request to the user's session, starting one when there is
    /// none.
    async fn hand(&mut self, user: &Jid, req: ToMatrix) -> bool {
        let bare = user.to_bare().to_string();
        let req = match self.conns.hand(&bare, LINK, req) {
            Ok(()) => return true,
            Err(Refused::Busy(ToMatrix::Stanza(s))) => {
                return self
                    .refuse(
                        &s,
                        StanzaError::new("resource-constraint", ErrorType::Wait)
                            .with_text("your Matrix session is busy; try again in a moment"),
                    )
                    .await
            }
            Err(Refused::Busy(_)) => return true,
            Err(Refused::Absent(req)) => req,
        };
        if matches!(req, ToMatrix::Stop) {
            return true;
        }
        self.start(user);
        if let Err(Refused::Busy(ToMatrix::Stanza(s)) | Refused::Absent(ToMatrix::Stanza(s))) =
            self.conns.hand(&bare, LINK, req)
        {
            return self
                .refuse(
                    &s,
                    StanzaError::new("remote-server-timeout", ErrorType::Wait)
                        .with_text("your Matrix session ended as it started"),
                )
                .await;
        }
        true
    }

    /// Starts `user`'s session.
    fn start(&mut self, user: &Jid) {
        let bare = user.to_bare();
        let _ = self.conns.make_room(&bare.to_string());
        let store = self.gateway.store().clone();
        let sync = self.sync.clone();
        let me = self.me.clone();
        let host = self.ctx.jid.clone();
        let u = bare.clone();
        let media = self.me.media();
        let media_limit = media.as_ref().ok().and_then(driver::Media::download_limit);
        let loading: driver::Loading = Box::pin(async move {
            let reg = store
                .load(&u)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot read a Matrix registration");
                    "your registration cannot be read; the administrator has been told".to_owned()
                })?
                .ok_or("you are not registered with the Matrix gateway")?;
            let acct = Account::of(&reg)
                .ok_or("your registration holds no access token; register again")?;
            let hs = me.homeserver(&acct.homeserver, Some(&acct.access_token))?;
            let saved = sync.load(&u).await.map_err(|e| {
                tracing::error!(error = %e, "cannot read a Matrix sync state");
                "your sync state cannot be read; the administrator has been told".to_owned()
            })?;
            Ok((
                Params {
                    service_host: host,
                    user: u,
                    user_id: acct.user_id,
                    saved,
                    media_limit,
                },
                hs,
            ))
        });
        let media = match media {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for files");
                return;
            }
        };
        let tx = driver::spawn(
            bare.clone(),
            loading,
            self.sync.clone(),
            media,
            self.ctx.out.clone(),
            self.done.clone(),
        );
        self.conns.insert(&bare.to_string(), LINK, tx);
    }

    /// Ends `user`'s session: it finishes sending, then stops.
    fn stop(&mut self, user: &Jid) {
        // Dropping its queue's sender is the signal.
        self.conns.remove(&user.to_bare().to_string(), LINK);
    }

    /// A session ended.
    async fn ended(&mut self, user: &str, signed_out: bool) -> bool {
        self.conns.ended(user, LINK);
        if signed_out {
            if let Some(p) = Jid::parse(user)
                .ok()
                .and_then(|u| self.gateway.sign_off(&u))
            {
                return self.send(p).await;
            }
        }
        true
    }

    /// A stanza to the transport's own JID.
    async fn stanza_to_transport(&mut self, stanza: &Element, from: &Jid) -> bool {
        let ty = stanza_type(stanza).to_owned();
        if stanza.name == "iq" && matches!(ty.as_str(), "get" | "set") {
            let Some(q) = stanza.first_element() else {
                return self.refuse(stanza, StanzaError::bad_request()).await;
            };
            if q.is("query", xns::REGISTER) && ty == "set" {
                if q.get_child("remove", xns::REGISTER).is_some() {
                    return self.unregister(stanza, from).await;
                }
                let current = self.gateway.store().load(from).await.ok().flatten();
                let submitted = switchboard_service::gateway::registration_submission(
                    self.gateway.spec(),
                    q,
                    current.as_ref(),
                );
                return match submitted {
                    Ok(reg) => self.sign_on(stanza, reg, None).await,
                    Err(e) => self.refuse(stanza, e).await,
                };
            }
            if self.commands.is_command_iq(stanza) {
                let reply = self.commands.handle_iq(stanza, Instant::now());
                let submitted = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                return match (submitted, reply) {
                    (Some(reg), answer) => self.sign_on(stanza, reg, answer).await,
                    (None, Some(r)) => self.send(r).await,
                    (None, None) => true,
                };
            }
            if ty == "get" && q.is("query", xns::DISCO_INFO) && q.attr("node").is_none() {
                let mut info = self.gateway.disco_info(&[xns::VERSION, xns::PING, ns::MUC]);
                info.append_child(
                    Element::new("identity", xns::DISCO_INFO)
                        .with_attr("category", "conference")
                        .with_attr("type", "text")
                        .with_attr("name", "Matrix rooms"),
                );
                return self.send(iq_result(stanza, Some(info))).await;
            }
            if ty == "get" && q.is("query", xns::DISCO_ITEMS) && q.attr("node").is_none() {
                // The user's joined rooms, from the session that knows
                // them.
                if self.gateway.is_registered(from) {
                    return self.hand(from, ToMatrix::Stanza(stanza.clone())).await;
                }
                return self
                    .send(iq_result(
                        stanza,
                        Some(Element::new("query", xns::DISCO_ITEMS)),
                    ))
                    .await;
            }
            if ty == "get" && q.is("query", xns::VERSION) {
                let v = Element::new("query", xns::VERSION)
                    .with_child(
                        Element::new("name", xns::VERSION).with_text("Switchboard Matrix gateway"),
                    )
                    .with_child(
                        Element::new("version", xns::VERSION).with_text(env!("CARGO_PKG_VERSION")),
                    );
                return self.send(iq_result(stanza, Some(v))).await;
            }
            if ty == "get" && q.is("ping", xns::PING) {
                return self.send(iq_result(stanza, None)).await;
            }
        }
        let presence_before = stanza.name == "presence";
        match self.gateway.handle(stanza, &self.ctx.out).await {
            Handled::Done(events) => {
                for ev in events {
                    if !self.act(ev, presence_before.then_some(stanza)).await {
                        return false;
                    }
                }
                true
            }
            Handled::NotMine if stanza.name == "message" && ty != "error" => {
                self.refuse(
                    stanza,
                    StanzaError::service_unavailable().with_text(
                        "this is the Matrix gateway: write to a Matrix user \
                         (alice%example.org@ this gateway) or join a room",
                    ),
                )
                .await
            }
            Handled::NotMine if stanza.name == "iq" => {
                self.refuse(stanza, StanzaError::service_unavailable())
                    .await
            }
            Handled::NotMine => true,
        }
    }

    /// What the gateway's events mean for the sessions.
    async fn act(&mut self, ev: GatewayEvent, presence: Option<&Element>) -> bool {
        match ev {
            GatewayEvent::SignOn { user, .. } => {
                let p = presence.map(OwnPresence::of).unwrap_or(OwnPresence {
                    available: true,
                    ..OwnPresence::default()
                });
                self.hand(&user, ToMatrix::Presence(p)).await
            }
            GatewayEvent::Presence {
                user_full,
                available: true,
            } => match presence {
                Some(p) => {
                    self.hand(&user_full, ToMatrix::Presence(OwnPresence::of(p)))
                        .await
                }
                None => true,
            },
            GatewayEvent::Presence { .. } => true,
            GatewayEvent::SignOff { user } => {
                self.stop(&user);
                true
            }
            GatewayEvent::Registered { user, .. } => {
                // A new token: a running session starts again with it.
                let running = self
                    .conns
                    .hand(&user.to_string(), LINK, ToMatrix::Stop)
                    .is_ok();
                if running || self.gateway.is_signed_on(&user) {
                    self.stop(&user);
                    self.start(&user);
                    let p = OwnPresence {
                        available: true,
                        ..OwnPresence::default()
                    };
                    return self.hand(&user, ToMatrix::Presence(p)).await;
                }
                true
            }
            GatewayEvent::Unregistered { .. } => true,
        }
    }

    /// Signs on with a submitted registration in a task of its own; the
    /// outcome comes back to [`Transport::signed_on`].
    async fn sign_on(&mut self, iq: &Element, reg: Registration, answer: Option<Element>) -> bool {
        let sub = match Submitted::of(&reg) {
            Ok(s) => s,
            Err(e) => return self.refuse(iq, e).await,
        };
        let target = match login::target(&self.me.config, sub.homeserver.as_deref(), &sub.user) {
            Ok(t) => t,
            Err(why) => {
                return self
                    .refuse(
                        iq,
                        StanzaError::new("not-acceptable", ErrorType::Modify).with_text(why),
                    )
                    .await
            }
        };
        let me = self.me.clone();
        let tx = self.logins.clone();
        let iq = iq.clone();
        let device = format!("Switchboard gateway ({})", self.ctx.jid);
        tokio::spawn(async move {
            let signed = login::sign_in(
                target,
                &sub.user,
                sub.password.as_deref(),
                sub.token.as_deref(),
                &device,
                |base| me.homeserver(base, None),
            )
            .await
            .map(|s| registration::stored(&s));
            let _ = tx.send((iq, signed, answer)).await;
        });
        true
    }

    /// A sign-on finished: stored and answered, or refused.
    async fn signed_on(&mut self, (iq, outcome, answer): SignedOn) -> bool {
        let reg = match outcome {
            Ok(r) => r,
            Err(why) => {
                tracing::info!(user = iq.attr("from").unwrap_or(""), error = %why, "Matrix sign-on failed");
                return self
                    .refuse(
                        &iq,
                        StanzaError::new("not-authorized", ErrorType::Auth)
                            .with_text(format!("cannot sign on to Matrix: {why}")),
                    )
                    .await;
            }
        };
        let Some(user) = iq.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return true;
        };
        let old = self
            .gateway
            .store()
            .load(&user)
            .await
            .ok()
            .flatten()
            .and_then(|r| Account::of(&r));
        let new = Account::of(&reg);
        let answer = answer.unwrap_or_else(|| iq_result(&iq, None));
        let Handled::Done(events) = self
            .gateway
            .complete_registration(&iq, reg, answer, &self.ctx.out)
            .await
        else {
            return true;
        };
        let registered = events
            .iter()
            .any(|e| matches!(e, GatewayEvent::Registered { .. }));
        if registered {
            // The device the earlier registration signed on is not used
            // any more.
            if let (Some(old), Some(new)) = (old, new) {
                if old.access_token != new.access_token {
                    self.log_out(old);
                }
            }
        }
        for ev in events {
            if !self.act(ev, None).await {
                return false;
            }
        }
        true
    }

    fn log_out(&self, acct: Account) {
        match self
            .me
            .homeserver(&acct.homeserver, Some(&acct.access_token))
        {
            Ok(hs) => {
                tokio::spawn(login::log_out(hs));
            }
            Err(e) => tracing::warn!(error = %e, "cannot log a Matrix device out"),
        }
    }

    /// `<remove/>`: the gateway's unregistration, then the device logged
    /// out and the sync state forgotten.
    async fn unregister(&mut self, iq: &Element, from: &Jid) -> bool {
        let acct = self
            .gateway
            .store()
            .load(from)
            .await
            .ok()
            .flatten()
            .and_then(|r| Account::of(&r));
        let Handled::Done(events) = self.gateway.handle(iq, &self.ctx.out).await else {
            return true;
        };
        for ev in events {
            if let GatewayEvent::Unregistered { user } | GatewayEvent::SignOff { user } = &ev {
                self.stop(user);
            }
            if let GatewayEvent::Unregistered { user } = ev {
                if let Some(a) = acct.clone() {
                    self.log_out(a);
                }
                if let Err(e) = self.sync.remove(&user).await {
                    tracing::warn!(error = %e, "cannot remove a Matrix sync state");
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_are_sentences_about_the_element() {
        let el = switchboard_xml::parse_document(
            br#"<service><homeserver name="x" ca-file="/nonexistent.pem"/></service>"#,
            Default::default(),
        )
        .unwrap();
        let e = MatrixTransport::from_config(&el).unwrap_err();
        assert!(
            e.starts_with("<homeserver name=\"x\">: cannot set up TLS"),
            "{e}"
        );
    }
}
