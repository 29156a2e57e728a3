//! The archive's IQ handlers, all asynchronous (they wait for the store)
//! and all for the archive's owner only (anyone else: `forbidden`,
//! XEP-0313 §8.1): the query form, queries, preferences and metadata.

use switchboard_config::ArchiveDefault;
use switchboard_jid::Jid;
use switchboard_service::time;
use switchboard_spool::store::{ArchivePage, ArchiveQuery, StoreError};
use switchboard_xml::Element;

use super::prefs::Prefs;
use super::{account_ref, query, Module, NS};
use crate::routing::iq::IqCall;
use crate::stanza::{ErrorType, StanzaError};

type Answer = Result<Option<Element>, StanzaError>;

/// The archive's owner, or `forbidden`.
fn owner(call: &IqCall) -> Result<Jid, StanzaError> {
    if call.is_owner() {
        Ok(call.to.to_bare())
    } else {
        Err(StanzaError::forbidden().with_text("only its owner may use an archive"))
    }
}

fn unavailable(e: &StoreError) -> StanzaError {
    tracing::error!("cannot read an archive: {e}");
    StanzaError::new("internal-server-error", ErrorType::Wait)
        .with_text("the archive cannot be read now; try again later")
}

fn not_found(what: &str) -> StanzaError {
    StanzaError::new("item-not-found", ErrorType::Cancel)
        .with_text(format!("no message in the archive has the id {what}"))
}

/// `<query/>` get: the form (§4.1.5).
pub(super) async fn form(_m: &Module, call: IqCall) -> Answer {
    owner(&call)?;
    Ok(Some(query::form()))
}

/// `<query/>` set: the results, then the `<fin/>` (§4.2, §4.3).
pub(super) async fn query(m: &Module, call: IqCall) -> Answer {
    let owner = owner(&call)?;
    let req = query::parse(call.payload())?;
    // What was queued for this host before the query is found by it.
    m.writers.flush(&owner).await;
    let archive = owner.to_string();
    if !req.query.ids.is_empty() {
        // Every id asked for must be there (§4.1.3), whatever the other
        // filters keep.
        let check = ArchiveQuery {
            ids: req.query.ids.clone(),
            max: 0,
            ..ArchiveQuery::default()
        };
        let found = m
            .store
            .query(&archive, &check)
            .await
            .map_err(|e| unavailable(&e))?
            .and_then(|p| p.count)
            .unwrap_or(0);
        if found < req.query.ids.len() {
            return Err(not_found("given in 'ids'"));
        }
    }
    let page: ArchivePage = match m.store.query(&archive, &req.query).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            let named = [&req.query.after_id, &req.query.before_id]
                .into_iter()
                .flatten()
                .map(|i| format!("'{i}'"))
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(not_found(&named));
        }
        Err(e) => return Err(unavailable(&e)),
    };
    let to = call.from.to_string();
    for r in query::results(&req, &page, &archive, &to) {
        call.router.reply(r);
    }
    Ok(Some(query::fin(&req, &page)))
}

/// `<metadata/>` get (§5): the first and last entries' ids and times.
pub(super) async fn metadata(m: &Module, call: IqCall) -> Answer {
    let owner = owner(&call)?.to_string();
    m.writers.flush(&call.to.to_bare()).await;
    let mut out = Element::new("metadata", NS);
    for (name, from_end) in [("start", false), ("end", true)] {
        let q = ArchiveQuery {
            max: 1,
            from_end,
            ..ArchiveQuery::default()
        };
        let page = m
            .store
            .query(&owner, &q)
            .await
            .map_err(|e| unavailable(&e))?
            .unwrap_or_default();
        if let Some(e) = page.entries.first() {
            out.append_child(
                Element::new(name, NS)
                    .with_attr("id", e.id.clone())
                    .with_attr("timestamp", time::stamp(e.timestamp)),
            );
        }
    }
    Ok(Some(out))
}

/// `<prefs/>` get (XEP-0441 §2.1).
pub(super) async fn prefs_get(m: &Module, call: IqCall) -> Answer {
    let owner = owner(&call)?;
    let prefs = match m.cache.get(&owner) {
        Some(state) => (*state.prefs()).clone(),
        None => m.load_prefs(&owner).await,
    };
    Ok(Some(prefs.to_element()))
}

/// `<prefs/>` set (XEP-0441 §2.2): stored, in force at once, and answered
/// with the preferences now in force.
pub(super) async fn prefs_set(m: &Module, call: IqCall) -> Answer {
    let owner = owner(&call)?;
    let prefs = Prefs::from_request(call.payload())?;
    let account = account_ref(&owner).ok_or_else(StanzaError::service_unavailable)?;
    let _one_at_a_time = m.prefs_change.lock().await;
    m.data
        .put(&account, prefs.to_doc())
        .await
        .map_err(|e| crate::accounts::store_error(&e, "storing archive preferences"))?;
    if let Some(state) = m.cache.get(&owner) {
        let roster = if prefs.default == ArchiveDefault::Roster {
            m.load_roster(&owner).await
        } else {
            None
        };
        state.set_roster(roster);
        state.set_prefs(prefs.clone());
    }
    Ok(Some(prefs.to_element()))
}
