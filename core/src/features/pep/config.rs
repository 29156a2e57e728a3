//! A PEP node's configuration (XEP-0060 §16.4.4 `pubsub#node_config`, the
//! subset a personal eventing service needs), its data forms, and the
//! preconditions of publish-options (XEP-0060 §7.1.5, XEP-0223).
//!
//! The defaults are XEP-0163 §5's: the `presence` access model, payloads
//! delivered, the last item sent on presence. Items are persistent and
//! one is kept unless configured otherwise.

use switchboard_service::forms::{Field, FieldKind, Form, FormKind, FORM_TYPE};
use switchboard_xml::{ns, Element};

use super::errors;
use crate::stanza::StanzaError;

/// The FORM_TYPE of node configuration forms.
pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
/// The FORM_TYPE of publish-options forms.
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// The most items a node keeps (what `pubsub#max_items` `max` means).
pub const MAX_ITEMS: usize = 256;

/// Who may see a node's items (XEP-0060 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Presence,
    Roster,
    Whitelist,
}

impl Access {
    pub const ALL: [Access; 4] = [
        Access::Open,
        Access::Presence,
        Access::Roster,
        Access::Whitelist,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Presence => "presence",
            Access::Roster => "roster",
            Access::Whitelist => "whitelist",
        }
    }

    pub fn parse(s: &str) -> Option<Access> {
        Access::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// When the last published item is sent (XEP-0060 §16.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendLast {
    Never,
    OnSub,
    OnSubAndPresence,
}

impl SendLast {
    pub fn as_str(self) -> &'static str {
        match self {
            SendLast::Never => "never",
            SendLast::OnSub => "on_sub",
            SendLast::OnSubAndPresence => "on_sub_and_presence",
        }
    }

    pub fn parse(s: &str) -> Option<SendLast> {
        [SendLast::Never, SendLast::OnSub, SendLast::OnSubAndPresence]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub access: Access,
    /// Roster groups allowed with the `roster` access model.
    pub groups: Vec<String>,
    /// Items are kept (`false`: only the last one, for last-item delivery).
    pub persist: bool,
    /// How many items are kept (1..=[`MAX_ITEMS`]).
    pub max_items: usize,
    pub send_last: SendLast,
    pub deliver_payloads: bool,
    pub notify_retract: bool,
    pub title: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            access: Access::Presence,
            groups: Vec::new(),
            persist: true,
            max_items: 1,
            send_last: SendLast::OnSubAndPresence,
            deliver_payloads: true,
            notify_retract: true,
            title: None,
        }
    }
}

/// The fields this service knows, in the order forms show them.
const FIELDS: [&str; 8] = [
    "pubsub#access_model",
    "pubsub#roster_groups_allowed",
    "pubsub#persist_items",
    "pubsub#max_items",
    "pubsub#send_last_published_item",
    "pubsub#deliver_payloads",
    "pubsub#notify_retract",
    "pubsub#title",
];

fn boolean(s: &str) -> Option<bool> {
    match s {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn max_items(s: &str) -> Option<usize> {
    if s == "max" {
        return Some(MAX_ITEMS);
    }
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_ITEMS).contains(n))
}

