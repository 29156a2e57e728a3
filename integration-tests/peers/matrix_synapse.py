#!/usr/bin/env python3
"""The Matrix transport end to end: a real Synapse (from PyPI, SQLite, no
federation), the real `switchboard` binary running the transport at
matrix.localhost, an XMPP user (slixmpp, raw XML for precision) and Matrix
users (matrix-nio) in the same rooms and direct chats.

What is checked, each as users of both sides notice it:

- registration with the gateway (XEP-0077 legacy fields: the Matrix user
  and password), which signs on with POST /login and keeps only the token;
  the gateway's subscription request; sign-on by presence;
- a room (#test:localhost, joined as #test%localhost@matrix.localhost):
  occupants from joined_members, self-presence 110, the topic as subject,
  messages both ways with the reflection, typing ↔ chat states, read
  receipts ↔ displayed markers, edits ↔ corrections, replies, reactions
  both ways, retractions ↔ redactions, images both ways through the
  server's upload service (a Matrix image as an XEP-0066 link that gives
  the same bytes; an XEP-0363 upload's link as an m.image whose media are
  the same bytes), MAM history from /messages, a kick (307);
- direct chats: one a Matrix user opens (invitation accepted, contact
  announced, messages both ways), one the XMPP user opens with a first
  message, presence both ways, and a message the user sent from another
  Matrix device arriving as a carbon;
- a burst past Synapse's message rate limit (rc_message lowered so that
  the test takes seconds): every message arrives, in order, and Synapse
  did answer 429;
- Synapse restarted mid-conversation: the user is told, a message sent
  while it is down is delivered after, and the sync resumes;
- an encrypted room: shown as such, a message into it refused with
  not-acceptable and nothing posted;
- unregistration logs the gateway's device out;
- then the transport alone, as `switchboard component matrix.localhost`
  attached over XEP-0114 to a Prosody of its own (Debian prosody,
  installed by prosody_component.py when missing), and a Prosody user
  through it: registration and the room tests again (an image from
  Matrix described in words there: no upload service).

Synapse and matrix-nio are installed from PyPI into a virtualenv kept in
$SWITCHBOARD_TEST_CACHE (default ~/.cache/switchboard-tests) and reused
(synapse_venv.py); the venv sees the system's site-packages for slixmpp
(Debian's python3-slixmpp), and installs slixmpp from PyPI when there is
none. The script re-runs itself under the venv's interpreter. Synapse's data lives
in a scratch directory, removed at the end.

Usage: matrix_synapse.py PATH/TO/switchboard
"""

import asyncio
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET

T = 20  # one step: a stanza round trip, a sync, a login
START = 120  # Synapse starting (it is slow on a busy machine)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import synapse_venv  # noqa: E402

GW = "matrix.localhost"
ROOM_ALIAS = "#test:localhost"
ROOM = "#test%localhost@matrix.localhost"
SHARED_SECRET = "synapse-shared-secret-5b1d"

NS = {
    "client": "jabber:client",
    "muc_user": "http://jabber.org/protocol/muc#user",
    "register": "jabber:iq:register",
    "disco_info": "http://jabber.org/protocol/disco#info",
    "chatstates": "http://jabber.org/protocol/chatstates",
    "markers": "urn:xmpp:chat-markers:0",
    "correct": "urn:xmpp:message-correct:0",
    "reply": "urn:xmpp:reply:0",
    "reactions": "urn:xmpp:reactions:0",
    "retract": "urn:xmpp:message-retract:1",
    "sid": "urn:xmpp:sid:0",
    "mam": "urn:xmpp:mam:2",
    "forward": "urn:xmpp:forward:0",
    "carbons": "urn:xmpp:carbons:2",
    "stanzas": "urn:ietf:params:xml:ns:xmpp-stanzas",
    "oob": "jabber:x:oob",
}


class Failure(Exception):
    pass


# ---------------------------------------------------------------- setup


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tail(path, n=40, only=None):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [l for l in f if only is None or re.search(only, l)][-n:]
    except OSError as e:
        return f"({e})\n"
    return "".join(l[:500].rstrip("\n") + "\n" for l in lines) or "(none)\n"


