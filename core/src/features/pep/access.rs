//! Who may see a node (XEP-0060 §4.5 access models, as XEP-0163 applies
//! them to an account's contacts): decided from the owner's roster as the
//! account's actor holds it, at the moment of each request or
//! notification, so a contact who loses the subscription loses access at
//! once (XEP-0163 §7.1).

use switchboard_jid::Jid;

use super::config::{Access, NodeConfig};
use super::errors;
use crate::im::roster::Roster;
use crate::stanza::StanzaError;

/// The requester as the owner's roster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Owner,
    Other {
        /// The roster says the requester sees the owner's presence
        /// (`from` or `both`).
        sees_presence: bool,
        /// The requester's groups in the owner's roster.
        groups: Vec<String>,
    },
}

impl Viewer {
    /// The requester `who` (any resource) of the account `owner`.
    pub fn of(owner: &Jid, who: &Jid, roster: Option<&Roster>) -> Viewer {
        let bare = who.to_bare();
        if bare == *owner {
            return Viewer::Owner;
        }
        let item = roster.and_then(|r| r.items.get(&bare));
        Viewer::Other {
            sees_presence: item.is_some_and(|i| i.state.sub.has_from()),
            groups: item.map(|i| i.groups.clone()).unwrap_or_default(),
        }
    }

    pub fn is_owner(&self) -> bool {
        matches!(self, Viewer::Owner)
    }

    /// Whether the viewer may retrieve the node's items (and so receive
    /// its notifications), or the error XEP-0060 §6.5.9 names.
    pub fn check(&self, config: &NodeConfig) -> Result<(), StanzaError> {
        let Viewer::Other {
            sees_presence,
            groups,
        } = self
        else {
            return Ok(());
        };
        match config.access {
            Access::Open => Ok(()),
            Access::Presence if *sees_presence => Ok(()),
            Access::Presence => Err(errors::presence_subscription_required()),
            Access::Roster if groups.iter().any(|g| config.groups.contains(g)) => Ok(()),
            Access::Roster => Err(errors::not_in_roster_group()),
            Access::Whitelist => Err(errors::closed_node()),
        }
    }

    pub fn may_see(&self, config: &NodeConfig) -> bool {
        self.check(config).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(access: Access) -> NodeConfig {
        NodeConfig {
            access,
            groups: vec!["Family".into()],
            ..NodeConfig::default()
        }
    }

    fn other(sees_presence: bool, groups: &[&str]) -> Viewer {
        Viewer::Other {
            sees_presence,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn condition(r: Result<(), StanzaError>) -> (&'static str, String) {
        let e = r.unwrap_err();
        (e.condition, e.app.unwrap().name)
    }

    #[test]
    fn each_access_model_and_its_error() {
        for a in Access::ALL {
            assert_eq!(Viewer::Owner.check(&config(a)), Ok(()), "{a:?}");
        }
        assert_eq!(other(false, &[]).check(&config(Access::Open)), Ok(()));
        assert_eq!(other(true, &[]).check(&config(Access::Presence)), Ok(()));
        assert_eq!(
            condition(other(false, &["Family"]).check(&config(Access::Presence))),
            ("not-authorized", "presence-subscription-required".into())
        );
        assert_eq!(
            other(false, &["Family"]).check(&config(Access::Roster)),
            Ok(())
        );
        assert_eq!(
            condition(other(true, &["Work"]).check(&config(Access::Roster))),
            ("not-authorized", "not-in-roster-group".into())
        );
        assert_eq!(
            condition(other(true, &["Family"]).check(&config(Access::Whitelist))),
            ("not-allowed", "closed-node".into())
        );
    }
}
