//! "Did you mean …?" suggestions for misspelled element names, attribute
//! names and keyword values.
//!
//! A config file is edited by hand, usually rarely, often by someone who
//! last saw the format a year ago. A typo like `<lisen>` deserves better
//! than "unknown element": the parser knows every name that is valid at
//! that spot, so it can point at the one the admin most likely meant.

/// The candidate closest to `word`, if it is close enough to be a likely
/// typo rather than a different word altogether.
///
/// Comparison ignores ASCII case, so `<Listen>` suggests `<listen>`. The
/// distance counts insertions, deletions, substitutions and swaps of two
/// neighbouring characters (`opne` → `open` is one edit), because swapped
/// letters are the most common typing slip. How many edits still count as
/// "close" grows with the length of the candidate: one edit turns any
/// two-letter word into any other, so short names tolerate less.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in candidates {
        let distance = edit_distance(&lower, &candidate.to_ascii_lowercase());
        if distance == 0 && word != candidate {
            // Only the case differs: the strongest possible suggestion.
            return Some(candidate);
        }
        if distance == 0 || distance > tolerance(candidate) {
            continue;
        }
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// How many edits a misspelling of `candidate` may be away from it.
fn tolerance(candidate: &str) -> usize {
    match candidate.chars().count() {
        0..=2 => 0,
        3..=4 => 1,
        5..=8 => 2,
        _ => 3,
    }
}

/// The optimal-string-alignment distance between `a` and `b`: Levenshtein
/// distance plus transposition of adjacent characters as a single edit.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows suffice: the transposition step looks two rows back.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("lisen", "listen"), 1);
        assert_eq!(edit_distance("opne", "open"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("adr", "addr"), 1);
        assert_eq!(edit_distance("spool", "spool"), 0);
    }

    #[test]
    fn suggests_close_names_only() {
        let root = [
            "host", "service", "listen", "tls", "limits", "spool", "log", "pidfile",
        ];
        assert_eq!(closest("lisen", &root), Some("listen"));
        assert_eq!(closest("Listen", &root), Some("listen"));
        assert_eq!(closest("hots", &root), Some("host"));
        assert_eq!(closest("limit", &root), Some("limits"));
        assert_eq!(closest("pid-file", &root), Some("pidfile"));
        assert_eq!(closest("servce", &root), Some("service"));
        assert_eq!(closest("jabberd", &root), None);
        assert_eq!(closest("xdb", &root), None);
        // Three letters may be one edit off, but not two.
        assert_eq!(closest("tsl", &root), Some("tls"));
        assert_eq!(closest("ssl", &root), None);
    }

    #[test]
    fn prefers_the_nearest_candidate() {
        assert_eq!(closest("c2", &["c2s", "c2s-tls", "component"]), Some("c2s"));
        assert_eq!(
            closest("c2s-tsl", &["c2s", "c2s-tls", "component"]),
            Some("c2s-tls")
        );
        assert_eq!(closest("opne", &["off", "open", "admin"]), Some("open"));
        assert_eq!(closest("closed", &["off", "open", "admin"]), None);
    }
}
