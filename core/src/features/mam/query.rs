//! Archive queries (XEP-0313 §4) with paging (XEP-0059): the form a client
//! may ask for, reading a `<query/>` into an [`ArchiveQuery`], and turning
//! the store's page into result messages and the closing `<fin/>`.
//!
//! The form has the filters of `urn:xmpp:mam:2` and its `#extended`
//! feature: `with`, `start`, `end`, `before-id`, `after-id` and `ids`. A
//! field the form does not have is `feature-not-implemented` (§4.1.5); a
//! value that does not read (a date, a JID, `<max/>`) is `bad-request`.
//! Paging: `<max/>` (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]),
//! `<after/>`, `<before/>` (empty: the last page), and `<index/>` (the
//! page starting at that position of the result set; past its end, an
//! empty page). `<flip-page/>` sends a page newest first.

use switchboard_jid::Jid;
use switchboard_service::forms::{Field, FieldKind, Form, FormError, FormKind};
use switchboard_service::time;
use switchboard_spool::store::{ArchivePage, ArchiveQuery};
use switchboard_xml::{ns, Element};

use super::NS;
use crate::features::forward;
use crate::stanza::StanzaError;

/// `http://jabber.org/protocol/rsm`.
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// A page's size when the client does not say.
pub const DEFAULT_PAGE: usize = 50;
/// The largest page served, whatever the client asks.
pub const MAX_PAGE: usize = 250;

const FIELDS: &[&str] = &[
    "FORM_TYPE",
    "with",
    "start",
    "end",
    "before-id",
    "after-id",
    "ids",
];

/// The query form (§4.1.5), as answered to a `<query/>` get.
pub fn form() -> Element {
    let mut x = Form::new(FormKind::Form)
        .with_field(Field::form_type(NS))
        .with_field(Field::new("with", FieldKind::JidSingle))
        .with_field(Field::new("start", FieldKind::TextSingle))
        .with_field(Field::new("end", FieldKind::TextSingle))
        .with_field(Field::new("before-id", FieldKind::TextSingle))
        .with_field(Field::new("after-id", FieldKind::TextSingle))
        .with_field(Field::new("ids", FieldKind::ListMulti))
        .to_element();
    // The list of ids is open: any id may be given (XEP-0122).
    if let Some(ids) = x
        .elements_mut()
        .find(|f| f.name == "field" && f.attr("var") == Some("ids"))
    {
        ids.append_child(
            Element::new("validate", "http://jabber.org/protocol/xdata-validate")
                .with_attr("datatype", "xs:string")
                .with_child(Element::new(
                    "open",
                    "http://jabber.org/protocol/xdata-validate",
                )),
        );
    }
    Element::new("query", NS).with_child(x)
}

/// A query as asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub query: ArchiveQuery,
    /// The client's `queryid`, repeated in every result.
    pub queryid: Option<String>,
    /// Send the page newest first.
    pub flip: bool,
    /// The RSM `<index/>` asked for, if any.
    pub index: Option<usize>,
}

fn bad(text: impl Into<String>) -> StanzaError {
    StanzaError::bad_request().with_text(text)
}

fn form_error(e: FormError) -> StanzaError {
    let mut err = e.to_stanza_error();
    // A query form that does not read is a bad request, whichever way.
    err.condition = "bad-request";
    err.kind = crate::stanza::ErrorType::Modify;
    err
}

