//! Everything checked before connecting: the account (from a file or the
//! environment), the recipients, the message text.
//!
//! # The account file
//!
//! ```text
//! # switchboard send account
//! jid = monitoring@example.com
//! password = correct horse battery staple
//! ```
//!
//! One `key = value` per line; `#` starts a comment line; blank lines are
//! ignored. Spaces around the key and the value are not part of them (a
//! password cannot start or end with a space here). Both keys are
//! required, unknown keys are refused (a typo must not go unnoticed). The
//! file should be readable by its owner only; [`load_account_file`] warns
//! when group or others can read it.
//!
//! # Text
//!
//! Standard input must be UTF-8. Trailing line breaks are dropped (what
//! `echo` and most commands add). Characters XML 1.0 cannot carry (the C0
//! controls other than tab, line feed and carriage return, such as the ESC
//! of terminal colours, and U+FFFE/U+FFFF) are removed and reported in a
//! warning, so that a monitoring alert is not lost over a stray control
//! character. A message that is empty, or only whitespace, is refused.

use std::path::Path;

use switchboard_jid::Jid;

use crate::error::Failure;

/// The account to log in as.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub jid: Jid,
    pub password: String,
}

/// The password stays out of debug output.
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("jid", &self.jid)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The environment variable naming the account's JID.
pub const ENV_JID: &str = "SWITCHBOARD_SEND_JID";
/// The environment variable holding the account's password.
pub const ENV_PASSWORD: &str = "SWITCHBOARD_SEND_PASSWORD";

/// Parses an account JID: it needs a localpart; a resource is allowed.
fn account_jid(s: &str, source: &str) -> Result<Jid, Failure> {
    let jid = Jid::parse(s.trim()).map_err(|e| {
        Failure::Usage(format!(
            "the account JID {s:?} from {source} is not valid: {e}"
        ))
    })?;
    if jid.node().is_none() {
        return Err(Failure::Usage(format!(
            "the account JID {s:?} from {source} has no user part (expected user@domain)"
        )));
    }
    Ok(jid)
}

/// Parses the text of an account file (see the module docs).
pub fn parse_account_file(text: &str, source: &str) -> Result<Account, Failure> {
    let mut jid = None;
    let mut password = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Failure::Usage(format!(
                "{source}:{}: expected `jid = …` or `password = …`",
                n + 1
            )));
        };
        let slot = match key.trim() {
            "jid" => &mut jid,
            "password" => &mut password,
            other => {
                return Err(Failure::Usage(format!(
                    "{source}:{}: unknown key {other:?} (the keys are jid and password)",
                    n + 1
                )))
            }
        };
        if slot.is_some() {
            return Err(Failure::Usage(format!(
                "{source}:{}: {} is given twice",
                n + 1,
                key.trim()
            )));
        }
        *slot = Some(value.trim().to_owned());
    }
    let (Some(jid), Some(password)) = (jid, password) else {
        return Err(Failure::Usage(format!(
            "{source} must have both a `jid = …` and a `password = …` line"
        )));
    };
    if password.is_empty() {
        return Err(Failure::Usage(format!("{source}: the password is empty")));
    }
    Ok(Account {
        jid: account_jid(&jid, source)?,
        password,
    })
}

/// Reads an account file. The second value is a warning for standard
/// error when group or others may read the file.
pub fn load_account_file(path: &Path) -> Result<(Account, Option<String>), Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::Usage(format!(
            "cannot read the account file {}: {e}",
            path.display()
        ))
    })?;
    let account = parse_account_file(&text, &path.display().to_string())?;
    Ok((account, permission_warning(path)))
}

