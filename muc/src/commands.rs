//! The host admins' commands on the service (XEP-0050, in the spirit of
//! XEP-0133): list the rooms, inspect one, destroy one, announce to every
//! room. Hidden from, and refused to, everyone else.
//!
//! The ad-hoc command handlers of `switchboard_service::adhoc` are plain
//! functions; as the IRC transport does, they meet the service through a
//! shared slot: the service puts a snapshot of its rooms there before
//! handing over the IQ, a handler leaves the action it was asked for,
//! and the service carries it out afterwards.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use switchboard_jid::Jid;
use switchboard_service::adhoc::{Action, CommandOutcome, CommandRequest, Commands, NoteType};
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::stanza::StanzaError;
use switchboard_xml::Element;

use crate::muc::{broadcast_message, Env, Muc};
use crate::ns;
use crate::output::Out;
use crate::roles::Affiliation;

pub const LIST: &str = "http://jabber.org/protocol/muc#admin-list-rooms";
pub const INSPECT: &str = "http://jabber.org/protocol/muc#admin-inspect-room";
pub const DESTROY: &str = "http://jabber.org/protocol/muc#admin-destroy-room";
pub const ANNOUNCE: &str = "http://jabber.org/protocol/muc#admin-announce";

/// One room as the commands see it.
#[derive(Debug, Clone, Default)]
struct RoomLine {
    jid: String,
    name: String,
    occupants: Vec<String>,
    owners: Vec<String>,
    persistent: bool,
    public: bool,
    members_only: bool,
    archiving: bool,
}

/// What a command asks the service to do.
#[derive(Debug, Clone)]
enum Todo {
    Destroy {
        room: String,
        reason: Option<String>,
        venue: Option<String>,
    },
    Announce {
        body: String,
    },
}

#[derive(Debug, Default)]
struct Slot {
    rooms: Vec<RoomLine>,
    todo: Option<Todo>,
}

/// The registry and its slot.
pub struct AdminCommands {
    commands: Commands,
    slot: Arc<Mutex<Slot>>,
}

impl AdminCommands {
    pub fn new(env: &Env) -> AdminCommands {
        let admins: Arc<BTreeSet<String>> = Arc::new(env.admins.clone());
        let slot = Arc::new(Mutex::new(Slot::default()));
        let mut commands = Commands::new(env.host.clone());
        let visible =
            move |a: Arc<BTreeSet<String>>| move |j: &Jid| a.contains(&j.to_bare().to_string());

        let s = slot.clone();
        commands.add_restricted(
            LIST,
            "List rooms",
            visible(admins.clone()),
            move |_req: &mut CommandRequest| {
                let slot = s.lock().expect("not poisoned");
                let mut f =
                    Form::new(FormKind::Result).with_title(format!("{} rooms", slot.rooms.len()));
                for (var, label) in [
                    ("jid", "Room"),
                    ("name", "Name"),
                    ("occupants", "Occupants"),
                    ("persistent", "Persistent"),
                    ("public", "Public"),
                ] {
                    f.reported
                        .push(Field::new(var, FieldKind::TextSingle).with_label(label));
                }
                for r in &slot.rooms {
                    f.items.push(vec![
                        Field::new("jid", FieldKind::JidSingle).with_value(r.jid.clone()),
                        Field::new("name", FieldKind::TextSingle).with_value(r.name.clone()),
                        Field::new("occupants", FieldKind::TextSingle)
                            .with_value(r.occupants.len().to_string()),
                        Field::new("persistent", FieldKind::Boolean).with_value(flag(r.persistent)),
                        Field::new("public", FieldKind::Boolean).with_value(flag(r.public)),
                    ]);
                }
                CommandOutcome::Completed {
                    note: None,
                    form: Some(f),
                }
            },
        );

        let s = slot.clone();
        commands.add_restricted(
            INSPECT,
            "Inspect a room",
            visible(admins.clone()),
            move |req: &mut CommandRequest| {
                let slot = s.lock().expect("not poisoned");
                let Some(form) = req.form.as_ref() else {
                    return CommandOutcome::Form(room_form("Inspect a room", false));
                };
                let jid = form.value("room").unwrap_or("").trim().to_lowercase();
                let Some(r) = slot.rooms.iter().find(|r| r.jid == jid) else {
                    return CommandOutcome::Error(crate::muc::item_not_found("no such room"));
                };
                let mut occupants =
                    Field::new("occupants", FieldKind::TextMulti).with_label("Occupants");
                occupants.values = r.occupants.clone();
                let mut owners = Field::new("owners", FieldKind::JidMulti).with_label("Owners");
                owners.values = r.owners.clone();
                let f = Form::new(FormKind::Result)
                    .with_title(r.jid.clone())
                    .with_field(
                        Field::new("name", FieldKind::TextSingle)
                            .with_label("Name")
                            .with_value(r.name.clone()),
                    )
                    .with_field(
                        Field::new("persistent", FieldKind::Boolean)
                            .with_label("Persistent")
                            .with_value(flag(r.persistent)),
                    )
                    .with_field(
                        Field::new("public", FieldKind::Boolean)
                            .with_label("Public")
                            .with_value(flag(r.public)),
                    )
                    .with_field(
                        Field::new("membersonly", FieldKind::Boolean)
                            .with_label("Members only")
                            .with_value(flag(r.members_only)),
                    )
                    .with_field(
                        Field::new("archiving", FieldKind::Boolean)
                            .with_label("Archived")
                            .with_value(flag(r.archiving)),
                    )
                    .with_field(owners)
                    .with_field(occupants);
                CommandOutcome::Completed {
                    note: None,
                    form: Some(f),
                }
            },
        );

        let s = slot.clone();
        commands.add_restricted(
            DESTROY,
            "Destroy a room",
            visible(admins.clone()),
            move |req: &mut CommandRequest| {
                if req.action == Action::Cancel {
                    return CommandOutcome::Completed {
                        note: None,
                        form: None,
                    };
                }
                let mut slot = s.lock().expect("not poisoned");
                let Some(form) = req.form.as_ref() else {
                    return CommandOutcome::Form(room_form("Destroy a room", true));
                };
                let jid = form.value("room").unwrap_or("").trim().to_lowercase();
                if !slot.rooms.iter().any(|r| r.jid == jid) {
                    return CommandOutcome::Error(crate::muc::item_not_found("no such room"));
                }
                let venue = form
                    .value("venue")
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string);
                if let Some(v) = &venue {
                    if Jid::parse(v).is_err() {
                        return CommandOutcome::Error(
                            StanzaError::jid_malformed()
                                .with_text("the alternate venue is not a JID"),
                        );
                    }
                }
                slot.todo = Some(Todo::Destroy {
                    room: jid.clone(),
                    reason: form
                        .value("reason")
                        .map(str::to_string)
                        .filter(|r| !r.is_empty()),
                    venue,
                });
                CommandOutcome::Completed {
                    note: Some((NoteType::Info, format!("{jid} is destroyed"))),
                    form: None,
                }
            },
        );

