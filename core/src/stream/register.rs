//! XEP-0077 In-Band Registration before authentication: the registration
//! form, and reading a submitted one. The spool write and the per-address
//! throttle are the driver's (they are I/O and clock); password change and
//! account removal after login arrive with the IM issue.

use switchboard_jid::normalize_localpart;
use switchboard_xml::{ns, Element};

use crate::stanza::{ErrorType, StanzaError};

/// The stream feature advertising registration (XEP-0077 §4).
pub const FEATURE_NS: &str = "http://jabber.org/features/iq-register";

/// The registration form: legacy fields, which every client understands.
pub fn form() -> Element {
    Element::new("query", ns::REGISTER)
        .with_child(
            Element::new("instructions", ns::REGISTER)
                .with_text("Choose a user name and password to register with this server."),
        )
        .with_child(Element::new("username", ns::REGISTER))
        .with_child(Element::new("password", ns::REGISTER))
}

/// A registration request read from `<query/>`: the normalized user name
/// and the password as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub user: String,
    pub password: String,
}

/// Reads a submitted form. Missing fields are `not-acceptable` (XEP-0077
/// §3.1); a user name that cannot be a localpart is `jid-malformed`.
pub fn parse(query: &Element) -> Result<Request, StanzaError> {
    if query.get_child("remove", ns::REGISTER).is_some() {
        return Err(StanzaError::new("not-authorized", ErrorType::Auth)
            .with_text("log in to remove an account"));
    }
    let field = |name| {
        query
            .child_text(name, ns::REGISTER)
            .filter(|v| !v.is_empty())
    };
    let (Some(user), Some(password)) = (field("username"), field("password")) else {
        return Err(StanzaError::new("not-acceptable", ErrorType::Modify)
            .with_text("both a user name and a password are required"));
    };
    let user = normalize_localpart(&user).map_err(|e| {
        StanzaError::jid_malformed().with_text(format!("that user name cannot be used: {e}"))
    })?;
    Ok(Request { user, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(children: &[(&str, &str)]) -> Element {
        let mut q = Element::new("query", ns::REGISTER);
        for (n, v) in children {
            q.append_child(Element::new(*n, ns::REGISTER).with_text(*v));
        }
        q
    }

    #[test]
    fn a_complete_form_is_read_and_the_name_normalized() {
        let r = parse(&query(&[("username", "Alice"), ("password", "pw")])).unwrap();
        assert_eq!(
            r,
            Request {
                user: "alice".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn missing_fields_are_not_acceptable() {
        assert_eq!(
            parse(&query(&[("username", "a")])).unwrap_err().condition,
            "not-acceptable"
        );
        assert_eq!(
            parse(&query(&[("username", "a"), ("password", "")]))
                .unwrap_err()
                .condition,
            "not-acceptable"
        );
    }

    #[test]
    fn an_impossible_name_is_jid_malformed() {
        assert_eq!(
            parse(&query(&[("username", "a@b"), ("password", "x")]))
                .unwrap_err()
                .condition,
            "jid-malformed"
        );
    }
}
