//! The Hashed Token mechanisms (draft-schmaus-kitten-sasl-ht) that FAST
//! (XEP-0484) logs in with: one round trip, the client proving it holds a
//! token the server issued earlier without sending it.
//!
//! The client's initial response is `authcid NUL HMAC(token, "Initiator" ||
//! cb-data)`; the server answers, in `<additional-data/>`, with
//! `HMAC(token, "Responder" || cb-data)`, which proves to the client that
//! the server knows the token too. `cb-data` is empty for `-NONE` and the
//! TLS exporter (RFC 9266) for `-EXPR`, the same binding SCRAM-PLUS uses
//! here. Only SHA-256 is offered: it is what clients implement (Conversations,
//! Monal, xmpp.js), and Prosody offers the same pair.
//!
//! Written by hand: it is two HMACs around a split at the first NUL, and no
//! maintained crate implements the draft.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::SaslFailure;

/// A Hashed Token mechanism this server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HtMechanism {
    /// `HT-SHA-256-NONE`: no channel binding (web clients cannot have one).
    Sha256None,
    /// `HT-SHA-256-EXPR`: bound to the TLS exporter (RFC 9266).
    Sha256Expr,
}

impl HtMechanism {
    /// Every mechanism, best first.
    pub const ALL: [HtMechanism; 2] = [HtMechanism::Sha256Expr, HtMechanism::Sha256None];

    pub fn name(self) -> &'static str {
        match self {
            HtMechanism::Sha256None => "HT-SHA-256-NONE",
            HtMechanism::Sha256Expr => "HT-SHA-256-EXPR",
        }
    }

    pub fn from_name(name: &str) -> Option<HtMechanism> {
        HtMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the mechanism binds to the TLS channel.
    pub fn binds_channel(self) -> bool {
        matches!(self, HtMechanism::Sha256Expr)
    }
}

/// A parsed initial response: who, and the proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtResponse {
    pub username: String,
    pub proof: Vec<u8>,
}

/// Splits `authcid NUL proof`. The proof of HMAC-SHA-256 is 32 bytes.
pub fn parse(initial: &[u8]) -> Result<HtResponse, SaslFailure> {
    let nul = initial
        .iter()
        .position(|b| *b == 0)
        .ok_or(SaslFailure::MalformedRequest)?;
    let (user, rest) = initial.split_at(nul);
    let proof = &rest[1..];
    if user.is_empty() || proof.len() != 32 {
        return Err(SaslFailure::MalformedRequest);
    }
    let username = std::str::from_utf8(user)
        .map_err(|_| SaslFailure::MalformedRequest)?
        .to_string();
    Ok(HtResponse {
        username,
        proof: proof.to_vec(),
    })
}

fn hmac(token: &[u8], label: &[u8], cb: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(token).expect("HMAC takes any key length");
    mac.update(label);
    mac.update(cb);
    mac.finalize().into_bytes().into()
}

/// What a client holding `token` sends as its proof.
pub fn initiator_proof(token: &[u8], cb: &[u8]) -> [u8; 32] {
    hmac(token, b"Initiator", cb)
}

/// Whether `proof` was made with `token` over `cb`, in constant time.
pub fn verify(token: &[u8], cb: &[u8], proof: &[u8]) -> bool {
    initiator_proof(token, cb).ct_eq(proof).into()
}

/// The server's answer, for `<additional-data/>`.
pub fn responder_proof(token: &[u8], cb: &[u8]) -> [u8; 32] {
    hmac(token, b"Responder", cb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_made_with_the_token_verifies_and_any_other_does_not() {
        let token = b"WXZzciBwYmFmdmZnZiBqdmd1IGp2eXFhcmZm";
        let cb = [7u8; 32];
        let mut initial = b"juliet\0".to_vec();
        initial.extend_from_slice(&initiator_proof(token, &cb));
        let r = parse(&initial).unwrap();
        assert_eq!(r.username, "juliet");
        assert!(verify(token, &cb, &r.proof));
        assert!(!verify(b"another token", &cb, &r.proof));
        assert!(!verify(token, &[8u8; 32], &r.proof), "another channel");
        assert!(!verify(token, &[], &r.proof), "no channel binding");
        // The server's answer is not the client's proof replayed.
        assert_ne!(responder_proof(token, &cb), initiator_proof(token, &cb));
    }

    #[test]
    fn malformed_responses_are_refused() {
        for bad in [
            &b""[..],
            b"no separator",
            b"\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            b"user\0short",
        ] {
            assert_eq!(parse(bad), Err(SaslFailure::MalformedRequest), "{bad:?}");
        }
        let mut not_utf8 = vec![0xff, 0xfe, 0];
        not_utf8.extend_from_slice(&[1u8; 32]);
        assert_eq!(parse(&not_utf8), Err(SaslFailure::MalformedRequest));
    }

    #[test]
    fn mechanism_names_round_trip() {
        for m in HtMechanism::ALL {
            assert_eq!(HtMechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(HtMechanism::from_name("HT-SHA-256-UNIQ"), None);
        assert!(HtMechanism::Sha256Expr.binds_channel());
    }
}
