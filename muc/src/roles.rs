//! Roles and affiliations (XEP-0045 §5) and who may change them, kept as
//! tables the way ejabberd's `mod_muc_room.erl` keeps them: the rules are
//! data that a reader can check against the XEP line by line, and the
//! functions below only look them up.
//!
//! A refusal is a [`Refusal`]: `Forbidden` when the actor lacks the
//! privilege altogether (`<forbidden/>`, type `auth`), `NotAllowed` when
//! the actor has it but not over this target (`<not-allowed/>`, type
//! `cancel`), as §8 and §9 of the XEP distinguish them.

use switchboard_service::stanza::{ErrorType, StanzaError};

/// An occupant's role in the room, while present (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A user's long-lived relation to the room (§5.2), present or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }
}

/// What a role lets an occupant do (§5.1.1, the table "Privileges
/// Associated With Roles"). The privileges that the room's configuration
/// may grant or withhold (private messages, invitations, the subject)
/// are marked *configurable* in the XEP and decided with the
/// configuration in `room.rs`; this table gives their upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    PresentInRoom,
    ReceiveMessages,
    ReceiveOccupantPresence,
    BroadcastPresence,
    ChangeAvailability,
    ChangeNick,
    SendPrivateMessages,
    InviteOthers,
    SendMessagesToAll,
    ModifySubject,
    Kick,
    GrantVoice,
    RevokeVoice,
}

/// Columns: none, visitor, participant, moderator.
const ROLE_PRIVILEGES: &[(Privilege, [bool; 4])] = &[
    (Privilege::PresentInRoom, [false, true, true, true]),
    (Privilege::ReceiveMessages, [false, true, true, true]),
    (
        Privilege::ReceiveOccupantPresence,
        [false, true, true, true],
    ),
    (Privilege::BroadcastPresence, [false, true, true, true]),
    (Privilege::ChangeAvailability, [false, true, true, true]),
    (Privilege::ChangeNick, [false, true, true, true]),
    (Privilege::SendPrivateMessages, [false, true, true, true]),
    (Privilege::InviteOthers, [false, true, true, true]),
    (Privilege::SendMessagesToAll, [false, false, true, true]),
    (Privilege::ModifySubject, [false, false, true, true]),
    (Privilege::Kick, [false, false, false, true]),
    (Privilege::GrantVoice, [false, false, false, true]),
    (Privilege::RevokeVoice, [false, false, false, true]),
];

/// Whether `role` carries `privilege` at all.
pub fn has(role: Role, privilege: Privilege) -> bool {
    ROLE_PRIVILEGES
        .iter()
        .find(|(p, _)| *p == privilege)
        .is_some_and(|(_, cols)| cols[role.index()])
}

/// The role an affiliation enters the room with (§5.1.2 and the default
/// roles of §5.2): owners and admins moderate, members take part, others
/// take part unless the room is moderated. Outcasts never enter.
pub fn default_role(affiliation: Affiliation, moderated: bool) -> Role {
    match affiliation {
        Affiliation::Owner | Affiliation::Admin => Role::Moderator,
        Affiliation::Member => Role::Participant,
        Affiliation::None if moderated => Role::Visitor,
        Affiliation::None => Role::Participant,
        Affiliation::Outcast => Role::None,
    }
}

/// Why a change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The actor lacks the privilege: `<forbidden/>` (auth).
    Forbidden,
    /// The actor has the privilege, but not over this target:
    /// `<not-allowed/>` (cancel).
    NotAllowed,
}

impl Refusal {
    pub fn to_error(self, text: &str) -> StanzaError {
        match self {
            Refusal::Forbidden => StanzaError::forbidden().with_text(text),
            Refusal::NotAllowed => {
                StanzaError::new("not-allowed", ErrorType::Cancel).with_text(text)
            }
        }
    }
}

/// Who may set an occupant's role to what (§8.2 kick, §8.3 grant voice,
/// §8.4 revoke voice, §9.6 grant moderator, §9.7 revoke moderator).
///
/// Each row: the new role; the least the actor must be (a role, or an
/// affiliation if `by_affiliation`); and the rule protecting targets.
struct RoleRule {
    new: Role,
    /// The actor needs this role…
    actor_role: Role,
    /// …and at least this affiliation.
    actor_affiliation: Affiliation,
    protect: Protect,
}

