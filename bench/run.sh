#!/usr/bin/env bash
# bench/run.sh: Switchboard's benchmark driver.
#
# Builds the server and the load tools in release mode, makes a scratch
# home under a temporary directory, then for each target server (Switchboard,
# and Prosody and ejabberd from the distribution's packages, each with its
# own config and data under the scratch directory) creates the test
# accounts and, for each scenario, starts a fresh server pinned to one core,
# runs the load generator pinned to another, prints its summary line and
# stops the server. Everything talks over loopback; every step is bounded in
# time; every server started is stopped at exit; the scratch directory is
# removed at the end (KEEP=1 keeps it).
#
# Targets (TARGETS, space-separated; TARGET is accepted for one):
#   switchboard  this workspace's server, release build
#   prosody      `prosody` (Lua, one process): internal storage written
#                directly by bench/foreign_users.py, SCRAM-SHA-256 with
#                4,096 iterations (password_hash, default_iteration_count)
#   ejabberd     `ejabberd` (the whole BEAM process), mnesia, accounts loaded
#                with one `ejabberdctl import_piefxis` (XEP-0227), SCRAM-SHA-256
#                (auth_scram_hash; ejabberd's iteration count is 4,096)
# Prosody and ejabberd must be installed (their packages' own daemons are
# not used: install with a policy-rc.d that exits 101, or stop them).
# Prosody and ejabberd get a self-signed P-256 certificate for localhost
# made with openssl (Switchboard makes its own, also P-256); the load
# generator pins whichever certificate the target presents. Every line
# printed starts with target=NAME, so that the lines of one run can be put
# side by side.
# LOAD=tsung runs tsung's scenarios (bench/tsung/*.xml) instead of
# switchboard-load's; see bench/README.md.
#
# Scenarios (see bench/README.md for what the figures mean):
#   idle      SESSIONS authenticated TLS sessions held idle: server RSS per session
#   logins    full logins (STARTTLS + SCRAM-SHA-256 + bind) for DURATION seconds
#   messages  MSG_USERS online users chatting for MSG_DURATION seconds:
#             messages delivered per second, server CPU per message, latency
#   fanout    FANOUT_LOGINS users with FANOUT_CONTACTS-contact rosters logging
#             in (and out) while FANOUT_ONLINE contacts are online: logins and
#             presences per second, server CPU per login
#   s2s       the messages scenario across federation (not in the default
#             list; target switchboard only): S2S_USERS users on server A
#             (this Switchboard, localhost, its accounts) send to S2S_USERS
#             users on server B (b.test: a second Switchboard with a home of
#             its own, or Prosody; one run per S2S_PEERS) over the servers'
#             one server-to-server link; both servers pinned to SERVER_CPU,
#             certificates from a CA made with openssl, A finding B through
#             <connect>. Messages per second, both servers' CPU per message
#             and each one's
#   muc       group chat fan-out (not in the default list): one room of each
#             size in MUC_ROOMS, MUC_SENDERS of its occupants sending, with
#             and without archiving (MUC_ARCHIVE): messages and delivered
#             copies per second, server CPU per delivered copy, latency, and
#             the join latency into the full room (MUC_JOINS joins)
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
#   S2S_USERS [MSG_USERS / 2]  senders on A, and as many receivers on B
#   S2S_PEERS ["switchboard"]  server B of the s2s runs: switchboard, prosody
#   S2S_RATE [off]    B's <s2s stanza-rate> (off: the link's own throughput;
#                     the server's default, 500/1s, caps it by design)
#   MUC_ROOMS ["10 100 1000"]  room sizes, one fresh server each
#   MUC_ARCHIVE ["0 1"]  rooms without and with the archive (XEP-0313)
#   MUC_SENDERS [10], MUC_WINDOW [2] (messages in flight per sender),
#   MUC_DURATION [15], MUC_JOINS [20] (joins measured into the full room)
#   SERVER_CPU [0], LOAD_CPU [1]  cores to pin the server and the load tool to
#   SCENARIOS ["idle logins messages fanout"]  which scenarios to run, in order
#                     (a scenario that would not fit is cut short and
#                     reported as failed)
#   TARGETS ["switchboard"]  which servers, in order, e.g. "switchboard prosody ejabberd"
#   BUDGET [570 per target]  seconds everything after the build may take
#   LOAD [switchboard-load]  or tsung: the load tool
#   TSUNG_RATE [200]  tsung: new users per second; TSUNG_MSGS [10 x MSG_DURATION]
#                     messages per user; TSUNG_THINK [0.1] seconds between them
#   NO_TLS=1          log in over plain TCP (every server allows it, the load
#                     generator skips STARTTLS): memory per session without TLS
#   ARCHIVE [unset]   Switchboard's per-user archive default: always, roster
#                     or never (unset: the server's own default, always).
#                     `never` measures routing without XEP-0313 storage, as
#                     Prosody and ejabberd run here (neither loads its
#                     archive module outside the muc scenario)
#   WS=1              Switchboard only: run the idle, logins and messages
#                     scenarios twice, over TCP and then over XMPP over
#                     WebSocket (RFC 7395, wss:// on an HTTPS listener, TLS
#                     like the TCP clients' STARTTLS), each on a fresh
#                     server; every line says transport=tcp or
#                     transport=websocket, so the two can be compared
#                     within one run
#   SKIP_BUILD=1      use the binaries already built
#   KEEP=1            keep the scratch directory (logs, spool) for inspection
#   CARGO_TARGET_DIR  where cargo builds (default: the workspace's target/)
#
# Output: machine description, then one summary line per scenario on
# stdout, also collected in $RESULTS when set. Exit status 0 when every
# scenario ran clean.

