//! A room's configuration and the `muc#roomconfig` form (XEP-0045 §10.2,
//! the field registry of §16.5.3) that owners read and submit.
//!
//! The form is sent with the current values; a submission is checked
//! against it with the shared XEP-0004 validation, so a field left out
//! keeps its value and a value outside the offered choices is
//! `not-acceptable`. Numbers the service caps (occupants, history) are
//! checked against the caps with a message naming the cap.

use switchboard_jid::Jid;
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::stanza::{ErrorType, StanzaError};
use switchboard_xml::Element;

use crate::ns;

/// Who may see occupants' real JIDs (`muc#roomconfig_whois`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whois {
    /// Semi-anonymous: moderators only.
    Moderators,
    /// Non-anonymous: every occupant.
    Anyone,
}

impl Whois {
    pub fn as_str(self) -> &'static str {
        match self {
            Whois::Moderators => "moderators",
            Whois::Anyone => "anyone",
        }
    }
    pub fn parse(s: &str) -> Option<Whois> {
        match s {
            "moderators" => Some(Whois::Moderators),
            "anyone" => Some(Whois::Anyone),
            _ => None,
        }
    }
}

/// Who may send private messages (`muc#roomconfig_allowpm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowPm {
    Anyone,
    Participants,
    Moderators,
    None,
}

impl AllowPm {
    pub fn as_str(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::None => "none",
        }
    }
    pub fn parse(s: &str) -> Option<AllowPm> {
        Some(match s {
            "anyone" => AllowPm::Anyone,
            "participants" => AllowPm::Participants,
            "moderators" => AllowPm::Moderators,
            "none" => AllowPm::None,
            _ => return None,
        })
    }
}

/// Everything an owner configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    pub name: String,
    pub description: String,
    pub language: String,
    pub persistent: bool,
    /// Listed in the service's disco#items.
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    /// `Some` when the room is password-protected.
    pub password: Option<String>,
    /// The most occupants; `None` is the service's cap.
    pub max_users: Option<usize>,
    pub whois: Whois,
    /// Participants (not only moderators) may change the subject.
    pub change_subject: bool,
    pub allow_pm: AllowPm,
    /// Occupants (not only moderators) may invite others.
    pub allow_invites: bool,
    /// Messages kept for joining occupants (`muc#maxhistoryfetch`).
    pub history_length: usize,
    /// Messages go to the room's archive (XEP-0313).
    pub archiving: bool,
}

/// The service-wide bounds a configuration must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_occupants: usize,
    pub history_default: usize,
    pub history_max: usize,
    pub archiving_default: bool,
}

impl RoomConfig {
    /// A new room's configuration. XEP-0045 leaves the defaults to the
    /// service; these are Prosody's (public, temporary, open,
    /// unmoderated, semi-anonymous, private messages and invitations
    /// allowed), which is what users of group chat expect.
    pub fn defaults(bounds: &Bounds) -> RoomConfig {
        RoomConfig {
            name: String::new(),
            description: String::new(),
            language: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: None,
            max_users: None,
            whois: Whois::Moderators,
            change_subject: false,
            allow_pm: AllowPm::Anyone,
            allow_invites: true,
            history_length: bounds.history_default.min(bounds.history_max),
            archiving: bounds.archiving_default,
        }
    }

    /// The occupant limit in force.
    pub fn occupant_limit(&self, bounds: &Bounds) -> usize {
        self.max_users
            .unwrap_or(bounds.max_occupants)
            .min(bounds.max_occupants)
    }

