//! Avatars: XEP-0084 User Avatar (PEP nodes `urn:xmpp:avatar:data` and
//! `urn:xmpp:avatar:metadata`), XEP-0153 vCard-Based Avatars (the photo's
//! hash in the user's presence), and XEP-0398's conversion between the
//! two (the account shows `urn:xmpp:pep-vcard-conversion:0`).
//!
//! # Conversion (XEP-0398 §3), in the account's actor
//!
//! - **PEP to vCard**: a metadata item published through pubsub (this
//!   module's node rules) puts the data item its `<info/>` names (the one
//!   without `url`) into the vCard's `PHOTO`, keeping the rest of the
//!   vCard; empty metadata (XEP-0084 §3.5, avatar disabled) removes the
//!   photo. The image must match its SHA-1 id, and the vCard must stay
//!   within the vCard module's size bound; otherwise the vCard is left as
//!   it was (logged).
//! - **vCard to PEP**: a vCard set by its owner (taken by this module's
//!   `pre-iq/bare` row, stored by the vCard module as usual) whose photo
//!   changed publishes the image to the data node, then a metadata item
//!   naming it, with their notifications; a vCard without a photo
//!   publishes empty metadata.
//!
//! # The hash in presence (XEP-0398 §4)
//!
//! Each session knows the account's current photo hash (read from the
//! vCard when the session starts, updated on every change). Every
//! available presence the session sends, broadcast or directed (a MUC
//! join too), gets `<x xmlns='vcard-temp:x:update'><photo>HASH</photo></x>`
//! (an empty `<photo/>` when there is no avatar); a client's own empty
//! `<photo/>` ("not ready") is left alone, anything else is replaced.
//! When the avatar changes, the account's available resources' presence
//! is sent again with the new hash.
//!
//! # Bad input
//!
//! A data item that is not base64 of an image whose SHA-1 is its id, or
//! metadata that is not `<metadata/>` with `<info id bytes type/>`, is
//! refused with `bad-request` and `<invalid-payload/>`; nothing is stored.

mod photo;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use switchboard_jid::Jid;
use switchboard_spool::store::{AccountDataStore, AccountRef, BoxFuture};
use switchboard_xml::{ns, Element};

use super::pep::{errors, Event, Node, NodeRules, Pep};
use super::Setup;
use crate::im::{AccountScope, Job};
use crate::modules::vcard;
use crate::routing::iq::Scope;
use crate::routing::stanza::{Class, IqType, Kind, PresenceType};
use crate::routing::table::{Event as TableEvent, Flow};
use crate::routing::Router;
use crate::stanza::StanzaError;
pub use photo::Photo;

pub const NS_DATA: &str = "urn:xmpp:avatar:data";
pub const NS_METADATA: &str = "urn:xmpp:avatar:metadata";
/// XEP-0153's presence extension.
pub const NS_UPDATE: &str = "vcard-temp:x:update";
/// XEP-0398's account feature.
pub const CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";

const MODULE: &str = "avatar";

/// The account's photo hash as a session knows it: `None` until read;
/// `Some(None)` for no avatar.
#[derive(Default)]
struct AvatarHash {
    known: Mutex<Option<Option<String>>>,
}

impl AvatarHash {
    fn get(&self) -> Option<Option<String>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, hash: Option<String>) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = Some(hash);
    }

    /// Sets it unless something newer did first.
    fn set_if_unknown(&self, hash: Option<String>) {
        let mut k = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if k.is_none() {
            *k = Some(hash);
        }
    }
}

