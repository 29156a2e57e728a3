//! `switchboard announce`, `switchboard users online`, `switchboard
//! kick` and `switchboard rooms …`: the client side of the running
//! server's admin socket
//! (`HOME/run/admin.sock`; the protocol is documented in
//! `switchboard_core::admin::socket`). Only the user the server runs as
//! (or root) can use them.
//!
//! `rooms` asks the server to run the group chat service's admin
//! commands (XEP-0050, the same ones admins use from a client) and
//! prints the answer's lines.
//!
//! Exit codes: 0 done; 1 the server refused or failed (the reason is on
//! standard error: no such session, unknown host, empty announcement, no
//! such room or service);
//! 69 (`EX_UNAVAILABLE`) the server is not running for this home.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use switchboard_core::admin::socket::{self, ClientError, Request};

use crate::cli::{Command, RoomsCommand, UsersCommand};
use switchboard_muc::commands as muc_commands;

/// How long any step of a request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// `sysexits.h`: a service is unavailable.
const EX_UNAVAILABLE: u8 = 69;

/// Where the server of `home` listens for admin commands.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join("run").join("admin.sock")
}

/// Runs an admin command against the server of `home`.
pub fn run(cmd: Command, home: &Path) -> ExitCode {
    let request = match cmd {
        Command::Announce { host, subject } => match read_body() {
            Ok(body) => Request::Announce {
                host,
                subject,
                body,
            },
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        Command::Users(UsersCommand::Online { host }) => Request::UsersOnline { host },
        Command::Kick { ref jid } => Request::Kick { jid: jid.clone() },
        Command::Rooms(ref rooms) => match rooms_request(rooms) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        _ => unreachable!("only admin commands come here"),
    };
    let path = socket_path(home);
    let response = match socket::request(&path, &request, TIMEOUT) {
        Ok(r) => r,
        Err(e @ ClientError::NotRunning { .. }) => {
            eprintln!(
                "{e}.\nStart it with `switchboard -H {home}`, or point -H (or SWITCHBOARD_HOME) at the home of the server that is running.",
                home = home.display()
            );
            return ExitCode::from(EX_UNAVAILABLE);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match response.outcome {
        Ok(text) => text,
        Err(f) => {
            eprintln!("{}", f.text);
            return ExitCode::FAILURE;
        }
    };
    match request {
        Request::Announce { .. } => println!("sent to {text} online session(s)"),
        Request::UsersOnline { .. } => {
            for jid in response.data {
                println!("{jid}");
            }
        }
        Request::Kick { jid } => println!("disconnected {text} session(s) of {jid}"),
        Request::ServiceCommand { .. } => {
            for line in response.data {
                println!("{line}");
            }
        }
    }
    ExitCode::SUCCESS
}

/// The service command a `rooms` subcommand is.
fn rooms_request(cmd: &RoomsCommand) -> Result<Request, String> {
    let service_of = |room: &str| -> Result<String, String> {
        let jid = switchboard_jid::Jid::parse(room)
            .map_err(|e| format!("'{room}' is not a room address: {e}"))?;
        if jid.node().is_none() || jid.resource().is_some() {
            return Err(format!("'{room}' is not a room address: give room@service"));
        }
        Ok(jid.domain().to_string())
    };
    let field = |k: &str, v: &str| (k.to_string(), v.to_string());
    Ok(match cmd {
        RoomsCommand::List { service } => Request::ServiceCommand {
            service: service.clone(),
            node: muc_commands::LIST.into(),
            fields: Vec::new(),
        },
        RoomsCommand::Show { room } => Request::ServiceCommand {
            service: service_of(room)?,
            node: muc_commands::INSPECT.into(),
            fields: vec![field("room", room)],
        },
        RoomsCommand::Destroy {
            room,
            reason,
            venue,
        } => {
            let mut fields = vec![field("room", room)];
            if let Some(r) = reason {
                fields.push(field("reason", r));
            }
            if let Some(v) = venue {
                fields.push(field("venue", v));
            }
            Request::ServiceCommand {
                service: service_of(room)?,
                node: muc_commands::DESTROY.into(),
                fields,
            }
        }
        RoomsCommand::Announce { service } => Request::ServiceCommand {
            service: service.clone(),
            node: muc_commands::ANNOUNCE.into(),
            fields: vec![field("body", &read_body()?)],
        },
    })
}

/// The announcement's text from standard input (a prompt on a terminal).
fn read_body() -> Result<String, String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Type the announcement, then Ctrl-D on a line of its own:");
    }
    let mut body = String::new();
    stdin
        .read_to_string(&mut body)
        .map_err(|e| format!("cannot read the announcement from standard input: {e}"))?;
    let body = body.trim_end_matches(['\r', '\n']).to_string();
    if body.trim().is_empty() {
        return Err("the announcement is empty: give its text on standard input".into());
    }
    Ok(body)
}