# The setup_, start_ and server_log_ functions are called by name (setup_$target).
# shellcheck disable=SC2317
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
S2S_USERS=${S2S_USERS:-$((MSG_USERS / 2))}
S2S_RATE=${S2S_RATE:-off}
S2S_PEERS=${S2S_PEERS:-switchboard}
FANOUT_ONLINE=${FANOUT_ONLINE:-1000}
FANOUT_LOGINS=${FANOUT_LOGINS:-1000}
FANOUT_CONTACTS=${FANOUT_CONTACTS:-100}
FANOUT_CONCURRENCY=${FANOUT_CONCURRENCY:-32}
FANOUT_SETTLE=${FANOUT_SETTLE:-0}
SCENARIOS=${SCENARIOS:-idle logins messages fanout}
MUC_ROOMS=${MUC_ROOMS:-10 100 1000}
MUC_ARCHIVE=${MUC_ARCHIVE:-0 1}
MUC_SENDERS=${MUC_SENDERS:-10}
MUC_WINDOW=${MUC_WINDOW:-2}
MUC_DURATION=${MUC_DURATION:-15}
MUC_JOINS=${MUC_JOINS:-20}
muc_archive=0 # the archive setting of the server being started
TARGETS=${TARGETS:-${TARGET:-switchboard}}
read -r -a target_list <<<"$TARGETS"
BUDGET=${BUDGET:-$((570 * ${#target_list[@]}))}

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
((2 * S2S_USERS > most)) && most=$((2 * S2S_USERS))
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

# --- scratch directory -----------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")
home=$work/home
config=$home/etc/bench.xml
server_pid=  # the process whose CPU time and memory are sampled
server_job=  # the process started (its parent, or itself), reaped on stop
peer_pid=    # the s2s scenario's second server (b.test), if running

# Stops the running server: SIGTERM, up to 20 s (ejabberd stops its
# applications one by one), then SIGKILL; always reaped.
stop_server() {
    local p
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            log "warning: the server did not stop on SIGTERM within 20 s; killing it"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
    fi
    for p in $server_job; do
        for _ in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    server_pid=
    server_job=
    if [[ -n $peer_pid ]]; then
        kill -TERM "$peer_pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$peer_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$peer_pid" 2>/dev/null || true
        wait "$peer_pid" 2>/dev/null || true
        peer_pid=
    fi
}

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    stop_server
    stop_epmd
    if [[ ${KEEP:-} == 1 ]]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1 (the kernel's choice; released at once).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits (at most $2 tenths of a second) until 127.0.0.1:$1 accepts.
wait_port() {
    for _ in $(seq 1 "$2"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$server_job" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# The self-signed certificate of Prosody and ejabberd: P-256, like Switchboard's.
make_cert() {
    [[ -f $work/cert/localhost.crt ]] && return 0
    mkdir -p "$work/cert"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
        -keyout "$work/cert/localhost.key" -out "$work/cert/localhost.crt" 2>/dev/null ||
        die "openssl could not make a certificate"
    cat "$work/cert/localhost.crt" "$work/cert/localhost.key" >"$work/cert/localhost.pem"
    chmod 644 "$work/cert/"*
}

# The s2s scenario's certificates: a CA, and a certificate it issues for
# each server (both servers trust the CA; the load generator pins each
# server's own certificate).
make_s2s_certs() {
    local c=$work/s2s-cert d
    [[ -f $c/ca.crt ]] && return 0
    mkdir -p "$c"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench s2s CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$c/ca.key" -out "$c/ca.crt" 2>/dev/null || die "openssl could not make the s2s CA"
    for d in localhost b.test; do
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$d" \
            -keyout "$c/$d.key" -out "$c/$d.csr" 2>/dev/null || die "openssl could not make a key for $d"
        printf 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' "$d" >"$c/$d.ext"
        openssl x509 -req -in "$c/$d.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -days 2 \
            -extfile "$c/$d.ext" -out "$c/$d.crt" 2>/dev/null || die "openssl could not issue a certificate for $d"
    done
}

tls_required=true
[[ ${NO_TLS:-} == 1 ]] && tls_required=false
accounts=$USERS
((LOGIN_USERS > accounts)) && accounts=$LOGIN_USERS
((MSG_USERS > accounts)) && accounts=$MSG_USERS
((S2S_USERS > accounts)) && accounts=$S2S_USERS
fan_accounts=$((FANOUT_ONLINE + FANOUT_LOGINS))
muc_largest=0
for r in $MUC_ROOMS; do ((r > muc_largest)) && muc_largest=$r; done
if wants muc && ((muc_largest + MUC_JOINS > accounts)); then
    accounts=$((muc_largest + MUC_JOINS))
fi

# --- Switchboard -----------------------------------------------------------
setup_switchboard() {
    for b in switchboard switchboard-mkusers; do
        [[ -x $bin/$b ]] || die "$bin/$b is missing (build first, or unset SKIP_BUILD)"
    done
    mkdir -p "$home/etc"
    cat >"$config" <<'XML'
<switchboard>
  <host name="localhost"><registration>off</registration>@ARCHIVE@</host>
  <listen><c2s addr="127.0.0.1:0"/>@WEB_LISTENER@</listen>@WEB@
  <limits scram-iterations="4096" preauth-timeout="300s" keepalive="300s"/>
  <log file="logs/switchboard.log" level="warn"/>
  <tls required="@TLS_REQUIRED@"/>
</switchboard>
XML
    local archive=
    [[ -n ${ARCHIVE:-} ]] && archive="<archive default=\"$ARCHIVE\"\/>"
    # WS=1: an HTTPS listener for XMPP over WebSocket, with room for as
    # many connections as the TCP listener takes.
    local web_listener= web=
    if [[ ${WS:-} == 1 ]]; then
        web_listener='<https addr="127.0.0.1:0"\/>'
        web='<web max-connections="1000000"\/>'
    fi
    sed -i "s/@TLS_REQUIRED@/$tls_required/; s/@ARCHIVE@/$archive/; s/@WEB_LISTENER@/$web_listener/; s/@WEB@/$web/" "$config"
    "$bin/switchboard" -H "$home" -c "$config" check-config >&2
    log "switchboard: creating $accounts accounts (user0..user$((accounts - 1)), password pw)"
    timeout "$(limit_for 600)" "$bin/switchboard-mkusers" -H "$home" -c "$config" --users "$accounts" --password pw >&2 ||
        die "creating the accounts failed or ran out of time"
    if wants fanout; then
        log "switchboard: creating $fan_accounts accounts with rosters (fan0..fan$((fan_accounts - 1)), $FANOUT_CONTACTS contacts, all 'both')"
        timeout "$(limit_for 600)" "$bin/switchboard-mkusers" -H "$home" -c "$config" --prefix fan --users "$fan_accounts" \
            --password pw --roster-contacts "$FANOUT_CONTACTS" --roster-online "$FANOUT_ONLINE" >&2 ||
            die "creating the fanout accounts failed or ran out of time"
    fi
    ca=$home/etc/localhost.crt
}

start_switchboard() {
    local out=$work/switchboard.$1.out cfg=$config
    if [[ $1 == muc* ]]; then
        # Group chat at conference.localhost: no per-user rate or room
        # limit in the way of the load, rooms up to 2,000, the archive as
        # this run says.
        local archive=false
        [[ $muc_archive == 1 ]] && archive=true
        cfg=$home/etc/bench-muc.xml
        sed "s#</switchboard>#  <service id=\"conference.localhost\" type=\"muc\" create=\"anyone\" max-occupants=\"2000\" max-rooms-per-user=\"1000\" message-rate=\"off\" history=\"20\" archive=\"$archive\"/>\n</switchboard>#" "$config" >"$cfg"
    fi
    "${pin_server[@]}" "$bin/switchboard" -H "$home" -c "$cfg" run >"$out" 2>"$work/switchboard.$1.err" &
    server_pid=$!
    server_job=$!
    for _ in $(seq 1 300); do
        grep -qx ready "$out" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/switchboard.$1.err" >&2; die "the server exited at start-up"; }
        sleep 0.1
    done
    grep -qx ready "$out" || die "the server did not print 'ready' within 30 s"
    addr=$(awk '$1 == "listening" && $2 == "c2s" { print $3; exit }' "$out")
    [[ -n $addr ]] || die "no 'listening c2s ADDR' line from the server"
    ws_addr=$(awk '$1 == "listening" && $2 == "https" { print $3; exit }' "$out")
}

server_log_switchboard() { echo "$home/logs/switchboard.log"; }

# --- the s2s scenario: a second Switchboard at b.test ----------------------
# Server A is this target's home with a config of its own (the CA's
# certificate, an s2s listener, <s2s> with a <connect> to B); server B has a
# home of its own with S2S_USERS accounts at b.test.
bhome=$work/home-b
s2s_config() { # domain, s2s port, other domain, its s2s port, log file, stanza rate
    local archive=
    [[ -n ${ARCHIVE:-} ]] && archive="<archive default=\"$ARCHIVE\"/>"
    cat <<XML
<switchboard>
  <host name="$1"><registration>off</registration>$archive</host>
  <listen><c2s addr="127.0.0.1:0"/><s2s addr="127.0.0.1:$2"/></listen>
  <limits scram-iterations="4096" preauth-timeout="300s" keepalive="300s"/>
  <log file="$5" level="warn"/>
  <tls cert="$work/s2s-cert/$1.crt" key="$work/s2s-cert/$1.key" required="$tls_required"/>
  <s2s trust="$work/s2s-cert/ca.crt" max-queue="10000" stanza-rate="$6">
    <connect domain="$3" addr="127.0.0.1:$4"/>
  </s2s>
</switchboard>
XML
}

# Waits for "ready" from a server started with its output in $1; prints its
# c2s address.
switchboard_ready() {
    for _ in $(seq 1 300); do
        grep -qx ready "$1" 2>/dev/null && break
        kill -0 "$2" 2>/dev/null || { cat "$1.err" >&2; die "a server exited at start-up"; }
        sleep 0.1
    done
    grep -qx ready "$1" || die "a server did not print 'ready' within 30 s"
    awk '$1 == "listening" && $2 == "c2s" { print $3; exit }' "$1"
}

# Prosody as server B: b.test with the CA's certificate, s2s under
# secure-auth (the Switchboard at localhost authenticates with SASL
# EXTERNAL), accounts written into its storage as for the Prosody target.
start_prosody_b() { # s2s port
    local cport bdir=$work/prosody-b
    cport=$(free_port)
    if [[ ! -d $bdir/data ]]; then
        mkdir -p "$bdir/data"
        log "prosody: writing $S2S_USERS accounts at b.test for the s2s scenario"
        timeout "$(limit_for 300)" python3 bench/foreign_users.py prosody "$bdir/data" --domain b.test \
            --users "$S2S_USERS" --password pw || die "writing Prosody's b.test accounts failed"
    fi
    : >"$bdir/prosody.log"
    cat >"$bdir/prosody.cfg.lua" <<LUA
-- Scratch Prosody for bench/run.sh's s2s scenario: b.test, loopback only.
data_path = "$bdir/data"
pidfile = "$bdir/prosody.pid"
run_as_root = true
interfaces = { "127.0.0.1" }
c2s_ports = { $cport }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { $1 }
http_ports = { }
https_ports = { }
network_backend = "epoll"
tcp_backlog = 1024
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "offline", "dialback" }
authentication = "internal_hashed"
password_hash = "SHA-256"
default_iteration_count = 4096
storage = "internal"
c2s_require_encryption = $tls_required
s2s_require_encryption = true
s2s_secure_auth = true
allow_registration = false
c2s_timeout = 300
log = { warn = "$bdir/prosody.log" }
ssl = { certificate = "$work/s2s-cert/b.test.crt", key = "$work/s2s-cert/b.test.key", cafile = "$work/s2s-cert/ca.crt" }
VirtualHost "b.test"
  ssl = { certificate = "$work/s2s-cert/b.test.crt", key = "$work/s2s-cert/b.test.key", cafile = "$work/s2s-cert/ca.crt" }
LUA
    "${pin_server[@]}" prosody --config "$bdir/prosody.cfg.lua" -F >"$bdir/prosody.out" 2>&1 &
    peer_pid=$!
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null && break
        kill -0 "$peer_pid" 2>/dev/null || { cat "$bdir/prosody.out" >&2; die "prosody (b.test) exited at start-up"; }
        sleep 0.1
    done
    baddr=127.0.0.1:$cport
}

start_s2s_pair() { # the kind of server B
    [[ $target == switchboard ]] || die "the s2s scenario runs with TARGETS=switchboard"
    make_s2s_certs
    local pa pb
    pa=$(free_port)
    pb=$(free_port)
    if [[ $1 == prosody ]]; then
        command -v prosody >/dev/null || die "prosody is not installed (apt-get install prosody)"
        start_prosody_b "$pb"
    elif [[ $1 != switchboard ]]; then
        die "unknown S2S_PEERS entry '$1' (switchboard, prosody)"
    elif [[ ! -d $bhome/spool ]]; then
        mkdir -p "$bhome/etc"
        s2s_config b.test "$pb" localhost "$pa" logs/switchboard.log "$S2S_RATE" >"$bhome/etc/bench.xml"
        log "switchboard: creating $S2S_USERS accounts at b.test for the s2s scenario"
        timeout "$(limit_for 600)" "$bin/switchboard-mkusers" -H "$bhome" -c "$bhome/etc/bench.xml" --host b.test --users "$S2S_USERS" --password pw >&2 ||
            die "creating b.test's accounts failed or ran out of time"
    fi
    s2s_config localhost "$pa" b.test "$pb" logs/switchboard.log off >"$home/etc/bench-s2s.xml"
    if [[ $1 == switchboard ]]; then
        s2s_config b.test "$pb" localhost "$pa" logs/switchboard.log "$S2S_RATE" >"$bhome/etc/bench.xml"
        "${pin_server[@]}" "$bin/switchboard" -H "$bhome" -c "$bhome/etc/bench.xml" run >"$work/b.out" 2>"$work/b.out.err" &
        peer_pid=$!
        baddr=$(switchboard_ready "$work/b.out" "$peer_pid")
    fi
    "${pin_server[@]}" "$bin/switchboard" -H "$home" -c "$home/etc/bench-s2s.xml" run >"$work/a.out" 2>"$work/a.out.err" &
    server_pid=$!
    server_job=$!
    addr=$(switchboard_ready "$work/a.out" "$server_pid")
}

# --- Prosody ---------------------------------------------------------------
# Accounts: bench/foreign_users.py writes Prosody's internal storage files
# (what mod_auth_internal_hashed writes) directly: prosodyctl register
# starts a Lua interpreter per account, about an hour for 10,000.
pdir=$work/prosody
setup_prosody() {
    command -v prosody >/dev/null || die "prosody is not installed (apt-get install prosody)"
    make_cert
    mkdir -p "$pdir/data"
    log "prosody: writing $accounts accounts into its internal storage"
    timeout "$(limit_for 300)" python3 bench/foreign_users.py prosody "$pdir/data" --users "$accounts" --password pw ||
        die "writing Prosody's accounts failed"
    if wants fanout; then
        log "prosody: writing $fan_accounts accounts with rosters"
        timeout "$(limit_for 300)" python3 bench/foreign_users.py prosody "$pdir/data" --prefix fan --users "$fan_accounts" \
            --password pw --roster-contacts "$FANOUT_CONTACTS" --roster-online "$FANOUT_ONLINE" ||
            die "writing Prosody's fanout accounts failed"
    fi
    ca=$work/cert/localhost.crt
}

start_prosody() {
    local port
    port=$(free_port)
    : >"$pdir/prosody.log"
    cat >"$pdir/prosody.cfg.lua" <<LUA
-- Scratch Prosody for bench/run.sh: loopback only, no s2s, no HTTP.
data_path = "$pdir/data"
pidfile = "$pdir/prosody.pid"
certificates = "$work/cert"
-- The benchmark may run as root; Prosody refuses that unless told.
run_as_root = true
interfaces = { "127.0.0.1" }
c2s_ports = { $port }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
network_backend = "epoll"
-- The same listen backlog as Switchboard (tokio's default) and ejabberd here.
tcp_backlog = 1024
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "offline" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
password_hash = "SHA-256"
default_iteration_count = 4096
storage = "internal"
c2s_require_encryption = $tls_required
allow_registration = false
c2s_timeout = 300
log = { warn = "$pdir/prosody.log" }
VirtualHost "localhost"
  ssl = { certificate = "$work/cert/localhost.crt", key = "$work/cert/localhost.key" }
LUA
    if [[ $1 == muc* ]]; then
        # Group chat at conference.localhost (Prosody's MUC keeps 20
        # messages of history by default, as Switchboard's does); with the
        # archive, mod_muc_mam logs every room.
        local mam=
        [[ $muc_archive == 1 ]] && mam='modules_enabled = { "muc_mam" }
  muc_log_by_default = true
  muc_log_all_rooms = true'
        cat >>"$pdir/prosody.cfg.lua" <<LUA
Component "conference.localhost" "muc"
  max_history_messages = 20
  $mam
LUA
    fi
    # prosody is a Lua script run through env: $! is the Lua process.
    "${pin_server[@]}" prosody --config "$pdir/prosody.cfg.lua" -F >"$pdir/prosody.$1.out" 2>&1 &
    server_pid=$!
    server_job=$!
    wait_port "$port" 300 || { cat "$pdir/prosody.$1.out" >&2; die "prosody did not listen on $port within 30 s"; }
    addr=127.0.0.1:$port
}

server_log_prosody() { echo "$pdir/prosody.log"; }

# --- ejabberd --------------------------------------------------------------
# ejabberd runs as the package's user `ejabberd`, so its directory is handed
# to that user. ejabberdctl is started as that user with setpriv rather than
# letting it `su` there, because su's PAM session resets the open-file limit
# to 1,024 (ejabberd then fails at about 1,000 sessions with emfile). No epmd: ERL_DIST_PORT gives the node a
# fixed distribution port on 127.0.0.1, which ejabberdctl's commands use too.
# Accounts: one `ejabberdctl import_piefxis` of a XEP-0227 file written by
# bench/foreign_users.py (ejabberdctl register starts an Erlang node per
# account, about a second each).
edir=$work/ejabberd
enode=bench$$@localhost
ectl=()
eopts=()
# HOME: the ejabberd user's, where its Erlang cookie lives.
erun=(setpriv --reuid=ejabberd --regid=ejabberd --clear-groups env "HOME=$(getent passwd ejabberd | cut -d: -f6)")
eport=
setup_ejabberd() {
    command -v ejabberdctl >/dev/null || die "ejabberd is not installed (apt-get install ejabberd)"
    command -v setpriv >/dev/null || die "setpriv (util-linux) is missing"
    id ejabberd >/dev/null 2>&1 || die "the ejabberd package's user 'ejabberd' is missing"
    make_cert
    chmod 755 "$work"
    mkdir -p "$edir/etc" "$edir/spool" "$edir/logs" "$edir/run"
    eport=$(free_port)
    local dist_port
    dist_port=$(free_port)
    cat >"$edir/etc/ejabberd.yml" <<YML
# Scratch ejabberd for bench/run.sh: loopback only, no s2s, no HTTP.
hosts:
  - localhost
loglevel: warning
certfiles:
  - "$work/cert/localhost.pem"
listen:
  -
    port: $eport
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: $tls_required
    starttls: true
    max_stanza_size: 262144
    # ejabberd's default listen backlog is 5: connections beyond it wait
    # for a SYN retransmission (1 s). Switchboard's (tokio's) is 1024.
    backlog: 1024
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha256
s2s_access: none
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  register:
    deny: all
modules:
  mod_disco: {}
  mod_offline: {}
  mod_ping: {}
  mod_roster: {}
YML
    cat >"$edir/etc/ejabberdctl.cfg" <<CFG
ERL_DIST_PORT=$dist_port
INET_DIST_INTERFACE=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
EJABBERD_PID_PATH=$edir/run/ejabberd.pid
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
ERL_MAX_PORTS=65536
CFG
    printf '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n' >"$edir/etc/inetrc"
    cp "$edir/etc/ejabberd.yml" "$edir/etc/ejabberd.base.yml"
    chown -R ejabberd:ejabberd "$edir"
    eopts=(--config-dir "$edir/etc" --config "$edir/etc/ejabberd.yml" --ctl-config "$edir/etc/ejabberdctl.cfg"
        --spool "$edir/spool" --logs "$edir/logs" --node "$enode")
    ectl=("${erun[@]}" ejabberdctl "${eopts[@]}")
    python3 bench/foreign_users.py xep0227 "$edir/users.xml" --users "$accounts" --password pw ||
        die "writing the XEP-0227 file failed"
    if wants fanout; then
        python3 bench/foreign_users.py xep0227 "$edir/fan.xml" --prefix fan --users "$fan_accounts" --password pw \
            --roster-contacts "$FANOUT_CONTACTS" --roster-online "$FANOUT_ONLINE" || die "writing the XEP-0227 file failed"
    fi
    chown ejabberd:ejabberd "$edir/"*.xml
    start_ejabberd setup
    local f
    for f in "$edir/users.xml" ${fanout_xml:+"$edir/fan.xml"}; do
        [[ -f $f ]] || continue
        log "ejabberd: importing $(basename "$f") (XEP-0227; ejabberd derives each account's SCRAM keys)"
        local t0=$SECONDS
        timeout "$(limit_for 900)" "${erun[@]}" ejabberdctl --no-timeout "${eopts[@]}" import_piefxis "$f" >&2 || die "ejabberdctl import_piefxis $f failed"
        log "ejabberd: imported in $((SECONDS - t0)) s"
    done
    stop_server
    ca=$work/cert/localhost.crt
}

# The pid of the BEAM process running node $enode, if there is one.
beam_pid() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(cat "$p/comm" 2>/dev/null) == beam.smp ]] || continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "-sname $enode " && { echo "${p#/proc/}"; return 0; }
    done
    return 1
}

start_ejabberd() {
    cp "$edir/etc/ejabberd.base.yml" "$edir/etc/ejabberd.yml"
    if [[ $1 == muc* ]]; then
        # Group chat at conference.localhost: rooms up to 2,000 occupants
        # (ejabberd's defaults are 200), presence broadcast to all of them
        # (max_users_presence: beyond it ejabberd stops broadcasting joins
        # and leaves, which the other servers never do), 20 messages of
        # history; with the archive, mod_mam and rooms archived by default.
        local mam=false
        [[ $muc_archive == 1 ]] && mam=true
        cat >>"$edir/etc/ejabberd.yml" <<YML
  mod_muc:
    host: "conference.localhost"
    access_create: all
    max_users: 2000
    max_users_presence: 2000
    history_size: 20
    default_room_options:
      max_users: 2000
      mam: $mam
YML
        [[ $muc_archive == 1 ]] && printf '  mod_mam: {}\n' >>"$edir/etc/ejabberd.yml"
    fi
    chown ejabberd:ejabberd "$edir/etc/ejabberd.yml"
    "${pin_server[@]}" "${ectl[@]}" foreground >"$edir/ejabberd.$1.out" 2>&1 &
    server_job=$!
    server_pid=
    for _ in $(seq 1 300); do
        server_pid=$(beam_pid) && break
        kill -0 "$server_job" 2>/dev/null || { cat "$edir/ejabberd.$1.out" >&2; die "ejabberd exited at start-up"; }
        sleep 0.1
    done
    [[ -n $server_pid ]] || die "no BEAM process for $enode within 30 s"
    wait_port "$eport" 600 || { cat "$edir/ejabberd.$1.out" >&2; die "ejabberd did not listen on $eport within 60 s"; }
    addr=127.0.0.1:$eport
}

server_log_ejabberd() { echo "$edir/logs/error.log"; }

# --- tsung -----------------------------------------------------------------
# LOAD=tsung: the scenarios of bench/tsung/*.xml, filled in here, run by
# tsung (pinned to the load core) against the same servers. tsung's XMPP
# plugin logs in with SASL PLAIN only, so its logins cost the servers one
# PBKDF2 each (4,096 iterations), unlike SCRAM logins; and it does not check
# what the clients receive. tsung is a distributed Erlang node: it gets an
# epmd of its own on a private port on 127.0.0.1, stopped at exit.
TSUNG_RATE=${TSUNG_RATE:-200}
TSUNG_MSGS=${TSUNG_MSGS:-$((MSG_DURATION * 10))}
TSUNG_THINK=${TSUNG_THINK:-0.1}
epmd_pid=
tsung_epmd() {
    [[ -n $epmd_pid ]] && return 0
    command -v tsung >/dev/null || die "tsung is not installed (apt-get install tsung)"
    epmd_port=$(free_port)
    export ERL_EPMD_PORT=$epmd_port ERL_EPMD_ADDRESS=127.0.0.1
    epmd -port "$epmd_port" -address 127.0.0.1 >/dev/null 2>&1 &
    epmd_pid=$!
    sleep 0.5
}
stop_epmd() {
    [[ -n $epmd_pid ]] || return 0
    kill -TERM "$epmd_pid" 2>/dev/null || true
    wait "$epmd_pid" 2>/dev/null || true
    epmd_pid=
}

# User time + system time of $1 in clock ticks, from /proc/PID/stat.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# tsung.log holds a "stats:" dump every 10 s, each with the figures of that
# period: "stats: NAME COUNT MEAN STDDEV MAX MIN ..." for samples (times in
# ms), "stats: NAME VALUE TOTAL" for counters.
# The count of sample $2 over the whole run, and its mean (ms).
tsung_count() { awk -v n="$2" '$1 == "stats:" && $2 == n { c += $3 } END { print c + 0 }' "$1"; }
tsung_mean() {
    awk -v n="$2" '$1 == "stats:" && $2 == n { c += $3; s += $3 * $4 } END { printf "%.2f\n", c ? s / c : 0 }' "$1"
}

# Runs one tsung scenario; prints one summary line (without target=).
run_tsung() {
    local scenario=$1 users prefix=user arrival hold=$HOLD maxdur xml tdir csv i
    case $scenario in
    idle) users=$SESSIONS ;;
    logins) users=$((TSUNG_RATE * DURATION)) ;;
    messages) users=$MSG_USERS ;;
    fanout) users=$fan_accounts prefix=fan ;;
    *) die "unknown scenario '$scenario'" ;;
    esac
    tdir=$work/tsung/$target/$scenario
    mkdir -p "$tdir/log"
    csv=$tdir/users.csv
    local pool=$users
    [[ $scenario == logins ]] && pool=$LOGIN_USERS
    for ((i = 0; i < pool; i++)); do echo "$prefix$i;pw"; done >"$csv"
    # tsung's arrivals are random (Poisson) at the given rate and capped at
    # maxnumber: a phase of exactly users/rate seconds starts only ~80 % of
    # them, so the phase is half as long again (the cap keeps the count).
    arrival=$(((users * 3 + TSUNG_RATE * 2 - 1) / (TSUNG_RATE * 2) + 2))
    local settle=$((arrival + 2))
    maxdur=$((arrival + hold + settle + TSUNG_MSGS + 60))
    xml=$tdir/$scenario.xml
    sed -e "s|@PORT@|${addr##*:}|g" -e "s|@USERS@|$users|g" -e "s|@MAXUSERS@|$((users + 100))|g" \
        -e "s|@RATE@|$TSUNG_RATE|g" -e "s|@ARRIVAL_S@|$arrival|g" -e "s|@MAXDURATION@|$maxdur|g" \
        -e "s|@HOLD@|$hold|g" -e "s|@USERS_CSV@|$csv|g" -e "s|@MSGS@|$TSUNG_MSGS|g" -e "s|@BODY@|64|g" \
        -e "s|@THINK@|$TSUNG_THINK|g" -e "s|@SETTLE@|$settle|g" -e "s|@CONTACTS@|$FANOUT_CONTACTS|g" \
        "bench/tsung/$scenario.xml" >"$xml"
    tsung_epmd
    local cpu0 rss0 peak=0 t0 t1 r
    cpu0=$(cpu_ticks "$server_pid")
    rss0=$(rss_kib "$server_pid")
    t0=$SECONDS
    timeout "$(limit_for $((maxdur + 60)))" "${pin_load[@]}" tsung -f "$xml" -l "$tdir/log" start >"$tdir/tsung.out" 2>&1 &
    local tpid=$!
    while kill -0 "$tpid" 2>/dev/null; do
        r=$(rss_kib "$server_pid")
        ((r > peak)) && peak=$r
        sleep 1
    done
    wait "$tpid" || log "tsung exited with status $? (see $tdir/tsung.out)"
    t1=$SECONDS
    local cpu1 hz log
    cpu1=$(cpu_ticks "$server_pid")
    hz=$(getconf CLK_TCK)
    log=$(find "$tdir/log" -name tsung.log | head -n 1)
    [[ -n $log ]] || { echo "tsung-$scenario error: no tsung.log (see $tdir/tsung.out)"; return 1; }
    local logins login_ms chats errors users_max
    logins=$(tsung_count "$log" tr_login)
    login_ms=$(tsung_mean "$log" tr_login)
    chats=$(tsung_count "$log" tr_chat)
    users_max=$(awk '$1 == "stats:" && $2 == "users" && $4 > m { m = $4 } END { print m + 0 }' "$log")
    errors=$(awk '$1 == "stats:" && $2 ~ /^error_/ { e += $3 } END { print e + 0 }' "$log")
    awk -v sc="$scenario" -v hz="$hz" -v c0="$cpu0" -v c1="$cpu1" -v wall=$((t1 - t0)) -v logins="$logins" \
        -v lms="$login_ms" -v chats="$chats" -v users="$users" -v um="$users_max" -v errors="$errors" \
        -v rss0="$rss0" -v peak="$peak" 'BEGIN {
        cpu = (c1 - c0) / hz
        printf "tsung-%s users=%d logins=%d login_mean_ms=%.2f messages_sent=%d wall_s=%d server_cpu_s=%.2f", sc, users, logins, lms, chats, wall, cpu
        if (logins > 0 && chats == 0) printf " cpu_ms_per_login=%.3f", cpu * 1000 / logins
        # Includes the logins of the same run.
        if (chats > 0) printf " cpu_us_per_msg_sent=%.1f", cpu * 1e6 / chats
        printf " baseline_rss_kib=%d server_peak_rss_kib=%d", rss0, peak
        if (sc == "idle" && users > 0) printf " rss_per_session_kib=%.2f", (peak - rss0) / users
        printf " max_simultaneous_users=%d errors=%d\n", um, errors
    }'
}

