//! The presence subscription state machine of RFC 6121 §3 and Appendix A,
//! as pure functions: no I/O, no roster, no stanzas.
//!
//! One [`State`] describes one contact as seen from one user's side: the
//! `subscription` attribute ([`Subscription`]), Pending Out (the user asked
//! the contact, shown as `ask='subscribe'`), Pending In (the contact asked
//! the user and is waiting; kept by the server, never shown in the roster)
//! and the pre-approval flag of §3.4 (shown as `approved='true'`). The nine
//! defined states of Appendix A.1 are the combinations of the first three
//! that can occur: "None", "None + Pending Out", "None + Pending In",
//! "None + Pending Out+In", "To", "To + Pending In", "From",
//! "From + Pending Out" and "Both"; pre-approval can be added to "None",
//! "None + Pending Out" and "To" (§3.4).
//!
//! [`outbound`] is what the user's server does with a subscription stanza
//! the user sends (Appendix A.2); [`inbound`] is what the server does with
//! one that arrives for the user (Appendix A.3). Both return the new state
//! and what to do with the stanza; everything else the RFC asks around
//! these transitions stays with the caller:
//!
//! - storing an undelivered inbound `subscribe` and delivering it at the
//!   next initial presence (§3.1.3);
//! - sending the user's current presence to a contact who just gained a
//!   subscription (§3.1.5, and after an auto-reply `subscribed`), and
//!   `unavailable` from every available resource to one who lost it
//!   (§3.2.2, §3.3.3);
//! - removing an item that the user never added once it is back to
//!   [`State::is_empty`].
//!
//! Ambiguities resolved here (section numbers of RFC 6121):
//!
//! - Outbound `subscribe` and `unsubscribe` are routed in every state,
//!   including when nothing changes (A.2.1, A.2.2): the contact's server is
//!   the authority, and a repeated request is how two servers
//!   resynchronise (the contact's server auto-replies `subscribed`, §3.1.3).
//! - Pre-approval (§3.4) is always available: an outbound `subscribed` with
//!   no Pending In sets `approved` in "None", "None + Pending Out" and
//!   "To", is silently ignored in "From", "From + Pending Out" and "Both",
//!   and is never routed. A server that does not advertise
//!   `urn:xmpp:features:pre-approval` should not call [`outbound`] for that
//!   case.
//! - An inbound `subscribe` in a pre-approved state is approved by the
//!   server (§3.1.3, §3.4): the contact gains From, `approved` is cleared
//!   (it has been used), the user's resources get a roster push, the
//!   request is not delivered, and `subscribed` is auto-replied.
//! - An outbound `unsubscribed` in a pre-approved state withdraws the
//!   pre-approval and is not routed (§3.2.2 item 2); the item changes
//!   visibly (`approved` goes away), so it is pushed.
//! - An inbound `unsubscribe` gets no auto-reply: §3.3.3 asks for delivery,
//!   a roster push and `unavailable` presence only.
//! - Pending In is not part of a roster item as clients see it (§2.1.2), so
//!   a change to it alone needs no roster push; [`Outbound::push`] and
//!   [`Inbound::push`] are set exactly when `subscription`, `ask` or
//!   `approved` change.

/// The `subscription` attribute of a roster item (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Subscription {
    /// Neither side is subscribed to the other's presence.
    #[default]
    None,
    /// The user is subscribed to the contact's presence.
    To,
    /// The contact is subscribed to the user's presence.
    From,
    /// Both are subscribed to each other's presence.
    Both,
}

impl Subscription {
    /// The attribute value: `none`, `to`, `from` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// Parses an attribute value. `remove` is a roster-set command, not a
    /// state, and gives `None` like any other unknown value.
    pub fn parse(value: &str) -> Option<Subscription> {
        match value {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            _ => None,
        }
    }

