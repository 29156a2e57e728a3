#!/usr/bin/env python3
"""Federation with a real third-party server: Switchboard and Prosody.

Two servers on loopback, each finding the other through DNS as on the
Internet: dnsmasq (Debian dnsmasq-base) on a port of its own answers the
SRV records `_xmpp-server._tcp.sb.federation.example` and
`_xmpp-server._tcp.pro.federation.example` and their targets' A records; Switchboard asks it through
`<s2s resolver>`, Prosody through libunbound's forwarder (`unbound =
{ forward = … }`). A CA made for the run with openssl issues both
servers' certificates; both trust it, both require encryption and
authenticated peers (Switchboard's secure-auth default, Prosody's
`s2s_secure_auth = true`). slixmpp clients, alice on Switchboard and bob on
Prosody, check what users notice:

- a message each way;
- alice subscribes to bob, bob approves, and alice sees bob's presence;
  bob subscribes back and sees alice's;
- IQs across: a ping and a software version query of each server from
  the other's user, and alice's vCard read by bob;
- a directed message to a user who does not exist at Switchboard comes
  back to bob as an error through Prosody;
- `switchboard s2s` shows both links to Prosody's domain established
  with a certificate, and dnsmasq's log shows the SRV questions both
  sides asked;
- once Prosody is stopped, a message alice sends to bob is not lost: it
  comes back to her as an error (remote-server-not-found or -timeout).

Then twice more with fresh instances, Prosody's certificate self-signed
and neither side trusting the other's:

- both allowing dialback (Switchboard `secure-auth="false"`, Prosody
  `s2s_secure_auth = false`): messages and pings cross both ways and
  both of Switchboard's links say dialback (each side asked the other's
  authoritative server);
- Switchboard under its default secure-auth: alice's message comes back
  as remote-server-not-found naming the certificate, Prosody's dialback
  attempt is refused (bob gets Prosody's error), and no link is listed.

Everything listens on 127.0.0.1 on free ports and is stopped at the end
(also on failure); every wait is bounded. Prints the versions and one
line `... OK`, exits 0; on failure the reason and the tails of the logs,
exit 1.

Usage: prosody_federation.py PATH/TO/switchboard
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

import prosody_component as pc
from prosody_component import Failure, lua_str, run

# Not under .test: libunbound answers NXDOMAIN for .test itself (RFC 6761)
# and would never ask the forwarder.
ZONE = "federation.example"
SB = f"sb.{ZONE}"
PRO = f"pro.{ZONE}"
ALICE = ("alice", "alice-fed-pw-1")
BOB = ("bob", "bob-fed-pw-2")
T = 20  # one step: a stanza crossing, a link set up, a process start
POLICY_RC = "/usr/sbin/policy-rc.d"


def ensure_dnsmasq():
    """dnsmasq-base: the binary alone, no daemon to keep from starting."""
    if shutil.which("dnsmasq"):
        return
    if not shutil.which("apt-get"):
        raise Failure("dnsmasq is not installed and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], "apt-get update", timeout=600, env=env)
    run(["apt-get", "install", "-y", "-qq", "dnsmasq-base"], "apt-get install dnsmasq-base", timeout=900, env=env)
    if not shutil.which("dnsmasq"):
        raise Failure("apt-get installed dnsmasq-base but there is no dnsmasq command")


class Ca:
    """A certificate authority made with openssl for this run."""

    def __init__(self, d):
        self.dir = d
        self.crt = os.path.join(d, "ca.crt")
        self.key = os.path.join(d, "ca.key")
        run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=Switchboard federation test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", self.key, "-out", self.crt],
            "openssl req (the CA)",
        )

    def issue(self, name):
        """A certificate for `name` (and its key), as files in the CA's
        directory."""
        crt = os.path.join(self.dir, f"{name}.crt")
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{name}\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", key, "-out", csr], f"openssl req ({name})")
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key,
             "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt], f"openssl x509 ({name})")
        return crt, key


class Dnsmasq:
    """dnsmasq on 127.0.0.1:PORT, answering for the test's zone from its arguments
    only (no upstream, no /etc/hosts)."""

    def __init__(self, scratch, port, srv):
        """`srv`: {domain: (target, port)}; every target is 127.0.0.1."""
        self.port = port
        self.log = os.path.join(scratch, "dnsmasq.log")
        args = [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--bind-interfaces", "--listen-address=127.0.0.1", "--except-interface=nonexistent",
            f"--port={port}", f"--local=/{ZONE}/", "--log-queries", f"--log-facility={self.log}",
            f"--pid-file={os.path.join(scratch, 'dnsmasq.pid')}",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")
        for domain, (target, p) in srv.items():
            args.append(f"--srv-host=_xmpp-server._tcp.{domain},{target},{p},0,5")
            args.append(f"--host-record={target},127.0.0.1")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(scratch, "dnsmasq.err"), "w"))
        pc.wait_port(port, self.proc, "dnsmasq")

    def asked(self):
        with open(self.log, errors="replace") as f:
            return f.read()


class Prosody:
    """A Prosody of its own for PRO, federating."""

    def __init__(self, scratch, ca, dns_port, dialback=False):
        """`dialback`: a self-signed certificate, no trust in the test's
        CA and `s2s_secure_auth = false`, so that each side proves its
        domain to the other by Server Dialback."""
        self.dir = os.path.join(scratch, "prosody")
        os.makedirs(os.path.join(self.dir, "data"))
        self.cfg = os.path.join(self.dir, "prosody.cfg.lua")
        self.log = os.path.join(self.dir, "prosody.log")
        self.c2s_port, self.s2s_port = pc.free_ports(2)
        if dialback:
            crt, key = os.path.join(self.dir, f"{PRO}.crt"), os.path.join(self.dir, f"{PRO}.key")
            run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", f"/CN={PRO}", "-addext", f"subjectAltName=DNS:{PRO}",
                 "-keyout", key, "-out", crt], "openssl req (Prosody's self-signed certificate)")
        else:
            crt, key = ca.issue(PRO)
        # What its clients trust: the test's CA, or the certificate itself.
        self.client_ca = crt if dialback else ca.crt
        secure = "false" if dialback else "true"
        # Trusting only itself, it cannot verify Switchboard's certificate
        # either: both directions use dialback.
        trusted = crt if dialback else ca.crt
        root = "run_as_root = true -- this test's own instance, CI runs as root\n" if os.geteuid() == 0 else ""
        d = lambda *p: lua_str(os.path.join(self.dir, *p))
        with open(self.cfg, "w") as f:
            f.write(f"""-- Written by prosody_federation.py: a throwaway Prosody on 127.0.0.1.
