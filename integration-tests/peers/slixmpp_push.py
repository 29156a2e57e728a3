#!/usr/bin/env python3
"""Push notifications (XEP-0357) with real third-party peers: a slixmpp
phone client with stream management (xep_0198) and a slixmpp
ComponentXMPP attached over XEP-0114 as the app server's push service.

Starts the real `switchboard` binary on a temporary home (port 0) with an
external service `push.localhost` and a component listener, and lives
through what a phone user does:

1. alice's phone finds `urn:xmpp:push:0` on her account, enables push
   with the component's JID, a node and a publish-options secret (a
   service at a domain the server cannot reach is refused with
   remote-server-not-found), then loses its connection without a goodbye
   (the server logs "session hibernates");
2. bob writes: the component gets exactly one notification for that
   node, from alice's bare JID, with the summary form (FORM_TYPE
   urn:xmpp:push:summary, message-count) and the secret, and no body or
   sender (the privacy default);
3. bob sends a chat state alone and then a message: exactly one more
   notification (a chat state wakes nobody);
4. the phone comes back (resumes, gets the messages) and goes offline for
   good; bob writes again: the message is stored offline and notifies;
   the component answers that notification with an error of type cancel,
   and the server disables the registration;
5. alice's laptop fetches her offline message and enables a second node;
   bob writes once more: only the second node is notified.

"Exactly" is checked with barriers, never with waiting: bob pings the
server (so everything he sent has been routed and its notifications
queued for the component), then the component pings the server (its
answer comes after everything queued for the component before it).

Debian's python3-slixmpp (1.8.3) has no XEP-0357 plugin, so the
<enable/> and the component's handler are written with slixmpp's raw
stanza API.

Exits 0 on success, 1 with a reason (and the tail of the server's log).

Usage: slixmpp_push.py PATH/TO/switchboard
"""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

COMPONENT = "push.localhost"
SECRET = "push-component-secret-41c9"
PUSH_NS = "urn:xmpp:push:0"
PUBSUB = "http://jabber.org/protocol/pubsub"
DATA = "jabber:x:data"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
APP_SECRET = "app-server-token-7d21"

CONFIG = f"""<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <service id="{COMPONENT}" type="external" secret="{SECRET}" name="Push service"/>
  <listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:0"/></listen>
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
"""

T = 20
LOG = None  # the server's log, shown when something fails


