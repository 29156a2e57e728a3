//! The message of the day, as jabberd 1.4 had it: set by an admin, shown
//! to every user once — to those online when it is set, and to the others
//! after their next initial presence — until it is deleted. This file is
//! the pure part: the model, which user has seen which MOTD, and both spool
//! forms, and the board of each host's current MOTD. The delivery is in
//! `crate::im::motd` (the account actors) and the changes in
//! `crate::admin`.
//!
//! **Series.** Setting a MOTD (`announce/motd`) starts a new *series*;
//! updating it (`announce/motd/update`) changes the text but keeps the
//! series. A user's record keeps the series they were last shown, so an
//! update reaches exactly the users who had not seen the MOTD yet, and a
//! new MOTD reaches everyone again. Series numbers only grow and are never
//! reused, not even after a delete: the last number handed out is kept.
//! (jabberd compared the set time with the user's last logout instead; a
//! stamp is exact where a clock comparison is off by a login in the same
//! second, and it survives the clock being set back.)
//!
//! Spool forms — in the host's data (`spool/<host>/+host.xml`):
//!
//! ```xml
//! <motd xmlns='urn:switchboard:spool:1' last-series='3'>
//!   <current series='3' set='1795475352' updated='1795475400'>
//!     <subject xmlns='jabber:client'>…</subject>
//!     <body xmlns='jabber:client'>…</body>
//!   </current>
//! </motd>
//! ```
//!
//! and in each user's record: `<motd-seen xmlns='urn:switchboard:spool:1'
//! series='3'/>`.

use std::collections::HashMap;
use std::sync::RwLock;

use switchboard_xml::{ns, Element};

use super::announcement::Announcement;

/// Each host's message-of-the-day state, read at start-up and kept in step
/// with the spool by whoever changes it (`crate::admin`).
#[derive(Debug, Default)]
pub struct MotdBoard {
    states: RwLock<HashMap<String, MotdState>>,
}

impl MotdBoard {
    /// A host's current message of the day.
    pub fn current(&self, host: &str) -> Option<Motd> {
        self.states
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .and_then(|s| s.current.clone())
    }

    /// Everything kept about a host's MOTD (the default when nothing is).
    pub fn state(&self, host: &str) -> MotdState {
        self.states
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// Makes `state` current for `host` (after it is stored).
    pub fn set(&self, host: &str, state: MotdState) {
        self.states
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string(), state);
    }
}

/// The element holding a host's MOTD state.
pub const MOTD: &str = "motd";
/// The element in a user's record naming the series they have seen.
pub const SEEN: &str = "motd-seen";

/// A host's current message of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Motd {
    /// Which MOTD this is, for "seen" (see the module documentation).
    pub series: u64,
    /// When the series was set (Unix seconds).
    pub set: u64,
    /// When its text last changed (Unix seconds): the delay stamp users
    /// who get it at login see.
    pub updated: u64,
    pub announcement: Announcement,
}

/// Everything a host keeps about its MOTD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MotdState {
    /// The last series number handed out (0: never any).
    pub last_series: u64,
    pub current: Option<Motd>,
}

impl MotdState {
    /// A new MOTD: a new series, which nobody has seen.
    pub fn set(&mut self, announcement: Announcement, now: u64) -> &Motd {
        self.last_series += 1;
        self.current.insert(Motd {
            series: self.last_series,
            set: now,
            updated: now,
            announcement,
        })
    }

    /// New text for the current MOTD, same series: whoever saw it is not
    /// shown it again. With no current MOTD this sets one (nobody has seen
    /// it), as jabberd did.
    pub fn update(&mut self, announcement: Announcement, now: u64) -> &Motd {
        if self.current.is_none() {
            return self.set(announcement, now);
        }
        let m = self.current.as_mut().expect("checked above");
        m.announcement = announcement;
        m.updated = now;
        m
    }

    /// Removes the current MOTD; whether there was one.
    pub fn delete(&mut self) -> bool {
        self.current.take().is_some()
    }

    /// The spool form, or `None` when there is nothing worth keeping.
    pub fn to_spool(&self) -> Option<Element> {
        if self.last_series == 0 && self.current.is_none() {
            return None;
        }
        let mut el =
            Element::new(MOTD, ns::SPOOL).with_attr("last-series", self.last_series.to_string());
        if let Some(m) = &self.current {
            let mut cur = Element::new("current", ns::SPOOL)
                .with_attr("series", m.series.to_string())
                .with_attr("set", m.set.to_string())
                .with_attr("updated", m.updated.to_string());
            for p in m.announcement.parts() {
                cur.append_child(p.clone());
            }
            el.append_child(cur);
        }
        Some(el)
    }

    /// Reads the spool form back; `Err` says what is wrong with it.
    pub fn from_spool(el: &Element) -> Result<MotdState, String> {
        if !el.is(MOTD, ns::SPOOL) {
            return Err(format!("<{}/> is not a <motd/> element", el.name));
        }
        let number = |e: &Element, name: &str| -> Result<u64, String> {
            let v = e
                .attr(name)
                .ok_or_else(|| format!("<{}/> without {name}=", e.name))?;
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| format!("<{}/> {name}='{v}' is not a number", e.name))
        };
        let last_series = number(el, "last-series")?;
        let current = match el.get_child("current", ns::SPOOL) {
            None => None,
            Some(c) => {
                let series = number(c, "series")?;
                if series == 0 || series > last_series {
                    return Err(format!(
                        "<current/> series='{series}' is not within last-series='{last_series}'"
                    ));
                }
                let announcement = Announcement::from_parts(c.elements().cloned().collect())
                    .map_err(|e| format!("<current/>: {e}"))?;
                Some(Motd {
                    series,
                    set: number(c, "set")?,
                    updated: number(c, "updated")?,
                    announcement,
                })
            }
        };
        Ok(MotdState {
            last_series,
            current,
        })
    }
}

