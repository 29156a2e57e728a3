#!/usr/bin/env python3
"""Stream management (XEP-0198) with a real third-party client (slixmpp's
xep_0198 plugin): a phone that loses its connection and resumes.

Starts the real `switchboard` binary on a temporary home (port 0), logs
alice in with stream management and resumption enabled, then cuts her TCP
connection without a goodbye (what a phone changing networks looks like to
the server). While she is away bob sends her two messages. slixmpp then
reconnects and resumes the session: the script checks that it was resumed
(not bound afresh), under the same full JID, that alice gets every message
exactly once and in order, and that she can still send. Exits 0 on
success, 1 with a reason.

Usage: slixmpp_sm.py PATH/TO/switchboard
"""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time

import slixmpp

CONFIG = """<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
"""

TIMEOUT = 20


def fail(msg):
    print(f"slixmpp stream management: FAILED: {msg}")
    sys.exit(1)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, sm):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.online = asyncio.get_event_loop().create_future()
        self.starts = 0
        self.resumed = asyncio.get_event_loop().create_future()
        self.enabled = asyncio.get_event_loop().create_future()
        self.inbox = asyncio.Queue()
        self.register_plugin("xep_0199")
        if sm:
            self.register_plugin("xep_0198")
            self.add_event_handler("sm_enabled", lambda e: self.enabled.done() or self.enabled.set_result(e["id"]))
            self.add_event_handler("session_resumed", lambda e: self.resumed.done() or self.resumed.set_result(e["h"]))
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", lambda m: self.inbox.put_nowait(m))

    async def on_start(self, _):
        self.starts += 1
        self.send_presence()
        if not self.online.done():
            self.online.set_result(self.boundjid.full)


def wait_for_log(home, text):
    path = os.path.join(home, "logs", "switchboard.log")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                if text in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    fail(f"the server never logged {text!r}")


async def expect(client, body):
    msg = await asyncio.wait_for(client.inbox.get(), TIMEOUT)
    if msg["body"] != body:
        fail(f"expected {body!r}, got {msg['body']!r}")


async def scenario(home, port, cafile):
    alice = Client("alice@localhost/phone", "alice-pw", cafile, sm=True)
    bob = Client("bob@localhost/desk", "bob-pw", cafile, sm=False)
    for c in (alice, bob):
        c.connect(address=("127.0.0.1", port))
    await asyncio.wait_for(alice.online, TIMEOUT)
    await asyncio.wait_for(bob.online, TIMEOUT)
    sm_id = await asyncio.wait_for(alice.enabled, TIMEOUT)
    if not sm_id:
        fail("the server gave no resumption id")

    bob.send_message(mto="alice@localhost/phone", mbody="one", mtype="chat")
    await expect(alice, "one")

    # Everything alice sent so far has been handled (a ping proves it).
    await alice.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)
    sent = alice.plugin["xep_0198"].seq
    # The network goes: no </stream:stream>, no TLS close_notify.
    alice.transport.abort()
    await asyncio.get_event_loop().run_in_executor(None, wait_for_log, home, "session hibernates")
    bob.send_message(mto="alice@localhost/phone", mbody="two", mtype="chat")
    bob.send_message(mto="alice@localhost/phone", mbody="three", mtype="chat")
    # Bob's messages are routed before alice comes back (a ping answered
    # after them proves it).
    await bob.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)

    alice.connect(address=("127.0.0.1", port))
    # slixmpp logs "Inconsistent sequence numbers" here: it empties its own
    # queue of unacknowledged stanzas when it sends <resume/>, so any
    # count the server reports looks too high to it. The count itself is
    # checked against what slixmpp sent.
    h = await asyncio.wait_for(alice.resumed, TIMEOUT)
    if h != sent:
        fail(f"the server says it handled {h} of alice's stanzas; she sent {sent}")
    if alice.starts != 1:
        fail("the session was started afresh instead of resumed")
    if alice.boundjid.full != "alice@localhost/phone":
        fail(f"resumed as {alice.boundjid.full}")
    await expect(alice, "two")
    await expect(alice, "three")
    # Nothing more, no copy: a ping round trip is the barrier.
    await alice.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)
    if not alice.inbox.empty():
        fail(f"alice got more: {alice.inbox.get_nowait()['body']!r}")

    alice.send_message(mto="bob@localhost/desk", mbody="back again", mtype="chat")
    msg = await asyncio.wait_for(bob.inbox.get(), TIMEOUT)
    if msg["body"] != "back again" or str(msg["from"]) != "alice@localhost/phone":
        fail(f"bob got {msg}")
    print(f"slixmpp {slixmpp.__version__}: stream management enabled, connection cut, session resumed with every message once: OK")
    alice.disconnect()
    bob.disconnect()
    await asyncio.sleep(0.2)


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as home:
        cfg = os.path.join(home, "switchboard.xml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        base = [binary, "-H", home, "-c", cfg]
        for user, pw in (("alice", "alice-pw"), ("bob", "bob-pw")):
            subprocess.run(base + ["user", "add", f"{user}@localhost"], input=pw + "\n", text=True, check=True, timeout=TIMEOUT)
        server = subprocess.Popen(base + ["run"], stdout=subprocess.PIPE, text=True)
        try:
            port = None
            for line in server.stdout:
                if line.startswith("listening c2s "):
                    port = int(line.rsplit(":", 1)[1])
                if line.strip() == "ready":
                    break
            if port is None:
                fail("the server did not report a listening port")
            cafile = os.path.join(home, "etc", "localhost.crt")
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(asyncio.wait_for(scenario(home, port, cafile), TIMEOUT * 4))
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
