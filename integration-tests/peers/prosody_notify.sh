#!/usr/bin/env bash
# `switchboard send` against Prosody (Debian's package): the notify tool is
# a client for any server, so check it with one we did not write.
#
# Starts Prosody in the foreground under a scratch directory (its own
# config, data directory and self-signed certificate; 127.0.0.1 only, a
# free non-default port, no root daemon, no server-to-server), creates two
# accounts with prosodyctl, then:
#
#   1. a python3-slixmpp client logs in as ops and waits; `switchboard send`
#      (pinned with --fingerprint) sends to it; the client must receive the
#      body, subject and type;
#   2. with ops offline, a second send must land in Prosody's offline
#      storage (checked in its data directory);
#   3. failure modes: no pin (74, fingerprint printed), wrong password (77),
#      unknown user (65 naming the recipient), --ca-file trust (0).
#
# Everything it starts is stopped on exit (trap), and every wait is bounded.
#
# Usage: prosody_notify.sh PATH/TO/switchboard
set -euo pipefail

BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
PY=python3
if ! $PY -c 'import slixmpp' 2>/dev/null && [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/prosody-notify.XXXXXX")
PROSODY_PID=
RECEIVER_PID=

stop() {
  # $1: pid. SIGTERM, up to 5 s, then SIGKILL; always reaped.
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  stop "$RECEIVER_PID"
  stop "$PROSODY_PID"
  if [ $rc -ne 0 ]; then
    echo "--- prosody log ---"
    cat "$WORK/prosody.log" 2>/dev/null || true
    cat "$WORK/prosody.err" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASSED=0
fail() { echo "prosody notify: FAILED: $*"; exit 1; }
ok() { PASSED=$((PASSED + 1)); echo "prosody notify: ok: $*"; }

PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
  -keyout "$WORK/localhost.key" -out "$WORK/localhost.crt" 2>/dev/null
FINGERPRINT=$(openssl x509 -in "$WORK/localhost.crt" -noout -fingerprint -sha256 | cut -d= -f2)
mkdir "$WORK/data"

cat >"$WORK/prosody.cfg.lua" <<EOF
-- Scratch Prosody for switchboard's notify test: loopback only.
data_path = "$WORK/data"
certificates = "$WORK"
-- CI runs as root; Prosody refuses that unless told.
run_as_root = true
interfaces = { "127.0.0.1" }
c2s_ports = { $PORT }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "offline" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
c2s_require_encryption = true
log = { info = "$WORK/prosody.log", error = "$WORK/prosody.err" }
VirtualHost "localhost"
  ssl = { certificate = "$WORK/localhost.crt", key = "$WORK/localhost.key" }
EOF

CTL=(prosodyctl --config "$WORK/prosody.cfg.lua")
"${CTL[@]}" register bot localhost bot-secret >/dev/null
"${CTL[@]}" register ops localhost ops-secret >/dev/null

prosody --config "$WORK/prosody.cfg.lua" -F >"$WORK/prosody.out" 2>&1 &
PROSODY_PID=$!
for _ in $(seq 100); do
  if grep -q "Activated service 'c2s' on \[127.0.0.1\]:$PORT" "$WORK/prosody.log" 2>/dev/null; then break; fi
  kill -0 "$PROSODY_PID" 2>/dev/null || fail "prosody exited: $(cat "$WORK/prosody.out")"
  sleep 0.2
done
grep -q "Activated service 'c2s'" "$WORK/prosody.log" || fail "prosody did not listen on $PORT within 20 s"
echo "prosody notify: Prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null || echo "(version unknown)") on 127.0.0.1:$PORT"

export SWITCHBOARD_SEND_JID=bot@localhost SWITCHBOARD_SEND_PASSWORD=bot-secret
send() {
  # Bounded by --timeout; `timeout` is only a backstop.
  timeout 60 "$BIN" send --server "127.0.0.1:$PORT" --timeout 20 "$@"
}

# 1. An online recipient (slixmpp) receives body, subject and type.
cat >"$WORK/receiver.py" <<'EOF'
import asyncio, sys
import slixmpp

port, cafile, want = int(sys.argv[1]), sys.argv[2], sys.argv[3]

class Receiver(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__("ops@localhost/desk", "ops-secret")
        self.ca_certs = cafile
        self.got = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        print("ready", flush=True)

    def message(self, msg):
        if msg["body"] == want and not self.got.done():
            self.got.set_result((msg["type"], msg["subject"], str(msg["from"])))

async def main():
    r = Receiver()
    r.connect(address=("127.0.0.1", port))
    try:
        kind, subject, sender = await asyncio.wait_for(r.got, 30)
    except asyncio.TimeoutError:
        print("no message", flush=True)
        sys.exit(1)
    print(f"got type={kind} subject={subject} from={sender}", flush=True)
    r.disconnect()
    await asyncio.sleep(0.2)

asyncio.run(main())
EOF
BODY1="CRITICAL: disk /var at 97% (token $$-$RANDOM)"
$PY "$WORK/receiver.py" "$PORT" "$WORK/localhost.crt" "$BODY1" >"$WORK/receiver.out" 2>"$WORK/receiver.err" &
RECEIVER_PID=$!
for _ in $(seq 100); do
  grep -q ready "$WORK/receiver.out" 2>/dev/null && break
  kill -0 "$RECEIVER_PID" 2>/dev/null || fail "the slixmpp receiver exited: $(cat "$WORK/receiver.out" "$WORK/receiver.err")"
  sleep 0.2
done
grep -q ready "$WORK/receiver.out" || fail "the slixmpp receiver did not log in within 20 s"
printf '%s\n' "$BODY1" | send --fingerprint "$FINGERPRINT" --type normal --subject "disk check" ops@localhost \
  || fail "send to an online recipient exited $?"
for _ in $(seq 150); do
  kill -0 "$RECEIVER_PID" 2>/dev/null || break
  sleep 0.2
done
kill -0 "$RECEIVER_PID" 2>/dev/null && fail "the receiver still waits 30 s after the send: $(cat "$WORK/receiver.out")"
if ! wait "$RECEIVER_PID"; then RECEIVER_PID=; fail "the receiver did not get the message: $(cat "$WORK/receiver.out" "$WORK/receiver.err")"; fi
RECEIVER_PID=
grep -q "got type=normal subject=disk check from=bot@localhost/" "$WORK/receiver.out" \
  || fail "unexpected message: $(cat "$WORK/receiver.out")"
ok "online recipient (slixmpp) received it: $(grep got "$WORK/receiver.out")"

# 2. An offline recipient: exit 0 means Prosody stored it.
BODY2="backup finished (token $$-$RANDOM)"
printf '%s\n' "$BODY2" | send --fingerprint "$FINGERPRINT" ops@localhost || fail "send to an offline recipient exited $?"
grep -rqF "$BODY2" "$WORK/data/localhost/offline/" 2>/dev/null \
  || fail "the message is not in Prosody's offline storage"
ok "offline recipient: stored by Prosody"

# 3. Failure modes and the --ca-file path.
set +e
OUT=$(echo hi | send ops@localhost 2>&1); RC=$?
set -e
[ $RC -eq 74 ] || fail "without a pin: exit $RC, want 74: $OUT"
grep -qF "$FINGERPRINT" <<<"$OUT" || fail "without a pin the fingerprint is not printed: $OUT"
ok "untrusted certificate: 74, fingerprint printed"

set +e
OUT=$(echo hi | SWITCHBOARD_SEND_PASSWORD=wrong send --fingerprint "$FINGERPRINT" ops@localhost 2>&1); RC=$?
set -e
[ $RC -eq 77 ] || fail "wrong password: exit $RC, want 77: $OUT"
ok "wrong password: 77"

set +e
OUT=$(echo hi | send --fingerprint "$FINGERPRINT" nobody@localhost ops@localhost 2>&1); RC=$?
set -e
[ $RC -eq 65 ] || fail "unknown user: exit $RC, want 65: $OUT"
grep -q "not delivered to nobody@localhost: service-unavailable" <<<"$OUT" || fail "unknown user not named: $OUT"
ok "unknown user: 65 ($(head -n1 <<<"$OUT"))"

echo hi | send --ca-file "$WORK/localhost.crt" ops@localhost || fail "--ca-file: exit $?"
ok "--ca-file trust: 0"

echo "prosody notify: $PASSED passed, 0 failed"