/// Whether a user who was last shown `seen` (from [`seen_series`]) is still
/// to be shown `motd`.
pub fn unseen(motd: &Motd, seen: Option<u64>) -> bool {
    // Inequality rather than "older than": a host file restored from a
    // backup may hand out a number again, and showing a MOTD once more is
    // better than hiding a new one.
    seen != Some(motd.series)
}

/// The series a user's record says they have seen.
pub fn seen_series(extra: &[Element]) -> Option<u64> {
    extra
        .iter()
        .find(|e| e.is(SEEN, ns::SPOOL))
        .and_then(|e| e.attr("series"))
        .and_then(|s| s.parse().ok())
}

/// Records in a user's record that they have seen `series`.
pub fn mark_seen(extra: &mut Vec<Element>, series: u64) {
    extra.retain(|e| !e.is(SEEN, ns::SPOOL));
    extra.push(Element::new(SEEN, ns::SPOOL).with_attr("series", series.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Announcement {
        Announcement::new(None, s).unwrap()
    }

    #[test]
    fn a_new_motd_is_unseen_by_everyone_and_an_update_only_by_who_missed_it() {
        let mut st = MotdState::default();
        let first = st.set(text("one"), 100).clone();
        assert_eq!(first.series, 1);
        assert!(unseen(&first, None), "a user who never saw any MOTD");

        // alice is shown it; bob is away.
        let mut alice = Vec::new();
        mark_seen(&mut alice, first.series);
        assert!(!unseen(&first, seen_series(&alice)));

        // An update keeps the series: alice is done, bob still gets it.
        let updated = st.update(text("one, corrected"), 200).clone();
        assert_eq!(updated.series, 1);
        assert_eq!((updated.set, updated.updated), (100, 200));
        assert_eq!(updated.announcement.body(), "one, corrected");
        assert!(!unseen(&updated, seen_series(&alice)));
        assert!(unseen(&updated, seen_series(&[])));

        // A new MOTD is for everyone again.
        let second = st.set(text("two"), 300).clone();
        assert_eq!(second.series, 2);
        assert!(unseen(&second, seen_series(&alice)));
        mark_seen(&mut alice, second.series);
        assert_eq!(alice.len(), 1, "one stamp per user, replaced");
        assert_eq!(seen_series(&alice), Some(2));
    }

    #[test]
    fn series_are_never_reused_after_a_delete() {
        let mut st = MotdState::default();
        st.set(text("one"), 1);
        assert!(st.delete());
        assert!(!st.delete(), "nothing left to delete");
        assert!(st.current.is_none());
        let again = st.set(text("again"), 2).clone();
        assert_eq!(again.series, 2);
        let mut seen_first = Vec::new();
        mark_seen(&mut seen_first, 1);
        assert!(unseen(&again, seen_series(&seen_first)));
    }

    #[test]
    fn an_update_without_a_motd_sets_one() {
        let mut st = MotdState::default();
        let m = st.update(text("fresh"), 5).clone();
        assert_eq!((m.series, m.set, m.updated), (1, 5, 5));
    }

    #[test]
    fn spool_round_trip_including_the_counter_after_a_delete() {
        assert_eq!(MotdState::default().to_spool(), None);
        let mut st = MotdState::default();
        st.set(
            Announcement::new(Some("Subject <&>"), "Body\nline 2").unwrap(),
            1_795_475_352,
        );
        st.update(text("Body v2"), 1_795_475_400);
        let el = st.to_spool().unwrap();
        assert_eq!(MotdState::from_spool(&el).unwrap(), st);
        st.delete();
        let el = st.to_spool().unwrap();
        assert_eq!(el.attr("last-series"), Some("1"));
        assert_eq!(MotdState::from_spool(&el).unwrap(), st);
    }

    #[test]
    fn malformed_spool_forms_are_refused() {
        let good = {
            let mut st = MotdState::default();
            st.set(text("x"), 9);
            st.to_spool().unwrap()
        };
        assert!(MotdState::from_spool(&good).is_ok());
        let mut bad = good.clone();
        bad.set_attr("last-series", "+1");
        assert!(MotdState::from_spool(&bad).is_err());
        let mut bad = good.clone();
        bad.remove_attr("last-series");
        assert!(MotdState::from_spool(&bad).is_err());
        let mut bad = good.clone();
        bad.set_attr("last-series", "0");
        assert!(MotdState::from_spool(&bad)
            .unwrap_err()
            .contains("not within"));
        let mut bad = good.clone();
        bad.get_child_mut("current", ns::SPOOL)
            .unwrap()
            .children
            .clear();
        assert!(MotdState::from_spool(&bad).is_err());
        assert!(MotdState::from_spool(&Element::new("motd", "urn:x")).is_err());
        assert_eq!(seen_series(&[Element::new(SEEN, ns::SPOOL)]), None);
    }
}