class Synapse:
    """A Synapse of its own in a scratch directory, on 127.0.0.1."""

    def __init__(self, scratch, rc_message, extra=""):
        self.dir = os.path.join(scratch, "synapse")
        os.makedirs(self.dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(self.dir, "homeserver.log")
        self.cfg = os.path.join(self.dir, "homeserver.yaml")
        d = lambda *p: os.path.join(self.dir, *p)
        per_second, burst = rc_message
        with open(self.cfg, "w") as f:
            f.write(f"""# Written by matrix_synapse.py: a throwaway Synapse on 127.0.0.1.
server_name: "localhost"
pid_file: {d("homeserver.pid")}
listeners:
  - port: {self.port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {d("homeserver.db")}
log_config: {d("log.yaml")}
media_store_path: {d("media")}
registration_shared_secret: "{SHARED_SECRET}"
report_stats: false
macaroon_secret_key: "macaroon-5b1d-test"
form_secret: "form-5b1d-test"
signing_key_path: {d("signing.key")}
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
enable_registration: false
presence:
  enabled: true
rc_message:
  per_second: {per_second}
  burst_count: {burst}
rc_login:
  address: {{per_second: 100, burst_count: 100}}
  account: {{per_second: 100, burst_count: 100}}
  failed_attempts: {{per_second: 100, burst_count: 100}}
rc_joins:
  local: {{per_second: 100, burst_count: 100}}
rc_invites:
  per_room: {{per_second: 100, burst_count: 100}}
  per_user: {{per_second: 100, burst_count: 100}}
{extra}""")
        with open(d("log.yaml"), "w") as f:
            f.write(f"""version: 1
formatters:
  f: {{format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}
handlers:
  file: {{class: logging.FileHandler, filename: {self.log}, formatter: f}}
root: {{level: INFO, handlers: [file]}}
disable_existing_loggers: false
""")
        self.run_module(["--generate-keys"], "generating Synapse's signing key")
        self.proc = None

    def run_module(self, extra, what):
        r = subprocess.run(
            [sys.executable, "-m", "synapse.app.homeserver", "--config-path", self.cfg, *extra],
            capture_output=True, text=True, timeout=START,
        )
        if r.returncode != 0:
            raise Failure(f"{what}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}")

    def start(self):
        out = open(os.path.join(self.dir, "stdout.log"), "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "--config-path", self.cfg],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )
        out.close()
        deadline = time.monotonic() + START
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"Synapse exited with {self.proc.returncode}:\n{tail(self.log)}")
            try:
                urllib.request.urlopen(self.url + "/_matrix/client/versions", timeout=2).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise Failure(f"Synapse did not answer within {START} s:\n{tail(self.log)}")
                time.sleep(0.3)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def register(self, user, password):
        """An account through the shared-secret admin API (what
        register_new_matrix_user does)."""
        url = self.url + "/_synapse/admin/v1/register"
        nonce = json.load(urllib.request.urlopen(url, timeout=T))["nonce"]
        mac = hmac.new(SHARED_SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(f"{nonce}\0{user}\0{password}\0notadmin".encode())
        body = json.dumps(
            {"nonce": nonce, "username": user, "password": password, "admin": False, "mac": mac.hexdigest()}
        ).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        json.load(urllib.request.urlopen(req, timeout=T))

    def count_429(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return sum(1 for l in f if re.search(r'B 429 "PUT [^"]*/send/m\.room\.message/', l))
        except OSError:
            return 0


# ---------------------------------------------------------------- the two sides


class Inbox:
    """Everything one side received, consumed by expectations in any
    order; every wait bounded."""

    def __init__(self, name):
        self.name = name
        self.items = []
        self.event = asyncio.Event()

    def put(self, item):
        self.items.append(item)
        self.event.set()

    async def expect(self, pred, what, timeout=T):
        deadline = time.monotonic() + timeout
        while True:
            for i, item in enumerate(self.items):
                try:
                    ok = pred(item)
                except Exception:
                    ok = False
                if ok:
                    del self.items[i]
                    return item
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"{self.name}: no {what} within {timeout} s; has: {self.describe()}")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), left)
            except asyncio.TimeoutError:
                pass

    def describe(self):
        out = []
        for item in self.items[-8:]:
            out.append(ET.tostring(item, "unicode")[:300] if isinstance(item, ET.Element) else str(item)[:300])
        return out


def q(ns, tag):
    return f"{{{NS[ns]}}}{tag}"


def body(el):
    return el.findtext(q("client", "body"))


if __name__ == "__main__":
    # Everything below needs the venv's packages.
    synapse_venv.ensure(__file__)

import slixmpp  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402


class Xmpp(slixmpp.ClientXMPP):
    """An XMPP user whose every stanza lands in an Inbox; sends raw XML."""

    def __init__(self, jid, password, port, cafile):
        super().__init__(jid, password)
        self.ca_certs = cafile
        self.port = port
        self.inbox = Inbox(jid)
        self.online = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.on_start)
        for kind in ("message", "presence", "iq"):
            self.register_handler(
                Callback(f"sb-{kind}", MatchXPath(f"{{jabber:client}}{kind}"), lambda s: self.inbox.put(s.xml))
            )
        self.n = 0

    async def on_start(self, _):
        # As clients do: the roster first (servers push roster changes only
        # to resources that asked for it), then presence.
        await self.get_roster()
        self.send_raw("<presence/>")
        if not self.online.done():
            self.online.set_result(True)

    async def start(self):
        self.connect(address=("127.0.0.1", self.port))
        await asyncio.wait_for(self.online, T)
        return self

    def id(self, prefix="x"):
        self.n += 1
        return f"{prefix}{self.n}"

    def raw(self, xml):
        self.send_raw(xml)

    async def iq(self, to, ty, payload, timeout=T):
        i = self.id("iq")
        self.raw(f"<iq to='{to}' type='{ty}' id='{i}'>{payload}</iq>")
        r = await self.inbox.expect(lambda s: s.tag == q("client", "iq") and s.get("id") == i, f"answer to iq {i}", timeout)
        return r

    async def expect(self, pred, what, timeout=T):
        return await self.inbox.expect(pred, what, timeout)

    async def message(self, pred, what, timeout=T):
        return await self.expect(lambda s: s.tag == q("client", "message") and pred(s), what, timeout)


from nio import AsyncClient, RoomCreateResponse, RoomVisibility  # noqa: E402


