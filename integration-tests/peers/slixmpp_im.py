#!/usr/bin/env python3
"""RFC 6121 instant messaging end to end with a real client library (slixmpp).

Starts the real `switchboard` binary on a temporary home (port 0), creates
alice and bob, and checks with slixmpp what users notice: a subscription
request arrives and, once approved, both rosters say `both`; each sees the
other come online; a message sent while bob is offline is delivered with a
XEP-0203 delay stamp when he returns; a vCard set by alice is read by bob;
when alice's connection drops, bob sees her go unavailable.

Usage: slixmpp_im.py PATH/TO/switchboard
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


def fail(msg):
    print(f"slixmpp IM: FAILED: {msg}")
    sys.exit(1)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, port):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.port = port
        self.register_plugin("xep_0054")
        self.register_plugin("xep_0203")
        self.online = asyncio.get_event_loop().create_future()
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.requests = asyncio.Queue()
        self.auto_authorize = None  # we answer requests ourselves
        self.auto_subscribe = False
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("presence_subscribe", lambda p: self.requests.put_nowait(p))
        self.add_event_handler("presence_available", lambda p: self.presences.put_nowait(("available", str(p["from"]))))
        self.add_event_handler("presence_unavailable", lambda p: self.presences.put_nowait(("unavailable", str(p["from"]))))

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    def start(self):
        self.connect(address=("127.0.0.1", self.port))
        return asyncio.wait_for(self.online, T)


async def expect_presence(client, kind, who):
    deadline = asyncio.get_event_loop().time() + T
    while True:
        left = deadline - asyncio.get_event_loop().time()
        if left <= 0:
            fail(f"{client.boundjid} did not see {who} {kind}")
        k, frm = await asyncio.wait_for(client.presences.get(), left)
        if k == kind and frm.startswith(who):
            return


async def scenario(port, cafile):
    alice = Client("alice@localhost/desk", "alice-pw", cafile, port)
    bob = Client("bob@localhost/phone", "bob-pw", cafile, port)
    await alice.start()
    await bob.start()

    # Subscription both ways.
    alice.send_presence_subscription(pto="bob@localhost")
    req = await asyncio.wait_for(bob.requests.get(), T)
    if str(req["from"]) != "alice@localhost":
        fail(f"request from {req['from']}")
    bob.send_presence(pto="alice@localhost", ptype="subscribed")
    await expect_presence(alice, "available", "bob@localhost/phone")
    bob.send_presence_subscription(pto="alice@localhost")
    req = await asyncio.wait_for(alice.requests.get(), T)
    alice.send_presence(pto="bob@localhost", ptype="subscribed")
    await expect_presence(bob, "available", "alice@localhost/desk")
    await asyncio.sleep(0.5)
    roster = await alice.get_roster()
    sub = roster["roster"]["items"].get(slixmpp.JID("bob@localhost"), {}).get("subscription")
    if sub != "both":
        fail(f"alice's roster says {sub!r} for bob")

    # vCard set by alice, read by bob.
    vcard = alice.plugin["xep_0054"].make_vcard()
    vcard["FN"] = "Alice Liddell"
    await alice.plugin["xep_0054"].publish_vcard(vcard, timeout=T)
    got = await bob.plugin["xep_0054"].get_vcard("alice@localhost", cached=False, timeout=T)
    if got["vcard_temp"]["FN"] != "Alice Liddell":
        fail(f"vCard FN {got['vcard_temp']['FN']!r}")

    # Bob leaves; alice sees it; a message waits for him offline.
    bob.disconnect()
    await expect_presence(alice, "unavailable", "bob@localhost/phone")
    alice.send_message(mto="bob@localhost", mbody="while you were away", mtype="chat")
    await asyncio.sleep(0.5)
    bob2 = Client("bob@localhost/laptop", "bob-pw", cafile, port)
    await bob2.start()
    msg = await asyncio.wait_for(bob2.messages.get(), T)
    if msg["body"] != "while you were away" or not msg["delay"]["stamp"]:
        fail(f"offline message {msg}")
    await expect_presence(alice, "available", "bob@localhost/laptop")

    # Alice's socket drops without a goodbye: bob still sees her go.
    alice.transport.abort()
    await expect_presence(bob2, "unavailable", "alice@localhost/desk")
    print(f"slixmpp {slixmpp.__version__} IM: subscriptions both ways, presence, vCard, offline delivery with delay, unavailable on a dropped socket: OK")
    bob2.disconnect()
    await asyncio.sleep(0.2)


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as home:
        cfg = os.path.join(home, "switchboard.xml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        base = [binary, "-H", home, "-c", cfg]
        for user, pw in (("alice", "alice-pw"), ("bob", "bob-pw")):
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
