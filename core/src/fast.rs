//! FAST tokens (XEP-0484): what the server remembers so that a client can
//! log in again in one round trip with a token instead of its password.
//!
//! Tokens are per account and per client (the SASL2 `<user-agent id/>`,
//! stored as its SHA-256 so the id itself is not kept). Each client has the
//! two slots XEP-0484 §6 describes: `new`, where a freshly issued token
//! waits until the client first uses it, and `current`. Using the token in
//! `new` promotes it and forgets the old one, so a client that lost the
//! `<success/>` carrying a new token still logs in with the old one, and
//! a stolen older token dies as soon as the client moves on. A token is
//! bound to the mechanism it was issued for, expires after
//! [`TOKEN_LIFETIME`], and is replaced (rotation) once it is older than
//! [`ROTATE_AFTER`]. The choices are Prosody's (`mod_sasl2_fast`).
//!
//! The server needs the token itself to check an HMAC made with it, so the
//! secret is stored as issued, in the account's private spool documents
//! (like the SCRAM keys beside it).
//!
//! [`ClientTokens`] is the pure part (tested with explicit times); [`Fast`]
//! reads and writes the account's `<fast/>` document, one update at a time
//! per account.

use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use switchboard_spool::store::{AccountDataStore, AccountRef, StoreError};
use switchboard_xml::{ns, Element};

use crate::sasl::ht::{self, HtMechanism};
use crate::sasl::SaslFailure;

/// How long a token lives: three weeks, Prosody's default.
pub const TOKEN_LIFETIME: u64 = 21 * 86_400;

/// A token older than this is replaced when it is used (daily rotation).
pub const ROTATE_AFTER: u64 = 86_400;

/// Clients remembered per account; the one whose token expires first goes.
pub const MAX_CLIENTS: usize = 32;

/// The spool document's name.
const DOC: &str = "fast";

/// One issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub secret: String,
    pub mechanism: HtMechanism,
    /// Unix seconds.
    pub issued: u64,
    pub expiry: u64,
}

impl Token {
    fn fresh(mechanism: HtMechanism, now: u64) -> Token {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the OS random source is available");
        Token {
            secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
            mechanism,
            issued: now,
            expiry: now + TOKEN_LIFETIME,
        }
    }

    /// `<token xmlns='urn:xmpp:fast:0' token expiry/>` for `<success/>`.
    pub fn to_success_child(&self) -> Element {
        Element::new("token", NS)
            .with_attr("token", self.secret.clone())
            .with_attr("expiry", crate::time::stamp(self.expiry))
    }
}

/// The FAST namespace.
pub const NS: &str = "urn:xmpp:fast:0";

/// A successful token login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Used {
    /// `HMAC(token, "Responder" || cb)` for `<additional-data/>`.
    pub responder: Vec<u8>,
    /// The token is due for replacement.
    pub rotate: bool,
}

/// One client's two slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTokens {
    pub current: Option<Token>,
    pub new: Option<Token>,
}

impl ClientTokens {
    /// Checks a login with `proof` over `cb` by `mechanism` at `now`.
    /// The token in `new` is tried first and promoted when it matches.
    pub fn authenticate(
        &mut self,
        mechanism: HtMechanism,
        cb: &[u8],
        proof: &[u8],
        now: u64,
    ) -> Result<Used, SaslFailure> {
        let matches =
            |t: &Token| t.mechanism == mechanism && ht::verify(t.secret.as_bytes(), cb, proof);
        let (token, from_new) = match (&self.new, &self.current) {
            (Some(t), _) if matches(t) => (t.clone(), true),
            (_, Some(t)) if matches(t) => (t.clone(), false),
            _ => return Err(SaslFailure::NotAuthorized),
        };
        if token.expiry <= now {
            // The client should fall back to its password (XEP-0484 §5).
            if from_new {
                self.new = None;
            } else {
                self.current = None;
            }
            return Err(SaslFailure::CredentialsExpired);
        }
        if from_new {
            // The client has the newer token: the older one is dead.
            self.current = self.new.take();
        }
        Ok(Used {
            responder: ht::responder_proof(token.secret.as_bytes(), cb).to_vec(),
            rotate: now.saturating_sub(token.issued) >= ROTATE_AFTER,
        })
    }

