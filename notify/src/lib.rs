//! `switchboard send`: the classic "pipe standard input to a JID" tool for
//! monitoring scripts (cron, swatch, Nagios), as a library.
//!
//! It is a real XMPP client and works against any server: it connects to
//! `--server` or the account's domain on port 5222 (no DNS SRV lookup),
//! requires STARTTLS, verifies the certificate ([`tls`]), logs in with
//! SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN (the link kit's
//! [`switchboard_link::scram`]), binds a resource, sends
//! one message per recipient, waits until the server has handled each of
//! them ([`machine`] explains how), and closes the stream cleanly. Success
//! means the server accepted the message for every recipient: delivered,
//! or stored for an offline one (a headline to an offline user is dropped
//! by design).
//!
//! The parts:
//!
//! * [`input`]: the account (file or environment), recipients and message
//!   text, all checked before connecting;
//! * [`machine`]: the sans-IO negotiation and delivery state machine;
//! * [`tls`]: trust (system roots, `--ca-file`, `--fingerprint`) in the
//!   words of the command line, over the link kit's verifiers;
//! * [`driver`]: the tokio I/O around the machine, under one deadline;
//! * [`error`]: every failure and its exit code.

pub mod driver;
pub mod error;
pub mod input;
pub mod machine;
pub mod tls;

use std::time::Duration;

use switchboard_jid::Jid;

pub use error::{Failure, RecipientError};
pub use input::Account;
pub use machine::{MessageType, Report};
pub use tls::Trust;

/// One run of the tool, everything already checked.
#[derive(Debug, Clone)]
pub struct Request {
    pub account: Account,
    /// Normalized and deduplicated ([`input::parse_recipients`]).
    pub recipients: Vec<Jid>,
    /// The message text ([`input::prepare_body`]).
    pub body: String,
    pub subject: Option<String>,
    pub kind: MessageType,
    /// `HOST[:PORT]`; `None` means the account's domain on 5222.
    pub server: Option<String>,
    pub trust: Trust,
    /// The bound on the whole exchange, from connecting to the server's
    /// confirmation.
    pub timeout: Duration,
}

/// Sends the message. `notes` receives progress lines (for `--verbose`).
pub async fn send(req: Request, notes: &mut dyn FnMut(&str)) -> Result<Report, Failure> {
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).expect("the operating system's random source works");
    let prefix: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    driver::run(req, format!("send-{prefix}"), notes).await
}
