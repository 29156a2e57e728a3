//! The admin console at `/admin/`: pages for the hosts' admins, who log
//! in with their XMPP account (`login.rs`), in sessions held by cookie,
//! with every form protected against cross-site requests (`session.rs`).
//!
//! | path | GET | POST |
//! | --- | --- | --- |
//! | `/admin/` | server status: uptime, sessions, messages per second, services, links to other servers | |
//! | `/admin/login` | the login form | log in |
//! | `/admin/logout` | | log out |
//! | `/admin/users` | accounts of the admin's hosts | `users/add`, `users/password`, `users/delete` |
//! | `/admin/sessions` | online sessions | `sessions/kick` |
//! | `/admin/announce` | announcement and message-of-the-day forms | `announce`, `motd` |
//! | `/admin/rooms` | the group chat service's rooms (when there is one) | `rooms/destroy`, `rooms/announce` |
//!
//! Nothing here is logic of its own: every action is a call into the
//! core's admin seam (`switchboard_core::admin`: `announce_online`,
//! `set_motd`, `kick`, `add_user`, …), the account store's listing, or
//! the group chat service's own admin commands asked the way the admin
//! socket asks them (`service_commands`), so the console, the admin
//! socket and XEP-0133 all do the same thing. Who may ask is checked
//! here: the logged-in JID must be an admin of the host concerned in the
//! live settings at each request (removing an admin from the config and
//! reloading ends their console session at the next click).
//!
//! Served only over HTTPS (or behind a TLS proxy the admin vouched for):
//! the cookies are `Secure`. `<web admin-console="false">` turns it off.
//! `pages.rs` renders; `actions.rs` carries out the forms; `form.rs`
//! reads them.

mod actions;
mod form;
mod login;
mod pages;
mod session;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use switchboard_jid::Jid;

use crate::listener::Conn;
use crate::reply::{self, Body};
use crate::App;

use pages::{Frame, Nav};
use session::{Session, Sessions};

/// The console's state, one per server.
pub(crate) struct Console {
    sessions: Sessions,
    /// When the web side started (with the server).
    started: Instant,
    rate: Mutex<Rate>,
    /// Each configured service's hostname and type.
    services: Vec<(String, String)>,
}

/// The last reading of the messages-received counter, for messages per
/// second between two views of the status page.
struct Rate {
    at: Instant,
    messages: u64,
    per_second: f64,
}

impl Console {
    pub fn new(config: &switchboard_config::Config) -> Console {
        let now = Instant::now();
        Console {
            sessions: Sessions::default(),
            started: now,
            rate: Mutex::new(Rate {
                at: now,
                messages: 0,
                per_second: 0.0,
            }),
            services: config
                .services
                .iter()
                .map(|s| (s.id.clone(), s.kind.clone()))
                .collect(),
        }
    }

    /// Messages per second since the previous reading (at least a second
    /// ago; a quicker reload shows the previous rate).
    fn messages_per_second(&self, messages: u64, now: Instant) -> f64 {
        let mut r = self.rate.lock().expect("not poisoned");
        let elapsed = now.saturating_duration_since(r.at);
        if elapsed >= Duration::from_secs(1) {
            r.per_second = messages.saturating_sub(r.messages) as f64 / elapsed.as_secs_f64();
            r.at = now;
            r.messages = messages;
        }
        r.per_second
    }
}

/// Answers a request under `/admin`.
pub(crate) async fn serve(app: &App, conn: &Conn, req: Request<Incoming>) -> Response<Body> {
    if !app.web.admin_console {
        return reply::error(
            StatusCode::NOT_FOUND,
            "the admin console is turned off (<web admin-console=\"false\">)",
        );
    }
    let path = req.uri().path().to_string();
    if path == "/admin" {
        return redirect("/admin/");
    }
    if !conn.secure() {
        return reply::error(
            StatusCode::FORBIDDEN,
            "the admin console is served over HTTPS only (an <https> listener, or <http behind-tls-proxy=\"true\">)",
        );
    }
    let method = req.method().clone();
    let sub = path["/admin".len()..].to_string();
    match (sub.as_str(), &method) {
        ("/style.css", &Method::GET | &Method::HEAD) => {
            let mut r = reply::ok("text/css; charset=utf-8", pages::STYLE);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            return r;
        }
        ("/style.css", _) => return reply::method_not_allowed("GET, HEAD"),
        ("/login", &Method::GET | &Method::HEAD) => return login::page(app, &req),
        ("/login", &Method::POST) => return login::submit(app, conn, req).await,
        ("/login", _) => return reply::method_not_allowed("GET, HEAD, POST"),
        _ => {}
    }
    let now = Instant::now();
    let Some(session) = session::cookie(req.headers(), session::COOKIE)
        .and_then(|id| app.console.sessions.get(id, now))
    else {
        return redirect("/admin/login");
    };
    let hosts = admin_hosts(app, &session.jid);
    if hosts.is_empty() {
        // No longer an admin anywhere (the config changed).
        app.console.sessions.remove(&session.id);
        return redirect("/admin/login");
    }
    match method {
        Method::GET | Method::HEAD => get(app, &sub, &session, &hosts).await,
        Method::POST => {
            let own = own_origin(&req);
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
            if !session::same_secret(form.get(session::CSRF_FIELD), &session.csrf) {
                return reply::error(
                    StatusCode::FORBIDDEN,
                    "the form's security token is missing or stale; reload the page and try again",
                );
            }
            actions::post(app, &sub, &session, &hosts, &form).await
        }
        _ => reply::method_not_allowed("GET, HEAD, POST"),
    }
}

