//! `switchboard send`: the command-line face of the `switchboard-notify`
//! client. Checks everything it can before connecting (recipients,
//! account, trust options, standard input), runs the client on a small
//! runtime, and turns the outcome into a message on standard error and an
//! exit code. On success it prints nothing, so cron mails nothing.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use switchboard_notify::input::{self, ENV_JID, ENV_PASSWORD};
use switchboard_notify::{Failure, MessageType, Report, Request, Trust};

use crate::cli::{SendArgs, SendType};

/// Runs `switchboard send`; the exit code is documented in its `--help`.
pub fn run(args: SendArgs) -> ExitCode {
    let verbose = args.verbose;
    match send(args) {
        Ok(report) => {
            if verbose {
                eprintln!(
                    "switchboard send: handed over for {} (as {}, {})",
                    report.delivered.join(", "),
                    report.bound,
                    report.mechanism
                );
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("switchboard send: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn send(args: SendArgs) -> Result<Report, Failure> {
    let recipients = input::parse_recipients(&args.recipients)?;
    let account = match &args.account_file {
        Some(path) => {
            let (account, warning) = input::load_account_file(path)?;
            if let Some(w) = warning {
                eprintln!("switchboard send: {w}");
            }
            account
        }
        None => input::account_from_env(
            std::env::var(ENV_JID).ok(),
            std::env::var(ENV_PASSWORD).ok(),
        )?,
    };
    let trust = match (&args.ca_file, &args.fingerprint) {
        (_, Some(fp)) => Trust::Pinned(vec![
            switchboard_notify::tls::parse_fingerprint(fp).map_err(Failure::Usage)?
        ]),
        (Some(path), None) => Trust::CaFile(path.clone()),
        (None, None) => Trust::System,
    };
    let subject = match args.subject.as_deref() {
        Some(s) => {
            let p = input::sanitize(s, "subject");
            if let Some(w) = p.warning {
                eprintln!("switchboard send: {w}");
            }
            Some(p.text).filter(|s| !s.trim().is_empty())
        }
        None => None,
    };
    let body = read_body()?;

    let request = Request {
        account,
        recipients,
        body,
        subject,
        kind: match args.kind {
            SendType::Chat => MessageType::Chat,
            SendType::Normal => MessageType::Normal,
            SendType::Headline => MessageType::Headline,
        },
        server: args.server,
        trust,
        timeout: Duration::from_secs(args.timeout),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the runtime: {e}")))?;
    let verbose = args.verbose;
    let mut notes = |line: &str| {
        if verbose {
            eprintln!("switchboard send: {line}");
        }
    };
    runtime.block_on(switchboard_notify::send(request, &mut notes))
}

/// All of standard input, checked and cleaned.
fn read_body() -> Result<String, Failure> {
    let mut stdin = std::io::stdin().lock();
    if stdin.is_terminal() {
        eprintln!("switchboard send: reading the message from standard input; end it with Ctrl-D");
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Input(format!("cannot read standard input: {e}")))?;
    let prepared = input::prepare_body(&bytes)?;
    if let Some(w) = prepared.warning {
        eprintln!("switchboard send: {w}");
    }
    Ok(prepared.text)
}