    /// The `muc#roomconfig` form with the current values, and the current
    /// owner and admin lists.
    pub fn form(&self, bounds: &Bounds, owners: &[String], admins: &[String]) -> Form {
        let boolean = |var: &str, label: &str, v: bool| {
            Field::new(var, FieldKind::Boolean)
                .with_label(label)
                .with_value(if v { "1" } else { "0" })
        };
        let mut maxusers = Field::new("muc#roomconfig_maxusers", FieldKind::ListSingle)
            .with_label("Maximum number of occupants")
            .with_value(
                self.max_users
                    .map_or_else(|| "none".to_string(), |n| n.to_string()),
            );
        for n in [5, 10, 20, 30, 50, 100, 200, 500, 1000] {
            if n <= bounds.max_occupants {
                maxusers = maxusers.with_option("", n.to_string());
            }
        }
        maxusers = maxusers.with_option("No limit but the service's", "none");
        let mut owners_field =
            Field::new("muc#roomconfig_roomowners", FieldKind::JidMulti).with_label("Room owners");
        owners_field.values = owners.to_vec();
        let mut admins_field =
            Field::new("muc#roomconfig_roomadmins", FieldKind::JidMulti).with_label("Room admins");
        admins_field.values = admins.to_vec();
        Form::new(FormKind::Form)
            .with_title("Room configuration")
            .with_instructions("Change the settings and submit, or cancel to keep them.")
            .with_field(Field::form_type(ns::MUC_ROOMCONFIG))
            .with_field(
                Field::new("muc#roomconfig_roomname", FieldKind::TextSingle)
                    .with_label("Name")
                    .with_value(self.name.clone()),
            )
            .with_field(
                Field::new("muc#roomconfig_roomdesc", FieldKind::TextSingle)
                    .with_label("Description")
                    .with_value(self.description.clone()),
            )
            .with_field(
                Field::new("muc#roomconfig_lang", FieldKind::TextSingle)
                    .with_label("Language of the discussion")
                    .with_value(self.language.clone()),
            )
            .with_field(boolean(
                "muc#roomconfig_persistentroom",
                "Keep the room when the last occupant leaves",
                self.persistent,
            ))
            .with_field(boolean(
                "muc#roomconfig_publicroom",
                "List the room publicly",
                self.public,
            ))
            .with_field(boolean(
                "muc#roomconfig_membersonly",
                "Only members may enter",
                self.members_only,
            ))
            .with_field(boolean(
                "muc#roomconfig_moderatedroom",
                "Only occupants with voice may speak",
                self.moderated,
            ))
            .with_field(boolean(
                "muc#roomconfig_passwordprotectedroom",
                "A password is needed to enter",
                self.password.is_some(),
            ))
            .with_field(
                Field::new("muc#roomconfig_roomsecret", FieldKind::TextPrivate)
                    .with_label("Password")
                    .with_value(self.password.clone().unwrap_or_default()),
            )
            .with_field(maxusers)
            .with_field(
                Field::new("muc#roomconfig_whois", FieldKind::ListSingle)
                    .with_label("Who may see occupants' real addresses")
                    .with_value(self.whois.as_str())
                    .with_option("Moderators only", "moderators")
                    .with_option("Anyone", "anyone"),
            )
            .with_field(boolean(
                "muc#roomconfig_changesubject",
                "Occupants may change the subject",
                self.change_subject,
            ))
            .with_field(
                Field::new("muc#roomconfig_allowpm", FieldKind::ListSingle)
                    .with_label("Who may send private messages")
                    .with_value(self.allow_pm.as_str())
                    .with_option("Anyone", "anyone")
                    .with_option("Occupants with voice", "participants")
                    .with_option("Moderators only", "moderators")
                    .with_option("Nobody", "none"),
            )
            .with_field(boolean(
                "muc#roomconfig_allowinvites",
                "Occupants may invite others",
                self.allow_invites,
            ))
            .with_field(
                Field::new("muc#maxhistoryfetch", FieldKind::TextSingle)
                    .with_label(format!(
                        "Messages shown to someone entering (at most {})",
                        bounds.history_max
                    ))
                    .with_value(self.history_length.to_string()),
            )
            .with_field(boolean(
                "muc#roomconfig_enablelogging",
                "Log the discussion (an archive occupants search with MAM)",
                self.archiving,
            ))
            .with_field(owners_field)
            .with_field(admins_field)
    }

