//! Message archives: rows of `archive` in archive order (`seq`). A query
//! is answered in SQL with the same reading as `archive_query.rs` in the
//! spool crate (the conformance suite holds both to it): the window is
//! `seq` between the positions of `after_id` and `before_id` (the first
//! entry with that id), the page is `max + 1` rows of it in the direction
//! of paging after `skip` (one more than asked says the page is not
//! complete), the count a `count(*)` over the filters. A `with` filter
//! without `/` compares `with_bare`, one with `/` compares `with_full`,
//! each with an index leading from (owner, with, seq).

use switchboard_spool::store::rules;
use switchboard_spool::store::{
    ArchiveEntry, ArchiveOwner, ArchivePage, ArchiveQuery, ArchiveStore, BoxFuture, StoreResult,
};
use switchboard_xml::Element;

use crate::errors::corrupt;
use crate::names::enc;
use crate::pool::Conn;
use crate::{name, parse_xml, to_i64, xml_text, PgStores};

/// The domain an owner's archive expires with.
fn domain(owner: &str) -> &str {
    owner.split_once('@').map_or(owner, |(_, d)| d)
}

fn bare(with: &str) -> &str {
    with.split_once('/').map_or(with, |(b, _)| b)
}

/// The SQL of a page or a count, one static text per shape so that each
/// is prepared once and planned with its index.
macro_rules! shapes {
    ($with:literal) => {
        [
            concat!(
                "SELECT id, ts, with_full, stanza FROM archive WHERE owner = $1 ",
                $with,
                " AND ($3::bigint IS NULL OR ts >= $3) AND ($4::bigint IS NULL OR ts <= $4) \
                 AND ($5::text[] IS NULL OR id = ANY($5)) AND seq > $6 AND seq < $7 \
                 ORDER BY seq OFFSET $8 LIMIT $9"
            ),
            concat!(
                "SELECT id, ts, with_full, stanza FROM archive WHERE owner = $1 ",
                $with,
                " AND ($3::bigint IS NULL OR ts >= $3) AND ($4::bigint IS NULL OR ts <= $4) \
                 AND ($5::text[] IS NULL OR id = ANY($5)) AND seq > $6 AND seq < $7 \
                 ORDER BY seq DESC OFFSET $8 LIMIT $9"
            ),
            concat!(
                "SELECT count(*) FROM archive WHERE owner = $1 ",
                $with,
                " AND ($3::bigint IS NULL OR ts >= $3) AND ($4::bigint IS NULL OR ts <= $4) \
                 AND ($5::text[] IS NULL OR id = ANY($5))"
            ),
        ]
    };
}

/// [forward page, backward page, count] for: no `with`, a bare one, a
/// full one. `$2` is unused without a `with` (and always sent).
const NO_WITH: [&str; 3] = shapes!("AND $2::text IS NULL");
const BARE_WITH: [&str; 3] = shapes!("AND with_bare = $2");
const FULL_WITH: [&str; 3] = shapes!("AND with_full = $2");

/// Removes an owner's archive and its count, in one statement.
pub(crate) async fn remove_owner(c: &mut Conn<'_>, owner: &str) -> StoreResult<()> {
    c.execute(
        "removing an archive",
        "WITH d AS (DELETE FROM archive WHERE owner = $1) \
         DELETE FROM archive_counts WHERE owner = $1",
        &[&owner],
    )
    .await?;
    Ok(())
}

async fn position(c: &mut Conn<'_>, owner: &str, id: &str) -> StoreResult<Option<i64>> {
    Ok(c.query_opt(
        "finding an archive id",
        "SELECT min(seq) FROM archive WHERE owner = $1 AND id = $2",
        &[&owner, &enc(id)],
    )
    .await?
    .and_then(|r| r.get::<_, Option<i64>>(0)))
}

impl PgStores {
    async fn archive_append(&self, owner: &str, entries: &[ArchiveEntry]) -> StoreResult<()> {
        let mut ids = Vec::with_capacity(entries.len());
        let mut ts = Vec::with_capacity(entries.len());
        let mut full = Vec::with_capacity(entries.len());
        let mut bares = Vec::with_capacity(entries.len());
        let mut stanzas = Vec::with_capacity(entries.len());
        for e in entries {
            let text = xml_text(&e.stanza);
            rules::stanza(&e.stanza, text.len())?;
            ids.push(enc(&e.id).into_owned());
            ts.push(to_i64("an archive timestamp", e.timestamp)?);
            full.push(enc(&e.with).into_owned());
            bares.push(enc(bare(&e.with)).into_owned());
            stanzas.push(text);
        }
        if entries.is_empty() {
            return Ok(());
        }
        let mut c = self.pool.get().await?;
        // One statement: one transaction, rows in order of `seq`, and the
        // archive's count.
        c.execute(
            "archiving",
            "WITH ins AS ( \
               INSERT INTO archive (owner, domain, id, ts, with_full, with_bare, stanza) \
               SELECT $1, $2, e.id, e.ts, e.with_full, e.with_bare, e.stanza \
               FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[]) \
                 WITH ORDINALITY AS e(id, ts, with_full, with_bare, stanza, n) \
               ORDER BY e.n) \
             INSERT INTO archive_counts (owner, entries) VALUES ($1, $8) \
             ON CONFLICT (owner) DO UPDATE SET entries = archive_counts.entries + EXCLUDED.entries",
            &[
                &enc(owner),
                &enc(domain(owner)),
                &ids,
                &ts,
                &full,
                &bares,
                &stanzas,
                &(entries.len() as i64),
            ],
        )
        .await?;
        Ok(())
    }

