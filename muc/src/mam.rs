//! The room archive queried with MAM (XEP-0313) and paged with RSM
//! (XEP-0059).
//!
//! Who may read it: anyone who could enter (members in a members-only
//! room, never the banned), as Prosody's `mod_muc_mam` decides. The
//! archive holds every groupchat message with a body, by its stanza-id
//! (XEP-0359), with `with` the sender's occupant JID. Queries go to the
//! `ArchiveStore` through the driver; [`finish`] turns the page into the
//! result messages and the closing `<fin/>`.

use switchboard_jid::Jid;
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::stanza::{error_reply, iq_result, ErrorType, StanzaError};
use switchboard_spool::store::{ArchivePage, ArchiveQuery};
use switchboard_xml::Element;

use crate::muc::{item_not_found, Muc};
use crate::ns;
use crate::output::{Answer, ArchiveOp, Out, Ticket};
use crate::roles::Affiliation;

/// A page's size when the client does not say.
pub const DEFAULT_PAGE: usize = 50;
/// The largest page served.
pub const MAX_PAGE: usize = 250;

fn query_form() -> Form {
    Form::new(FormKind::Form)
        .with_field(Field::form_type(ns::MAM))
        .with_field(Field::new("with", FieldKind::JidSingle))
        .with_field(Field::new("start", FieldKind::TextSingle))
        .with_field(Field::new("end", FieldKind::TextSingle))
        .with_field(Field::new("before-id", FieldKind::TextSingle))
        .with_field(Field::new("after-id", FieldKind::TextSingle))
        .with_field(Field::new("ids", FieldKind::TextMulti))
}

impl Muc {
    pub(crate) fn mam_iq(
        &mut self,
        iq: &Element,
        q: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let room = self.rooms.get(local).expect("checked by the caller");
        let aff = self.env.affiliation(room, &from.to_bare());
        if aff == Affiliation::Outcast || (room.config.members_only && aff < Affiliation::Member) {
            out.send_opt(error_reply(
                iq,
                &StanzaError::forbidden()
                    .with_text("only those who may enter the room may read its archive"),
            ));
            return;
        }
        if iq.attr("type") == Some("get") {
            let q = Element::new("query", ns::MAM).with_child(query_form().to_element());
            out.send(iq_result(iq, Some(q)));
            return;
        }
        if !room.config.archiving {
            out.send_opt(error_reply(
                iq,
                &StanzaError::feature_not_implemented()
                    .with_text("this room does not archive its messages"),
            ));
            return;
        }
        match parse_query(q) {
            Ok(query) => out.archive.push(ArchiveOp::Query {
                owner: room.jid.clone(),
                query,
                ticket: Ticket::Mam { iq: iq.clone() },
            }),
            Err(e) => out.send_opt(error_reply(iq, &e)),
        }
    }

    /// Finishes work that waited for the archive.
    pub fn answer(&mut self, ticket: Ticket, answer: Answer, now: u64) -> Out {
        let mut out = Out::default();
        match ticket {
            Ticket::Mam { iq } => match answer {
                Ok(Some(page)) => out.stanzas.extend(finish(&iq, &page)),
                Ok(None) => out.send_opt(error_reply(
                    &iq,
                    &item_not_found("no message in the archive has that id"),
                )),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read a room archive");
                    out.send_opt(error_reply(
                        &iq,
                        &StanzaError::new("internal-server-error", ErrorType::Wait)
                            .with_text("the archive cannot be read now; try again later"),
                    ))
                }
            },
            Ticket::Moderate { iq, room, id } => {
                self.moderation_found(iq, &room, &id, answer, now, &mut out)
            }
        }
        out
    }
}