# --- machine ---------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem_total=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
versions="rustc=\"$(rustc --version 2>/dev/null | cut -d' ' -f2)\""
for t in "${target_list[@]}"; do
    case $t in
    switchboard) ;;
    prosody) versions+=" prosody=\"$(dpkg-query -W -f='${Version}' prosody 2>/dev/null || echo unknown)\"" ;;
    ejabberd) versions+=" ejabberd=\"$(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null || echo unknown)\"" ;;
    *) die "unknown target '$t' (switchboard, prosody, ejabberd)" ;;
    esac
done
echo "machine cores=$(nproc) cpu=\"${cpu_model:-unknown}\" memory=\"$mem_total\" kernel=$(uname -r) $versions server_cpu=${pin_server[*]:+$SERVER_CPU} load_cpu=${pin_load[*]:+$LOAD_CPU} load_average=\"$(cut -d' ' -f1-3 /proc/loadavg)\""

LOAD=${LOAD:-switchboard-load}
case $LOAD in
switchboard-load) [[ -x $bin/switchboard-load ]] || die "$bin/switchboard-load is missing (build first, or unset SKIP_BUILD)" ;;
tsung) command -v tsung >/dev/null || die "tsung is not installed (apt-get install tsung)" ;;
*) die "unknown LOAD '$LOAD' (switchboard-load, tsung)" ;;
esac
# Started here, not in the $(run_tsung) subshells, so that cleanup stops it.
[[ $LOAD == tsung ]] && tsung_epmd
fanout_xml=
wants fanout && fanout_xml=1

