//! `muc#admin`: kick, ban, voice, moderator status, affiliations and the
//! lists, with the privilege tables' refusals (XEP-0045 §8, §9).

use super::*;
use crate::ns;

fn list(h: &mut H, who: &str, attr: &str) -> Vec<Element> {
    h.iq(
        who,
        ROOM,
        "get",
        &format!("<query xmlns='http://jabber.org/protocol/muc#admin'><item {attr}/></query>"),
    )
}

fn items(out: &[Element]) -> Vec<String> {
    out[0]
        .get_child("query", ns::MUC_ADMIN)
        .map(|q| {
            q.elements()
                .map(|i| i.attr("jid").or(i.attr("nick")).unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_moderator_kicks_with_307_actor_and_reason() {
    let mut h = H::three();
    let out = h.admin(
        ROMEO,
        "<item nick='Tybalt' role='none'><reason>Brawling</reason></item>",
    );
    assert_eq!(result_or_error(&out, "q"), "result");
    let seen = to(&out, JULIET)[0];
    assert_eq!(seen.attr("type"), Some("unavailable"));
    assert_eq!(codes(seen), vec![307]);
    let it = item(seen);
    assert_eq!(it.attr("role"), Some("none"));
    assert_eq!(
        it.get_child("actor", ns::MUC_USER)
            .and_then(|a| a.attr("nick")),
        Some("Romeo")
    );
    assert_eq!(
        it.child_text("reason", ns::MUC_USER).as_deref(),
        Some("Brawling")
    );
    assert_eq!(codes(to(&out, TYBALT)[0]), vec![110, 307]);
    assert_eq!(h.muc.rooms["kitchen"].occupants.len(), 2);
    // A kicked user may come back.
    assert!(h
        .join(TYBALT, "Tybalt")
        .iter()
        .all(|s| s.attr("type") != Some("error")));
}

#[test]
fn kicking_needs_the_privilege_and_a_lower_target() {
    let mut h = H::three();
    assert_eq!(
        the_error(&h.admin(JULIET, "<item nick='Tybalt' role='none'/>")),
        e("auth", "forbidden")
    );
    assert_eq!(
        the_error(&h.admin(ROMEO, "<item nick='Nobody' role='none'/>")),
        e("cancel", "item-not-found")
    );
    // Juliet, made a moderator, may not kick the owner, nor take the
    // owner's moderator status away (§5.1.3: not-allowed, whatever her
    // own affiliation lacks).
    h.admin(ROMEO, "<item nick='Juliet' role='moderator'/>");
    assert_eq!(
        the_error(&h.admin(JULIET, "<item nick='Romeo' role='none'/>")),
        e("cancel", "not-allowed")
    );
    assert_eq!(
        the_error(&h.admin(JULIET, "<item nick='Romeo' role='participant'/>")),
        e("cancel", "not-allowed")
    );
    let out = h.admin(JULIET, "<item nick='Tybalt' role='none'/>");
    assert_eq!(result_or_error(&out, "q"), "result");
}

#[test]
fn voice_is_revoked_and_granted() {
    let mut h = H::three();
    let out = h.admin(ROMEO, "<item nick='Tybalt' role='visitor'/>");
    assert_eq!(item(to(&out, JULIET)[0]).attr("role"), Some("visitor"));
    assert_eq!(the_error(&h.say(TYBALT, "hey")), e("auth", "forbidden"));
    h.admin(ROMEO, "<item nick='Tybalt' role='participant'/>");
    assert_eq!(h.say(TYBALT, "hey").len(), 3);
    // Only admins make moderators.
    h.admin(ROMEO, "<item nick='Juliet' role='moderator'/>");
    assert_eq!(
        the_error(&h.admin(JULIET, "<item nick='Tybalt' role='moderator'/>")),
        e("auth", "forbidden")
    );
}

#[test]
fn bans_and_the_outcast_list() {
    let mut h = H::three();
    let out = h.admin(
        ROMEO,
        "<item affiliation='outcast' jid='tybalt@example.org'><reason>Murder</reason></item>",
    );
    let seen = to(&out, JULIET)[0];
    assert_eq!(codes(seen), vec![301]);
    assert_eq!(item(seen).attr("affiliation"), Some("outcast"));
    assert_eq!(the_error(&h.join(TYBALT, "Tybalt")), e("auth", "forbidden"));
    assert_eq!(
        items(&list(&mut h, ROMEO, "affiliation='outcast'")),
        ["tybalt@example.org"]
    );
    assert_eq!(
        the_error(&list(&mut h, JULIET, "affiliation='outcast'")),
        e("auth", "forbidden")
    );
    // Nobody may ban themselves (§9.1: conflict).
    h.admin(
        ROMEO,
        "<item affiliation='admin' jid='juliet@example.org'/>",
    );
    assert_eq!(
        the_error(&h.admin(
            JULIET,
            "<item affiliation='outcast' jid='juliet@example.org'/>"
        )),
        e("cancel", "conflict")
    );
    h.admin(ROMEO, "<item affiliation='none' jid='juliet@example.org'/>");
    // Juliet may not ban: she is no admin.
    assert_eq!(
        the_error(&h.admin(
            JULIET,
            "<item affiliation='outcast' jid='mercutio@example.org'/>"
        )),
        e("auth", "forbidden")
    );
}

#[test]
fn admins_and_owners_have_their_limits() {
    let mut h = H::three();
    h.admin(
        ROMEO,
        "<item affiliation='admin' jid='juliet@example.org'/>",
    );
    assert_eq!(
        items(&list(&mut h, JULIET, "affiliation='admin'")),
        ["juliet@example.org"]
    );
    // An admin may not make admins, nor ban an owner.
    assert_eq!(
        the_error(&h.admin(
            JULIET,
            "<item affiliation='admin' jid='tybalt@example.org'/>"
        )),
        e("auth", "forbidden")
    );
    assert_eq!(
        the_error(&h.admin(
            JULIET,
            "<item affiliation='outcast' jid='romeo@example.org'/>"
        )),
        e("cancel", "not-allowed")
    );
    // The last owner stays.
    assert_eq!(
        the_error(&h.admin(ROMEO, "<item affiliation='none' jid='romeo@example.org'/>")),
        e("cancel", "conflict")
    );
    // A host admin, not even in the room, may do anything.
    let out = h.admin(
        ADMIN,
        "<item affiliation='outcast' jid='juliet@example.org'/>",
    );
    assert_eq!(result_or_error(&out, "q"), "result");
}

#[test]
fn a_set_with_one_bad_item_changes_nothing() {
    let mut h = H::three();
    let out = h.admin(
        JULIET,
        "<item affiliation='member' jid='mercutio@example.org'/><item nick='Tybalt' role='none'/>",
    );
    assert_eq!(the_error(&out), e("auth", "forbidden"));
    let out = h.admin(
        ROMEO,
        "<item affiliation='member' jid='mercutio@example.org'/><item nick='Nobody' role='none'/>",
    );
    assert_eq!(the_error(&out), e("cancel", "item-not-found"));
    assert!(items(&list(&mut h, ROMEO, "affiliation='member'")).is_empty());
}

#[test]
fn membership_in_a_members_only_room() {
    let mut h = H::three();
    let out = h.admin(
        ROMEO,
        "<item affiliation='member' jid='juliet@example.org'/>",
    );
    assert_eq!(
        item(to(&out, TYBALT)[0]).attr("affiliation"),
        Some("member")
    );
    let out = h.configure(
        ROMEO,
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
    );
    let tybalt_out = to(&out, TYBALT);
    let gone = tybalt_out
        .iter()
        .find(|p| p.attr("type") == Some("unavailable"))
        .unwrap();
    assert_eq!(codes(gone), vec![110, 322]);
    assert_eq!(h.muc.rooms["kitchen"].occupants.len(), 2);
    // Members see the member list in a members-only room.
    assert_eq!(
        items(&list(&mut h, JULIET, "affiliation='member'")),
        ["juliet@example.org"]
    );
    let out = h.admin(ROMEO, "<item affiliation='none' jid='juliet@example.org'/>");
    assert_eq!(codes(to(&out, JULIET)[0]), vec![110, 321]);
}

#[test]
fn role_lists_are_for_moderators() {
    let mut h = H::three();
    assert_eq!(
        items(&list(&mut h, ROMEO, "role='participant'")),
        [JULIET, TYBALT]
    );
    assert_eq!(
        the_error(&list(&mut h, JULIET, "role='moderator'")),
        e("auth", "forbidden")
    );
}
