//! Stream management (XEP-0198) counters for one session, sans-IO: what
//! the client has sent and the server has handled (`h` in the server's
//! answers), what the server has sent and the client has not yet
//! acknowledged (kept, to be sent again after a resumption or to be taken
//! back if the session ends), and whether an ack request is outstanding.
//!
//! Counters are 32-bit and wrap (XEP-0198 §4: "the value of h … MUST
//! wrap"), so every comparison is modular.

use std::collections::VecDeque;

use switchboard_xml::Element;

/// The stream management namespace.
pub const NS: &str = "urn:xmpp:sm:3";

/// Most stanzas kept unacknowledged. A client that acknowledges nothing
/// for this long is treated as gone (XEP-0198 lets the server decide).
pub const MAX_UNACKED: usize = 4096;

/// Ask for an acknowledgement once this many stanzas wait for one.
pub const REQUEST_AFTER: usize = 5;

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// `h` acknowledges more stanzas than were sent (XEP-0198 §4: the
    /// stream error `undefined-condition` with `<handled-count-too-high/>`).
    TooHigh { h: u32, sent: u32 },
}

/// One session's stream management state.
#[derive(Debug, Default)]
pub struct Sm {
    /// Stanzas received from the client and handled.
    pub handled: u32,
    /// Stanzas sent to the client in all.
    sent: u32,
    /// The stanzas sent and not acknowledged, oldest first: the last
    /// `unacked.len()` of the `sent`.
    unacked: VecDeque<Element>,
    /// An `<r/>` went out and no `<a/>` came back since.
    requested: bool,
}

impl Sm {
    /// A stanza was received from the client and handled.
    pub fn received(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }

    /// A stanza was written to the client: kept until acknowledged.
    pub fn sent(&mut self, stanza: Element) {
        self.sent = self.sent.wrapping_add(1);
        self.unacked.push_back(stanza);
    }

    /// Stanzas sent and not acknowledged.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// The stanzas sent and not acknowledged, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = &Element> {
        self.unacked.iter()
    }

    /// Whether too many stanzas wait for an acknowledgement.
    pub fn overflowing(&self) -> bool {
        self.unacked.len() > MAX_UNACKED
    }

    /// Whether to send an `<r/>` now (and remember that one is out).
    pub fn should_request(&mut self) -> bool {
        if self.requested || self.unacked.len() < REQUEST_AFTER {
            return false;
        }
        self.requested = true;
        true
    }

    /// Asks for an acknowledgement of whatever is unacknowledged, if no
    /// request is out (before hibernating, or on a quiet connection).
    pub fn request_if_unacked(&mut self) -> bool {
        if self.requested || self.unacked.is_empty() {
            return false;
        }
        self.requested = true;
        true
    }

    /// The client acknowledged `h` stanzas in all.
    pub fn ack(&mut self, h: u32) -> Result<(), AckError> {
        let first_unacked = self.sent.wrapping_sub(self.unacked.len() as u32);
        // How many of the unacknowledged ones `h` covers (modular).
        let newly = h.wrapping_sub(first_unacked);
        if newly as usize > self.unacked.len() {
            return Err(AckError::TooHigh { h, sent: self.sent });
        }
        self.unacked.drain(..newly as usize);
        self.requested = false;
        Ok(())
    }

    /// The stanzas to send again after a resumption in which the client
    /// says it handled `h`: those after `h`, in order (they stay
    /// unacknowledged).
    pub fn resend_after(&mut self, h: u32) -> Result<Vec<Element>, AckError> {
        self.ack(h)?;
        Ok(self.unacked.iter().cloned().collect())
    }

    /// Everything sent and not acknowledged, for a session that ends:
    /// the caller delivers it elsewhere or bounces it.
    pub fn take_unacked(&mut self) -> Vec<Element> {
        self.unacked.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(n: u32) -> Element {
        Element::new("message", "jabber:client").with_attr("id", n.to_string())
    }

    fn ids(v: &[Element]) -> Vec<String> {
        v.iter()
            .map(|e| e.attr("id").unwrap().to_string())
            .collect()
    }

    #[test]
    fn acks_drop_what_they_cover_and_resumption_resends_the_rest() {
        let mut sm = Sm::default();
        for n in 1..=6 {
            sm.sent(m(n));
        }
        assert!(sm.should_request());
        assert!(!sm.should_request(), "one request at a time");
        sm.ack(2).unwrap();
        assert_eq!(sm.unacked_len(), 4);
        // An old ack changes nothing.
        sm.ack(2).unwrap();
        assert_eq!(sm.unacked_len(), 4);
        let again = sm.resend_after(4).unwrap();
        assert_eq!(ids(&again), ["5", "6"]);
        assert_eq!(sm.unacked_len(), 2, "still unacknowledged until acked");
        assert_eq!(
            sm.ack(7),
            Err(AckError::TooHigh { h: 7, sent: 6 }),
            "more than was sent"
        );
        assert_eq!(ids(&sm.take_unacked()), ["5", "6"]);
    }

    #[test]
    fn counters_wrap_around() {
        let mut sm = Sm {
            sent: u32::MAX - 1,
            ..Default::default()
        };
        for n in 0..4 {
            sm.sent(m(n));
        }
        // The first stanza took the count to u32::MAX, the second wrapped
        // it to 0: acknowledging 0 covers those two.
        sm.ack(0).unwrap();
        assert_eq!(ids(&sm.take_unacked()), ["2", "3"]);
        let mut sm = Sm {
            handled: u32::MAX,
            ..Default::default()
        };
        sm.received();
        assert_eq!(sm.handled, 0);
    }
}
