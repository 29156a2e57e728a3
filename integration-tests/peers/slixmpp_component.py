#!/usr/bin/env python3
"""External components (XEP-0114) with a real third-party library (slixmpp).

Starts the real `switchboard` binary on a temporary home (port 0) with an
external service `echo.localhost` and a component listener, attaches a
slixmpp `ComponentXMPP` to it (a disco#info identity, an echo of chat
messages, answers to subscription requests), and checks with a slixmpp
client (alice, STARTTLS, verifying the server's generated certificate) what
users notice: the server's disco#items lists the service by name; disco#info
on it returns the component's identity; a chat to someone@echo.localhost
comes back echoed from that JID; a presence subscription to the component is
answered `subscribed` (alice's roster says `to`) and its presence arrives;
after the component disconnects a message to it bounces with
`remote-server-timeout`; a reconnected component works again. Exits 0 on
success, 1 with a reason (and the tail of the server's -D log). If the
component's `subscribed` and its presence reach alice in the opposite order
from the one it sent them in, that fails (RFC 6120 §10.1).

Usage: slixmpp_component.py PATH/TO/switchboard
"""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile

import slixmpp

COMPONENT = "echo.localhost"
SECRET = "echo-secret-7f3a"
CONFIG = f"""<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <service id="{COMPONENT}" type="external" secret="{SECRET}" name="Echo service"/>
  <listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:0"/></listen>
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
"""

T = 15


LOG = None  # the server's -D log, shown when something fails


def fail(msg):
    print(f"slixmpp component: FAILED: {msg}", flush=True)
    if LOG and os.path.exists(LOG):
        with open(LOG, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()[-30:]
        sys.stderr.write("--- last lines of the server's log\n" + "".join(l[:600].rstrip("\n") + "\n" for l in lines))
    sys.exit(1)


class Echo(slixmpp.ComponentXMPP):
    """The component: a disco identity, an echo, and a polite roster."""

    def __init__(self, port):
        super().__init__(COMPONENT, SECRET, "127.0.0.1", port)
        self.register_plugin("xep_0030")
        self.auto_authorize = None  # subscriptions are answered below
        self.online = asyncio.get_event_loop().create_future()
        self.gone = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("disconnected", lambda _: self.gone.done() or self.gone.set_result(True))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_subscribe", self.on_subscribe)

    async def on_start(self, _):
        await self.plugin["xep_0030"].add_identity(category="component", itype="generic", name="Slixmpp echo", jid=self.boundjid)
        if not self.online.done():
            self.online.set_result(True)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            msg.reply(f"echo: {msg['body']}").send()

    def on_subscribe(self, pres):
        # Answer from the JID that was addressed, with the bare JID as `to`.
        self.send_presence(pto=pres["from"].bare, pfrom=pres["to"], ptype="subscribed")
        self.send_presence(pto=pres["from"].bare, pfrom=pres["to"], pstatus="echoing")


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, port):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.port = port
        self.register_plugin("xep_0030")
        self.auto_authorize = None
        self.auto_subscribe = False
        self.online = asyncio.get_event_loop().create_future()
        self.messages = asyncio.Queue()
        self.errors = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", lambda _: self.online.done() or self.online.set_exception(RuntimeError("auth failed")))
        self.add_event_handler("message", lambda m: m["type"] != "error" and self.messages.put_nowait(m))
        self.add_event_handler("message_error", lambda m: self.errors.put_nowait(m))
        self.add_event_handler("presence_subscribed", lambda p: self.presences.put_nowait(("subscribed", str(p["from"]))))
        self.add_event_handler("presence_available", lambda p: self.presences.put_nowait(("available", str(p["from"]))))

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)


async def expect_presences(client, kinds, who):
    """Waits until every presence type in `kinds` came from `who`; returns
    them in the order they arrived."""
    loop = asyncio.get_event_loop()
    deadline = loop.time() + T
    seen = []
    while set(kinds) - set(seen):
        left = deadline - loop.time()
        try:
            k, frm = await asyncio.wait_for(client.presences.get(), max(left, 0.01))
        except asyncio.TimeoutError:
            fail(f"alice got {seen} but not {sorted(set(kinds) - set(seen))} from {who}")
        if k in kinds and frm.split("/")[0] == who:
            seen.append(k)
    return seen


async def attach(port):
    """Connects a fresh component and waits for the server's <handshake/>."""
    comp = Echo(port)
    comp.connect()
    done, _ = await asyncio.wait({comp.online, comp.gone}, timeout=T, return_when=asyncio.FIRST_COMPLETED)
    if comp.online not in done:
        fail("the component's handshake was refused or not answered")
    return comp


