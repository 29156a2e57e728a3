//! The console's forms, carried out: each checks that the logged-in admin
//! administers the host concerned, calls the core's admin seam (or the
//! group chat service's own admin commands), leaves the outcome as a
//! message for the next page and redirects there (post/redirect/get, so
//! a reload never sends a form twice).

use http::Response;
use switchboard_core::admin::{self, service_commands, Announcement};
use switchboard_jid::Jid;
use switchboard_muc::commands as muc_commands;

use super::form::Form;
use super::session::Session;
use super::{redirect, rooms_service};
use crate::reply::{self, Body};
use crate::App;

/// A form's outcome: whether it worked, and a sentence.
type Outcome = Result<String, String>;

pub(super) async fn post(
    app: &App,
    sub: &str,
    session: &Session,
    hosts: &[String],
    form: &Form,
) -> Response<Body> {
    let by = Some(&session.jid);
    let (back, outcome): (&'static str, Outcome) = match sub {
        "/logout" => return super::login::logout(app, &session.id),
        "/users/add" => ("/admin/users", add_user(app, hosts, form, by).await),
        "/users/password" => ("/admin/users", set_password(app, hosts, form, by).await),
        "/users/delete" => ("/admin/users", delete_user(app, hosts, form, by).await),
        "/sessions/kick" => ("/admin/sessions", kick(app, hosts, form)),
        "/announce" => ("/admin/announce", announce(app, hosts, form)),
        "/motd" => ("/admin/announce", motd(app, hosts, form).await),
        "/rooms/destroy" => ("/admin/rooms", destroy_room(app, hosts, form).await),
        "/rooms/announce" => ("/admin/rooms", announce_rooms(app, hosts, form).await),
        _ => return reply::not_found(),
    };
    let (ok, text) = match outcome {
        Ok(t) => (true, t),
        Err(t) => (false, t),
    };
    tracing::info!(admin = %session.jid, action = sub, ok, "admin console: {text}");
    app.console.sessions.flash(&session.id, ok, text);
    redirect(back)
}

/// The form's `host`, if the admin administers it.
fn host<'a>(hosts: &'a [String], form: &Form) -> Result<&'a str, String> {
    let h = form.get("host").trim();
    hosts
        .iter()
        .find(|x| x.as_str() == h)
        .map(String::as_str)
        .ok_or_else(|| format!("you are not an administrator of '{h}'"))
}

/// The form's `jid` as an account (bare, with a user part) of a host the
/// admin administers.
fn account(hosts: &[String], value: &str) -> Result<Jid, String> {
    let jid = Jid::parse(value.trim()).map_err(|e| format!("'{value}' is not a Jabber ID: {e}"))?;
    if jid.node().is_none() || jid.resource().is_some() {
        return Err(format!("'{jid}' is not an account (user@host)"));
    }
    if !hosts.iter().any(|h| h == jid.domain()) {
        return Err(format!("you are not an administrator of {}", jid.domain()));
    }
    Ok(jid)
}

fn password(form: &Form) -> Result<String, String> {
    let p = form.get("password");
    if p.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(p.to_string())
}

/// A stanza error from the seam as a sentence.
fn why(e: switchboard_core::stanza::StanzaError) -> String {
    e.text.unwrap_or_else(|| e.condition.replace('-', " "))
}

async fn add_user(app: &App, hosts: &[String], form: &Form, by: Option<&Jid>) -> Outcome {
    let host = host(hosts, form)?;
    let typed = form.get("user").trim();
    // The user part as the server normalizes it (PRECIS), and nothing but
    // a user part.
    let jid = Jid::parse(&format!("{typed}@{host}"))
        .ok()
        .filter(|j| j.domain() == host && j.resource().is_none() && j.node().is_some())
        .ok_or_else(|| format!("'{typed}' is not a valid user name"))?;
    let user = jid.node().unwrap_or_default();
    let pw = password(form)?;
    admin::add_user(&app.handles.admin, host, user, pw, by)
        .await
        .map_err(|e| format!("cannot create {jid}: {}", why(e)))?;
    Ok(format!("{jid} is created."))
}

