#!/usr/bin/env bash
# bench/irc.sh: the IRC transport under load (issue: messages relayed per
# second both ways through one transport, and memory per bridged user with
# 1,000 users each in 5 channels).
#
# Builds in release mode (unless SKIP_BUILD=1), starts ngircd (Debian's
# package; installed by the caller) and Switchboard with its IRC transport
# in-process at irc.localhost, each on 127.0.0.1 in a scratch directory, and
# runs `switchboard-load irc`: USERS users log in, each joins 5 channels
# (groups of GROUP users share theirs), send MESSAGES groupchat messages
# each to IRC, then an IRC client sends IRC_LINES lines to every channel.
# Switchboard is pinned to SERVER_CPU; ngircd and the load tool share
# LOAD_CPU. One summary line on stdout; see bench/README.md.
#
# Settings, from the environment (defaults in brackets):
#   USERS [1000], GROUP [25], MESSAGES [5], IRC_LINES [5]
#   FLOOD_INTERVAL [0]  the transport's flood-interval for the server
#   SERVER_CPU [0], LOAD_CPU [1], SKIP_BUILD=1, KEEP=1 (keep the scratch dir)
#   CARGO_TARGET_DIR (default: the workspace's target/)

set -euo pipefail

USERS=${USERS:-1000}
GROUP=${GROUP:-25}
MESSAGES=${MESSAGES:-5}
IRC_LINES=${IRC_LINES:-5}
# ngircd here takes any rate (MaxPenaltyTime = 0): the transport's own
# flood control (2s per line after a burst of 5 by default) would measure
# itself, not the relaying. FLOOD_INTERVAL=2s measures it with the default.
FLOOD_INTERVAL=${FLOOD_INTERVAL:-0}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${CARGO_TARGET_DIR:-$root/target}/release

log() { printf 'irc.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

ngircd=$(command -v ngircd || echo /usr/sbin/ngircd)
[[ -x $ngircd ]] || die "ngircd is not installed (apt-get install ngircd)"

if [[ ${SKIP_BUILD:-} != 1 ]]; then
    log "building (release): switchboard, switchboard-bench"
    timeout 1800 cargo build --release -p switchboard -p switchboard-bench >&2 ||
        die "the build failed or took more than 30 minutes"
fi
for b in switchboard switchboard-load switchboard-mkusers; do
    [[ -x $bin/$b ]] || die "$bin/$b is missing (build first, or unset SKIP_BUILD)"
done

# Each user holds an XMPP session and an IRC connection, on both sides of
# loopback.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$((USERS * 2 + 500))
fds=$(ulimit -n)
[[ $fds == unlimited || $fds -ge $need ]] || die "open-file limit is $fds; $USERS users need $need"

pin_server=()
pin_load=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    pin_server=(taskset -c "$SERVER_CPU")
    pin_load=(taskset -c "$LOAD_CPU")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-irc-bench.XXXXXX")
home=$work/home
server_pid=
ircd_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    for p in $server_pid $ircd_pid; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in $server_pid $ircd_pid; do
        timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
    done
    if [[ ${KEEP:-} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
irc_port=$(free_port)

# ngircd: no per-address connection limit (every user comes from
# 127.0.0.1), no limit on channels per client (the observer is in all of
# them), no flood penalties (the load tool's observer would be throttled).
cat >"$work/ngircd.conf" <<EOF
[Global]
Name = irc.bench.invalid
Info = Switchboard IRC benchmark
AdminInfo1 = bench
AdminInfo2 = bench
AdminEMail = bench@bench.invalid
Listen = 127.0.0.1
Ports = $irc_port
MotdPhrase = bench
[Limits]
MaxConnectionsIP = 0
MaxJoins = 0
MaxPenaltyTime = 0
PingTimeout = 600
[Options]
PAM = no
Ident = no
DNS = no
EOF
"${pin_load[@]}" "$ngircd" -n -f "$work/ngircd.conf" >"$work/ngircd.log" 2>&1 &
ircd_pid=$!

mkdir -p "$home/etc"
config=$home/etc/bench.xml
cat >"$config" <<EOF
<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <limits scram-iterations="4096" preauth-timeout="300s" keepalive="300s"/>
  <log file="logs/switchboard.log" level="warn"/>
  <service id="irc.localhost" type="irc">
    <server host="127.0.0.1" port="$irc_port" tls="false" allow-plain="true" flood-interval="$FLOOD_INTERVAL"/>
  </service>
</switchboard>
EOF
"$bin/switchboard" -H "$home" -c "$config" check-config >&2
log "creating $USERS accounts"
timeout 600 "$bin/switchboard-mkusers" -H "$home" -c "$config" --users "$USERS" --password pw >&2 ||
    die "creating the accounts failed"

"${pin_server[@]}" "$bin/switchboard" -H "$home" -c "$config" run >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 300); do
    grep -qx ready "$work/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; die "the server exited at start-up"; }
    sleep 0.1
done
grep -qx ready "$work/server.out" || die "the server did not print 'ready' within 30 s"
addr=$(awk '$1 == "listening" && $2 == "c2s" { print $3; exit }' "$work/server.out")
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$irc_port") 2>/dev/null && break
    sleep 0.1
done
sleep 1

echo "machine cores=$(nproc) kernel=$(uname -r) ngircd=\"$("$ngircd" --version 2>/dev/null | head -n1 | cut -d" " -f1-2)\""
rc=0
timeout 900 "${pin_load[@]}" "$bin/switchboard-load" irc --addr "$addr" --ca "$home/etc/localhost.crt" \
    --server-pid "$server_pid" --users "$USERS" --irc-port "$irc_port" --group-size "$GROUP" \
    --messages "$MESSAGES" --irc-lines "$IRC_LINES" || rc=$?
exit "$rc"