    /// Whether the user receives the contact's presence (`to` or `both`).
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// Whether the contact receives the user's presence (`from` or `both`).
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }

    /// The subscription made of the two directions.
    pub fn from_parts(to: bool, from: bool) -> Subscription {
        match (to, from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }

    fn with_to(self, to: bool) -> Subscription {
        Subscription::from_parts(to, self.has_from())
    }

    fn with_from(self, from: bool) -> Subscription {
        Subscription::from_parts(self.has_to(), from)
    }
}

/// The full state of one contact from the user's side: one of Appendix
/// A.1's nine states, plus the pre-approval flag of §3.4.
///
/// The default (`None`, nothing pending, not pre-approved) is also the
/// state of a contact that is not in the roster at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct State {
    /// The `subscription` attribute.
    pub sub: Subscription,
    /// Pending Out: the user asked for the contact's presence and has no
    /// answer yet (`ask='subscribe'`).
    pub pending_out: bool,
    /// Pending In: the contact asked for the user's presence and the user
    /// has not answered yet. Server-side only.
    pub pending_in: bool,
    /// The user pre-approved a request from the contact (§3.4,
    /// `approved='true'`).
    pub approved: bool,
}

impl State {
    /// A state with only a subscription: nothing pending, no pre-approval.
    pub const fn new(sub: Subscription) -> State {
        State {
            sub,
            pending_out: false,
            pending_in: false,
            approved: false,
        }
    }

    /// Whether nothing is left: `None`, nothing pending, no pre-approval.
    /// An item the user never added can then be dropped; one the user
    /// added stays (that is the caller's decision).
    pub fn is_empty(self) -> bool {
        self == State::default()
    }

    /// The `ask` attribute of the roster item, if any.
    pub fn ask(self) -> Option<&'static str> {
        self.pending_out.then_some("subscribe")
    }

    /// What a client sees of the state in a roster item (§2.1.2): Pending
    /// In is not part of it.
    fn visible(self) -> (Subscription, bool, bool) {
        (self.sub, self.pending_out, self.approved)
    }
}

/// The four subscription-related presence types (RFC 6121 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A request for the recipient's presence.
    Subscribe,
    /// The recipient may now see the sender's presence (an approval).
    Subscribed,
    /// The sender no longer wants the recipient's presence.
    Unsubscribe,
    /// The recipient may no longer see the sender's presence (a denial or
    /// a cancellation).
    Unsubscribed,
}

impl Kind {
    /// Parses a presence `type` attribute; other types (none, `unavailable`,
    /// `probe`, `error`) give `None`.
    pub fn parse(type_attr: &str) -> Option<Kind> {
        match type_attr {
            "subscribe" => Some(Kind::Subscribe),
            "subscribed" => Some(Kind::Subscribed),
            "unsubscribe" => Some(Kind::Unsubscribe),
            "unsubscribed" => Some(Kind::Unsubscribed),
            _ => None,
        }
    }

    /// The presence `type` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Subscribed => "subscribed",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Unsubscribed => "unsubscribed",
        }
    }
}

/// What the user's server does with a subscription stanza the user sends
/// (Appendix A.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    /// The contact's state afterwards.
    pub state: State,
    /// Route the stanza to the contact (stamped with the user's bare JID).
    pub route: bool,
    /// Push the item to the user's interested resources: what they see of
    /// it changed (or it came into being).
    pub push: bool,
}

/// What the user's server does with a subscription stanza that arrives
/// for the user from the contact (Appendix A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbound {
    /// The contact's state afterwards.
    pub state: State,
    /// Deliver the stanza to the user's resources (a `subscribe` with no
    /// available resource is stored and delivered later, §3.1.3).
    pub deliver: bool,
    /// The server itself answers the contact with this, on the user's
    /// behalf (§3.1.3: already subscribed, or pre-approved).
    pub auto_reply: Option<Kind>,
    /// Push the item to the user's interested resources.
    pub push: bool,
}