async fn set_password(app: &App, hosts: &[String], form: &Form, by: Option<&Jid>) -> Outcome {
    let jid = account(hosts, form.get("jid"))?;
    let pw = password(form)?;
    let user = jid.node().unwrap_or_default();
    admin::set_password(&app.handles.admin, jid.domain(), user, pw, by)
        .await
        .map_err(|e| format!("cannot change the password of {jid}: {}", why(e)))?;
    Ok(format!("The password of {jid} is changed."))
}

async fn delete_user(app: &App, hosts: &[String], form: &Form, by: Option<&Jid>) -> Outcome {
    let jid = account(hosts, form.get("jid"))?;
    admin::delete_user(&app.handles.admin, &jid, by)
        .await
        .map_err(|e| format!("cannot delete {jid}: {}", why(e)))?;
    Ok(format!("{jid} is deleted."))
}

fn kick(app: &App, hosts: &[String], form: &Form) -> Outcome {
    let value = form.get("jid").trim();
    let jid = Jid::parse(value).map_err(|e| format!("'{value}' is not a Jabber ID: {e}"))?;
    if !hosts.iter().any(|h| h == jid.domain()) {
        return Err(format!("you are not an administrator of {}", jid.domain()));
    }
    let n = admin::kick(&app.handles.admin.router, &jid).map_err(|e| e.to_string())?;
    Ok(format!("{jid}: {n} session(s) closed."))
}

fn announcement(form: &Form) -> Result<Announcement, String> {
    Announcement::new(form.trimmed("subject"), form.get("body")).map_err(|e| e.to_string())
}

fn announce(app: &App, hosts: &[String], form: &Form) -> Outcome {
    let host = host(hosts, form)?;
    let a = announcement(form)?;
    let n =
        admin::announce_online(&app.handles.admin.router, host, &a).map_err(|e| e.to_string())?;
    Ok(format!(
        "The announcement was sent to {n} online session(s) on {host}."
    ))
}

async fn motd(app: &App, hosts: &[String], form: &Form) -> Outcome {
    let host = host(hosts, form)?;
    let seam = &app.handles.admin;
    match form.get("op") {
        "set" => {
            let n = admin::set_motd(seam, host, announcement(form)?)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "The message of the day of {host} is set; {n} online user(s) were shown it."
            ))
        }
        "update" => {
            admin::update_motd(seam, host, announcement(form)?)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("The message of the day of {host} is updated."))
        }
        "delete" => {
            let existed = admin::delete_motd(seam, host)
                .await
                .map_err(|e| e.to_string())?;
            Ok(if existed {
                format!("The message of the day of {host} is deleted.")
            } else {
                format!("{host} had no message of the day.")
            })
        }
        other => Err(format!(
            "'{other}' is not something to do with the message of the day"
        )),
    }
}

/// Runs a command of the group chat service, as the admin socket does.
async fn room_command(
    app: &App,
    hosts: &[String],
    node: &str,
    fields: Vec<(String, String)>,
) -> Outcome {
    let muc = rooms_service(app, hosts).ok_or("there is no group chat service you administer")?;
    let lines = service_commands::run(&app.handles.admin.router, &muc, node, &fields).await?;
    Ok(if lines.is_empty() {
        "Done.".to_string()
    } else {
        lines.join(" ")
    })
}

async fn destroy_room(app: &App, hosts: &[String], form: &Form) -> Outcome {
    let room = form.get("room").trim();
    let jid = Jid::parse(room).map_err(|e| format!("'{room}' is not a room address: {e}"))?;
    if jid.node().is_none() || jid.resource().is_some() || Some(jid.domain()) != app.muc.as_deref()
    {
        return Err(format!(
            "'{room}' is not a room of this server's group chat service"
        ));
    }
    let mut fields = vec![("room".to_string(), jid.to_string())];
    if let Some(reason) = form.trimmed("reason") {
        fields.push(("reason".into(), reason.to_string()));
    }
    let said = room_command(app, hosts, muc_commands::DESTROY, fields).await?;
    Ok(format!("{jid} is destroyed. {said}"))
}

async fn announce_rooms(app: &App, hosts: &[String], form: &Form) -> Outcome {
    let body = form
        .trimmed("body")
        .ok_or("the announcement is empty")?
        .to_string();
    room_command(
        app,
        hosts,
        muc_commands::ANNOUNCE,
        vec![("body".into(), body)],
    )
    .await
}
