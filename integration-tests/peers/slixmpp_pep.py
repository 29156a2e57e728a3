#!/usr/bin/env python3
"""Personal eventing end to end with a real client library (slixmpp).

Starts the real `switchboard` binary on a temporary home (port 0), creates
alice and bob, makes them contacts, and checks with slixmpp's own plugins
what users notice:

- XEP-0115: slixmpp verifies the server's capabilities from its stream
  features (the hash covers the XEP-0157 contact form configured here),
  and the server learns bob's `+notify` interests from his caps;
- XEP-0163/XEP-0084: alice publishes an avatar (data and metadata) and bob,
  interested, is notified;
- XEP-0398/XEP-0153: the avatar becomes alice's vCard photo (bob reads it)
  and its hash shows in alice's presence;
- XEP-0402/XEP-0411 with XEP-0048/XEP-0049: a bookmark published through
  PEP (slixmpp 1.8 has no XEP-0402 plugin: it goes through its XEP-0060
  plugin with publish-options) is read by a second client of alice's
  through private XML and through the XEP-0048 PEP node (XEP-0223); a list
  that client stores in private XML shows through PEP;
- XEP-0172: a nickname published while bob is away reaches him when he
  logs in (the last published item).

Usage: slixmpp_pep.py PATH/TO/switchboard
"""

import asyncio
import base64
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.plugins.xep_0048.stanza import Bookmarks

CONFIG = """<switchboard>
  <host name="localhost">
    <registration>off</registration>
    <contact type="abuse">mailto:abuse@localhost</contact>
  </host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
"""

T = 15
METADATA = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"
NICK = "http://jabber.org/protocol/nick"
# A tiny PNG (1x1 pixel).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def fail(msg):
    print(f"slixmpp PEP: FAILED: {msg}")
    sys.exit(1)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile, port, interests=()):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.port = port
        for p in ["xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0084",
                  "xep_0054", "xep_0153", "xep_0172", "xep_0049", "xep_0223", "xep_0048"]:
            self.register_plugin(p)
        self.interests = interests
        self.online = asyncio.get_event_loop().create_future()
        self.requests = asyncio.Queue()
        self.events = asyncio.Queue()
        self.hashes = asyncio.Queue()
        self.auto_authorize = None
        self.auto_subscribe = False
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("presence_subscribe", lambda p: self.requests.put_nowait(p))
        self.add_event_handler("avatar_metadata_publish", lambda m: self.events.put_nowait(("avatar", m)))
        self.add_event_handler("user_nick_publish", lambda m: self.events.put_nowait(("nick", m)))
        self.add_event_handler("presence_available", self.on_presence)

    def on_presence(self, p):
        photo = p["vcard_temp_update"]["photo"]
        if photo:
            self.hashes.put_nowait((str(p["from"]), photo))

    async def on_start(self, _):
        await self.get_roster()
        for i in self.interests:
            self["xep_0163"].add_interest(i)
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    def start(self):
        self.connect(address=("127.0.0.1", self.port))
        return asyncio.wait_for(self.online, T)


async def expect_event(client, kind):
    deadline = asyncio.get_event_loop().time() + T
    while True:
        left = deadline - asyncio.get_event_loop().time()
        if left <= 0:
            fail(f"{client.boundjid} got no {kind} notification")
        k, msg = await asyncio.wait_for(client.events.get(), left)
        if k == kind:
            return msg


async def expect_hash(client, who, h):
    deadline = asyncio.get_event_loop().time() + T
    while True:
        left = deadline - asyncio.get_event_loop().time()
        if left <= 0:
            fail(f"{client.boundjid} saw no presence of {who} with hash {h}")
        frm, photo = await asyncio.wait_for(client.hashes.get(), left)
        if frm.startswith(who) and photo == h:
            return


async def befriend(a, b):
    a.send_presence_subscription(pto=b.boundjid.bare)
    await asyncio.wait_for(b.requests.get(), T)
    b.send_presence(pto=a.boundjid.bare, ptype="subscribed")
    b.send_presence_subscription(pto=a.boundjid.bare)
    await asyncio.wait_for(a.requests.get(), T)
    a.send_presence(pto=b.boundjid.bare, ptype="subscribed")
    await asyncio.sleep(0.5)


