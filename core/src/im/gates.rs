//! Inbound gates: checks other modules add to what reaches an account
//! through its actor — messages for offline storage, subscription
//! requests, probes, IQs to the bare JID. A gate may let a stanza pass,
//! drop it, or refuse it with an error to its sender. Blocking (XEP-0191)
//! is the model: a blocked sender's message must not be stored for an
//! account that is offline, and only the actor sees that case in order
//! with the account's other work.
//!
//! Gates run in the account's actor, so they may wait (for a block list to
//! be read, say); they must answer in bounded time.

use std::sync::{Arc, RwLock};

use switchboard_spool::store::{AccountRef, BoxFuture};
use switchboard_xml::Element;

use crate::stanza::StanzaError;

/// What a gate decides about one stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// Dropped without a word (presence, errors).
    Drop,
    /// Refused: the sender gets this error.
    Refuse(StanzaError),
}

/// A check on what reaches an account through its actor.
pub trait InboundGate: Send + Sync {
    fn check<'a>(&'a self, account: &'a AccountRef, stanza: &'a Element) -> BoxFuture<'a, Gate>;
}

/// The gates every actor consults, added by modules at start-up.
#[derive(Default)]
pub struct Gates {
    list: RwLock<Vec<Arc<dyn InboundGate>>>,
}

impl Gates {
    pub fn add(&self, gate: Arc<dyn InboundGate>) {
        self.list
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(gate);
    }

    /// The first decision that is not `Pass`, or `Pass`.
    pub async fn check(&self, account: &AccountRef, stanza: &Element) -> Gate {
        let gates: Vec<Arc<dyn InboundGate>> =
            self.list.read().unwrap_or_else(|e| e.into_inner()).clone();
        for g in gates {
            match g.check(account, stanza).await {
                Gate::Pass => {}
                other => return other,
            }
        }
        Gate::Pass
    }

    pub fn is_empty(&self) -> bool {
        self.list
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}
