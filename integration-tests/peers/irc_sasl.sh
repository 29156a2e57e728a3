#!/usr/bin/env bash
# The IRC transport's SASL PLAIN and NickServ IDENTIFY against real IRC
# services: InspIRCd 3 (Debian inspircd, with m_sasl and m_services_account)
# linked to Atheme 7.2 (Debian atheme-services: NickServ, SaslServ).
#
# Starts, each on 127.0.0.1 and in a scratch directory: inspircd (a client
# port and a server port), atheme linked to it as services.test.invalid, and
# Switchboard (port 0, -D) running the IRC transport in-process at
# irc.localhost. A raw-socket IRC client registers two NickServ accounts
# (saslacct, nsacct) and watches. A slixmpp client (alice) then, through the
# transport:
#   1. registers settings at 127.0.0.1@irc.localhost (XEP-0077 data form):
#      nick saslnick, SASL account saslacct and its password; joins
#      #test%127.0.0.1@irc.localhost and must appear as saslnick; WHOIS must
#      say (330) that saslnick is logged in as saslacct;
#   2. changes the SASL password to a wrong one: the join must still work,
#      with a message from 127.0.0.1@irc.localhost saying SASL failed, and
#      WHOIS must show no account;
#   3. removes the settings (<remove/>) and registers nick nsacct with its
#      NickServ password: after the join, WHOIS must show nsacct logged in
#      as nsacct (NickServ IDENTIFY);
# and no password may appear in Switchboard's -D log or output, where the
# masked lines (AUTHENTICATE ***, PRIVMSG NickServ ***) must be.
# Exits 0 on success, 1 with a reason (and the tail of every log).
#
# Everything started here runs under `timeout` and is stopped by the EXIT
# trap; every wait is bounded.
#
# Usage: irc_sasl.sh PATH/TO/switchboard
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 PATH/TO/switchboard" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
LIMIT=120 # seconds any process started here may live

fail() {
  echo "irc_sasl: FAILED: $*"
  exit 1
}

# --- the peers -------------------------------------------------------------
install_peers() {
  # Both packages would start system daemons as they install: a policy-rc.d
  # that says no, unless the system has one already, keeps them stopped.
  local policy=/usr/sbin/policy-rc.d added=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq inspircd atheme-services >/dev/null) || rc=$?
  if [ "$added" = 1 ]; then rm -f "$policy"; fi
  return "$rc"
}
if ! command -v inspircd >/dev/null || ! command -v atheme-services >/dev/null; then
  command -v apt-get >/dev/null || fail "inspircd and atheme-services are not installed and there is no apt-get"
  install_peers || fail "apt-get install inspircd atheme-services failed"
