//! Tests of the whole parser: the sample, defaults, path resolution, and
//! every error with its exact `file:line:col: message` text.

use super::*;
use std::time::Duration;
use switchboard_xml::{parse_document, Limits};

const HOME: &str = "/srv/switchboard";

fn home() -> &'static Path {
    Path::new(HOME)
}

fn at_home(p: &str) -> PathBuf {
    Path::new(HOME).join(p)
}

fn range(s: &str) -> IpRange {
    s.parse().unwrap()
}

fn ok(text: &str) -> Config {
    match parse(text, "sb.xml", home()) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error:\n{e}\nin:\n{text}"),
    }
}

/// The Display text of the error `text` must produce.
fn err(text: &str) -> String {
    match parse(text, "sb.xml", home()) {
        Ok(c) => panic!("expected an error, got {c:#?}\nfrom:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// A config with one host on line 2 and `body` starting on line 3.
fn doc(body: &str) -> String {
    format!("<switchboard>\n  <host name=\"example.org\"/>\n{body}</switchboard>\n")
}

/// A config whose one host (line 2) contains `body`, starting on line 3.
fn host_doc(body: &str) -> String {
    format!("<switchboard>\n  <host name=\"example.org\">\n{body}  </host>\n</switchboard>\n")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------
// The sample and the defaults

#[test]
fn sample_parses_with_the_documented_defaults() {
    let c = embedded_default(home()).unwrap();
    assert_eq!(c.source, "<embedded default>");
    assert_eq!(
        c.hosts,
        vec![HostConfig {
            name: "localhost".into(),
            admins: vec![],
            registration: Registration::Open,
            archive: defaults::ARCHIVE,
            contacts: vec![],
        }]
    );
    assert_eq!(c.services.len(), 1);
    assert_eq!(c.services[0].id, "conference.localhost");
    assert_eq!(c.services[0].kind, "muc");
    assert_eq!(c.listen.c2s, vec![addr("0.0.0.0:5222")]);
    assert!(c.listen.c2s_tls.is_empty());
    assert!(c.listen.component.is_empty());
    assert_eq!(
        c.tls,
        TlsConfig {
            cert: None,
            key: None,
            required: true
        }
    );
    assert_eq!(
        c.limits,
        LimitsConfig {
            max_stanza_bytes: 262_144,
            preauth_timeout: Duration::from_secs(60),
            keepalive: Duration::from_secs(60),
            scram_iterations: 4096,
            registrations_per_address: 5,
            registration_window: Duration::from_secs(600),
            registration_allowlist: vec![range("127.0.0.0/8"), range("::1")],
            resume_timeout: Duration::from_secs(600),
        }
    );
    assert_eq!(
        c.auth_delay,
        AuthDelayConfig {
            address: DelayCurve {
                after: 5,
                first: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            account: DelayCurve {
                after: 10,
                first: Duration::from_secs(1),
                max: Duration::from_secs(5),
            },
            forget: Duration::from_secs(600),
        }
    );
    assert_eq!(c.spool.dir, at_home("spool"));
    assert_eq!(c.log.file, Some(at_home("logs/switchboard.log")));
    assert_eq!(c.log.level, "info");
    assert_eq!(c.pidfile, at_home("run/switchboard.pid"));
    assert!(c.host("localhost").is_some());
    assert!(c.host("example.org").is_none());
}

/// The sample spells every default out; it must say what the code does.
#[test]
fn sample_values_are_the_defaults() {
    let mut sample = embedded_default(home()).unwrap();
    // The sample also enables group chat, which is a service it chooses
    // to run, not a default.
    let services: Vec<String> = sample.services.drain(..).map(|s| s.id).collect();
    assert_eq!(services, ["conference.localhost"]);
    let minimal = parse(
        "<switchboard><host name=\"localhost\"><registration>open</registration></host></switchboard>",
        EMBEDDED_SOURCE,
        home(),
    )
    .unwrap();
    assert_eq!(sample, minimal);
}

/// Uncommenting any of the sample's one-line examples gives a valid config.
#[test]
fn sample_examples_are_valid() {
    let mut uncommented = 0;
    let text: String = SAMPLE
        .lines()
        .map(|line| {
            let t = line.trim();
            match t
                .strip_prefix("<!-- <")
                .and_then(|r| r.strip_suffix(" -->"))
            {
                Some(inner) => {
                    uncommented += 1;
                    format!("<{inner}\n")
                }
                None => format!("{line}\n"),
            }
        })
        .collect();
    assert_eq!(uncommented, 15, "the sample's commented examples changed");
    let c = ok(&text);
    assert_eq!(
        c.hosts[0].admins,
        vec![Jid::parse("admin@localhost").unwrap()]
    );
    assert_eq!(
        c.hosts[0].contacts,
        vec![
            ContactAddress {
                kind: ContactKind::Abuse,
                uri: "mailto:abuse@localhost".into()
            },
            ContactAddress {
                kind: ContactKind::Admin,
                uri: "xmpp:admin@localhost".into()
            },
        ]
    );
    assert_eq!(c.services.len(), 4);
    assert_eq!(c.services[3].id, "upload.localhost");
    assert_eq!(c.services[3].kind, "upload");
    assert_eq!(c.services[3].element.attr("quota"), Some("1G"));
    assert_eq!(c.services[0].kind, "muc");
    assert_eq!(c.services[1].id, "users.localhost");
    assert_eq!(c.services[1].kind, "directory");
    assert_eq!(c.services[1].secret, None);
    assert_eq!(c.services[2].kind, "external");
    assert_eq!(c.services[2].secret.as_deref(), Some("change-me"));
    assert_eq!(c.services[2].element.attr("id"), Some("irc.localhost"));
    assert_eq!(c.listen.c2s, vec![addr("0.0.0.0:5222")]);
    assert_eq!(c.listen.c2s_tls, vec![addr("[::]:5223")]);
    assert_eq!(c.listen.component, vec![addr("127.0.0.1:5347")]);
    assert_eq!(c.listen.https, vec![addr("0.0.0.0:5281")]);
    assert_eq!(c.listen.http.len(), 1);
    assert_eq!(c.listen.http[0].addr, addr("127.0.0.1:5280"));
    assert!(!c.listen.http[0].behind_tls_proxy);
    assert_eq!(c.metrics, Some(defaults::METRICS_EXAMPLE));
    assert_eq!(
        c.storage,
        StorageConfig::Postgres(PostgresConfig {
            url: "postgres://switchboard@127.0.0.1:5432/switchboard".into(),
            connections: defaults::STORAGE_CONNECTIONS,
            password_file: None,
        })
    );
    assert_eq!(c.listen.s2s, vec![addr("0.0.0.0:5269")]);
    assert_eq!(c.listen.s2s_tls, vec![addr("0.0.0.0:5270")]);
    let s2s = c.s2s.expect("the <s2s> example turns federation on");
    // The example spells out the defaults.
    assert_eq!(s2s, ok(&doc("<s2s/>")).s2s.unwrap());

    // The certificate example sits inside a longer comment.
    let line = SAMPLE.lines().find(|l| l.contains("<tls cert=")).unwrap();
    let c = ok(&doc(&format!("{line}\n")));
    assert_eq!(c.tls.cert, Some(at_home("etc/example.org.crt")));
    assert_eq!(c.tls.key, Some(at_home("etc/example.org.key")));
    assert!(c.tls.required);
}

#[test]
fn minimal_config_gets_every_default() {
    let c = ok("<switchboard><host name=\"example.org\"/></switchboard>");
    assert_eq!(c.source, "sb.xml");
    assert_eq!(
        c.hosts,
        vec![HostConfig {
            name: "example.org".into(),
            admins: vec![],
            registration: Registration::Admin,
            archive: ArchiveConfig {
                retention: None,
                default: ArchiveDefault::Always,
            },
            contacts: vec![],
        }]
    );
    assert!(c.services.is_empty());
    assert_eq!(
        c.listen,
        ListenConfig {
            c2s: vec![addr("0.0.0.0:5222")],
            c2s_tls: vec![],
            component: vec![],
            s2s: vec![],
            s2s_tls: vec![],
            http: vec![],
            https: vec![],
        }
    );
    assert_eq!(
        c.tls,
        TlsConfig {
            cert: None,
            key: None,
            required: true
        }
    );
    assert_eq!(c.limits, LimitsConfig::default());
    assert_eq!(
        c.spool,
        SpoolConfig {
            dir: at_home("spool")
        }
    );
    assert_eq!(
        c.log,
        LogConfig {
            file: Some(at_home("logs/switchboard.log")),
            level: "info".into()
        }
    );
    assert_eq!(c.pidfile, at_home("run/switchboard.pid"));
}

#[test]
fn full_config() {
    let c = ok(r#"<?xml version="1.0"?>
<switchboard xmlns="urn:switchboard:config:1">
  <!-- comments are fine anywhere -->
  <host name="Example.ORG">
    <admin> Boss@Example.org </admin>
    <admin>second@example.org</admin>
    <registration> OFF </registration>
  </host>
  <host name="second.example">
    <registration>admin</registration>
  </host>
  <service id="conference.example.org" type="muc" history="20">
    <room name="lobby" persistent="true"/>
  </service>
  <service id="gw.example.org" type=" external " secret=" s3cret "/>
  <listen>
    <c2s addr="[::]:5222"/>
    <c2s addr=" 127.0.0.1:15222 "/>
    <c2s-tls addr="[::]:5223"/>
    <component addr="127.0.0.1:5347"/>
  </listen>
  <tls cert="/etc/ssl/example.crt" key="etc/example.key" required="FALSE"/>
  <limits max-stanza-bytes="10000" preauth-timeout="5m" keepalive="1h" scram-iterations="100000" registrations-per-address="0" registration-window="1h" registration-allowlist=" 192.0.2.0/24, 2001:db8::1 " resume-timeout="2m"/>
  <spool dir="/var/spool/switchboard"/>
  <log file="-" level="warn,switchboard_core=debug"/>
  <pidfile> /run/switchboard.pid </pidfile>
</switchboard>
"#);
    assert_eq!(c.hosts.len(), 2);
    let h = c.host("example.org").unwrap();
    assert_eq!(
        h.admins,
        vec![
            Jid::parse("boss@example.org").unwrap(),
            Jid::parse("second@example.org").unwrap()
        ]
    );
    assert_eq!(h.registration, Registration::Off);
    assert_eq!(
        c.host("second.example").unwrap().registration,
        Registration::Admin
    );
    assert_eq!(c.services.len(), 2);
    let muc = &c.services[0];
    assert_eq!(muc.id, "conference.example.org");
    assert_eq!(muc.kind, "muc");
    // The service's own settings are passed through untouched.
    assert_eq!(muc.element.attr("history"), Some("20"));
    assert_eq!(
        muc.element.elements().next().unwrap().attr("name"),
        Some("lobby")
    );
    assert_eq!(c.services[1].kind, "external");
    assert_eq!(c.services[1].secret.as_deref(), Some(" s3cret "));
    assert_eq!(
        c.listen.c2s,
        vec![addr("[::]:5222"), addr("127.0.0.1:15222")]
    );
    assert_eq!(c.listen.c2s_tls, vec![addr("[::]:5223")]);
    assert_eq!(c.listen.component, vec![addr("127.0.0.1:5347")]);
    assert_eq!(
        c.tls,
        TlsConfig {
            cert: Some(PathBuf::from("/etc/ssl/example.crt")),
            key: Some(at_home("etc/example.key")),
            required: false,
        }
    );
    assert_eq!(
        c.limits,
        LimitsConfig {
            max_stanza_bytes: 10_000,
            preauth_timeout: Duration::from_secs(300),
            keepalive: Duration::from_secs(3600),
            scram_iterations: 100_000,
            registrations_per_address: 0,
            registration_window: Duration::from_secs(3600),
            registration_allowlist: vec![range("192.0.2.0/24"), range("2001:db8::1")],
            resume_timeout: Duration::from_secs(120),
        }
    );
    assert_eq!(c.spool.dir, PathBuf::from("/var/spool/switchboard"));
    assert_eq!(
        c.log,
        LogConfig {
            file: None,
            level: "warn,switchboard_core=debug".into()
        }
    );
    assert_eq!(c.pidfile, PathBuf::from("/run/switchboard.pid"));
}

#[test]
fn relative_paths_resolve_against_home() {
    let c = ok(&doc(concat!(
        "  <tls cert=\"etc/a.crt\" key=\"../keys/a.key\"/>\n",
        "  <spool dir=\"data/spool\"/>\n",
        "  <log file=\"switchboard.log\"/>\n",
        "  <pidfile>switchboard.pid</pidfile>\n",
    )));
    assert_eq!(
        c.tls.cert,
        Some(PathBuf::from("/srv/switchboard/etc/a.crt"))
    );
    assert_eq!(
        c.tls.key,
        Some(PathBuf::from("/srv/switchboard/../keys/a.key"))
    );
    assert_eq!(c.spool.dir, PathBuf::from("/srv/switchboard/data/spool"));
    assert_eq!(
        c.log.file,
        Some(PathBuf::from("/srv/switchboard/switchboard.log"))
    );
    // A <log> without level= keeps the default level.
    assert_eq!(c.log.level, "info");
    assert_eq!(c.pidfile, PathBuf::from("/srv/switchboard/switchboard.pid"));

    let c = parse(
        "<switchboard><host name=\"a.example\"/></switchboard>",
        "x",
        Path::new("rel/home"),
    )
    .unwrap();
    assert_eq!(c.spool.dir, PathBuf::from("rel/home/spool"));
}

#[test]
fn durations_and_bare_seconds() {
    let c = ok(&doc(
        "  <limits preauth-timeout=\"90\" keepalive=\"30s\"/>\n",
    ));
    assert_eq!(c.limits.preauth_timeout, Duration::from_secs(90));
    assert_eq!(c.limits.keepalive, Duration::from_secs(30));
    // Attributes left out keep their defaults.
    assert_eq!(c.limits.max_stanza_bytes, 262_144);
    assert_eq!(c.limits.scram_iterations, 4096);
}

#[test]
fn no_namespace_or_the_config_namespace() {
    ok("<switchboard xmlns=\"urn:switchboard:config:1\"><host name=\"a.example\"/></switchboard>");
    ok("<switchboard><host name=\"a.example\"/></switchboard>");
    ok("\u{feff}<switchboard><host name=\"a.example\"/></switchboard>");
    assert_eq!(
        err("<switchboard xmlns=\"jabber:config\"><host name=\"a.example\"/></switchboard>"),
        "sb.xml:1:1: <switchboard> is in the namespace \"jabber:config\"\n  \
         hint: use no namespace, or xmlns=\"urn:switchboard:config:1\""
    );
    assert_eq!(
        err(&doc("  <spool xmlns=\"urn:other\" dir=\"x\"/>\n")),
        "sb.xml:3:3: element <spool> in the namespace \"urn:other\" is not part of the config\n  \
         hint: config elements share the namespace of <switchboard>"
    );
}

// ---------------------------------------------------------------------
// Errors, each with its exact position and text

#[test]
fn unknown_element_suggests_the_close_one() {
    assert_eq!(
        err(&doc("  <lisen/>\n")),
        "sb.xml:3:3: unknown element <lisen> — did you mean <listen>?"
    );
    assert_eq!(
        err(&doc(
            "  <listen>\n    <c2-tls addr=\"[::]:5223\"/>\n  </listen>\n"
        )),
        "sb.xml:4:5: unknown element <c2-tls> — did you mean <c2s-tls>?"
    );
    assert_eq!(
        err(&host_doc("    <admn>a@example.org</admn>\n")),
        "sb.xml:3:5: unknown element <admn> — did you mean <admin>?"
    );
    assert_eq!(
        err(&doc("  <Spool dir=\"x\"/>\n")),
        "sb.xml:3:3: unknown element <Spool> — did you mean <spool>?"
    );
}

#[test]
fn unknown_element_far_from_any_lists_the_valid_ones() {
    assert_eq!(
        err(&doc("  <xdb/>\n")),
        "sb.xml:3:3: unknown element <xdb> in <switchboard>\n  hint: <switchboard> may contain \
         <host>, <service>, <listen>, <tls>, <limits>, <auth-delay>, <spool>, <storage>, <log>, \
         <pidfile>, <credentials>, <metrics>, <s2s>, <web>"
    );
    assert_eq!(
        err(&doc("  <tls><certificate/></tls>\n")),
        "sb.xml:3:8: unknown element <certificate> in <tls>\n  hint: <tls> has no child elements"
    );
    assert_eq!(
        err(&doc("  <tls><cert>etc/a.crt</cert></tls>\n")),
        "sb.xml:3:8: unknown element <cert> in <tls>\n  hint: write it as an attribute: <tls cert=\"…\"/>"
    );
}

#[test]
fn misplaced_element_says_where_it_belongs() {
    assert_eq!(
        err(&doc("  <c2s addr=\"[::]:5222\"/>\n")),
        "sb.xml:3:3: <c2s> is not allowed in <switchboard>\n  hint: <c2s> belongs inside <listen>"
    );
    assert_eq!(
        err(&doc("  <admin>a@example.org</admin>\n")),
        "sb.xml:3:3: <admin> is not allowed in <switchboard>\n  hint: <admin> belongs inside <host>"
    );
    assert_eq!(
        err(&host_doc("    <spool dir=\"x\"/>\n")),
        "sb.xml:3:5: <spool> is not allowed in <host>\n  hint: <spool> belongs directly inside <switchboard>"
    );
}

#[test]
fn unknown_attribute() {
    assert_eq!(
        err(&doc(
            "  <listen>\n    <c2s adr=\"[::]:5222\"/>\n  </listen>\n"
        )),
        "sb.xml:4:5: unknown attribute 'adr' on <c2s> — did you mean 'addr'?"
    );
    assert_eq!(
        err(&doc("  <limits keep-alive=\"30s\"/>\n")),
        "sb.xml:3:3: unknown attribute 'keep-alive' on <limits> — did you mean 'keepalive'?"
    );
    assert_eq!(
        err(&doc("  <limits colour=\"blue\"/>\n")),
        "sb.xml:3:3: unknown attribute 'colour' on <limits>\n  \
         hint: <limits> takes max-stanza-bytes, preauth-timeout, keepalive, scram-iterations, registrations-per-address, registration-window, registration-allowlist, resume-timeout"
    );
    assert_eq!(
        err(&doc("  <pidfile path=\"run/x.pid\"/>\n")),
        "sb.xml:3:3: unknown attribute 'path' on <pidfile>\n  \
         hint: <pidfile> takes no attributes; write its value as text: <pidfile>…</pidfile>"
    );
    assert_eq!(
        err("<switchboard>\n  <host name=\"example.org\" registration=\"open\"/>\n</switchboard>"),
        "sb.xml:2:3: unknown attribute 'registration' on <host>\n  \
         hint: write it as a child element: <registration>open</registration>"
    );
    assert_eq!(
        err("<switchboard version=\"1\">\n  <host name=\"example.org\"/>\n</switchboard>"),
        "sb.xml:1:1: unknown attribute 'version' on <switchboard>\n  hint: <switchboard> takes no attributes"
    );
}

#[test]
fn registration_must_be_a_known_mode() {
    assert_eq!(
        err(&host_doc("    <registration>opne</registration>\n")),
        "sb.xml:3:5: <registration> must be one of off, open, admin, not \"opne\"\n  hint: did you mean \"open\"?"
    );
    assert_eq!(
        err(&host_doc("    <registration>everyone</registration>\n")),
        "sb.xml:3:5: <registration> must be one of off, open, admin, not \"everyone\""
    );
    assert_eq!(
        err(&host_doc("    <registration/>\n")),
        "sb.xml:3:5: <registration> must be one of off, open, admin, not \"\""
    );
    assert_eq!(
        err(&host_doc("    <registration>open</registration>\n    <registration>off</registration>\n")),
        "sb.xml:4:5: duplicate <registration> (the first is at line 3)\n  hint: merge them into one <registration>"
    );
}

#[test]
fn archive_retention_and_default_per_host() {
    let c = ok(&host_doc(
        "    <archive retention=\"90d\" default=\"Roster\"/>\n",
    ));
    assert_eq!(
        c.hosts[0].archive,
        ArchiveConfig {
            retention: Some(Duration::from_secs(90 * 86_400)),
            default: ArchiveDefault::Roster,
        }
    );
    let c = ok(&host_doc("    <archive retention=\"forever\"/>\n"));
    assert_eq!(c.hosts[0].archive, defaults::ARCHIVE);
    let c = ok(&host_doc("    <archive retention=\"12h\"/>\n"));
    assert_eq!(
        c.hosts[0].archive.retention,
        Some(Duration::from_secs(12 * 3600))
    );
}

#[test]
fn archive_settings_are_checked() {
    assert_eq!(
        err(&host_doc("    <archive retention=\"1y\"/>\n")),
        "sb.xml:3:5: 'retention' on <archive> must be a duration like 30d or 12h, or \"forever\", not \"1y\"\n  \
         hint: durations are a whole number with s, m, h or d: 365d is a year"
    );
    assert_eq!(
        err(&host_doc("    <archive retention=\"0d\"/>\n")),
        "sb.xml:3:5: 'retention' on <archive> must be longer than zero\n  \
         hint: write \"forever\" to keep messages for ever"
    );
    assert_eq!(
        err(&host_doc("    <archive default=\"allways\"/>\n")),
        "sb.xml:3:5: 'default' on <archive> must be one of always, roster, never, not \"allways\"\n  \
         hint: did you mean \"always\"?"
    );
    assert_eq!(
        err(&host_doc("    <archive/>\n    <archive default=\"never\"/>\n")),
        "sb.xml:4:5: duplicate <archive> (the first is at line 3)\n  hint: merge them into one <archive>"
    );
    assert!(err(&host_doc("    <archive keep=\"30d\"/>\n")).starts_with("sb.xml:3:5: "));
}

#[test]
fn listen_addresses_must_be_socket_addresses() {
    assert_eq!(
        err(&doc(
            "  <listen>\n    <c2s addr=\"localhost:5222\"/>\n  </listen>\n"
        )),
        "sb.xml:4:5: 'localhost:5222' is not a socket address\n  \
         hint: write it as IP:PORT, e.g. [::]:5222 or 127.0.0.1:5222"
    );
    assert_eq!(
        err(&doc("  <listen>\n    <c2s addr=\"[::]:5222\"/>\n    <component addr=\"::1\"/>\n  </listen>\n")),
        "sb.xml:5:5: '::1' is not a socket address\n  hint: write it as IP:PORT, e.g. [::]:5222 or 127.0.0.1:5222"
    );
    assert_eq!(
        err(&doc("  <listen>\n    <c2s/>\n  </listen>\n")),
        "sb.xml:4:5: missing required attribute 'addr' on <c2s>\n  hint: e.g. <c2s addr=\"0.0.0.0:5222\"/>"
    );
    assert_eq!(
        err(&doc("  <listen>\n    <c2s addr=\"[::]:5222\"/>\n    <c2s-tls addr=\"[::]:5222\"/>\n  </listen>\n")),
        "sb.xml:5:5: [::]:5222 is already used by the <c2s> at line 4\n  \
         hint: each listener needs an address and port of its own"
    );
    assert_eq!(
        err(&doc(
            "  <listen>\n    <component addr=\"127.0.0.1:5347\"/>\n  </listen>\n"
        )),
        "sb.xml:3:3: <listen> has no <c2s> or <c2s-tls>, so no client could connect\n  \
         hint: add <c2s addr=\"0.0.0.0:5222\"/>, or remove <listen> to get that default"
    );
    // Port 0 (a fresh port at each bind) may repeat.
    let c = ok(&doc(
        "  <listen><c2s addr=\"127.0.0.1:0\"/><c2s-tls addr=\"127.0.0.1:0\"/></listen>\n",
    ));
    assert_eq!(c.listen.c2s, vec![addr("127.0.0.1:0")]);
    assert_eq!(c.listen.c2s_tls, vec![addr("127.0.0.1:0")]);
    // Direct TLS alone is enough.
    let c = ok(&doc(
        "  <listen><c2s-tls addr=\"0.0.0.0:5223\"/></listen>\n",
    ));
    assert!(c.listen.c2s.is_empty());
    assert_eq!(c.listen.c2s_tls, vec![addr("0.0.0.0:5223")]);
}

#[test]
fn admin_must_be_a_valid_bare_user_jid() {
    let bad = "@example.org";
    let jid_err = Jid::parse(bad).unwrap_err();
    assert_eq!(
        err(&host_doc(&format!("    <admin>{bad}</admin>\n"))),
        format!("sb.xml:3:5: invalid admin JID \"{bad}\": {jid_err}")
    );
    assert_eq!(
        err(&host_doc("    <admin>admin@example.org/phone</admin>\n")),
        "sb.xml:3:5: admin JID \"admin@example.org/phone\" must be a bare JID, without a /resource\n  \
         hint: write it as admin@example.org"
    );
    assert_eq!(
        err(&host_doc("    <admin>example.org</admin>\n")),
        "sb.xml:3:5: admin JID \"example.org\" names a server, not a user\n  \
         hint: write a bare JID, e.g. <admin>admin@example.org</admin>"
    );
    assert_eq!(
        err(&host_doc("    <admin> </admin>\n")),
        "sb.xml:3:5: <admin> is empty\n  hint: write a bare JID, e.g. <admin>admin@example.org</admin>"
    );
    assert_eq!(
        err(&host_doc(
            "    <admin>a@example.org</admin>\n    <admin>A@Example.org</admin>\n"
        )),
        "sb.xml:4:5: duplicate <admin>a@example.org</admin> (the first is at line 3)"
    );
    assert_eq!(
        err(&host_doc("    <admin><jid>a@example.org</jid></admin>\n")),
        "sb.xml:3:12: unknown element <jid> in <admin>\n  hint: <admin> has no child elements"
    );
}

#[test]
fn contact_addresses_are_typed_uris_in_config_order() {
    let c = ok(&host_doc(
        "    <contact type=\"abuse\">mailto:abuse@example.org</contact>\n    \
         <contact type=\"Admin\"> xmpp:boss@example.org </contact>\n    \
         <contact type=\"abuse\">xmpp:abuse@example.org</contact>\n",
    ));
    assert_eq!(
        c.hosts[0].contacts,
        vec![
            ContactAddress {
                kind: ContactKind::Abuse,
                uri: "mailto:abuse@example.org".into()
            },
            ContactAddress {
                kind: ContactKind::Admin,
                uri: "xmpp:boss@example.org".into()
            },
            ContactAddress {
                kind: ContactKind::Abuse,
                uri: "xmpp:abuse@example.org".into()
            },
        ]
    );
    assert_eq!(ContactKind::Status.field(), "status-addresses");
}

#[test]
fn contact_addresses_refuse_what_is_no_uri() {
    assert_eq!(
        err(&host_doc("    <contact type=\"abuze\">mailto:a@example.org</contact>\n")),
        "sb.xml:3:5: <contact type> must be one of abuse, admin, feedback, sales, security, status, support, not \"abuze\"\n  \
         hint: did you mean \"abuse\"?"
    );
    assert_eq!(
        err(&host_doc("    <contact>mailto:a@example.org</contact>\n")),
        "sb.xml:3:5: missing required attribute 'type' on <contact>\n  \
         hint: e.g. <contact type=\"abuse\">mailto:abuse@example.org</contact>"
    );
    assert_eq!(
        err(&host_doc("    <contact type=\"support\">abuse@example.org</contact>\n")),
        "sb.xml:3:5: <contact> must hold a URI, not \"abuse@example.org\": it has no scheme (such as mailto: or xmpp:)\n  \
         hint: write mailto:abuse@example.org, xmpp:admin@example.org or https://example.org/support"
    );
    assert_eq!(
        err(&host_doc("    <contact type=\"support\"> </contact>\n")),
        "sb.xml:3:5: <contact> is empty\n  \
         hint: write a URI, e.g. <contact type=\"abuse\">mailto:abuse@example.org</contact>"
    );
    assert_eq!(
        err(&host_doc(
            "    <contact type=\"sales\">tel:+1-555</contact>\n    <contact type=\"sales\">tel:+1-555</contact>\n"
        )),
        "sb.xml:4:5: duplicate <contact type=\"sales\">tel:+1-555</contact> (the first is at line 3)"
    );
    assert_eq!(
        err(&doc("  <contact type=\"abuse\">mailto:a@example.org</contact>\n")),
        "sb.xml:3:3: <contact> is not allowed in <switchboard>\n  hint: <contact> belongs inside <host>"
    );
}

#[test]
fn hosts() {
    assert_eq!(
        err("<switchboard>\n  <host/>\n</switchboard>\n"),
        "sb.xml:2:3: missing required attribute 'name' on <host>\n  hint: e.g. <host name=\"example.org\"/>"
    );
    assert_eq!(
        err("<switchboard>\n  <host name=\" \"/>\n</switchboard>\n"),
        "sb.xml:2:3: 'name' on <host> is empty\n  hint: e.g. <host name=\"example.org\"/>"
    );
    let bad = "exa mple.org";
    let dom_err = switchboard_jid::normalize_domain(bad).unwrap_err();
    assert_eq!(
        err(&format!(
            "<switchboard>\n  <host name=\"{bad}\"/>\n</switchboard>\n"
        )),
        format!("sb.xml:2:3: invalid host name \"{bad}\": {dom_err}")
    );
    assert_eq!(
        err(&doc("  <host name=\"EXAMPLE.org\"/>\n")),
        "sb.xml:3:3: duplicate <host name=\"example.org\"> (the first is at line 2)"
    );
    assert_eq!(
        err("<switchboard>\n  <spool dir=\"spool\"/>\n</switchboard>\n"),
        "sb.xml:1:1: no <host> configured: the server needs at least one\n  \
         hint: add one inside <switchboard>, e.g. <host name=\"example.org\"/>"
    );
    assert_eq!(
        err("<switchboard/>"),
        "sb.xml:1:1: no <host> configured: the server needs at least one\n  \
         hint: add one inside <switchboard>, e.g. <host name=\"example.org\"/>"
    );
}

#[test]
fn services() {
    assert_eq!(
        err(&doc("  <service id=\"Example.org\" type=\"muc\"/>\n")),
        "sb.xml:3:3: <service id=\"example.org\"> has the name of the <host> at line 2\n  \
         hint: a service needs a hostname of its own, e.g. muc.example.org"
    );
    // The order of <service> and <host> does not matter.
    assert_eq!(
        err("<switchboard>\n  <service id=\"example.org\" type=\"muc\"/>\n  <host name=\"example.org\"/>\n</switchboard>"),
        "sb.xml:2:3: <service id=\"example.org\"> has the name of the <host> at line 3\n  \
         hint: a service needs a hostname of its own, e.g. muc.example.org"
    );
    assert_eq!(
        err(&doc("  <service id=\"muc.example.org\" type=\"muc\"/>\n  <service id=\"muc.example.org\" type=\"irc\"/>\n")),
        "sb.xml:4:3: duplicate <service id=\"muc.example.org\"> (the first is at line 3)"
    );
    assert_eq!(
        err(&doc("  <service type=\"muc\"/>\n")),
        "sb.xml:3:3: missing required attribute 'id' on <service>\n  \
         hint: e.g. <service id=\"conference.example.org\" type=\"muc\"/>"
    );
    assert_eq!(
        err(&doc("  <service id=\"muc.example.org\"/>\n")),
        "sb.xml:3:3: missing required attribute 'type' on <service>\n  \
         hint: e.g. <service id=\"conference.example.org\" type=\"muc\"/>"
    );
    assert_eq!(
        err(&doc(
            "  <service id=\"gw.example.org\" type=\"external\" secret=\"\"/>\n"
        )),
        "sb.xml:3:3: 'secret' on <service> is empty"
    );
}

#[test]
fn tls() {
    let hint = "\n  hint: give both cert= and key=, or neither to use a self-signed certificate made on first run";
    assert_eq!(
        err(&doc("  <tls cert=\"etc/a.crt\"/>\n")),
        format!("sb.xml:3:3: <tls> has cert= but no key={hint}")
    );
    assert_eq!(
        err(&doc("  <tls key=\"etc/a.key\"/>\n")),
        format!("sb.xml:3:3: <tls> has key= but no cert={hint}")
    );
    assert_eq!(
        err(&doc("  <tls required=\"yes\"/>\n")),
        "sb.xml:3:3: 'required' on <tls> must be true or false, not \"yes\""
    );
    assert_eq!(
        err(&doc("  <tls cert=\"\" key=\"a.key\"/>\n")),
        "sb.xml:3:3: 'cert' on <tls> is empty"
    );
    assert_eq!(
        err(&doc("  <tls/>\n  <tls required=\"false\"/>\n")),
        "sb.xml:4:3: duplicate <tls> (the first is at line 3)\n  hint: merge them into one <tls>"
    );
}

#[test]
fn limits() {
    assert_eq!(
        err(&doc("  <limits max-stanza-bytes=\"lots\"/>\n")),
        "sb.xml:3:3: 'max-stanza-bytes' on <limits> must be a whole number of bytes, not \"lots\"\n  \
         hint: e.g. max-stanza-bytes=\"262144\" for 256 KiB"
    );
    assert_eq!(
        err(&doc("  <limits max-stanza-bytes=\"256k\"/>\n")),
        "sb.xml:3:3: 'max-stanza-bytes' on <limits> must be a whole number of bytes, not \"256k\"\n  \
         hint: e.g. max-stanza-bytes=\"262144\" for 256 KiB"
    );
    assert_eq!(
        err(&doc("  <limits max-stanza-bytes=\"9999\"/>\n")),
        "sb.xml:3:3: 'max-stanza-bytes' on <limits> must be at least 10000, not 9999\n  \
         hint: RFC 6120 §13.12 requires servers to accept stanzas of 10000 bytes"
    );
    assert_eq!(
        err(&doc("  <limits keepalive=\"soon\"/>\n")),
        "sb.xml:3:3: 'keepalive' on <limits> must be a duration like 30s, 5m or 1h, not \"soon\""
    );
    assert_eq!(
        err(&doc("  <limits preauth-timeout=\"0s\"/>\n")),
        "sb.xml:3:3: 'preauth-timeout' on <limits> must be longer than zero"
    );
    assert_eq!(
        err(&doc("  <limits scram-iterations=\"many\"/>\n")),
        "sb.xml:3:3: 'scram-iterations' on <limits> must be a whole number, not \"many\""
    );
    assert_eq!(
        err(&doc("  <limits scram-iterations=\"1000\"/>\n")),
        "sb.xml:3:3: 'scram-iterations' on <limits> must be at least 4096, not 1000\n  \
         hint: RFC 7677 recommends at least 4096; stored credentials keep the count they were made \
         with until the password changes"
    );
}

#[test]
fn the_registration_allowlist_replaces_the_default() {
    let limits = |attrs: &str| ok(&doc(&format!("  <limits {attrs}/>\n"))).limits;
    // Left out: loopback is exempt.
    assert_eq!(
        limits("").registration_allowlist,
        [range("127.0.0.0/8"), range("::1")]
    );
    // Given: exactly what it lists, loopback only if listed.
    assert_eq!(
        limits("registration-allowlist=\"10.0.0.0/8\"").registration_allowlist,
        [range("10.0.0.0/8")]
    );
    // Empty: nobody is exempt.
    assert!(limits("registration-allowlist=\" \"")
        .registration_allowlist
        .is_empty());
}

#[test]
fn a_bad_registration_allowlist_entry_is_placed_and_explained() {
    assert_eq!(
        err(&doc(
            "  <limits registrations-per-address=\"3\"\n          registration-allowlist=\"::1 localhost\"/>\n"
        )),
        "sb.xml:3:3: 'registration-allowlist' on <limits>: \"localhost\" is not an IP address or CIDR range\n  \
         hint: write addresses or CIDR ranges separated by spaces, e.g. \"127.0.0.0/8 ::1 192.0.2.0/24\""
    );
    assert_eq!(
        err(&doc("  <limits registration-allowlist=\"10.0.0.0/33\"/>\n")),
        "sb.xml:3:3: 'registration-allowlist' on <limits>: \"10.0.0.0/33\": the prefix length of an IPv4 range is 0 to 32\n  \
         hint: write addresses or CIDR ranges separated by spaces, e.g. \"127.0.0.0/8 ::1 192.0.2.0/24\""
    );
    assert_eq!(
        err(&doc("  <limits registration-allowlist=\"127.0.0.1/8\"/>\n")),
        "sb.xml:3:3: 'registration-allowlist' on <limits>: \"127.0.0.1/8\" has bits set past its /8 prefix\n  \
         hint: did you mean 127.0.0.0/8? (or the address alone, without /)"
    );
}

#[test]
fn auth_delay() {
    // What is left out keeps its default, per curve and per attribute.
    let c = ok(&doc(
        "  <auth-delay forget=\"1h\">\n    <address after=\"3\" max=\"2m\"/>\n  </auth-delay>\n",
    ));
    assert_eq!(
        c.auth_delay.address,
        DelayCurve {
            after: 3,
            first: Duration::from_secs(1),
            max: Duration::from_secs(120),
        }
    );
    assert_eq!(c.auth_delay.account, defaults::AUTH_DELAY_ACCOUNT);
    assert_eq!(c.auth_delay.forget, Duration::from_secs(3600));
    // max="0s" turns a curve off.
    let c = ok(&doc("  <auth-delay><account max=\"0s\"/></auth-delay>\n"));
    assert!(c.auth_delay.account.max.is_zero());
    assert_eq!(
        ok(&doc("  <auth-delay/>\n")).auth_delay,
        AuthDelayConfig::default()
    );

    assert_eq!(
        err(&doc(
            "  <auth-delay>\n    <address after=\"few\"/>\n  </auth-delay>\n"
        )),
        "sb.xml:4:5: 'after' on <address> must be a whole number of failures, not \"few\"\n  \
         hint: e.g. after=\"5\": the sixth attempt is the first to wait"
    );
    assert_eq!(
        err(&doc(
            "  <auth-delay>\n    <account max=\"forever\"/>\n  </auth-delay>\n"
        )),
        "sb.xml:4:5: 'max' on <account> must be a duration like 30s, 5m or 1h, not \"forever\"\n  \
         hint: max=\"0s\" turns this delay off"
    );
    assert_eq!(
        err(&doc(
            "  <auth-delay>\n    <address first=\"0s\"/>\n  </auth-delay>\n"
        )),
        "sb.xml:4:5: 'first' on <address> must be longer than zero"
    );
    assert_eq!(
        err(&doc(
            "  <auth-delay>\n    <address first=\"1m\" max=\"10s\"/>\n  </auth-delay>\n"
        )),
        "sb.xml:4:5: 'first' on <address> (60s) is longer than 'max' (10s)\n  \
         hint: delays start at 'first' and double up to 'max'"
    );
    assert_eq!(
        err(&doc("  <auth-delay forget=\"never\"/>\n")),
        "sb.xml:3:3: 'forget' on <auth-delay> must be a duration like 30s, 5m or 1h, not \"never\""
    );
    assert_eq!(
        err(&doc(
            "  <auth-delay>\n    <address/>\n    <address/>\n  </auth-delay>\n"
        )),
        "sb.xml:5:5: duplicate <address> (the first is at line 4)\n  \
         hint: merge them into one <address>"
    );
    assert_eq!(
        err(&doc("  <auth-delay>\n    <adress/>\n  </auth-delay>\n")),
        "sb.xml:4:5: unknown element <adress> — did you mean <address>?"
    );
    assert_eq!(
        err(&doc("  <limits>\n    <account/>\n  </limits>\n")),
        "sb.xml:4:5: <account> is not allowed in <limits>\n  \
         hint: <account> belongs inside <auth-delay>"
    );
}

#[test]
fn spool_log_and_pidfile() {
    assert_eq!(
        err(&doc("  <spool/>\n")),
        "sb.xml:3:3: missing required attribute 'dir' on <spool>\n  hint: e.g. <spool dir=\"spool\"/>"
    );
    assert_eq!(
        err(&doc("  <log level=\"inof\"/>\n")),
        "sb.xml:3:3: 'inof' is not a log level — did you mean 'info'?\n  \
         hint: use trace, debug, info, warn, error or off, optionally per module: info,switchboard_core=debug"
    );
    assert_eq!(
        err(&doc("  <log file=\"\"/>\n")),
        "sb.xml:3:3: 'file' on <log> is empty"
    );
    assert_eq!(
        err(&doc("  <pidfile/>\n")),
        "sb.xml:3:3: <pidfile> is empty\n  hint: write a path, e.g. <pidfile>run/switchboard.pid</pidfile>"
    );
}

#[test]
fn storage_backends() {
    assert_eq!(ok(&doc("")).storage, StorageConfig::Spool);
    assert_eq!(
        ok(&doc("  <storage backend=\"spool\"/>\n")).storage,
        StorageConfig::Spool
    );
    let c = ok(&doc(
        "  <storage backend=\"postgres\" url=\"postgres://sb@db.example.org/sb\"\n\
         \x20          connections=\"4\" password-file=\"etc/pg.pass\"/>\n",
    ));
    assert_eq!(
        c.storage,
        StorageConfig::Postgres(PostgresConfig {
            url: "postgres://sb@db.example.org/sb".into(),
            connections: 4,
            password_file: Some(at_home("etc/pg.pass")),
        })
    );
    assert_eq!(
        err(&doc("  <storage backend=\"postgress\"/>\n")),
        "sb.xml:3:3: 'backend' on <storage> must be spool or postgres, not \"postgress\"\n  \
         hint: did you mean \"postgres\"?"
    );
    assert_eq!(
        err(&doc("  <storage backend=\"postgres\"/>\n")),
        "sb.xml:3:3: missing required attribute 'url' on <storage>\n  \
         hint: e.g. <storage backend=\"postgres\" url=\"postgres://switchboard@127.0.0.1:5432/switchboard\"/>"
    );
    assert_eq!(
        err(&doc(
            "  <storage backend=\"postgres\" url=\"db.example.org\"/>\n"
        )),
        "sb.xml:3:3: 'url' on <storage> must be a postgres:// URL, not \"db.example.org\"\n  \
         hint: e.g. postgres://switchboard@127.0.0.1:5432/switchboard"
    );
    assert_eq!(
        err(&doc(
            "  <storage backend=\"spool\" url=\"postgres://x/y\"/>\n"
        )),
        "sb.xml:3:3: 'url' on <storage> is for backend=\"postgres\"\n  \
         hint: the spool's directory is <spool dir>"
    );
    assert_eq!(
        err(&doc(
            "  <storage backend=\"postgres\" url=\"postgres://x/y\" connections=\"0\"/>\n"
        )),
        "sb.xml:3:3: 'connections' on <storage> must be at least 1"
    );
    assert_eq!(
        err(&doc(
            "  <storage backend=\"postgres\" uri=\"postgres://x/y\"/>\n"
        )),
        "sb.xml:3:3: unknown attribute 'uri' on <storage> — did you mean 'url'?"
    );
}

#[test]
fn text_where_none_belongs() {
    assert_eq!(
        err(&doc("  <spool>var/spool</spool>\n")),
        "sb.xml:3:3: unexpected text \"var/spool\" in <spool>\n  \
         hint: write it as an attribute: <spool dir=\"var/spool\"/>"
    );
    assert_eq!(
        err(&doc("  <listen>[::]:5222</listen>\n")),
        "sb.xml:3:3: unexpected text \"[::]:5222\" in <listen>\n  hint: <listen> holds only elements"
    );
    assert_eq!(
        err(&doc("  <tls>yes</tls>\n")),
        "sb.xml:3:3: unexpected text \"yes\" in <tls>\n  hint: <tls> holds no text"
    );
    assert_eq!(
        err("<switchboard>\n  stray\n  <host name=\"example.org\"/>\n</switchboard>"),
        "sb.xml:1:1: unexpected text \"stray\" in <switchboard>\n  hint: <switchboard> holds only elements"
    );
    // An element whose one attribute is already set gets no such advice.
    assert_eq!(
        err(&doc("  <spool dir=\"a\">b</spool>\n")),
        "sb.xml:3:3: unexpected text \"b\" in <spool>\n  hint: <spool> holds no text"
    );
    let long = "x".repeat(50);
    assert_eq!(
        err(&host_doc(&format!("    {long}\n"))),
        format!(
            "sb.xml:2:3: unexpected text \"{}…\" in <host>\n  hint: <host> holds only elements",
            "x".repeat(40)
        )
    );
}

#[test]
fn wrong_root() {
    assert_eq!(
        err("<jabber>\n  <service id=\"sessions\"/>\n</jabber>"),
        "sb.xml:1:1: the root element must be <switchboard>, not <jabber>\n  \
         hint: this looks like a jabberd 1.4 jabber.xml; Switchboard's format is different: \
         start from the sample, config/switchboard.xml"
    );
    assert_eq!(
        err("<!-- a comment first -->\n<config/>"),
        "sb.xml:2:1: the root element must be <switchboard>, not <config>\n  \
         hint: start from the sample, config/switchboard.xml"
    );
}

#[test]
fn xml_syntax_errors_keep_the_parsers_position_and_message() {
    for text in [
        "<switchboard>\n  <host name=\"example.org\">\n</switchboard>\n",
        "<switchboard>\n  <host name=\"example.org\"/>\n",
        "<switchboard>\n  <host name=example.org/>\n</switchboard>\n",
        "<switchboard>\n  <host name=\"&nbsp;\"/>\n</switchboard>\n",
        "<!DOCTYPE switchboard>\n<switchboard/>\n",
        "",
    ] {
        let expected = parse_document(text.as_bytes(), Limits::default()).unwrap_err();
        let e = parse(text, "sb.xml", home()).unwrap_err();
        assert_eq!(e.file, "sb.xml");
        assert_eq!((e.line, e.col), (expected.line, expected.col), "{text:?}");
        assert_eq!(e.message, expected.error.detail(), "{text:?}");
    }
}

// ---------------------------------------------------------------------
// Loading files

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.xml");
    std::fs::write(
        &path,
        "<switchboard><host name=\"example.org\"/></switchboard>",
    )
    .unwrap();
    let c = load(&path, dir.path()).unwrap();
    assert_eq!(c.source, path.display().to_string());
    assert_eq!(c.spool.dir, dir.path().join("spool"));

    std::fs::write(
        &path,
        "<switchboard>\n  <host name=\"example.org\"/>\n  <lisen/>\n</switchboard>",
    )
    .unwrap();
    let e = load(&path, dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:3: unknown element <lisen> — did you mean <listen>?",
            path.display()
        )
    );
}

#[test]
fn load_reports_a_missing_file_at_0_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.xml");
    let e = load(&path, dir.path()).unwrap_err();
    let os = std::fs::read(&path).unwrap_err();
    let p = path.display();
    assert_eq!((e.line, e.col), (0, 0));
    assert_eq!(
        e.to_string(),
        format!(
            "{p}:0:0: cannot read config file {p}: {os}\n  hint: create it from the sample: \
             config/switchboard.xml, or run without -c to use the embedded default"
        )
    );
}

#[test]
fn load_reports_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path(), dir.path()).unwrap_err();
    assert_eq!((e.line, e.col), (0, 0));
    assert!(e.message.starts_with(&format!(
        "cannot read config file {}: ",
        dir.path().display()
    )));
}

#[test]
fn load_reports_invalid_utf8_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.xml");
    std::fs::write(
        &path,
        b"<switchboard>\n  <host name=\"caf\xe9.example\"/>\n</switchboard>",
    )
    .unwrap();
    let e = load(&path, dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2:18: the config file is not valid UTF-8\n  \
             hint: save it as UTF-8 (a Latin-1 editor setting is the usual cause)",
            path.display()
        )
    );
}