def publish_options(client, fields):
    form = client["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in fields:
        form.add_field(var=var, value=value)
    return form


async def scenario(port, cafile):
    alice = Client("alice@localhost/desk", "alice-pw", cafile, port)
    bob = Client("bob@localhost/phone", "bob-pw", cafile, port, interests=[METADATA])
    await alice.start()
    await bob.start()

    # XEP-0115: slixmpp checked the server's caps from the stream features
    # (a disco#info of node#ver whose hash it verified).
    await asyncio.sleep(0.5)
    ver = await alice["xep_0115"].get_verstring("localhost")
    if not ver:
        fail("slixmpp did not verify the server's entity capabilities")
    info = await alice["xep_0030"].get_info(jid="localhost", cached=False)
    if "pubsub" not in [i[0] for i in info["disco_info"]["identities"]]:
        fail(f"the server shows no pubsub/pep identity: {info}")
    own = await alice["xep_0030"].get_info(jid="alice@localhost", cached=False)
    features = own["disco_info"]["features"]
    for f in ["urn:xmpp:pep-vcard-conversion:0", "urn:xmpp:bookmarks:1#compat",
              "http://jabber.org/protocol/pubsub#publish-options"]:
        if f not in features:
            fail(f"the account does not show {f}: {features}")

    await befriend(alice, bob)

    # XEP-0084: alice publishes an avatar; bob, interested, is told.
    h = hashlib.sha1(PNG).hexdigest()
    await alice["xep_0084"].publish_avatar(PNG, timeout=T)
    await alice["xep_0084"].publish_avatar_metadata(
        [{"id": h, "type": "image/png", "bytes": len(PNG)}], timeout=T)
    msg = await expect_event(bob, "avatar")
    got = msg["pubsub_event"]["items"]["item"]["id"]
    if got != h:
        fail(f"the avatar notification names {got}, not {h}")

    # XEP-0398/XEP-0153: the avatar is alice's vCard photo, and its hash
    # is in her presence.
    await expect_hash(bob, "alice@localhost/desk", h)
    card = await bob["xep_0054"].get_vcard("alice@localhost", cached=False, timeout=T)
    binval = card["vcard_temp"]["PHOTO"]["BINVAL"]
    if binval != PNG:
        fail(f"alice's vCard photo is not her avatar ({len(binval)} bytes)")

    # XEP-0402 through PEP, read back through XEP-0049 and XEP-0223.
    conference = ET.Element("{urn:xmpp:bookmarks:1}conference", {"name": "The Play", "autojoin": "true"})
    ET.SubElement(conference, "{urn:xmpp:bookmarks:1}nick").text = "Alice"
    await alice["xep_0060"].publish(
        None, BOOKMARKS, id="play@conference.localhost", payload=conference,
        options=publish_options(alice, [("pubsub#persist_items", "true"), ("pubsub#max_items", "max"),
                                        ("pubsub#send_last_published_item", "never"),
                                        ("pubsub#access_model", "whitelist")]),
        timeout=T)
    legacy = Client("alice@localhost/legacy", "alice-pw", cafile, port)
    await legacy.start()
    stored = await legacy["xep_0048"].get_bookmarks(method="xep_0049", timeout=T)
    jids = [str(c["jid"]) for c in stored["private"]["bookmarks"]["conferences"]]
    if jids != ["play@conference.localhost"]:
        fail(f"private XML holds {jids}")
    stored = await legacy["xep_0048"].get_bookmarks(method="xep_0223", timeout=T)
    jids = [str(c["jid"]) for c in stored["pubsub"]["items"]["item"]["bookmarks"]["conferences"]]
    if jids != ["play@conference.localhost"]:
        fail(f"the storage:bookmarks node holds {jids}")

    # A list stored through private XML shows through PEP.
    bookmarks = Bookmarks()
    bookmarks.add_conference("orchard@conference.localhost", "Alice", name="The Orchard", autojoin=True)
    await legacy["xep_0048"].set_bookmarks(bookmarks, method="xep_0049", timeout=T)
    items = await alice["xep_0060"].get_items(None, BOOKMARKS, timeout=T)
    ids = [i["id"] for i in items["pubsub"]["items"]]
    if ids != ["orchard@conference.localhost"]:
        fail(f"the XEP-0402 node holds {ids}")

    # XEP-0172: a nickname published while bob is away reaches him when
    # he comes back interested.
    bob.disconnect()
    await asyncio.sleep(0.5)
    await alice["xep_0172"].publish_nick("Alice L.", timeout=T)
    bob2 = Client("bob@localhost/laptop", "bob-pw", cafile, port, interests=[NICK])
    await bob2.start()
    msg = await expect_event(bob2, "nick")
    nick = msg["pubsub_event"]["items"]["item"]["nick"]["nick"]
    if nick != "Alice L.":
        fail(f"bob got the nickname {nick!r}")
    print(f"slixmpp {slixmpp.__version__} PEP: server caps verified, avatar notified to an interested "
          "contact, vCard photo and presence hash from a PEP avatar, bookmarks between PEP, private XML "
          "and the XEP-0048 node, last nickname on login: OK")
    for c in (alice, legacy, bob2):
        c.disconnect()
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
