#!/usr/bin/env python3
"""bench/matrix.py: the Matrix transport under load (issue: messages
relayed per second each way through one transport to a local Synapse, and
memory per signed-on user with 1,000 users).

Starts a Synapse of its own (from PyPI, in the virtualenv the end-to-end
test uses: integration-tests/peers/synapse_venv.py; SQLite, no
federation, rate limits and password hashing turned down so that Synapse
measures as little of itself as it can) and Switchboard with the Matrix
transport in-process at matrix.localhost, both on 127.0.0.1 in a scratch
directory. Then:

1. USERS XMPP accounts (created with switchboard-mkusers) log in; the
   server's resident memory is read (VmRSS);
2. each registers with the transport as its own Matrix user (POST /login
   on Synapse) and signs on (its /sync long-poll runs from then); the
   memory is read again once every user is signed on and USERS/4 syncs
   more have come back: the difference divided by USERS is the memory
   per signed-on user;
3. one of them and a Matrix user (matrix-nio) share a room: MESSAGES
   messages from XMPP are counted as they arrive on Matrix, then MESSAGES
   from Matrix (sent CONCURRENCY at a time) as they arrive on XMPP; each
   rate is messages / (last arrival - first send).

One summary line on stdout:

    matrix users=1000 rss_logged_in_kib=… rss_signed_on_kib=… per_user_kib=…
        xmpp_to_matrix_per_s=… matrix_to_xmpp_per_s=…

Settings, from the environment (defaults in brackets):
  USERS [1000], MESSAGES [500], CONCURRENCY [20]
  SKIP_BUILD=1 (use the binaries already in BIN), BIN [target/release],
  KEEP=1 (keep the scratch directory)

Usage: bench/matrix.py   (as a user that may write ~/.cache; the first
run installs Synapse into the venv, a few minutes)
"""

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "integration-tests", "peers")
sys.path.insert(0, PEERS)
import synapse_venv  # noqa: E402

if __name__ == "__main__":
    synapse_venv.ensure(__file__)

import matrix_synapse as ms  # noqa: E402
from matrix_synapse import GW, Failure, Matrix, Synapse, Xmpp, q  # noqa: E402

USERS = int(os.environ.get("USERS", "1000"))
MESSAGES = int(os.environ.get("MESSAGES", "500"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "20"))
BIN = os.environ.get("BIN") or os.path.join(ROOT, "target", "release")
STEP = 120  # a bounded wait for any one phase step


def log(*a):
    print("matrix.py:", *a, file=sys.stderr, flush=True)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failure("no VmRSS")


def config(synapse_url):
    return f"""<switchboard>
  <host name="localhost"><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <limits scram-iterations="4096" preauth-timeout="300s" keepalive="300s"/>
  <log file="logs/switchboard.log" level="warn"/>
  <service id="{GW}" type="matrix">
    <homeserver name="localhost" url="{synapse_url}" allow-plain="true"/>
  </service>
</switchboard>
"""


async def sign_on(x, user):
    """Registers `x` with the transport as `user` and signs on, without
    the subscription round trips the end-to-end test checks."""
    r = await x.iq(GW, "set", f"<query xmlns='jabber:iq:register'><username>{user}</username><password>pw</password></query>", timeout=STEP)
    if r.get("type") != "result":
        raise Failure(f"registration of {user}: {ms.ET.tostring(r, 'unicode')}")
    x.raw(f"<presence to='{GW}'/>")
    await x.expect(
        lambda s: s.tag == q("client", "presence") and s.get("from") == GW and s.get("type") is None,
        f"{user} signed on",
        STEP,
    )


async def in_batches(n, size, make):
    out = []
    for start in range(0, n, size):
        out.extend(await asyncio.gather(*(make(i) for i in range(start, min(n, start + size)))))
    return out


