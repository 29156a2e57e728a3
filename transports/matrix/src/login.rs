//! Signing on to a homeserver with the user's own account, once, when
//! they register with the transport:
//!
//! 1. which homeserver: a listed one ([`crate::config`]) by name, a URL
//!    the user typed, or a server name discovered through
//!    `https://NAME/.well-known/matrix/client` (falling back to
//!    `https://NAME`); checked against the config before anything is sent
//!    there;
//! 2. with a password: `POST /login` (`m.login.password`, the user
//!    identifier), keeping only the access token and device id it gives;
//!    with a pasted access token (homeservers that sign on through a
//!    browser, OIDC): `GET /account/whoami` to learn whose it is;
//! 3. unregistering logs that device out (`POST /logout`).
//!
//! The requests and answers are pure functions ([`login_request`],
//! [`read_login`], [`read_well_known`], …), so they are tested without a
//! network; [`sign_in`] and [`log_out`] run them through a
//! [`Homeserver`]. The password is never stored or logged: it is in one
//! request body, then dropped.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::MatrixConfig;
use crate::driver::Homeserver;
use crate::http::{Method, Outcome, Request, RequestId};

/// How long each sign-on request may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The largest answer read during sign-on.
const LIMIT: usize = 64 * 1024;

/// What signing on gives, to be sealed in the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The base URL the session talks to.
    pub homeserver: String,
    pub user_id: String,
    pub device_id: String,
    pub access_token: String,
}

/// Where to go, before discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A base URL (typed, or the config's).
    Url(String),
    /// A server name to discover.
    Name(String),
}

/// What the user typed (homeserver, user) as a target and a user name
/// for `/login`. The user may be `@alice:example.org` (the server then
/// needs no typing) or `alice`.
pub fn target(
    config: &MatrixConfig,
    homeserver: Option<&str>,
    user: &str,
) -> Result<Target, String> {
    let from_user = user
        .strip_prefix('@')
        .and_then(|u| u.split_once(':'))
        .map(|(_, server)| server);
    let hs = homeserver
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .or(from_user)
        .or(config.default_homeserver())
        .ok_or("say which homeserver: a server name such as example.org, or its address")?;
    if let Some(listed) = config.find(hs) {
        return Ok(match &listed.url {
            Some(u) => Target::Url(u.clone()),
            None => Target::Name(listed.name.clone()),
        });
    }
    if hs.starts_with("https://") || hs.starts_with("http://") {
        return Ok(Target::Url(hs.trim_end_matches('/').to_owned()));
    }
    if hs.contains(['/', ' ', '@', '?', '#']) {
        return Err(format!(
            "'{hs}' is neither a server name nor an https:// address"
        ));
    }
    Ok(Target::Name(hs.to_ascii_lowercase()))
}

fn request(id: u64, method: Method, path: &str, body: Option<Value>) -> Request {
    Request {
        id: RequestId(id),
        method,
        path: path.to_owned(),
        body,
        timeout: TIMEOUT,
        limit: LIMIT,
        attach: None,
    }
}

/// The base URL in a `.well-known/matrix/client` answer.
pub fn read_well_known(outcome: &Outcome) -> Option<String> {
    let r = outcome.as_ref().ok().filter(|r| r.ok())?;
    let url = r
        .json()
        .get("m.homeserver")?
        .get("base_url")?
        .as_str()?
        .to_owned();
    (url.starts_with("https://") || url.starts_with("http://"))
        .then(|| url.trim_end_matches('/').to_owned())
}

/// `POST /login` with a password.
pub fn login_request(user: &str, password: &str, device_name: &str) -> Request {
    request(
        1,
        Method::Post,
        "/_matrix/client/v3/login",
        Some(json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user },
            "password": password,
            "initial_device_display_name": device_name,
        })),
    )
}

/// The token, device and user of a `/login` answer, or why not.
pub fn read_login(outcome: Outcome) -> Result<(String, String, String), String> {
    let r = outcome.map_err(|e| e.to_string())?;
    if !r.ok() {
        let e = r.error();
        return Err(match e.errcode.as_str() {
            "M_FORBIDDEN" => "the homeserver refused the user name or password".into(),
            "M_USER_DEACTIVATED" => "this Matrix account is deactivated".into(),
            "M_UNKNOWN" | "M_UNRECOGNIZED" if e.status == 400 || e.status == 404 => format!(
                "this homeserver does not take passwords ({e}); paste an access token instead"
            ),
            _ => format!("the homeserver refused the sign-on: {e}"),
        });
    }
    let v = r.json();
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match (s("access_token"), s("device_id"), s("user_id")) {
        (Some(t), Some(d), Some(u)) if !t.is_empty() => Ok((t, d, u)),
        _ => Err("the homeserver's answer to /login is not what Matrix specifies".into()),
    }
}

/// `GET /account/whoami` (with the token being checked).
pub fn whoami_request() -> Request {
    request(2, Method::Get, "/_matrix/client/v3/account/whoami", None)
}

/// The user and device of a `whoami` answer.
pub fn read_whoami(outcome: Outcome) -> Result<(String, String), String> {
    let r = outcome.map_err(|e| e.to_string())?;
    if !r.ok() {
        let e = r.error();
        return Err(if e.token_gone() {
            "the homeserver does not accept this access token".into()
        } else {
            format!("the homeserver refused the access token: {e}")
        });
    }
    let v = r.json();
    let user = v
        .get("user_id")
        .and_then(Value::as_str)
        .ok_or("the homeserver's answer to whoami names no user")?;
    // Appservice tokens have no device: the token alone is kept.
    let device = v.get("device_id").and_then(Value::as_str).unwrap_or("");
    Ok((user.to_owned(), device.to_owned()))
}

