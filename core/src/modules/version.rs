//! XEP-0092 Software Version for the server's own JID. The operating
//! system is not disclosed: it only helps an attacker.

use switchboard_xml::{ns, Element};

use super::{IqKey, IqRequest, IqType, Registry, Scope};
use crate::stanza::StanzaError;

pub fn register(r: &mut Registry) {
    r.handle(
        IqKey {
            name: "query",
            ns: ns::VERSION,
            kind: IqType::Get,
        },
        Scope::Server,
        version,
    );
    r.feature(Scope::Server, ns::VERSION);
}

fn version(_: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    Ok(Some(
        Element::new("query", ns::VERSION)
            .with_child(Element::new("name", ns::VERSION).with_text("Switchboard"))
            .with_child(Element::new("version", ns::VERSION).with_text(env!("CARGO_PKG_VERSION"))),
    ))
}