    /// A new token for the `new` slot (an unused earlier one is replaced).
    pub fn issue(&mut self, mechanism: HtMechanism, now: u64) -> Token {
        let t = Token::fresh(mechanism, now);
        self.new = Some(t.clone());
        t
    }

    fn is_empty(&self) -> bool {
        self.current.is_none() && self.new.is_none()
    }

    fn latest_expiry(&self) -> u64 {
        [&self.current, &self.new]
            .into_iter()
            .flatten()
            .map(|t| t.expiry)
            .max()
            .unwrap_or(0)
    }
}

/// A client's key in the document: the SHA-256 of its user-agent id.
pub fn client_key(agent_id: &str) -> String {
    let d = Sha256::digest(agent_id.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every client's tokens of one account, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountTokens {
    pub clients: Vec<(String, ClientTokens)>,
}

impl AccountTokens {
    pub fn client(&mut self, key: &str) -> &mut ClientTokens {
        if let Some(i) = self.clients.iter().position(|(k, _)| k == key) {
            return &mut self.clients[i].1;
        }
        self.clients
            .push((key.to_string(), ClientTokens::default()));
        &mut self.clients.last_mut().expect("just pushed").1
    }

    /// Drops expired tokens, clients without any, and the clients over
    /// [`MAX_CLIENTS`] whose tokens expire first.
    pub fn prune(&mut self, now: u64) {
        for (_, c) in &mut self.clients {
            for slot in [&mut c.current, &mut c.new] {
                if slot.as_ref().is_some_and(|t| t.expiry <= now) {
                    *slot = None;
                }
            }
        }
        self.clients.retain(|(_, c)| !c.is_empty());
        if self.clients.len() > MAX_CLIENTS {
            self.clients
                .sort_by_key(|(_, c)| std::cmp::Reverse(c.latest_expiry()));
            self.clients.truncate(MAX_CLIENTS);
        }
    }

    pub fn to_doc(&self) -> Element {
        let mut doc = Element::new(DOC, ns::SPOOL);
        for (key, c) in &self.clients {
            let mut el = Element::new("client", ns::SPOOL).with_attr("key", key.clone());
            for (slot, t) in [("current", &c.current), ("new", &c.new)] {
                if let Some(t) = t {
                    el.append_child(
                        Element::new("token", ns::SPOOL)
                            .with_attr("slot", slot)
                            .with_attr("secret", t.secret.clone())
                            .with_attr("mechanism", t.mechanism.name())
                            .with_attr("issued", t.issued.to_string())
                            .with_attr("expiry", t.expiry.to_string()),
                    );
                }
            }
            doc.append_child(el);
        }
        doc
    }

    /// Reads the document; what it cannot read is skipped (a token lost is
    /// a password login, not an error).
    pub fn from_doc(doc: &Element) -> AccountTokens {
        let mut out = AccountTokens::default();
        for el in el_children(doc, "client") {
            let Some(key) = el.attr("key") else { continue };
            let mut c = ClientTokens::default();
            for t in el_children(el, "token") {
                let token = (|| {
                    Some(Token {
                        secret: t.attr("secret")?.to_string(),
                        mechanism: HtMechanism::from_name(t.attr("mechanism")?)?,
                        issued: t.attr("issued")?.parse().ok()?,
                        expiry: t.attr("expiry")?.parse().ok()?,
                    })
                })();
                match (t.attr("slot"), token) {
                    (Some("current"), Some(tok)) => c.current = Some(tok),
                    (Some("new"), Some(tok)) => c.new = Some(tok),
                    _ => {}
                }
            }
            out.clients.push((key.to_string(), c));
        }
        out
    }
}

/// What a FAST login asks for besides the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login<'a> {
    pub account: &'a AccountRef,
    pub agent_id: &'a str,
    pub mechanism: HtMechanism,
    pub cb: &'a [u8],
    pub proof: &'a [u8],
    /// `<fast invalidate='true'/>`: forget the client's tokens after this
    /// login.
    pub invalidate: bool,
}

