#!/usr/bin/env python3
"""Federation with a second real third-party server: Switchboard and
ejabberd (Debian's package).

The same arrangement as prosody_federation.py: both servers on
127.0.0.1, each finding the other through dnsmasq's SRV records
(Switchboard through `<s2s resolver>`, ejabberd through the Erlang
resolver's `inetrc`, which names dnsmasq as its only name server; the
SRV record for Switchboard's domain points at `localhost`, because
ejabberd 23.01 resolves SRV targets with the system's getaddrinfo), both
certificates from a CA made for the run, both requiring TLS and trusting
only that CA (ejabberd's `ca_file`, Switchboard's `<s2s trust>` under
its default secure-auth). slixmpp clients, alice on Switchboard and bob
on ejabberd, check:

- a message each way;
- alice subscribes to bob, bob approves and alice sees bob's presence;
  bob subscribes back and sees alice's;
- a ping and a software version query of each server from the other's
  user;
- `switchboard s2s` lists both links to ejabberd's domain as established
  with a certificate, and dnsmasq was asked for both SRV records;
- ejabberd stopped, alice's next message to bob comes back to her as an
  error.

ejabberd runs as the package's user `ejabberd` (through setpriv, as
bench/run.sh does), from a scratch directory with its own config, on free
ports, with a node name of its own and a fixed distribution port on
127.0.0.1. Needs root (CI runs as root). Everything started is stopped at
the end; every wait is bounded. Prints one line `... OK` and exits 0; on
failure the reason and the logs' tails, exit 1.

Usage: ejabberd_federation.py PATH/TO/switchboard
"""

import asyncio
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from slixmpp.exceptions import IqError, IqTimeout

import prosody_component as pc
from prosody_component import Failure, run
from prosody_federation import ALICE, SB, T, ZONE, Ca, Client, Dnsmasq, Switchboard, ensure_dnsmasq

EJ = f"ejd.{ZONE}"
BOB = ("bob", "bob-ejabberd-pw-3")
POLICY_RC = "/usr/sbin/policy-rc.d"


def ensure_ejabberd():
    """Installs Debian's ejabberd when missing, without letting the
    package start the system's daemon."""
    if shutil.which("ejabberdctl"):
        return
    if not shutil.which("apt-get"):
        raise Failure("ejabberd is not installed and there is no apt-get to install it")
    created = False
    if not os.path.lexists(POLICY_RC):
        with open(POLICY_RC, "w") as f:
            f.write("#!/bin/sh\n# ejabberd_federation.py: no daemon starts during its apt-get\nexit 101\n")
        os.chmod(POLICY_RC, 0o755)
        created = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], "apt-get update", timeout=600, env=env)
        run(["apt-get", "install", "-y", "-qq", "ejabberd"], "apt-get install ejabberd", timeout=900, env=env)
    finally:
        if created:
            os.unlink(POLICY_RC)
    if not shutil.which("ejabberdctl"):
        raise Failure("apt-get installed ejabberd but there is no ejabberdctl command")