#[test]
fn an_external_service_needs_a_secret() {
    let e = err(&doc(
        "  <service id=\"irc.example.org\" type=\"external\"/>\n",
    ));
    assert!(e.starts_with("sb.xml:3:3: "), "{e}");
    assert!(e.contains("needs a secret"), "{e}");
}

#[test]
fn an_external_service_gets_the_loopback_component_listener_by_default() {
    let c = ok(&doc(
        "  <service id=\"irc.example.org\" type=\"external\" secret=\"s\"/>\n",
    ));
    assert_eq!(c.listen.component, vec![defaults::COMPONENT]);
    let c = ok(&doc(""));
    assert!(c.listen.component.is_empty());
}

#[test]
fn the_credentials_key_defaults_under_etc_and_can_be_moved() {
    let c = ok(&doc(""));
    assert!(c.credentials_key.ends_with(defaults::CREDENTIALS_KEY));
    let c = ok(&doc("  <credentials key=\"/srv/keys/transports.key\"/>\n"));
    assert_eq!(
        c.credentials_key,
        std::path::PathBuf::from("/srv/keys/transports.key")
    );
}

#[test]
fn metrics_are_off_unless_configured() {
    let c = ok("<switchboard><host name=\"example.org\"/></switchboard>");
    assert_eq!(c.metrics, None);
    let c = ok(&doc("<metrics addr=\"127.0.0.1:0\"/>"));
    assert_eq!(c.metrics, Some(addr("127.0.0.1:0")));
    // Another interface is allowed: the sample and the log warn instead.
    let c = ok(&doc("<metrics addr=\"[::]:9108\"/>"));
    assert_eq!(c.metrics, Some(addr("[::]:9108")));
}