/// Reads a `<query/>` set.
pub fn parse(q: &Element) -> Result<Request, StanzaError> {
    let mut req = Request {
        query: ArchiveQuery {
            max: DEFAULT_PAGE,
            ..ArchiveQuery::default()
        },
        queryid: q.attr("queryid").map(str::to_string),
        flip: q.get_child("flip-page", NS).is_some(),
        index: None,
    };
    if let Some(x) = q.get_child("x", ns::DATA_FORMS) {
        let submitted = Form::parse(x).map_err(form_error)?;
        // Clients do not always mark FORM_TYPE hidden in what they send.
        if let Some(t) = submitted.value("FORM_TYPE") {
            if t != NS {
                return Err(bad(format!("the form is a '{t}' form, not a '{NS}' one")));
            }
        }
        if let Some(f) = submitted
            .fields
            .iter()
            .find(|f| !FIELDS.contains(&f.var.as_str()))
        {
            return Err(StanzaError::feature_not_implemented()
                .with_text(format!("the archive has no '{}' field", f.var)));
        }
        let mut template = Form::new(FormKind::Form).with_field(Field::form_type(NS));
        for (var, kind) in [
            ("with", FieldKind::JidSingle),
            ("start", FieldKind::TextSingle),
            ("end", FieldKind::TextSingle),
            ("before-id", FieldKind::TextSingle),
            ("after-id", FieldKind::TextSingle),
            ("ids", FieldKind::ListMulti),
        ] {
            template = template.with_field(Field::new(var, kind));
        }
        for (k, v) in template
            .validate_submission(&submitted)
            .map_err(form_error)?
        {
            let when = |v: &str| {
                time::parse(v)
                    .ok_or_else(|| bad(format!("'{k}' is not an XEP-0082 date-time: \"{v}\"")))
            };
            match k.as_str() {
                "with" => req.query.with = Some(v),
                "start" => req.query.start = Some(when(&v)?),
                "end" => req.query.end = Some(when(&v)?),
                "before-id" => req.query.before_id = Some(v),
                "after-id" => req.query.after_id = Some(v),
                "ids" if !req.query.ids.contains(&v) => req.query.ids.push(v),
                _ => {}
            }
        }
    }
    if let Some(set) = q.get_child("set", RSM) {
        if let Some(m) = set.child_text("max", RSM) {
            req.query.max = m
                .trim()
                .parse::<usize>()
                .map_err(|_| {
                    bad(format!(
                        "<max/> must be a whole number, not \"{}\"",
                        m.trim()
                    ))
                })?
                .min(MAX_PAGE);
        }
        let both = |field: &mut Option<String>, id: String, name: &str| {
            match field {
                Some(other) if *other != id => {
                    return Err(bad(format!(
                        "<{name}/> and the form's '{name}-id' disagree"
                    )))
                }
                _ => *field = Some(id),
            }
            Ok(())
        };
        if let Some(a) = set.child_text("after", RSM) {
            both(&mut req.query.after_id, a, "after")?;
        }
        if let Some(b) = set.get_child("before", RSM) {
            let id = b.text();
            if !id.is_empty() {
                both(&mut req.query.before_id, id, "before")?;
            }
            // RSM's <before/> pages backwards from there (or the end).
            req.query.from_end = true;
        }
        if let Some(i) = set.child_text("index", RSM) {
            if set.get_child("after", RSM).is_some() || set.get_child("before", RSM).is_some() {
                return Err(bad(
                    "<index/> cannot be combined with <after/> or <before/>",
                ));
            }
            let i = i.trim().parse::<usize>().map_err(|_| {
                bad(format!(
                    "<index/> must be a whole number, not \"{}\"",
                    i.trim()
                ))
            })?;
            req.query.skip = i;
            req.index = Some(i);
        }
    }
    if let Some(w) = &req.query.with {
        // Normalized as the archive stores its partners.
        req.query.with = Some(
            Jid::parse(w)
                .map_err(|e| bad(format!("'with': {e}")))?
                .to_string(),
        );
    }
    Ok(req)
}

/// The result messages of a page, in the order to send them, addressed
/// from the archive (`owner`) to the requesting resource.
pub fn results(req: &Request, page: &ArchivePage, owner: &str, to: &str) -> Vec<Element> {
    let mut out: Vec<Element> = page
        .entries
        .iter()
        .map(|e| {
            let mut result = Element::new("result", NS).with_attr("id", e.id.clone());
            if let Some(q) = &req.queryid {
                result.set_attr("queryid", q.clone());
            }
            result.append_child(forward::forwarded(
                e.stanza.clone(),
                Some(time::stamp(e.timestamp)),
            ));
            Element::new("message", ns::CLIENT)
                .with_attr("from", owner)
                .with_attr("to", to)
                .with_child(result)
        })
        .collect();
    if req.flip {
        out.reverse();
    }
    out
}

