//! The features of `core/src/features` through the routing table the
//! server builds (see `support`): sessions are plain channels, started and
//! ended as the connection does it, so each test sees exactly what every
//! resource would receive, stanza by stanza.

#[path = "../support/mod.rs"]
mod support;

mod archive;
mod blocking;
mod carbons;
mod csi;

use switchboard_xml::Element;

/// A stanza serialized with its attributes (and its children's) in
/// alphabetical order: attribute order carries no meaning in XML.
fn canonical(el: &Element) -> String {
    fn sort(el: &mut Element) {
        el.attrs.sort();
        for c in el.elements_mut() {
            sort(c);
        }
    }
    let mut el = el.clone();
    sort(&mut el);
    el.to_xml_string()
}

/// Compares stanzas as serialized, which shows the difference when they
/// differ.
#[track_caller]
fn same(got: &Element, want: &str) {
    assert_eq!(canonical(got), canonical(&support::xml(want)));
}

/// `got` compared with each of `want`, in order.
#[track_caller]
fn all_same(got: &[Element], want: &[&str]) {
    let got: Vec<String> = got.iter().map(canonical).collect();
    let want: Vec<String> = want.iter().map(|w| canonical(&support::xml(w))).collect();
    assert_eq!(got, want);
}