#[test]
fn metrics_errors_are_positioned() {
    let e = err(&doc("<metrics/>"));
    assert!(
        e.contains("missing required attribute 'addr' on <metrics>"),
        "{e}"
    );
    let e = err(&doc("<metrics addr=\"localhost:9108\"/>"));
    assert!(e.starts_with("sb.xml:3:"), "{e}");
    let e = err(&doc("<metrics adr=\"127.0.0.1:9108\"/>"));
    assert!(e.contains("did you mean 'addr'"), "{e}");
    let e = err(&doc(
        "<metrics addr=\"127.0.0.1:1\"/><metrics addr=\"127.0.0.1:2\"/>",
    ));
    assert!(e.contains("duplicate <metrics>"), "{e}");
}

// ---------------------------------------------------------------------
// Federation

#[test]
fn federation_is_off_unless_configured() {
    let c = ok("<switchboard><host name=\"example.org\"/></switchboard>");
    assert_eq!(c.s2s, None);
    assert!(c.listen.s2s.is_empty() && c.listen.s2s_tls.is_empty());
}

#[test]
fn an_empty_s2s_element_gets_every_default_and_the_standard_port() {
    let c = ok(&doc("  <s2s/>\n"));
    assert_eq!(
        c.s2s,
        Some(S2sConfig {
            secure_auth: true,
            dialback: true,
            allow: vec![],
            deny: vec![],
            trust: None,
            resolver: None,
            timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_queue: 1000,
            stanza_rate: Some(Rate {
                count: 500,
                per: Duration::from_secs(1),
            }),
            local_only: vec![],
            connect: vec![],
        })
    );
    assert_eq!(c.listen.s2s, vec![addr("0.0.0.0:5269")]);
    // An explicit listener replaces the default.
    let c = ok(&doc(
        "  <s2s/>\n  <listen><c2s addr=\"127.0.0.1:0\"/><s2s-tls addr=\"127.0.0.2:5270\"/></listen>\n",
    ));
    assert!(c.listen.s2s.is_empty());
    assert_eq!(c.listen.s2s_tls, vec![addr("127.0.0.2:5270")]);
}