#[cfg(unix)]
fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then(|| {
        format!(
            "warning: the account file {} can be read by other users (mode {mode:03o}); protect the password with `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn permission_warning(_path: &Path) -> Option<String> {
    None
}

/// The account from [`ENV_JID`] and [`ENV_PASSWORD`] (values as read from
/// the environment; `None` when unset).
pub fn account_from_env(jid: Option<String>, password: Option<String>) -> Result<Account, Failure> {
    match (jid, password) {
        (Some(jid), Some(password)) if !password.is_empty() => Ok(Account {
            jid: account_jid(&jid, ENV_JID)?,
            password,
        }),
        (None, None) => Err(Failure::Usage(format!(
            "no account to log in with: give --account-file FILE, or set {ENV_JID} and {ENV_PASSWORD}"
        ))),
        _ => Err(Failure::Usage(format!(
            "set both {ENV_JID} and {ENV_PASSWORD} (non-empty), or give --account-file FILE"
        ))),
    }
}

/// Parses and normalizes the recipients, dropping duplicates (in order).
pub fn parse_recipients(args: &[String]) -> Result<Vec<Jid>, Failure> {
    if args.is_empty() {
        return Err(Failure::Usage("give at least one recipient JID".into()));
    }
    let mut out: Vec<Jid> = Vec::with_capacity(args.len());
    for a in args {
        let jid = Jid::parse(a).map_err(|e| {
            Failure::Input(format!(
                "the recipient {a:?} is not a valid JID ({e}); nothing was sent"
            ))
        })?;
        if !out.contains(&jid) {
            out.push(jid);
        }
    }
    Ok(out)
}

/// Whether XML 1.0 can carry this character (the `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Text made fit for a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub text: String,
    /// A warning for standard error, when characters were removed.
    pub warning: Option<String>,
}

/// Removes what XML cannot carry from `text` (called `what` in messages),
/// reporting it.
pub fn sanitize(text: &str, what: &str) -> Prepared {
    let mut removed: Vec<char> = Vec::new();
    let mut count = 0usize;
    let clean: String = text
        .chars()
        .filter(|&c| {
            if xml_char(c) {
                return true;
            }
            count += 1;
            if !removed.contains(&c) {
                removed.push(c);
            }
            false
        })
        .collect();
    let warning = (count > 0).then(|| {
        let shown: Vec<String> = removed
            .iter()
            .take(5)
            .map(|c| format!("U+{:04X}", *c as u32))
            .collect();
        format!(
            "warning: removed {count} character{} XML cannot carry from the {what} ({}{})",
            if count == 1 { "" } else { "s" },
            shown.join(", "),
            if removed.len() > 5 { ", …" } else { "" }
        )
    });
    Prepared {
        text: clean,
        warning,
    }
}

/// The message body from standard input's bytes (see the module docs).
pub fn prepare_body(bytes: &[u8]) -> Result<Prepared, Failure> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Failure::Input(format!(
            "standard input is not valid UTF-8 (bad byte at offset {}); convert it first, e.g. with `iconv -f latin1 -t utf-8`",
            e.valid_up_to()
        ))
    })?;
    let text = text.trim_end_matches(['\n', '\r']);
    let prepared = sanitize(text, "message");
    if prepared.text.trim().is_empty() {
        return Err(Failure::Input(
            "the message on standard input is empty; nothing was sent".into(),
        ));
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_files_have_two_keys() {
        let a = parse_account_file(
            "# comment\n\n  jid = Bot@Example.COM \npassword=  s3 cret=x  \n",
            "f",
        )
        .unwrap();
        assert_eq!(a.jid.to_string(), "bot@example.com");
        assert_eq!(a.password, "s3 cret=x");
        // The password is not in the debug form.
        assert!(!format!("{a:?}").contains("s3 cret"));
        for (text, needle) in [
            ("jid = bot@example.com\n", "both"),
            ("password = x\n", "both"),
            ("jid = bot@example.com\npassword =\n", "empty"),
            ("jid bot@example.com\npassword = x\n", "f:1"),
            (
                "jid = bot@example.com\npasword = x\n",
                "unknown key \"pasword\"",
            ),
            ("jid = a@b\njid = c@d\npassword = x\n", "twice"),
            ("jid = example.com\npassword = x\n", "no user part"),
            ("jid = a@@b\npassword = x\n", "not valid"),
        ] {
            let e = parse_account_file(text, "f").unwrap_err();
            assert_eq!(e.exit_code(), 64, "{text:?}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn loose_account_files_get_a_warning() {
        let dir = std::env::temp_dir().join(format!("sb-notify-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("account");
        std::fs::write(&path, "jid = bot@example.com\npassword = pw\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let (_, warning) = load_account_file(&path).unwrap();
            let w = warning.expect("a world-readable file is reported");
            assert!(w.contains("chmod 600") && w.contains("644"), "{w}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let (a, warning) = load_account_file(&path).unwrap();
            assert_eq!(warning, None);
            assert_eq!(a.password, "pw");
        }
        let e = load_account_file(&dir.join("missing")).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_environment_needs_both_variables() {
        let a = account_from_env(Some("bot@example.com".into()), Some("pw".into())).unwrap();
        assert_eq!(a.jid.to_string(), "bot@example.com");
        for (j, p) in [
            (None, None),
            (Some("bot@example.com"), None),
            (None, Some("pw")),
            (Some("bot@example.com"), Some("")),
        ] {
            let e = account_from_env(j.map(Into::into), p.map(Into::into)).unwrap_err();
            assert_eq!(e.exit_code(), 64);
            assert!(e.to_string().contains(ENV_PASSWORD), "{e}");
        }
    }

    #[test]
    fn recipients_are_normalized_and_checked() {
        let r = parse_recipients(&[
            "Ops@Example.com".into(),
            "ops@example.com".into(),
            "pager@example.com/phone".into(),
        ])
        .unwrap();
        let r: Vec<String> = r.iter().map(ToString::to_string).collect();
        assert_eq!(r, ["ops@example.com", "pager@example.com/phone"]);
        let e =
            parse_recipients(&["ok@example.com".into(), "bad@@example.com".into()]).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("\"bad@@example.com\""), "{e}");
        assert_eq!(parse_recipients(&[]).unwrap_err().exit_code(), 64);
    }

    #[test]
    fn the_body_is_utf8_non_empty_and_xml_safe() {
        let p = prepare_body(b"disk /var 95% full\n").unwrap();
        assert_eq!(p.text, "disk /var 95% full");
        assert_eq!(p.warning, None);
        // Inner line breaks and tabs stay.
        assert_eq!(prepare_body(b"a\n\tb\r\n\r\n").unwrap().text, "a\n\tb");
        let p = prepare_body(b"\x1b[31mCRITICAL\x1b[0m \x00\xef\xbf\xbe").unwrap();
        assert_eq!(p.text, "[31mCRITICAL[0m ");
        let w = p.warning.unwrap();
        assert!(
            w.contains("removed 4 characters") && w.contains("U+001B, U+0000, U+FFFE"),
            "{w}"
        );
        let e = prepare_body(b"caf\xe9\n").unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("offset 3"), "{e}");
        for empty in [&b""[..], b"\n", b"  \n\t\n", b"\x07\n"] {
            let e = prepare_body(empty).unwrap_err();
            assert!(e.to_string().contains("empty"), "{empty:?}: {e}");
        }
        // Characters beyond the BMP are fine.
        assert_eq!(prepare_body("🚨 down".as_bytes()).unwrap().text, "🚨 down");
    }
}