    async fn archive_query(
        &self,
        owner: &str,
        q: &ArchiveQuery,
    ) -> StoreResult<Option<ArchivePage>> {
        let owner = enc(owner);
        let mut c = self.pool.get().await?;
        // One snapshot for the positions, the page and the count.
        c.begin_snapshot().await?;
        let lo = match &q.after_id {
            Some(id) => match position(&mut c, &owner, id).await? {
                Some(p) => p,
                None => {
                    c.rollback().await?;
                    return Ok(None);
                }
            },
            None => 0,
        };
        let hi = match &q.before_id {
            Some(id) => match position(&mut c, &owner, id).await? {
                Some(p) => p,
                None => {
                    c.rollback().await?;
                    return Ok(None);
                }
            },
            None => i64::MAX,
        };
        let (shape, with) = match &q.with {
            None => (NO_WITH, None),
            Some(w) if w.contains('/') => (FULL_WITH, Some(enc(w))),
            Some(w) => (BARE_WITH, Some(enc(w))),
        };
        let mut ids: Option<Vec<String>> =
            (!q.ids.is_empty()).then(|| q.ids.iter().map(|i| enc(i).into_owned()).collect());
        let start = match q.start {
            Some(s) if s > i64::MAX as u64 => {
                // Later than anything stored: nothing matches.
                ids = Some(Vec::new());
                None
            }
            s => s.map(|s| s as i64),
        };
        let end = q.end.map(|e| e.min(i64::MAX as u64) as i64);
        let skip = i64::try_from(q.skip).unwrap_or(i64::MAX);
        let limit = i64::try_from(q.max)
            .unwrap_or(i64::MAX - 1)
            .min(i64::MAX - 1)
            + 1;
        let page_sql = if q.from_end { shape[1] } else { shape[0] };
        let rows = c
            .query(
                "querying an archive",
                page_sql,
                &[&owner, &with, &start, &end, &ids, &lo, &hi, &skip, &limit],
            )
            .await?;
        let count: i64 = if with.is_none() && start.is_none() && end.is_none() && ids.is_none() {
            // The whole archive: its kept count.
            c.query_opt(
                "counting an archive",
                "SELECT entries FROM archive_counts WHERE owner = $1",
                &[&owner],
            )
            .await?
            .map_or(0, |r| r.get(0))
        } else {
            c.query_opt(
                "counting an archive",
                shape[2],
                &[&owner, &with, &start, &end, &ids],
            )
            .await?
            .map_or(0, |r| r.get(0))
        };
        c.commit().await?;
        let complete = (rows.len() as i64) < limit;
        let mut entries = Vec::with_capacity(rows.len());
        for r in rows.into_iter().take(q.max) {
            let ts: i64 = r.get(1);
            entries.push(ArchiveEntry {
                id: name("archive", r.get(0))?,
                timestamp: u64::try_from(ts).map_err(|_| corrupt("archive", "a negative ts"))?,
                with: name("archive", r.get(2))?,
                stanza: parse_xml("archive", r.get(3))?,
            });
        }
        if q.from_end {
            entries.reverse();
        }
        Ok(Some(ArchivePage {
            entries,
            complete,
            count: Some(count as usize),
        }))
    }
}

impl ArchiveStore for PgStores {
    fn append<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entry: &'a ArchiveEntry,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.archive_append(owner, std::slice::from_ref(entry)))
    }

    fn append_batch<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        entries: &'a [ArchiveEntry],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.archive_append(owner, entries))
    }

    fn query<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        query: &'a ArchiveQuery,
    ) -> BoxFuture<'a, StoreResult<Option<ArchivePage>>> {
        Box::pin(self.archive_query(owner, query))
    }

    fn replace<'a>(
        &'a self,
        owner: &'a ArchiveOwner,
        id: &'a str,
        stanza: &'a Element,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let text = xml_text(stanza);
            rules::stanza(stanza, text.len())?;
            let mut c = self.pool.get().await?;
            let n = c
                .execute(
                    "replacing an archived stanza",
                    "UPDATE archive SET stanza = $3 WHERE seq = \
                       (SELECT min(seq) FROM archive WHERE owner = $1 AND id = $2)",
                    &[&enc(owner), &enc(id), &text],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn expire<'a>(&'a self, domain: &'a str, before: u64) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            // Later than anything stored: every entry goes.
            let (before, all) = match i64::try_from(before) {
                Ok(before) => (before, false),
                Err(_) => (i64::MAX, true),
            };
            // The entries and the counts in one statement.
            let gone: i64 = c
                .query_opt(
                    "expiring archives",
                    "WITH d AS ( \
                       DELETE FROM archive WHERE domain = $1 AND (ts < $2 OR $3) \
                       RETURNING owner), \
                     per AS (SELECT owner, count(*) AS n FROM d GROUP BY owner), \
                     u AS ( \
                       UPDATE archive_counts k SET entries = k.entries - per.n \
                       FROM per WHERE k.owner = per.owner) \
                     SELECT coalesce(sum(n), 0)::bigint FROM per",
                    &[&enc(domain), &before, &all],
                )
                .await?
                .map_or(0, |r| r.get(0));
            Ok(gone as u64)
        })
    }

    fn remove_owner<'a>(&'a self, owner: &'a ArchiveOwner) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut c = self.pool.get().await?;
            remove_owner(&mut c, &enc(owner)).await?;
            Ok(())
        })
    }
}