class Ejabberd:
    """An ejabberd of its own for EJ, federating."""

    def __init__(self, scratch, ca, dns_port):
        if os.geteuid() != 0:
            raise Failure("ejabberd runs as its package's user: this script needs root")
        try:
            home = pwd.getpwnam("ejabberd").pw_dir
        except KeyError:
            raise Failure("the ejabberd package's user 'ejabberd' is missing")
        self.dir = os.path.join(scratch, "ejabberd")
        for d in ("etc", "spool", "logs", "run"):
            os.makedirs(os.path.join(self.dir, d))
        self.c2s_port, self.s2s_port, dist_port = pc.free_ports(3)
        self.node = f"ejfed{os.getpid()}@localhost"
        crt, key = ca.issue(EJ)
        pem = os.path.join(self.dir, "etc", f"{EJ}.pem")
        with open(pem, "w") as out:
            for part in (crt, key):
                with open(part) as f:
                    out.write(f.read())
        etc = lambda *p: os.path.join(self.dir, "etc", *p)
        with open(etc("ejabberd.yml"), "w") as f:
            f.write(f"""# Written by ejabberd_federation.py: a throwaway ejabberd on 127.0.0.1.
hosts:
  - "{EJ}"
loglevel: info
certfiles:
  - "{pem}"
ca_file: "{ca.crt}"
listen:
  -
    port: {self.c2s_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
  -
    port: {self.s2s_port}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
s2s_use_starttls: required
auth_method: internal
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  register:
    deny: all
modules:
  mod_disco: {{}}
  mod_offline: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_s2s_dialback: {{}}
  mod_version: {{}}
""")
        with open(etc("ejabberdctl.cfg"), "w") as f:
            f.write(f"""ERL_DIST_PORT={dist_port}
INET_DIST_INTERFACE=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
EJABBERD_PID_PATH={os.path.join(self.dir, "run", "ejabberd.pid")}
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
""")
        # The Erlang resolver: names from dnsmasq only (no /etc/resolv.conf,
        # no /etc/hosts but the node's own name).
        with open(etc("inetrc"), "w") as f:
            f.write(f'{{lookup, [file, dns]}}.\n{{host, {{127,0,0,1}}, ["localhost"]}}.\n'
                    f'{{resolv_conf, ""}}.\n{{hosts_file, ""}}.\n'
                    f'{{nameserver, {{127,0,0,1}}, {dns_port}}}.\n')
        run(["chown", "-R", "ejabberd:ejabberd", self.dir], "chown the ejabberd directory")
        # Its user must reach the directory and the CA's files.
        for d in (scratch, ca.dir):
            os.chmod(d, 0o755)
        for f in glob.glob(os.path.join(ca.dir, "*")):
            if os.path.isfile(f):
                os.chmod(f, 0o644)
        self.erun = ["setpriv", "--reuid=ejabberd", "--regid=ejabberd", "--clear-groups", "env", f"HOME={home}"]
        self.opts = ["--config-dir", etc(), "--config", etc("ejabberd.yml"), "--ctl-config", etc("ejabberdctl.cfg"),
                     "--spool", os.path.join(self.dir, "spool"), "--logs", os.path.join(self.dir, "logs"),
                     "--node", self.node]
        self.log = os.path.join(self.dir, "logs", "ejabberd.log")
        self.proc = None

    def ctl(self, *args):
        return run(self.erun + ["ejabberdctl"] + self.opts + list(args), "ejabberdctl " + args[0], timeout=T * 3)

    def start(self):
        out = open(os.path.join(self.dir, "ejabberd.out"), "w")
        self.proc = subprocess.Popen(self.erun + ["ejabberdctl"] + self.opts + ["foreground"],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        out.close()
        pc.wait_port(self.c2s_port, self.proc, "ejabberd", timeout=T * 3)
        pc.wait_port(self.s2s_port, self.proc, "ejabberd", timeout=T)

    def stop(self):
        """`ejabberdctl stop`, then a bounded wait for the foreground
        process; the whole process group is killed if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.ctl("stop")
        except Failure:
            pass
        try:
            self.proc.wait(T)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def version(self):
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "ejabberd"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"


async def scenario(sb, ej, dns):
    alice = await Client(f"alice@{SB}/desk", ALICE[1], sb.c2s_port, sb.ca).ready()
    bob = await Client(f"bob@{EJ}/phone", BOB[1], ej.c2s_port, sb.ca).ready()
    a_jid, b_jid = f"alice@{SB}", f"bob@{EJ}"

    alice.send_message(mto=b_jid, mbody="hello ejabberd", mtype="chat")
    await bob.message("alice's message", lambda m: m["body"] == "hello ejabberd" and m["from"].bare == a_jid)
    bob.send_message(mto=f"{a_jid}/desk", mbody="hello switchboard", mtype="chat")
    await alice.message("bob's message", lambda m: m["body"] == "hello switchboard" and m["from"].bare == b_jid)

    alice.send_presence(pto=b_jid, ptype="subscribe")
    await bob.presence("alice's subscription request",
                       lambda p: p["type"] == "subscribe" and p["from"].bare == a_jid)
    bob.send_presence(pto=a_jid, ptype="subscribed")
    await alice.presence("bob's approval", lambda p: p["type"] == "subscribed" and p["from"].bare == b_jid)
    await alice.presence("bob's presence", lambda p: p["type"] == "available" and p["from"] == f"{b_jid}/phone")
    bob.send_presence(pto=a_jid, ptype="subscribe")
    await alice.presence("bob's subscription request",
                         lambda p: p["type"] == "subscribe" and p["from"].bare == b_jid)
    alice.send_presence(pto=b_jid, ptype="subscribed")
    await bob.presence("alice's presence", lambda p: p["type"] == "available" and p["from"] == f"{a_jid}/desk")

    await alice["xep_0199"].ping(jid=EJ, timeout=T)
    await bob["xep_0199"].ping(jid=SB, timeout=T)
    v = await alice["xep_0092"].get_version(EJ, timeout=T)
    if "ejabberd" not in str(v["software_version"]["name"]):
        raise Failure(f"{EJ}'s version, asked by alice: {v}")
    v = await bob["xep_0092"].get_version(SB, timeout=T)
    if str(v["software_version"]["name"]) != "Switchboard":
        raise Failure(f"{SB}'s version, asked by bob: {v}")

    links = sb.cli("s2s")
    for want in (f"{SB} -> {EJ} established (certificate)", f"{SB} <- {EJ} established (certificate)"):
        if want not in links:
            raise Failure(f"`switchboard s2s` does not show {want!r}:\n{links}")
    asked = dns.asked()
    for name in (f"_xmpp-server._tcp.{EJ}", f"_xmpp-server._tcp.{SB}"):
        if name not in asked:
            raise Failure(f"nobody asked dnsmasq for {name}")

    bob.disconnect()
    ej.stop()
    m = alice.make_message(mto=b_jid, mbody="still there?", mtype="chat")
    m["id"] = "gone-1"
    m.send()
    err = await alice.message("the bounce once ejabberd is gone",
                              lambda m: m["type"] == "error" and m["id"] == "gone-1")
    if err["error"]["condition"] not in ("remote-server-not-found", "remote-server-timeout"):
        raise Failure(f"the bounce once ejabberd is gone: {err}")
    alice.disconnect()
    await asyncio.sleep(0.3)
    return err["error"]["condition"]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("Usage: ")[1])
    binary = os.path.abspath(sys.argv[1])

    def on_term(*_):
        print("ejabberd federation: FAILED: interrupted by SIGTERM", flush=True)
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_term)
    scratch = tempfile.mkdtemp(prefix="ejabberd-federation-")
    sb = ej = dns = None
    ok = False
    try:
        ensure_ejabberd()
        ensure_dnsmasq()
        ca = Ca(scratch)
        (dns_port,) = pc.free_ports(1)
        ej = Ejabberd(scratch, ca, dns_port)
        sb = Switchboard(binary, scratch, ca, dns_port)
        dns = Dnsmasq(scratch, dns_port, {
            # ejabberd 23.01 looks SRV records up with the Erlang resolver
            # (dnsmasq, by its inetrc) but their targets' addresses with
            # the system's getaddrinfo: a target the system knows.
            SB: ("localhost", sb.s2s_port),
            EJ: (f"xmpp.{EJ}", ej.s2s_port),
        })
        sb.cli("user", "add", f"{ALICE[0]}@{SB}", stdin=ALICE[1] + "\n")
        ej.start()
        ej.ctl("register", BOB[0], EJ, BOB[1])
        sb.start()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            gone = loop.run_until_complete(asyncio.wait_for(scenario(sb, ej, dns), T * 8))
        except asyncio.TimeoutError:
            raise Failure(f"the scenario took more than {T * 8} s")
        except (IqError, IqTimeout) as e:
            raise Failure(f"{type(e).__name__}: {e.iq if hasattr(e, 'iq') else e}")
        finally:
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=5))
            loop.close()
        code = pc.stop(sb.proc, "switchboard")
        if code != 0:
            raise Failure(f"switchboard exited with {code} on SIGTERM")
        print(
            f"ejabberd federation: ejabberd {ej.version()} ({EJ}) and Switchboard ({SB}), found through "
            f"dnsmasq's SRV records, certificates from a private CA under secure auth: messages, "
            f"subscriptions and presence both ways, pings and versions across, both links listed; with "
            f"ejabberd stopped a message bounces with {gone}: OK",
            flush=True,
        )
        ok = True
    except Failure as e:
        print(f"ejabberd federation: FAILED: {e}", flush=True)
    except Exception as e:  # a bug here, or a surprise: with where it happened
        import traceback

        traceback.print_exc()
        print(f"ejabberd federation: FAILED: {type(e).__name__}: {e}", flush=True)
    finally:
        try:
            if sb and sb.proc and sb.proc.poll() is None:
                sb.proc.terminate()
                try:
                    sb.proc.wait(5)
                except subprocess.TimeoutExpired:
                    sb.proc.kill()
                    sb.proc.wait(5)
            if ej:
                ej.stop()
            if dns and dns.proc.poll() is None:
                dns.proc.terminate()
                dns.proc.wait(5)
            if not ok:
                report = ""
                if ej:
                    report += "--- last lines of ejabberd's log\n" + pc.tail(ej.log, 40)
                    report += "--- ejabberd's output\n" + pc.tail(os.path.join(ej.dir, "ejabberd.out"), 15)
                if sb:
                    report += "--- last lines of Switchboard's log\n" + pc.tail(sb.log, 30)
                if dns:
                    report += "--- dnsmasq's log\n" + pc.tail(dns.log, 20)
                sys.stderr.write(report)
                sys.stderr.flush()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
