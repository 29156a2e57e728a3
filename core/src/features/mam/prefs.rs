//! Archive preferences (XEP-0441, in the `urn:xmpp:mam:2` namespace):
//! which messages a user's archive keeps.
//!
//! - `default`: `always` (every message), `roster` (only with contacts in
//!   the user's roster) or `never`;
//! - `<always/>` and `<never/>`: JIDs archived, or not, whatever the
//!   default. A bare JID covers its resources; a JID on both lists is not
//!   archived.
//!
//! A user who never set preferences follows the host's `<archive
//! default>`. Set preferences are account data (`<archive-prefs/>` in the
//! spool namespace), kept whole: the default is stored too.

use switchboard_config::ArchiveDefault;
use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use super::NS;
use crate::stanza::StanzaError;

/// The account data document holding a user's preferences.
pub const DOC: &str = "archive-prefs";

/// A user's preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    pub default: ArchiveDefault,
    pub always: Vec<Jid>,
    pub never: Vec<Jid>,
}

impl Prefs {
    /// What a user who never chose gets.
    pub fn with_default(default: ArchiveDefault) -> Prefs {
        Prefs {
            default,
            always: Vec::new(),
            never: Vec::new(),
        }
    }

    /// Whether a message with `with` (the other party) is archived;
    /// `in_roster` says whether a bare JID is in the user's roster, for
    /// the `roster` default.
    pub fn archives(&self, with: &Jid, in_roster: impl FnOnce(&Jid) -> bool) -> bool {
        let covers = |list: &[Jid]| {
            list.iter()
                .any(|j| j == with || (j.resource().is_none() && *j == with.to_bare()))
        };
        if covers(&self.never) {
            return false;
        }
        if covers(&self.always) {
            return true;
        }
        match self.default {
            ArchiveDefault::Always => true,
            ArchiveDefault::Never => false,
            ArchiveDefault::Roster => in_roster(&with.to_bare()),
        }
    }

    /// The `<prefs/>` of a set request (XEP-0441 §2.2).
    pub fn from_request(prefs: &Element) -> Result<Prefs, StanzaError> {
        let default = match prefs.attr("default") {
            Some(d) => ArchiveDefault::parse(d).ok_or_else(|| {
                StanzaError::bad_request().with_text(format!(
                    "'{d}' is not a default: use always, roster or never"
                ))
            })?,
            None => {
                return Err(StanzaError::bad_request()
                    .with_text("<prefs/> needs a 'default' (always, roster or never)"))
            }
        };
        let list = |name: &str| -> Result<Vec<Jid>, StanzaError> {
            let mut out: Vec<Jid> = Vec::new();
            if let Some(l) = prefs.get_child(name, NS) {
                for j in l.elements().filter(|e| e.is("jid", NS)) {
                    let text = j.text();
                    let jid = Jid::parse(text.trim()).map_err(|e| {
                        StanzaError::jid_malformed()
                            .with_text(format!("'{}' is not a valid address ({e})", text.trim()))
                    })?;
                    if !out.contains(&jid) {
                        out.push(jid);
                    }
                }
            }
            Ok(out)
        };
        Ok(Prefs {
            default,
            always: list("always")?,
            never: list("never")?,
        })
    }

    /// `<prefs default><always/><never/></prefs>` as a client sees it.
    pub fn to_element(&self) -> Element {
        self.write(Element::new("prefs", NS), NS)
    }

    /// The stored form.
    pub fn to_doc(&self) -> Element {
        self.write(Element::new(DOC, ns::SPOOL), ns::SPOOL)
    }

    fn write(&self, mut el: Element, ns: &str) -> Element {
        el.set_attr("default", self.default.as_str());
        for (name, list) in [("always", &self.always), ("never", &self.never)] {
            let mut l = Element::new(name, ns);
            for j in list {
                l.append_child(Element::new("jid", ns).with_text(j.to_string()));
            }
            el.append_child(l);
        }
        el
    }

    /// Reads the stored form; `None` for one that does not read (it is
    /// reported, and the host's default applies).
    pub fn from_doc(doc: &Element) -> Option<Prefs> {
        let default = ArchiveDefault::parse(doc.attr("default")?)?;
        let list = |name: &str| -> Vec<Jid> {
            doc.get_child(name, ns::SPOOL)
                .map(|l| {
                    l.elements()
                        .filter_map(|j| Jid::parse(j.text().trim()).ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(Prefs {
            default,
            always: list("always"),
            never: list("never"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::{parse_document, Limits};

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn el(xml: &str) -> Element {
        parse_document(xml.as_bytes(), Limits::default()).unwrap()
    }

    #[test]
    fn lists_override_the_default_and_never_wins() {
        let p = Prefs {
            default: ArchiveDefault::Roster,
            always: vec![jid("boss@x"), jid("both@x")],
            never: vec![jid("gossip@x/phone"), jid("both@x")],
        };
        let in_roster = |j: &Jid| *j == jid("friend@x");
        assert!(p.archives(&jid("boss@x/desk"), in_roster));
        assert!(!p.archives(&jid("both@x"), in_roster));
        assert!(!p.archives(&jid("gossip@x/phone"), in_roster));
        assert!(
            !p.archives(&jid("gossip@x/desk"), in_roster),
            "not in the roster"
        );
        assert!(p.archives(&jid("friend@x/any"), in_roster));
        assert!(!p.archives(&jid("stranger@x"), in_roster));
        let never = Prefs::with_default(ArchiveDefault::Never);
        assert!(!never.archives(&jid("friend@x"), |_| true));
    }

    #[test]
    fn requests_parse_and_errors_are_exact() {
        let p = Prefs::from_request(&el(
            "<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>romeo@montague.lit</jid></always>\
             <never><jid>montague@montague.lit</jid></never></prefs>",
        ))
        .unwrap();
        assert_eq!(p.default, ArchiveDefault::Roster);
        assert_eq!(p.always, vec![jid("romeo@montague.lit")]);
        assert_eq!(p.never, vec![jid("montague@montague.lit")]);
        assert_eq!(Prefs::from_doc(&p.to_doc()), Some(p.clone()));
        assert_eq!(
            p.to_element().to_xml_string(),
            "<prefs xmlns=\"urn:xmpp:mam:2\" default=\"roster\"><always><jid>romeo@montague.lit</jid></always>\
             <never><jid>montague@montague.lit</jid></never></prefs>"
        );
        let e = Prefs::from_request(&el("<prefs xmlns='urn:xmpp:mam:2'/>")).unwrap_err();
        assert_eq!(
            (e.condition, e.text.as_deref()),
            (
                "bad-request",
                Some("<prefs/> needs a 'default' (always, roster or never)")
            )
        );
        let e = Prefs::from_request(&el("<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>"))
            .unwrap_err();
        assert_eq!(e.condition, "bad-request");
        let e = Prefs::from_request(&el(
            "<prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>@x</jid></never></prefs>",
        ))
        .unwrap_err();
        assert_eq!(e.condition, "jid-malformed");
    }
}
