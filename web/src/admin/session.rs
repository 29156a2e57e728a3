//! The admin console's sessions, cookies and CSRF protection.
//!
//! * A session is a random 256-bit id in a `__Host-` cookie (`Secure`,
//!   `HttpOnly`, `SameSite=Strict`, `Path=/`), looked up in a table held
//!   here, in memory: the cookie carries no data, so nothing in it can be
//!   forged, and logging out or a restart ends the session for good. A
//!   session ends after [`IDLE`] without a request and [`MAX_AGE`] after
//!   login whatever happens; the table holds at most [`MAX_SESSIONS`]
//!   (the oldest go first).
//! * Every session has its own random CSRF token, put in every form as a
//!   hidden field and checked (in constant time) on every POST; a POST
//!   whose `Origin` is not this server's page is refused too.
//! * The login form, before there is a session, is protected the same way
//!   by a double-submitted random value: a short-lived cookie and a hidden
//!   field that must match.
//! * A session id is made anew at each login (no fixation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{header, HeaderMap};
use switchboard_jid::Jid;

/// The session cookie's name. `__Host-` makes browsers insist on
/// `Secure`, `Path=/` and no `Domain`, so no other site or subdomain can
/// plant one.
pub(crate) const COOKIE: &str = "__Host-switchboard-admin";

/// The login form's double-submit cookie.
pub(crate) const LOGIN_COOKIE: &str = "__Host-switchboard-login";

/// The form field carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// A session ends after this long without a request.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);

/// A session ends this long after login, used or not.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(12 * 3600);

/// Sessions held at once.
pub(crate) const MAX_SESSIONS: usize = 1024;

/// A message for the next page shown (the outcome of a form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    pub ok: bool,
    pub text: String,
}

struct Entry {
    jid: Jid,
    csrf: String,
    created: Instant,
    last: Instant,
    flash: Option<Flash>,
}

/// A live session as a request sees it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub jid: Jid,
    pub csrf: String,
    /// What the previous form did, shown once.
    pub flash: Option<Flash>,
}

/// The table of sessions.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    /// Starts a session for `jid`.
    pub fn create(&self, jid: Jid, now: Instant) -> Session {
        let id = random_token();
        let csrf = random_token();
        let mut map = self.map.lock().expect("not poisoned");
        map.retain(|_, e| alive(e, now));
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            id.clone(),
            Entry {
                jid: jid.clone(),
                csrf: csrf.clone(),
                created: now,
                last: now,
                flash: None,
            },
        );
        Session {
            id,
            jid,
            csrf,
            flash: None,
        }
    }

    /// The live session with this id, its flash message taken; the
    /// session's idle time starts again.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.map.lock().expect("not poisoned");
        let e = map.get_mut(id)?;
        if !alive(e, now) {
            map.remove(id);
            return None;
        }
        e.last = now;
        Some(Session {
            id: id.to_string(),
            jid: e.jid.clone(),
            csrf: e.csrf.clone(),
            flash: e.flash.take(),
        })
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, id: &str, ok: bool, text: impl Into<String>) {
        if let Some(e) = self.map.lock().expect("not poisoned").get_mut(id) {
            e.flash = Some(Flash {
                ok,
                text: text.into(),
            });
        }
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map.lock().expect("not poisoned").remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().expect("not poisoned").len()
    }
}

fn alive(e: &Entry, now: Instant) -> bool {
    now.saturating_duration_since(e.last) < IDLE
        && now.saturating_duration_since(e.created) < MAX_AGE
}

/// 32 random bytes as hex.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether two secrets are equal, in time independent of where they
/// differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request, if it has one that looks
/// like a token (64 hex digits); anything else is as good as none.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value for cookie `name` with `value`, living
/// `max_age` (zero deletes it).
pub(crate) fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        max_age.as_secs()
    )
}

/// Whether a POST's `Origin` allows it: absent (not a browser, or an old
/// one; the CSRF token still has to match), or exactly this server's own
/// origin as the browser addressed it.
pub(crate) fn origin_ok(headers: &HeaderMap, own: Option<&str>) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(o) => match (o.to_str(), own) {
            (Ok(o), Some(own)) => o.eq_ignore_ascii_case(own),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_maximum_age() {
        let t = Sessions::default();
        let start = Instant::now();
        let s = t.create(jid("admin@localhost"), start);
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let later = start + IDLE - Duration::from_secs(1);
        assert!(t.get(&s.id, later).is_some(), "still fresh");
        // Used just now, so idle time starts again.
        assert!(t
            .get(&s.id, later + IDLE - Duration::from_secs(1))
            .is_some());
        assert!(t.get(&s.id, later + 2 * IDLE).is_none(), "idle too long");
        assert_eq!(t.len(), 0, "an expired session is dropped");

        let s = t.create(jid("admin@localhost"), start);
        let mut now = start;
        while now < start + MAX_AGE - IDLE {
            now += IDLE / 2;
            assert!(t.get(&s.id, now).is_some());
        }
        assert!(t.get(&s.id, start + MAX_AGE).is_none(), "too old");
    }

    #[test]
    fn a_flash_is_shown_once_and_logout_ends_the_session() {
        let t = Sessions::default();
        let now = Instant::now();
        let s = t.create(jid("admin@localhost"), now);
        t.flash(&s.id, true, "done");
        assert_eq!(
            t.get(&s.id, now).unwrap().flash,
            Some(Flash {
                ok: true,
                text: "done".into()
            })
        );
        assert_eq!(t.get(&s.id, now).unwrap().flash, None);
        t.remove(&s.id);
        assert!(t.get(&s.id, now).is_none());
    }

    #[test]
    fn the_table_is_bounded() {
        let t = Sessions::default();
        let now = Instant::now();
        let first = t.create(jid("a@localhost"), now);
        for i in 0..MAX_SESSIONS {
            t.create(
                jid("a@localhost"),
                now + Duration::from_millis(i as u64 + 1),
            );
        }
        assert_eq!(t.len(), MAX_SESSIONS);
        assert!(t.get(&first.id, now).is_none(), "the oldest went first");
    }

    #[test]
    fn cookies_are_read_only_when_they_look_like_tokens() {
        let token = random_token();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("x=1; {COOKIE}={token}; y=2").parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some(token.as_str()));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("{COOKIE}=<script>").parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), None);
        assert!(set_cookie(COOKIE, &token, IDLE)
            .ends_with("; Path=/; Max-Age=1800; Secure; HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn secrets_and_origins_are_compared_strictly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", ""));
        let own = Some("https://localhost:5281");
        assert!(origin_ok(&HeaderMap::new(), own));
        let with = |o: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, o.parse().unwrap());
            h
        };
        assert!(origin_ok(&with("https://localhost:5281"), own));
        assert!(!origin_ok(&with("https://evil.example"), own));
        assert!(!origin_ok(&with("null"), own));
        assert!(!origin_ok(&with("https://localhost:5281"), None));
    }
}
