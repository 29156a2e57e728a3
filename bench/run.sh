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
#   idle    SESSIONS authenticated TLS sessions held idle: server RSS per session
#   logins  full logins (STARTTLS + SCRAM-SHA-256 + bind) for DURATION seconds
#
# Settings, from the environment (defaults in brackets):
#   SESSIONS [10000]  idle sessions; USERS [SESSIONS] accounts they log in as
#   LOGIN_USERS [200] accounts the logins scenario cycles through
#   DURATION [20]     seconds the logins scenario measures (after WARMUP [3])
#   HOLD [15]         seconds the idle sessions are held while RSS is sampled
#   IDLE_CONCURRENCY [64], LOGIN_CONCURRENCY [32]  logins in flight
#   SERVER_CPU [0], LOAD_CPU [1]  cores to pin the server and the load tool to
#   SCENARIOS ["idle logins"]  which scenarios to run, in order
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
SCENARIOS=${SCENARIOS:-idle logins}

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

# --- limits and pinning ----------------------------------------------------
# Each process holds one socket per session, plus a few.
need_fds=$((SESSIONS + 500))
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fds=$(ulimit -n)
if [[ $fds != unlimited && $fds -lt $need_fds ]]; then
    die "open-file limit is $fds; $SESSIONS sessions need $need_fds (raise the hard limit, or lower SESSIONS)"
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
log "creating $accounts accounts (user0..user$((accounts - 1)), password pw)"
timeout 600 "$bin/switchboard-mkusers" -H "$home" -c "$config" --users "$accounts" --password pw >&2 ||
    die "creating the accounts failed or took more than 10 minutes"

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
    *) die "unknown scenario '$scenario' (idle, logins)" ;;
    esac
    line=$(timeout "$limit" "${pin_load[@]}" "$bin/switchboard-load" "${cmd[@]}" "${common[@]}" \
        --addr "$addr" --server-pid "$server_pid") || {
        log "scenario $scenario failed (exit status $?)"
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
