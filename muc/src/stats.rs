//! What the service counts about itself for the server's metrics
//! endpoint: rooms and occupants now, groupchat messages relayed and the
//! copies delivered to occupants' sessions since the start.
//!
//! [`Stats`] lives in the sans-IO [`Muc`](crate::Muc), which keeps it
//! current as it handles stanzas: the occupant total is adjusted by the
//! change in the one room a stanza addressed (only the service's own
//! commands, which may destroy any room, count again from scratch), so
//! keeping it costs nothing per message however many rooms there are.
//! [`Published`] copies it into the `ServiceMetrics` the driver was
//! given, a few relaxed atomic stores after each stanza.

use switchboard_service::metrics::{Counter, Gauge, ServiceMetrics};

/// The numbers, as the room logic keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Occupants (nicks) in every room.
    pub occupants: usize,
    /// Groupchat messages (subject changes included) the rooms relayed.
    pub messages: u64,
    /// Copies of them delivered to occupants' sessions.
    pub copies: u64,
}

/// The service's families in the host's metrics registry.
pub struct Published {
    rooms: Gauge,
    occupants: Gauge,
    messages: Counter,
    copies: Counter,
    last: Stats,
}

impl Published {
    /// Registers the families (again, after a restart: counters keep
    /// their totals).
    pub fn register(metrics: &ServiceMetrics) -> Published {
        fn or_log<T: Default, E: std::fmt::Display>(r: Result<T, E>) -> T {
            r.unwrap_or_else(|e| {
                tracing::error!("group chat metric not registered: {e}");
                T::default()
            })
        }
        Published {
            rooms: or_log(metrics.gauge("muc_rooms", "Group chat rooms.")),
            occupants: or_log(metrics.gauge(
                "muc_occupants",
                "Occupants (nicks) in all group chat rooms.",
            )),
            messages: or_log(metrics.counter(
                "muc_messages_total",
                "Groupchat messages relayed by the rooms.",
            )),
            copies: or_log(metrics.counter(
                "muc_message_copies_total",
                "Copies of groupchat messages delivered to occupants' sessions.",
            )),
            last: Stats::default(),
        }
    }

    /// Brings the families up to date.
    pub fn publish(&mut self, rooms: usize, now: Stats) {
        self.rooms.set(rooms as i64);
        self.occupants.set(now.occupants as i64);
        self.messages
            .add(now.messages.saturating_sub(self.last.messages));
        self.copies.add(now.copies.saturating_sub(self.last.copies));
        self.last = now;
    }
}