    /// Applies a submitted form. Returns the new configuration and the
    /// owner and admin lists when the submission changes them.
    pub fn apply(
        &self,
        submitted: &Form,
        bounds: &Bounds,
        owners: &[String],
        admins: &[String],
    ) -> Result<Submitted, StanzaError> {
        let mut form = self.form(bounds, owners, admins);
        // Clients type any number here (Smack, Converse); the cap is
        // checked below with a clearer message than "not a choice".
        if let Some(f) = form
            .fields
            .iter_mut()
            .find(|f| f.var == "muc#roomconfig_maxusers")
        {
            f.options.clear();
        }
        let pairs = form.validate_submission(submitted)?;
        let get = |var: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.as_str())
        };
        let flag = |var: &str| get(var) == Some("1");
        let mut c = self.clone();
        c.name = get("muc#roomconfig_roomname")
            .unwrap_or("")
            .trim()
            .to_string();
        c.description = get("muc#roomconfig_roomdesc")
            .unwrap_or("")
            .trim()
            .to_string();
        c.language = get("muc#roomconfig_lang").unwrap_or("").trim().to_string();
        c.persistent = flag("muc#roomconfig_persistentroom");
        c.public = flag("muc#roomconfig_publicroom");
        c.members_only = flag("muc#roomconfig_membersonly");
        c.moderated = flag("muc#roomconfig_moderatedroom");
        let secret = get("muc#roomconfig_roomsecret").unwrap_or("");
        c.password = if flag("muc#roomconfig_passwordprotectedroom") {
            if secret.is_empty() {
                return Err(not_acceptable(
                    "a password-protected room needs a password ('Password')",
                ));
            }
            Some(secret.to_string())
        } else {
            None
        };
        c.max_users = match get("muc#roomconfig_maxusers").unwrap_or("none") {
            "none" | "" | "0" => None,
            n => match n.parse::<usize>() {
                Ok(n) if n <= bounds.max_occupants => Some(n),
                Ok(_) => {
                    return Err(not_acceptable(&format!(
                        "this service allows at most {} occupants in a room",
                        bounds.max_occupants
                    )))
                }
                Err(_) => {
                    return Err(not_acceptable(&format!(
                        "'Maximum number of occupants': '{n}' is not a number"
                    )))
                }
            },
        };
        c.whois = get("muc#roomconfig_whois")
            .and_then(Whois::parse)
            .unwrap_or(c.whois);
        c.change_subject = flag("muc#roomconfig_changesubject");
        c.allow_pm = get("muc#roomconfig_allowpm")
            .and_then(AllowPm::parse)
            .unwrap_or(c.allow_pm);
        c.allow_invites = flag("muc#roomconfig_allowinvites");
        c.history_length = match get("muc#maxhistoryfetch").map(str::trim) {
            None | Some("") => 0,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n <= bounds.history_max => n,
                Ok(_) => {
                    return Err(not_acceptable(&format!(
                        "this service keeps at most {} messages of history",
                        bounds.history_max
                    )))
                }
                Err(_) => {
                    return Err(not_acceptable(&format!(
                        "'Messages shown to someone entering': '{n}' is not a number"
                    )))
                }
            },
        };
        // The registry's name for logging (§16.5.3), which is what this
        // archive is, and Prosody's name for the same switch, which
        // clients written against Prosody submit (it is not offered).
        c.archiving = match submitted.field("muc#roomconfig_enablearchiving") {
            Some(f) => matches!(f.values.first().map(|v| v.trim()), Some("1" | "true")),
            None => flag("muc#roomconfig_enablelogging"),
        };
        let list = |var: &str| -> Option<Vec<String>> {
            submitted.field(var)?;
            Some(
                pairs
                    .iter()
                    .filter(|(k, _)| k == var)
                    .filter_map(|(_, v)| Jid::parse(v).ok())
                    .map(|j| j.to_bare().to_string())
                    .collect(),
            )
        };
        Ok(Submitted {
            config: c,
            owners: list("muc#roomconfig_roomowners"),
            admins: list("muc#roomconfig_roomadmins"),
        })
    }

    /// The configuration as attributes of an element (for the store).
    pub fn to_element(&self) -> Element {
        let b = |v: bool| if v { "1" } else { "0" };
        let mut e = Element::new("config", crate::record::NS)
            .with_attr("name", self.name.clone())
            .with_attr("description", self.description.clone())
            .with_attr("language", self.language.clone())
            .with_attr("persistent", b(self.persistent))
            .with_attr("public", b(self.public))
            .with_attr("members-only", b(self.members_only))
            .with_attr("moderated", b(self.moderated))
            .with_attr("whois", self.whois.as_str())
            .with_attr("change-subject", b(self.change_subject))
            .with_attr("allow-pm", self.allow_pm.as_str())
            .with_attr("allow-invites", b(self.allow_invites))
            .with_attr("history", self.history_length.to_string())
            .with_attr("archiving", b(self.archiving));
        if let Some(p) = &self.password {
            e.set_attr("password", p.clone());
        }
        if let Some(n) = self.max_users {
            e.set_attr("max-users", n.to_string());
        }
        e
    }

    /// Reads what [`RoomConfig::to_element`] wrote; attributes missing
    /// from an older record take the defaults.
    pub fn from_element(e: &Element, bounds: &Bounds) -> Result<RoomConfig, String> {
        let mut c = RoomConfig::defaults(bounds);
        let s = |k: &str| e.attr(k).unwrap_or("").to_string();
        let flag = |k: &str, d: bool| e.attr(k).map_or(d, |v| v == "1");
        c.name = s("name");
        c.description = s("description");
        c.language = s("language");
        c.persistent = flag("persistent", c.persistent);
        c.public = flag("public", c.public);
        c.members_only = flag("members-only", c.members_only);
        c.moderated = flag("moderated", c.moderated);
        c.password = e.attr("password").map(str::to_string);
        c.max_users = match e.attr("max-users") {
            Some(n) => Some(n.parse().map_err(|_| format!("bad max-users \"{n}\""))?),
            None => None,
        };
        c.whois = e.attr("whois").and_then(Whois::parse).unwrap_or(c.whois);
        c.change_subject = flag("change-subject", c.change_subject);
        c.allow_pm = e
            .attr("allow-pm")
            .and_then(AllowPm::parse)
            .unwrap_or(c.allow_pm);
        c.allow_invites = flag("allow-invites", c.allow_invites);
        if let Some(h) = e.attr("history") {
            c.history_length = h
                .parse::<usize>()
                .map_err(|_| format!("bad history \"{h}\""))?
                .min(bounds.history_max);
        }
        c.archiving = flag("archiving", c.archiving);
        Ok(c)
    }
}

