#!/usr/bin/env python3
"""The component connector against a real third-party server: Prosody.

Runs `switchboard component users.localhost --type directory` attached over
XEP-0114 to a throwaway Prosody (installed with apt-get when missing,
without letting the package start the system's daemon), and checks with
slixmpp clients logged in to Prosody what users notice:

- the component attaches: disco#info on users.localhost, asked by alice
  through Prosody, returns the identity directory/user;
- alice lists herself (jabber:iq:register: first, last, e-mail);
- bob gets the search form, searches with legacy fields and finds her;
- bob searches with a data form (FORM_TYPE jabber:iq:search) and gets a
  result table whose row is alice's;
- alice removes herself (<remove/>) and bob no longer finds her;
- idle for 4 s with `--keepalive 1`: its self-pings go through Prosody and
  come back, so the link is never replaced;
- alice lists herself again, Prosody is stopped and started again on the
  same ports and data: the component re-attaches by itself and bob finds
  alice (the listing lives in the component's home);
- the component and Prosody stop on SIGTERM.

Prosody runs from a scratch directory with its own config file, on
127.0.0.1 and free ports, with STARTTLS required (a self-signed certificate
made with openssl; the clients verify it). Every wait is bounded.
Prints Prosody's version and one line `... OK`, exits 0; on failure one line
with the reason, the tails of Prosody's log and the component's stderr,
exit 1.

Usage: prosody_component.py PATH/TO/switchboard
"""

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

DOMAIN = "localhost"
DIR = "users.localhost"
SECRET = "prosody-directory-secret-4c1e"
USERS = {"alice": "alice-pw-9", "bob": "bob-pw-9"}

REGISTER = "jabber:iq:register"
SEARCH = "jabber:iq:search"
DATA = "jabber:x:data"
DISCO_INFO = "http://jabber.org/protocol/disco#info"

T = 15  # one step (a stanza round trip, a login, a process start)
ATTACH = 30  # the component attaching, first or after Prosody's restart
DOWN = 3  # how long Prosody stays stopped: the component's first retries fail
POLICY_RC = "/usr/sbin/policy-rc.d"


class Failure(Exception):
    pass


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1, none of XMPP's defaults."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            p = s.getsockname()[1]
            if p not in (5222, 5223, 5269, 5347, 5280, 5281):
                ports.append(p)
    finally:
        for s in socks:
            s.close()
    return ports


def run(cmd, what, timeout=T * 4, **kw):
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise Failure(f"{what}: no answer within {timeout} s")
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or [""]
        raise Failure(f"{what}: exit {r.returncode}: {msg[0]}")
    return r.stdout


def ensure_prosody():
    """Installs the Debian package when prosody is missing, with a
    policy-rc.d that keeps the package from starting the system's daemon
    (only if the machine has none; removed afterwards)."""
    if shutil.which("prosody") and shutil.which("prosodyctl"):
        return
    if not shutil.which("apt-get"):
        raise Failure("prosody is not installed and there is no apt-get to install it")
    created = False
    if not os.path.lexists(POLICY_RC):
        with open(POLICY_RC, "w") as f:
            f.write("#!/bin/sh\n# prosody_component.py: no daemon starts during its apt-get\nexit 101\n")
        os.chmod(POLICY_RC, 0o755)
        created = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], "apt-get update", timeout=600, env=env)
        run(["apt-get", "install", "-y", "-qq", "prosody"], "apt-get install prosody", timeout=900, env=env)
    finally:
        if created:
            os.unlink(POLICY_RC)
    if not shutil.which("prosody"):
        raise Failure("apt-get installed prosody but there is no prosody command")


def tail(path, n=30, only=None):
    """The last n lines of a file (those matching the regex `only`, if given)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [l for l in f if only is None or re.search(only, l)][-n:]
    except OSError as e:
        return f"({e})\n"
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", l)[:600].rstrip("\n") + "\n" for l in lines]
    return "".join(lines) or "(none)\n"


def wait_port(port, proc, what, timeout=T):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise Failure(f"{what} exited with {proc.returncode} before listening on 127.0.0.1:{port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise Failure(f"{what} is not listening on 127.0.0.1:{port} after {timeout} s")
            time.sleep(0.1)


def stop(proc, what, timeout=10):
    """SIGTERM, then a bounded wait; returns the exit status or raises."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise Failure(f"{what} did not stop within {timeout} s of SIGTERM")