pub fn register(setup: &mut Setup<'_>, pep: &Arc<Pep>) {
    setup.iq.feature(Scope::Account, CONVERSION);
    let avatars = Arc::new(Avatars { pep: pep.clone() });
    pep.add_rules(Arc::new(DataRules));
    pep.add_rules(Arc::new(MetadataRules {
        avatars: avatars.clone(),
    }));

    setup.table.hook_each(
        &[
            TableEvent::pre(Kind::Presence, Class::Bare),
            TableEvent::pre(Kind::Presence, Class::Full),
            TableEvent::pre(Kind::Presence, Class::Service),
            TableEvent::pre(Kind::Presence, Class::Remote),
            TableEvent::pre(Kind::Presence, Class::Broadcast),
        ],
        20,
        MODULE,
        "the account's avatar hash goes into the client's available presence, broadcast or directed (XEP-0398 §4)",
        |r, mut s| {
            if s.presence_type() == Some(PresenceType::Available) {
                if let Some(known) = r
                    .sessions()
                    .get(&s.from)
                    .and_then(|e| e.shared.ext.get::<AvatarHash>())
                    .and_then(|h| h.get())
                {
                    inject(&mut s.el, known.as_deref());
                }
            }
            Flow::Next(s)
        },
    );

    let a = avatars.clone();
    let accounts = setup.accounts.clone();
    setup.table.hook(
        TableEvent::pre(Kind::Iq, Class::Bare),
        10,
        MODULE,
        "a vCard set by its owner goes to the actor as a job: stored as usual, then a changed photo is published as the PEP avatar (XEP-0398 §3.2)",
        move |r, s| {
            let is_vcard_set = s.iq_type() == Some(IqType::Set)
                && s.to == s.from.to_bare()
                && s.payload().is_some_and(|p| p.is("vCard", vcard::NS));
            if !is_vcard_set {
                return Flow::Next(s);
            }
            let ticket = s.ticket();
            let a = a.clone();
            let iq = s.el;
            accounts.run_for(
                r,
                &s.to,
                Job::new(move |mut scope| Box::pin(async move { a.vcard_set(&mut scope, iq).await })),
                ticket,
            );
            Flow::Done
        },
    );

    let data = setup.stores.account_data.clone();
    setup.table.on_session_start(MODULE, move |_r, session| {
        let data = data.clone();
        let hash = Arc::new(AvatarHash::default());
        session.shared.ext.set(hash.clone());
        let account = session
            .jid
            .node()
            .map(|u| AccountRef::new(session.jid.domain(), u));
        Box::pin(async move {
            let Some(account) = account else { return };
            match current_photo(data.as_ref(), &account).await {
                Ok(photo) => hash.set_if_unknown(photo.map(|p| p.hash)),
                Err(e) => {
                    tracing::warn!(%account, "cannot read the vCard for the avatar hash: {e:?}")
                }
            }
        })
    });
}

/// Puts the avatar hash into an available presence (XEP-0398 §4): an
/// existing `<x/>` without `<photo/>`, or with another hash, is
/// overwritten; one with an empty `<photo/>` is left alone.
pub fn inject(presence: &mut Element, hash: Option<&str>) {
    put(presence, hash, false)
}

/// Puts the hash in, whatever the presence said: for presence the server
/// sends again after the avatar changed, when what the client said (or
/// the server put in) before is out of date.
pub fn replace(presence: &mut Element, hash: Option<&str>) {
    put(presence, hash, true)
}

fn put(presence: &mut Element, hash: Option<&str>, force: bool) {
    let photo = || {
        let p = Element::new("photo", NS_UPDATE);
        match hash {
            Some(h) => p.with_text(h),
            None => p,
        }
    };
    match presence.get_child_mut("x", NS_UPDATE) {
        Some(x) => {
            if let Some(p) = x.get_child("photo", NS_UPDATE) {
                if p.text().trim().is_empty() && !force {
                    return;
                }
            }
            x.children.clear();
            x.append_child(photo());
        }
        None => presence.append_child(Element::new("x", NS_UPDATE).with_child(photo())),
    }
}

/// The photo of the stored vCard.
async fn current_photo(
    data: &dyn AccountDataStore,
    account: &AccountRef,
) -> Result<Option<Photo>, StanzaError> {
    Ok(stored_vcard(data, account)
        .await?
        .as_ref()
        .and_then(Photo::of_vcard))
}