#[test]
fn a_full_s2s_policy() {
    let c = ok(&doc(concat!(
        "  <service id=\"irc.example.org\" type=\"irc\"/>\n",
        "  <service id=\"gw.example.org\" type=\"external\" secret=\"x\"/>\n",
        "  <s2s secure-auth=\"FALSE\" dialback=\"true\" allow=\"Example.NET, example.com\"\n",
        "       deny=\"bad.example\" trust=\"etc/peers.pem\" resolver=\"127.0.0.53:53\"\n",
        "       timeout=\"5s\" idle-timeout=\"1h\" max-queue=\"10\" local-only=\"gw.example.org\"\n",
        "       stanza-rate=\"6000/1m\">\n",
        "    <connect domain=\"example.net\" addr=\"192.0.2.7:5269\"/>\n",
        "    <connect domain=\"example.com\" addr=\"[2001:db8::7]:5270\" tls=\"Direct\"/>\n",
        "  </s2s>\n",
    )));
    let s = c.s2s.unwrap();
    assert!(!s.secure_auth && s.dialback);
    assert_eq!(s.allow, ["example.net", "example.com"]);
    assert_eq!(s.deny, ["bad.example"]);
    assert_eq!(s.trust, Some(at_home("etc/peers.pem")));
    assert_eq!(s.resolver, Some(addr("127.0.0.53:53")));
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert_eq!(s.idle_timeout, Duration::from_secs(3600));
    assert_eq!(s.max_queue, 10);
    assert_eq!(
        s.stanza_rate,
        Some(Rate {
            count: 6000,
            per: Duration::from_secs(60)
        })
    );
    let off = ok(&doc("  <s2s stanza-rate=\"OFF\"/>\n"));
    assert_eq!(off.s2s.unwrap().stanza_rate, None);
    // Naming services replaces the default (every transport).
    assert_eq!(s.local_only, ["gw.example.org"]);
    assert_eq!(
        s.connect,
        vec![
            PeerAddress {
                domain: "example.net".into(),
                addr: addr("192.0.2.7:5269"),
                tls: PeerTls::StartTls,
            },
            PeerAddress {
                domain: "example.com".into(),
                addr: addr("[2001:db8::7]:5270"),
                tls: PeerTls::Direct,
            },
        ]
    );
}

