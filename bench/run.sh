#!/usr/bin/env bash
# bench/run.sh: Switchboard's benchmark driver.
#
# Builds the server and the load tools in release mode, makes a scratch
# home under a temporary directory, creates the test accounts, then for
# each scenario starts a fresh server pinned to one core, runs the load
# generator pinned to another, prints its summary line and stops the server.
# Everything talks over loopback; every step is bounded in time; the scratch
# directory is removed at the end (KEEP=1 keeps it).
#
# Scenarios (see bench/README.md for what the figures mean):
#   idle      SESSIONS authenticated TLS sessions held idle: server RSS per session
#   logins    full logins (STARTTLS + SCRAM-SHA-256 + bind) for DURATION seconds
#   messages  MSG_USERS online users chatting for MSG_DURATION seconds:
#             messages delivered per second, server CPU per message, latency
#   fanout    FANOUT_LOGINS users with FANOUT_CONTACTS-contact rosters logging
#             in (and out) while FANOUT_ONLINE contacts are online: logins and
#             presences per second, server CPU per login
#
# Settings, from the environment (defaults in brackets):
#   SESSIONS [10000]  idle sessions; USERS [SESSIONS] accounts they log in as
#   LOGIN_USERS [200] accounts the logins scenario cycles through
#   DURATION [20]     seconds the logins scenario measures (after WARMUP [3])
#   HOLD [15]         seconds the idle sessions are held while RSS is sampled
#   IDLE_CONCURRENCY [64], LOGIN_CONCURRENCY [32]  logins in flight
#   MSG_USERS [1000]  users online in the messages scenario
#   MSG_RATE [0]      target messages/s, comma-separated for a rising-rate
#                     run (one step of MSG_DURATION each); 0 = maximum
#   MSG_DURATION [DURATION], MSG_WINDOW [4] (messages in flight per sender)
#   FANOUT_ONLINE [1000], FANOUT_LOGINS [1000], FANOUT_CONTACTS [100]
#   FANOUT_CONCURRENCY [32]  logins in flight in the fanout scenario
#   FANOUT_SETTLE [0]  seconds between the online logins and the measured ones
#   SERVER_CPU [0], LOAD_CPU [1]  cores to pin the server and the load tool to
#   SCENARIOS ["idle logins messages fanout"]  which scenarios to run, in order
#   BUDGET [570]      seconds everything after the build may take; a scenario
#                     that would not fit is cut short and reported as failed
#   SKIP_BUILD=1      use the binaries already built
#   KEEP=1            keep the scratch directory (logs, spool) for inspection
#   CARGO_TARGET_DIR  where cargo builds (default: the workspace's target/)
#
# Output: machine description, then one summary line per scenario on
# stdout, also collected in $RESULTS when set. Exit status 0 when every
# scenario ran clean.

set -euo pipefail

SESSIONS=${SESSIONS:-10000}
USERS=${USERS:-$SESSIONS}
LOGIN_USERS=${LOGIN_USERS:-200}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
HOLD=${HOLD:-15}
IDLE_CONCURRENCY=${IDLE_CONCURRENCY:-64}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MSG_USERS=${MSG_USERS:-1000}
MSG_RATE=${MSG_RATE:-0}
MSG_DURATION=${MSG_DURATION:-$DURATION}
MSG_WINDOW=${MSG_WINDOW:-4}
FANOUT_ONLINE=${FANOUT_ONLINE:-1000}
FANOUT_LOGINS=${FANOUT_LOGINS:-1000}
FANOUT_CONTACTS=${FANOUT_CONTACTS:-100}
FANOUT_CONCURRENCY=${FANOUT_CONCURRENCY:-32}
FANOUT_SETTLE=${FANOUT_SETTLE:-0}
SCENARIOS=${SCENARIOS:-idle logins messages fanout}
BUDGET=${BUDGET:-570}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=$target_dir/release

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- build -----------------------------------------------------------------
if [[ ${SKIP_BUILD:-} != 1 ]]; then
    log "building (release): switchboard, switchboard-bench"
    timeout 1800 cargo build --release -p switchboard -p switchboard-bench >&2 ||
        die "the build failed or took more than 30 minutes"
fi
for b in switchboard switchboard-load switchboard-mkusers; do
    [[ -x $bin/$b ]] || die "$bin/$b is missing (build first, or unset SKIP_BUILD)"
done

# Everything from here on shares one time budget.
budget_end=$((SECONDS + BUDGET))
# The time limit for a step: its own limit, cut to what is left of the budget.
limit_for() {
    local left=$((budget_end - SECONDS - 15))
    ((left < 10)) && left=10
    ((left < $1)) && echo "$left" || echo "$1"
}
wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# --- limits and pinning ----------------------------------------------------
# Each process holds one socket per session, plus a few.
most=$SESSIONS
((MSG_USERS > most)) && most=$MSG_USERS
((FANOUT_ONLINE + FANOUT_LOGINS > most)) && most=$((FANOUT_ONLINE + FANOUT_LOGINS))
need_fds=$((most + 500))
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fds=$(ulimit -n)
if [[ $fds != unlimited && $fds -lt $need_fds ]]; then
    die "open-file limit is $fds; $most sessions need $need_fds (raise the hard limit, or lower SESSIONS)"
fi

pin_server=()
pin_load=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    pin_server=(taskset -c "$SERVER_CPU")
    pin_load=(taskset -c "$LOAD_CPU")