class Matrix:
    """A Matrix user (matrix-nio) syncing in the background; timeline,
    ephemeral, invite and presence events land in an Inbox as dicts."""

    def __init__(self, url, user, password):
        self.client = AsyncClient(url, f"@{user}:localhost")
        self.user_id = f"@{user}:localhost"
        self.password = password
        self.inbox = Inbox(self.user_id)
        self.task = None

    async def start(self):
        r = await self.client.login(self.password)
        if not getattr(r, "access_token", None):
            raise Failure(f"{self.user_id}: login failed: {r}")
        await self.client.sync(timeout=0)
        self.task = asyncio.ensure_future(self.loop())
        return self

    async def loop(self):
        while True:
            try:
                r = await self.client.sync(timeout=1000)
            except Exception as e:  # Synapse restarting
                await asyncio.sleep(0.5)
                continue
            rooms = getattr(r, "rooms", None)
            if rooms is None:
                await asyncio.sleep(0.5)
                continue
            for rid, room in rooms.join.items():
                for ev in room.timeline.events:
                    self.inbox.put({"kind": "timeline", "room": rid, **ev.source})
                for ev in room.ephemeral:
                    name = type(ev).__name__
                    if name == "TypingNoticeEvent":
                        self.inbox.put({"kind": "typing", "room": rid, "users": list(ev.users)})
                    elif name == "ReceiptEvent":
                        for rc in ev.receipts:
                            self.inbox.put({"kind": "receipt", "room": rid, "event_id": rc.event_id, "user": rc.user_id})
            for rid, inv in rooms.invite.items():
                self.inbox.put({"kind": "invite", "room": rid})
            for ev in getattr(r, "presence_events", []) or []:
                self.inbox.put({"kind": "presence", "user": ev.user_id, "presence": ev.presence, "status": ev.status_msg})

    async def stop(self):
        if self.task:
            self.task.cancel()
        await self.client.close()

    async def expect(self, pred, what, timeout=T):
        return await self.inbox.expect(pred, what, timeout)

    async def message(self, room, pred, what, timeout=T):
        return await self.expect(
            lambda e: e["kind"] == "timeline" and e["room"] == room and e.get("type") == "m.room.message" and pred(e),
            what,
            timeout,
        )

    async def send(self, room, content, kind="m.room.message"):
        r = await self.client.room_send(room, kind, content, ignore_unverified_devices=True)
        if not getattr(r, "event_id", None):
            raise Failure(f"{self.user_id}: send failed: {r}")
        return r.event_id

    async def text(self, room, text):
        return await self.send(room, {"msgtype": "m.text", "body": text})


# ---------------------------------------------------------------- scenario


def config(synapse):
    return f"""<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <service id="{GW}" type="matrix">
    <homeserver name="localhost" url="{synapse.url}" allow-plain="true"/>
  </service>
  <service id="upload.localhost" type="upload" max-file-size="1M"/>
  <listen><c2s addr="127.0.0.1:0"/><http addr="127.0.0.1:0"/></listen>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
"""


async def register(x, user, password):
    r = await x.iq(GW, "set", f"<query xmlns='jabber:iq:register'><username>{user}</username><password>{password}</password></query>", timeout=T * 2)
    if r.get("type") != "result":
        raise Failure(f"registration: {ET.tostring(r, 'unicode')}")
    await x.expect(
        lambda s: s.tag == q("client", "presence") and s.get("from") == GW and s.get("type") == "subscribe",
        "the gateway's subscription request",
    )
    # Approve, ask back, and sign on.
    x.raw(f"<presence to='{GW}' type='subscribed'/>")
    x.raw(f"<presence to='{GW}' type='subscribe'/>")
    # The approval: the presence itself (Switchboard) or the roster push
    # it causes (Prosody forwards only that).
    await x.expect(
        lambda s: (s.tag == q("client", "presence") and s.get("from") == GW and s.get("type") == "subscribed")
        or (s.tag == q("client", "iq") and any(
            i.get("jid") == GW and i.get("subscription") in ("to", "both")
            for i in s.iter("{jabber:iq:roster}item"))),
        "the gateway approving the user's subscription",
    )
    x.raw(f"<presence to='{GW}'/>")
    await x.expect(
        lambda s: s.tag == q("client", "presence") and s.get("from") == GW and s.get("type") is None,
        "the gateway's available presence (signed on)",
    )


def codes(p):
    return sorted(int(c.get("code")) for c in p.iter(q("muc_user", "status")))


async def join(x, room_jid, nick):
    x.raw(f"<presence to='{room_jid}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    own = await x.expect(
        lambda s: s.tag == q("client", "presence") and s.get("from") == f"{room_jid}/{nick}" and 110 in codes(s),
        f"self-presence in {room_jid}",
    )
    if own.get("type") == "error":
        raise Failure(f"join refused: {ET.tostring(own, 'unicode')}")
    subject = await x.message(lambda s: s.find(q("client", "subject")) is not None and s.get("from") == room_jid, "the subject")
    return own, subject.findtext(q("client", "subject")) or ""