        let s = slot.clone();
        commands.add_restricted(
            ANNOUNCE,
            "Announce to every room",
            visible(admins),
            move |req: &mut CommandRequest| {
                if req.action == Action::Cancel {
                    return CommandOutcome::Completed {
                        note: None,
                        form: None,
                    };
                }
                let mut slot = s.lock().expect("not poisoned");
                let Some(form) = req.form.as_ref() else {
                    return CommandOutcome::Form(
                        Form::new(FormKind::Form)
                            .with_title("Announce to every room")
                            .with_field(Field::form_type(ns::COMMANDS))
                            .with_field(
                                Field::new("body", FieldKind::TextMulti)
                                    .with_label("Message")
                                    .required(),
                            ),
                    );
                };
                let body = form.values("body").join("\n");
                if body.trim().is_empty() {
                    return CommandOutcome::Error(crate::muc::not_acceptable(
                        "'Message' is required",
                    ));
                }
                let n = slot.rooms.len();
                slot.todo = Some(Todo::Announce { body });
                CommandOutcome::Completed {
                    note: Some((NoteType::Info, format!("sent to {n} rooms"))),
                    form: None,
                }
            },
        );
        AdminCommands { commands, slot }
    }
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

fn room_form(title: &str, destroy: bool) -> Form {
    let mut f = Form::new(FormKind::Form)
        .with_title(title)
        .with_field(Field::form_type(ns::COMMANDS))
        .with_field(
            Field::new("room", FieldKind::JidSingle)
                .with_label("Room")
                .required(),
        );
    if destroy {
        f = f
            .with_field(Field::new("reason", FieldKind::TextSingle).with_label("Reason"))
            .with_field(Field::new("venue", FieldKind::JidSingle).with_label("Alternate room"));
    }
    f
}

impl Muc {
    /// Answers command IQs and disco on command nodes; `false` for other
    /// IQs.
    pub(crate) fn commands_iq(&mut self, iq: &Element, _from: &Jid, out: &mut Out) -> bool {
        if !self.commands.commands.is_command_iq(iq) {
            return false;
        }
        let rooms: Vec<RoomLine> = {
            let mut v: Vec<RoomLine> = self
                .rooms
                .values()
                .map(|r| RoomLine {
                    jid: r.jid.clone(),
                    name: r.config.name.clone(),
                    occupants: r
                        .occupants
                        .iter()
                        .map(|o| format!("{} ({})", o.nick, o.bare))
                        .collect(),
                    owners: r.with_affiliation(Affiliation::Owner),
                    persistent: r.config.persistent,
                    public: r.config.public,
                    members_only: r.config.members_only,
                    archiving: r.config.archiving,
                })
                .collect();
            v.sort_by(|a, b| a.jid.cmp(&b.jid));
            v
        };
        self.commands.slot.lock().expect("not poisoned").rooms = rooms;
        // Command sessions expire on the monotonic clock, which the
        // registry reads itself.
        let reply = self.commands.commands.handle_iq(iq, Instant::now());
        let todo = self.commands.slot.lock().expect("not poisoned").todo.take();
        match todo {
            Some(Todo::Destroy {
                room,
                reason,
                venue,
            }) => {
                let local = room.split('@').next().unwrap_or("").to_string();
                let mut d = Element::new("destroy", ns::MUC_USER);
                if let Some(v) = venue {
                    d.set_attr("jid", v);
                }
                if let Some(r) = reason {
                    d.append_child(Element::new("reason", ns::MUC_USER).with_text(r));
                }
                self.destroy_notice(&local, Some(d), out);
                self.forget_room(&local, out);
            }
            Some(Todo::Announce { body }) => {
                for room in self.rooms.values() {
                    let m = Element::new("message", ns::CLIENT)
                        .with_attr("type", "groupchat")
                        .with_attr("from", room.jid.clone())
                        .with_child(Element::new("body", ns::CLIENT).with_text(body.clone()));
                    broadcast_message(room, &m, out);
                }
            }
            None => {}
        }
        out.send_opt(reply);
        true
    }
}