impl NodeConfig {
    /// Sets one field from its submitted values; `Err` says why the value
    /// is not acceptable, `Ok(false)` that the field is not one of ours.
    fn set(&mut self, var: &str, values: &[String]) -> Result<bool, String> {
        let one = values.first().map(String::as_str).unwrap_or_default();
        let bad = || format!("'{one}' is not a value of {var} here");
        match var {
            "pubsub#access_model" => self.access = Access::parse(one).ok_or_else(bad)?,
            "pubsub#roster_groups_allowed" => self.groups = values.to_vec(),
            "pubsub#persist_items" => self.persist = boolean(one).ok_or_else(bad)?,
            "pubsub#max_items" => {
                self.max_items = max_items(one)
                    .ok_or_else(|| format!("pubsub#max_items must be 1 to {MAX_ITEMS} or max"))?
            }
            "pubsub#send_last_published_item" => {
                self.send_last = SendLast::parse(one).ok_or_else(bad)?
            }
            "pubsub#deliver_payloads" => self.deliver_payloads = boolean(one).ok_or_else(bad)?,
            "pubsub#notify_retract" => self.notify_retract = boolean(one).ok_or_else(bad)?,
            "pubsub#title" => self.title = Some(one.to_owned()).filter(|t| !t.is_empty()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The values of one field as a form shows them.
    fn values(&self, var: &str) -> Vec<String> {
        let b = |v: bool| vec![if v { "1" } else { "0" }.to_string()];
        match var {
            "pubsub#access_model" => vec![self.access.as_str().into()],
            "pubsub#roster_groups_allowed" => self.groups.clone(),
            "pubsub#persist_items" => b(self.persist),
            "pubsub#max_items" => vec![self.max_items.to_string()],
            "pubsub#send_last_published_item" => vec![self.send_last.as_str().into()],
            "pubsub#deliver_payloads" => b(self.deliver_payloads),
            "pubsub#notify_retract" => b(self.notify_retract),
            "pubsub#title" => self.title.clone().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The configuration as a form to fill in (XEP-0060 §8.2.2).
    pub fn to_form(&self) -> Element {
        let mut form = Form::new(FormKind::Form).with_field(Field::form_type(NODE_CONFIG));
        for var in FIELDS {
            let kind = match var {
                "pubsub#access_model" | "pubsub#send_last_published_item" => FieldKind::ListSingle,
                "pubsub#roster_groups_allowed" => FieldKind::ListMulti,
                "pubsub#persist_items" | "pubsub#deliver_payloads" | "pubsub#notify_retract" => {
                    FieldKind::Boolean
                }
                _ => FieldKind::TextSingle,
            };
            let mut field = Field::new(var, kind);
            for v in self.values(var) {
                field = field.with_value(v);
            }
            match var {
                "pubsub#access_model" => {
                    for a in Access::ALL {
                        field = field.with_option("", a.as_str());
                    }
                }
                "pubsub#send_last_published_item" => {
                    for v in [SendLast::Never, SendLast::OnSub, SendLast::OnSubAndPresence] {
                        field = field.with_option("", v.as_str());
                    }
                }
                _ => {}
            }
            form = form.with_field(field);
        }
        form.to_element()
    }

    /// Applies a submitted configuration form (XEP-0060 §8.2.4): fields it
    /// leaves out keep their values. A form of another FORM_TYPE, or a
    /// value this service does not support, is `not-acceptable`; a form
    /// that is no form is `bad-request`.
    pub fn apply_form(&self, x: &Element) -> Result<NodeConfig, StanzaError> {
        let form = Form::parse(x).map_err(StanzaError::from)?;
        if form.kind != FormKind::Submit {
            return Err(StanzaError::bad_request().with_text("submit the configuration form"));
        }
        if form.value(FORM_TYPE) != Some(NODE_CONFIG) {
            return Err(
                StanzaError::new("not-acceptable", crate::stanza::ErrorType::Modify)
                    .with_text(format!("the form's FORM_TYPE must be {NODE_CONFIG}")),
            );
        }
        let mut next = self.clone();
        for f in &form.fields {
            if f.var == FORM_TYPE {
                continue;
            }
            match next.set(&f.var, &f.values) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(StanzaError::new(
                        "not-acceptable",
                        crate::stanza::ErrorType::Modify,
                    )
                    .with_text(format!("{} is not a configurable option here", f.var)))
                }
                Err(why) => {
                    return Err(StanzaError::new(
                        "not-acceptable",
                        crate::stanza::ErrorType::Modify,
                    )
                    .with_text(why))
                }
            }
        }
        Ok(next)
    }

    /// The stored form: attributes of a `<config/>` element.
    pub fn to_stored(&self) -> Element {
        let mut c = Element::new("config", ns::SPOOL)
            .with_attr("access", self.access.as_str())
            .with_attr("persist", self.persist.to_string())
            .with_attr("max-items", self.max_items.to_string())
            .with_attr("send-last", self.send_last.as_str())
            .with_attr("payloads", self.deliver_payloads.to_string())
            .with_attr("notify-retract", self.notify_retract.to_string());
        if let Some(t) = &self.title {
            c.set_attr("title", t.clone());
        }
        for g in &self.groups {
            c.append_child(Element::new("group", ns::SPOOL).with_text(g.clone()));
        }
        c
    }

    /// Reads the stored form; what is missing or unreadable takes the
    /// default (the node stays usable, and its owner can reconfigure it).
    pub fn from_stored(c: &Element) -> NodeConfig {
        let d = NodeConfig::default();
        NodeConfig {
            access: c.attr("access").and_then(Access::parse).unwrap_or(d.access),
            groups: c
                .elements()
                .filter(|g| g.is("group", ns::SPOOL))
                .map(Element::text)
                .collect(),
            persist: c.attr("persist").and_then(boolean).unwrap_or(d.persist),
            max_items: c
                .attr("max-items")
                .and_then(max_items)
                .unwrap_or(d.max_items),
            send_last: c
                .attr("send-last")
                .and_then(SendLast::parse)
                .unwrap_or(d.send_last),
            deliver_payloads: c
                .attr("payloads")
                .and_then(boolean)
                .unwrap_or(d.deliver_payloads),
            notify_retract: c
                .attr("notify-retract")
                .and_then(boolean)
                .unwrap_or(d.notify_retract),
            title: c.attr("title").map(str::to_owned),
        }
    }
}

/// Publish-options (XEP-0060 §7.1.5): each field is a precondition on
/// the node's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    fields: Vec<(String, Vec<String>)>,
}

impl Preconditions {
    /// Reads `<publish-options/>`: a form whose FORM_TYPE must be
    /// publish-options (`bad-request` with `<invalid-options/>`
    /// otherwise). A field this service does not know fails as a
    /// precondition not met: the XEP says to reject the publication.
    pub fn parse(options: &Element) -> Result<Preconditions, StanzaError> {
        let Some(x) = options.get_child("x", ns::DATA_FORMS) else {
            return Ok(Preconditions::default());
        };
        let invalid = |text: String| {
            StanzaError::bad_request()
                .with_text(text)
                .with_app(errors::condition("invalid-options"))
        };
        let form = Form::parse(x).map_err(|e| invalid(e.to_string()))?;
        if form.value(FORM_TYPE) != Some(PUBLISH_OPTIONS) {
            return Err(invalid(format!(
                "publish-options need the FORM_TYPE {PUBLISH_OPTIONS}"
            )));
        }
        let mut fields = Vec::new();
        for f in &form.fields {
            if f.var == FORM_TYPE {
                continue;
            }
            if !FIELDS.contains(&f.var.as_str()) {
                return Err(errors::precondition(format!(
                    "{} is not an option of nodes here",
                    f.var
                )));
            }
            fields.push((f.var.clone(), f.values.clone()));
        }
        Ok(Preconditions { fields })
    }

    /// Whether an existing node's configuration meets every precondition
    /// (`conflict` with `<precondition-not-met/>` naming the first that
    /// does not).
    pub fn check(&self, config: &NodeConfig) -> Result<(), StanzaError> {
        for (var, wanted) in &self.fields {
            let mut probe = config.clone();
            // Compare as the service reads the value ("max" is the
            // largest count, "true" is "1").
            let same = match probe.set(var, wanted) {
                Ok(_) => probe == *config,
                Err(_) => false,
            };
            if !same {
                return Err(errors::precondition(format!(
                    "the node's {var} is {}, not {}",
                    config.values(var).join(" "),
                    wanted.join(" ")
                )));
            }
        }
        Ok(())
    }

    /// The configuration of a node created with these options: `base`
    /// with each precondition applied (`conflict` with
    /// `<precondition-not-met/>` for a value the service cannot take).
    pub fn apply(&self, base: NodeConfig) -> Result<NodeConfig, StanzaError> {
        let mut config = base;
        for (var, wanted) in &self.fields {
            config.set(var, wanted).map_err(errors::precondition)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(fields: &[(&str, &str)]) -> Element {
        let mut form = Form::new(FormKind::Submit).with_field(Field::form_type(PUBLISH_OPTIONS));
        for (var, value) in fields {
            form = form.with_field(Field::new(*var, FieldKind::TextSingle).with_value(*value));
        }
        Element::new("publish-options", super::super::NS).with_child(form.to_element())
    }

    #[test]
    fn preconditions_compare_as_the_service_reads_values() {
        let p = Preconditions::parse(&options(&[
            ("pubsub#persist_items", "true"),
            ("pubsub#max_items", "max"),
            ("pubsub#access_model", "whitelist"),
        ]))
        .unwrap();
        let created = p.apply(NodeConfig::default()).unwrap();
        assert_eq!(created.access, Access::Whitelist);
        assert_eq!(created.max_items, MAX_ITEMS);
        assert_eq!(p.check(&created), Ok(()));
        let e = p.check(&NodeConfig::default()).unwrap_err();
        assert_eq!(e.condition, "conflict");
        assert_eq!(e.app.unwrap().name, "precondition-not-met");
    }

    #[test]
    fn unknown_options_and_bad_values_are_preconditions_not_met() {
        let e = Preconditions::parse(&options(&[("pubsub#colour", "red")])).unwrap_err();
        assert_eq!(
            (e.condition, e.app.unwrap().name.as_str()),
            ("conflict", "precondition-not-met")
        );
        let p = Preconditions::parse(&options(&[("pubsub#access_model", "authorize")])).unwrap();
        let e = p.apply(NodeConfig::default()).unwrap_err();
        assert_eq!(e.condition, "conflict");
        let wrong = Element::new("publish-options", super::super::NS).with_child(
            Form::new(FormKind::Submit)
                .with_field(Field::form_type("urn:other"))
                .to_element(),
        );
        let e = Preconditions::parse(&wrong).unwrap_err();
        assert_eq!(
            (e.condition, e.app.unwrap().name.as_str()),
            ("bad-request", "invalid-options")
        );
    }

    #[test]
    fn configuration_forms_round_trip_and_refuse_what_is_not_supported() {
        let c = NodeConfig {
            access: Access::Roster,
            groups: vec!["Friends".into()],
            max_items: 10,
            ..NodeConfig::default()
        };
        assert_eq!(NodeConfig::from_stored(&c.to_stored()), c);
        let mut submit = Form::parse(&c.to_form()).unwrap();
        submit.kind = FormKind::Submit;
        assert_eq!(
            NodeConfig::default().apply_form(&submit.to_element()),
            Ok(c.clone())
        );
        let bad = Form::new(FormKind::Submit)
            .with_field(Field::form_type(NODE_CONFIG))
            .with_field(Field::new("pubsub#max_items", FieldKind::TextSingle).with_value("0"));
        let e = c.apply_form(&bad.to_element()).unwrap_err();
        assert_eq!(e.condition, "not-acceptable");
    }
}
