#!/usr/bin/env python3
"""What today's clients need, end to end with a real client library
(slixmpp's own plugins): message carbons (XEP-0280), the message archive
(XEP-0313, paged with XEP-0059), blocking (XEP-0191) and client state
indication (XEP-0352).

Starts the real `switchboard` binary on a temporary home (port 0), creates
alice, bob and spam, and checks what users notice: alice's desk and phone
each see the other side of a conversation; a new device of alice's reads
the whole history back, page by page from the newest, with the archive's
metadata; the phone, inactive, gets a typing notification only with the
message that follows it; spam, once blocked, gets an error and alice
nothing, and every resource that asked for the block list hears of the
change.

Usage: slixmpp_modern.py PATH/TO/switchboard
"""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile

import slixmpp

CONFIG = """<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
"""

T = 15
USERS = (("alice", "alice-pw"), ("bob", "bob-pw"), ("spam", "spam-pw"))


def fail(msg):
    print(f"slixmpp modern: FAILED: {msg}")
    sys.exit(1)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, port):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.port = port
        for p in ("xep_0030", "xep_0059", "xep_0085", "xep_0191", "xep_0280", "xep_0297",
                  "xep_0313", "xep_0352", "xep_0359"):
            self.register_plugin(p)
        self.online = asyncio.get_event_loop().create_future()
        self.messages = asyncio.Queue()
        self.carbons = asyncio.Queue()
        self.pushes = asyncio.Queue()
        # Chat states and bodies from bob, in the order they came.
        self.in_order = asyncio.Queue()
        self.add_event_handler("chatstate", lambda m: self.in_order.put_nowait(("chatstate", m["chat_state"])))
        self.add_event_handler("message", lambda m: m["body"] == "are you there?"
                               and self.in_order.put_nowait(("message", m["body"])))
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("carbon_received", lambda m: self.carbons.put_nowait(("received", m)))
        self.add_event_handler("carbon_sent", lambda m: self.carbons.put_nowait(("sent", m)))
        self.add_event_handler("blocked", lambda iq: self.pushes.put_nowait(("block", iq)))
        self.add_event_handler("unblocked", lambda iq: self.pushes.put_nowait(("unblock", iq)))

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    def start(self):
        self.connect(address=("127.0.0.1", self.port))
        return asyncio.wait_for(self.online, T)


async def next_message(client, what, pred=lambda m: True):
    """The next message (not a carbon, not an archive result) matching."""
    deadline = asyncio.get_event_loop().time() + T
    while True:
        left = deadline - asyncio.get_event_loop().time()
        if left <= 0:
            fail(f"{client.boundjid} did not get {what}")
        m = await asyncio.wait_for(client.messages.get(), left)
        if m["mam_result"]["id"] or m.xml.find("{urn:xmpp:carbons:2}received") is not None \
                or m.xml.find("{urn:xmpp:carbons:2}sent") is not None:
            continue
        if pred(m):
            return m


async def carbons(alice, phone, bob):
    await alice.plugin["xep_0280"].enable(timeout=T)
    await phone.plugin["xep_0280"].enable(timeout=T)
    bob.send_message(mto="alice@localhost/desk", mbody="hi desk", mtype="chat")
    kind, m = await asyncio.wait_for(phone.carbons.get(), T)
    fwd = m["carbon_received"]
    if kind != "received" or fwd["body"] != "hi desk" or str(m["from"]) != "alice@localhost":
        fail(f"the phone's received carbon: {m}")
    got = await next_message(alice, "bob's message", lambda m: m["body"] == "hi desk")
    if not got["stanza_id"]["id"] or got["stanza_id"]["by"] != "alice@localhost":
        fail(f"no archive stanza-id on {got}")
    phone.send_message(mto="bob@localhost", mbody="hi from the phone", mtype="chat")
    kind, m = await asyncio.wait_for(alice.carbons.get(), T)
    if kind != "sent" or m["carbon_sent"]["body"] != "hi from the phone":
        fail(f"the desk's sent carbon: {m}")
    await next_message(bob, "alice's answer", lambda m: m["body"] == "hi from the phone")