def fail(msg):
    print(f"slixmpp push: FAILED: {msg}", flush=True)
    if LOG and os.path.exists(LOG):
        with open(LOG, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()[-30:]
        sys.stderr.write("--- last lines of the server's log\n" + "".join(l[:600].rstrip("\n") + "\n" for l in lines))
    sys.exit(1)


def wait_for_log(text, count=1):
    """Waits until the server has logged `text` at least `count` times."""
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        try:
            with open(LOG, encoding="utf-8", errors="replace") as f:
                if f.read().count(text) >= count:
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    fail(f"the server never logged {text!r} {count} time(s)")


async def logged(text, count=1):
    await asyncio.get_event_loop().run_in_executor(None, wait_for_log, text, count)


def log_count(text):
    with open(LOG, encoding="utf-8", errors="replace") as f:
        return f.read().count(text)


class PushService(slixmpp.ComponentXMPP):
    """The app server's XMPP push service: records every publish and
    answers it (with an error of type cancel for the nodes in `refuse`)."""

    def __init__(self, port):
        super().__init__(COMPONENT, SECRET, "127.0.0.1", port)
        self.register_plugin("xep_0199")
        self.online = asyncio.get_event_loop().create_future()
        self.gone = asyncio.get_event_loop().create_future()
        self.notifications = []  # (node, iq xml), in arrival order
        self.arrived = asyncio.Event()
        self.refuse = set()
        self.add_event_handler("session_start", lambda _: self.online.done() or self.online.set_result(True))
        self.add_event_handler("disconnected", lambda _: self.gone.done() or self.gone.set_result(True))
        self.register_handler(Callback(
            "push publish",
            MatchXPath(f"{{{self.default_ns}}}iq/{{{PUBSUB}}}pubsub"),
            self.on_publish,
        ))

    def on_publish(self, iq):
        publish = iq.xml.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}publish")
        node = publish.get("node") if publish is not None else None
        self.notifications.append((node, iq.xml))
        self.arrived.set()
        if node in self.refuse:
            reply = iq.reply(clear=True)
            reply["type"] = "error"
            reply["error"]["type"] = "cancel"
            reply["error"]["condition"] = "item-not-found"
            reply.send()
        else:
            iq.reply(clear=True).send()

    async def wait_for(self, n):
        """Waits until `n` notifications have arrived in all."""
        loop = asyncio.get_event_loop()
        deadline = loop.time() + T
        while len(self.notifications) < n:
            self.arrived.clear()
            left = deadline - loop.time()
            if left <= 0:
                fail(f"the push service got {len(self.notifications)} notifications, expected {n}: {self.nodes()}")
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    def nodes(self):
        return [n for n, _ in self.notifications]


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, sm):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.online = asyncio.get_event_loop().create_future()
        self.resumed = asyncio.get_event_loop().create_future()
        self.inbox = asyncio.Queue()
        if sm:
            self.register_plugin("xep_0198")
            self.add_event_handler("session_resumed", lambda e: self.resumed.done() or self.resumed.set_result(True))
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", lambda m: m["type"] != "error" and m["body"] and self.inbox.put_nowait(m["body"]))

    async def on_start(self, _):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    async def push_iq(self, name, **attrs):
        """Sends <enable/> or <disable/> to her own account; the answer."""
        iq = self.Iq()
        iq["type"] = "set"
        el = ET.Element(f"{{{PUSH_NS}}}{name}", attrs)
        if name == "enable":
            x = ET.SubElement(el, f"{{{DATA}}}x", type="submit")
            for var, value in (("FORM_TYPE", PUBLISH_OPTIONS), ("secret", APP_SECRET)):
                field = ET.SubElement(x, f"{{{DATA}}}field", var=var)
                ET.SubElement(field, f"{{{DATA}}}value").text = value
        iq.xml.append(el)
        return await iq.send(timeout=T)

    async def expect(self, body):
        got = await asyncio.wait_for(self.inbox.get(), T)
        if got != body:
            fail(f"{self.boundjid.bare} expected {body!r}, got {got!r}")


def check_notification(xml, node):
    """A publish to `node` from alice's bare JID with the summary, the
    publish options, and nothing of the message."""
    text = ET.tostring(xml, encoding="unicode")
    if xml.get("from") != "alice@localhost" or xml.get("type") != "set":
        fail(f"notification not an IQ set from alice's bare JID: {text}")
    pubsub = xml.find(f"{{{PUBSUB}}}pubsub")
    form = pubsub.find(f"{{{PUBSUB}}}publish/{{{PUBSUB}}}item/{{{PUSH_NS}}}notification/{{{DATA}}}x")
    if form is None:
        fail(f"no summary form: {text}")
    fields = {f.get("var"): [v.text for v in f.findall(f"{{{DATA}}}value")] for f in form.findall(f"{{{DATA}}}field")}
    if fields.get("FORM_TYPE") != ["urn:xmpp:push:summary"] or "message-count" not in fields:
        fail(f"summary form: {fields}")
    for private in ("last-message-body", "last-message-sender"):
        if private in fields:
            fail(f"the summary gives away {private}: {fields}")
    if "psst" in text or "bob@" in text:
        fail(f"the notification carries the message or its sender: {text}")
    options = pubsub.find(f"{{{PUBSUB}}}publish-options/{{{DATA}}}x")
    if options is None or APP_SECRET not in ET.tostring(options, encoding="unicode"):
        fail(f"no publish options with the app server's secret: {text}")
    if pubsub.find(f"{{{PUBSUB}}}publish").get("node") != node:
        fail(f"published to the wrong node: {text}")


async def barrier(bob, comp):
    """Everything bob sent has been routed, and every notification it
    caused has reached the component."""
    await bob.plugin["xep_0199"].ping(jid="localhost", timeout=T)
    await comp.plugin["xep_0199"].ping(jid="localhost", ifrom=COMPONENT, timeout=T)


