//! Telling admins about events that need a human: a service that crashed
//! or disconnected. A notice is an ordinary `<message>` from the host, so
//! an admin who is offline finds it in their offline queue.

use switchboard_xml::{ns, Element};

use crate::server::Shared;

/// The local hosts whose admins care about `about` (a service hostname or
/// a host): the hosts it is a subdomain of, or every host when it belongs
/// to none of them.
pub fn hosts_for(shared: &Shared, about: &str) -> Vec<String> {
    let hosts = shared.host_names();
    let mine: Vec<String> = hosts
        .iter()
        .filter(|h| about == h.as_str() || about.ends_with(&format!(".{h}")))
        .cloned()
        .collect();
    if mine.is_empty() {
        hosts
    } else {
        mine
    }
}

/// Sends `subject`/`body` from each relevant host to each of its admins.
pub fn admins(shared: &Shared, about: &str, subject: &str, body: &str) {
    for host in hosts_for(shared, about) {
        for admin in shared.admins(&host) {
            let msg = Element::new("message", ns::CLIENT)
                .with_attr("from", host.clone())
                .with_attr("to", admin.to_string())
                .with_attr("type", "normal")
                .with_attr("id", crate::stream::c2s::random_id())
                .with_child(Element::new("subject", ns::CLIENT).with_text(subject))
                .with_child(Element::new("body", ns::CLIENT).with_text(body));
            shared.router.route_inbound(msg);
        }
    }
}
