//! Fast reconnect on a client stream: the Extensible SASL Profile
//! (XEP-0388) with Bind 2 (XEP-0386), inline stream-management resumption
//! (XEP-0198 via XEP-0388) and FAST tokens (XEP-0484). A phone that comes
//! back online sends one `<authenticate/>` carrying its token, its session
//! to resume (or a bind request with carbons and stream management to
//! enable), and gets one `<success/>` back: one round trip after TLS
//! instead of five.
//!
//! This file holds the pure parts the client machine (`c2s.rs`) uses:
//! what an `<authenticate/>` asks for ([`Authenticate::parse`]), the
//! `<authentication/>` stream feature ([`feature`]), and the state of a
//! login between the SASL success and the `<success/>` element
//! ([`Completion`]), which collects what each inline step answers.

use switchboard_xml::Element;

use super::sasl_exchange::SASL2_NS;
use super::sm;
use crate::fast;
use crate::sasl::ht::HtMechanism;

/// Bind 2's namespace (XEP-0386).
pub const BIND2_NS: &str = "urn:xmpp:bind:0";

/// Longest `<user-agent id/>` accepted (a UUID is 36 characters).
const MAX_AGENT_ID: usize = 128;

/// Longest Bind 2 `<tag/>` kept in the resource.
const MAX_TAG: usize = 64;

/// A Bind 2 request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindRequest {
    /// The client's `<tag/>` (its name, for the resource).
    pub tag: Option<String>,
    /// The features to enable inline: XEP-0198 `<enable/>`, and the
    /// elements of modules that take them (carbons, CSI).
    pub inline: Vec<Element>,
}

/// What an `<authenticate/>` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Authenticate {
    pub mechanism: String,
    /// The `<initial-response/>` text, `None` without one.
    pub initial: Option<String>,
    /// The `<user-agent id/>`: which client this is (FAST tokens and Bind 2
    /// session replacement key on it).
    pub agent_id: Option<String>,
    pub bind: Option<BindRequest>,
    /// XEP-0198 `<resume previd h/>` inline.
    pub resume: Option<(String, u32)>,
    /// XEP-0484 `<request-token mechanism/>`.
    pub request_token: Option<HtMechanism>,
    /// XEP-0484 `<fast/>`: this login uses a token; `invalidate` asks for
    /// the token to be forgotten afterwards.
    pub fast_invalidate: bool,
}

impl Authenticate {
    /// Parses an `<authenticate/>`; the error is the SASL condition to
    /// fail with and a text.
    pub fn parse(el: &Element) -> Result<Authenticate, (&'static str, String)> {
        let mechanism = el
            .attr("mechanism")
            .filter(|m| !m.is_empty())
            .ok_or(("invalid-mechanism", "no mechanism named".to_string()))?
            .to_string();
        let mut a = Authenticate {
            mechanism,
            ..Default::default()
        };
        for child in el.elements() {
            match (child.ns.as_str(), child.name.as_str()) {
                (SASL2_NS, "initial-response") => a.initial = Some(child.text()),
                (SASL2_NS, "user-agent") => {
                    let id = child.attr("id").unwrap_or("");
                    if id.is_empty() || id.len() > MAX_AGENT_ID {
                        return Err((
                            "malformed-request",
                            "the user-agent id must be 1 to 128 characters".into(),
                        ));
                    }
                    a.agent_id = Some(id.to_string());
                }
                (BIND2_NS, "bind") => {
                    let tag = child
                        .child_text("tag", BIND2_NS)
                        .map(|t| t.trim().chars().take(MAX_TAG).collect::<String>())
                        .filter(|t| !t.is_empty());
                    let inline = child
                        .elements()
                        .filter(|e| e.ns != BIND2_NS)
                        .cloned()
                        .collect();
                    a.bind = Some(BindRequest { tag, inline });
                }
                (sm::NS, "resume") => {
                    let previd = child.attr("previd").unwrap_or("").to_string();
                    let h = child.attr("h").and_then(|h| h.parse::<u32>().ok());
                    match h {
                        Some(h) if !previd.is_empty() => a.resume = Some((previd, h)),
                        _ => {
                            return Err((
                                "malformed-request",
                                "<resume/> needs a previd and an h".into(),
                            ))
                        }
                    }
                }
                (fast::NS, "request-token") => {
                    let m = child.attr("mechanism").and_then(HtMechanism::from_name);
                    a.request_token = Some(m.ok_or((
                        "malformed-request",
                        "<request-token/> names no FAST mechanism offered here".into(),
                    ))?);
                }
                (fast::NS, "fast") => {
                    a.fast_invalidate = matches!(child.attr("invalidate"), Some("true" | "1"));
                }
                // <supported/> is informational (XEP-0388 §2.3); anything
                // else is an extension this server does not know.
                _ => {}
            }
        }
        Ok(a)
    }
}