/// The user sends `kind` to the contact whose state is `state`
/// (RFC 6121 Appendix A.2, with §3.4 for pre-approval).
pub fn outbound(state: State, kind: Kind) -> Outbound {
    let mut next = state;
    let route = match kind {
        // A.2.1 / §3.1.2: Pending Out unless the user already has To; the
        // request is routed in every state, even when nothing changes.
        Kind::Subscribe => {
            if !state.sub.has_to() {
                next.pending_out = true;
            }
            true
        }
        // A.2.2 / §3.3.2: To and Pending Out end; routed in every state.
        Kind::Unsubscribe => {
            next.sub = state.sub.with_to(false);
            next.pending_out = false;
            true
        }
        Kind::Subscribed => {
            if state.pending_in {
                // A.2.3 / §3.1.5 (§3.4 rule 2): approval of the request the
                // contact made. Any pre-approval is used up.
                next.sub = state.sub.with_from(true);
                next.pending_in = false;
                next.approved = false;
                true
            } else if state.sub.has_from() {
                // §3.4 rule 1 ("From", "From + Pending Out", "Both"):
                // silently ignored, not routed.
                false
            } else {
                // §3.4 rules 3 and 4 ("None", "None + Pending Out", "To",
                // or no item): pre-approval. MUST NOT be routed.
                next.approved = true;
                false
            }
        }
        Kind::Unsubscribed => {
            // A.2.4 / §3.2.2: a denial of Pending In or a cancellation of
            // From is routed; with neither there is nothing to tell the
            // contact ("None", "None + Pending Out", "To"), and a
            // pre-approval is withdrawn without routing (§3.2.2 item 2).
            let route = state.pending_in || state.sub.has_from();
            next.sub = state.sub.with_from(false);
            next.pending_in = false;
            next.approved = false;
            route
        }
    };
    Outbound {
        state: next,
        route,
        push: next.visible() != state.visible(),
    }
}

