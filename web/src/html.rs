//! Text into HTML: the XML layer's attribute escaping (`&`, `<`, `>`,
//! both quotes, and characters XML forbids replaced), which is safe in
//! HTML text and in quoted attribute values alike. Every value a page
//! shows goes through [`esc`].

/// `s` escaped for HTML text or a quoted attribute value.
pub(crate) fn esc(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    switchboard_xml::escape::escape_attr(s, &mut out);
    String::from_utf8(out).expect("escaping keeps UTF-8")
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("plain"), "plain");
    }
}
