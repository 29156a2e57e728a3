//! Group chat: XEP-0045 multi-user chat as a Switchboard service
//! (`type="muc"`), addressed by its own hostname
//! (`conference.example.org`). It runs in-process under the server's
//! supervisor or as `switchboard component` attached over XEP-0114 to
//! any XMPP server.
//!
//! The room logic is sans-IO: [`Muc::handle`] takes a stanza and the
//! time and returns an [`output::Out`] (stanzas to send, records to
//! store, archive work); [`service::MucService`] is the driver that does
//! the I/O through the storage interface (`ServiceStore` for rooms,
//! `ArchiveStore` for the archive).
//!
//! Map, one file per concern:
//!
//! - [`muc`]: every room of a service and the dispatch by addressee;
//! - [`room`]: one room's state and the presence occupants see;
//! - [`roles`]: roles, affiliations and the XEP-0045 privilege tables;
//! - [`config`]: the `muc#roomconfig` form; [`settings`]: the service's
//!   own config attributes; [`limits`]: rates and limit errors;
//! - [`join`]: entering, presence, nick changes, leaving (§7.1–§7.6);
//! - [`message`]: groupchat, subject, private messages (§7.4, §7.5, §8.1);
//! - [`invite`]: mediated invitations and declines (§7.8);
//! - [`voice`]: voice requests and approvals (§7.13, §8.6);
//! - [`admin`]: `muc#admin`, kick, ban, voice, lists (§8, §9);
//! - [`owner`]: `muc#owner`, configuration and destruction (§10);
//! - [`register`]: nick registration (§7.10);
//! - [`disco`]: service and room discovery (§6);
//! - [`history`]: discussion history for people who enter;
//! - [`mam`]: the archive through XEP-0313 and XEP-0059;
//! - [`moderate`]: XEP-0425 moderation;
//! - [`occupant_iq`]: XEP-0410 self-ping and IQs relayed to occupants;
//! - [`avatar`]: the room's vCard and avatar hash;
//! - [`commands`]: the admins' ad-hoc commands on the service;
//! - [`nick`]: the PRECIS Nickname profile; [`time`]: XEP-0082 (the
//!   service kit's);
//! - [`record`]: a room as stored; [`output`]: what the logic asks for;
//! - [`stats`]: rooms, occupants and messages for the metrics endpoint;
//! - [`service`]: the [`switchboard_service::Service`] driver.

pub mod admin;
pub mod avatar;
pub mod commands;
pub mod config;
pub mod disco;
pub mod history;
pub mod invite;
pub mod join;
pub mod limits;
pub mod mam;
pub mod message;
pub mod moderate;
pub mod muc;
pub mod nick;
pub mod ns;
pub mod occupant_iq;
pub mod output;
pub mod owner;
pub mod record;
pub mod register;
pub mod roles;
pub mod room;
pub mod service;
pub mod settings;
pub mod stats;
pub use switchboard_service::time;
pub mod voice;

pub use muc::Muc;
pub use service::MucService;

#[cfg(test)]
mod tests;
