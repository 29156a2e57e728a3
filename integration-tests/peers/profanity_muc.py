#!/usr/bin/env python3
"""Group chat from a real terminal client: profanity (Debian, on libstrophe)
driven through tmux against the real `switchboard` binary, with a slixmpp
occupant on the other side.

Starts the server on a temporary home (port 0) with conference.localhost,
creates alice and bob; bob (slixmpp) creates and configures a room; alice
runs profanity in a detached tmux session with an account file of her own
(XDG directories under the temporary home, TLS with the server's
self-signed certificate trusted), then types what a user types:

- `/join kitchen@conference.localhost nick alice`: bob sees alice enter;
- a line of text in the room's window: bob receives it as a groupchat
  message from `alice`;
- bob answers in the room and then sends alice a one-to-one chat message:
  both show up on profanity's screen (read with `tmux capture-pane`);
- `/quit`: bob sees alice leave the room.

Usage: profanity_muc.py PATH/TO/switchboard
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

CONFIG = """<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <service id="conference.localhost" type="muc"/>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
</switchboard>
"""

ROOM = slixmpp.JID("kitchen@conference.localhost")
T = 20
TMUX_SESSION = f"sb-profanity-{os.getpid()}"


def fail(msg):
    print(f"profanity MUC: FAILED: {msg}")
    sys.exit(1)


class Tmux:
    """One detached tmux session running profanity, on a socket of its own
    so that nothing else the user runs in tmux is touched."""

    def __init__(self, home, env):
        self.socket = os.path.join(home, "tmux.sock")
        self.env = env

    def run(self, *args, check=True):
        return subprocess.run(["tmux", "-S", self.socket, *args], env=self.env, check=check,
                              capture_output=True, text=True, timeout=T)

    def start(self, command):
        self.run("new-session", "-d", "-s", TMUX_SESSION, "-x", "200", "-y", "50", command)

    def type(self, text):
        # -l sends the text literally (no key names), then Enter on its own.
        self.run("send-keys", "-t", TMUX_SESSION, "-l", text)
        self.run("send-keys", "-t", TMUX_SESSION, "Enter")

    def screen(self):
        return self.run("capture-pane", "-p", "-t", TMUX_SESSION, "-S", "-200").stdout

    async def wait_for(self, text, what):
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            if text in self.screen():
                return
            await asyncio.sleep(0.2)
        fail(f"profanity's screen never showed {what} ({text!r}); it shows:\n{self.screen()}")

    def stop(self):
        self.run("kill-server", check=False)


class Bob(slixmpp.ClientXMPP):
    def __init__(self, port, cafile):
        super().__init__("bob@localhost/phone", "bob-pw")
        self.ca_certs = cafile
        self.port = port
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0045")
        self.register_plugin("xep_0004")
        self.online = asyncio.get_event_loop().create_future()
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("groupchat_message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("groupchat_presence", lambda p: self.presences.put_nowait(p))

    async def on_start(self, _):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    @property
    def muc(self):
        return self.plugin["xep_0045"]

    async def start(self):
        self.connect(("127.0.0.1", self.port))
        await asyncio.wait_for(self.online, T)

    async def presence_of(self, nick, kind):
        while True:
            p = await asyncio.wait_for(self.presences.get(), T)
            if p["from"].resource == nick and p["type"] == kind:
                return p


async def scenario(port, cafile, tmux):
    bob = Bob(port, cafile)
    await bob.start()
    await bob.muc.join_muc_wait(ROOM, "bob", timeout=T)
    submit = bob.plugin["xep_0004"].make_form(ftype="submit")
    submit.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
    submit.add_field(var="muc#roomconfig_roomname", value="Kitchen")
    await bob.muc.set_room_config(ROOM, submit)

    tmux.start("profanity -a alice")
    # profanity prints the account's JID once it is connected and bound.
    await tmux.wait_for("alice@localhost/profanity logged in", "the login")

    tmux.type(f"/join {ROOM} nick alice")
    await bob.presence_of("alice", "available")
    await tmux.wait_for("-> You have joined the room", "the room joined")

    tmux.type("hello from a terminal")
    while True:
        m = await asyncio.wait_for(bob.messages.get(), T)
        if m["from"].resource == "alice":
            break
    if m["body"] != "hello from a terminal":
        fail(f"bob got {m['body']!r} from alice")

    bob.send_message(mto=ROOM, mbody="welcome, terminal user", mtype="groupchat")
    await tmux.wait_for("welcome, terminal user", "bob's groupchat message")

    bob.send_message(mto="alice@localhost", mbody="just between us", mtype="chat")
    # A one-to-one message opens a window of its own; `/msg JID` from the
    # console (in a room's window it would name an occupant) switches to it,
    # and the text shows there whether it came before or after.
    tmux.type("/win 1")
    tmux.type("/msg bob@localhost")
    await tmux.wait_for("just between us", "bob's chat message")

    tmux.type("/quit")
    await bob.presence_of("alice", "unavailable")
    bob.disconnect()


def main():
    if shutil.which("profanity") is None or shutil.which("tmux") is None:
        fail("profanity and tmux are needed: apt-get install profanity tmux")
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as home:
        cfg = os.path.join(home, "switchboard.xml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        base = [binary, "-H", home, "-c", cfg]
        for user in ("alice", "bob"):
            subprocess.run(base + ["user", "add", f"{user}@localhost"], input=f"{user}-pw\n", text=True, check=True, timeout=T)
        server = subprocess.Popen(base + ["run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, "xdg-config"),
                   XDG_DATA_HOME=os.path.join(home, "xdg-data"), TERM="xterm-256color", LANG="C.UTF-8")
        env.pop("TMUX", None)
        tmux = Tmux(home, env)
        try:
            port = None
            for line in server.stdout:
                if line.startswith("listening c2s "):
                    port = int(line.rsplit(":", 1)[1])
                if line.strip() == "ready":
                    break
            if port is None:
                fail("the server did not report a listening port")
            # profanity's own account file: the password in it (this is a
            # throwaway account), TLS required with the server's self-signed
            # certificate trusted (tls.policy=trust).
            data = os.path.join(env["XDG_DATA_HOME"], "profanity")
            os.makedirs(data)
            with open(os.path.join(data, "accounts"), "w") as f:
                f.write(f"[alice]\nenabled=true\njid=alice@localhost\nserver=127.0.0.1\nport={port}\n"
                        "resource=profanity\npassword=alice-pw\ntls.policy=trust\n")
            os.makedirs(os.path.join(env["XDG_CONFIG_HOME"], "profanity"))
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(asyncio.wait_for(scenario(port, os.path.join(home, "etc", "localhost.crt"), tmux), T * 6))
            print("profanity MUC: OK (login, join, groupchat both ways, a chat message, leave)")
        finally:
            tmux.stop()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                fail("the server did not stop within 10 s of SIGTERM")


if __name__ == "__main__":
    main()
