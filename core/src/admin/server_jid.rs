//! Messages to a host's own JID.
//!
//! * `HOST/announce/online`, `HOST/announce/motd`,
//!   `HOST/announce/motd/update`, `HOST/announce/motd/delete`: the
//!   jabberd 1.4 announcement addresses, for the host's admins only;
//!   anyone else gets `forbidden` and nothing is sent. A MOTD change is
//!   queued (it writes to the spool) and applied in order; success is
//!   silent, as in jabberd, and a failure comes back as an error.
//! * `HOST` itself: the message is forwarded to each of the host's admins
//!   — the way to reach whoever runs the server without knowing who that
//!   is. jabberd 1.4's `mod_admin` did this keeping the user as `from`,
//!   which claims the user sent the admin a message they never addressed
//!   to them. We send from the host instead (Prosody's and ejabberd's
//!   server notices come from the host too), name the sender in the
//!   subject and at the head of each body, and keep the message plain: no
//!   XEP-0033 addressing or XEP-0297 wrapping that a client may not show.
//!   With no admins configured the sender gets `service-unavailable`.
//! * Any other resource of the host: `service-unavailable`.
//!
//! Every message the server originates here is `type='normal'` from the
//! host, so it is stored offline for an admin who is away (see
//! [`super::announcement`] for why not `headline` or `chat`).

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

use super::{announce_online, Announcement, MotdChange, MotdOp};
use crate::routing::Router;
use crate::settings::Settings;
use crate::stanza::{stanza_type, ErrorType, StanzaError};

/// A `<message/>` routed to a local domain (`to` may carry a resource).
/// Called by the routing table; never blocks: a message-of-the-day change
/// goes into `changes` for the task that applies them.
pub(crate) fn message_to_server(
    router: &Router,
    settings: &Settings,
    changes: &mpsc::Sender<MotdChange>,
    from: &Jid,
    to: &Jid,
    stanza: Element,
) {
    // No error is ever answered, and none is forwarded to admins. Nor is
    // anything the server itself sent: with a host's own JID among its
    // admins, a forward would otherwise come straight back here forever.
    if stanza_type(&stanza) == "error" || from.node().is_none() {
        return;
    }
    let host = to.domain();
    let Some(resource) = to.resource() else {
        return forward_to_admins(router, settings, from, host, &stanza);
    };
    let Some(what) = resource.strip_prefix("announce/") else {
        return router.bounce(&stanza, StanzaError::service_unavailable());
    };
    if !settings.is_admin(host, from) {
        tracing::warn!(%from, host, "refused an announcement from someone who is not an admin");
        return router.bounce(
            &stanza,
            StanzaError::forbidden().with_text("only this host's admins may make announcements"),
        );
    }
    let announcement = || Announcement::from_message(&stanza);
    let op = match what {
        "online" => {
            match announcement() {
                Ok(a) => {
                    if let Err(e) = announce_online(router, host, &a) {
                        router.bounce(&stanza, e.to_stanza_error());
                    }
                }
                Err(e) => router.bounce(&stanza, StanzaError::bad_request().with_text(e.to_string())),
            }
            return;
        }
        "motd" | "motd/update" => match announcement() {
            Ok(a) if what == "motd" => MotdOp::Set(a),
            Ok(a) => MotdOp::Update(a),
            Err(e) => {
                return router.bounce(&stanza, StanzaError::bad_request().with_text(e.to_string()))
            }
        },
        "motd/delete" => MotdOp::Delete,
        _ => {
            return router.bounce(
                &stanza,
                StanzaError::new("item-not-found", ErrorType::Cancel).with_text(
                    "announcements go to announce/online, announce/motd, announce/motd/update or announce/motd/delete",
                ),
            )
        }
    };
    tracing::info!(%from, host, what, "message-of-the-day change queued");
    let change = MotdChange {
        host: host.to_string(),
        op,
        request: stanza,
    };
    if let Err(e) = changes.try_send(change) {
        let change = match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
        };
        router.bounce(
            &change.request,
            StanzaError::new("resource-constraint", ErrorType::Wait)
                .with_text("too many message-of-the-day changes at once; try again"),
        );
    }
}

/// Forwards a user's message to the host's admins, from the host (see the
/// module documentation).
fn forward_to_admins(
    router: &Router,
    settings: &Settings,
    from: &Jid,
    host: &str,
    stanza: &Element,
) {
    let admins = settings.admins(host);
    if admins.is_empty() {
        return router.bounce(
            stanza,
            StanzaError::service_unavailable()
                .with_text("this server has no administrators to pass the message to"),
        );
    }
    let subject = match stanza.child_text("subject", &stanza.ns) {
        Some(s) if !s.trim().is_empty() => format!("Message to {host} from {from}: {s}"),
        _ => format!("Message to {host} from {from}"),
    };
    let mut forwarded = Element::new("message", ns::CLIENT)
        .with_attr("type", "normal")
        .with_attr("from", host)
        .with_child(Element::new("subject", ns::CLIENT).with_text(subject));
    let mut bodies = 0;
    for body in stanza.elements().filter(|e| e.is("body", &stanza.ns)) {
        let mut b =
            Element::new("body", ns::CLIENT).with_text(format!("{from} wrote:\n{}", body.text()));
        if let Some(lang) = body.attr("xml:lang") {
            b.set_attr("xml:lang", lang);
        }
        forwarded.append_child(b);
        bodies += 1;
    }
    if bodies == 0 {
        forwarded.append_child(
            Element::new("body", ns::CLIENT)
                .with_text(format!("{from} sent a message without a body.")),
        );
    }
    tracing::info!(%from, host, admins = admins.len(), "message to the server forwarded to its admins");
    for admin in admins {
        let mut m = forwarded.clone();
        m.set_attr("to", admin.to_string());
        router.route(m);
    }
}
