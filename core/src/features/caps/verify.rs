//! The XEP-0115 verification string (§5.1) of a disco#info answer, its
//! hash, and the well-formedness checks of §5.4 that decide whether an
//! answer may be cached for everyone who advertises the same `ver`.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use switchboard_xml::element::XML_LANG;
use switchboard_xml::{ns, Element};

/// The most features one answer may list, and the longest feature, for it
/// to be kept: a client that claims more is not believed (its answer is
/// ill-formed here), so no one can fill the shared cache with a few huge
/// entries.
pub const MAX_FEATURES: usize = 512;
pub const MAX_FEATURE_BYTES: usize = 512;

/// Why an answer cannot be used (XEP-0115 §5.4 step 3.3–3.5, and the
/// bounds above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllFormed(pub &'static str);

/// What an entity says it supports, as read from a disco#info answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    vars: HashSet<String>,
}

impl Features {
    pub fn contains(&self, var: &str) -> bool {
        self.vars.contains(var)
    }

    /// Heap bytes held, roughly, for the cache's budget.
    pub fn weight(&self) -> usize {
        self.vars.iter().map(|v| v.len() + 32).sum::<usize>() + 64
    }

    #[cfg(test)]
    pub fn of(vars: &[&str]) -> Features {
        Features {
            vars: vars.iter().map(|v| v.to_string()).collect(),
        }
    }
}

/// Hashes `s` with a hash function of the IANA registry XEP-0115 names
/// (`sha-1`, `sha-256`, …), Base64-encoded; `None` for one this server
/// does not support (such an answer is kept for its sender only).
pub fn hash(algorithm: &str, s: &[u8]) -> Option<String> {
    let digest = match algorithm {
        "sha-1" => Sha1::digest(s).to_vec(),
        "sha-224" => Sha224::digest(s).to_vec(),
        "sha-256" => Sha256::digest(s).to_vec(),
        "sha-384" => Sha384::digest(s).to_vec(),
        "sha-512" => Sha512::digest(s).to_vec(),
        _ => return None,
    };
    Some(B64.encode(digest))
}

/// Whether `hash` names a function [`hash`] supports.
pub fn supported(algorithm: &str) -> bool {
    hash(algorithm, b"").is_some()
}

/// The features an answer lists, checked as §5.4 asks (no feature twice)
/// and within the bounds above.
pub fn features(query: &Element) -> Result<Features, IllFormed> {
    let mut vars = HashSet::new();
    for f in query.elements().filter(|e| e.is("feature", ns::DISCO_INFO)) {
        let Some(var) = f.attr("var") else {
            return Err(IllFormed("a feature without 'var'"));
        };
        if var.len() > MAX_FEATURE_BYTES {
            return Err(IllFormed("a feature too long to keep"));
        }
        if !vars.insert(var.to_owned()) {
            return Err(IllFormed("the same feature twice"));
        }
        if vars.len() > MAX_FEATURES {
            return Err(IllFormed("more features than the server keeps"));
        }
    }
    Ok(Features { vars })
}

/// The verification string S of a disco#info `<query/>` (XEP-0115 §5.1),
/// or why the answer is ill-formed (§5.4).
pub fn ver_string(query: &Element) -> Result<String, IllFormed> {
    let mut identities: Vec<String> = Vec::new();
    for id in query
        .elements()
        .filter(|e| e.is("identity", ns::DISCO_INFO))
    {
        let (Some(category), Some(kind)) = (id.attr("category"), id.attr("type")) else {
            return Err(IllFormed("an identity without category or type"));
        };
        let s = format!(
            "{category}/{kind}/{}/{}",
            id.attr(XML_LANG).unwrap_or_default(),
            id.attr("name").unwrap_or_default()
        );
        if identities.contains(&s) {
            return Err(IllFormed("the same identity twice"));
        }
        identities.push(s);
    }
    // i;octet collation: byte order, which `str` ordering is.
    identities.sort();
    let features = features(query)?;
    let mut vars: Vec<&String> = features.vars.iter().collect();
    vars.sort();
    let mut forms: Vec<(String, String)> = Vec::new();
    for x in query.elements().filter(|e| e.is("x", ns::DATA_FORMS)) {
        let Some((form_type, text)) = form_string(x)? else {
            continue;
        };
        if forms.iter().any(|(t, _)| *t == form_type) {
            return Err(IllFormed("two forms with the same FORM_TYPE"));
        }
        forms.push((form_type, text));
    }
    forms.sort();
    let mut s = String::new();
    for i in identities {
        s.push_str(&i);
        s.push('<');
    }
    for v in vars {
        s.push_str(v);
        s.push('<');
    }
    for (_, text) in forms {
        s.push_str(&text);
    }
    Ok(s)
}