#[test]
fn transports_are_local_only_by_default() {
    let c = ok(&doc(concat!(
        "  <s2s/>\n",
        "  <service id=\"irc.example.org\" type=\"irc\"/>\n",
        "  <service id=\"conference.example.org\" type=\"muc\"/>\n",
    )));
    assert_eq!(c.s2s.unwrap().local_only, ["irc.example.org"]);
    let c = ok(&doc(concat!(
        "  <s2s local-only=\"\"/>\n",
        "  <service id=\"irc.example.org\" type=\"irc\"/>\n",
    )));
    assert!(c.s2s.unwrap().local_only.is_empty());
}

#[test]
fn s2s_errors_are_positioned_and_explained() {
    assert_eq!(
        err(&doc("  <s2s secure-auth=\"false\" dialback=\"false\"/>\n")),
        "sb.xml:3:3: secure-auth=\"false\" with dialback=\"false\" changes nothing: a peer \
         whose certificate does not verify can only prove its domain by dialback\n  \
         hint: set dialback=\"true\", or remove secure-auth=\"false\""
    );
    assert_eq!(
        err(&doc("  <s2s secure-auth=\"yes\"/>\n")),
        "sb.xml:3:3: 'secure-auth' on <s2s> must be true or false, not \"yes\""
    );
    assert_eq!(
        err(&doc("  <s2s dialbak=\"true\"/>\n")),
        "sb.xml:3:3: unknown attribute 'dialbak' on <s2s> — did you mean 'dialback'?"
    );
    let e = err(&doc("  <s2s allow=\"good.example bad@domain\"/>\n"));
    assert!(
        e.starts_with("sb.xml:3:3: 'allow' on <s2s>: \"bad@domain\" is not a domain"),
        "{e}"
    );
    assert_eq!(
        err(&doc("  <s2s allow=\"x.example\" deny=\"X.example\"/>\n")),
        "sb.xml:3:3: x.example is in both 'allow' and 'deny' on <s2s>"
    );
    assert_eq!(
        err(&doc("  <s2s resolver=\"dns.example\"/>\n")),
        "sb.xml:3:3: 'resolver' on <s2s>: 'dns.example' is not a socket address\n  \
         hint: write the DNS server as IP:PORT, e.g. 127.0.0.53:53"
    );
    assert_eq!(
        err(&doc("  <s2s timeout=\"soon\"/>\n")),
        "sb.xml:3:3: 'timeout' on <s2s> must be a duration like 30s, 5m or 1h, not \"soon\""
    );
    for bad in ["fast", "0/1s", "500/0s", "500", "500/1 fortnight", "-5/1s"] {
        assert_eq!(
            err(&doc(&format!("  <s2s stanza-rate=\"{bad}\"/>\n"))),
            format!(
                "sb.xml:3:3: 'stanza-rate' on <s2s> must be stanzas per period or off, \
                 not \"{bad}\"\n  hint: e.g. stanza-rate=\"500/1s\" or stanza-rate=\"6000/1m\""
            )
        );
    }
    assert_eq!(
        err(&doc("  <s2s max-queue=\"0\"/>\n")),
        "sb.xml:3:3: 'max-queue' on <s2s> must be a whole number above zero, not \"0\"\n  \
         hint: e.g. max-queue=\"1000\""
    );
    assert_eq!(
        err(&doc("  <s2s>\n    <connect domain=\"a.example\" addr=\"192.0.2.1:5269\" tls=\"direkt\"/>\n  </s2s>\n")),
        "sb.xml:4:5: 'tls' on <connect> must be starttls or direct, not \"direkt\"\n  \
         hint: did you mean \"direct\"?"
    );
    assert_eq!(
        err(&doc(concat!(
            "  <s2s>\n",
            "    <connect domain=\"a.example\" addr=\"192.0.2.1:5269\"/>\n",
            "    <connect domain=\"A.example\" addr=\"192.0.2.2:5269\"/>\n",
            "  </s2s>\n"
        ))),
        "sb.xml:5:5: duplicate <connect domain=\"a.example\"> (the first is at line 4)"
    );
    assert_eq!(
        err(&doc(
            "  <s2s>\n    <connect domain=\"a.example\"/>\n  </s2s>\n"
        )),
        "sb.xml:4:5: missing required attribute 'addr' on <connect>\n  \
         hint: e.g. <connect domain=\"example.net\" addr=\"192.0.2.7:5269\"/>"
    );
    assert_eq!(
        err(&doc(concat!(
            "  <service id=\"irc.example.org\" type=\"irc\"/>\n",
            "  <s2s local-only=\"irc.exmple.org\"/>\n",
        ))),
        "sb.xml:4:3: 'local-only' on <s2s> names irc.exmple.org, which is no <service>\n  \
         hint: did you mean irc.example.org?"
    );
    assert_eq!(
        err(&doc("  <connect domain=\"a.example\" addr=\"192.0.2.1:5269\"/>\n")),
        "sb.xml:3:3: <connect> is not allowed in <switchboard>\n  hint: <connect> belongs inside <s2s>"
    );
    assert_eq!(
        err(&doc("  <s2s/>\n  <s2s/>\n")),
        "sb.xml:4:3: duplicate <s2s> (the first is at line 3)\n  hint: merge them into one <s2s>"
    );
    assert_eq!(
        err(&doc(
            "  <listen><c2s addr=\"127.0.0.1:5222\"/><s2s addr=\"127.0.0.1:5269\"/></listen>\n"
        )),
        "sb.xml:3:3: <listen> has a server-to-server listener, but federation is off\n  \
         hint: add <s2s/> inside <switchboard> to federate with other servers"
    );
    assert_eq!(
        err(&doc(
            "  <s2s/><listen><c2s addr=\"127.0.0.1:5222\"/><s2s addr=\"127.0.0.1:5222\"/></listen>\n"
        )),
        "sb.xml:3:45: 127.0.0.1:5222 is already used by the <c2s> at line 3\n  \
         hint: each listener needs an address and port of its own"
    );
}
