#!/usr/bin/env python3
"""End-to-end check with a real third-party client library (slixmpp).

Starts the real `switchboard` binary on a temporary home (port 0), creates
two accounts with `switchboard user add`, logs both in with slixmpp over
STARTTLS (verifying the server's generated certificate for `localhost`), and
checks that a chat message goes from one to the other and that the server
answers a ping and a version query. Exits 0 on success, 1 with a reason.

Usage: slixmpp_login.py PATH/TO/switchboard
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
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
"""

TIMEOUT = 20


def fail(msg):
    print(f"slixmpp: FAILED: {msg}")
    sys.exit(1)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.online = asyncio.get_event_loop().create_future()
        self.inbox = asyncio.Queue()
        self.register_plugin("xep_0199")
        self.register_plugin("xep_0092")
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", lambda _: self.online.done() or self.online.set_exception(RuntimeError("auth failed")))
        self.add_event_handler("message", lambda m: self.inbox.put_nowait(m))

    async def on_start(self, _):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(self.boundjid.full)


async def scenario(port, cafile):
    alice = Client("alice@localhost/desk", "alice-pw", cafile)
    bob = Client("bob@localhost/phone", "bob-pw", cafile)
    for c in (alice, bob):
        c.connect(address=("127.0.0.1", port))
    a_jid = await asyncio.wait_for(alice.online, TIMEOUT)
    b_jid = await asyncio.wait_for(bob.online, TIMEOUT)
    if a_jid != "alice@localhost/desk" or b_jid != "bob@localhost/phone":
        fail(f"bound JIDs {a_jid} {b_jid}")
    # Presence has to be processed before a bare-JID message finds bob.
    await asyncio.sleep(0.5)
    alice.send_message(mto="bob@localhost", mbody="hello from slixmpp ✓", mtype="chat")
    msg = await asyncio.wait_for(bob.inbox.get(), TIMEOUT)
    if msg["body"] != "hello from slixmpp ✓" or str(msg["from"]) != "alice@localhost/desk":
        fail(f"bob got {msg}")
    rtt = await alice.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)
    version = await alice.plugin["xep_0092"].get_version("localhost", timeout=TIMEOUT)
    name = version["software_version"]["name"]
    if name != "Switchboard":
        fail(f"version name {name!r}")
    print(f"slixmpp {slixmpp.__version__}: login over STARTTLS, chat message, ping ({rtt:.4f}s) and version: OK")
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
            loop.run_until_complete(asyncio.wait_for(scenario(port, cafile), TIMEOUT * 3))
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
