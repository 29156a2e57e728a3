#!/usr/bin/env bash
# IRC through a real gateway: biboumi (Debian) attached to Switchboard as the
# external component irc.localhost (XEP-0114), bridging to a real IRC server
# (ngircd).
#
# Starts, each on 127.0.0.1 and in a scratch directory: ngircd on a free
# port, Switchboard (port 0, -D) with the external service irc.localhost on a
# component listener, and biboumi pointed at that listener. Then a slixmpp
# client (alice, STARTTLS, verifying the server's generated certificate)
# waits until disco#info on irc.localhost is answered with biboumi's
# identity, asks biboumi's version, sets the IRC port for 127.0.0.1 (and no
# send throttling) with biboumi's per-server `configure` ad-hoc command
# (XEP-0050; by default biboumi tries 6697 with TLS, then 6667), and joins
# the MUC #test%127.0.0.1@irc.localhost/alice while a raw-socket IRC client
# (bob) sits in #test: a groupchat message from alice must reach IRC, and a
# PRIVMSG from bob must reach alice as a groupchat message from
# #test%127.0.0.1@irc.localhost/bob; then private messages both ways
# between bob and alice (bob%127.0.0.1@irc.localhost). Exits 0 on success,
# 1 with a reason (and the tail of every log).
#
# Everything started here runs under `timeout` and is stopped by the EXIT
# trap; every wait is bounded.
#
# Usage: biboumi.sh PATH/TO/switchboard
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 PATH/TO/switchboard" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
LIMIT=90 # seconds any process started here may live

fail() {
  echo "biboumi: FAILED: $*"
  exit 1
}

# --- the peers -------------------------------------------------------------
install_peers() {
  # The ngircd package would start the system's ngircd (on every interface,
  # port 6667) as it installs: a policy-rc.d that says no, unless the system
  # has one already, keeps it from starting.
  local policy=/usr/sbin/policy-rc.d added=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq biboumi ngircd >/dev/null) || rc=$?
  if [ "$added" = 1 ]; then rm -f "$policy"; fi
  return "$rc"
}
if ! command -v biboumi >/dev/null || ! command -v ngircd >/dev/null; then
  command -v apt-get >/dev/null || fail "biboumi and ngircd are not installed and there is no apt-get"
  install_peers || fail "apt-get install biboumi ngircd failed"