daemonize = false
pidfile = {d("prosody.pid")}
data_path = {d("data")}
log = {{ debug = {d("prosody.log")} }}
{root}interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s_port} }}
s2s_ports = {{ {self.s2s_port} }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "disco", "ping", "version", "vcard_legacy", "vcard4", "pep" }}
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {secure}
authentication = "internal_hashed"
-- DNS from this test's dnsmasq only.
unbound = {{ forward = "127.0.0.1@{dns_port}", resolvconf = false, hoststxt = false }}
ssl = {{ certificate = {lua_str(crt)}, key = {lua_str(key)}, cafile = {lua_str(trusted)} }}

VirtualHost {lua_str(PRO)}
""")
        self.proc = None

    def ctl(self, *args):
        return run(["prosodyctl", "--config", self.cfg, *args], "prosodyctl " + " ".join(args[:1]))

    def version(self):
        for line in self.ctl("about").splitlines():
            if line.startswith("Prosody "):
                return line.split()[1]
        return "unknown"

    def start(self):
        out = open(os.path.join(self.dir, "prosody.out"), "a")
        self.proc = subprocess.Popen(["prosody", "--config", self.cfg, "-F"], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out)
        out.close()
        pc.wait_port(self.c2s_port, self.proc, "prosody")
        pc.wait_port(self.s2s_port, self.proc, "prosody")


class Switchboard:
    """Switchboard for SB, federating."""

    def __init__(self, binary, scratch, ca, dns_port, dialback=False):
        """`dialback`: secure-auth="false", so that a peer whose
        certificate does not verify may prove its domain by dialback."""
        self.binary = binary
        self.ca = ca.crt
        policy = ' secure-auth="false"' if dialback else ""
        self.home = os.path.join(scratch, "switchboard")
        os.makedirs(os.path.join(self.home, "etc"))
        self.c2s_port, self.s2s_port = pc.free_ports(2)
        crt, key = ca.issue(SB)
        self.cfg = os.path.join(self.home, "etc", "switchboard.xml")
        with open(self.cfg, "w") as f:
            f.write(f"""<switchboard>
  <host name="{SB}"><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:{self.c2s_port}"/><s2s addr="127.0.0.1:{self.s2s_port}"/></listen>
  <tls cert="{crt}" key="{key}" required="true"/>
  <s2s trust="{ca.crt}" resolver="127.0.0.1:{dns_port}" timeout="{T}s"{policy}/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