/// The contact sends `kind` to the user, who has the contact in state
/// `state` (RFC 6121 Appendix A.3, with §3.1.3 and §3.4).
pub fn inbound(state: State, kind: Kind) -> Inbound {
    let mut next = state;
    let mut auto_reply = None;
    let deliver = match kind {
        Kind::Subscribe => {
            if state.sub.has_from() {
                // A.3.1 "no *" / §3.1.3 item 2: already subscribed; the
                // server answers `subscribed` itself (resynchronisation).
                auto_reply = Some(Kind::Subscribed);
                false
            } else if state.approved {
                // §3.1.3 / §3.4: pre-approved, so the server approves the
                // request on the user's behalf and MUST NOT deliver it.
                next.sub = state.sub.with_from(true);
                next.pending_in = false;
                next.approved = false;
                auto_reply = Some(Kind::Subscribed);
                false
            } else if state.pending_in {
                // A.3.1: a request is already pending; not delivered again.
                false
            } else {
                // A.3.1: "None", "None + Pending Out", "To" gain Pending In.
                next.pending_in = true;
                true
            }
        }
        Kind::Unsubscribe => {
            // A.3.2 / §3.3.3: From and Pending In end; delivered only if
            // one of them was there.
            let deliver = state.sub.has_from() || state.pending_in;
            next.sub = state.sub.with_from(false);
            next.pending_in = false;
            deliver
        }
        Kind::Subscribed => {
            // A.3.3 / §3.1.6: only an answer to Pending Out counts; in any
            // other state it MUST NOT be delivered and changes nothing.
            if state.pending_out && !state.sub.has_to() {
                next.sub = state.sub.with_to(true);
                next.pending_out = false;
                true
            } else {
                false
            }
        }
        Kind::Unsubscribed => {
            // A.3.4 / §3.2.3: To and Pending Out end; delivered only if one
            // of them was there.
            let deliver = state.sub.has_to() || state.pending_out;
            next.sub = state.sub.with_to(false);
            next.pending_out = false;
            deliver
        }
    };
    Inbound {
        state: next,
        deliver,
        auto_reply,
        push: next.visible() != state.visible(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn st(sub: Subscription, pending_out: bool, pending_in: bool, approved: bool) -> State {
        State {
            sub,
            pending_out,
            pending_in,
            approved,
        }
    }

    // Appendix A.1's nine states.
    const NONE: State = st(Subscription::None, false, false, false);
    const NONE_PO: State = st(Subscription::None, true, false, false);
    const NONE_PI: State = st(Subscription::None, false, true, false);
    const NONE_POI: State = st(Subscription::None, true, true, false);
    const TO: State = st(Subscription::To, false, false, false);
    const TO_PI: State = st(Subscription::To, false, true, false);
    const FROM: State = st(Subscription::From, false, false, false);
    const FROM_PO: State = st(Subscription::From, true, false, false);
    const BOTH: State = st(Subscription::Both, false, false, false);
    // The pre-approved states of §3.4.
    const NONE_A: State = st(Subscription::None, false, false, true);
    const NONE_PO_A: State = st(Subscription::None, true, false, true);
    const TO_A: State = st(Subscription::To, false, false, true);

    const SUBSCRIBED: Option<Kind> = Some(Kind::Subscribed);

    /// (row, before, after, route, push)
    type OutRow = (&'static str, State, State, bool, bool);
    /// (row, before, after, deliver, auto_reply, push)
    type InRow = (&'static str, State, State, bool, Option<Kind>, bool);

    fn check_outbound(kind: Kind, rows: &[OutRow]) {
        for &(row, before, after, route, push) in rows {
            let got = outbound(before, kind);
            assert_eq!(
                got,
                Outbound {
                    state: after,
                    route,
                    push
                },
                "outbound {} in {row}",
                kind.as_str()
            );
        }
    }

    fn check_inbound(kind: Kind, rows: &[InRow]) {
        for &(row, before, after, deliver, auto_reply, push) in rows {
            let got = inbound(before, kind);
            assert_eq!(
                got,
                Inbound {
                    state: after,
                    deliver,
                    auto_reply,
                    push
                },
                "inbound {} in {row}",
                kind.as_str()
            );
        }
    }

    #[test]
    fn outbound_subscribe_a_2_1() {
        check_outbound(
            Kind::Subscribe,
            &[
                ("None", NONE, NONE_PO, true, true),
                ("None + Pending Out", NONE_PO, NONE_PO, true, false),
                ("None + Pending In", NONE_PI, NONE_POI, true, true),
                ("None + Pending Out+In", NONE_POI, NONE_POI, true, false),
                ("To", TO, TO, true, false),
                ("To + Pending In", TO_PI, TO_PI, true, false),
                ("From", FROM, FROM_PO, true, true),
                ("From + Pending Out", FROM_PO, FROM_PO, true, false),
                ("Both", BOTH, BOTH, true, false),
                ("None, pre-approved", NONE_A, NONE_PO_A, true, true),
                (
                    "None + Pending Out, pre-approved",
                    NONE_PO_A,
                    NONE_PO_A,
                    true,
                    false,
                ),
                ("To, pre-approved", TO_A, TO_A, true, false),
            ],
        );
    }

    #[test]
    fn outbound_unsubscribe_a_2_2() {
        check_outbound(
            Kind::Unsubscribe,
            &[
                ("None", NONE, NONE, true, false),
                ("None + Pending Out", NONE_PO, NONE, true, true),
                ("None + Pending In", NONE_PI, NONE_PI, true, false),
                ("None + Pending Out+In", NONE_POI, NONE_PI, true, true),
                ("To", TO, NONE, true, true),
                ("To + Pending In", TO_PI, NONE_PI, true, true),
                ("From", FROM, FROM, true, false),
                ("From + Pending Out", FROM_PO, FROM, true, true),
                ("Both", BOTH, FROM, true, true),
                ("None, pre-approved", NONE_A, NONE_A, true, false),
                (
                    "None + Pending Out, pre-approved",
                    NONE_PO_A,
                    NONE_A,
                    true,
                    true,
                ),
                ("To, pre-approved", TO_A, NONE_A, true, true),
            ],
        );
    }

    #[test]
    fn outbound_subscribed_a_2_3_and_pre_approval() {
        check_outbound(
            Kind::Subscribed,
            &[
                // §3.4 rules 3-4: pre-approval, never routed.
                ("None", NONE, NONE_A, false, true),
                ("None + Pending Out", NONE_PO, NONE_PO_A, false, true),
                ("None + Pending In", NONE_PI, FROM, true, true),
                ("None + Pending Out+In", NONE_POI, FROM_PO, true, true),
                ("To", TO, TO_A, false, true),
                ("To + Pending In", TO_PI, BOTH, true, true),
                // §3.4 rule 1: silently ignored.
                ("From", FROM, FROM, false, false),
                ("From + Pending Out", FROM_PO, FROM_PO, false, false),
                ("Both", BOTH, BOTH, false, false),
                // Pre-approving twice changes nothing.
                ("None, pre-approved", NONE_A, NONE_A, false, false),
                (
                    "None + Pending Out, pre-approved",
                    NONE_PO_A,
                    NONE_PO_A,
                    false,
                    false,
                ),
                ("To, pre-approved", TO_A, TO_A, false, false),
            ],
        );
    }

    #[test]
    fn outbound_unsubscribed_a_2_4() {
        check_outbound(
            Kind::Unsubscribed,
            &[
                ("None", NONE, NONE, false, false),
                ("None + Pending Out", NONE_PO, NONE_PO, false, false),
                // Denying a request: routed, but Pending In is not shown,
                // so there is nothing to push.
                ("None + Pending In", NONE_PI, NONE, true, false),
                ("None + Pending Out+In", NONE_POI, NONE_PO, true, false),
                ("To", TO, TO, false, false),
                ("To + Pending In", TO_PI, TO, true, false),
                ("From", FROM, NONE, true, true),
                ("From + Pending Out", FROM_PO, NONE_PO, true, true),
                ("Both", BOTH, TO, true, true),
                // §3.2.2 item 2: the pre-approval is withdrawn, not routed.
                ("None, pre-approved", NONE_A, NONE, false, true),
                (
                    "None + Pending Out, pre-approved",
                    NONE_PO_A,
                    NONE_PO,
                    false,
                    true,
                ),
                ("To, pre-approved", TO_A, TO, false, true),
            ],
        );
    }

    #[test]
    fn inbound_subscribe_a_3_1_and_pre_approval() {
        check_inbound(
            Kind::Subscribe,
            &[
                ("None", NONE, NONE_PI, true, None, false),
                ("None + Pending Out", NONE_PO, NONE_POI, true, None, false),
                ("None + Pending In", NONE_PI, NONE_PI, false, None, false),
                (
                    "None + Pending Out+In",
                    NONE_POI,
                    NONE_POI,
                    false,
                    None,
                    false,
                ),
                ("To", TO, TO_PI, true, None, false),
                ("To + Pending In", TO_PI, TO_PI, false, None, false),
                ("From", FROM, FROM, false, SUBSCRIBED, false),
                (
                    "From + Pending Out",
                    FROM_PO,
                    FROM_PO,
                    false,
                    SUBSCRIBED,
                    false,
                ),
                ("Both", BOTH, BOTH, false, SUBSCRIBED, false),
                // §3.4: approved by the server, not delivered.
                ("None, pre-approved", NONE_A, FROM, false, SUBSCRIBED, true),
                (
                    "None + Pending Out, pre-approved",
                    NONE_PO_A,
                    FROM_PO,
                    false,
                    SUBSCRIBED,
                    true,
                ),
                ("To, pre-approved", TO_A, BOTH, false, SUBSCRIBED, true),
            ],
        );
    }

    #[test]
    fn inbound_unsubscribe_a_3_2() {
        check_inbound(
            Kind::Unsubscribe,
            &[
                ("None", NONE, NONE, false, None, false),
                ("None + Pending Out", NONE_PO, NONE_PO, false, None, false),
                ("None + Pending In", NONE_PI, NONE, true, None, false),
                (
                    "None + Pending Out+In",
                    NONE_POI,
                    NONE_PO,
                    true,
                    None,
                    false,
                ),
                ("To", TO, TO, false, None, false),
                ("To + Pending In", TO_PI, TO, true, None, false),
                ("From", FROM, NONE, true, None, true),
                ("From + Pending Out", FROM_PO, NONE_PO, true, None, true),
                ("Both", BOTH, TO, true, None, true),
                ("None, pre-approved", NONE_A, NONE_A, false, None, false),
                (
                    "None + Pending Out, pre-approved",
                    NONE_PO_A,
                    NONE_PO_A,
                    false,
                    None,
                    false,
                ),
                ("To, pre-approved", TO_A, TO_A, false, None, false),
            ],
        );
    }

    #[test]
    fn inbound_subscribed_a_3_3() {
        check_inbound(
            Kind::Subscribed,
            &[
                ("None", NONE, NONE, false, None, false),
                ("None + Pending Out", NONE_PO, TO, true, None, true),
                ("None + Pending In", NONE_PI, NONE_PI, false, None, false),
                ("None + Pending Out+In", NONE_POI, TO_PI, true, None, true),
                ("To", TO, TO, false, None, false),
                ("To + Pending In", TO_PI, TO_PI, false, None, false),
                ("From", FROM, FROM, false, None, false),
                ("From + Pending Out", FROM_PO, BOTH, true, None, true),
                ("Both", BOTH, BOTH, false, None, false),
                ("None, pre-approved", NONE_A, NONE_A, false, None, false),
                (
                    "None + Pending Out, pre-approved",
                    NONE_PO_A,
                    TO_A,
                    true,
                    None,
                    true,
                ),
                ("To, pre-approved", TO_A, TO_A, false, None, false),
            ],
        );
    }

    #[test]
    fn inbound_unsubscribed_a_3_4() {
        check_inbound(
            Kind::Unsubscribed,
            &[
                ("None", NONE, NONE, false, None, false),
                ("None + Pending Out", NONE_PO, NONE, true, None, true),
                ("None + Pending In", NONE_PI, NONE_PI, false, None, false),
                ("None + Pending Out+In", NONE_POI, NONE_PI, true, None, true),
                ("To", TO, NONE, true, None, true),
                ("To + Pending In", TO_PI, NONE_PI, true, None, true),
                ("From", FROM, FROM, false, None, false),
                ("From + Pending Out", FROM_PO, FROM, true, None, true),
                ("Both", BOTH, FROM, true, None, true),
                ("None, pre-approved", NONE_A, NONE_A, false, None, false),
                (
                    "None + Pending Out, pre-approved",
                    NONE_PO_A,
                    NONE_A,
                    true,
                    None,
                    true,
                ),
                ("To, pre-approved", TO_A, NONE_A, true, None, true),
            ],
        );
    }

    /// Two servers, each holding one side's view of the other.
    struct Pair {
        /// The sender's view of the recipient.
        sender: State,
        /// The recipient's view of the sender.
        recipient: State,
    }

    /// What happened to one stanza on its way.
    #[derive(Debug, PartialEq, Eq)]
    struct Trip {
        route: bool,
        sender_push: bool,
        deliver: bool,
        recipient_push: bool,
        auto_reply: Option<Kind>,
    }

    impl Pair {
        /// The sender sends `kind`: the sender's server applies A.2, the
        /// recipient's server A.3 if it was routed; an auto-reply travels
        /// back and is applied by the sender's server as inbound.
        fn send(&mut self, kind: Kind) -> Trip {
            let out = outbound(self.sender, kind);
            self.sender = out.state;
            let mut trip = Trip {
                route: out.route,
                sender_push: out.push,
                deliver: false,
                recipient_push: false,
                auto_reply: None,
            };
            if out.route {
                let inn = inbound(self.recipient, kind);
                self.recipient = inn.state;
                trip.deliver = inn.deliver;
                trip.recipient_push = inn.push;
                trip.auto_reply = inn.auto_reply;
                if let Some(reply) = inn.auto_reply {
                    self.sender = inbound(self.sender, reply).state;
                }
            }
            trip
        }

        fn swap(&mut self) {
            std::mem::swap(&mut self.sender, &mut self.recipient);
        }
    }

    fn trip(
        route: bool,
        sender_push: bool,
        deliver: bool,
        recipient_push: bool,
        auto_reply: Option<Kind>,
    ) -> Trip {
        Trip {
            route,
            sender_push,
            deliver,
            recipient_push,
            auto_reply,
        }
    }

    #[test]
    fn two_parties_subscribe_both_ways_then_unsubscribe() {
        // `alice` is alice's view of bob, `bob` bob's view of alice.
        let mut p = Pair {
            sender: State::default(),
            recipient: State::default(),
        };

        // alice asks bob.
        assert_eq!(p.send(Kind::Subscribe), trip(true, true, true, false, None));
        assert_eq!((p.sender, p.recipient), (NONE_PO, NONE_PI));

        // bob approves.
        p.swap();
        assert_eq!(p.send(Kind::Subscribed), trip(true, true, true, true, None));
        assert_eq!((p.sender, p.recipient), (FROM, TO));

        // bob asks alice back.
        assert_eq!(p.send(Kind::Subscribe), trip(true, true, true, false, None));
        assert_eq!((p.sender, p.recipient), (FROM_PO, TO_PI));

        // alice approves: mutual.
        p.swap();
        assert_eq!(p.send(Kind::Subscribed), trip(true, true, true, true, None));
        assert_eq!((p.sender, p.recipient), (BOTH, BOTH));

        // alice asks again (resynchronisation): routed, bob's server answers
        // for bob, alice's server ignores the answer, nobody changes.
        assert_eq!(
            p.send(Kind::Subscribe),
            trip(true, false, false, false, SUBSCRIBED)
        );
        assert_eq!((p.sender, p.recipient), (BOTH, BOTH));

        // alice stops receiving bob's presence.
        assert_eq!(
            p.send(Kind::Unsubscribe),
            trip(true, true, true, true, None)
        );
        assert_eq!((p.sender, p.recipient), (FROM, TO));

        // alice also cancels bob's subscription to her.
        assert_eq!(
            p.send(Kind::Unsubscribed),
            trip(true, true, true, true, None)
        );
        assert_eq!((p.sender, p.recipient), (NONE, NONE));
        assert!(p.sender.is_empty() && p.recipient.is_empty());

        // A second cancellation goes nowhere.
        assert_eq!(
            p.send(Kind::Unsubscribed),
            trip(false, false, false, false, None)
        );
    }

    #[test]
    fn denied_request() {
        let mut p = Pair {
            sender: State::default(),
            recipient: State::default(),
        };
        p.send(Kind::Subscribe);
        p.swap();
        // bob denies alice's request.
        assert_eq!(
            p.send(Kind::Unsubscribed),
            trip(true, false, true, true, None)
        );
        assert_eq!((p.sender, p.recipient), (NONE, NONE));
    }

    #[test]
    fn withdrawn_request() {
        let mut p = Pair {
            sender: State::default(),
            recipient: State::default(),
        };
        p.send(Kind::Subscribe);
        // alice withdraws her request before bob answers.
        assert_eq!(
            p.send(Kind::Unsubscribe),
            trip(true, true, true, false, None)
        );
        assert_eq!((p.sender, p.recipient), (NONE, NONE));
    }

    #[test]
    fn pre_approval_then_request() {
        // bob pre-approves alice, who is not in his roster yet.
        let mut p = Pair {
            sender: State::default(),
            recipient: State::default(),
        };
        assert_eq!(
            p.send(Kind::Subscribed),
            trip(false, true, false, false, None)
        );
        assert_eq!((p.sender, p.recipient), (NONE_A, NONE));

        // alice asks: bob's server approves at once and tells bob's
        // resources with a push, without delivering the request; alice's
        // server gets `subscribed` and completes her side.
        p.swap();
        assert_eq!(
            p.send(Kind::Subscribe),
            trip(true, true, false, true, SUBSCRIBED)
        );
        assert_eq!((p.sender, p.recipient), (TO, FROM));
    }

    #[test]
    fn pre_approval_withdrawn() {
        let mut p = Pair {
            sender: TO,
            recipient: FROM,
        };
        // alice (To) pre-approves bob.
        assert_eq!(
            p.send(Kind::Subscribed),
            trip(false, true, false, false, None)
        );
        assert_eq!(p.sender, TO_A);
        // ...and withdraws it: not routed, bob still sends her his presence.
        assert_eq!(
            p.send(Kind::Unsubscribed),
            trip(false, true, false, false, None)
        );
        assert_eq!((p.sender, p.recipient), (TO, FROM));
        // bob's request is now delivered to alice as usual.
        p.swap();
        assert_eq!(p.send(Kind::Subscribe), trip(true, true, true, false, None));
        assert_eq!((p.sender, p.recipient), (FROM_PO, TO_PI));
    }

    #[test]
    fn crossing_requests() {
        // Both ask at the same time.
        let mut p = Pair {
            sender: State::default(),
            recipient: State::default(),
        };
        p.send(Kind::Subscribe);
        p.swap();
        assert_eq!(p.send(Kind::Subscribe), trip(true, true, true, false, None));
        assert_eq!((p.sender, p.recipient), (NONE_POI, NONE_POI));
        assert_eq!(p.send(Kind::Subscribed), trip(true, true, true, true, None));
        assert_eq!((p.sender, p.recipient), (FROM_PO, TO_PI));
        p.swap();
        assert_eq!(p.send(Kind::Subscribed), trip(true, true, true, true, None));
        assert_eq!((p.sender, p.recipient), (BOTH, BOTH));
    }

    #[test]
    fn attribute_values() {
        for (s, text) in [
            (Subscription::None, "none"),
            (Subscription::To, "to"),
            (Subscription::From, "from"),
            (Subscription::Both, "both"),
        ] {
            assert_eq!(s.as_str(), text);
            assert_eq!(Subscription::parse(text), Some(s));
        }
        assert_eq!(Subscription::parse("remove"), None);
        assert_eq!(Subscription::parse("Both"), None);
        assert_eq!(Subscription::parse(""), None);

        for (k, text) in [
            (Kind::Subscribe, "subscribe"),
            (Kind::Subscribed, "subscribed"),
            (Kind::Unsubscribe, "unsubscribe"),
            (Kind::Unsubscribed, "unsubscribed"),
        ] {
            assert_eq!(k.as_str(), text);
            assert_eq!(Kind::parse(text), Some(k));
        }
        for other in ["", "unavailable", "probe", "error", "Subscribe"] {
            assert_eq!(Kind::parse(other), None);
        }
    }

    #[test]
    fn directions() {
        assert!(!Subscription::None.has_to() && !Subscription::None.has_from());
        assert!(Subscription::To.has_to() && !Subscription::To.has_from());
        assert!(!Subscription::From.has_to() && Subscription::From.has_from());
        assert!(Subscription::Both.has_to() && Subscription::Both.has_from());
        assert_eq!(Subscription::from_parts(true, true), Subscription::Both);
        assert_eq!(Subscription::from_parts(false, true), Subscription::From);
    }

    #[test]
    fn state_helpers() {
        assert_eq!(State::default(), NONE);
        assert_eq!(State::new(Subscription::Both), BOTH);
        assert!(NONE.is_empty());
        for s in [NONE_PO, NONE_PI, TO, FROM, BOTH, NONE_A] {
            assert!(!s.is_empty(), "{s:?}");
        }
        assert_eq!(NONE_PO.ask(), Some("subscribe"));
        assert_eq!(FROM_PO.ask(), Some("subscribe"));
        assert_eq!(TO_PI.ask(), None);
    }
}