async def echo_round_trip(alice, text):
    to = f"someone@{COMPONENT}"
    alice.send_message(mto=to, mbody=text, mtype="chat")
    try:
        msg = await asyncio.wait_for(alice.messages.get(), T)
    except asyncio.TimeoutError:
        fail(f"no echo for {text!r}")
    if msg["body"] != f"echo: {text}" or str(msg["from"]) != to:
        fail(f"echo came back as {msg}")


async def scenario(port, comp_port, cafile):
    comp = await attach(comp_port)
    alice = Client("alice@localhost/desk", "alice-pw", cafile, port)
    alice.connect(address=("127.0.0.1", port))
    await asyncio.wait_for(alice.online, T)

    # The server lists the service with its configured name.
    items = await alice.plugin["xep_0030"].get_items(jid="localhost", local=False, timeout=T)
    listed = {str(i[0]): i[2] for i in items["disco_items"]["items"]}
    if listed.get(COMPONENT) != "Echo service":
        fail(f"server disco#items: {listed}")

    # disco#info on the component is answered by the component.
    info = await alice.plugin["xep_0030"].get_info(jid=COMPONENT, local=False, timeout=T)
    ids = {(c, t, n) for c, t, _lang, n in info["disco_info"]["identities"]}
    if ("component", "generic", "Slixmpp echo") not in ids:
        fail(f"component disco#info identities: {ids}")

    await echo_round_trip(alice, "hello component ✓")

    # Subscription round trip: subscribed, roster `to`, then its presence.
    alice.send_presence_subscription(pto=COMPONENT)
    order = await expect_presences(alice, ["subscribed", "available"], COMPONENT)
    if order != ["subscribed", "available"]:
        # The component sent `subscribed` first; RFC 6120 §10.1 requires
        # in-order processing between two entities.
        fail(f"alice got the component's presences in the order {order}")
    roster = await alice.get_roster()
    sub = roster["roster"]["items"].get(slixmpp.JID(COMPONENT), {}).get("subscription")
    if sub not in ("to", "both"):
        fail(f"alice's roster says {sub!r} for {COMPONENT}")

    # The component goes away: users get remote-server-timeout.
    comp.disconnect()
    await asyncio.wait_for(comp.gone, T)
    await asyncio.sleep(0.3)
    alice.send_message(mto=f"someone@{COMPONENT}", mbody="anyone there?", mtype="chat")
    try:
        err = await asyncio.wait_for(alice.errors.get(), T)
    except asyncio.TimeoutError:
        fail("no error for a message to the disconnected component")
    if err["error"]["condition"] != "remote-server-timeout":
        fail(f"error while the component is away: {err}")

    # It comes back and works again.
    comp = await attach(comp_port)
    await echo_round_trip(alice, "welcome back")
    print(
        f"slixmpp {slixmpp.__version__} component: disco#items lists it, disco#info from the component, "
        f"chat echo from someone@{COMPONENT}, subscription answered subscribed (roster {sub}), "
        f"remote-server-timeout while away, works again after reconnecting: OK"
    )
    alice.disconnect()
    comp.disconnect()
    await asyncio.sleep(0.2)


def main():
    global LOG
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as home:
        cfg = os.path.join(home, "switchboard.xml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        base = [binary, "-H", home, "-c", cfg]
        LOG = os.path.join(home, "logs", "switchboard.log")
        subprocess.run(base + ["user", "add", "alice@localhost"], input="alice-pw\n", text=True, check=True, timeout=T)
        server = subprocess.Popen(base + ["-D", "run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = comp_port = None
            for line in server.stdout:
                if line.startswith("listening c2s "):
                    port = int(line.rsplit(":", 1)[1])
                if line.startswith("listening component "):
                    comp_port = int(line.rsplit(":", 1)[1])
                if line.strip() == "ready":
                    break
            if port is None or comp_port is None:
                fail("the server did not report its c2s and component ports")
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(asyncio.wait_for(scenario(port, comp_port, os.path.join(home, "etc", "localhost.crt")), T * 6))
            except asyncio.TimeoutError:
                fail("timed out (see the steps above)")
            except (OSError, RuntimeError, slixmpp.exceptions.IqError, slixmpp.exceptions.IqTimeout) as e:
                fail(f"{type(e).__name__}: {e}")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                fail("the server did not stop within 10 s of SIGTERM")


if __name__ == "__main__":
    main()
