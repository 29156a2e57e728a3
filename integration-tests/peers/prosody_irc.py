#!/usr/bin/env python3
"""The IRC transport as an external component of a real third-party server.

Runs `switchboard component irc.localhost` (the IRC transport, its settings
from its own home's config) attached over XEP-0114 to a throwaway Prosody,
with a real ngircd behind it, and checks with a slixmpp client logged in to
Prosody and a raw IRC client what users of both sides notice:

- the transport attaches: disco#info on irc.localhost, asked through
  Prosody, returns the identity gateway/irc;
- alice (XMPP, on Prosody) joins #test%127.0.0.1@irc.localhost/alice
  where bob (IRC) already is: she gets bob's occupant presence, then her
  own with status 110, then the subject;
- bob sees her JOIN; her groupchat message reaches him as PRIVMSG, and
  she gets it reflected; his PRIVMSG (non-ASCII) reaches her as groupchat
  from the room JID with his nick;
- private messages both ways: bob's PRIVMSG to her nick arrives as a chat
  from bob%127.0.0.1@irc.localhost, and her reply reaches bob;
- her unavailable presence sends PART, and she gets her own unavailable
  presence with status 110.

ngircd and Prosody run from a scratch directory on 127.0.0.1 and free ports
(installed with apt-get when missing, without letting the packages start
the system's daemons). Every wait is bounded. Prints the versions and one
line `... OK` and exits 0; on failure one line with the reason and the
tails of the logs, exit 1.

Usage: prosody_irc.py PATH/TO/switchboard
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The throwaway Prosody, its client and the process helpers are shared
# with the directory's component test.
from prosody_component import (  # noqa: E402
    DOMAIN,
    POLICY_RC,
    T,
    ATTACH,
    Failure,
    Prosody,
    free_ports,
    run,
    stop,
    tail,
    wait_port,
    ensure_prosody,
)

import slixmpp  # noqa: E402
from slixmpp.exceptions import IqError, IqTimeout  # noqa: E402

IRC = "irc.localhost"
SECRET = "prosody-irc-secret-77a0"
PASSWORD = "alice-pw-9"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
DISCO_INFO = "http://jabber.org/protocol/disco#info"


def ensure_ngircd():
    if shutil.which("ngircd") or os.path.exists("/usr/sbin/ngircd"):
        return
    if not shutil.which("apt-get"):
        raise Failure("ngircd is not installed and there is no apt-get to install it")
    created = False
    if not os.path.lexists(POLICY_RC):
        with open(POLICY_RC, "w") as f:
            f.write("#!/bin/sh\n# prosody_irc.py: no daemon starts during its apt-get\nexit 101\n")
        os.chmod(POLICY_RC, 0o755)
        created = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], "apt-get update", timeout=600, env=env)
        run(["apt-get", "install", "-y", "-qq", "ngircd"], "apt-get install ngircd", timeout=900, env=env)
    finally:
        if created:
            os.unlink(POLICY_RC)


def start_ngircd(scratch, port):
    conf = os.path.join(scratch, "ngircd.conf")
    log = os.path.join(scratch, "ngircd.log")
    with open(conf, "w") as f:
        f.write(
            "[Global]\nName = irc.test.invalid\nInfo = prosody_irc.py\n"
            "AdminInfo1 = test\nAdminInfo2 = test\nAdminEMail = test@test.invalid\n"
            f"Listen = 127.0.0.1\nPorts = {port}\nMotdPhrase = test server\n"
            "[Limits]\nMaxConnectionsIP = 20\nMaxPenaltyTime = 0\n"
            "[Options]\nPAM = no\nIdent = no\nDNS = no\n"
        )
    binary = shutil.which("ngircd") or "/usr/sbin/ngircd"
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, "-n", "-f", conf], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    proc.log = log
    wait_port(port, proc, "ngircd")
    return proc


class Irc:
    """A raw IRC client that answers PING and keeps every line."""

    async def connect(self, port, nick):
        self.rd, self.wr = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
        self.seen = []
        await self.send(f"NICK {nick}")
        await self.send(f"USER {nick} 0 * :{nick}")
        await self.expect(lambda l: " 001 " in l, "registration (001)")
        return self

    async def send(self, line):
        self.wr.write(line.encode() + b"\r\n")
        await self.wr.drain()

    async def expect(self, pred, what):
        deadline = time.monotonic() + T
        while True:
            left = deadline - time.monotonic()
            try:
                raw = await asyncio.wait_for(self.rd.readline(), max(left, 0.01))
            except asyncio.TimeoutError:
                raise Failure(f"IRC: no {what} within {T} s; last lines: {self.seen[-8:]}")
            if not raw:
                raise Failure(f"IRC: the server closed the connection waiting for {what}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("PING "):
                await self.send("PONG " + line[5:])
            self.seen.append(line)
            if pred(line):
                return line


class Alice(slixmpp.ClientXMPP):
    """alice on Prosody; every stanza from irc.localhost lands in a queue."""

    def __init__(self, prosody):
        super().__init__(f"alice@{DOMAIN}/irc", PASSWORD)
        self.ca_certs = prosody.crt
        self.register_plugin("xep_0030")
        self.online = asyncio.get_event_loop().create_future()
        self.inbox = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler(
            "failed_all_auth", lambda _: self.online.done() or self.online.set_exception(Failure("alice: login refused"))
        )
        for kind in ("presence", "message"):
            self.register_handler(
                slixmpp.xmlstream.handler.Callback(
                    f"from transport {kind}",
                    slixmpp.xmlstream.matcher.MatchXPath(f"{{jabber:client}}{kind}"),
                    self.on_stanza,
                )
            )
        self.connect(address=("127.0.0.1", prosody.c2s_port))

    def on_stanza(self, st):
        if str(st["from"].domain) == IRC:
            self.inbox.put_nowait(st.xml)

    async def on_start(self, _):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    async def ready(self):
        try:
            await asyncio.wait_for(asyncio.shield(self.online), T)
        except asyncio.TimeoutError:
            raise Failure(f"alice did not log in to Prosody within {T} s")
        return self

    def raw(self, xml):
        self.send_raw(xml)

    async def until(self, pred, what):
        """Reads stanzas from the transport until one matches; returns the
        ones before it and it."""
        before = []
        deadline = time.monotonic() + T
        while True:
            left = deadline - time.monotonic()
            try:
                el = await asyncio.wait_for(self.inbox.get(), max(left, 0.01))
            except asyncio.TimeoutError:
                got = [ET.tostring(e, "unicode")[:300] for e in before[-6:]]
                raise Failure(f"XMPP: no {what} within {T} s; got {got}")
            if pred(el):
                return before, el
            before.append(el)

    async def attached(self):
        iq = self.Iq()
        iq["type"] = "get"
        iq["to"] = IRC
        iq.append(ET.fromstring(f"<query xmlns='{DISCO_INFO}'/>"))
        try:
            r = (await iq.send(timeout=T)).xml
        except IqError as e:
            if e.iq["error"]["condition"] == "remote-server-timeout":
                return False
            raise
        ids = {(i.get("category"), i.get("type")) for i in r.iter(f"{{{DISCO_INFO}}}identity")}
        if ("gateway", "irc") not in ids:
            raise Failure(f"disco#info on {IRC} answered identities {sorted(ids)}, not gateway/irc")
        return True


def codes(el):
    return {s.get("code") for s in el.iter(f"{{{MUC_USER}}}status")}


def body(el):
    return el.findtext("{jabber:client}body")


async def scenario(alice, irc_port, component):
    room = f"#test%127.0.0.1@{IRC}"
    bob = await Irc().connect(irc_port, "bob")
    await bob.send("JOIN #test")
    await bob.expect(lambda l: " 366 " in l, "end of NAMES for bob's join")
    await bob.send("TOPIC #test :bridged through prosody")
    await bob.expect(lambda l: "TOPIC #test" in l, "bob's TOPIC echoed")

    deadline = time.monotonic() + ATTACH
    while not await alice.attached():
        if component.poll() is not None:
            raise Failure(f"the transport exited with {component.returncode} before attaching")
        if time.monotonic() > deadline:
            raise Failure(f"the transport did not attach to Prosody within {ATTACH} s")
        await asyncio.sleep(0.5)

    # Join: occupants first, then the self-presence (110), then the subject.
    alice.raw(f"<presence to='{room}/alice'><x xmlns='{MUC}'/></presence>")
    before, own = await alice.until(
        lambda el: el.tag == "{jabber:client}presence" and "110" in codes(el), "self-presence with status 110"
    )
    if own.get("from") != f"{room}/alice":
        raise Failure(f"the self-presence came from {own.get('from')}")
    if not any(el.get("from") == f"{room}/bob" for el in before):
        raise Failure(f"bob's occupant presence did not come before alice's own: {[e.get('from') for e in before]}")
    _, subj = await alice.until(lambda el: el.find("{jabber:client}subject") is not None, "the room subject")
    if subj.findtext("{jabber:client}subject") != "bridged through prosody":
        raise Failure(f"the subject is {subj.findtext('{jabber:client}subject')!r}")
    await bob.expect(lambda l: l.startswith(":alice!") and " JOIN " in l, "alice's JOIN")

    # Groupchat both ways.
    alice.raw(f"<message type='groupchat' to='{room}'><body>hello from prosody</body></message>")
    await bob.expect(lambda l: l.endswith("PRIVMSG #test :hello from prosody"), "alice's message as PRIVMSG")
    await alice.until(
        lambda el: el.get("from") == f"{room}/alice" and body(el) == "hello from prosody", "her message reflected"
    )
    await bob.send("PRIVMSG #test :grüße zurück")
    await alice.until(
        lambda el: el.get("type") == "groupchat" and el.get("from") == f"{room}/bob" and body(el) == "grüße zurück",
        "bob's groupchat message",
    )

    # Private messages both ways.
    bob_jid = f"bob%127.0.0.1@{IRC}"
    await bob.send("PRIVMSG alice :just you")
    await alice.until(
        lambda el: el.get("type") == "chat" and el.get("from", "").startswith(bob_jid) and body(el) == "just you",
        "bob's private message",
    )
    alice.raw(f"<message type='chat' to='{bob_jid}'><body>just you too</body></message>")
    await bob.expect(lambda l: l.endswith("PRIVMSG bob :just you too"), "alice's private reply")

    # Leaving.
    alice.raw(f"<presence type='unavailable' to='{room}/alice'/>")
    await alice.until(
        lambda el: el.get("type") == "unavailable" and "110" in codes(el), "her own unavailable presence"
    )
    await bob.expect(lambda l: l.startswith(":alice!") and (" PART " in l or " QUIT " in l), "alice's PART")
    bob.wr.close()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("Usage: ")[1])
    binary = os.path.abspath(sys.argv[1])

    def on_term(*_):
        print("prosody irc: FAILED: interrupted by SIGTERM", flush=True)
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_term)
    scratch = tempfile.mkdtemp(prefix="prosody-irc-")
    prosody = component = ngircd = None
    comp_err = os.path.join(scratch, "component.stderr")
    ok = False
    try:
        ensure_prosody()
        ensure_ngircd()
        (irc_port,) = free_ports(1)
        ngircd = start_ngircd(scratch, irc_port)
        prosody = Prosody(scratch, components={IRC: SECRET})
        version = prosody.version()
        prosody.ctl("register", "alice", DOMAIN, PASSWORD)
        prosody.start()

        home = os.path.join(scratch, "transport")
        os.makedirs(os.path.join(home, "etc"))
        with open(os.path.join(home, "etc", "switchboard.xml"), "w") as f:
            f.write(
                "<switchboard>\n  <host name='localhost'/>\n"
                f"  <service id='{IRC}' type='irc'>\n"
                f"    <server host='127.0.0.1' port='{irc_port}' tls='false' allow-plain='true'/>\n"
                "  </service>\n</switchboard>\n"
            )
        with open(comp_err, "w") as err:
            component = subprocess.Popen(
                [binary, "-H", home, "component", IRC, "--server", f"127.0.0.1:{prosody.component_port}"],
                env=dict(os.environ, SWITCHBOARD_COMPONENT_SECRET=SECRET),
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            )

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            alice = loop.run_until_complete(Alice(prosody).ready())
            loop.run_until_complete(asyncio.wait_for(scenario(alice, irc_port, component), T * 8))
            alice.disconnect()
            loop.run_until_complete(asyncio.sleep(0.3))
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

        code = stop(component, "the transport")
        if code != 0:
            raise Failure(f"the transport exited with {code} on SIGTERM")
        prosody.stop()
        print(
            f"prosody irc: Prosody {version}, switchboard component {IRC} (irc) over XEP-0114 to ngircd: "
            "attached, joined with occupants/110/subject, groupchat and private messages both ways, "
            "non-ASCII text, part: OK",
            flush=True,
        )
        ok = True
    except Failure as e:
        print(f"prosody irc: FAILED: {e}", flush=True)
    except Exception as e:  # anything unforeseen is a failure with a reason too
        print(f"prosody irc: FAILED: {type(e).__name__}: {e}", flush=True)
    finally:
        try:
            for proc in (component, prosody and prosody.proc, ngircd):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
            if not ok:
                report = ""
                if prosody:
                    report += "--- last lines of Prosody's log\n" + tail(prosody.log, 25)
                if ngircd:
                    report += "--- last lines of ngircd's log\n" + tail(ngircd.log, 15)
                report += "--- last lines of the transport's stderr\n" + tail(comp_err)
                sys.stderr.write(report)
                sys.stderr.flush()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
