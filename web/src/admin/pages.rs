//! The console's pages as HTML: plain server-rendered pages with a nav
//! bar, tables and forms, styled by one small stylesheet and no script.
//! Pure functions from what a page shows to its text; every value shown
//! passes through [`esc`], and every form carries the session's CSRF
//! token.

use std::fmt::Write as _;
use std::time::Duration;

use switchboard_core::s2s::links::{Direction, LinkView};

use super::session::{Flash, CSRF_FIELD};
use crate::html::esc;

/// Which nav entry a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Status,
    Users,
    Sessions,
    Announce,
    Rooms,
}

/// What every page of a logged-in admin needs.
pub(crate) struct Frame<'a> {
    pub admin: &'a str,
    pub csrf: &'a str,
    pub flash: Option<&'a Flash>,
    /// Whether there is a group chat service (the Rooms entry).
    pub rooms: bool,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Status, "/admin/", "Status"),
    (Nav::Users, "/admin/users", "Users"),
    (Nav::Sessions, "/admin/sessions", "Sessions"),
    (Nav::Announce, "/admin/announce", "Announcements"),
    (Nav::Rooms, "/admin/rooms", "Rooms"),
];

/// The hidden CSRF field of every form.
pub(crate) fn csrf_input(csrf: &str) -> String {
    format!(
        r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#,
        esc(csrf)
    )
}

fn head(title: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · Switchboard admin</title>
<link rel="stylesheet" href="/admin/style.css">
</head>
"#,
        esc(title)
    )
}

/// A logged-in page: nav bar, title, the flash message, then `content`.
pub(crate) fn page(frame: &Frame<'_>, current: Nav, title: &str, content: &str) -> String {
    let mut out = head(title);
    out.push_str("<body>\n<header><nav>\n<span class=\"brand\">Switchboard</span>\n");
    for (nav, href, label) in NAV {
        if nav == Nav::Rooms && !frame.rooms {
            continue;
        }
        let class = if nav == current {
            " class=\"current\""
        } else {
            ""
        };
        let _ = writeln!(out, "<a href=\"{href}\"{class}>{label}</a>");
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/admin/logout\" class=\"logout\">{}\
         <span class=\"who\">{}</span> <button type=\"submit\">Log out</button></form>\n\
         </nav></header>\n<main>\n<h1>{}</h1>\n",
        csrf_input(frame.csrf),
        esc(frame.admin),
        esc(title)
    );
    if let Some(f) = frame.flash {
        let _ = writeln!(
            out,
            "<p class=\"flash {}\" role=\"status\">{}</p>",
            if f.ok { "ok" } else { "error" },
            esc(&f.text)
        );
    }
    out.push_str(content);
    out.push_str("\n</main>\n</body>\n</html>\n");
    out
}

/// The login page; `error` after a refused attempt.
pub(crate) fn login(login_token: &str, jid: &str, error: Option<&str>) -> String {
    let mut out = head("Log in");
    out.push_str("<body class=\"login\">\n<main>\n<h1>Switchboard admin</h1>\n");
    if let Some(e) = error {
        let _ = writeln!(
            out,
            "<p class=\"flash error\" role=\"alert\">{}</p>",
            esc(e)
        );
    }
    let _ = write!(
        out,
        r#"<form method="post" action="/admin/login" class="card">
{}
<label>Jabber ID <input type="text" name="jid" value="{}" autocomplete="username" required autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button>
</form>
<p class="hint">Log in with the XMPP account of an administrator of one of this server's hosts.</p>
</main>
</body>
</html>
"#,
        csrf_input(login_token),
        esc(jid)
    );
    out
}

/// What the status page shows.
pub(crate) struct Status {
    pub version: &'static str,
    pub uptime: Duration,
    pub hosts: Vec<String>,
    pub sessions: u64,
    pub connections: u64,
    /// Messages in per second, over the last interval measured.
    pub messages_per_second: f64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub logins: u64,
    pub login_failures: u64,
    pub services: Vec<ServiceRow>,
    /// `None` with federation off.
    pub s2s: Option<Vec<LinkView>>,
}