fi
PY=python3
if ! $PY -c 'import slixmpp' 2>/dev/null && [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi
$PY -c 'import slixmpp' 2>/dev/null || fail "slixmpp is not installed"

BIBOUMI_VERSION=$(dpkg-query -W -f='${Version}' biboumi 2>/dev/null || echo unknown)
NGIRCD_VERSION=$(ngircd --version 2>/dev/null | head -n1 || true)

# --- scratch space and clean-up --------------------------------------------
WORK=$(mktemp -d)
PIDS=()
OK=0

stop() { # pid: TERM, wait up to 5 s, then KILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local i
  if [ "$OK" != 1 ]; then
    for f in switchboard/logs/switchboard.log biboumi.log ngircd.log; do
      [ -s "$WORK/$f" ] || continue
      echo "--- last lines of $f" >&2
      if [ "$f" = switchboard/logs/switchboard.log ]; then
        echo "(component stream)" >&2
        grep -F 'net::component' "$WORK/$f" | tail -n 25 | cut -c1-600 >&2 || true
        echo "(last lines)" >&2
      fi
      tail -n 25 "$WORK/$f" | cut -c1-600 >&2
    done
  fi
  # Newest first: biboumi, then Switchboard, then ngircd.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[$i]}"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for FILE REGEX SECONDS: true once a line of FILE matches.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# --- ngircd ------------------------------------------------------------------
IRC_PORT=$(free_port)
cat >"$WORK/ngircd.conf" <<EOF
[Global]
Name = irc.test.invalid
Info = Switchboard gateway test
AdminInfo1 = test
AdminInfo2 = test
AdminEMail = test@test.invalid
Listen = 127.0.0.1
Ports = $IRC_PORT
MotdPhrase = test server
[Limits]
; Stop by itself once the last client is gone.
IdleTimeout = 10
MaxConnectionsIP = 10
; No flood penalties: each costs the test a second.
MaxPenaltyTime = 0
[Options]
PAM = no
Ident = no
DNS = no
EOF
timeout -k 5 $LIMIT ngircd -n -f "$WORK/ngircd.conf" >"$WORK/ngircd.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/ngircd.log" "Now listening on \[127.0.0.1\]:$IRC_PORT" 10 || fail "ngircd did not start listening on 127.0.0.1:$IRC_PORT"

# --- Switchboard -------------------------------------------------------------
SECRET=biboumi-secret-$RANDOM$RANDOM
mkdir "$WORK/switchboard"
cat >"$WORK/switchboard.xml" <<EOF
<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <service id="irc.localhost" type="external" secret="$SECRET" name="IRC gateway"/>
  <listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:0"/></listen>
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
EOF
SB=("$BIN" -H "$WORK/switchboard" -c "$WORK/switchboard.xml")
echo alice-pw | timeout 20 "${SB[@]}" user add alice@localhost >/dev/null || fail "user add alice@localhost"
timeout -k 5 $LIMIT "${SB[@]}" -D run >"$WORK/switchboard.out" 2>/dev/null &
PIDS+=($!)
wait_for "$WORK/switchboard.out" '^ready$' 20 || fail "Switchboard did not print ready"
C2S_PORT=$(sed -n 's/^listening c2s .*:\([0-9]*\)$/\1/p' "$WORK/switchboard.out" | head -n1)
COMP_PORT=$(sed -n 's/^listening component .*:\([0-9]*\)$/\1/p' "$WORK/switchboard.out" | head -n1)
if [ -z "$C2S_PORT" ] || [ -z "$COMP_PORT" ]; then fail "Switchboard did not report its c2s and component ports"; fi

# --- biboumi -----------------------------------------------------------------
cat >"$WORK/biboumi.cfg" <<EOF
hostname=irc.localhost
password=$SECRET
xmpp_server_ip=127.0.0.1
port=$COMP_PORT
admin=
db_name=$WORK/biboumi.sqlite
policy_directory=$WORK
identd_port=0
log_file=
log_level=1
EOF
timeout -k 5 $LIMIT biboumi "$WORK/biboumi.cfg" >"$WORK/biboumi.log" 2>&1 &
PIDS+=($!)

# --- the XMPP and IRC sides ------------------------------------------------
export C2S_PORT IRC_PORT CAFILE="$WORK/switchboard/etc/localhost.crt"
rc=0
timeout -k 5 60 $PY - <<'PYEOF' || rc=$?
import asyncio
import os
import sys
import xml.etree.ElementTree as ET

import slixmpp

T = 15
GATEWAY = "irc.localhost"
SERVER_JID = f"127.0.0.1@{GATEWAY}"
ROOM = f"#test%127.0.0.1@{GATEWAY}"
CMD = "http://jabber.org/protocol/commands"
DATA = "jabber:x:data"


def fail(msg):
    print(f"biboumi: FAILED: {msg}", flush=True)
    sys.exit(1)


class Irc:
    """A minimal IRC client on a raw socket: registers, joins, answers PING."""

    def __init__(self, nick):
        self.nick = nick
        self.lines = asyncio.Queue()

    async def start(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        asyncio.get_event_loop().create_task(self.read_loop())
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :Raw IRC client")
        await self.expect(lambda p: p[1] == "001", "the IRC welcome (001)")
        self.send("JOIN #test")
        await self.expect(lambda p: p[1] == "366", "the end of NAMES for #test (366)")

    def send(self, line):
        self.writer.write(line.encode() + b"\r\n")

    async def read_loop(self):
        while True:
            raw = await self.reader.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("PING"):
                self.send("PONG" + line[4:])
                continue
            self.lines.put_nowait(line)

    async def expect(self, pred, what):
        """Waits for a line whose parts (prefix, command, params...) satisfy pred."""
        loop = asyncio.get_event_loop()
        deadline = loop.time() + T
        seen = []
        while True:
            try:
                line = await asyncio.wait_for(self.lines.get(), max(deadline - loop.time(), 0.01))
            except asyncio.TimeoutError:
                fail(f"IRC: no {what}; got {seen[-5:]}")
            seen.append(line)
            prefix = ""
            rest = line
            if rest.startswith(":"):
                prefix, _, rest = rest[1:].partition(" ")
            head, _, trailing = rest.partition(" :")
            parts = [prefix] + head.split() + ([trailing] if _ else [])
            if len(parts) > 1 and pred(parts):
                return parts


class Alice(slixmpp.ClientXMPP):
    def __init__(self, cafile):
        super().__init__("alice@localhost/desk", "alice-pw")
        self.ca_certs = cafile
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0092")
        self.online = asyncio.get_event_loop().create_future()
        self.groupchat = asyncio.Queue()
        self.chat = asyncio.Queue()
        self.room_presence = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", lambda _: self.online.done() or self.online.set_exception(RuntimeError("auth failed")))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", lambda m: print(f"biboumi: alice got an error message: {m}", flush=True))
        self.add_event_handler("presence", self.on_presence)

    async def on_start(self, _):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    def on_message(self, m):
        if m["type"] == "groupchat" and m["body"]:
            self.groupchat.put_nowait(m)
        elif m["type"] == "chat" and m["from"].bare != SERVER_JID:
            self.chat.put_nowait(m)

    def on_presence(self, p):
        if p["from"].bare == ROOM:
            self.room_presence.put_nowait(p)


async def wait_for_gateway(alice):
    """disco#info on irc.localhost until biboumi answers (it attaches on its own)."""
    loop = asyncio.get_event_loop()
    deadline = loop.time() + T
    last = None
    while loop.time() < deadline:
        try:
            info = await alice.plugin["xep_0030"].get_info(jid=GATEWAY, local=False, timeout=5)
            return {(c, t, n) for c, t, _lang, n in info["disco_info"]["identities"]}
        except slixmpp.exceptions.IqError as e:
            last = e.iq["error"]["condition"]
            await asyncio.sleep(0.3)
        except slixmpp.exceptions.IqTimeout:
            last = "timeout"
    fail(f"biboumi did not attach to irc.localhost within {T} s (last disco#info answer: {last})")


async def configure_port(alice, irc_port):
    """Per-server configuration (biboumi's `configure` ad-hoc command on the
    IRC server's JID): plain-text port IRC_PORT only, no TLS ports, and no
    throttling (it holds back lines sent to IRC, a second at a time)."""
    iq = alice.make_iq_set(ito=SERVER_JID)
    iq.append(ET.fromstring(f"<command xmlns='{CMD}' node='configure' action='execute'/>"))
    res = await iq.send(timeout=T)
    cmd = res.xml.find(f"{{{CMD}}}command")
    form = cmd.find(f"{{{DATA}}}x") if cmd is not None else None
    if form is None:
        fail(f"the configure command returned no form: {res}")
    fields = {f.get("var"): f for f in form.findall(f"{{{DATA}}}field") if f.get("var")}
    if "ports" not in fields or "tls_ports" not in fields:
        fail(f"biboumi's server configuration has no ports/tls_ports fields: {sorted(fields)}")
    submit = ET.Element(f"{{{CMD}}}command", {"node": "configure", "sessionid": cmd.get("sessionid", ""), "action": "complete"})
    x = ET.SubElement(submit, f"{{{DATA}}}x", {"type": "submit"})
    for var, values in (("ports", [str(irc_port)]), ("tls_ports", []), ("throttle_limit", ["-1"])):
        field = ET.SubElement(x, f"{{{DATA}}}field", {"var": var})
        for v in values:
            ET.SubElement(field, f"{{{DATA}}}value").text = v
    iq = alice.make_iq_set(ito=SERVER_JID)
    iq.append(submit)
    res = await iq.send(timeout=T)
    done = res.xml.find(f"{{{CMD}}}command")
    if done is None or done.get("status") != "completed":
        fail(f"the configure command did not complete: {res}")


async def scenario():
    c2s, irc_port = int(os.environ["C2S_PORT"]), int(os.environ["IRC_PORT"])
    alice = Alice(os.environ["CAFILE"])
    alice.connect(address=("127.0.0.1", c2s))
    await asyncio.wait_for(alice.online, T)

    ids = await wait_for_gateway(alice)
    if not any(c == "conference" and t == "irc" for c, t, _ in ids):
        fail(f"irc.localhost's disco#info identities: {ids}")
    version = await alice.plugin["xep_0092"].get_version(GATEWAY, timeout=T)
    sv = version["software_version"]
    print(f"biboumi: gateway attached: {sorted(ids)}; version {sv['name']} {sv['version']}", flush=True)

    await configure_port(alice, irc_port)

    bob = Irc("bob")
    await bob.start(irc_port)

    join = alice.make_presence(pto=f"{ROOM}/alice")
    join.append(ET.fromstring("<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>"))
    join.send()
    loop = asyncio.get_event_loop()
    deadline = loop.time() + T
    while True:
        try:
            p = await asyncio.wait_for(alice.room_presence.get(), max(deadline - loop.time(), 0.01))
        except asyncio.TimeoutError:
            fail(f"alice got no self-presence from {ROOM}")
        if p["type"] == "error":
            fail(f"joining {ROOM}: {p['error']['condition']} {p['error']['text']}")
        if str(p["from"]) == f"{ROOM}/alice" and p["type"] != "unavailable":
            codes = [s.get("code") for s in p.xml.iter("{http://jabber.org/protocol/muc#user}status")]
            if "110" in codes:
                break
    await bob.expect(lambda p: p[0].startswith("alice!") and p[1] == "JOIN", "JOIN from alice")

    alice.send_message(mto=ROOM, mbody="hello IRC from XMPP ✓", mtype="groupchat")
    await bob.expect(
        lambda p: p[0].startswith("alice!") and p[1] == "PRIVMSG" and p[2] == "#test" and p[-1] == "hello IRC from XMPP ✓",
        "PRIVMSG from alice in #test",
    )

    bob.send("PRIVMSG #test :hello XMPP from IRC")
    deadline = loop.time() + T
    while True:
        try:
            m = await asyncio.wait_for(alice.groupchat.get(), max(deadline - loop.time(), 0.01))
        except asyncio.TimeoutError:
            fail("alice got no groupchat message for bob's PRIVMSG")
        if m["body"] == "hello XMPP from IRC":
            if str(m["from"]) != f"{ROOM}/bob":
                fail(f"bob's message came from {m['from']}")
            break

    # Private messages both ways: IRC user <-> a JID at the gateway.
    bob_jid = f"bob%127.0.0.1@{GATEWAY}"
    bob.send("PRIVMSG alice :psst, alice")
    deadline = loop.time() + T
    while True:
        try:
            m = await asyncio.wait_for(alice.chat.get(), max(deadline - loop.time(), 0.01))
        except asyncio.TimeoutError:
            fail("alice got no chat message for bob's private PRIVMSG")
        if m["body"] == "psst, alice":
            if m["from"].bare != bob_jid:
                fail(f"bob's private message came from {m['from']}")
            break
    alice.send_message(mto=bob_jid, mbody="hi bob, privately", mtype="chat")
    await bob.expect(
        lambda p: p[0].startswith("alice!") and p[1] == "PRIVMSG" and p[2] == "bob" and p[-1] == "hi bob, privately",
        "private PRIVMSG from alice",
    )

    alice.send_presence(pto=f"{ROOM}/alice", ptype="unavailable")
    await bob.expect(lambda p: p[0].startswith("alice!") and p[1] in ("PART", "QUIT"), "PART from alice")
    bob.send("QUIT :done")
    alice.disconnect()
    await asyncio.sleep(0.3)
    print(f"biboumi: disco#info and version through the server, per-server port via ad-hoc configure, "
          f"MUC join of {ROOM}, groupchat XMPP -> IRC and PRIVMSG IRC -> XMPP, private messages both ways: OK", flush=True)


loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
try:
    loop.run_until_complete(asyncio.wait_for(scenario(), 50))
except asyncio.TimeoutError:
    fail("timed out")
except (OSError, RuntimeError, slixmpp.exceptions.IqError, slixmpp.exceptions.IqTimeout) as e:
    fail(f"{type(e).__name__}: {e}")
PYEOF
case $rc in
  0) ;;
  1) exit 1 ;; # the scenario printed its reason
  *) fail "the scenario ended with status $rc (124: killed after 60 s)" ;;
esac

echo "biboumi: versions: biboumi $BIBOUMI_VERSION (Debian package), $NGIRCD_VERSION"
OK=1
