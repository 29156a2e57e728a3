//! Command-line interface (clap). jabberd's `-c`, `-H` and `-D` keep their
//! meaning; everything else is a subcommand. `user …` works on the spool
//! directly; `announce`, `users online` and `kick` ask the running server
//! through its admin socket (`admin_cmd.rs`). Usage errors exit with 64
//! (`EX_USAGE`), see `main`.

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
    /// List the links to and from other servers (federation), one per
    /// line: local domain, direction, remote domain(s), state with how the
    /// peer authenticated, address, age, stanzas carried. Talks to the
    /// running server.
    S2s,
    /// Group chat rooms: list, show, destroy, announce. Talks to the
    /// running server, which asks the group chat service (in-process or
    /// a component attached to it) with the service's admin commands.
    #[command(subcommand)]
    Rooms(RoomsCommand),
    /// The storage backend: the PostgreSQL schema, and copying everything
    /// stored between the spool and PostgreSQL. Stop the server first.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Send standard input as a message to one or more JIDs, through any
    /// XMPP server (for cron, swatch, Nagios…).
    #[command(long_about = SEND_ABOUT)]
    Send(SendArgs),
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
    /// Seconds of silence from the server before the component pings
    /// itself through it; after 2.5 times this without an answer the link
    /// is replaced.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive: u64,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Create the PostgreSQL schema, or bring it up to date (the server
    /// does this too when it starts on <storage backend="postgres">).
    MigrateSchema {
        /// The database (default: <storage url> of the config).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Copy every account, roster, offline message, archive, document,
    /// service record and blob from one backend into the other: the spool
    /// of <spool dir>, or the database of <storage url> (or --url). The
    /// destination must not hold the source's accounts already.
    Migrate {
        #[arg(long, value_enum)]
        from: BackendKind,
        #[arg(long, value_enum)]
        to: BackendKind,
        /// The database (default: <storage url> of the config).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// A storage backend, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The spool directory of <spool dir>.
    Spool,
    /// The PostgreSQL database of <storage url>.
    Postgres,
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
pub enum RoomsCommand {
    /// Every room of a group chat service (such as conference.example.org),
    /// one per line: JID, name, occupants, persistent, public (tab-separated,
    /// after a header line).
    List { service: String },
    /// One room (room@service): its settings, owners and occupants.
    Show { room: String },
    /// Destroy a room; its occupants are told why, and where to go.
    Destroy {
        room: String,
        /// Told to the occupants.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// A room to go to instead.
        #[arg(long, value_name = "ROOM")]
        venue: Option<String>,
    },
    /// Send standard input to every room of a group chat service, as a
    /// message from each room.
    Announce { service: String },
}

/// What `switchboard send --help` says first.
const SEND_ABOUT: &str = "Send standard input as one message to each JID given, through any XMPP \
server, then exit 0 only once the server has accepted it for every recipient.\n\n\
The message is all of standard input (UTF-8; trailing line breaks are dropped; \
control characters XML cannot carry are removed with a warning; an empty message \
is refused).\n\n\
The account comes from --account-file (lines `jid = user@domain` and \
`password = secret`, mode 600) or from the environment variables \
SWITCHBOARD_SEND_JID and SWITCHBOARD_SEND_PASSWORD; never from the command line.\n\n\
It connects to --server, or to the account's domain on port 5222 (DNS SRV records \
are not looked up), requires STARTTLS, checks the certificate against the system's \
trusted roots (or --ca-file, or --fingerprint), and logs in with SCRAM-SHA-256, \
SCRAM-SHA-1 or PLAIN.";

/// The exit codes of `switchboard send`, shown by `--help`.
const SEND_EXIT_CODES: &str = "\
Exit codes:
  0   the server accepted the message for every recipient
  64  usage: bad arguments, no or unreadable account, bad --ca-file or --fingerprint
  65  bad input: standard input empty or not UTF-8, a malformed recipient JID,
      or the server refused a recipient (the recipient and the error are printed)
  68  the server is unreachable (name does not resolve, connection refused)
  69  protocol: no STARTTLS, no usable login mechanism, a stream error
  74  TLS failed: untrusted certificate or fingerprint mismatch (the server's
      SHA-256 fingerprint is printed, to pin with --fingerprint)
  75  --timeout ran out
  77  the server refused the account's credentials

Example (crontab):
  */5 * * * * check_disk | switchboard send --account-file ~/.config/switchboard-send \\
      --type headline --subject 'disk check' ops@example.com";

/// `switchboard send`: see the `switchboard-notify` crate.
#[derive(Debug, clap::Args)]
#[command(
    after_help = SEND_EXIT_CODES
)]
pub struct SendArgs {
    /// Recipients (JIDs such as ops@example.com); the message goes to each.
    #[arg(value_name = "JID", required = true)]
    pub recipients: Vec<String>,

    /// The account to log in as: a file with `jid = …` and `password = …`
    /// lines (default: $SWITCHBOARD_SEND_JID and $SWITCHBOARD_SEND_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub account_file: Option<PathBuf>,

    /// Connect here instead of the account's domain on port 5222
    /// (no DNS SRV lookup is done).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub server: Option<String>,

    /// The message type.
    #[arg(long = "type", value_enum, default_value_t = SendType::Chat)]
    pub kind: SendType,

    /// A subject line.
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,

    /// Give up after this many seconds, from connecting to the server's
    /// confirmation (reading standard input is not counted).
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,

    /// Trust only the CA certificates in this PEM file instead of the
    /// system's roots.
    #[arg(long, value_name = "PEM", conflicts_with = "fingerprint")]
    pub ca_file: Option<PathBuf>,

    /// Trust exactly the server certificate with this SHA-256 fingerprint
    /// (hex, colons optional; Switchboard logs its own at start-up).
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: Option<String>,

    /// Print each step on standard error.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendType {
    /// A chat message (shown in a conversation window).
    Chat,
    /// A standalone message.
    Normal,
    /// A notification; not stored for offline recipients.
    Headline,
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
