//! The one reading of an [`ArchiveQuery`]: which entries of an archive a
//! query selects, given each entry's id, timestamp and `with`. Both
//! backends keep those in archive order (the memory backend the entries
//! themselves, the file backend an index of its log) and let this decide,
//! so that they cannot drift apart on paging edge cases.

use std::collections::HashSet;

use super::ArchiveQuery;

/// What a query needs to know of one entry.
pub(crate) trait Meta {
    fn id(&self) -> &str;
    fn timestamp(&self) -> u64;
    fn with(&self) -> &str;
}

/// The entries a query selects, by position in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    /// Positions of the page, oldest first.
    pub picks: Vec<usize>,
    pub complete: bool,
    /// The size of the result set.
    pub count: usize,
}

/// Whether an entry's `with` matches a query's (see
/// [`ArchiveQuery::with`]).
pub(crate) fn with_matches(query: &str, entry: &str) -> bool {
    if query.contains('/') {
        entry == query
    } else {
        entry.split_once('/').map_or(entry, |(bare, _)| bare) == query
    }
}

/// The position of the (first) entry with this id. Searched from the
/// newest end: paging asks for recent ids far more often than old ones.
pub(crate) fn position<M: Meta>(entries: &[M], id: &str) -> Option<usize> {
    let from_end = entries.iter().rev().position(|m| m.id() == id)?;
    let last = entries.len() - 1 - from_end;
    // An id appended twice (a caller's bug) is found at its first place.
    Some(
        entries[..last]
            .iter()
            .position(|m| m.id() == id)
            .unwrap_or(last),
    )
}

/// Applies `query` to an archive whose entries, in archive order, are
/// `entries`. `None` when `after_id` or `before_id` names no entry.
pub(crate) fn select<M: Meta>(entries: &[M], query: &ArchiveQuery) -> Option<Selection> {
    let lo = match &query.after_id {
        Some(id) => position(entries, id)? + 1,
        None => 0,
    };
    let hi = match &query.before_id {
        Some(id) => position(entries, id)?,
        None => entries.len(),
    };
    let ids: HashSet<&str> = query.ids.iter().map(String::as_str).collect();
    let filtered = query.with.is_some() || query.start.is_some() || query.end.is_some();
    let unfiltered = !filtered && ids.is_empty();
    let matches = |m: &M| {
        query
            .with
            .as_deref()
            .is_none_or(|w| with_matches(w, m.with()))
            && query.start.is_none_or(|s| m.timestamp() >= s)
            && query.end.is_none_or(|e| m.timestamp() <= e)
            && (ids.is_empty() || ids.contains(m.id()))
    };
    let count = if unfiltered {
        entries.len()
    } else {
        entries.iter().filter(|m| matches(m)).count()
    };
    // `after_id` at or past `before_id`: an empty window.
    let window = if lo < hi { lo..hi } else { lo..lo };
    let mut picks = Vec::with_capacity(query.max.min(window.len()));
    let complete = if query.from_end {
        let mut rest = window
            .clone()
            .rev()
            .filter(|&i| matches(&entries[i]))
            .skip(query.skip);
        picks.extend(rest.by_ref().take(query.max));
        picks.reverse();
        rest.next().is_none()
    } else {
        let mut rest = window
            .clone()
            .filter(|&i| matches(&entries[i]))
            .skip(query.skip);
        picks.extend(rest.by_ref().take(query.max));
        rest.next().is_none()
    };
    Some(Selection {
        picks,
        complete,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct M(&'static str, u64, &'static str);

    impl Meta for M {
        fn id(&self) -> &str {
            self.0
        }
        fn timestamp(&self) -> u64 {
            self.1
        }
        fn with(&self) -> &str {
            self.2
        }
    }

    const A: &[M] = &[
        M("a", 10, "bob@x"),
        M("b", 20, "bob@x/phone"),
        M("c", 30, "carol@x"),
        M("d", 40, "bob@x"),
        M("e", 50, "bob@xy"),
    ];

    fn q() -> ArchiveQuery {
        ArchiveQuery {
            max: 10,
            ..Default::default()
        }
    }

    fn picks(query: &ArchiveQuery) -> (Vec<&'static str>, bool, usize) {
        let s = select(A, query).unwrap();
        (
            s.picks.iter().map(|&i| A[i].0).collect(),
            s.complete,
            s.count,
        )
    }

    #[test]
    fn bare_with_matches_resources_and_full_with_only_itself() {
        let bare = ArchiveQuery {
            with: Some("bob@x".into()),
            ..q()
        };
        assert_eq!(picks(&bare), (vec!["a", "b", "d"], true, 3));
        let full = ArchiveQuery {
            with: Some("bob@x/phone".into()),
            ..q()
        };
        assert_eq!(picks(&full), (vec!["b"], true, 1));
    }

    #[test]
    fn pages_from_either_end_say_whether_more_remain() {
        let first = ArchiveQuery { max: 2, ..q() };
        assert_eq!(picks(&first), (vec!["a", "b"], false, 5));
        let last = ArchiveQuery {
            max: 2,
            from_end: true,
            ..q()
        };
        assert_eq!(picks(&last), (vec!["d", "e"], false, 5));
        let before = ArchiveQuery {
            max: 2,
            from_end: true,
            before_id: Some("c".into()),
            ..q()
        };
        assert_eq!(picks(&before), (vec!["a", "b"], true, 5));
        let between = ArchiveQuery {
            after_id: Some("a".into()),
            before_id: Some("e".into()),
            ..q()
        };
        assert_eq!(picks(&between), (vec!["b", "c", "d"], true, 5));
        let crossed = ArchiveQuery {
            after_id: Some("d".into()),
            before_id: Some("b".into()),
            ..q()
        };
        assert_eq!(picks(&crossed), (vec![], true, 5));
        let zero = ArchiveQuery { max: 0, ..q() };
        assert_eq!(picks(&zero), (vec![], false, 5));
        assert!(select(
            A,
            &ArchiveQuery {
                after_id: Some("zz".into()),
                ..q()
            }
        )
        .is_none());
    }

    #[test]
    fn time_and_id_filters_combine() {
        let window = ArchiveQuery {
            start: Some(20),
            end: Some(40),
            ids: vec!["d".into(), "a".into(), "b".into()],
            ..q()
        };
        assert_eq!(picks(&window), (vec!["b", "d"], true, 2));
    }

    #[test]
    fn skipping_starts_the_page_at_an_index_of_the_result_set() {
        let second = ArchiveQuery {
            max: 2,
            skip: 2,
            ..q()
        };
        assert_eq!(picks(&second), (vec!["c", "d"], false, 5));
        let bob_from_one = ArchiveQuery {
            with: Some("bob@x".into()),
            skip: 1,
            ..q()
        };
        assert_eq!(picks(&bob_from_one), (vec!["b", "d"], true, 3));
        let past_the_end = ArchiveQuery { skip: 5, ..q() };
        assert_eq!(picks(&past_the_end), (vec![], true, 5));
        let from_end = ArchiveQuery {
            max: 2,
            skip: 1,
            from_end: true,
            ..q()
        };
        assert_eq!(picks(&from_end), (vec!["c", "d"], false, 5));
    }
}