fi
PY=python3
if ! $PY -c 'import slixmpp' 2>/dev/null && [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi
$PY -c 'import slixmpp' 2>/dev/null || fail "slixmpp is not installed"

INSPIRCD_VERSION=$(dpkg-query -W -f='${Version}' inspircd 2>/dev/null || echo unknown)
ATHEME_VERSION=$(dpkg-query -W -f='${Version}' atheme-services 2>/dev/null || echo unknown)

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
    for f in switchboard/logs/switchboard.log switchboard.out inspircd.log inspircd.out atheme.out; do
      [ -s "$WORK/$f" ] || continue
      echo "--- last lines of $f" >&2
      tail -n 25 "$WORK/$f" | cut -c1-600 >&2
    done
  fi
  # Newest first: Switchboard, atheme, inspircd.
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

# --- inspircd ----------------------------------------------------------------
IRC_PORT=$(free_port)
LINK_PORT=$(free_port)
LINK_PW=link-$RANDOM$RANDOM
cat >"$WORK/inspircd.conf" <<EOF
<server name="irc.test.invalid" description="Switchboard SASL test" network="TestNet">
<admin name="test" nick="test" email="test@test.invalid">
<bind address="127.0.0.1" port="$IRC_PORT" type="clients">
<bind address="127.0.0.1" port="$LINK_PORT" type="servers">
<connect name="main" allow="*" timeout="60" pingfreq="120" sendq="262144" recvq="8192"
         localmax="50" globalmax="50" resolvehostnames="no" useident="no" limit="100"
         threshold="100" commandrate="100000">
<class name="Shell" commands="*">
<type name="NetAdmin" classes="Shell">
<pid file="$WORK/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="$WORK/inspircd.log">
<module name="cap">
<module name="spanningtree">
<module name="services_account">
<module name="sasl">
<link name="services.test.invalid" ipaddr="127.0.0.1" port="$LINK_PORT" allowmask="127.0.0.0/8"
      sendpass="$LINK_PW" recvpass="$LINK_PW">
<uline server="services.test.invalid" silent="yes">
<sasl target="services.test.invalid" requiressl="no">
<dns timeout="1">
EOF
# InspIRCd refuses root unless told; CI runs as root.
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(--runasroot)
timeout -k 5 $LIMIT inspircd --nofork "${RUNAS[@]}" --config="$WORK/inspircd.conf" >"$WORK/inspircd.out" 2>&1 &
PIDS+=($!)
wait_for "$WORK/inspircd.out" "InspIRCd is now running" 15 || fail "inspircd did not start"

# --- atheme ------------------------------------------------------------------
mkdir "$WORK/atheme"
cat >"$WORK/atheme.conf" <<EOF
loadmodule "modules/protocol/inspircd";
loadmodule "modules/backend/opensex";
loadmodule "modules/crypto/pbkdf2v2";
loadmodule "modules/nickserv/main";
loadmodule "modules/nickserv/identify";
loadmodule "modules/nickserv/register";
loadmodule "modules/nickserv/info";
loadmodule "modules/saslserv/main";
loadmodule "modules/saslserv/plain";
serverinfo {
	name = "services.test.invalid";
	desc = "Switchboard SASL test services";
	numeric = "00A";
	recontime = 2;
	netname = "TestNet";
	hidehostsuffix = "users.test.invalid";
	adminname = "test";
	adminemail = "test@test.invalid";
	registeremail = "noreply@test.invalid";
	loglevel = { all; };
	maxlogins = 5;
	maxusers = 5;
	mdlimit = 30;
	emaillimit = 10;
	emailtime = 300;
	auth = none;
	casemapping = rfc1459;
};
uplink "irc.test.invalid" {
	host = "127.0.0.1";
	password = "$LINK_PW";
	port = $LINK_PORT;
};
nickserv {
	nick = "NickServ";
	user = "NickServ";
	host = "services.test.invalid";
	real = "Nickname Services";
	maxnicks = 5;
	expire = 30;
};
saslserv {
	nick = "SaslServ";
	user = "SaslServ";
	host = "services.test.invalid";
	real = "SASL Authentication Agent";
};
general {
	helpchan = "#help";
	join_chans;
	leave_chans;
	uflags = { hidemail; };
	cflags = { verbose; guard; };
	flood_msgs = 7;
	flood_time = 10;
	ratelimit_uses = 50;
	ratelimit_period = 60;
	kline_time = 7;
	commit_interval = 5;
	default_clone_allowed = 5;
	default_clone_warn = 4;
	uplink_sendq_limit = 1048576;
	language = "en";
};
EOF
timeout -k 5 $LIMIT atheme-services -n -c "$WORK/atheme.conf" -l "$WORK/atheme.log" \
  -p "$WORK/atheme.pid" -D "$WORK/atheme" >"$WORK/atheme.out" 2>&1 &
PIDS+=($!)
wait_for "$WORK/atheme.out" "finished synching with uplink" 20 || fail "atheme did not link to inspircd"

# --- Switchboard -------------------------------------------------------------
mkdir "$WORK/switchboard"
cat >"$WORK/switchboard.xml" <<EOF
<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <service id="irc.localhost" type="irc">
    <server host="127.0.0.1" port="$IRC_PORT" tls="false" allow-plain="true"/>
  </service>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <tls required="true"/>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
EOF
SB=("$BIN" -H "$WORK/switchboard" -c "$WORK/switchboard.xml")
echo alice-pw | timeout 20 "${SB[@]}" user add alice@localhost >/dev/null || fail "user add alice@localhost"
timeout -k 5 $LIMIT "${SB[@]}" -D run >"$WORK/switchboard.out" 2>&1 &
PIDS+=($!)
wait_for "$WORK/switchboard.out" '^ready$' 20 || fail "Switchboard did not print ready"
C2S_PORT=$(sed -n 's/^listening c2s .*:\([0-9]*\)$/\1/p' "$WORK/switchboard.out" | head -n1)
[ -n "$C2S_PORT" ] || fail "Switchboard did not report its c2s port"

# --- the scenario ----------------------------------------------------------
SASL_PW=Sasl-Pa55-$RANDOM$RANDOM
NS_PW=NickServ-Pa55-$RANDOM$RANDOM
WRONG_PW=Wrong-Pa55-$RANDOM$RANDOM
export C2S_PORT IRC_PORT SASL_PW NS_PW WRONG_PW CAFILE="$WORK/switchboard/etc/localhost.crt"
rc=0
timeout -k 5 90 $PY - <<'PYEOF' || rc=$?
import asyncio
import os
import sys
import xml.etree.ElementTree as ET

import slixmpp

T = 15
GATEWAY = "irc.localhost"
SERVER_JID = f"127.0.0.1@{GATEWAY}"
ROOM = f"#test%127.0.0.1@{GATEWAY}"
REGISTER = "jabber:iq:register"
DATA = "jabber:x:data"
MUC_USER = "http://jabber.org/protocol/muc#user"
SASL_PW, NS_PW, WRONG_PW = os.environ["SASL_PW"], os.environ["NS_PW"], os.environ["WRONG_PW"]


def fail(msg):
    print(f"irc_sasl: FAILED: {msg}", flush=True)
    sys.exit(1)


class Irc:
    """A minimal IRC client on a raw socket: registers, answers PING."""

    def __init__(self, nick):
        self.nick = nick
        self.lines = asyncio.Queue()

    async def start(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        asyncio.get_event_loop().create_task(self.read_loop())
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :Raw IRC client")
        await self.expect(lambda p: p[1] == "001", "the IRC welcome (001)")

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
                fail(f"IRC ({self.nick}): no {what}; got {seen[-8:]}")
            seen.append(line)
            prefix = ""
            rest = line
            if rest.startswith(":"):
                prefix, _, rest = rest[1:].partition(" ")
            head, _, trailing = rest.partition(" :")
            parts = [prefix] + head.split() + ([trailing] if _ else [])
            if len(parts) > 1 and pred(parts):
                return parts

    async def whois_account(self, nick):
        """The account WHOIS shows for nick (330), or None; fails if nick is not on IRC."""
        self.send(f"WHOIS {nick}")
        account = None
        while True:
            p = await self.expect(lambda p: p[1] in ("330", "318", "401"), f"WHOIS {nick}")
            if p[1] == "401":
                fail(f"{nick} is not on IRC")
            if p[1] == "330":
                account = p[4]
            if p[1] == "318":
                return account

    async def gone(self, nick):
        """Waits until nick is no longer on IRC."""
        for _ in range(50):
            self.send(f"WHOIS {nick}")
            p = await self.expect(lambda p: p[1] in ("311", "401"), f"WHOIS {nick}")
            # Every WHOIS ends with 318: read it, so that the next one
            # does not take it for its own end.
            await self.expect(lambda p: p[1] == "318", f"the end of WHOIS {nick}")
            if p[1] == "401":
                return
            await asyncio.sleep(0.2)
        fail(f"{nick} is still on IRC")


async def register_account(port, nick, password):
    irc = Irc(nick)
    await irc.start(port)
    irc.send(f"PRIVMSG NickServ :REGISTER {password} {nick}@test.invalid")
    await irc.expect(lambda p: p[0].startswith("NickServ!") and "registered" in p[-1], f"NickServ registering {nick}")
    irc.send("QUIT :registered")


class Alice(slixmpp.ClientXMPP):
    def __init__(self, cafile):
        super().__init__("alice@localhost/desk", "alice-pw")
        self.ca_certs = cafile
        self.online = asyncio.get_event_loop().create_future()
        self.from_server = asyncio.Queue()
        self.room_presence = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", lambda _: self.online.done() or self.online.set_exception(RuntimeError("auth failed")))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence", self.on_presence)

    async def on_start(self, _):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    def on_message(self, m):
        # The server's JID also relays the IRC server's and services'
        # notices (atheme announces its debug mode): only what the
        # transport says about signing on counts here.
        if m["from"].bare == SERVER_JID and ("SASL" in m["body"] or "NickServ" in m["body"]):
            self.from_server.put_nowait(m["body"])

    def on_presence(self, p):
        if p["from"].bare == ROOM:
            self.room_presence.put_nowait(p)

    async def register(self, fields):
        """Registers settings with the IRC server's JID (data form)."""
        iq = self.make_iq_set(ito=SERVER_JID)
        q = ET.Element(f"{{{REGISTER}}}query")
        x = ET.SubElement(q, f"{{{DATA}}}x", {"type": "submit"})
        for var, value in [("FORM_TYPE", REGISTER)] + fields:
            f = ET.SubElement(x, f"{{{DATA}}}field", {"var": var})
            ET.SubElement(f, f"{{{DATA}}}value").text = value
        iq.append(q)
        await iq.send(timeout=T)

    async def unregister(self):
        iq = self.make_iq_set(ito=SERVER_JID)
        iq.append(ET.fromstring(f"<query xmlns='{REGISTER}'><remove/></query>"))
        await iq.send(timeout=T)

    async def join(self, expected_nick):
        """Joins as 'alice'; the settings' nick must be the one shown."""
        while not self.room_presence.empty():
            self.room_presence.get_nowait()
        self.send_presence(pto=f"{ROOM}/alice")
        loop = asyncio.get_event_loop()
        deadline = loop.time() + T
        while True:
            try:
                p = await asyncio.wait_for(self.room_presence.get(), max(deadline - loop.time(), 0.01))
            except asyncio.TimeoutError:
                fail(f"alice got no self-presence from {ROOM}")
            if p["type"] == "error":
                fail(f"joining {ROOM}: {p['error']['condition']} {p['error']['text']}")
            codes = [s.get("code") for s in p.xml.iter(f"{{{MUC_USER}}}status")]
            if "110" in codes and p["type"] != "unavailable":
                if str(p["from"]) != f"{ROOM}/{expected_nick}":
                    fail(f"joined as {p['from']}, not as {expected_nick}")
                if "210" not in codes:
                    fail(f"no status 210 though the nick was changed to {expected_nick}")
                return

    async def leave(self, nick, watcher):
        self.send_presence(pto=f"{ROOM}/{nick}", ptype="unavailable")
        await watcher.gone(nick)


async def scenario():
    c2s, irc_port = int(os.environ["C2S_PORT"]), int(os.environ["IRC_PORT"])
    await register_account(irc_port, "saslacct", SASL_PW)
    await register_account(irc_port, "nsacct", NS_PW)
    watcher = Irc("watcher")
    await watcher.start(irc_port)
    await watcher.gone("saslacct")
    await watcher.gone("nsacct")

    alice = Alice(os.environ["CAFILE"])
    alice.connect(address=("127.0.0.1", c2s))
    await asyncio.wait_for(alice.online, T)

    # 1. SASL PLAIN with the right password.
    await alice.register([("nick", "saslnick"), ("sasl_account", "saslacct"), ("sasl_password", SASL_PW)])
    await alice.join("saslnick")
    account = await watcher.whois_account("saslnick")
    if account != "saslacct":
        fail(f"after SASL, WHOIS saslnick shows account {account!r}, not 'saslacct'")
    if not alice.from_server.empty():
        fail(f"unexpected message from {SERVER_JID}: {alice.from_server.get_nowait()}")
    print("irc_sasl: SASL PLAIN: saslnick is logged in as saslacct (WHOIS 330)", flush=True)
    await alice.leave("saslnick", watcher)

    # 2. A wrong SASL password: told, and signed on without an account.
    await alice.register([("nick", "saslnick"), ("sasl_account", "saslacct"), ("sasl_password", WRONG_PW)])
    await alice.join("saslnick")
    try:
        text = await asyncio.wait_for(alice.from_server.get(), T)
    except asyncio.TimeoutError:
        fail(f"no message from {SERVER_JID} about the failed SASL login")
    if "SASL" not in text or "failed" not in text:
        fail(f"the message about the failed SASL login says: {text}")
    account = await watcher.whois_account("saslnick")
    if account is not None:
        fail(f"with a wrong SASL password, WHOIS saslnick shows account {account!r}")
    print(f"irc_sasl: wrong SASL password: joined unauthenticated, told: {text}", flush=True)
    await alice.leave("saslnick", watcher)

    # 3. NickServ IDENTIFY, after removing the SASL settings.
    await alice.unregister()
    await alice.register([("nick", "nsacct"), ("nickserv_password", NS_PW)])
    await alice.join("nsacct")
    loop = asyncio.get_event_loop()
    deadline = loop.time() + T
    while True:
        account = await watcher.whois_account("nsacct")
        if account == "nsacct":
            break
        if loop.time() > deadline:
            fail(f"after NickServ IDENTIFY, WHOIS nsacct shows account {account!r}")
        await asyncio.sleep(0.3)
    print("irc_sasl: NickServ IDENTIFY: nsacct is logged in as nsacct (WHOIS 330)", flush=True)
    await alice.leave("nsacct", watcher)
    watcher.send("QUIT :done")
    alice.disconnect()
    await asyncio.sleep(0.3)


loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
try:
    loop.run_until_complete(asyncio.wait_for(scenario(), 80))
except asyncio.TimeoutError:
    fail("timed out")
except (OSError, RuntimeError, slixmpp.exceptions.IqError, slixmpp.exceptions.IqTimeout) as e:
    fail(f"{type(e).__name__}: {e}")
PYEOF
case $rc in
  0) ;;
  1) exit 1 ;; # the scenario printed its reason
  *) fail "the scenario ended with status $rc (124: killed after 90 s)" ;;
esac

# --- the logs ----------------------------------------------------------------
LOGS=("$WORK/switchboard.out" "$WORK/switchboard/logs/switchboard.log")
for pw in "$SASL_PW" "$NS_PW" "$WRONG_PW"; do
  if grep -qF -- "$pw" "${LOGS[@]}" 2>/dev/null; then
    fail "a password is in Switchboard's -D log"
  fi
done
for masked in 'AUTHENTICATE \*\*\*' 'PRIVMSG NickServ \*\*\*'; do
  grep -qE -- "$masked" "${LOGS[@]}" 2>/dev/null || fail "the -D log does not show the masked line $masked"
done
echo "irc_sasl: no password in Switchboard's -D log; AUTHENTICATE and NickServ lines masked"

echo "irc_sasl: versions: inspircd $INSPIRCD_VERSION, atheme-services $ATHEME_VERSION (Debian packages)"
OK=1