/// The closing `<fin/>` (§4.3): the page's first and last ids, the size of
/// the result set, and whether the page reaches its end.
pub fn fin(req: &Request, page: &ArchivePage) -> Element {
    let mut set = Element::new("set", RSM);
    if let (Some(f), Some(l)) = (page.entries.first(), page.entries.last()) {
        let mut first = Element::new("first", RSM).with_text(f.id.clone());
        // The first item's position in the result set (optional in
        // XEP-0313 §4.3), given where it is known without counting: asked
        // for, or the start. Not on pages read backwards: clients paging
        // back take an index that reaches the count as the end of the
        // result set (slixmpp 1.8's iterator stops after one page).
        let q = &req.query;
        let index = match (req.index, q.from_end, &q.after_id, &q.before_id) {
            (Some(i), ..) => Some(i),
            (None, false, None, None) => Some(0),
            _ => None,
        };
        if let Some(i) = index.filter(|_| q.ids.is_empty()) {
            first.set_attr("index", i.to_string());
        }
        set.append_child(first);
        set.append_child(Element::new("last", RSM).with_text(l.id.clone()));
    }
    if let Some(c) = page.count {
        set.append_child(Element::new("count", RSM).with_text(c.to_string()));
    }
    let mut fin = Element::new("fin", NS).with_child(set);
    if page.complete {
        fin.set_attr("complete", "true");
    }
    fin
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_spool::store::ArchiveEntry;
    use switchboard_xml::{parse_document, Limits};

    fn el(xml: &str) -> Element {
        parse_document(xml.as_bytes(), Limits::default()).unwrap()
    }

    fn query(inner: &str) -> Result<Request, StanzaError> {
        parse(&el(&format!(
            "<query xmlns='urn:xmpp:mam:2' queryid='q1'>{inner}</query>"
        )))
    }

    fn form_of(fields: &str) -> String {
        format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>urn:xmpp:mam:2</value></field>{fields}</x>"
        )
    }

    #[test]
    fn filters_and_paging_read_into_the_store_query() {
        let r = query(&format!(
            "{}<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set><flip-page/>",
            form_of(
                "<field var='with'><value>Juliet@Capulet.lit</value></field>\
                 <field var='start'><value>2010-06-07T00:00:00Z</value></field>\
                 <field var='ids'><value>a</value><value>b</value></field>"
            )
        ))
        .unwrap();
        assert_eq!(r.queryid.as_deref(), Some("q1"));
        assert!(r.flip);
        assert_eq!(r.query.with.as_deref(), Some("juliet@capulet.lit"));
        assert_eq!(r.query.start, Some(1_275_868_800_000_000));
        assert_eq!(r.query.ids, ["a", "b"]);
        assert_eq!(r.query.max, 10);
        assert!(r.query.from_end);
        assert_eq!(r.query.before_id, None);

        let r = query(&form_of("<field var='before-id'><value>m9</value></field>")).unwrap();
        assert_eq!(r.query.before_id.as_deref(), Some("m9"));
        assert!(!r.query.from_end, "before-id does not page backwards");
        assert_eq!(r.query.max, DEFAULT_PAGE);

        let r = query(
            "<set xmlns='http://jabber.org/protocol/rsm'><max>9999</max><index>30</index></set>",
        )
        .unwrap();
        assert_eq!(
            (r.query.max, r.query.skip, r.index),
            (MAX_PAGE, 30, Some(30))
        );
    }

    #[test]
    fn malformed_queries_are_refused_exactly() {
        let cases = [
            (
                form_of("<field var='start'><value>yesterday</value></field>"),
                "bad-request",
                "'start' is not an XEP-0082 date-time: \"yesterday\"",
            ),
            (
                form_of("<field var='colour'><value>red</value></field>"),
                "feature-not-implemented",
                "the archive has no 'colour' field",
            ),
            (
                "<set xmlns='http://jabber.org/protocol/rsm'><max>ten</max></set>".into(),
                "bad-request",
                "<max/> must be a whole number, not \"ten\"",
            ),
            (
                "<set xmlns='http://jabber.org/protocol/rsm'><after>a</after><index>3</index></set>".into(),
                "bad-request",
                "<index/> cannot be combined with <after/> or <before/>",
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:example</value></field></x>"
                    .into(),
                "bad-request",
                "the form is a 'urn:example' form, not a 'urn:xmpp:mam:2' one",
            ),
        ];
        for (inner, condition, text) in cases {
            let e = query(&inner).unwrap_err();
            assert_eq!(
                (e.condition, e.text.as_deref()),
                (condition, Some(text)),
                "{inner}"
            );
        }
        let e = query(&form_of("<field var='with'><value>@nobody</value></field>")).unwrap_err();
        assert_eq!(e.condition, "bad-request");
    }

    fn entry(id: &str) -> ArchiveEntry {
        ArchiveEntry {
            id: id.into(),
            timestamp: 1_714_564_800_000_000,
            with: "bob@x".into(),
            stanza: el("<message xmlns='jabber:client' from='bob@x/r' to='alice@x' type='chat'><body>hi</body></message>"),
        }
    }

    #[test]
    fn results_are_forwarded_with_their_stamp_and_fin_closes_the_page() {
        let req = query("<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>")
            .unwrap();
        let page = ArchivePage {
            entries: vec![entry("m2"), entry("m3")],
            complete: false,
            count: Some(3),
        };
        let msgs = results(&req, &page, "alice@x", "alice@x/desk");
        assert_eq!(
            msgs[0].to_xml_string(),
            "<message xmlns=\"jabber:client\" from=\"alice@x\" to=\"alice@x/desk\"><result xmlns=\"urn:xmpp:mam:2\" \
             id=\"m2\" queryid=\"q1\"><forwarded xmlns=\"urn:xmpp:forward:0\"><delay xmlns=\"urn:xmpp:delay\" \
             stamp=\"2024-05-01T12:00:00.000000Z\"/><message xmlns=\"jabber:client\" from=\"bob@x/r\" to=\"alice@x\" \
             type=\"chat\"><body>hi</body></message></forwarded></result></message>"
        );
        assert_eq!(
            fin(&req, &page).to_xml_string(),
            "<fin xmlns=\"urn:xmpp:mam:2\"><set xmlns=\"http://jabber.org/protocol/rsm\"><first>m2</first>\
             <last>m3</last><count>3</count></set></fin>"
        );
        let empty = ArchivePage {
            entries: vec![],
            complete: true,
            count: Some(3),
        };
        assert_eq!(
            fin(&req, &empty).to_xml_string(),
            "<fin xmlns=\"urn:xmpp:mam:2\" complete=\"true\"><set xmlns=\"http://jabber.org/protocol/rsm\">\
             <count>3</count></set></fin>"
        );
        let flipped = Request { flip: true, ..req };
        let msgs = results(&flipped, &page, "alice@x", "alice@x/desk");
        assert_eq!(
            msgs[0].get_child("result", NS).unwrap().attr("id"),
            Some("m3")
        );
    }
}