/// The outcome of a submitted configuration form.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub config: RoomConfig,
    /// The owner list, when the form carried one.
    pub owners: Option<Vec<String>>,
    pub admins: Option<Vec<String>>,
}

fn not_acceptable(text: &str) -> StanzaError {
    StanzaError::new("not-acceptable", ErrorType::Modify).with_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        max_occupants: 200,
        history_default: 20,
        history_max: 100,
        archiving_default: true,
    };

    fn submit(fields: &[(&str, &str)]) -> Form {
        let mut f = Form::new(FormKind::Submit).with_field(Field::form_type(ns::MUC_ROOMCONFIG));
        for (k, v) in fields {
            f = f.with_field(Field::new(*k, FieldKind::TextSingle).with_value(*v));
        }
        f
    }

    #[test]
    fn fields_left_out_keep_their_values() {
        let c = RoomConfig::defaults(&BOUNDS);
        let s = c
            .apply(
                &submit(&[
                    ("muc#roomconfig_roomname", "Kitchen"),
                    ("muc#roomconfig_persistentroom", "true"),
                ]),
                &BOUNDS,
                &[],
                &[],
            )
            .unwrap();
        assert_eq!(s.config.name, "Kitchen");
        assert!(s.config.persistent);
        assert!(s.config.public, "unchanged");
        assert_eq!(s.config.history_length, 20);
        assert!(s.owners.is_none());
    }

    #[test]
    fn caps_and_passwords_are_checked() {
        let c = RoomConfig::defaults(&BOUNDS);
        let e = c
            .apply(
                &submit(&[("muc#roomconfig_maxusers", "500")]),
                &BOUNDS,
                &[],
                &[],
            )
            .unwrap_err();
        assert_eq!(e.condition, "not-acceptable");
        assert_eq!(
            e.text.as_deref(),
            Some("this service allows at most 200 occupants in a room")
        );
        let e = c
            .apply(
                &submit(&[("muc#roomconfig_passwordprotectedroom", "1")]),
                &BOUNDS,
                &[],
                &[],
            )
            .unwrap_err();
        assert_eq!(e.condition, "not-acceptable");
        let e = c
            .apply(
                &submit(&[("muc#maxhistoryfetch", "1000")]),
                &BOUNDS,
                &[],
                &[],
            )
            .unwrap_err();
        assert_eq!(
            e.text.as_deref(),
            Some("this service keeps at most 100 messages of history")
        );
        let e = c
            .apply(
                &submit(&[("muc#roomconfig_whois", "everybody")]),
                &BOUNDS,
                &[],
                &[],
            )
            .unwrap_err();
        assert_eq!(e.condition, "not-acceptable");
    }

    #[test]
    fn the_stored_form_round_trips() {
        let mut c = RoomConfig::defaults(&BOUNDS);
        c.name = "Kitchen".into();
        c.password = Some("pw".into());
        c.max_users = Some(30);
        c.allow_pm = AllowPm::Moderators;
        assert_eq!(
            RoomConfig::from_element(&c.to_element(), &BOUNDS).unwrap(),
            c
        );
    }
}