/// How a target is protected from a role change.
#[derive(Clone, Copy)]
enum Protect {
    /// §8.2: "a moderator who is a participant attempts to kick an admin
    /// or a moderator who is a participant or admin attempts to kick an
    /// owner": refused when the target's affiliation is above the actor's.
    AboveActor,
    /// §8.4: voice may not be revoked from a user whose affiliation is at
    /// or above the moderator's.
    AtOrAboveActor,
    /// §9.7: moderator status may not be revoked from an admin or owner.
    AdminOrOwner,
    /// Granting voice or moderator status protects nobody.
    Nobody,
}

const ROLE_RULES: &[RoleRule] = &[
    RoleRule {
        new: Role::None,
        actor_role: Role::Moderator,
        actor_affiliation: Affiliation::None,
        protect: Protect::AboveActor,
    },
    RoleRule {
        new: Role::Visitor,
        actor_role: Role::Moderator,
        actor_affiliation: Affiliation::None,
        protect: Protect::AtOrAboveActor,
    },
    RoleRule {
        new: Role::Participant,
        actor_role: Role::Moderator,
        actor_affiliation: Affiliation::None,
        protect: Protect::Nobody,
    },
    RoleRule {
        new: Role::Moderator,
        actor_role: Role::Moderator,
        actor_affiliation: Affiliation::Admin,
        protect: Protect::Nobody,
    },
];

/// Whether an actor (role, affiliation) may give a target (its role and
/// affiliation) the role `new`. Host admins are owners here (§5.2: "the
/// service's admins may do everything").
pub fn may_set_role(
    actor: (Role, Affiliation),
    target: (Role, Affiliation),
    new: Role,
) -> Result<(), Refusal> {
    // Taking moderator status away (to participant) is §9.7, an admin's
    // act; giving voice to a visitor is §8.3, a moderator's.
    let rule_new = if new == Role::Participant && target.0 == Role::Moderator {
        Role::Moderator
    } else {
        new
    };
    let rule = ROLE_RULES
        .iter()
        .find(|r| r.new == rule_new)
        .expect("a row for every role");
    if actor.0 < rule.actor_role {
        return Err(Refusal::Forbidden);
    }
    let protect = if new == Role::Participant && target.0 == Role::Moderator {
        Protect::AdminOrOwner
    } else {
        rule.protect
    };
    let protected = match protect {
        Protect::AboveActor => target.1 > actor.1,
        Protect::AtOrAboveActor => target.1 >= actor.1 && target.1 >= Affiliation::Member,
        Protect::AdminOrOwner => target.1 >= Affiliation::Admin,
        Protect::Nobody => false,
    };
    // A moderator whose affiliation is too low for the change is told
    // about the target first: §5.1.3 and §9.7 make an owner's or admin's
    // moderator status untouchable by anyone beneath them (not-allowed),
    // whoever asks; only for an unprotected target does the missing
    // affiliation itself answer (forbidden).
    if protected {
        Err(Refusal::NotAllowed)
    } else if actor.1 < rule.actor_affiliation {
        Err(Refusal::Forbidden)
    } else {
        Ok(())
    }
}

/// Who may change affiliations (§9 admin use cases, §10 owner use
/// cases): each row is an actor's affiliation, the affiliations it may
/// take a user *from*, and those it may give.
const AFFILIATION_RULES: &[(Affiliation, &[Affiliation], &[Affiliation])] = &[
    (
        Affiliation::Owner,
        &[
            Affiliation::Outcast,
            Affiliation::None,
            Affiliation::Member,
            Affiliation::Admin,
            Affiliation::Owner,
        ],
        &[
            Affiliation::Outcast,
            Affiliation::None,
            Affiliation::Member,
            Affiliation::Admin,
            Affiliation::Owner,
        ],
    ),
    (
        Affiliation::Admin,
        &[Affiliation::Outcast, Affiliation::None, Affiliation::Member],
        &[Affiliation::Outcast, Affiliation::None, Affiliation::Member],
    ),
];

/// Whether `actor` may change a user's affiliation from `from` to `to`.
/// Giving an affiliation the actor may not give is `Forbidden`; touching
/// a user the actor may not touch (an admin banning an owner) is
/// `NotAllowed` (§9.1: "an admin or owner cannot be banned").
pub fn may_set_affiliation(
    actor: Affiliation,
    from: Affiliation,
    to: Affiliation,
) -> Result<(), Refusal> {
    let Some((_, targets, gives)) = AFFILIATION_RULES.iter().find(|(a, _, _)| *a == actor) else {
        return Err(Refusal::Forbidden);
    };
    if !targets.contains(&from) {
        return Err(Refusal::NotAllowed);
    }
    if !gives.contains(&to) {
        return Err(Refusal::Forbidden);
    }
    Ok(())
}

