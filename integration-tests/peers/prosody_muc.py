#!/usr/bin/env python3
"""Group chat run as a component of a real third-party server: Prosody.

Runs `switchboard component conference.localhost --type muc` attached over
XEP-0114 to a throwaway Prosody (the one `prosody_component.py` sets up:
its own config on 127.0.0.1 and free ports, STARTTLS with a self-signed
certificate), and checks with slixmpp clients of Prosody, using slixmpp's
XEP-0045 plugin, what alice, bob and carol notice:

- join: alice creates a room (201, owner) and submits the configuration
  form; bob and carol enter and see each other;
- message: a groupchat message reaches all three, with the room's
  stanza-id;
- moderation: alice kicks carol (307, with the reason), takes bob's
  voice in a moderated room (his next message is refused with
  `forbidden`), and retracts a message by its stanza-id (XEP-0425);
- history: carol comes back asking for two stanzas of history and gets
  the last two messages, delayed, then the subject.

Prints one line `... OK` and exits 0; on failure one line with the reason
and the tails of Prosody's log and the component's stderr, exit 1.

Usage: prosody_muc.py PATH/TO/switchboard
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
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

import prosody_component as pc

MUC = "conference.localhost"
ROOM = slixmpp.JID(f"kitchen@{MUC}")
SECRET = "prosody-muc-secret-51d2"
USERS = {"alice": "alice-pw-9", "bob": "bob-pw-9", "carol": "carol-pw-9"}
T = pc.T


def codes(stanza):
    return sorted(int(c) for c in stanza["muc"]["status_codes"])


class Client(slixmpp.ClientXMPP):
    def __init__(self, user, prosody):
        super().__init__(f"{user}@localhost/test", USERS[user])
        self.ca_certs = prosody.crt
        for p in ("xep_0030", "xep_0004", "xep_0045", "xep_0199"):
            self.register_plugin(p)
        self.online = asyncio.get_event_loop().create_future()
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.errors = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("groupchat_message", self.messages.put_nowait)
        self.add_event_handler("groupchat_presence", self.presences.put_nowait)
        self.retractions = asyncio.Queue()
        self.subjects = asyncio.Queue()
        self.add_event_handler("groupchat_subject", self.subjects.put_nowait)
        # The XEP-0045 plugin raises its own event for errors from rooms,
        # and none for groupchat messages without a body (a retraction).
        self.add_event_handler("groupchat_message_error", self.errors.put_nowait)
        self.register_handler(Callback(
            "retractions",
            MatchXPath("{jabber:client}message/{urn:xmpp:message-retract:1}retract"),
            self.retractions.put_nowait,
        ))
        self.connect(address=("127.0.0.1", prosody.c2s_port))

    async def on_start(self, _):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    async def ready(self):
        try:
            await asyncio.wait_for(asyncio.shield(self.online), T)
        except asyncio.TimeoutError:
            raise pc.Failure(f"{self.boundjid.bare} did not log in to Prosody within {T} s")
        return self

    @property
    def muc(self):
        return self.plugin["xep_0045"]

    async def next_message(self, pred, what):
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            m = await asyncio.wait_for(self.messages.get(), T)
            if pred(m):
                return m
        raise pc.Failure(f"{self.boundjid.bare} never got {what}")

    async def next_presence(self, pred, what):
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            p = await asyncio.wait_for(self.presences.get(), T)
            if pred(p):
                return p
        raise pc.Failure(f"{self.boundjid.bare} never got {what}")


async def wait_attached(client, component):
    deadline = time.monotonic() + pc.ATTACH
    while True:
        try:
            info = await client["xep_0030"].get_info(jid=MUC, timeout=T)
            if ("conference", "text") in {(i[0], i[1]) for i in info["disco_info"]["identities"]}:
                return
            raise pc.Failure(f"disco#info on {MUC}: {info}")
        except IqError as e:
            if e.iq["error"]["condition"] != "remote-server-timeout":
                raise
        if component.poll() is not None:
            raise pc.Failure(f"the component exited with {component.returncode}")
        if time.monotonic() > deadline:
            raise pc.Failure(f"the component did not attach to Prosody within {pc.ATTACH} s")
        await asyncio.sleep(0.5)


async def scenario(prosody, component):
    alice = await Client("alice", prosody).ready()
    bob = await Client("bob", prosody).ready()
    carol = await Client("carol", prosody).ready()
    await wait_attached(alice, component)

    # Join: creation, configuration, others entering.
    pres, _, _, _ = await alice.muc.join_muc_wait(ROOM, "Alice", timeout=T)
    if 201 not in codes(pres) or pres["muc"]["affiliation"] != "owner":
        raise pc.Failure(f"creating the room: {pres}")
    form = alice.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
    form.add_field(var="muc#roomconfig_roomname", value="Kitchen")
    await alice.muc.set_room_config(ROOM, form)
    await bob.muc.join_muc_wait(ROOM, "Bob", maxchars=0, timeout=T)
    await carol.muc.join_muc_wait(ROOM, "Carol", maxchars=0, timeout=T)
    await alice.next_presence(lambda p: p["from"].resource == "Carol", "carol entering")

    # Message.
    bob.send_message(mto=ROOM, mbody="one", mtype="groupchat")
    for c in (alice, bob, carol):
        m = await c.next_message(lambda m: m["body"] == "one", "bob's message")
        sid = m.xml.find("{urn:xmpp:sid:0}stanza-id")
        if sid is None or sid.get("by") != str(ROOM):
            raise pc.Failure(f"no stanza-id by the room in {m}")
    one_id = sid.get("id")
    bob.send_message(mto=ROOM, mbody="two", mtype="groupchat")
    bob.send_message(mto=ROOM, mbody="three", mtype="groupchat")
    await alice.next_message(lambda m: m["body"] == "three", "bob's third message")

    # Moderation: a kick with a reason, voice taken, a retraction.
    await alice.muc.set_role(ROOM, "Carol", "none", reason="Time out")
    p = await carol.next_presence(lambda p: p["type"] == "unavailable" and 307 in codes(p), "the kick")
    if p["muc"]["item"]["reason"] != "Time out":
        raise pc.Failure(f"kick reason {p}")
    submit = alice.plugin["xep_0004"].make_form(ftype="submit")
    submit.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
    submit.add_field(var="muc#roomconfig_moderatedroom", ftype="boolean", value=True)
    await alice.muc.set_room_config(ROOM, submit)
    await alice.muc.set_role(ROOM, "Bob", "visitor")
    await bob.next_presence(lambda p: p["muc"]["role"] == "visitor", "his voice taken")
    bob.send_message(mto=ROOM, mbody="let me speak", mtype="groupchat")
    err = await asyncio.wait_for(bob.errors.get(), T)
    if err["error"]["condition"] != "forbidden":
        raise pc.Failure(f"a visitor speaking: {err['error']['condition']}")
    iq = alice.Iq()
    iq["type"] = "set"
    iq["to"] = ROOM
    iq.append(pc.ET.fromstring(
        f"<moderate xmlns='urn:xmpp:message-moderate:1' id='{one_id}'>"
        "<retract xmlns='urn:xmpp:message-retract:1'/><reason>Spam</reason></moderate>"))
    await iq.send(timeout=T)
    r = await asyncio.wait_for(bob.retractions.get(), T)
    if r.xml.find("{urn:xmpp:message-retract:1}retract").get("id") != one_id:
        raise pc.Failure(f"the retraction names {r}")
    alice.muc.set_subject(ROOM, "Moderated now")
    while (await asyncio.wait_for(alice.subjects.get(), T))["subject"] != "Moderated now":
        pass

    # History: carol returns asking for two stanzas.
    _, subject, _, history = await carol.muc.join_muc_wait(ROOM, "Carol", maxstanzas=2, timeout=T)
    bodies = [h["body"] for h in history]
    if bodies != ["two", "three"]:
        raise pc.Failure(f"history with maxstanzas=2: {bodies}")
    if subject["subject"] != "Moderated now":
        raise pc.Failure(f"subject {subject['subject']!r}")
    for c in (alice, bob, carol):
        c.disconnect()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("Usage: ")[1])
    binary = os.path.abspath(sys.argv[1])
    scratch = tempfile.mkdtemp(prefix="prosody-muc-")
    prosody = component = None
    comp_err = os.path.join(scratch, "component.stderr")
    ok = False
    try:
        pc.ensure_prosody()
        prosody = pc.Prosody(scratch, components={MUC: SECRET})
        version = prosody.version()
        for user, pw in USERS.items():
            prosody.ctl("register", user, "localhost", pw)
        prosody.start()
        with open(comp_err, "w") as err:
            component = subprocess.Popen(
                [binary, "-H", os.path.join(scratch, "component"), "component", MUC, "--type", "muc",
                 "--server", f"127.0.0.1:{prosody.component_port}"],
                env=dict(os.environ, SWITCHBOARD_COMPONENT_SECRET=SECRET),
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            )
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(asyncio.wait_for(scenario(prosody, component), T * 10))
        except asyncio.TimeoutError:
            raise pc.Failure(f"the scenario took more than {T * 10} s")
        finally:
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=5))
            loop.close()
        code = pc.stop(component, "the component")
        if code != 0:
            raise pc.Failure(f"the component exited with {code} on SIGTERM")
        prosody.stop()
        print(f"prosody muc: Prosody {version}, switchboard component {MUC} (muc) over XEP-0114: join with "
              "creation and configuration, groupchat with stanza-ids, kick, voice, retraction, history: OK", flush=True)
        ok = True
    except pc.Failure as e:
        print(f"prosody muc: FAILED: {e}", flush=True)
    except Exception as e:
        print(f"prosody muc: FAILED: {type(e).__name__}: {e}", flush=True)
    finally:
        for proc in (component, prosody and prosody.proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)
        if not ok:
            report = ""
            if prosody:
                report += "--- last lines of Prosody's log\n" + pc.tail(prosody.log, 25)
            report += "--- last lines of the component's stderr\n" + pc.tail(comp_err)
            sys.stderr.write(report)
        shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