status=0
addr=
ws_addr=
ca=
for target in "${target_list[@]}"; do
    "setup_$target"
    common=(--password pw)
    [[ ${NO_TLS:-} == 1 ]] && common+=(--no-tls)
    # The muc scenario is one run per archive setting and room size.
    runs=()
    for scenario in $SCENARIOS; do
        if [[ $scenario == muc ]]; then
            for a in $MUC_ARCHIVE; do
                for r in $MUC_ROOMS; do runs+=("muc-$r-$a"); done
            done
        elif [[ $scenario == s2s ]]; then
            for p in $S2S_PEERS; do runs+=("s2s-$p"); done
        else
            runs+=("$scenario")
            # WS=1: the same scenario over WebSocket right after it.
            if [[ ${WS:-} == 1 && $target == switchboard && " idle logins messages " == *" $scenario "* ]]; then
                runs+=("$scenario-ws")
            fi
        fi
    done
    for scenario in "${runs[@]}"; do
        if [[ $scenario == muc-* ]]; then
            IFS=- read -r _ muc_size muc_archive <<<"$scenario"
        fi
        if [[ $scenario == s2s-* ]]; then
            start_s2s_pair "${scenario#s2s-}"
        else
            "start_$target" "$scenario"
        fi
        transport=()
        if [[ $scenario == *-ws ]]; then
            [[ -n $ws_addr ]] || die "no 'listening https ADDR' line from the server"
            transport=(--websocket "$ws_addr")
            scenario=${scenario%-ws}
            tag="transport=websocket "
        elif [[ ${WS:-} == 1 ]]; then
            tag="transport=tcp "
        else
            tag=
        fi
        # Let start-up allocations settle before the baseline is read.
        sleep 1
        log "$target, scenario $scenario: server pid $server_pid on $addr (load average $(cut -d' ' -f1-3 /proc/loadavg))"
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
        s2s-*)
            cmd=(messages --users "$S2S_USERS" --rate "$MSG_RATE" --duration "$MSG_DURATION" --warmup "$WARMUP"
                --window "$MSG_WINDOW" --remote-addr "$baddr" --remote-domain b.test
                --remote-ca "$work/s2s-cert/b.test.crt" --remote-server-pid "$peer_pid")
            steps=$(($(tr -cd , <<<"$MSG_RATE" | wc -c) + 1))
            limit=$((steps * (MSG_DURATION + WARMUP) + 150))
            ;;
        muc-*)
            cmd=(muc --users "$accounts" --occupants "$muc_size" --senders "$MUC_SENDERS" --window "$MUC_WINDOW"
                --duration "$MUC_DURATION" --warmup "$WARMUP" --joins "$MUC_JOINS" --service conference.localhost)
            limit=$((MUC_DURATION + WARMUP + 240))
            ;;
        *) die "unknown scenario '$scenario' (idle, logins, messages, fanout, muc, s2s)" ;;
        esac
        limit=$(limit_for "$limit")
        if [[ $LOAD == tsung ]]; then
            line=$(run_tsung "$scenario") || status=1
        else
        load_ca=$ca
        [[ $scenario == s2s-* ]] && load_ca=$work/s2s-cert/localhost.crt
        line=$(timeout "$limit" "${pin_load[@]}" "$bin/switchboard-load" "${cmd[@]}" "${common[@]}" \
            --ca "$load_ca" --addr "$addr" "${transport[@]}" --server-pid "$server_pid") || {
            log "$target, scenario $scenario failed (exit status $?; 124: it ran out of time, limit ${limit}s)"
            status=1
        }
        fi
        while IFS= read -r l; do
            [[ -n $l ]] || continue
            [[ $scenario == muc-* ]] && l="archive=$muc_archive $l"
            [[ $scenario == s2s-* ]] && l="peer=${scenario#s2s-} $l"
            echo "target=$target $tag$l"
            [[ -n ${RESULTS:-} ]] && echo "target=$target $tag$l" >>"$RESULTS"
        done <<<"$line"
        slog=$("server_log_$target")
        if [[ -s $slog ]]; then
            log "$target: server warnings during $scenario (last 5):"
            tail -n 5 "$slog" >&2
            : >"$slog"
        fi
        stop_server
    done
done
exit "$status"
