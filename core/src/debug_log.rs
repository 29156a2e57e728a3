//! Masking for `-D` debug logging: every byte in and out is logged, but
//! SASL payloads and passwords never reach a log file.

/// Elements whose character data is a secret (SASL exchanges carry
/// passwords or proofs; `<password>` appears in in-band registration).
/// Every data-form `<value>` is masked too: a form submitted to a transport
/// may carry a legacy-network password in a field of any name, and a
/// submitted form does not say which fields were private.
const SECRET_ELEMENTS: [&str; 6] = [
    "auth",
    "response",
    "challenge",
    "success",
    "password",
    "value",
];

/// Renders bytes for the debug log with secret element contents replaced by
/// `***`. Works on raw fragments, which may be cut anywhere.
pub fn masked(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len());
    let mut rest: &str = &s;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let tail = &rest[lt..];
        let name_end = tail[1..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .map(|i| i + 1)
            .unwrap_or(tail.len());
        let name = &tail[1..name_end];
        let local = name.rsplit(':').next().unwrap_or(name);
        let Some(gt) = tail.find('>') else {
            out.push_str(tail);
            return out;
        };
        out.push_str(&tail[..=gt]);
        rest = &tail[gt + 1..];
        let self_closing = tail[..gt].ends_with('/');
        if SECRET_ELEMENTS.contains(&local) && !self_closing {
            // Skip to the next tag: the text in between is the secret.
            let next = rest.find('<').unwrap_or(rest.len());
            if next > 0 {
                out.push_str("***");
            }
            rest = &rest[next..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn sasl_payloads_are_hidden() {
        let m = masked(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
        assert!(!m.contains("AGFsaWNl"), "{m}");
        assert!(m.contains("***"));
        let m = masked(b"<query xmlns='jabber:iq:register'><username>a</username><password>hunter2</password></query>");
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("<username>a</username>"));
    }

    #[test]
    fn a_fragment_cut_after_the_tag_still_hides_the_secret() {
        let m = masked(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1iaXdz");
        assert!(!m.contains("Yz1iaXdz"), "{m}");
    }

    #[test]
    fn data_form_values_are_hidden() {
        let m = masked(
            b"<x xmlns='jabber:x:data' type='submit'><field var='nickserv'><value>s3cr3t</value></field></x>",
        );
        assert!(!m.contains("s3cr3t"), "{m}");
        assert!(m.contains("var='nickserv'"), "{m}");
    }
}