""")
        self.log = os.path.join(self.home, "logs", "switchboard.log")
        self.proc = None

    def cli(self, *args, stdin=None):
        r = subprocess.run([self.binary, "-H", self.home, "-c", self.cfg, *args], input=stdin,
                           capture_output=True, text=True, timeout=T)
        if r.returncode != 0:
            raise Failure(f"switchboard {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def start(self):
        err = open(os.path.join(self.home, "stderr"), "w")
        self.proc = subprocess.Popen([self.binary, "-H", self.home, "-c", self.cfg, "run"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        pc.wait_port(self.c2s_port, self.proc, "switchboard")
        pc.wait_port(self.s2s_port, self.proc, "switchboard")


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, port, cafile):
        super().__init__(jid, password)
        self.ca_certs = cafile
        for p in ("xep_0030", "xep_0054", "xep_0092", "xep_0199"):
            self.register_plugin(p)
        self.online = asyncio.get_event_loop().create_future()
        self.inbox = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", lambda m: self.inbox.put_nowait(m))
        # Errors without a body (Prosody's bounces) only come as this.
        self.add_event_handler("message_error", lambda m: self.inbox.put_nowait(m))
        self.add_event_handler("presence", lambda p: self.presences.put_nowait(p))
        self.add_event_handler(
            "failed_all_auth",
            lambda _: self.online.done() or self.online.set_exception(Failure(f"{jid}: login refused")),
        )
        # Subscriptions are answered by the scenario, not automatically.
        self.auto_authorize = None
        self.auto_subscribe = False
        self.connect(address=("127.0.0.1", port))

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    async def ready(self):
        try:
            await asyncio.wait_for(asyncio.shield(self.online), T)
        except asyncio.TimeoutError:
            raise Failure(f"{self.boundjid.bare} did not log in within {T} s")
        return self

    async def message(self, what, pred):
        return await wait_queue(self.inbox, what, pred, self.boundjid.bare)

    async def presence(self, what, pred):
        return await wait_queue(self.presences, what, pred, self.boundjid.bare)


async def wait_queue(q, what, pred, who):
    deadline = time.monotonic() + T
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"{who}: no {what} within {T} s; got {[str(s) for s in seen]}")
        try:
            s = await asyncio.wait_for(q.get(), left)
        except asyncio.TimeoutError:
            continue
        if pred(s):
            return s
        seen.append(s)


async def scenario(sb, prosody, dns):
    alice = await Client(f"alice@{SB}/desk", ALICE[1], sb.c2s_port, sb.ca).ready()
    bob = await Client(f"bob@{PRO}/phone", BOB[1], prosody.c2s_port, prosody.client_ca).ready()
    a_jid, b_jid = f"alice@{SB}", f"bob@{PRO}"

    # Messages both ways (the first sets up Switchboard's link to Prosody,
    # the answer Prosody's to Switchboard).
    alice.send_message(mto=b_jid, mbody="hello from switchboard", mtype="chat")
    await bob.message("alice's message", lambda m: m["body"] == "hello from switchboard"
                      and m["from"].bare == a_jid)
    bob.send_message(mto=f"{a_jid}/desk", mbody="hello from prosody", mtype="chat")
    await alice.message("bob's message", lambda m: m["body"] == "hello from prosody"
                        and m["from"].bare == b_jid)

    # Subscriptions and presence, both ways.
    alice.send_presence(pto=b_jid, ptype="subscribe")
    await bob.presence("alice's subscription request",
                       lambda p: p["type"] == "subscribe" and p["from"].bare == a_jid)
    bob.send_presence(pto=a_jid, ptype="subscribed")
    await alice.presence("bob's approval", lambda p: p["type"] == "subscribed" and p["from"].bare == b_jid)
    await alice.presence("bob's presence", lambda p: p["type"] == "available" and p["from"] == f"{b_jid}/phone")
    bob.send_presence(pto=a_jid, ptype="subscribe")
    await alice.presence("bob's subscription request",
                         lambda p: p["type"] == "subscribe" and p["from"].bare == b_jid)
    alice.send_presence(pto=b_jid, ptype="subscribed")
    await bob.presence("alice's presence", lambda p: p["type"] == "available" and p["from"] == f"{a_jid}/desk")
    item = alice.client_roster[b_jid]
    if item["subscription"] != "both":
        raise Failure(f"alice's roster item for bob has subscription {item['subscription']!r}, not both")

    # IQs across, to each server and to an account.
    await alice["xep_0199"].ping(jid=PRO, timeout=T)
    await bob["xep_0199"].ping(jid=SB, timeout=T)
    v = await alice["xep_0092"].get_version(PRO, timeout=T)
    if "Prosody" not in str(v["software_version"]["name"]):
        raise Failure(f"{PRO}'s version, asked by alice: {v}")
    v = await bob["xep_0092"].get_version(SB, timeout=T)
    if str(v["software_version"]["name"]) != "Switchboard":
        raise Failure(f"{SB}'s version, asked by bob: {v}")
    vcard = alice["xep_0054"].make_vcard()
    vcard["FN"] = "Alice at Switchboard"
    await alice["xep_0054"].publish_vcard(vcard, timeout=T)
    card = await bob["xep_0054"].get_vcard(a_jid, cached=False, timeout=T)
    if str(card["vcard_temp"]["FN"]) != "Alice at Switchboard":
        raise Failure(f"alice's vCard read by bob: {card}")

    # An error for a remote sender comes back through Prosody.
    bob.send_message(mto=f"nobody@{SB}", mbody="anyone?", mtype="chat")
    err = await bob.message("the error for nobody at Switchboard", lambda m: m["type"] == "error")
    if err["error"]["condition"] != "service-unavailable":
        raise Failure(f"the error for nobody@{SB}: {err}")

    links = sb.cli("s2s")
    for want in (f"{SB} -> {PRO} established (certificate)", f"{SB} <- {PRO} established (certificate)"):
        if want not in links:
            raise Failure(f"`switchboard s2s` does not show {want!r}:\n{links}")
    asked = dns.asked()
    for name in (f"_xmpp-server._tcp.{PRO}", f"_xmpp-server._tcp.{SB}"):
        if name not in asked:
            raise Failure(f"nobody asked dnsmasq for {name}")

    # Prosody goes away: alice's next message is not lost, it comes back
    # to her as an error.
    bob.disconnect()
    code = pc.stop(prosody.proc, "prosody")
    if code != 0:
        raise Failure(f"prosody exited with {code} on SIGTERM")
    m = alice.make_message(mto=b_jid, mbody="are you there?", mtype="chat")
    m["id"] = "gone-1"
    m.send()
    err = await alice.message("the bounce once Prosody is gone",
                              lambda m: m["type"] == "error" and m["id"] == "gone-1")
    if err["error"]["condition"] not in ("remote-server-not-found", "remote-server-timeout"):
        raise Failure(f"the bounce once Prosody is gone: {err}")
    alice.disconnect()
    await asyncio.sleep(0.3)
    return err["error"]["condition"]


async def scenario_dialback(sb, prosody, dns):
    """Neither side can verify the other's certificate and both allow
    dialback: messages and pings cross both ways over links
    authenticated by dialback (each side asking the other's
    authoritative server)."""
    alice = await Client(f"alice@{SB}/desk", ALICE[1], sb.c2s_port, sb.ca).ready()
    bob = await Client(f"bob@{PRO}/phone", BOB[1], prosody.c2s_port, prosody.client_ca).ready()
    a_jid, b_jid = f"alice@{SB}", f"bob@{PRO}"
    alice.send_message(mto=b_jid, mbody="by dialback", mtype="chat")
    await bob.message("alice's message", lambda m: m["body"] == "by dialback" and m["from"].bare == a_jid)
    bob.send_message(mto=f"{a_jid}/desk", mbody="and back", mtype="chat")
    await alice.message("bob's message", lambda m: m["body"] == "and back" and m["from"].bare == b_jid)
    await alice["xep_0199"].ping(jid=PRO, timeout=T)
    await bob["xep_0199"].ping(jid=SB, timeout=T)
    links = sb.cli("s2s")
    for want in (f"{SB} -> {PRO} established (dialback)", f"{SB} <- {PRO} established (dialback)"):
        if want not in links:
            raise Failure(f"`switchboard s2s` does not show {want!r}:\n{links}")
    for c in (alice, bob):
        c.disconnect()
    await asyncio.sleep(0.3)


async def scenario_refused(sb, prosody, dns):
    """Prosody with a self-signed certificate, Switchboard under
    secure-auth (its default): no link either way, and each user's
    message comes back as an error."""
    alice = await Client(f"alice@{SB}/desk", ALICE[1], sb.c2s_port, sb.ca).ready()
    bob = await Client(f"bob@{PRO}/phone", BOB[1], prosody.c2s_port, prosody.client_ca).ready()
    a_jid, b_jid = f"alice@{SB}", f"bob@{PRO}"
    alice.send_message(mto=b_jid, mbody="refused?", mtype="chat")
    err = await alice.message("the bounce from Switchboard", lambda m: m["type"] == "error")
    if err["error"]["condition"] != "remote-server-not-found" or "certificate" not in err["error"]["text"]:
        raise Failure(f"alice's bounce for a peer with a self-signed certificate: {err}")
    bob.send_message(mto=f"{a_jid}/desk", mbody="refused too?", mtype="chat")
    err = await bob.message("the bounce from Prosody", lambda m: m["type"] == "error")
    if err["error"]["condition"] not in ("remote-server-not-found", "remote-server-timeout", "not-authorized"):
        raise Failure(f"bob's bounce from Prosody: {err}")
    links = sb.cli("s2s")
    if "established" in links:
        raise Failure(f"a link was established with a peer that should be refused:\n{links}")
    for c in (alice, bob):
        c.disconnect()
    await asyncio.sleep(0.3)
    return err["error"]["condition"]


def run_phase(binary, scratch, dialback, running, refused=False):
    """Sets up dnsmasq, Prosody and Switchboard under `scratch` and runs
    one scenario; `running` collects what was started (for the report and
    the clean-up). Returns the scenario's result."""
    ca = Ca(scratch)
    (dns_port,) = pc.free_ports(1)
    prosody = Prosody(scratch, ca, dns_port, dialback)
    running["prosody"] = prosody
    sb = Switchboard(binary, scratch, ca, dns_port, dialback and not refused)
    running["sb"] = sb
    running["dns"] = Dnsmasq(scratch, dns_port, {
        SB: (f"xmpp.{SB}", sb.s2s_port),
        PRO: (f"xmpp.{PRO}", prosody.s2s_port),
    })
    prosody.ctl("register", BOB[0], PRO, BOB[1])
    sb.cli("user", "add", f"{ALICE[0]}@{SB}", stdin=ALICE[1] + "\n")
    prosody.start()
    sb.start()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    run_it = scenario_refused if refused else scenario_dialback if dialback else scenario
    try:
        result = loop.run_until_complete(asyncio.wait_for(run_it(sb, prosody, running["dns"]), T * 8))
    except asyncio.TimeoutError:
        raise Failure(f"the scenario took more than {T * 8} s")
    except (IqError, IqTimeout) as e:
        raise Failure(f"{type(e).__name__}: {e.iq if hasattr(e, 'iq') else e}")
    finally:
        pending = asyncio.all_tasks(loop)
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
        loop.close()
    code = pc.stop(sb.proc, "switchboard")
    if code != 0:
        raise Failure(f"switchboard exited with {code} on SIGTERM")
    return result