class Prosody:
    """A Prosody of its own in a scratch directory."""

    def __init__(self, scratch, components=None):
        """`components` maps each component hostname to its secret (by
        default the directory of this script)."""
        components = components or {DIR: SECRET}
        self.dir = os.path.join(scratch, "prosody")
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "certs"))  # Prosody's default certificates = "certs"
        self.cfg = os.path.join(self.dir, "prosody.cfg.lua")
        self.log = os.path.join(self.dir, "prosody.log")
        self.crt = os.path.join(self.dir, "certs", "localhost.crt")
        self.key = os.path.join(self.dir, "certs", "localhost.key")
        self.c2s_port, self.component_port = free_ports(2)
        self.proc = None
        run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={DOMAIN}", "-addext", f"subjectAltName=DNS:{DOMAIN}",
             "-keyout", self.key, "-out", self.crt],
            "openssl req (the self-signed certificate)",
        )
        d = lambda *p: lua_str(os.path.join(self.dir, *p))
        root = "run_as_root = true -- this test's own instance, CI runs as root\n" if os.geteuid() == 0 else ""
        with open(self.cfg, "w") as f:
            f.write(f"""-- Written by prosody_component.py: a throwaway Prosody on 127.0.0.1.
daemonize = false
pidfile = {d("prosody.pid")}
data_path = {d("data")}
log = {{ debug = {d("prosody.log")} }}
{root}interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s_port} }}
component_interfaces = {{ "127.0.0.1" }}
component_ports = {{ {self.component_port} }}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping" }}
modules_disabled = {{ "s2s" }}
c2s_require_encryption = true
authentication = "internal_hashed"
ssl = {{ certificate = {d("certs", "localhost.crt")}, key = {d("certs", "localhost.key")} }}

VirtualHost {lua_str(DOMAIN)}
""")
            for host, secret in components.items():
                f.write(f"\nComponent {lua_str(host)}\n    component_secret = {lua_str(secret)}\n")

    def ctl(self, *args):
        return run(["prosodyctl", "--config", self.cfg, *args], "prosodyctl " + " ".join(args[:1]))

    def version(self):
        for line in self.ctl("about").splitlines():
            if line.startswith("Prosody "):
                return line.split()[1]
        return "unknown"

    def start(self):
        out = open(os.path.join(self.dir, "prosody.out"), "a")
        # -F as well as daemonize = false: stay in the foreground whatever
        # the version's default.
        self.proc = subprocess.Popen(
            ["prosody", "--config", self.cfg, "-F"], stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        out.close()
        wait_port(self.c2s_port, self.proc, "prosody")
        wait_port(self.component_port, self.proc, "prosody")

    def stop(self):
        code = stop(self.proc, "prosody")
        if code != 0:
            raise Failure(f"prosody exited with {code} on SIGTERM")
        if os.path.exists(os.path.join(self.dir, "prosody.pid")):
            raise Failure("prosody left its pidfile behind")


class Client(slixmpp.ClientXMPP):
    def __init__(self, user, prosody):
        super().__init__(f"{user}@{DOMAIN}/test", USERS[user])
        self.ca_certs = prosody.crt
        self.register_plugin("xep_0030")
        self.online = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler(
            "failed_all_auth", lambda _: self.online.done() or self.online.set_exception(Failure(f"{user}: login refused"))
        )
        self.connect(address=("127.0.0.1", prosody.c2s_port))

    async def on_start(self, _):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    async def ready(self):
        try:
            await asyncio.wait_for(asyncio.shield(self.online), T)
        except asyncio.TimeoutError:
            raise Failure(f"{self.boundjid.bare} did not log in to Prosody within {T} s (STARTTLS, SASL, bind)")
        return self

    async def iq(self, kind, xml):
        """Sends an IQ to the directory; returns the reply (an Element)."""
        iq = self.Iq()
        iq["type"] = kind
        iq["to"] = DIR
        iq.append(ET.fromstring(xml))
        r = await iq.send(timeout=T)
        return r.xml

    async def attached(self):
        """True once disco#info on the directory comes back with its
        identity; False while Prosody answers that nobody is attached."""
        try:
            r = await self.iq("get", f"<query xmlns='{DISCO_INFO}'/>")
        except IqError as e:
            # Prosody's bounce while no component is attached.
            if e.iq["error"]["condition"] == "remote-server-timeout":
                return False
            raise
        ids = {(i.get("category"), i.get("type")) for i in r.iter(f"{{{DISCO_INFO}}}identity")}
        if ("directory", "user") not in ids:
            raise Failure(f"disco#info on {DIR} answered identities {sorted(ids)}, not directory/user")
        return True


async def wait_attached(client, component, why):
    deadline = time.monotonic() + ATTACH
    while not await client.attached():
        if component.poll() is not None:
            raise Failure(f"the component exited with {component.returncode} {why}")
        if time.monotonic() > deadline:
            raise Failure(f"the component did not attach to Prosody within {ATTACH} s {why}")
        await asyncio.sleep(0.5)


def legacy_hits(q):
    return {i.get("jid"): {c.tag.split("}")[1]: (c.text or "") for c in i} for i in q.iter(f"{{{SEARCH}}}item")}


async def legacy_search(bob, **fields):
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return legacy_hits(await bob.iq("set", f"<query xmlns='{SEARCH}'>{body}</query>"))


async def form_search(bob, **fields):
    body = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
    q = await bob.iq(
        "set",
        f"<query xmlns='{SEARCH}'><x xmlns='{DATA}' type='submit'>"
        f"<field var='FORM_TYPE' type='hidden'><value>{SEARCH}</value></field>{body}</x></query>",
    )
    x = q.find(f"{{{SEARCH}}}query/{{{DATA}}}x")
    if x is None or x.get("type") != "result":
        raise Failure(f"a data-form search was not answered with a result form: {ET.tostring(q, 'unicode')}")
    reported = [f.get("var") for f in x.findall(f"{{{DATA}}}reported/{{{DATA}}}field")]
    if "jid" not in reported:
        raise Failure(f"the result form reports {reported}, no jid column")
    rows = []
    for item in x.findall(f"{{{DATA}}}item"):
        rows.append({f.get("var"): f.findtext(f"{{{DATA}}}value", "") for f in item.findall(f"{{{DATA}}}field")})
    return rows


async def register(alice, body):
    r = await alice.iq("set", f"<query xmlns='{REGISTER}'>{body}</query>")
    if r.get("type") != "result":
        raise Failure(f"registration answered {ET.tostring(r, 'unicode')}")


async def scenario(prosody, component):
    alice = await Client("alice", prosody).ready()
    bob = await Client("bob", prosody).ready()
    await wait_attached(alice, component, "at start")

    await register(alice, "<first>Alice</first><last>Liddell</last><email>alice@localhost</email>")

    form = await bob.iq("get", f"<query xmlns='{SEARCH}'/>")
    offered = {c.tag.split("}")[1] for c in form.find(f"{{{SEARCH}}}query")}
    if not {"first", "last", "nick", "email", "x"} <= offered:
        raise Failure(f"the search form offers {sorted(offered)}")

    hits = await legacy_search(bob, last="lidd")
    me = hits.get("alice@localhost")
    if not me or me.get("first") != "Alice" or me.get("email") != "alice@localhost":
        raise Failure(f"bob's search for last=lidd found {hits}")

    rows = await form_search(bob, first="ALI")
    if [r.get("jid") for r in rows] != ["alice@localhost"] or rows[0].get("last") != "Liddell":
        raise Failure(f"bob's data-form search for first=ALI returned rows {rows}")

    await register(alice, "<remove/>")
    hits = await legacy_search(bob, first="alice")
    if hits:
        raise Failure(f"alice removed herself but bob still finds {sorted(hits)}")

    # Idle for a while: with --keepalive 1 the connector pings itself
    # through Prosody every second; if Prosody did not route those back, the
    # link would be replaced after 2.5 s. It must stay the same link.
    await asyncio.sleep(4)
    with open(component.stderr_path, errors="replace") as f:
        log = f.read()
    if "connection ended" in log or log.count("attached") != 1:
        raise Failure("the idle link did not survive its keepalives:\n" + log[-800:])
    with open(prosody.log, errors="replace") as f:
        if "sb-keepalive-" not in f.read():
            raise Failure("no keepalive ping reached Prosody while the link was idle")
    # And it still answers (alice removed herself above: nobody is found).
    hits = await legacy_search(bob, first="alice")
    if hits:
        raise Failure(f"after idling, bob's search found {sorted(hits)}")

    # Listed again, then Prosody goes away and comes back.
    await register(alice, "<first>Alice</first><last>Liddell</last><nick>ally</nick>")
    for c in (alice, bob):
        c.disconnect()
    await asyncio.sleep(0.3)
    prosody.stop()
    await asyncio.sleep(DOWN)
    if component.poll() is not None:
        raise Failure(f"the component exited with {component.returncode} while Prosody was stopped")
    prosody.start()
    started = time.monotonic()
    bob = await Client("bob", prosody).ready()
    await wait_attached(bob, component, "after Prosody restarted")
    reattached = time.monotonic() - started
    hits = await legacy_search(bob, nick="ALLY")
    if list(hits) != ["alice@localhost"]:
        raise Failure(f"after Prosody restarted, bob's search for nick=ALLY found {hits}")
    rows = await form_search(bob, last="liddell")
    if [r.get("jid") for r in rows] != ["alice@localhost"]:
        raise Failure(f"after Prosody restarted, the data-form search returned rows {rows}")
    bob.disconnect()
    await asyncio.sleep(0.3)
    return reattached


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("Usage: ")[1])
    binary = os.path.abspath(sys.argv[1])

    def on_term(*_):
        print("prosody component: FAILED: interrupted by SIGTERM", flush=True)
        sys.exit(1)  # through the cleanup below

    signal.signal(signal.SIGTERM, on_term)
    scratch = tempfile.mkdtemp(prefix="prosody-component-")
    prosody = component = None
    comp_err = os.path.join(scratch, "component.stderr")
    ok = False
    try:
        ensure_prosody()
        prosody = Prosody(scratch)
        version = prosody.version()
        print(f"prosody component: Prosody {version}", flush=True)
        for user, pw in USERS.items():
            prosody.ctl("register", user, DOMAIN, pw)
        prosody.start()

        with open(comp_err, "w") as err:
            component = subprocess.Popen(
                [binary, "-H", os.path.join(scratch, "component"), "component", DIR, "--type", "directory",
                 "--server", f"127.0.0.1:{prosody.component_port}", "--keepalive", "1"],
                env=dict(os.environ, SWITCHBOARD_COMPONENT_SECRET=SECRET),
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            )
            component.stderr_path = comp_err
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            reattached = loop.run_until_complete(asyncio.wait_for(scenario(prosody, component), T * 10))
        except asyncio.TimeoutError:
            raise Failure(f"the scenario took more than {T * 10} s")
        except (IqError, IqTimeout) as e:
            raise Failure(f"{type(e).__name__}: {e.iq if hasattr(e, 'iq') else e}")
        finally:
            # slixmpp leaves tasks behind: cancel them before closing.
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=5))
            loop.close()

        code = stop(component, "the component")
        if code != 0:
            raise Failure(f"the component exited with {code} on SIGTERM")
        prosody.stop()
        if not os.listdir(os.path.join(scratch, "component", "spool")):
            raise Failure("the component's home has no spool")
        print(
            f"prosody component: Prosody {version}, switchboard component {DIR} (directory) over XEP-0114: "
            f"disco#info directory/user through Prosody, listing, legacy and data-form search, removal, "
            f"re-attached {reattached:.1f} s after Prosody was back (down {DOWN} s) with the listing kept, stops on SIGTERM: OK",
            flush=True,
        )
        ok = True
    except Failure as e:
        print(f"prosody component: FAILED: {e}", flush=True)
    except Exception as e:  # anything unforeseen is a failure with a reason too
        print(f"prosody component: FAILED: {type(e).__name__}: {e}", flush=True)
    finally:
        try:
            for proc in (component, prosody and prosody.proc):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
            if not ok:
                report = ""
                if prosody:
                    # Component streams are Prosody's "jcp…" sessions.
                    report += "--- Prosody's log, its last lines about the component\n"
                    report += tail(prosody.log, 25, only=rf"\bjcp[0-9a-f]+\b|{re.escape(DIR)}:component")
                    report += "--- last lines of Prosody's log\n" + tail(prosody.log, 25)
                report += "--- last lines of the component's stderr\n" + tail(comp_err)
                sys.stderr.write(report)
                sys.stderr.flush()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
