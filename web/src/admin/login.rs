//! Logging in to the console with an XMPP account.
//!
//! The password is checked against the account's stored SCRAM
//! credentials by the core's one verifier (`switchboard_core::accounts::
//! verify`, which does the same work for an unknown account), after the
//! wait the core's login throttle imposes on the source address and the
//! account following recent failures (`switchboard_core::auth_delay`,
//! shared with XMPP logins: guessing here is slowed by failures there and
//! the other way round). A failure is counted there. Only a JID that is
//! an admin of one of the hosts gets a session; that is said only to
//! someone who gave the right password.

use std::time::Instant;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use switchboard_jid::Jid;

use super::session::{self, LOGIN_COOKIE};
use super::{form, html, pages, redirect};
use crate::listener::Conn;
use crate::reply::{self, Body};
use crate::App;

/// How long the login form's double-submit cookie lives.
const LOGIN_FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

/// The login form (or the console, to someone already logged in).
pub(super) fn page<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let now = Instant::now();
    if session::cookie(req.headers(), session::COOKIE)
        .and_then(|id| app.console.sessions.get(id, now))
        .is_some()
    {
        return redirect("/admin/");
    }
    let token = match session::cookie(req.headers(), LOGIN_COOKIE) {
        Some(t) => t.to_string(),
        None => session::random_token(),
    };
    form_page(StatusCode::OK, &token, "", None)
}

fn form_page(status: StatusCode, token: &str, jid: &str, error: Option<&str>) -> Response<Body> {
    let mut r = html(status, pages::login(token, jid, error));
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        LOGIN_COOKIE,
        token,
        LOGIN_FORM_LIFETIME,
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// A submitted login form.
pub(super) async fn submit(app: &App, conn: &Conn, req: Request<Incoming>) -> Response<Body> {
    let own = super::own_origin(&req);
    let headers = req.headers().clone();
    let form = match form::read(
        &headers,
        req.into_body(),
        app.web.max_body_bytes,
        app.web.body_timeout,
    )
    .await
    {
        Ok(f) => f,
        Err((status, why)) => return reply::error(status, why),
    };
    if !session::origin_ok(&headers, own.as_deref()) {
        return reply::error(
            StatusCode::FORBIDDEN,
            "this form was sent from another site's page",
        );
    }
    let Some(token) = session::cookie(&headers, LOGIN_COOKIE)
        .filter(|t| session::same_secret(t, form.get(session::CSRF_FIELD)))
    else {
        return reply::error(
            StatusCode::FORBIDDEN,
            "the login form's security token is missing or stale; reload the login page and try again",
        );
    };
    let typed = form.get("jid").trim();
    let refuse = |why: &str| form_page(StatusCode::FORBIDDEN, token, typed, Some(why));
    let jid = match Jid::parse(typed) {
        Ok(j) if j.node().is_some() && j.resource().is_none() => j,
        _ => return refuse("Give your Jabber ID as user@host."),
    };
    let (Some(user), host) = (jid.node(), jid.domain()) else {
        return refuse("Give your Jabber ID as user@host.");
    };
    if !app.hosts.iter().any(|h| h == host) {
        return refuse("The Jabber ID or the password is wrong.");
    }
    let c2s = &app.handles.c2s;
    let policy = app.handles.settings.get().auth_delay;
    let ip = conn.peer.ip();
    let account = c2s.auth_delays.account_key(host, user);
    if let Some(delay) = c2s
        .auth_delays
        .delay(&policy, ip, Some(account), Instant::now())
    {
        tracing::debug!(%ip, wait = ?delay.wait, "admin console: login delayed after recent failures");
        let mut shutdown = app.handles.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay.wait) => {}
            _ = shutdown.wait() => return reply::error(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"),
        }
    }
    let ok = match switchboard_core::accounts::verify(
        app.handles.admin.account_store.as_ref(),
        host,
        user,
        form.get("password").to_string(),
    )
    .await
    {
        Ok(ok) => ok,
        Err(e) => {
            tracing::error!("admin console: cannot check the password of {jid}: {e}");
            return reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the account store cannot be read; see the server's log",
            );
        }
    };
    if !ok {
        c2s.auth_delays
            .failed(&policy, ip, Some(account), Instant::now());
        tracing::info!(%ip, %jid, "admin console: login refused (wrong password)");
        return refuse("The Jabber ID or the password is wrong.");
    }
    if super::admin_hosts(app, &jid).is_empty() {
        tracing::info!(%ip, %jid, "admin console: login refused (not an admin)");
        return refuse(&format!(
            "{jid} is not an administrator of any host of this server."
        ));
    }
    let s = app.console.sessions.create(jid.clone(), Instant::now());
    tracing::info!(%ip, %jid, "admin console: logged in");
    let mut r = redirect("/admin/");
    let h = r.headers_mut();
    for cookie in [
        session::set_cookie(session::COOKIE, &s.id, session::MAX_AGE),
        session::set_cookie(LOGIN_COOKIE, "", std::time::Duration::ZERO),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    r
}

/// Logging out: the session ends on the server, the cookie is deleted.
pub(super) fn logout(app: &App, id: &str) -> Response<Body> {
    app.console.sessions.remove(id);
    let mut r = redirect("/admin/login");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        session::COOKIE,
        "",
        std::time::Duration::ZERO,
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