/// The FAST token store of the server: the account documents, updated one
/// at a time per account (striped locks: logins of different accounts do
/// not wait for each other).
pub struct Fast {
    store: Arc<dyn AccountDataStore>,
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl Fast {
    pub fn new(store: Arc<dyn AccountDataStore>) -> Fast {
        Fast {
            store,
            locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    fn lock(&self, account: &AccountRef) -> &tokio::sync::Mutex<()> {
        let mut h = Sha256::new();
        h.update(account.host.as_bytes());
        h.update([0]);
        h.update(account.user.as_bytes());
        let d = h.finalize();
        &self.locks[usize::from(d[0]) % self.locks.len()]
    }

    async fn load(&self, account: &AccountRef) -> Result<AccountTokens, StoreError> {
        Ok(self
            .store
            .get(account, DOC)
            .await?
            .map(|d| AccountTokens::from_doc(&d))
            .unwrap_or_default())
    }

    async fn save(&self, account: &AccountRef, tokens: &AccountTokens) -> Result<(), StoreError> {
        if tokens.clients.is_empty() {
            self.store.remove(account, DOC).await
        } else {
            self.store.put(account, tokens.to_doc()).await
        }
    }

    /// Checks a token login at `now` and records what it changes.
    pub async fn authenticate(&self, login: Login<'_>, now: u64) -> Result<Used, SaslFailure> {
        let _guard = self.lock(login.account).lock().await;
        let mut tokens = self.load(login.account).await.map_err(store_failure)?;
        let key = client_key(login.agent_id);
        let before = tokens.clone();
        let client = tokens.client(&key);
        let result = client.authenticate(login.mechanism, login.cb, login.proof, now);
        if result.is_ok() && login.invalidate {
            *client = ClientTokens::default();
        }
        tokens.prune(now);
        if tokens != before {
            self.save(login.account, &tokens)
                .await
                .map_err(store_failure)?;
        }
        result
    }

    /// Issues a token for a client and stores it (durable before the
    /// client sees it).
    pub async fn issue(
        &self,
        account: &AccountRef,
        agent_id: &str,
        mechanism: HtMechanism,
        now: u64,
    ) -> Result<Token, StoreError> {
        let _guard = self.lock(account).lock().await;
        let mut tokens = self.load(account).await?;
        let token = tokens.client(&client_key(agent_id)).issue(mechanism, now);
        tokens.prune(now);
        self.save(account, &tokens).await?;
        Ok(token)
    }
}

fn el_children<'a>(el: &'a Element, name: &'a str) -> impl Iterator<Item = &'a Element> {
    el.elements()
        .filter(move |c| c.name == name && c.ns == ns::SPOOL)
}

fn store_failure(e: StoreError) -> SaslFailure {
    tracing::error!("FAST token store: {e}");
    SaslFailure::TemporaryAuthFailure
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn proof(t: &Token, cb: &[u8]) -> Vec<u8> {
        ht::initiator_proof(t.secret.as_bytes(), cb).to_vec()
    }

    #[test]
    fn a_new_token_is_promoted_on_first_use_and_the_old_one_dies() {
        let mut c = ClientTokens::default();
        let m = HtMechanism::Sha256None;
        let first = c.issue(m, NOW);
        c.authenticate(m, &[], &proof(&first, &[]), NOW + 10)
            .unwrap();
        assert_eq!(c.current.as_ref(), Some(&first));
        // Rotation: a second token waits in `new`; the old one still works
        // (the client may not have received the new one).
        let second = c.issue(m, NOW + ROTATE_AFTER);
        c.authenticate(m, &[], &proof(&first, &[]), NOW + ROTATE_AFTER + 1)
            .unwrap();
        c.authenticate(m, &[], &proof(&second, &[]), NOW + ROTATE_AFTER + 2)
            .unwrap();
        assert_eq!(
            c.authenticate(m, &[], &proof(&first, &[]), NOW + ROTATE_AFTER + 3),
            Err(SaslFailure::NotAuthorized),
            "the older token is dead once the newer one was used"
        );
    }

    #[test]
    fn tokens_are_bound_to_their_mechanism_and_channel_and_expire() {
        let mut c = ClientTokens::default();
        let cb = [9u8; 32];
        let t = c.issue(HtMechanism::Sha256Expr, NOW);
        assert_eq!(
            c.authenticate(HtMechanism::Sha256None, &[], &proof(&t, &[]), NOW),
            Err(SaslFailure::NotAuthorized),
            "a channel-bound token used without binding"
        );
        assert_eq!(
            c.authenticate(HtMechanism::Sha256Expr, &[1u8; 32], &proof(&t, &cb), NOW),
            Err(SaslFailure::NotAuthorized),
            "another TLS channel"
        );
        let used = c
            .authenticate(HtMechanism::Sha256Expr, &cb, &proof(&t, &cb), NOW + 5)
            .unwrap();
        assert_eq!(
            used.responder,
            ht::responder_proof(t.secret.as_bytes(), &cb)
        );
        assert!(!used.rotate);
        assert!(
            c.authenticate(
                HtMechanism::Sha256Expr,
                &cb,
                &proof(&t, &cb),
                NOW + ROTATE_AFTER
            )
            .unwrap()
            .rotate
        );
        assert_eq!(
            c.authenticate(
                HtMechanism::Sha256Expr,
                &cb,
                &proof(&t, &cb),
                NOW + TOKEN_LIFETIME
            ),
            Err(SaslFailure::CredentialsExpired)
        );
        assert!(c.current.is_none(), "an expired token is forgotten");
    }

    #[test]
    fn the_document_round_trips_and_pruning_bounds_it() {
        let mut all = AccountTokens::default();
        for i in 0..(MAX_CLIENTS as u64 + 3) {
            all.client(&client_key(&format!("agent-{i}")))
                .issue(HtMechanism::Sha256None, NOW + i);
        }
        all.client(&client_key("expired"))
            .issue(HtMechanism::Sha256None, NOW - TOKEN_LIFETIME - 1);
        all.prune(NOW);
        assert_eq!(all.clients.len(), MAX_CLIENTS);
        assert!(all.clients.iter().all(|(k, _)| *k != client_key("agent-0")));
        let back = AccountTokens::from_doc(&all.to_doc());
        let mut sorted = all.clone();
        sorted.clients.sort_by(|a, b| a.0.cmp(&b.0));
        let mut back_sorted = back;
        back_sorted.clients.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(back_sorted, sorted);
    }

    #[tokio::test]
    async fn the_store_keeps_tokens_across_logins_and_invalidation_forgets_them() {
        let stores = switchboard_spool::store::memory::MemoryStores::new();
        crate::accounts::create(
            stores.accounts.as_ref(),
            "localhost",
            "alice",
            "pw".into(),
            16,
        )
        .await
        .unwrap();
        let fast = Fast::new(stores.account_data.clone());
        let alice = AccountRef::new("localhost", "alice");
        let m = HtMechanism::Sha256None;
        let t = fast.issue(&alice, "phone-uuid", m, NOW).await.unwrap();
        let login = |invalidate| Login {
            account: &alice,
            agent_id: "phone-uuid",
            mechanism: m,
            cb: &[],
            proof: Box::leak(proof(&t, &[]).into_boxed_slice()),
            invalidate,
        };
        fast.authenticate(login(false), NOW + 1).await.unwrap();
        let other = Login {
            agent_id: "laptop-uuid",
            ..login(false)
        };
        assert_eq!(
            fast.authenticate(other, NOW + 2).await,
            Err(SaslFailure::NotAuthorized),
            "a token is the client's it was issued to"
        );
        fast.authenticate(login(true), NOW + 3).await.unwrap();
        assert_eq!(
            fast.authenticate(login(false), NOW + 4).await,
            Err(SaslFailure::NotAuthorized)
        );
        assert!(stores
            .account_data
            .get(&alice, "fast")
            .await
            .unwrap()
            .is_none());
    }
}