async def room_tests(x, bob, rid, mx, label, upload=None):
    """A room both ways, every mapping: `x` (XMPP, its Matrix account
    `mx`) joins #test where bob (Matrix) is; `upload` ({"base": URL}) when
    the server has an upload service for files."""
    own, subject = await join(x, ROOM, "xalice")
    if "the test topic" not in subject:
        raise Failure(f"subject {subject!r}")
    occupants = [s for s in x.inbox.items if s.tag == q("client", "presence") and s.get("from", "").startswith(ROOM + "/")]
    if not any(s.get("from") == f"{ROOM}/bob" for s in occupants):
        raise Failure(f"bob is not among the occupants: {[s.get('from') for s in occupants]}")
    await bob.expect(
        lambda e: e["kind"] == "timeline" and e.get("type") == "m.room.member" and e.get("state_key") == mx,
        "alice's join",
    )
    print(f"matrix: {label}joined the room", flush=True)

    # messages both ways
    x.raw(f"<message to='{ROOM}' type='groupchat' id='m1'><body>hello from xmpp &lt;3</body></message>")
    e = await bob.message(rid, lambda e: e["content"].get("body") == "hello from xmpp <3", "the XMPP user's message")
    first_event = e["event_id"]
    echo = await x.message(lambda s: s.get("id") == "m1" and s.get("type") == "groupchat", "the reflection")
    if echo.get("from") != f"{ROOM}/xalice" or echo.find(q("sid", "stanza-id")) is None:
        raise Failure(f"reflection: {ET.tostring(echo, 'unicode')}")
    bob_event = await bob.text(rid, "hello from matrix & co")
    m = await x.message(lambda s: body(s) == "hello from matrix & co", "bob's message")
    if m.get("from") != f"{ROOM}/bob" or m.get("type") != "groupchat" or m.get("id") != bob_event:
        raise Failure(f"bob's message: {ET.tostring(m, 'unicode')}")
    print(f"matrix: {label}room messages both ways", flush=True)

    # typing <-> chat states
    x.raw(f"<message to='{ROOM}' type='groupchat'><composing xmlns='{NS['chatstates']}'/></message>")
    await bob.expect(lambda e: e["kind"] == "typing" and e["room"] == rid and mx in e["users"], "alice typing")
    await bob.client.room_typing(rid, True, timeout=30000)
    await x.message(lambda s: s.get("from") == f"{ROOM}/bob" and s.find(q("chatstates", "composing")) is not None, "bob composing")
    await bob.client.room_typing(rid, False)
    await x.message(lambda s: s.get("from") == f"{ROOM}/bob" and s.find(q("chatstates", "paused")) is not None, "bob paused")
    print(f"matrix: {label}typing <-> chat states", flush=True)

    # edits <-> corrections
    x.raw(f"<message to='{ROOM}' type='groupchat' id='m2'><body>hello, corrected</body><replace xmlns='{NS['correct']}' id='m1'/></message>")
    e = await bob.message(rid, lambda e: e["content"].get("m.new_content", {}).get("body") == "hello, corrected", "the correction")
    if e["content"]["m.relates_to"] != {"rel_type": "m.replace", "event_id": first_event}:
        raise Failure(f"correction: {e['content']}")
    await bob.send(rid, {
        "msgtype": "m.text", "body": "* bob, edited",
        "m.new_content": {"msgtype": "m.text", "body": "bob, edited"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": bob_event},
    })
    m = await x.message(lambda s: body(s) == "bob, edited", "bob's edit")
    if m.find(q("correct", "replace")) is None or m.find(q("correct", "replace")).get("id") != bob_event:
        raise Failure(f"edit: {ET.tostring(m, 'unicode')}")
    print(f"matrix: {label}edits <-> corrections", flush=True)

    # replies
    await bob.send(rid, {
        "msgtype": "m.text", "body": "> <@alice:localhost> hello from xmpp <3\n\nbob replies",
        "m.relates_to": {"m.in_reply_to": {"event_id": first_event}},
    })
    m = await x.message(lambda s: body(s) == "bob replies", "bob's reply, its quote taken out")
    if m.find(q("reply", "reply")) is None or m.find(q("reply", "reply")).get("id") != first_event:
        raise Failure(f"reply: {ET.tostring(m, 'unicode')}")
    x.raw(
        f"<message to='{ROOM}' type='groupchat' id='m3'><body>&gt; bob\nxalice replies</body>"
        f"<reply xmlns='{NS['reply']}' to='{ROOM}/bob' id='{bob_event}'/>"
        f"<fallback xmlns='urn:xmpp:fallback:0' for='{NS['reply']}'><body start='0' end='6'/></fallback></message>"
    )
    e = await bob.message(rid, lambda e: e["content"].get("body") == "xalice replies", "alice's reply without its fallback")
    if e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") != bob_event:
        raise Failure(f"reply: {e['content']}")
    print(f"matrix: {label}replies", flush=True)

    # reactions both ways
    x.raw(f"<message to='{ROOM}' type='groupchat' id='re1'><reactions xmlns='{NS['reactions']}' id='{bob_event}'><reaction>👍</reaction></reactions></message>")
    await bob.expect(
        lambda e: e["kind"] == "timeline" and e.get("type") == "m.reaction"
        and e["content"]["m.relates_to"] == {"rel_type": "m.annotation", "event_id": bob_event, "key": "👍"},
        "alice's reaction",
    )
    reaction = await bob.send(rid, {"m.relates_to": {"rel_type": "m.annotation", "event_id": first_event, "key": "🎉"}}, kind="m.reaction")
    m = await x.message(lambda s: s.find(q("reactions", "reactions")) is not None and s.get("from") == f"{ROOM}/bob", "bob's reaction")
    r = m.find(q("reactions", "reactions"))
    if r.get("id") != first_event or [c.text for c in r] != ["🎉"]:
        raise Failure(f"reaction: {ET.tostring(m, 'unicode')}")
    await bob.client.room_redact(rid, reaction)
    m = await x.message(lambda s: s.find(q("reactions", "reactions")) is not None and s.get("from") == f"{ROOM}/bob", "bob taking his reaction back")
    if list(m.find(q("reactions", "reactions"))):
        raise Failure(f"the reaction set after the redaction: {ET.tostring(m, 'unicode')}")
    print(f"matrix: {label}reactions both ways", flush=True)

    # retractions <-> redactions
    x.raw(f"<message to='{ROOM}' type='groupchat' id='m4'><body>regrettable</body></message>")
    gone = await bob.message(rid, lambda e: e["content"].get("body") == "regrettable", "the message to retract")
    x.raw(f"<message to='{ROOM}' type='groupchat' id='rt1'><retract xmlns='{NS['retract']}' id='m4'/></message>")
    await bob.expect(
        lambda e: e["kind"] == "timeline" and e.get("type") == "m.room.redaction"
        and (e.get("redacts") or e["content"].get("redacts")) == gone["event_id"],
        "the retraction as a redaction",
    )
    oops = await bob.text(rid, "bob regrets")
    await x.message(lambda s: body(s) == "bob regrets", "bob's message to redact")
    await bob.client.room_redact(rid, oops)
    m = await x.message(
        lambda s: s.find(q("retract", "retract")) is not None and s.get("from") == f"{ROOM}/bob",
        "bob's redaction as a retraction",
    )
    if m.find(q("retract", "retract")).get("id") != oops or m.get("from") != f"{ROOM}/bob":
        raise Failure(f"retraction: {ET.tostring(m, 'unicode')}")
    print(f"matrix: {label}retractions <-> redactions", flush=True)

    # an image from Matrix: stored in the server's upload service and
    # linked to (XEP-0066) when there is one, else described; never as
    # its mxc:// link
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5b0000000049454e44ae426082")
    up, _ = await bob.client.upload(io.BytesIO(png), content_type="image/png", filename="cat.png", filesize=len(png))
    await bob.send(rid, {"msgtype": "m.image", "body": "cat.png", "url": up.content_uri,
                         "info": {"mimetype": "image/png", "size": len(png)}})
    if upload is None:
        m = await x.message(lambda s: "cat.png" in (body(s) or ""), "the image")
        if "mxc://" in ET.tostring(m, "unicode") or not body(m).startswith("[image: cat.png"):
            raise Failure(f"image: {ET.tostring(m, 'unicode')}")
        print(f"matrix: {label}media described without mxc links", flush=True)
    else:
        m = await x.message(lambda s: s.get("from") == f"{ROOM}/bob" and s.find(q("oob", "x")) is not None, "the image as a link")
        link = m.findtext(f"{q('oob', 'x')}/{q('oob', 'url')}")
        if body(m) != link or not link.startswith(upload["base"] + "/upload/upload.localhost/") or "mxc://" in ET.tostring(m, "unicode"):
            raise Failure(f"image: {ET.tostring(m, 'unicode')}")
        got = urllib.request.urlopen(link, timeout=T).read()
        if got != png:
            raise Failure(f"the image's link gives {len(got)} other bytes")
        print(f"matrix: {label}an image from Matrix as a link to the upload service, same bytes", flush=True)

        # an image from XMPP: uploaded (XEP-0363), its link sent, posted
        # to Matrix as an m.image whose media are the same bytes
        pic = png + b"\x00" * 7  # another file
        r = await x.iq("upload.localhost", "get",
                       f"<request xmlns='urn:xmpp:http:upload:0' filename='dog.png' size='{len(pic)}' content-type='image/png'/>")
        slot = r.find("{urn:xmpp:http:upload:0}slot")
        if slot is None:
            raise Failure(f"upload slot: {ET.tostring(r, 'unicode')}")
        put = slot.find("{urn:xmpp:http:upload:0}put").get("url")
        get = slot.find("{urn:xmpp:http:upload:0}get").get("url")
        req = urllib.request.Request(put, data=pic, method="PUT", headers={"Content-Type": "image/png"})
        urllib.request.urlopen(req, timeout=T).read()
        x.raw(f"<message to='{ROOM}' type='groupchat' id='img1'><body>{get}</body>"
              f"<x xmlns='jabber:x:oob'><url>{get}</url></x></message>")
        e = await bob.message(rid, lambda e: e["sender"] == mx and e["content"].get("msgtype") == "m.image", "the XMPP user's image")
        c = e["content"]
        if c.get("body") != "dog.png" or c.get("info", {}).get("mimetype") != "image/png" or not c.get("url", "").startswith("mxc://"):
            raise Failure(f"the image's event: {c}")
        server, media = c["url"][len("mxc://"):].split("/", 1)
        req = urllib.request.Request(f"{bob.client.homeserver}/_matrix/client/v1/media/download/{server}/{media}",
                                     headers={"Authorization": f"Bearer {bob.client.access_token}"})
        got = urllib.request.urlopen(req, timeout=T).read()
        if got != pic:
            raise Failure(f"the m.image's media are {len(got)} other bytes")
        print(f"matrix: {label}an image from XMPP as an m.image, same bytes", flush=True)

    # history (MAM) from /messages
    i = x.id("mam")
    x.raw(f"<iq to='{ROOM}' type='set' id='{i}'><query xmlns='{NS['mam']}' queryid='q1'>"
          f"<set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set></query></iq>")
    fin = await x.expect(lambda s: s.tag == q("client", "iq") and s.get("id") == i, "the MAM query's answer")
    if fin.get("type") != "result" or fin.find(q("mam", "fin")) is None:
        raise Failure(f"MAM: {ET.tostring(fin, 'unicode')}")
    results = []
    while True:
        try:
            r = await x.message(lambda s: s.find(q("mam", "result")) is not None, "a MAM result", timeout=0.1)
        except Failure:
            break
        results.append(body(r.find(f"{q('mam', 'result')}/{q('forward', 'forwarded')}/{q('client', 'message')}")))
    if "hello from matrix & co" not in results or "hello from xmpp <3" not in results:
        raise Failure(f"history: {results}")
    if results.index("hello from xmpp <3") > results.index("hello from matrix & co"):
        raise Failure(f"history out of order: {results}")
    print(f"matrix: {label}history ({len(results)} messages)", flush=True)


async def scenario(port, http_port, cafile, synapse):
    x = await Xmpp("xalice@localhost/desk", "xalice-pw", port, cafile).start()
    bob = await Matrix(synapse.url, "bob", "bob-pw").start()
    carol = await Matrix(synapse.url, "carol", "carol-pw").start()

    # -- registration and sign-on
    await register(x, "@alice:localhost", "alice-pw")
    print("matrix: registered and signed on", flush=True)

    # -- a room
    created = await bob.client.room_create(
        visibility=RoomVisibility.public, alias="test", name="Test room", topic="the test topic"
    )
    if not isinstance(created, RoomCreateResponse):
        raise Failure(f"room_create: {created}")
    rid = created.room_id
    await room_tests(x, bob, rid, "@alice:localhost", "", upload={"base": f"http://localhost:{http_port}"})

    # -- a direct chat bob opens
    dm = await bob.client.room_create(is_direct=True, invite=["@alice:localhost"], preset=None)
    dm_id = dm.room_id
    bob_jid = "bob%localhost@matrix.localhost"
    # The gateway accepts it; bob's first message arrives as a chat.
    await bob.expect(
        lambda e: e["kind"] == "timeline" and e["room"] == dm_id and e.get("type") == "m.room.member"
        and e.get("state_key") == "@alice:localhost" and e["content"].get("membership") == "join",
        "alice joining the direct chat",
    )
    await bob.text(dm_id, "psst, direct")
    m = await x.message(lambda s: body(s) == "psst, direct", "bob's direct message")
    if m.get("from") != bob_jid or m.get("type") != "chat":
        raise Failure(f"direct message: {ET.tostring(m, 'unicode')}")
    await x.expect(
        lambda s: s.tag == q("client", "presence") and s.get("from") == bob_jid and s.get("type") == "subscribe",
        "bob announced as a contact",
    )
    x.raw(f"<message to='{bob_jid}' type='chat' id='d1'><body>direct answer</body></message>")
    answer = await bob.message(dm_id, lambda e: e["content"].get("body") == "direct answer", "the direct answer")
    print("matrix: direct chat opened by Matrix", flush=True)

    # read receipts <-> displayed markers, in the direct chat
    await bob.client.update_receipt_marker(dm_id, answer["event_id"])
    await x.message(
        lambda s: s.get("from") == bob_jid and s.find(q("markers", "displayed")) is not None
        and s.find(q("markers", "displayed")).get("id") == "d1",
        "bob's read receipt as a displayed marker for d1",
    )
    psst = m.get("id")
    x.raw(f"<message to='{bob_jid}' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='{psst}'/></message>")
    await bob.expect(
        lambda e: e["kind"] == "receipt" and e["event_id"] == psst and e["user"] == "@alice:localhost",
        "alice's displayed marker as a read receipt",
    )
    print("matrix: receipts <-> markers", flush=True)

    # -- a direct chat the XMPP user opens
    carol_jid = "carol%localhost@matrix.localhost"
    x.raw(f"<message to='{carol_jid}' type='chat' id='c1'><body>hi carol</body></message>")
    inv = await carol.expect(lambda e: e["kind"] == "invite", "the invitation to a direct chat")
    await carol.client.join(inv["room"])
    await carol.message(inv["room"], lambda e: e["content"].get("body") == "hi carol", "the first message")
    print("matrix: direct chat opened by XMPP", flush=True)

    # presence both ways
    await bob.client.set_presence("online", "at work")
    p = await x.expect(
        lambda s: s.tag == q("client", "presence") and s.get("from") == bob_jid and s.get("type") is None
        and s.findtext(q("client", "status")) == "at work",
        "bob's presence",
    )
    x.raw(f"<presence to='{GW}'><show>away</show><status>lunch</status></presence>")
    await bob.expect(
        lambda e: e["kind"] == "presence" and e["user"] == "@alice:localhost" and e["presence"] == "unavailable"
        and e["status"] == "lunch",
        "alice away on Matrix",
    )
    x.raw(f"<presence to='{GW}'/>")
    print("matrix: presence both ways", flush=True)

    # the user's own message from another Matrix device: a carbon
    alice2 = await Matrix(synapse.url, "alice", "alice-pw").start()
    await alice2.text(dm_id, "sent from my phone")
    m = await x.message(lambda s: s.find(q("carbons", "sent")) is not None, "the carbon of a message from another device")
    inner = m.find(f"{q('carbons', 'sent')}/{q('forward', 'forwarded')}/{q('client', 'message')}")
    if m.get("from") != bob_jid or inner is None or body(inner) != "sent from my phone" or inner.get("to") != bob_jid:
        raise Failure(f"carbon: {ET.tostring(m, 'unicode')}")
    print("matrix: own messages from other devices as carbons", flush=True)

    # a burst past Synapse's rate limit: all of it, in order
    before = synapse.count_429()
    n = 25
    for k in range(n):
        x.raw(f"<message to='{ROOM}' type='groupchat' id='burst{k}'><body>burst {k}</body></message>")
    got = []
    while len(got) < n:
        e = await bob.message(rid, lambda e: e["content"].get("body", "").startswith("burst "), "the burst", timeout=T * 3)
        got.append(int(e["content"]["body"].split()[1]))
    if got != list(range(n)):
        raise Failure(f"the burst arrived as {got}")
    if synapse.count_429() <= before:
        raise Failure("Synapse never answered 429: the burst did not test the rate limit")
    print(f"matrix: a burst of {n} past the rate limit ({synapse.count_429() - before} answers 429), in order", flush=True)

    # Synapse restarted mid-conversation
    synapse.stop()
    await x.message(lambda s: s.get("from") == GW and "Lost the connection" in (body(s) or ""), "the notice of the outage", timeout=T * 3)
    x.raw(f"<message to='{ROOM}' type='groupchat' id='down1'><body>said while it was down</body></message>")
    synapse.start()
    await bob.message(rid, lambda e: e["content"].get("body") == "said while it was down", "the message sent during the outage", timeout=START)
    await x.message(lambda s: s.get("from") == GW and "Reconnected" in (body(s) or ""), "the notice of the reconnection", timeout=START)
    await bob.text(rid, "after the restart")
    await x.message(lambda s: body(s) == "after the restart", "bob's message after the restart", timeout=T * 2)
    print("matrix: Synapse restarted mid-conversation, nothing lost", flush=True)

    # an encrypted room: shown as such, nothing posted in clear
    enc = await bob.client.room_create(
        alias="secret", name="Secret", invite=["@alice:localhost"],
        initial_state=[{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
    )
    inv = await x.message(lambda s: s.find("{jabber:x:conference}x") is not None, "the invitation to the encrypted room")
    secret = inv.find("{jabber:x:conference}x").get("jid")
    if secret != "#secret%localhost@matrix.localhost":
        raise Failure(f"invitation: {ET.tostring(inv, 'unicode')}")
    _own, subject = await join(x, secret, "xalice")
    if "encrypted" not in subject:
        raise Failure(f"the encrypted room's subject: {subject!r}")
    info = await x.iq(secret, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    if "encrypted" not in ET.tostring(info, "unicode"):
        raise Failure(f"disco#info on the encrypted room: {ET.tostring(info, 'unicode')}")
    x.raw(f"<message to='{secret}' type='groupchat' id='e1'><body>top secret</body></message>")
    err = await x.message(lambda s: s.get("id") == "e1" and s.get("type") == "error", "the refusal")
    if err.find(f"{q('client', 'error')}/{q('stanzas', 'not-acceptable')}") is None:
        raise Failure(f"refusal: {ET.tostring(err, 'unicode')}")
    await bob.text(enc.room_id, "barrier")
    await bob.message(enc.room_id, lambda e: e["content"].get("body") == "barrier", "bob's own barrier")
    leaked = [e for e in bob.inbox.items if e.get("room") == enc.room_id and e.get("sender") == "@alice:localhost" and e.get("type") == "m.room.message"]
    if leaked:
        raise Failure(f"a message reached the encrypted room in clear: {leaked}")
    print("matrix: encrypted room shown and refused", flush=True)

    # a kick
    await bob.client.room_kick(rid, "@alice:localhost", "enough")
    p = await x.expect(
        lambda s: s.tag == q("client", "presence") and s.get("from") == f"{ROOM}/xalice" and s.get("type") == "unavailable",
        "alice's kick",
    )
    if codes(p) != [110, 307]:
        raise Failure(f"kick: {ET.tostring(p, 'unicode')}")
    print("matrix: kick as 307", flush=True)

    # unregistration logs the gateway's device out
    r = await x.iq(GW, "set", "<query xmlns='jabber:iq:register'><remove/></query>")
    if r.get("type") != "result":
        raise Failure(f"unregistration: {ET.tostring(r, 'unicode')}")
    deadline = time.monotonic() + T
    while True:
        devices = await alice2.client.devices()
        names = [d.display_name for d in devices.devices]
        if not any((n or "").startswith("Switchboard gateway") for n in names):
            break
        if time.monotonic() > deadline:
            raise Failure(f"the gateway's device is still signed on after unregistration: {names}")
        await asyncio.sleep(0.3)
    print("matrix: unregistration logged the device out", flush=True)
    await alice2.stop()
    await bob.stop()
    await carol.stop()
    x.disconnect()
    return rid


async def prosody_scenario(prosody, component, synapse, rid):
    """The room tests again, the transport attached to Prosody over
    XEP-0114 and the XMPP user one of Prosody's."""
    x = await Xmpp("palice@localhost/desk", "palice-pw", prosody.c2s_port, prosody.crt).start()
    deadline = time.monotonic() + START
    while True:
        r = await x.iq(GW, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        if r.get("type") == "result":
            break
        if component.poll() is not None:
            raise Failure(f"the component exited with {component.returncode} before attaching")
        if time.monotonic() > deadline:
            raise Failure("the component did not attach to Prosody")
        await asyncio.sleep(0.5)
    ids = {(i.get("category"), i.get("type")) for i in r.iter(q("disco_info", "identity"))}
    if ("gateway", "matrix") not in ids:
        raise Failure(f"disco#info through Prosody: {sorted(ids)}")
    bob = await Matrix(synapse.url, "bob", "bob-pw").start()
    await register(x, "@dave:localhost", "dave-pw")
    await room_tests(x, bob, rid, "@dave:localhost", "through Prosody: ")
    await bob.stop()
    x.disconnect()


def prosody_phase(binary, scratch, syn, rid, loop):
    sys.path.insert(0, HERE)
    from prosody_component import Prosody, ensure_prosody, stop as stop_proc  # noqa: E402
    import prosody_component

    prosody_component.DOMAIN = "localhost"
    ensure_prosody()
    secret = "prosody-matrix-secret-2e7c"
    prosody = Prosody(scratch, components={GW: secret})
    version = prosody.version()
    prosody.ctl("register", "palice", "localhost", "palice-pw")
    prosody.start()
    home = os.path.join(scratch, "component")
    os.makedirs(os.path.join(home, "etc"))
    with open(os.path.join(home, "etc", "switchboard.xml"), "w") as f:
        f.write(
            "<switchboard>\n  <host name='localhost'/>\n"
            f"  <service id='{GW}' type='matrix'>\n"
            f"    <homeserver name='localhost' url='{syn.url}' allow-plain='true'/>\n"
            "  </service>\n</switchboard>\n"
        )
    err_path = os.path.join(scratch, "component.log")
    with open(err_path, "w") as err:
        component = subprocess.Popen(
            [binary, "-H", home, "component", GW, "--server", f"127.0.0.1:{prosody.component_port}"],
            env=dict(os.environ, SWITCHBOARD_COMPONENT_SECRET=secret),
            stdin=subprocess.DEVNULL, stdout=err, stderr=err,
        )
    try:
        print(f"matrix: Prosody {version}, the transport as `switchboard component {GW}` over XEP-0114", flush=True)
        loop.run_until_complete(asyncio.wait_for(prosody_scenario(prosody, component, syn, rid), T * 20))
    except (Failure, asyncio.TimeoutError) as e:
        raise Failure(f"{e or 'timeout'}\n--- component log:\n{tail(err_path)}--- Prosody log:\n{tail(prosody.log, 20)}")
    finally:
        if component.poll() is None:
            stop_proc(component, "the component")
        prosody.stop()


def main():
    binary = os.path.abspath(sys.argv[1])
    import synapse as _syn  # noqa: F401
    import nio as _nio  # noqa: F401
    print(f"matrix: Synapse {_syn.__version__}, matrix-nio, slixmpp {slixmpp.__version__}", flush=True)
    scratch = tempfile.mkdtemp(prefix="sb-matrix-")
    server = None
    syn = None
    try:
        syn = Synapse(scratch, rc_message=(2, 5))
        syn.start()
        for user in ("alice", "bob", "carol", "dave"):
            syn.register(user, f"{user}-pw")
        home = os.path.join(scratch, "home")
        os.makedirs(home)
        cfg = os.path.join(home, "switchboard.xml")
        with open(cfg, "w") as f:
            f.write(config(syn))
        base = [binary, "-H", home, "-c", cfg]
        subprocess.run(base + ["user", "add", "xalice@localhost"], input="xalice-pw\n", text=True, check=True, timeout=T)
        server = subprocess.Popen(base + ["run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = http_port = None
        for line in server.stdout:
            if line.startswith("listening c2s "):
                port = int(line.rsplit(":", 1)[1])
            if line.startswith("listening http "):
                http_port = int(line.rsplit(":", 1)[1])
            if line.strip() == "ready":
                break
        if port is None or http_port is None:
            raise Failure("the server did not report its listening ports")
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        rid = loop.run_until_complete(asyncio.wait_for(scenario(port, http_port, os.path.join(home, "etc", "localhost.crt"), syn), T * 40))
        prosody_phase(binary, scratch, syn, rid, loop)
        print("matrix: OK", flush=True)
    except (Failure, asyncio.TimeoutError) as e:
        print(f"matrix: FAILED: {e or 'timeout'}")
        if syn:
            print("--- Synapse log:\n" + tail(syn.log, 30))
        print("--- Switchboard log:\n" + tail(os.path.join(scratch, "home", "logs", "switchboard.log"), 40))
        sys.exit(1)
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        if syn:
            syn.stop()
        if os.environ.get("SWITCHBOARD_KEEP_SCRATCH"):
            print(f"matrix: scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