/// The `<authentication xmlns='urn:xmpp:sasl:2'/>` stream feature: the
/// mechanisms of `mechanisms` (RFC 6120's element, reused), and inline
/// Bind 2 (with the features it can enable), stream-management
/// resumption and FAST.
pub fn feature(
    mechanisms: &Element,
    bind2_inline: &[&'static str],
    stream_management: bool,
    fast_mechanisms: &[HtMechanism],
) -> Element {
    let mut auth = Element::new("authentication", SASL2_NS);
    for m in mechanisms.elements() {
        auth.append_child(Element::new("mechanism", SASL2_NS).with_text(m.text()));
    }
    let mut inline = Element::new("inline", SASL2_NS);
    let mut bind_inline = Element::new("inline", BIND2_NS);
    if stream_management {
        bind_inline.append_child(Element::new("feature", BIND2_NS).with_attr("var", sm::NS));
    }
    for var in bind2_inline {
        bind_inline.append_child(Element::new("feature", BIND2_NS).with_attr("var", *var));
    }
    inline.append_child(Element::new("bind", BIND2_NS).with_child(bind_inline));
    if stream_management {
        inline.append_child(Element::new("sm", sm::NS));
    }
    if !fast_mechanisms.is_empty() {
        let mut f = Element::new("fast", fast::NS);
        for m in fast_mechanisms {
            f.append_child(Element::new("mechanism", fast::NS).with_text(m.name()));
        }
        inline.append_child(f);
    }
    auth.append_child(inline);
    auth
}

/// Where a SASL2 login stands after the SASL exchange succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the driver to resume the session (or not).
    Resume,
    /// Waiting for the driver to have bound the session and enabled the
    /// inline features (it calls back when it reaches the marker action).
    Bind,
    /// Waiting for the driver to issue a FAST token.
    Token,
}

/// A login between the SASL success and `<success/>`.
#[derive(Debug, Default)]
pub struct Completion {
    pub request: Authenticate,
    /// The SASL mechanism's final data.
    pub additional: Option<Vec<u8>>,
    /// A token login that asks for rotation.
    pub rotate_token: Option<HtMechanism>,
    pub step: Option<Step>,
    /// Children of `<success/>` beside the identifier (`<resumed/>`, a
    /// failed resumption, `<token/>`).
    pub success_children: Vec<Element>,
    /// Children of `<bound/>` (`<enabled/>` and what modules answer).
    pub bound_children: Vec<Element>,
    /// Whether a resource was bound inline.
    pub bound: bool,
    /// Bytes to write after `<success/>` (stanzas a resumed session sends
    /// again).
    pub after: Vec<u8>,
}

impl Completion {
    /// The `<success/>` element for `identifier` (the full JID once bound
    /// or resumed, else the bare JID).
    pub fn success(&mut self, identifier: &str) -> Element {
        use base64::Engine as _;
        let mut el = Element::new("success", SASL2_NS);
        if let Some(data) = self.additional.take() {
            el.append_child(
                Element::new("additional-data", SASL2_NS)
                    .with_text(base64::engine::general_purpose::STANDARD.encode(data)),
            );
        }
        el.append_child(Element::new("authorization-identifier", SASL2_NS).with_text(identifier));
        for c in self.success_children.drain(..) {
            el.append_child(c);
        }
        if self.bound {
            let mut bound = Element::new("bound", BIND2_NS);
            for c in self.bound_children.drain(..) {
                bound.append_child(c);
            }
            el.append_child(bound);
        }
        el
    }
}

/// The mechanisms offered for FAST on a stream: the channel-bound one only
/// with a channel binding.
pub fn fast_mechanisms(channel_binding: bool) -> Vec<HtMechanism> {
    HtMechanism::ALL
        .into_iter()
        .filter(|m| channel_binding || !m.binds_channel())
        .collect()
}

/// The resource for a Bind 2 request: `tag/random`, as XEP-0386 §3
/// recommends, or just the random part when the tag is not a valid
/// resourcepart.
pub fn resource(tag: Option<&str>) -> String {
    let random = crate::ids::random_id();
    match tag.and_then(|t| switchboard_jid::normalize_resource(t).ok()) {
        Some(t) => format!("{t}/{random}"),
        None => random,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        switchboard_xml::parse_document(xml.as_bytes(), switchboard_xml::Limits::default()).unwrap()
    }

    #[test]
    fn an_authenticate_with_everything_inline_is_understood() {
        let a = Authenticate::parse(&parse(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'>\
               <initial-response>dXNlcgA=</initial-response>\
               <user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>X</software></user-agent>\
               <bind xmlns='urn:xmpp:bind:0'><tag>AwesomeXMPP</tag>\
                 <enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>\
               <resume xmlns='urn:xmpp:sm:3' previd='abc' h='7'/>\
               <request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-EXPR'/>\
               <fast xmlns='urn:xmpp:fast:0' count='3' invalidate='true'/>\
             </authenticate>",
        ))
        .unwrap();
        assert_eq!(a.mechanism, "HT-SHA-256-NONE");
        assert_eq!(a.initial.as_deref(), Some("dXNlcgA="));
        assert_eq!(
            a.agent_id.as_deref(),
            Some("d4565fa7-4d72-4749-b3d3-740edbf87770")
        );
        let bind = a.bind.unwrap();
        assert_eq!(bind.tag.as_deref(), Some("AwesomeXMPP"));
        assert_eq!(bind.inline.len(), 2);
        assert_eq!(a.resume, Some(("abc".into(), 7)));
        assert_eq!(a.request_token, Some(HtMechanism::Sha256Expr));
        assert!(a.fast_invalidate);
    }

    #[test]
    fn malformed_requests_name_their_condition() {
        for (xml, cond) in [
            ("<authenticate xmlns='urn:xmpp:sasl:2'/>", "invalid-mechanism"),
            (
                "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><user-agent/></authenticate>",
                "malformed-request",
            ),
            (
                "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><resume xmlns='urn:xmpp:sm:3' previd='x'/></authenticate>",
                "malformed-request",
            ),
            (
                "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-MD5'/></authenticate>",
                "malformed-request",
            ),
        ] {
            assert_eq!(Authenticate::parse(&parse(xml)).unwrap_err().0, cond, "{xml}");
        }
    }

    #[test]
    fn resources_carry_the_tag_when_it_is_valid() {
        let r = resource(Some("Conversations"));
        assert!(r.starts_with("Conversations/") && r.len() > 20, "{r}");
        let r = resource(Some("\u{7}bell"));
        assert!(!r.contains('/'), "{r}");
        assert_ne!(resource(None), resource(None));
    }
}