pub(crate) struct ServiceRow {
    pub host: String,
    pub kind: String,
    pub up: bool,
    pub queue: u64,
    /// The service's own numbers (`rooms 3`).
    pub own: Vec<(String, i64)>,
}

/// `3d 4h 5m 6s`, leaving out leading zero units.
pub(crate) fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h {mins}m")
    } else if hours > 0 {
        format!("{hours}h {mins}m {secs}s")
    } else if mins > 0 {
        format!("{mins}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

pub(crate) fn status(s: &Status) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<section class="tiles">
<div class="tile"><span class="label">Uptime</span><span class="value" id="uptime">{}</span></div>
<div class="tile"><span class="label">Sessions</span><span class="value" id="sessions">{}</span></div>
<div class="tile"><span class="label">Connections</span><span class="value" id="connections">{}</span></div>
<div class="tile"><span class="label">Messages per second</span><span class="value" id="mps">{:.1}</span></div>
</section>
<table class="facts">
<tr><th>Version</th><td>{}</td></tr>
<tr><th>Hosts</th><td>{}</td></tr>
<tr><th>Messages received / sent</th><td>{} / {}</td></tr>
<tr><th>Logins / failed logins</th><td>{} / {}</td></tr>
</table>
"#,
        esc(&duration(s.uptime)),
        s.sessions,
        s.connections,
        s.messages_per_second,
        esc(s.version),
        esc(&s.hosts.join(", ")),
        s.messages_in,
        s.messages_out,
        s.logins,
        s.login_failures,
    );
    out.push_str("<h2>Services</h2>\n");
    if s.services.is_empty() {
        out.push_str("<p class=\"empty\">No services are configured.</p>\n");
    } else {
        out.push_str(
            "<table><thead><tr><th>Service</th><th>Type</th><th>State</th><th>Queue</th><th>Figures</th></tr></thead><tbody>\n",
        );
        for r in &s.services {
            let own: Vec<String> = r
                .own
                .iter()
                .map(|(k, v)| format!("{} {v}", esc(&k.replace('_', " "))))
                .collect();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><span class=\"badge {}\">{}</span></td><td>{}</td><td>{}</td></tr>",
                esc(&r.host),
                esc(&r.kind),
                if r.up { "up" } else { "down" },
                if r.up { "up" } else { "down" },
                r.queue,
                own.join(", ")
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("<h2>Links to other servers</h2>\n");
    match &s.s2s {
        None => out
            .push_str("<p class=\"empty\">Federation is off (no &lt;s2s&gt; in the config).</p>\n"),
        Some(links) if links.is_empty() => {
            out.push_str("<p class=\"empty\">No links at the moment.</p>\n")
        }
        Some(links) => {
            out.push_str("<table><thead><tr><th>Direction</th><th>Local</th><th>Remote</th><th>State</th><th>Address</th><th>Age</th><th>Stanzas</th></tr></thead><tbody>\n");
            for l in links {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    match l.direction {
                        Direction::Out => "outgoing",
                        Direction::In => "incoming",
                    },
                    esc(&l.local),
                    esc(if l.remote.is_empty() { "?" } else { &l.remote }),
                    esc(&l.state),
                    esc(&l.addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into())),
                    esc(&duration(Duration::from_secs(l.seconds))),
                    l.stanzas
                );
            }
            out.push_str("</tbody></table>\n");
        }
    }
    out
}

/// A host selector for forms (one host: a hidden field and its name).
fn host_field(hosts: &[String]) -> String {
    match hosts {
        [one] => format!(
            "<input type=\"hidden\" name=\"host\" value=\"{}\"><span class=\"fixed\">@{}</span>",
            esc(one),
            esc(one)
        ),
        many => {
            let mut s = String::from("<select name=\"host\">");
            for h in many {
                let _ = write!(s, "<option value=\"{0}\">@{0}</option>", esc(h));
            }
            s.push_str("</select>");
            s
        }
    }
}