async fn stored_vcard(
    data: &dyn AccountDataStore,
    account: &AccountRef,
) -> Result<Option<Element>, StanzaError> {
    let doc = data
        .get(account, vcard::CONTAINER)
        .await
        .map_err(|e| crate::accounts::store_error(&e, &format!("the vCard of {account}")))?;
    Ok(doc.as_ref().and_then(vcard::stored).cloned())
}

/// Tells every session of the account the new hash.
fn set_hash(router: &Router, bare: &Jid, hash: Option<String>) {
    for s in router.sessions().of_account(bare) {
        match s.shared.ext.get::<AvatarHash>() {
            Some(h) => h.set(hash.clone()),
            None => {
                let h = Arc::new(AvatarHash::default());
                h.set(hash.clone());
                s.shared.ext.set(h);
            }
        }
    }
}

/// The conversions, with the PEP service they publish through.
struct Avatars {
    pep: Arc<Pep>,
}

impl Avatars {
    /// A vCard set by its owner: stored by the vCard module; a changed
    /// photo is then published to PEP and the presence hash updated.
    async fn vcard_set(&self, scope: &mut AccountScope<'_>, iq: Element) {
        let before = current_photo(scope.data(), scope.account())
            .await
            .ok()
            .flatten()
            .map(|p| p.hash);
        let answer = scope
            .data_iq(&iq)
            .await
            .unwrap_or_else(|| Err(StanzaError::service_unavailable()));
        if answer.is_ok() {
            let photo = iq.first_element().and_then(Photo::of_vcard);
            if photo.as_ref().map(|p| &p.hash) != before.as_ref() {
                self.publish(scope, photo.as_ref()).await;
                self.changed(scope, photo.map(|p| p.hash)).await;
            }
        }
        scope.reply(&iq, answer);
    }

    /// Publishes a photo (or its absence) as the XEP-0084 avatar.
    async fn publish(&self, scope: &mut AccountScope<'_>, photo: Option<&Photo>) {
        let metadata = match photo {
            Some(p) => {
                let data = Element::new("data", NS_DATA).with_text(p.base64());
                if let Err(e) = self
                    .pep
                    .publish_from(
                        scope,
                        NS_DATA,
                        self.pep.default_config(NS_DATA),
                        vec![(p.hash.clone(), data)],
                    )
                    .await
                {
                    tracing::warn!(account = %scope.bare(), "the vCard photo was not published as the avatar: {e:?}");
                    return;
                }
                (
                    p.hash.clone(),
                    Element::new("metadata", NS_METADATA).with_child(p.info()),
                )
            }
            None => ("current".to_owned(), Element::new("metadata", NS_METADATA)),
        };
        if let Err(e) = self
            .pep
            .publish_from(
                scope,
                NS_METADATA,
                self.pep.default_config(NS_METADATA),
                vec![metadata],
            )
            .await
        {
            tracing::warn!(account = %scope.bare(), "the avatar metadata was not published: {e:?}");
        }
    }

    /// The avatar is now `hash`: every session learns it, and the
    /// available ones' presence goes out again with it.
    async fn changed(&self, scope: &mut AccountScope<'_>, hash: Option<String>) {
        set_hash(scope.router(), scope.bare(), hash.clone());
        scope
            .rebroadcast_presence(&move |p: &mut Element| replace(p, hash.as_deref()))
            .await;
    }