/// Signs on: discovery when needed, the config's check, then `/login` or
/// `whoami`. `hs_for(base)` gives the client for a base URL the config
/// allows (with its trust), or the sentence why not.
pub async fn sign_in(
    target: Target,
    user: &str,
    password: Option<&str>,
    token: Option<&str>,
    device_name: &str,
    hs_for: impl Fn(&str) -> Result<Homeserver, String>,
) -> Result<Signed, String> {
    let base = match target {
        Target::Url(u) => u,
        Target::Name(name) => {
            let fallback = format!("https://{name}");
            let probe = hs_for(&fallback)?;
            let well_known = request(0, Method::Get, "/.well-known/matrix/client", None);
            let found = read_well_known(&probe.perform(&well_known).await);
            found.unwrap_or(fallback)
        }
    };
    let hs = hs_for(&base)?;
    let (token, device, user_id) = match (password, token) {
        (_, Some(t)) => {
            let hs = hs.with_token(t);
            let (user_id, device) = read_whoami(hs.perform(&whoami_request()).await)?;
            (t.to_owned(), device, user_id)
        }
        (Some(pw), None) => {
            let local = user
                .strip_prefix('@')
                .map(|u| u.split(':').next().unwrap_or(u))
                .unwrap_or(user);
            read_login(hs.perform(&login_request(local, pw, device_name)).await)?
        }
        (None, None) => return Err("give your Matrix password, or an access token".into()),
    };
    Ok(Signed {
        homeserver: hs.base().to_owned(),
        user_id,
        device_id: device,
        access_token: token,
    })
}

/// Logs a device out (its token becomes invalid); failures are only
/// logged: the registration is gone either way.
pub async fn log_out(hs: Homeserver) {
    let req = request(
        3,
        Method::Post,
        "/_matrix/client/v3/logout",
        Some(json!({})),
    );
    match hs.perform(&req).await {
        Ok(r) if r.ok() || r.error().token_gone() => {}
        Ok(r) => {
            tracing::warn!(homeserver = hs.base(), error = %r.error(), "Matrix logout refused")
        }
        Err(e) => tracing::warn!(homeserver = hs.base(), error = %e, "Matrix logout failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Failure, Response};

    fn ok(body: &str) -> Outcome {
        Ok(Response {
            status: 200,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        })
    }

    fn config(xml: &str) -> MatrixConfig {
        let el = switchboard_xml::parse_document(xml.as_bytes(), Default::default()).unwrap();
        MatrixConfig::from_element(&el).unwrap()
    }

    #[test]
    fn the_homeserver_comes_from_the_form_the_user_id_or_the_config() {
        let c = config(
            r#"<service><homeserver name="localhost" url="http://127.0.0.1:8008" allow-plain="true"/></service>"#,
        );
        assert_eq!(
            target(&c, None, "alice"),
            Ok(Target::Url("http://127.0.0.1:8008".into()))
        );
        assert_eq!(
            target(&c, None, "@alice:localhost"),
            Ok(Target::Url("http://127.0.0.1:8008".into()))
        );
        assert_eq!(
            target(&c, Some("Example.ORG"), "alice"),
            Ok(Target::Name("example.org".into()))
        );
        assert_eq!(
            target(&c, Some("https://m.example/"), "alice"),
            Ok(Target::Url("https://m.example".into()))
        );
        assert!(target(&config("<service/>"), None, "alice").is_err());
        assert!(target(&c, Some("a b"), "alice").is_err());
    }

    #[test]
    fn well_known_answers_are_read_with_care() {
        assert_eq!(
            read_well_known(&ok(
                r#"{"m.homeserver":{"base_url":"https://matrix.example.org/"}}"#
            )),
            Some("https://matrix.example.org".into())
        );
        assert_eq!(
            read_well_known(&ok(r#"{"m.homeserver":{"base_url":"ftp://x"}}"#)),
            None
        );
        assert_eq!(read_well_known(&ok("garbage")), None);
        assert_eq!(read_well_known(&Err(Failure::Timeout)), None);
    }

    #[test]
    fn login_keeps_the_token_and_device_and_says_why_not() {
        let req = login_request("alice", "hunter2", "Switchboard");
        assert_eq!(req.path, "/_matrix/client/v3/login");
        assert_eq!(req.body.as_ref().unwrap()["identifier"]["user"], "alice");
        assert!(!req.describe().contains("hunter2"));
        assert_eq!(
            read_login(ok(
                r#"{"access_token":"t","device_id":"D","user_id":"@alice:x"}"#
            )),
            Ok(("t".into(), "D".into(), "@alice:x".into()))
        );
        let refused = Ok(Response {
            status: 403,
            retry_after: None,
            body: br#"{"errcode":"M_FORBIDDEN","error":"Invalid password"}"#.to_vec(),
        });
        assert!(read_login(refused).unwrap_err().contains("password"));
        assert!(read_login(ok("{}")).is_err());
        assert!(read_login(Err(Failure::Network("refused".into())))
            .unwrap_err()
            .contains("refused"));
    }
}