/// The users page: every account of each host the admin administers,
/// with forms to create, reset passwords and delete.
pub(crate) fn users(csrf: &str, hosts: &[String], accounts: &[(String, Vec<String>)]) -> String {
    let token = csrf_input(csrf);
    let mut out = format!(
        r#"<section class="card">
<h2>Create a user</h2>
<form method="post" action="/admin/users/add" class="inline">
{token}
<label>User <input type="text" name="user" required></label>{}
<label>Password <input type="password" name="password" autocomplete="new-password" required></label>
<button type="submit">Create</button>
</form>
</section>
"#,
        host_field(hosts)
    );
    for (host, users) in accounts {
        let _ = writeln!(
            out,
            "<h2>{} <span class=\"count\">{} accounts</span></h2>",
            esc(host),
            users.len()
        );
        if users.is_empty() {
            out.push_str("<p class=\"empty\">No accounts.</p>\n");
            continue;
        }
        out.push_str("<table class=\"users\"><thead><tr><th>Account</th><th>New password</th><th></th></tr></thead><tbody>\n");
        for u in users {
            let jid = esc(&format!("{u}@{host}"));
            let _ = writeln!(
                out,
                r#"<tr><td class="jid">{jid}</td>
<td><form method="post" action="/admin/users/password" class="inline">{token}<input type="hidden" name="jid" value="{jid}"><input type="password" name="password" autocomplete="new-password" aria-label="New password for {jid}" required> <button type="submit">Set password</button></form></td>
<td><form method="post" action="/admin/users/delete" class="inline">{token}<input type="hidden" name="jid" value="{jid}"><button type="submit" class="danger">Delete</button></form></td></tr>"#
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out
}

/// The online sessions, each with a kick button.
pub(crate) fn sessions(csrf: &str, online: &[String]) -> String {
    let token = csrf_input(csrf);
    let mut out = format!("<p class=\"count\">{} sessions online.</p>\n", online.len());
    if online.is_empty() {
        return out;
    }
    out.push_str(
        "<table class=\"sessions\"><thead><tr><th>Session</th><th></th></tr></thead><tbody>\n",
    );
    for s in online {
        let jid = esc(s);
        let _ = writeln!(
            out,
            r#"<tr><td class="jid">{jid}</td><td><form method="post" action="/admin/sessions/kick" class="inline">{token}<input type="hidden" name="jid" value="{jid}"><button type="submit" class="danger">Kick</button></form></td></tr>"#
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

/// The announcement form and the message of the day per host.
pub(crate) fn announce(csrf: &str, hosts: &[String], motds: &[(String, Option<String>)]) -> String {
    let token = csrf_input(csrf);
    let hostf = host_field(hosts);
    let mut out = format!(
        r#"<section class="card">
<h2>Announce to online users</h2>
<p class="hint">Sent now to every available session of the host; nobody offline gets it.</p>
<form method="post" action="/admin/announce">
{token}
<div class="row"><label>Host {hostf}</label>
<label>Subject <input type="text" name="subject"></label></div>
<label>Message <textarea name="body" rows="4" required></textarea></label>
<button type="submit">Send announcement</button>
</form>
</section>
"#
    );
    for (host, current) in motds {
        let h = esc(host);
        let _ = write!(
            out,
            r#"<section class="card">
<h2>Message of the day on {h}</h2>
"#
        );
        match current {
            Some(text) => {
                let _ = writeln!(out, "<blockquote class=\"motd\">{}</blockquote>", esc(text));
            }
            None => out.push_str("<p class=\"empty\">No message of the day.</p>\n"),
        }
        let _ = write!(
            out,
            r#"<form method="post" action="/admin/motd">
{token}<input type="hidden" name="host" value="{h}">
<label>Text <textarea name="body" rows="3">{}</textarea></label>
<p class="hint">Set: everyone sees it once, at login or now. Update: only those who have not seen it yet get the new text.</p>
<button type="submit" name="op" value="set">Set</button>
<button type="submit" name="op" value="update">Update</button>
<button type="submit" name="op" value="delete" class="danger">Delete</button>
</form>
</section>
"#,
            esc(current.as_deref().unwrap_or_default())
        );
    }
    out
}

/// The rooms of the group chat service: `table` is its list command's
/// answer (a header line, then a line per room, tab-separated, the room's
/// address first), or why it could not be had.
pub(crate) fn rooms(csrf: &str, service: &str, table: Result<&[String], &str>) -> String {
    let token = csrf_input(csrf);
    let svc = esc(service);
    let mut out = format!(
        r#"<section class="card">
<h2>Announce to every room of {svc}</h2>
<form method="post" action="/admin/rooms/announce" class="inline">
{token}
<label>Message <input type="text" name="body" required></label>
<button type="submit">Announce</button>
</form>
</section>
"#
    );
    let lines = match table {
        Ok(lines) => lines,
        Err(e) => {
            let _ = writeln!(out, "<p class=\"flash error\">{}</p>", esc(e));
            return out;
        }
    };
    let mut rows = lines.iter().map(|l| l.split('\t').collect::<Vec<_>>());
    let Some(header) = rows.next() else {
        out.push_str("<p class=\"empty\">The service sent no list.</p>\n");
        return out;
    };
    let rows: Vec<Vec<&str>> = rows.filter(|r| r.len() == header.len()).collect();
    let _ = writeln!(out, "<p class=\"count\">{} rooms.</p>", rows.len());
    if rows.is_empty() {
        return out;
    }
    out.push_str("<table class=\"rooms\"><thead><tr>");
    for h in &header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("<th>Destroy</th></tr></thead><tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in &r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        let room = esc(r[0]);
        let _ = writeln!(
            out,
            r#"<td><form method="post" action="/admin/rooms/destroy" class="inline">{token}<input type="hidden" name="room" value="{room}"><input type="text" name="reason" placeholder="Reason" aria-label="Reason for destroying {room}"> <button type="submit" class="danger">Destroy</button></form></td></tr>"#
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

/// The stylesheet (`/admin/style.css`).
pub(crate) const STYLE: &str = r#"*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2933;background:#f5f7fa}
header{background:#1f3a5f;color:#fff}
nav{display:flex;flex-wrap:wrap;align-items:center;gap:.2em;max-width:72em;margin:0 auto;padding:.5em 1em}
nav a{color:#d9e2ec;text-decoration:none;padding:.35em .75em;border-radius:4px}
nav a:hover{background:#2c4f7c;color:#fff}
nav a.current{background:#fff;color:#1f3a5f;font-weight:600}
.brand{font-weight:700;margin-right:1em;letter-spacing:.02em}
form.logout{margin-left:auto;display:flex;align-items:center;gap:.5em}
.who{color:#bcccdc;font-size:.9em}
main{max-width:72em;margin:0 auto;padding:1em}
h1{font-size:1.5em;margin:.4em 0 .8em}
h2{font-size:1.15em;margin:1.4em 0 .5em}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d9e2ec;border-radius:6px;overflow:hidden;margin-bottom:1em}
th,td{text-align:left;padding:.45em .7em;border-bottom:1px solid #e4e7eb;vertical-align:middle}
thead th{background:#f0f4f8;font-weight:600;color:#486581}
table.facts{width:auto}
table.facts th{color:#486581;font-weight:600}
.tiles{display:flex;flex-wrap:wrap;gap:1em;margin-bottom:1em}
.tile{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:.8em 1.2em;min-width:10em}
.tile .label{display:block;color:#627d98;font-size:.85em}
.tile .value{display:block;font-size:1.6em;font-weight:600}
.card{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:.8em 1.2em;margin-bottom:1em}
.card h2{margin-top:.2em}
label{display:block;margin:.4em 0;color:#486581;font-size:.9em}
form.inline,form.inline label,.row{display:inline-flex;align-items:center;gap:.4em;margin:0}
.row{gap:1em}
input,select,textarea{font:inherit;padding:.35em .5em;border:1px solid #bcccdc;border-radius:4px;background:#fff;color:#1f2933}
textarea{display:block;width:100%;max-width:40em}
button{font:inherit;padding:.35em .9em;border:0;border-radius:4px;background:#2680c2;color:#fff;cursor:pointer}
button:hover{background:#186faf}
button.danger{background:#cf1124}
button.danger:hover{background:#ab091e}
nav button{background:#2c4f7c}
.flash{padding:.6em 1em;border-radius:4px;border:1px solid}
.flash.ok{background:#e3f9e5;border-color:#57ae5b;color:#0e5814}
.flash.error{background:#ffe3e3;border-color:#e12d39;color:#610316}
.badge{padding:.1em .5em;border-radius:1em;font-size:.85em}
.badge.up{background:#e3f9e5;color:#0e5814}
.badge.down{background:#ffe3e3;color:#610316}
.empty,.hint,.count{color:#627d98}
.count{font-size:.85em;font-weight:normal}
.jid{font-family:ui-monospace,monospace}
.fixed{color:#486581}
blockquote.motd{margin:.5em 0;padding:.5em 1em;border-left:4px solid #2680c2;background:#f0f4f8;white-space:pre-wrap}
body.login main{max-width:26em;margin-top:10vh}
body.login .card label{display:block}
body.login input{width:100%}
body.login button{margin-top:.6em;width:100%}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn frame<'a>(flash: Option<&'a Flash>) -> Frame<'a> {
        Frame {
            admin: "admin@localhost",
            csrf: "tok\"en",
            flash,
            rooms: false,
        }
    }

    #[test]
    fn every_value_is_escaped_and_every_form_has_the_token() {
        let flash = Flash {
            ok: false,
            text: "<b>bad</b>".into(),
        };
        let html = page(
            &frame(Some(&flash)),
            Nav::Users,
            "Users",
            &users(
                "tok\"en",
                &["localhost".into()],
                &[("localhost".into(), vec!["<img src=x>".into()])],
            ),
        );
        assert!(!html.contains("<b>bad"), "{html}");
        assert!(html.contains("&lt;b&gt;bad&lt;/b&gt;"));
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x&gt;@localhost"));
        let forms = html.matches("<form ").count();
        assert_eq!(forms, 4, "logout, create, password, delete");
        assert_eq!(
            html.matches(r#"name="csrf" value="tok&quot;en""#).count(),
            forms
        );
        assert!(html.contains(r#"<a href="/admin/users" class="current">"#));
        assert!(!html.contains("/admin/rooms"), "no rooms without MUC");
    }

    #[test]
    fn the_rooms_table_comes_from_the_service_lines() {
        let lines = vec![
            "Room\tName\tOccupants".to_string(),
            "lobby@conference.localhost\t<Lobby>\t2".to_string(),
        ];
        let html = rooms("t", "conference.localhost", Ok(&lines));
        assert!(html.contains("<th>Room</th><th>Name</th><th>Occupants</th><th>Destroy</th>"));
        assert!(
            html.contains("<td>lobby@conference.localhost</td><td>&lt;Lobby&gt;</td><td>2</td>")
        );
        assert!(html.contains(r#"name="room" value="lobby@conference.localhost""#));
        let html = rooms(
            "t",
            "conference.localhost",
            Err("conference.localhost: <down>"),
        );
        assert!(html.contains("&lt;down&gt;"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_secs(65)), "1m 5s");
        assert_eq!(duration(Duration::from_secs(3661)), "1h 1m 1s");
        assert_eq!(
            duration(Duration::from_secs(2 * 86400 + 7200 + 60)),
            "2d 2h 1m"
        );
    }
}
