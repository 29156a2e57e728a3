//! Telling a host's admins about events that need a human: a service that
//! crashed or disconnected, an account created in band. A notice is an
//! ordinary `<message type='normal'>` from the host, so an admin who is
//! offline finds it in their offline queue.

use std::net::IpAddr;

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use crate::routing::Router;
use crate::settings::Settings;

/// The local hosts whose admins care about `about` (a service hostname or
/// a host): the hosts it is a subdomain of, or every host when it belongs
/// to none of them.
pub fn hosts_for(settings: &Settings, about: &str) -> Vec<String> {
    let hosts = settings.host_names();
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

/// The admins who hear about `about` (see [`hosts_for`]), without repeats.
pub fn admins_for(settings: &Settings, about: &str) -> Vec<Jid> {
    let mut all: Vec<Jid> = hosts_for(settings, about)
        .iter()
        .flat_map(|h| settings.admins(h).iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Sends `subject`/`body` from each relevant host to each of its admins.
pub fn notify(router: &Router, settings: &Settings, about: &str, subject: &str, body: &str) {
    for host in hosts_for(settings, about) {
        for admin in settings.admins(&host) {
            let msg = Element::new("message", ns::CLIENT)
                .with_attr("from", host.clone())
                .with_attr("to", admin.to_string())
                .with_attr("type", "normal")
                .with_attr("id", crate::ids::random_id())
                .with_child(Element::new("subject", ns::CLIENT).with_text(subject))
                .with_child(Element::new("body", ns::CLIENT).with_text(body));
            router.route(msg);
        }
    }
}

/// Tells the host's admins that an account was created in band: by the
/// user themselves (`peer` is where they connected from) or by an admin
/// (`by`). Admins who are offline find it at their next login.
pub fn registration(
    router: &Router,
    settings: &Settings,
    host: &str,
    user: &str,
    peer: Option<IpAddr>,
    by: Option<&Jid>,
) {
    let account = format!("{user}@{host}");
    let body = match (by, peer) {
        (Some(admin), _) => format!("The account {account} was created in band by {admin}."),
        (None, Some(ip)) => format!("The account {account} was registered in band from {ip}."),
        (None, None) => format!("The account {account} was registered in band."),
    };
    notify(
        router,
        settings,
        host,
        &format!("New account {account}"),
        &body,
    );
}
