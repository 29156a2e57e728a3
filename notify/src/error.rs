//! Why a send failed, and the exit code each reason maps to.
//!
//! The codes follow `sysexits.h` so that monitoring systems can tell "fix
//! the input" from "fix the server" from "try again later". Every
//! [`Failure`] displays as one or two sentences for standard error that say
//! what happened and what to do about it.

use std::fmt;

/// `EX_USAGE`: the command line or the account is wrong.
pub const EXIT_USAGE: u8 = 64;
/// `EX_DATAERR`: the message or a recipient is wrong (malformed JID, or
/// the server answered an error for a recipient).
pub const EXIT_DATA: u8 = 65;
/// `EX_NOHOST`: the server cannot be reached (DNS, connection refused).
pub const EXIT_NOHOST: u8 = 68;
/// `EX_UNAVAILABLE`: the server speaks, but not well enough (no STARTTLS,
/// no usable SASL mechanism, a stream error, an unexpected answer).
pub const EXIT_PROTOCOL: u8 = 69;
/// `EX_IOERR`: the TLS handshake failed (untrusted certificate, fingerprint
/// mismatch, no common protocol version).
pub const EXIT_TLS: u8 = 74;
/// `EX_TEMPFAIL`: the run did not finish within `--timeout`.
pub const EXIT_TIMEOUT: u8 = 75;
/// `EX_NOPERM`: the server refused the account's credentials.
pub const EXIT_AUTH: u8 = 77;

/// A stanza error the server returned for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientError {
    /// The recipient as given (normalized).
    pub jid: String,
    /// The RFC 6120 §8.3.3 condition (`service-unavailable`, …).
    pub condition: String,
    /// The human-readable `<text/>`, if the server sent one.
    pub text: Option<String>,
}

impl fmt::Display for RecipientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.jid, self.condition)?;
        if let Some(t) = &self.text {
            write!(f, " ({t})")?;
        }
        if let Some(hint) = condition_hint(&self.condition) {
            write!(f, " — {hint}")?;
        }
        Ok(())
    }
}

/// What a recipient error usually means, for the operator.
fn condition_hint(condition: &str) -> Option<&'static str> {
    Some(match condition {
        "service-unavailable" | "item-not-found" | "recipient-unavailable" => {
            "no such account there, or it accepts no messages"
        }
        "remote-server-not-found" => "that domain does not exist or its server cannot be reached",
        "remote-server-timeout" => "that domain's server did not answer in time",
        "jid-malformed" => "the server considers the address malformed",
        "forbidden" | "not-allowed" | "not-authorized" => {
            "this account may not send to that address"
        }
        "resource-constraint" => "the recipient's storage is full; retry later",
        "policy-violation" => "the server's policy refused the message (too large? rate limit?)",
        _ => return None,
    })
}

/// Why a send failed. See the module docs for the exit codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The invocation or the account is wrong (exit 64).
    Usage(String),
    /// Standard input or a recipient address is unusable; nothing was sent
    /// (exit 65).
    Input(String),
    /// The server answered an error for some recipients (exit 65). The
    /// message was handed over for the others.
    Recipients {
        failed: Vec<RecipientError>,
        delivered: Vec<String>,
    },
    /// The server cannot be reached (exit 68).
    Unreachable(String),
    /// The server refused or broke the protocol (exit 69).
    Protocol(String),
    /// The TLS handshake failed (exit 74). `fingerprint` is the SHA-256
    /// fingerprint of the certificate the server presented, if it got
    /// that far, so the operator can pin it.
    Tls {
        reason: String,
        fingerprint: Option<String>,
        pinned: bool,
    },
    /// The server refused the credentials (exit 77).
    Auth {
        account: String,
        condition: String,
        text: Option<String>,
    },
    /// `--timeout` ran out while waiting for `waiting_for` (exit 75).
    Timeout { secs: u64, waiting_for: String },
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Input(_) | Failure::Recipients { .. } => EXIT_DATA,
            Failure::Unreachable(_) => EXIT_NOHOST,
            Failure::Protocol(_) => EXIT_PROTOCOL,
            Failure::Tls { .. } => EXIT_TLS,
            Failure::Auth { .. } => EXIT_AUTH,
            Failure::Timeout { .. } => EXIT_TIMEOUT,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Input(m) => write!(f, "{m}."),
            Failure::Recipients { failed, delivered } => {
                for (i, r) in failed.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "not delivered to {r}")?;
                }
                if !delivered.is_empty() {
                    write!(f, "\nhanded over for {}", delivered.join(", "))?;
                }
                Ok(())
            }
            Failure::Unreachable(m) => write!(
                f,
                "{m}. Check the server name and port (--server HOST:PORT) and that the server is running."
            ),
            Failure::Protocol(m) => write!(f, "{m}."),
            Failure::Tls {
                reason,
                fingerprint,
                pinned,
            } => {
                write!(f, "TLS failed: {reason}.")?;
                match (fingerprint, pinned) {
                    (Some(fp), true) => write!(
                        f,
                        "\nThe server presented SHA-256 fingerprint {fp}; if its certificate was replaced on purpose, pin the new one with --fingerprint {fp}"
                    ),
                    (Some(fp), false) => write!(
                        f,
                        "\nThe server presented a certificate with SHA-256 fingerprint {fp}; if that is your server's own (self-signed) certificate, compare it with the one in the server's log and pass --fingerprint {fp}, or give its CA with --ca-file PEM"
                    ),
                    (None, _) => Ok(()),
                }
            }
            Failure::Auth {
                account,
                condition,
                text,
            } => {
                write!(f, "the server refused the login of {account} ({condition}")?;
                if let Some(t) = text {
                    write!(f, ": {}", t.trim().trim_end_matches('.'))?;
                }
                write!(
                    f,
                    "). Check the account's JID and password (account file or SWITCHBOARD_SEND_JID / SWITCHBOARD_SEND_PASSWORD)."
                )
            }
            Failure::Timeout { secs, waiting_for } => write!(
                f,
                "timed out after {secs} s waiting for {waiting_for}; the message may not have been delivered. Check that the server is up and answering, or raise --timeout."
            ),
        }
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_own_code_and_a_hint() {
        let all = [
            Failure::Usage("u".into()),
            Failure::Input("i".into()),
            Failure::Unreachable("cannot connect".into()),
            Failure::Protocol("p".into()),
            Failure::Tls {
                reason: "r".into(),
                fingerprint: Some("AA:BB".into()),
                pinned: false,
            },
            Failure::Timeout {
                secs: 3,
                waiting_for: "x".into(),
            },
            Failure::Auth {
                account: "a@b".into(),
                condition: "not-authorized".into(),
                text: None,
            },
        ];
        let codes: Vec<u8> = all.iter().map(Failure::exit_code).collect();
        assert_eq!(codes, [64, 65, 68, 69, 74, 75, 77]);
        let tls = all[4].to_string();
        assert!(tls.contains("--fingerprint AA:BB"), "{tls}");
        assert!(all[6].to_string().contains("password"));
    }

    #[test]
    fn recipient_errors_name_the_recipient_and_the_condition() {
        let f = Failure::Recipients {
            failed: vec![RecipientError {
                jid: "nobody@example.com".into(),
                condition: "service-unavailable".into(),
                text: Some("gone".into()),
            }],
            delivered: vec!["ops@example.com".into()],
        };
        assert_eq!(f.exit_code(), 65);
        let s = f.to_string();
        assert!(
            s.starts_with("not delivered to nobody@example.com: service-unavailable (gone)"),
            "{s}"
        );
        assert!(s.contains("handed over for ops@example.com"), "{s}");
    }
}
