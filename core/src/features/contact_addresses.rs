//! XEP-0157 Contact Addresses for XMPP Services: each host's
//! `<contact type="…">URI</contact>` entries from the config, shown in the
//! host's disco#info as a `http://jabber.org/network/serverinfo` form
//! (XEP-0128), one field per kind of contact with its URIs in config
//! order. A host without contact addresses shows no form.
//!
//! The form is built once at start-up, like the rest of the host's
//! disco#info, because it is part of the host's entity-capabilities hash
//! (XEP-0115, see `caps/`); changing the addresses takes a restart, and a
//! reload says so.

use switchboard_config::{ContactKind, HostConfig};
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_xml::Element;

use super::Setup;

/// The FORM_TYPE XEP-0157 scopes its fields with.
pub const FORM_TYPE: &str = "http://jabber.org/network/serverinfo";

pub fn register(setup: &mut Setup<'_>) {
    let settings = setup.settings.get();
    for host in &settings.hosts {
        if let Some(form) = form(host) {
            setup.iq.host_form(&host.name, form);
        }
    }
}

/// The serverinfo form of a host, or `None` without contact addresses.
pub fn form(host: &HostConfig) -> Option<Element> {
    if host.contacts.is_empty() {
        return None;
    }
    let mut form = Form::new(FormKind::Result).with_field(Field::form_type(FORM_TYPE));
    for kind in ContactKind::ALL {
        let mut uris = host.contacts.iter().filter(|c| c.kind == kind).peekable();
        if uris.peek().is_none() {
            continue;
        }
        let mut field = Field::new(kind.field(), FieldKind::ListMulti);
        for c in uris {
            field = field.with_value(c.uri.clone());
        }
        form = form.with_field(field);
    }
    Some(form.to_element())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_config::{ContactAddress, Registration};
    use switchboard_xml::ns;

    fn host(contacts: &[(ContactKind, &str)]) -> HostConfig {
        HostConfig {
            name: "example.org".into(),
            admins: vec![],
            registration: Registration::Off,
            archive: switchboard_config::defaults::ARCHIVE,
            contacts: contacts
                .iter()
                .map(|(kind, uri)| ContactAddress {
                    kind: *kind,
                    uri: uri.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_form_lists_each_kind_once_with_its_uris_in_order() {
        let form = form(&host(&[
            (ContactKind::Support, "https://example.org/help"),
            (ContactKind::Abuse, "mailto:abuse@example.org"),
            (ContactKind::Support, "xmpp:support@example.org"),
        ]))
        .unwrap();
        let expected = Element::new("x", ns::DATA_FORMS)
            .with_attr("type", "result")
            .with_child(
                Element::new("field", ns::DATA_FORMS)
                    .with_attr("var", "FORM_TYPE")
                    .with_attr("type", "hidden")
                    .with_child(Element::new("value", ns::DATA_FORMS).with_text(FORM_TYPE)),
            )
            .with_child(
                Element::new("field", ns::DATA_FORMS)
                    .with_attr("var", "abuse-addresses")
                    .with_attr("type", "list-multi")
                    .with_child(
                        Element::new("value", ns::DATA_FORMS).with_text("mailto:abuse@example.org"),
                    ),
            )
            .with_child(
                Element::new("field", ns::DATA_FORMS)
                    .with_attr("var", "support-addresses")
                    .with_attr("type", "list-multi")
                    .with_child(
                        Element::new("value", ns::DATA_FORMS).with_text("https://example.org/help"),
                    )
                    .with_child(
                        Element::new("value", ns::DATA_FORMS).with_text("xmpp:support@example.org"),
                    ),
            );
        assert_eq!(form.to_xml_string(), expected.to_xml_string());
    }

    #[test]
    fn no_addresses_no_form() {
        assert_eq!(form(&host(&[])), None);
    }
}
