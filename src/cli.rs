//! Command-line interface (clap). jabberd's `-c`, `-H` and `-D` keep their
//! meaning; everything else is a subcommand. `user …` works on the spool
//! directly; `announce`, `users online` and `kick` ask the running server
//! through its admin socket (`admin_cmd.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "An XMPP server for companies")]
pub struct Cli {
    /// Config file (default: HOME/etc/switchboard.xml, or the embedded
    /// default config when that file does not exist).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Home directory holding etc/ logs/ run/ spool/; relative paths in the
    /// config resolve against it (default: $SWITCHBOARD_HOME or the current
    /// directory).
    #[arg(short = 'H', long = "home", global = true, value_name = "HOME")]
    pub home: Option<PathBuf>,

    /// Debug: log every stanza in and out (credentials masked).
    #[arg(short = 'D', long = "debug", global = true)]
    pub debug: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Run,
    /// Validate the config and exit: 0 when it is valid.
    CheckConfig,
    /// Manage accounts in the spool (safe while the server runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Run one service as its own process, attached over XEP-0114 to any
    /// XMPP server (Prosody, ejabberd, or another Switchboard). The secret
    /// comes from $SWITCHBOARD_COMPONENT_SECRET, --secret-file, or the
    /// secret= of the matching <service> in the config; never from the
    /// command line.
    Component(ComponentArgs),
    /// Send a message to every user online now, from the host; the text is
    /// read from standard input. Talks to the running server.
    Announce {
        /// Only this host's users (default: every host).
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// A subject for the message.
        #[arg(long, value_name = "TEXT")]
        subject: Option<String>,
    },
    /// Ask the running server about its users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Disconnect a session (user@host/resource), or every session of an
    /// account (user@host), with the stream error policy-violation. Exits
    /// non-zero when there is no such session. Talks to the running server.
    Kick { jid: String },
}

#[derive(Debug, clap::Args)]
pub struct ComponentArgs {
    /// The service's hostname, as the server knows the component.
    pub id: String,
    /// The server's component port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5347")]
    pub server: String,
    /// The service kind to run (default: the type= of the <service> with
    /// this id in the config).
    #[arg(long = "type", value_name = "KIND")]
    pub kind: Option<String>,
    /// A file holding the shared secret (its first line).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List the sessions online now, one full JID per line.
    Online {
        /// Only this host's sessions (default: every host).
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from standard input.
    Add { jid: String },
    /// Change an account's password, read from standard input.
    Passwd { jid: String },
    /// Delete an account and its data.
    Del { jid: String },
    /// List the accounts of a host.
    List { host: String },
}