else
    log "warning: not pinning (taskset missing or fewer than 2 cores): figures are not one-core figures"
fi

# --- scratch home ----------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")
home=$work/home
config=$home/etc/bench.xml
server_pid=

stop_server() {
    [[ -n $server_pid ]] || return 0
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            log "warning: the server did not stop on SIGTERM within 10 s; killing it"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=
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
cat >"$config" <<'EOF'
<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <limits scram-iterations="4096" preauth-timeout="300s" keepalive="300s"/>
  <log file="logs/switchboard.log" level="warn"/>
</switchboard>
EOF
"$bin/switchboard" -H "$home" -c "$config" check-config >&2

accounts=$USERS
((LOGIN_USERS > accounts)) && accounts=$LOGIN_USERS
((MSG_USERS > accounts)) && accounts=$MSG_USERS
log "creating $accounts accounts (user0..user$((accounts - 1)), password pw)"
timeout "$(limit_for 600)" "$bin/switchboard-mkusers" -H "$home" -c "$config" --users "$accounts" --password pw >&2 ||
    die "creating the accounts failed or ran out of time"
fan_accounts=$((FANOUT_ONLINE + FANOUT_LOGINS))
if wants fanout; then
    log "creating $fan_accounts accounts with rosters (fan0..fan$((fan_accounts - 1)), $FANOUT_CONTACTS contacts, all 'both')"
    timeout "$(limit_for 600)" "$bin/switchboard-mkusers" -H "$home" -c "$config" --prefix fan --users "$fan_accounts" \
        --password pw --roster-contacts "$FANOUT_CONTACTS" --roster-online "$FANOUT_ONLINE" >&2 ||
        die "creating the fanout accounts failed or ran out of time"
fi

# Starts a fresh server; sets server_pid and addr.
addr=
start_server() {
    local out=$work/server.$1.out
    "${pin_server[@]}" "$bin/switchboard" -H "$home" -c "$config" run >"$out" 2>"$work/server.$1.err" &
    server_pid=$!
    for _ in $(seq 1 300); do
        grep -qx ready "$out" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.$1.err" >&2; die "the server exited at start-up"; }
        sleep 0.1
    done
    grep -qx ready "$out" || die "the server did not print 'ready' within 30 s"
    addr=$(awk '$1 == "listening" && $2 == "c2s" { print $3; exit }' "$out")
    [[ -n $addr ]] || die "no 'listening c2s ADDR' line from the server"
    # Let start-up allocations settle before the baseline is read.
    sleep 1
}

# --- machine ---------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem_total=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
echo "machine cores=$(nproc) cpu=\"${cpu_model:-unknown}\" memory=\"$mem_total\" kernel=$(uname -r) rustc=\"$(rustc --version 2>/dev/null | cut -d' ' -f2)\" server_cpu=${pin_server[*]:+$SERVER_CPU} load_cpu=${pin_load[*]:+$LOAD_CPU}"

common=(--ca "$home/etc/localhost.crt" --password pw)
status=0
for scenario in $SCENARIOS; do
    start_server "$scenario"
    log "scenario $scenario: server pid $server_pid on $addr"
    case $scenario in
    idle)
        cmd=(idle --sessions "$SESSIONS" --users "$USERS" --concurrency "$IDLE_CONCURRENCY" --hold "$HOLD" --ramp-timeout 300)
        limit=$((300 + HOLD + 120))
        ;;
    logins)
        cmd=(logins --duration "$DURATION" --warmup "$WARMUP" --users "$LOGIN_USERS" --concurrency "$LOGIN_CONCURRENCY")
        limit=$((DURATION + WARMUP + 120))
        ;;
    messages)
        cmd=(messages --users "$MSG_USERS" --rate "$MSG_RATE" --duration "$MSG_DURATION" --warmup "$WARMUP"
            --window "$MSG_WINDOW")
        steps=$(($(tr -cd , <<<"$MSG_RATE" | wc -c) + 1))
        limit=$((steps * (MSG_DURATION + WARMUP) + 150))
        ;;
    fanout)
        cmd=(fanout --user-prefix fan --users "$fan_accounts" --online "$FANOUT_ONLINE" --logins "$FANOUT_LOGINS"
            --contacts "$FANOUT_CONTACTS" --concurrency "$FANOUT_CONCURRENCY" --settle "$FANOUT_SETTLE"
            --phase-timeout 60)
        limit=$((FANOUT_SETTLE + 300))
        ;;
    *) die "unknown scenario '$scenario' (idle, logins, messages, fanout)" ;;
    esac
    limit=$(limit_for "$limit")
    line=$(timeout "$limit" "${pin_load[@]}" "$bin/switchboard-load" "${cmd[@]}" "${common[@]}" \
        --addr "$addr" --server-pid "$server_pid") || {
        log "scenario $scenario failed (exit status $?; 124: it ran out of time, limit ${limit}s)"
        status=1
    }
    echo "$line"
    [[ -n ${RESULTS:-} ]] && echo "$line" >>"$RESULTS"
    if [[ -s $home/logs/switchboard.log ]]; then
        log "server warnings during $scenario (last 5):"
        tail -n 5 "$home/logs/switchboard.log" >&2
        : >"$home/logs/switchboard.log"
    fi
    stop_server
done
exit "$status"
