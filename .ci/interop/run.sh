#!/usr/bin/env bash
# The XMPP Interop Testing suite (Smack's integration test framework and
# the tests it ships, from Maven Central) against the real switchboard
# binary, with a per-test-class report and a regression check.
#
# Starts Switchboard in a scratch home on 127.0.0.1:5222 (Smack's
# framework has no port setting) serving `localhost`, with group chat at
# conference.localhost and an admin account the framework creates its
# test accounts with (XEP-0133 add-user / delete-user). TLS is required
# and verified as a real client would: the server's generated self-signed
# certificate goes into a scratch trust store the JVM is given. (Smack
# 4.5.0-beta5's sinttest.serviceTlsPin is lost: the framework builds the
# pinned SSLContext and Smack then initializes it again with the default
# trust managers, so the pin never reaches the handshake.) Then it runs
# the framework's main class, bounded by INTEROP_LIMIT seconds, and
# hands its log to report.py, which writes:
#
#   OUT/sinttest.log    the framework's whole output
#   OUT/results.tsv     one line per test: class, method, result, detail
#   OUT/summary.txt     pass / fail / skip counts per test class, then
#                       every test that did not pass
#
# and fails (exit 1) when a test listed in expected-pass.txt did not
# pass. known-failures.txt lists, with the reason, every test that is not
# expected to pass yet; a test in neither list is reported as new.
#
# Usage: run.sh PATH/TO/switchboard [OUT]
#   OUT defaults to target/interop. INTEROP_TESTS=Class1,Class2 runs only
#   those classes (the regression check then covers only them);
#   INTEROP_DEBUG=1 starts the server with -D (every stanza in its log);
#   INTEROP_EXTRA_CLASSPATH adds test classes to the run (a local build of
#   the XMPP Interop Testing project's server extensions, say: see
#   README.md); their results are reported, and unlisted failures fail.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 PATH/TO/switchboard [OUT]" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
OUT=${2:-target/interop}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LIMIT=${INTEROP_LIMIT:-420} # seconds the framework may run
ADDR=127.0.0.1
PORT=5222

fail() {
  echo "interop: FAILED: $*"
  exit 1
}

command -v java >/dev/null || fail "java is not installed (Java 17 or later)"
command -v mvn >/dev/null || fail "mvn is not installed"
command -v openssl >/dev/null || fail "openssl is not installed"
command -v keytool >/dev/null || fail "keytool (the JDK's) is not installed"
PY=python3
command -v $PY >/dev/null || fail "python3 is not installed"

# --- the framework's class path (Maven downloads it once into ~/.m2) ---------
echo "interop: resolving the framework with Maven"
mvn -q -B -f "$HERE/pom.xml" dependency:build-classpath \
  -Dmdep.outputFile="$OUT/classpath.txt" >"$OUT/maven.log" 2>&1 \
  || { tail -n 30 "$OUT/maven.log"; fail "Maven could not resolve the framework"; }

# --- scratch server ---------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-interop.XXXXXX")
SERVER_PID=
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  cp "$WORK/home/logs/switchboard.log" "$OUT/switchboard.log" 2>/dev/null || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if (exec 3<>"/dev/tcp/$ADDR/$PORT") 2>/dev/null; then
  fail "something already listens on $ADDR:$PORT; the framework can only use port 5222"
fi

HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR/etc"
ADMIN_PASSWORD=$(openssl rand -hex 16)
cat >"$HOME_DIR/etc/switchboard.xml" <<EOF
<switchboard>
  <host name="localhost">
    <admin>admin@localhost</admin>
    <registration>open</registration>
  </host>
  <!-- The framework creates and destroys rooms by the hundred and sends
       as fast as it can: no per-user room or rate limit gets in its way. -->
  <service id="conference.localhost" type="muc" create="anyone"
           max-rooms-per-user="10000" message-rate="off"/>
  <listen><c2s addr="$ADDR:$PORT"/></listen>
  <log file="logs/switchboard.log" level="info"/>
</switchboard>
EOF
printf '%s\n' "$ADMIN_PASSWORD" | "$BIN" -H "$HOME_DIR" user add admin@localhost >/dev/null \
  || fail "could not create the admin account"

"$BIN" -H "$HOME_DIR" ${INTEROP_DEBUG:+-D} >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do
  grep -q '^ready$' "$WORK/server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err"; fail "the server exited at start-up"; }
  sleep 0.1
done
grep -q '^ready$' "$WORK/server.out" || fail "the server did not say ready within 10 s"
CERT=$HOME_DIR/etc/localhost.crt
[ -f "$CERT" ] || fail "no generated certificate at $CERT"
TRUST=$WORK/trust.p12
keytool -importcert -noprompt -alias switchboard -file "$CERT" -keystore "$TRUST" \
  -storetype PKCS12 -storepass interop >/dev/null 2>&1 || fail "keytool could not make a trust store"

# --- the framework ----------------------------------------------------------
PROPS=(
  -Dsinttest.service=localhost
  -Dsinttest.host=$ADDR
  -Dsinttest.securityMode=required
  -Dsinttest.adminAccountUsername=admin
  -Dsinttest.adminAccountPassword=$ADMIN_PASSWORD
  -Dsinttest.replyTimeout=${INTEROP_REPLY_TIMEOUT:-5000}
  -Dsinttest.enabledConnections=tcp
  -Dsinttest.dnsResolver=javax
)
if [ -n "${INTEROP_TESTS:-}" ]; then
  PROPS+=("-Dsinttest.enabledTests=$INTEROP_TESTS")
fi
echo "interop: running the framework against switchboard (at most ${LIMIT}s)"
START=$(date +%s)
set +e
CLASSPATH_ALL=$(cat "$OUT/classpath.txt")${INTEROP_EXTRA_CLASSPATH:+:$INTEROP_EXTRA_CLASSPATH}
timeout -k 10 "$LIMIT" java -Djavax.net.ssl.trustStore="$TRUST" \
  -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=interop -cp "$CLASSPATH_ALL" "${PROPS[@]}" \
  org.igniterealtime.smack.inttest.SmackIntegrationTestFramework >"$OUT/sinttest.log" 2>&1
RC=$?
set -e
echo "interop: the framework exited with $RC after $(( $(date +%s) - START ))s"
[ $RC -eq 124 ] && echo "interop: it ran out of time; the tests that did not finish count as not passed"

$PY "$HERE/report.py" --log "$OUT/sinttest.log" --out "$OUT" \
  --expected "$HERE/expected-pass.txt" --known "$HERE/known-failures.txt" \
  ${INTEROP_TESTS:+--only "$INTEROP_TESTS"}