/// One extended-information form's part of S: its FORM_TYPE, then each
/// other field's var and sorted values. `None` for a form to ignore (no
/// FORM_TYPE, or one that is not hidden: §5.4 step 3.6).
fn form_string(x: &Element) -> Result<Option<(String, String)>, IllFormed> {
    let fields: Vec<&Element> = x
        .elements()
        .filter(|f| f.is("field", ns::DATA_FORMS))
        .collect();
    let Some(ft) = fields.iter().find(|f| f.attr("var") == Some("FORM_TYPE")) else {
        return Ok(None);
    };
    if ft.attr("type") != Some("hidden") {
        return Ok(None);
    }
    let values = |f: &Element| -> Vec<String> {
        f.elements()
            .filter(|v| v.is("value", ns::DATA_FORMS))
            .map(Element::text)
            .collect()
    };
    let types = values(ft);
    let Some(form_type) = types.first().cloned() else {
        return Ok(None);
    };
    if types.iter().any(|t| *t != form_type) {
        return Err(IllFormed("a FORM_TYPE with different values"));
    }
    let mut rest: Vec<(String, Vec<String>)> = fields
        .iter()
        .filter(|f| f.attr("var") != Some("FORM_TYPE"))
        .map(|f| {
            let mut v = values(f);
            v.sort();
            (f.attr("var").unwrap_or_default().to_owned(), v)
        })
        .collect();
    rest.sort();
    let mut s = format!("{form_type}<");
    for (var, values) in rest {
        s.push_str(&var);
        s.push('<');
        for v in values {
            s.push_str(&v);
            s.push('<');
        }
    }
    Ok(Some((form_type, s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(category: &str, kind: &str, lang: Option<&str>, name: &str) -> Element {
        let mut e = Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", category)
            .with_attr("type", kind)
            .with_attr("name", name);
        if let Some(l) = lang {
            e.set_attr(XML_LANG, l);
        }
        e
    }

    fn feature(var: &str) -> Element {
        Element::new("feature", ns::DISCO_INFO).with_attr("var", var)
    }

    fn field(var: &str, kind: Option<&str>, values: &[&str]) -> Element {
        let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", var);
        if let Some(k) = kind {
            f.set_attr("type", k);
        }
        for v in values {
            f.append_child(Element::new("value", ns::DATA_FORMS).with_text(*v));
        }
        f
    }

    const BASIC: [&str; 4] = [
        "http://jabber.org/protocol/caps",
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "http://jabber.org/protocol/muc",
    ];

    /// XEP-0115 §5.2, the simple example.
    #[test]
    fn the_simple_example_of_the_xep() {
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(identity(
            "client",
            "pc",
            None,
            "Exodus 0.9.1",
        ));
        // Features in another order than sorted: the string sorts them.
        for f in BASIC.iter().rev() {
            q.append_child(feature(f));
        }
        let s = ver_string(&q).unwrap();
        assert_eq!(
            s,
            "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
        );
        assert_eq!(
            hash("sha-1", s.as_bytes()).unwrap(),
            "QgayPKawpkPSDYmwT/WM94uAlu0="
        );
    }

    /// XEP-0115 §5.3, the complex example: two languages and a form.
    #[test]
    fn the_complex_example_of_the_xep() {
        let mut q = Element::new("query", ns::DISCO_INFO)
            .with_child(identity("client", "pc", Some("en"), "Psi 0.11"))
            .with_child(identity("client", "pc", Some("el"), "Ψ 0.11"));
        for f in BASIC {
            q.append_child(feature(f));
        }
        q.append_child(
            Element::new("x", ns::DATA_FORMS)
                .with_attr("type", "result")
                .with_child(field(
                    "FORM_TYPE",
                    Some("hidden"),
                    &["urn:xmpp:dataforms:softwareinfo"],
                ))
                .with_child(field("ip_version", Some("text-multi"), &["ipv6", "ipv4"]))
                .with_child(field("os", None, &["Mac"]))
                .with_child(field("os_version", None, &["10.5.1"]))
                .with_child(field("software", None, &["Psi"]))
                .with_child(field("software_version", None, &["0.11"])),
        );
        let s = ver_string(&q).unwrap();
        assert_eq!(
            hash("sha-1", s.as_bytes()).unwrap(),
            "q07IKJEyjvHSyhy//CH0CxmKi8w="
        );
    }

    #[test]
    fn ill_formed_answers_are_refused_as_the_xep_says() {
        let twice = Element::new("query", ns::DISCO_INFO)
            .with_child(feature("urn:a"))
            .with_child(feature("urn:a"));
        assert_eq!(ver_string(&twice), Err(IllFormed("the same feature twice")));
        let ids = Element::new("query", ns::DISCO_INFO)
            .with_child(identity("client", "pc", None, "x"))
            .with_child(identity("client", "pc", None, "x"));
        assert_eq!(ver_string(&ids), Err(IllFormed("the same identity twice")));
        let form = |t: &str| {
            Element::new("x", ns::DATA_FORMS).with_child(field("FORM_TYPE", Some("hidden"), &[t]))
        };
        let forms = Element::new("query", ns::DISCO_INFO)
            .with_child(form("urn:f"))
            .with_child(form("urn:f"));
        assert_eq!(
            ver_string(&forms),
            Err(IllFormed("two forms with the same FORM_TYPE"))
        );
        // A form whose FORM_TYPE is not hidden is left out, not fatal.
        let visible = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("x", ns::DATA_FORMS).with_child(field("FORM_TYPE", None, &["urn:f"])),
        );
        assert_eq!(ver_string(&visible), Ok(String::new()));
        let mut many = Element::new("query", ns::DISCO_INFO);
        for i in 0..=MAX_FEATURES {
            many.append_child(feature(&format!("urn:f:{i}")));
        }
        assert!(features(&many).is_err());
    }

    #[test]
    fn unknown_hash_functions_are_not_supported() {
        assert!(supported("sha-1") && supported("sha-256") && supported("sha-512"));
        assert!(!supported("md5") && !supported(""));
    }
}