async def scenario(port, comp_port, cafile):
    comp = PushService(comp_port)
    comp.connect()
    done, _ = await asyncio.wait({comp.online, comp.gone}, timeout=T, return_when=asyncio.FIRST_COMPLETED)
    if comp.online not in done:
        fail("the push component's handshake was refused or not answered")

    phone = Client("alice@localhost/phone", "alice-pw", cafile, sm=True)
    bob = Client("bob@localhost/desk", "bob-pw", cafile, sm=False)
    for c in (phone, bob):
        c.connect(address=("127.0.0.1", port))
    await asyncio.wait_for(phone.online, T)
    await asyncio.wait_for(bob.online, T)

    # 1. The phone enables push.
    info = await phone.plugin["xep_0030"].get_info(jid="alice@localhost", local=False, timeout=T)
    if PUSH_NS not in info["disco_info"]["features"]:
        fail(f"her account does not offer {PUSH_NS}: {info['disco_info']['features']}")
    try:
        await phone.push_iq("enable", jid="push.example.net", node="n0")
        fail("enabling a push service the server cannot reach succeeded")
    except slixmpp.exceptions.IqError as e:
        if e.iq["error"]["condition"] != "remote-server-not-found":
            fail(f"an unreachable push service was refused with {e.iq['error']['condition']}")
    await phone.push_iq("enable", jid=COMPONENT, node="n1")
    await logged("push notifications enabled")
    await phone.plugin["xep_0199"].ping(jid="localhost", timeout=T)
    phone.transport.abort()
    await logged("session hibernates")

    # 2. A message while the phone hibernates: one notification.
    bob.send_message(mto="alice@localhost", mbody="psst, one", mtype="chat")
    await comp.wait_for(1)
    check_notification(comp.notifications[0][1], "n1")

    # 3. A chat state alone notifies nobody; the message after it does.
    chat_state = bob.make_message(mto="alice@localhost", mtype="chat")
    chat_state.xml.append(ET.Element("{http://jabber.org/protocol/chatstates}composing"))
    chat_state.send()
    bob.send_message(mto="alice@localhost", mbody="psst, two", mtype="chat")
    await barrier(bob, comp)
    if comp.nodes() != ["n1", "n1"]:
        fail(f"after a chat state and a message: {comp.nodes()} (expected one more)")
    check_notification(comp.notifications[1][1], "n1")

    # 4. The phone comes back, reads, and goes offline for good.
    phone.connect(address=("127.0.0.1", port))
    await asyncio.wait_for(phone.resumed, T)
    await phone.expect("psst, one")
    await phone.expect("psst, two")
    phone.plugin["xep_0198"].send_ack()
    await phone.plugin["xep_0199"].ping(jid="localhost", timeout=T)
    ended = log_count("session ended")
    phone.disconnect()
    await logged("session ended", ended + 1)
    comp.refuse.add("n1")
    bob.send_message(mto="alice@localhost", mbody="psst, three", mtype="chat")
    await comp.wait_for(3)
    check_notification(comp.notifications[2][1], "n1")
    await logged("push registration disabled")

    # 5. The laptop gets the offline message and enables another node;
    # the next message notifies that node only.
    laptop = Client("alice@localhost/laptop", "alice-pw", cafile, sm=False)
    laptop.connect(address=("127.0.0.1", port))
    await asyncio.wait_for(laptop.online, T)
    await laptop.expect("psst, three")
    await laptop.push_iq("enable", jid=COMPONENT, node="n2")
    ended = log_count("session ended")
    laptop.disconnect()
    await logged("session ended", ended + 1)
    bob.send_message(mto="alice@localhost", mbody="psst, four", mtype="chat")
    await barrier(bob, comp)
    if comp.nodes() != ["n1", "n1", "n1", "n2"]:
        fail(f"after the error and a new registration: {comp.nodes()}")
    check_notification(comp.notifications[3][1], "n2")

    print(
        f"slixmpp {slixmpp.__version__}: push enabled over a XEP-0114 push service, one notification per "
        f"message while hibernating and offline (none for a chat state, no body or sender), "
        f"remote-server-not-found for an unreachable service, an error of type cancel disabled the registration: OK"
    )
    bob.disconnect()
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
        for user, pw in (("alice", "alice-pw"), ("bob", "bob-pw")):
            subprocess.run(base + ["user", "add", f"{user}@localhost"], input=pw + "\n", text=True, check=True, timeout=T)
        server = subprocess.Popen(base + ["run"], stdout=subprocess.PIPE, text=True)
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
        if server.returncode != 0:
            fail(f"server exit code {server.returncode}")


if __name__ == "__main__":
    main()