def kill_all(running):
    for name in ("sb", "prosody", "dns"):
        proc = running.get(name) and running[name].proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("Usage: ")[1])
    binary = os.path.abspath(sys.argv[1])

    def on_term(*_):
        print("prosody federation: FAILED: interrupted by SIGTERM", flush=True)
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_term)
    scratch = tempfile.mkdtemp(prefix="prosody-federation-")
    running = {}
    ok = False
    try:
        pc.ensure_prosody()
        ensure_dnsmasq()
        secure_dir = os.path.join(scratch, "secure")
        os.makedirs(secure_dir)
        gone = run_phase(binary, secure_dir, False, running)
        version = running["prosody"].version()
        kill_all(running)
        running = {}
        dialback_dir = os.path.join(scratch, "dialback")
        os.makedirs(dialback_dir)
        run_phase(binary, dialback_dir, True, running)
        kill_all(running)
        running = {}
        refused_dir = os.path.join(scratch, "refused")
        os.makedirs(refused_dir)
        prosody_says = run_phase(binary, refused_dir, True, running, refused=True)
        print(
            f"prosody federation: Prosody {version} ({PRO}) and Switchboard ({SB}), found through "
            f"dnsmasq's SRV records, certificates from a private CA under secure auth: messages, "
            f"subscriptions and presence both ways, pings, versions and a vCard across, an error back "
            f"to a remote sender, both links listed; with Prosody stopped a message bounces with {gone}; "
            f"with a self-signed Prosody and dialback allowed, messages and pings both ways over "
            f"dialback links; under secure-auth that Prosody is refused both ways (Prosody answers "
            f"{prosody_says}): OK",
            flush=True,
        )
        ok = True
    except Failure as e:
        print(f"prosody federation: FAILED: {e}", flush=True)
    except Exception as e:  # a bug here, or a surprise: with where it happened
        import traceback

        traceback.print_exc()
        print(f"prosody federation: FAILED: {type(e).__name__}: {e}", flush=True)
    finally:
        try:
            kill_all(running)
            if not ok:
                report = ""
                prosody, sb, dns = running.get("prosody"), running.get("sb"), running.get("dns")
                if prosody:
                    report += "--- last lines of Prosody's log about s2s\n"
                    report += pc.tail(prosody.log, 40, only=r"s2s|dialback|unbound|cert")
                if sb:
                    report += "--- last lines of Switchboard's log\n" + pc.tail(sb.log, 30)
                    report += "--- Switchboard's stderr\n" + pc.tail(os.path.join(sb.home, "stderr"), 10)
                if dns:
                    report += "--- dnsmasq's log\n" + pc.tail(dns.log, 20)
                sys.stderr.write(report)
                sys.stderr.flush()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