/// The hosts `jid` administers now (live settings), in config order.
fn admin_hosts(app: &App, jid: &Jid) -> Vec<String> {
    let settings = app.handles.settings.get();
    settings
        .hosts
        .iter()
        .filter(|h| settings.is_admin(&h.name, jid))
        .map(|h| h.name.clone())
        .collect()
}

/// The host the group chat service's admin commands are asked from,
/// if there is such a service and `hosts` has it.
fn rooms_service(app: &App, hosts: &[String]) -> Option<String> {
    let muc = app.muc.clone()?;
    let from =
        switchboard_core::admin::service_commands::requester(&app.handles.admin.router, &muc)?;
    hosts.contains(&from).then_some(muc)
}

/// This server's origin as the browser addressed it.
fn own_origin<B>(req: &Request<B>) -> Option<String> {
    crate::host_meta::authority(req).map(|a| format!("https://{a}"))
}

async fn get(app: &App, sub: &str, session: &Session, hosts: &[String]) -> Response<Body> {
    let admin = &app.handles.admin;
    let rooms = rooms_service(app, hosts);
    let frame = Frame {
        admin: &session.jid.to_string(),
        csrf: &session.csrf,
        flash: session.flash.as_ref(),
        rooms: rooms.is_some(),
    };
    let (nav, title, content) = match sub {
        "/" => (Nav::Status, "Server status", pages::status(&status(app))),
        "/users" => {
            let mut accounts = Vec::new();
            for h in hosts {
                let users = match admin.account_store.list(h).await {
                    Ok(mut u) => {
                        u.sort();
                        u
                    }
                    Err(e) => {
                        return reply::error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("cannot list the accounts of {h}: {e}"),
                        )
                    }
                };
                accounts.push((h.clone(), users));
            }
            (
                Nav::Users,
                "Users",
                pages::users(&session.csrf, hosts, &accounts),
            )
        }
        "/sessions" => {
            let mut online = Vec::new();
            for h in hosts {
                if let Ok(s) = switchboard_core::admin::online_users(&admin.router, Some(h)) {
                    online.extend(s.iter().map(Jid::to_string));
                }
            }
            (
                Nav::Sessions,
                "Online sessions",
                pages::sessions(&session.csrf, &online),
            )
        }
        "/announce" => {
            let motds: Vec<(String, Option<String>)> = hosts
                .iter()
                .map(|h| {
                    (
                        h.clone(),
                        admin.motds.current(h).map(|m| m.announcement.body()),
                    )
                })
                .collect();
            (
                Nav::Announce,
                "Announcements",
                pages::announce(&session.csrf, hosts, &motds),
            )
        }
        "/rooms" => {
            let Some(muc) = rooms else {
                return reply::not_found();
            };
            let list = switchboard_core::admin::service_commands::run(
                &admin.router,
                &muc,
                switchboard_muc::commands::LIST,
                &[],
            )
            .await;
            let table = match &list {
                Ok(lines) => Ok(lines.as_slice()),
                Err(e) => Err(e.as_str()),
            };
            (
                Nav::Rooms,
                "Rooms",
                pages::rooms(&session.csrf, &muc, table),
            )
        }
        _ => return reply::not_found(),
    };
    html(StatusCode::OK, pages::page(&frame, nav, title, &content))
}

/// What the status page shows, read as `/metrics` reads it.
fn status(app: &App) -> pages::Status {
    let scrape = &app.handles.scrape;
    let snap = scrape.snapshot();
    let now = Instant::now();
    let messages_in = snap.stanzas_in[0];
    let kinds = &app.console.services;
    pages::Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime: now.saturating_duration_since(app.console.started),
        hosts: app.hosts.clone(),
        sessions: snap.sessions,
        connections: snap.connections,
        messages_per_second: app.console.messages_per_second(messages_in, now),
        messages_in,
        messages_out: snap.stanzas_out[0],
        logins: snap.logins,
        login_failures: snap.login_failures,
        services: snap
            .services
            .iter()
            .map(|g| pages::ServiceRow {
                host: g.host.clone(),
                kind: kinds
                    .iter()
                    .find(|(id, _)| *id == g.host)
                    .map(|(_, k)| k.clone())
                    .unwrap_or_default(),
                up: g.up,
                queue: g.queue_depth,
                own: g.own.iter().map(|s| (s.name.clone(), s.value)).collect(),
            })
            .collect(),
        s2s: switchboard_core::admin::s2s_links(&scrape.federation),
    }
}

/// A page with the headers every console page has: never cached, never
/// framed, no scripts at all, forms only to this server.
pub(crate) fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut r = reply::with(status, "text/html; charset=utf-8", body);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` with the
    // forms, which the origin check refuses.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// 303 See Other to `to` (after a form, and to the login page).
pub(crate) fn redirect(to: &'static str) -> Response<Body> {
    let mut r = reply::with(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        format!("see {to}\n"),
    );
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
