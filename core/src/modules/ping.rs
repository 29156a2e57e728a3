//! XEP-0199 XMPP Ping: the server answers pings to itself and, on behalf
//! of the account, to the sender's own bare JID.

use switchboard_xml::ns;

use super::{IqKey, IqRequest, IqType, Registry, Scope};
use crate::stanza::StanzaError;

const KEY: IqKey = IqKey {
    name: "ping",
    ns: ns::PING,
    kind: IqType::Get,
};

pub fn register(r: &mut Registry) {
    r.handle(KEY, Scope::Server, pong);
    r.handle(KEY, Scope::Account, pong_own);
    r.feature(Scope::Server, ns::PING);
}

fn pong(_: &IqRequest<'_>) -> Result<Option<switchboard_xml::Element>, StanzaError> {
    Ok(None)
}

/// Only the account's owner gets an answer; anyone else learns nothing
/// about whether the account exists.
fn pong_own(req: &IqRequest<'_>) -> Result<Option<switchboard_xml::Element>, StanzaError> {
    if req.from.to_bare() == *req.to {
        Ok(None)
    } else {
        Err(StanzaError::service_unavailable())
    }
}