/// The filters and paging of a query.
fn parse_query(q: &Element) -> Result<ArchiveQuery, StanzaError> {
    let mut query = ArchiveQuery {
        max: DEFAULT_PAGE,
        ..ArchiveQuery::default()
    };
    if let Some(x) = q.get_child("x", ns::DATA_FORMS) {
        let form = Form::parse(x)?;
        let pairs = query_form().validate_submission(&form)?;
        for (k, v) in pairs {
            let bad_time = || {
                StanzaError::bad_request().with_text(format!("'{k}' is not an XEP-0082 date-time"))
            };
            match k.as_str() {
                "with" => query.with = Some(v),
                "start" => query.start = Some(crate::time::parse(&v).ok_or_else(bad_time)?),
                "end" => query.end = Some(crate::time::parse(&v).ok_or_else(bad_time)?),
                "before-id" => {
                    query.before_id = Some(v);
                    query.from_end = true;
                }
                "after-id" => query.after_id = Some(v),
                "ids" => {
                    query.ids = v
                        .lines()
                        .map(str::to_string)
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                _ => {}
            }
        }
    }
    if let Some(set) = q.get_child("set", ns::RSM) {
        if let Some(m) = set.child_text("max", ns::RSM) {
            query.max = m
                .trim()
                .parse::<usize>()
                .map_err(|_| StanzaError::bad_request().with_text("<max/> is not a number"))?
                .min(MAX_PAGE);
        }
        if let Some(a) = set.child_text("after", ns::RSM) {
            query.after_id = Some(a);
        }
        if let Some(b) = set.get_child("before", ns::RSM) {
            let id = b.text();
            if !id.is_empty() {
                query.before_id = Some(id);
            }
            query.from_end = true;
        }
        if set.get_child("index", ns::RSM).is_some() {
            return Err(StanzaError::feature_not_implemented()
                .with_text("paging by <index/> is not supported"));
        }
    }
    Ok(query)
}

/// The result messages of a page and the closing IQ (XEP-0313 §4.2).
pub fn finish(iq: &Element, page: &ArchivePage) -> Vec<Element> {
    let room = iq.attr("to").unwrap_or("").to_string();
    let requester = iq.attr("from").unwrap_or("").to_string();
    let queryid = iq
        .first_element()
        .and_then(|q| q.attr("queryid"))
        .map(str::to_string);
    let mut v = Vec::new();
    for e in &page.entries {
        let mut result = Element::new("result", ns::MAM).with_attr("id", e.id.clone());
        if let Some(q) = &queryid {
            result.set_attr("queryid", q.clone());
        }
        let mut stanza = e.stanza.clone();
        stanza.remove_attr("to");
        result.append_child(
            Element::new("forwarded", ns::FORWARD)
                .with_child(
                    Element::new("delay", ns::DELAY)
                        .with_attr("stamp", crate::time::stamp(e.timestamp)),
                )
                .with_child(stanza),
        );
        v.push(
            Element::new("message", ns::CLIENT)
                .with_attr("from", room.clone())
                .with_attr("to", requester.clone())
                .with_child(result),
        );
    }
    let mut set = Element::new("set", ns::RSM);
    if let (Some(f), Some(l)) = (page.entries.first(), page.entries.last()) {
        set.append_child(Element::new("first", ns::RSM).with_text(f.id.clone()));
        set.append_child(Element::new("last", ns::RSM).with_text(l.id.clone()));
    }
    if let Some(c) = page.count {
        set.append_child(Element::new("count", ns::RSM).with_text(c.to_string()));
    }
    let mut fin = Element::new("fin", ns::MAM).with_child(set);
    if page.complete {
        fin.set_attr("complete", "true");
    }
    if let Some(q) = &queryid {
        fin.set_attr("queryid", q.clone());
    }
    v.push(iq_result(iq, Some(fin)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::{parse_document, Limits};

    fn q(s: &str) -> Element {
        parse_document(s.as_bytes(), Limits::default()).unwrap()
    }

    #[test]
    fn filters_and_paging_parse() {
        let query = parse_query(&q(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>\
             <field var='start'><value>2024-05-01T12:00:00Z</value></field>\
             <field var='with'><value>room@conf/Romeo</value></field></x>\
             <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set></query>",
        ))
        .unwrap();
        assert_eq!(query.start, Some(1_714_564_800_000_000));
        assert_eq!(query.with.as_deref(), Some("room@conf/Romeo"));
        assert_eq!(query.max, 10);
        assert!(query.from_end);
        let e = parse_query(&q(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='end'><value>yesterday</value></field></x></query>",
        ))
        .unwrap_err();
        assert_eq!(e.condition, "bad-request");
        assert_eq!(
            e.text.as_deref(),
            Some("'end' is not an XEP-0082 date-time")
        );
    }
}