async def archive(bob, cafile, port):
    for n in range(1, 26):
        bob.send_message(mto="alice@localhost", mbody=f"history {n}", mtype="chat")
    # A new device reads everything back, newest page first.
    tablet = Client("alice@localhost/tablet", "alice-pw", cafile, port)
    await tablet.start()
    meta = await tablet.plugin["xep_0313"].get_archive_metadata(timeout=T)
    if not meta["mam_metadata"]["start"]["id"] or not meta["mam_metadata"]["end"]["id"]:
        fail(f"archive metadata: {meta}")
    bodies = []
    async for m in tablet.plugin["xep_0313"].iterate(reverse=True, rsm={"max": 10}):
        bodies.append(m["mam_result"]["forwarded"]["stanza"]["body"])
    want = [f"history {n}" for n in range(25, 0, -1)]
    if bodies[:25] != want:
        fail(f"history read back as {bodies[:30]}")
    if "hi desk" not in bodies or "hi from the phone" not in bodies:
        fail(f"the carbons' conversation is not in the archive: {bodies}")
    tablet.disconnect()


async def csi(phone, bob):
    if not phone.plugin["xep_0352"].enabled:
        fail("the server did not offer client state indication")
    phone.plugin["xep_0352"].send_inactive()
    await asyncio.sleep(0.2)
    composing = bob.Message()
    composing["to"] = "alice@localhost/phone"
    composing["type"] = "chat"
    composing["chat_state"] = "composing"
    composing.send()
    bob.send_message(mto="alice@localhost/phone", mbody="are you there?", mtype="chat")
    # Held until the message came, then delivered first: in order.
    first = await asyncio.wait_for(phone.in_order.get(), T)
    second = await asyncio.wait_for(phone.in_order.get(), T)
    if first != ("chatstate", "composing") or second != ("message", "are you there?"):
        fail(f"the inactive phone got {first} then {second}")
    phone.plugin["xep_0352"].send_active()


async def blocking(alice, phone, spam):
    listed = await phone.plugin["xep_0191"].get_blocked(timeout=T)
    if listed["blocklist"]["items"]:
        fail(f"a new block list is not empty: {listed}")
    await alice.plugin["xep_0191"].block("spam@localhost", timeout=T)
    kind, push = await asyncio.wait_for(phone.pushes.get(), T)
    if kind != "block" or slixmpp.JID("spam@localhost") not in push["block"]["items"]:
        fail(f"block push {push}")
    errors = asyncio.Queue()
    spam.add_event_handler("message_error", lambda m: errors.put_nowait(m))
    spam.send_message(mto="alice@localhost/desk", mbody="buy now", mtype="chat")
    err = await asyncio.wait_for(errors.get(), T)
    if err["error"]["condition"] != "service-unavailable":
        fail(f"spam got {err}")
    await alice.plugin["xep_0191"].unblock("spam@localhost", timeout=T)
    kind, push = await asyncio.wait_for(phone.pushes.get(), T)
    if kind != "unblock":
        fail(f"unblock push {push}")
    spam.send_message(mto="alice@localhost/desk", mbody="hello again", mtype="chat")
    # The next message alice gets is this one: "buy now" never came.
    got = await next_message(alice, "spam's message once unblocked")
    if got["body"] != "hello again":
        fail(f"alice got {got}")


async def scenario(port, cafile):
    alice = Client("alice@localhost/desk", "alice-pw", cafile, port)
    phone = Client("alice@localhost/phone", "alice-pw", cafile, port)
    bob = Client("bob@localhost/home", "bob-pw", cafile, port)
    spam = Client("spam@localhost/bot", "spam-pw", cafile, port)
    for c in (alice, phone, bob, spam):
        await c.start()
    await carbons(alice, phone, bob)
    await csi(phone, bob)
    await blocking(alice, phone, spam)
    await archive(bob, cafile, port)
    print(f"slixmpp {slixmpp.__version__} modern: carbons both ways, the archive read back "
          f"page by page with metadata, client state indication, blocking with pushes: OK")
    for c in (alice, phone, bob, spam):
        c.disconnect()
    await asyncio.sleep(0.2)


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as home:
        cfg = os.path.join(home, "switchboard.xml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        base = [binary, "-H", home, "-c", cfg]
        for user, pw in USERS:
            subprocess.run(base + ["user", "add", f"{user}@localhost"], input=pw + "\n", text=True, check=True, timeout=T)
        server = subprocess.Popen(base + ["run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = None
            for line in server.stdout:
                if line.startswith("listening c2s "):
                    port = int(line.rsplit(":", 1)[1])
                if line.strip() == "ready":
                    break
            if port is None:
                fail("the server did not report a listening port")
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(asyncio.wait_for(scenario(port, os.path.join(home, "etc", "localhost.crt")), T * 8))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                fail("the server did not stop within 10 s of SIGTERM")


if __name__ == "__main__":
    main()