    /// Metadata published through pubsub: the vCard follows (XEP-0398
    /// §3.1).
    async fn metadata_published(&self, scope: &mut AccountScope<'_>, metadata: &Element) {
        let info = metadata
            .elements()
            .filter(|i| i.is("info", NS_METADATA))
            .find(|i| i.attr("url").is_none());
        let photo = match info {
            None if metadata.elements().any(|i| i.is("info", NS_METADATA)) => {
                // Only images hosted elsewhere: nothing to put in a vCard.
                return;
            }
            None => None,
            Some(info) => {
                let id = info.attr("id").unwrap_or_default();
                let node = super::pep::store::load(scope.data(), scope.account(), NS_DATA)
                    .await
                    .ok()
                    .flatten();
                let data = node
                    .as_ref()
                    .and_then(|n| n.items.iter().find(|i| i.id == id));
                let photo = data.and_then(|d| {
                    Photo::of_data(&d.payload, info.attr("type").unwrap_or("image/png"))
                });
                match photo {
                    Some(p) if p.hash == id => Some(p),
                    _ => {
                        tracing::warn!(account = %scope.bare(), %id, "avatar metadata names no matching data item; the vCard is left as it was");
                        return;
                    }
                }
            }
        };
        let old = match stored_vcard(scope.data(), scope.account()).await {
            Ok(v) => v,
            Err(_) => return,
        };
        let old_hash = old.as_ref().and_then(Photo::of_vcard).map(|p| p.hash);
        if old_hash == photo.as_ref().map(|p| p.hash.clone()) {
            return;
        }
        let vcard = photo::with_photo(
            old.unwrap_or_else(|| Element::new("vCard", vcard::NS)),
            photo.as_ref(),
        );
        if vcard.to_bytes(None).len() > vcard::MAX_VCARD_BYTES {
            tracing::warn!(account = %scope.bare(), "the avatar does not fit in the vCard; the vCard is left as it was");
            return;
        }
        let doc = Element::new(vcard::CONTAINER, ns::SPOOL).with_child(vcard);
        if let Err(e) = scope.data().put(scope.account(), doc).await {
            tracing::warn!(account = %scope.bare(), "the avatar was not put in the vCard: {e}");
            return;
        }
        self.changed(scope, photo.map(|p| p.hash)).await;
    }
}

/// `urn:xmpp:avatar:data`.
struct DataRules;

impl NodeRules for DataRules {
    fn node(&self) -> &str {
        NS_DATA
    }

    fn check(&self, id: &str, payload: &Element) -> Result<(), StanzaError> {
        if !payload.is("data", NS_DATA) {
            return Err(errors::invalid_payload(format!(
                "avatar data is a <data xmlns='{NS_DATA}'/>"
            )));
        }
        let Some(p) = Photo::of_data(payload, "image/png") else {
            return Err(errors::invalid_payload("avatar data is base64"));
        };
        if p.hash != id {
            return Err(errors::invalid_payload(
                "the item id of avatar data is the SHA-1 of the image (XEP-0084 §4.1)",
            ));
        }
        Ok(())
    }
}

/// `urn:xmpp:avatar:metadata`.
struct MetadataRules {
    avatars: Arc<Avatars>,
}

impl NodeRules for MetadataRules {
    fn node(&self) -> &str {
        NS_METADATA
    }

    fn check(&self, _id: &str, payload: &Element) -> Result<(), StanzaError> {
        if !payload.is("metadata", NS_METADATA) {
            return Err(errors::invalid_payload(format!(
                "avatar metadata is a <metadata xmlns='{NS_METADATA}'/>"
            )));
        }
        for info in payload.elements().filter(|i| i.is("info", NS_METADATA)) {
            let complete = ["id", "bytes", "type"]
                .iter()
                .all(|a| info.attr(a).is_some());
            let bytes_ok = info.attr("bytes").is_some_and(|b| b.parse::<u64>().is_ok());
            if !complete || !bytes_ok {
                return Err(errors::invalid_payload(
                    "each <info/> has an id, a type and a size in bytes (XEP-0084 §4.2.1)",
                ));
            }
        }
        Ok(())
    }

    fn changed<'a>(
        &'a self,
        _pep: &'a Pep,
        scope: &'a mut AccountScope<'_>,
        node: Option<&'a Node>,
        what: &'a Event,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let (Event::Items(items), Some(_)) = (what, node) {
                if let Some(item) = items.last() {
                    self.avatars.metadata_published(scope, &item.payload).await;
                }
            }
        })
    }
}
