#!/usr/bin/env bash
# bench/soak.sh: a long soak of the Switchboard server.
#
#   bench/soak.sh [MINUTES]        (default 60)
#
# Builds the server and the load tools in release mode, makes a scratch
# home under a temporary directory with CLIENTS accounts whose rosters
# hold each other (subscription both), starts the server, and runs
# `switchboard-load soak`: CLIENTS clients logging in and out, fetching
# their rosters, chatting (to online and offline users) and changing
# presence for MINUTES minutes. The server's resident memory and open file
# descriptors are read from /proc before the first login and once a
# minute (one line each), and again after every client has left and the
# server has had SETTLE seconds: the last line is the verdict, `flat` when
# the descriptors are back exactly where they started, the resident memory
# did not grow under the steady load (the last third of the readings
# against the first) and ended within RSS_SLACK_MIB of its start.
# Everything talks over loopback; the server is stopped at exit, and the
# scratch directory removed (KEEP=1 keeps it, with the server's log).
#
# Settings, from the environment (defaults in brackets):
#   CLIENTS [200]       clients churning at once (and accounts)
#   CONTACTS [20]       roster contacts per account
#   SETTLE [150]        seconds after the last client left, before the verdict
#                       (the server trims its heap within two minutes of a
#                       crowd leaving)
#   RSS_SLACK_MIB [8]   how far above its start the resident memory may end
#   STAY_MIN [20], STAY_MAX [180]  seconds a session lasts (at random between)
#   PAUSE [20]          longest pause between a client's sessions, seconds
#   THINK [5]           mean seconds between a client's messages and presences
#   SERVER_ENV []       extra environment for the server, e.g.
#                       "MALLOC_ARENA_MAX=2" (see bench/README.md, "Soak")
#   SERVER_WRAP []      a command the server runs under, e.g.
#                       "heaptrack -o /tmp/sb" (its pid is then the wrapper's
#                       child, found by name)
#   SKIP_BUILD=1        use the binaries already built
#   KEEP=1              keep the scratch directory
#   CARGO_TARGET_DIR    where cargo builds (default: the workspace's target/)
#
# Exit status: 0 when the run was clean and the verdict is flat.
set -euo pipefail

MINUTES=${1:-60}
CLIENTS=${CLIENTS:-200}
CONTACTS=${CONTACTS:-20}
SETTLE=${SETTLE:-150}
RSS_SLACK_MIB=${RSS_SLACK_MIB:-8}
STAY_MIN=${STAY_MIN:-20}
STAY_MAX=${STAY_MAX:-180}
PAUSE=${PAUSE:-20}
THINK=${THINK:-5}
read -r -a server_env <<<"${SERVER_ENV:-}"
read -r -a server_wrap <<<"${SERVER_WRAP:-}"

[[ $MINUTES =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/soak.sh [MINUTES]" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${CARGO_TARGET_DIR:-$root/target}/release

log() { printf 'soak.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ ${SKIP_BUILD:-} != 1 ]]; then
    log "building (release): switchboard, switchboard-bench"
    timeout 3600 cargo build --release -j2 -p switchboard -p switchboard-bench >&2 ||
        die "the build failed or took more than an hour"
fi
for b in switchboard switchboard-mkusers switchboard-load; do
    [[ -x $bin/$b ]] || die "$bin/$b is missing (build first, or unset SKIP_BUILD)"
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-soak.XXXXXX")
home=$work/home
config=$home/etc/soak.xml
server_job=
server_pid=

stop_server() {
    if [[ -n $server_job ]] && kill -0 "$server_job" 2>/dev/null; then
        kill -TERM "${server_pid:-$server_job}" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$server_job" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_job" 2>/dev/null || true
    fi
    [[ -n $server_job ]] && wait "$server_job" 2>/dev/null || true
    server_job=
}
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    stop_server
    if [[ ${KEEP:-} == 1 ]]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$home/etc"
cat >"$config" <<'XML'
<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <log file="logs/switchboard.log" level="warn"/>
</switchboard>
XML
"$bin/switchboard" -H "$home" -c "$config" check-config >&2
# Every account's roster holds CONTACTS of the others (the first half and
# the second half are each other's contacts), so presence goes somewhere.
log "creating $CLIENTS accounts (user0..user$((CLIENTS - 1)), $CONTACTS contacts each)"
timeout 600 "$bin/switchboard-mkusers" -H "$home" -c "$config" --users "$CLIENTS" --password pw \
    --roster-contacts "$CONTACTS" --roster-online $((CLIENTS / 2)) >&2 ||
    die "creating the accounts failed"

out=$work/switchboard.out
env "${server_env[@]}" "${server_wrap[@]}" "$bin/switchboard" -H "$home" -c "$config" run \
    >"$out" 2>"$work/switchboard.err" &
server_job=$!
for _ in $(seq 1 600); do
    grep -qx ready "$out" 2>/dev/null && break
    kill -0 "$server_job" 2>/dev/null || { cat "$work/switchboard.err" >&2; die "the server exited at start-up"; }
    sleep 0.1
done
grep -qx ready "$out" || die "the server did not print 'ready' within 60 s"
addr=$(awk '$1 == "listening" && $2 == "c2s" { print $3; exit }' "$out")
[[ -n $addr ]] || die "no 'listening c2s ADDR' line from the server"
# Under a wrapper the server is the wrapper's descendant.
server_pid=$server_job
if ((${#server_wrap[@]} > 0)); then
    server_pid=$(pgrep -n -x switchboard) || die "cannot find the server's process under ${server_wrap[*]}"
fi
log "server pid $server_pid at $addr; soaking for $MINUTES minutes with $CLIENTS clients"

status=0
timeout $((MINUTES * 60 + SETTLE + 600)) "$bin/switchboard-load" soak \
    --addr "$addr" --ca "$home/etc/localhost.crt" --server-pid "$server_pid" \
    --users "$CLIENTS" --clients "$CLIENTS" --minutes "$MINUTES" --settle "$SETTLE" \
    --stay-min "$STAY_MIN" --stay-max "$STAY_MAX" --pause "$PAUSE" --think "$THINK" \
    --rss-slack-mib "$RSS_SLACK_MIB" || status=$?
if [[ -s $home/logs/switchboard.log ]]; then
    log "server log (warnings and errors), last lines:"
    tail -n 20 "$home/logs/switchboard.log" >&2
fi
exit "$status"