/// Which affiliation lists an actor may read (§9.5 members, §9.3
/// outcasts, §10.5 owners, §10.8 admins). The XEP gives owner and admin
/// lists to owners; Prosody and ejabberd show them to admins too, and
/// clients (Gajim's "Manage" dialog) expect that, so admins read them.
pub fn may_list_affiliation(
    actor: Affiliation,
    list: Affiliation,
    members_see_members: bool,
) -> bool {
    match list {
        Affiliation::Member => {
            actor >= Affiliation::Admin || (members_see_members && actor >= Affiliation::Member)
        }
        Affiliation::Outcast | Affiliation::Admin | Affiliation::Owner => {
            actor >= Affiliation::Admin
        }
        Affiliation::None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Affiliation as A;
    use Role as R;

    #[test]
    fn the_role_table_matches_the_xep() {
        assert!(!has(R::Visitor, Privilege::SendMessagesToAll));
        assert!(has(R::Participant, Privilege::SendMessagesToAll));
        assert!(has(R::Visitor, Privilege::ChangeNick));
        assert!(!has(R::Participant, Privilege::Kick));
        assert!(has(R::Moderator, Privilege::RevokeVoice));
        assert!(!has(R::None, Privilege::PresentInRoom));
    }

    #[test]
    fn default_roles() {
        assert_eq!(default_role(A::Owner, false), R::Moderator);
        assert_eq!(default_role(A::Admin, true), R::Moderator);
        assert_eq!(default_role(A::Member, true), R::Participant);
        assert_eq!(default_role(A::None, true), R::Visitor);
        assert_eq!(default_role(A::None, false), R::Participant);
    }

    #[test]
    fn kicking_follows_section_8_2() {
        let participant_moderator = (R::Moderator, A::None);
        assert_eq!(
            may_set_role(participant_moderator, (R::Participant, A::None), R::None),
            Ok(())
        );
        assert_eq!(
            may_set_role(participant_moderator, (R::Moderator, A::Admin), R::None),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            may_set_role((R::Moderator, A::Admin), (R::Moderator, A::Owner), R::None),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            may_set_role(
                (R::Participant, A::Member),
                (R::Participant, A::None),
                R::None
            ),
            Err(Refusal::Forbidden)
        );
    }

    #[test]
    fn voice_and_moderator_status() {
        assert_eq!(
            may_set_role(
                (R::Moderator, A::Admin),
                (R::Participant, A::Admin),
                R::Visitor
            ),
            Err(Refusal::NotAllowed),
            "voice may not be revoked from an equal"
        );
        assert_eq!(
            may_set_role(
                (R::Moderator, A::Owner),
                (R::Participant, A::Member),
                R::Visitor
            ),
            Ok(())
        );
        assert_eq!(
            may_set_role(
                (R::Moderator, A::None),
                (R::Participant, A::None),
                R::Moderator
            ),
            Err(Refusal::Forbidden),
            "only admins make moderators"
        );
        assert_eq!(
            may_set_role(
                (R::Moderator, A::Owner),
                (R::Moderator, A::Admin),
                R::Participant
            ),
            Err(Refusal::NotAllowed),
            "an admin stays a moderator"
        );
        assert_eq!(
            may_set_role(
                (R::Moderator, A::Admin),
                (R::Moderator, A::None),
                R::Participant
            ),
            Ok(())
        );
        assert_eq!(
            may_set_role(
                (R::Moderator, A::None),
                (R::Moderator, A::Owner),
                R::Participant
            ),
            Err(Refusal::NotAllowed),
            "an owner's moderator status is protected from anyone beneath"
        );
        assert_eq!(
            may_set_role(
                (R::Moderator, A::None),
                (R::Moderator, A::None),
                R::Participant
            ),
            Err(Refusal::Forbidden),
            "only admins take moderator status away"
        );
    }

    #[test]
    fn affiliation_changes() {
        assert_eq!(may_set_affiliation(A::Admin, A::None, A::Outcast), Ok(()));
        assert_eq!(
            may_set_affiliation(A::Admin, A::Owner, A::Outcast),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            may_set_affiliation(A::Admin, A::Member, A::Admin),
            Err(Refusal::Forbidden)
        );
        assert_eq!(may_set_affiliation(A::Owner, A::Admin, A::Owner), Ok(()));
        assert_eq!(
            may_set_affiliation(A::Member, A::None, A::Member),
            Err(Refusal::Forbidden)
        );
    }
}