async def scenario(port, cafile, syn, server_pid):
    async def login(i):
        return await Xmpp(f"user{i}@localhost/bench", "pw", port, cafile).start()

    xs = await in_batches(USERS, 50, login)
    await asyncio.sleep(2)
    logged_in = rss_kib(server_pid)
    log(f"{USERS} XMPP users logged in: VmRSS {logged_in} KiB")

    t0 = time.monotonic()

    async def signon(i):
        await sign_on(xs[i], f"@bench{i}:localhost")

    await in_batches(USERS, 25, signon)
    log(f"{USERS} signed on to Matrix in {time.monotonic() - t0:.1f} s")
    # Every session's first /sync is done before it says it is signed on;
    # let the long-polls settle into their steady state.
    await asyncio.sleep(5)
    signed_on = rss_kib(server_pid)
    log(f"signed on: VmRSS {signed_on} KiB")

    # Relaying: user0 and a Matrix observer in one room.
    obs = await Matrix(syn.url, "observer", "pw").start()
    created = await obs.client.room_create(visibility=ms.RoomVisibility.public, alias="bench", name="bench")
    rid = created.room_id
    room = "#bench%localhost@matrix.localhost"
    x = xs[0]
    own, _ = await ms.join(x, room, "u0")
    await obs.expect(
        lambda e: e["kind"] == "timeline" and e.get("type") == "m.room.member" and e.get("state_key") == "@bench0:localhost",
        "user0's join",
    )

    start = time.monotonic()
    for i in range(MESSAGES):
        x.raw(f"<message to='{room}' type='groupchat' id='b{i}'><body>to-matrix {i}</body></message>")
    seen = set()
    deadline = time.monotonic() + STEP * 5
    while len(seen) < MESSAGES:
        e = await obs.message(rid, lambda e: e["content"].get("body", "").startswith("to-matrix "), "relayed messages", deadline - time.monotonic())
        seen.add(e["content"]["body"])
    to_matrix = MESSAGES / (time.monotonic() - start)
    log(f"XMPP → Matrix: {MESSAGES} in {time.monotonic() - start:.2f} s")

    sem = asyncio.Semaphore(CONCURRENCY)

    async def send(i):
        async with sem:
            await obs.text(rid, f"to-xmpp {i}")

    start = time.monotonic()
    sends = asyncio.ensure_future(asyncio.gather(*(send(i) for i in range(MESSAGES))))
    got = set()
    while len(got) < MESSAGES:
        m = await x.message(lambda s: (ms.body(s) or "").startswith("to-xmpp "), "relayed messages", STEP * 5)
        got.add(ms.body(m))
    await sends
    to_xmpp = MESSAGES / (time.monotonic() - start)
    log(f"Matrix → XMPP: {MESSAGES} in {time.monotonic() - start:.2f} s")
    await obs.stop()
    for c in xs:
        c.disconnect()
    return logged_in, signed_on, to_matrix, to_xmpp


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, USERS * 4 + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < USERS * 4 + 200:
        raise SystemExit(f"matrix.py: the open-file limit ({want}) is too low for {USERS} users")
    if os.environ.get("SKIP_BUILD") != "1":
        log("building (release): switchboard, switchboard-bench")
        subprocess.run(["cargo", "build", "--release", "-p", "switchboard", "-p", "switchboard-bench"], cwd=ROOT, check=True)
    binary = os.path.join(BIN, "switchboard")
    mkusers = os.path.join(BIN, "switchboard-mkusers")
    for b in (binary, mkusers):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"matrix.py: {b} is missing (build first, or unset SKIP_BUILD)")
    scratch = tempfile.mkdtemp(prefix="switchboard-matrix-bench.")
    syn = server = None
    try:
        # Synapse measuring as little of itself as it can: cheap password
        # hashes, no presence, rate limits out of the way.
        syn = Synapse(
            scratch,
            rc_message=(10000, 10000),
            extra="bcrypt_rounds: 4\nrc_registration: {per_second: 10000, burst_count: 10000}\n",
        )
        syn.start()
        log(f"registering {USERS} Matrix users")
        for i in range(USERS):
            syn.register(f"bench{i}", "pw")
        syn.register("observer", "pw")
        home = os.path.join(scratch, "home")
        os.makedirs(os.path.join(home, "etc"))
        cfg = os.path.join(home, "etc", "bench.xml")
        with open(cfg, "w") as f:
            f.write(config(syn.url))
        subprocess.run([mkusers, "-H", home, "-c", cfg, "--users", str(USERS), "--password", "pw"], check=True, stdout=subprocess.DEVNULL)
        server = subprocess.Popen([binary, "-H", home, "-c", cfg, "run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = None
        for line in server.stdout:
            if line.startswith("listening c2s "):
                port = int(line.rsplit(":", 1)[1])
            if line.strip() == "ready":
                break
        if port is None:
            raise Failure("the server did not report a listening port")
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        logged_in, signed_on, to_matrix, to_xmpp = loop.run_until_complete(
            scenario(port, os.path.join(home, "etc", "localhost.crt"), syn, server.pid)
        )
        print(
            f"matrix users={USERS} rss_logged_in_kib={logged_in} rss_signed_on_kib={signed_on} "
            f"per_user_kib={(signed_on - logged_in) / USERS:.1f} "
            f"xmpp_to_matrix_per_s={to_matrix:.0f} matrix_to_xmpp_per_s={to_xmpp:.0f}",
            flush=True,
        )
    except (Failure, asyncio.TimeoutError) as e:
        log(f"FAILED: {e or 'timeout'}")
        if syn:
            log("Synapse log:\n" + ms.tail(syn.log, 20))
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
        if os.environ.get("KEEP") == "1":
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
