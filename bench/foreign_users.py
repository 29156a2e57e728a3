#!/usr/bin/env python3
"""Bulk accounts for the benchmark's other targets, written without the servers.

  foreign_users.py prosody DATA_DIR --users N [--prefix user] [--password pw]
                   [--iterations 4096] [--roster-contacts R --roster-online M]
  foreign_users.py xep0227 FILE --users N [...same options...]

`prosody` writes Prosody's internal storage directly
(DATA_DIR/localhost/accounts/<user>.dat, and roster/<user>.dat with
--roster-contacts): the same Lua tables `mod_auth_internal_hashed` writes
with `password_hash = "SHA-256"` (hex stored and server keys, salt,
iteration count). `prosodyctl register` starts a Lua interpreter per account
(about 0.3 s each: nearly an hour for 10,000 accounts); this takes seconds.

`xep0227` writes one XEP-0227 (portable import/export) file with plain
passwords, loaded by `ejabberdctl import_piefxis FILE` into a running
ejabberd, which computes its own SCRAM keys with its configured hash and
iteration count. `ejabberdctl register` starts an Erlang node per account
(about 1 s each); one import is one node.

Every account shares one salt, so PBKDF2 runs once here: the servers never
run PBKDF2 at login (they store the salted keys), and the load generator
derives each account's keys once and caches them, so the shared salt
changes no measured cost.

Rosters use switchboard-mkusers' bipartite layout: accounts 0..M-1 are the
online side, M..N-1 the login side; login account M+j has online accounts
(j+t) mod M, t = 0..R-1, as contacts, all with subscription `both`, and
they have it back.
"""

import argparse
import hashlib
import hmac
import os
import sys
from xml.sax.saxutils import quoteattr

DOMAIN = "localhost"
SALT = "switchboard-bench-salt"


def scram_keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).hexdigest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).hexdigest()
    return stored_key, server_key


def contacts(args):
    """{account index: [contact indices]} for the bipartite roster layout."""
    n, r, m = args.users, args.roster_contacts, args.roster_online
    out = {i: [] for i in range(n)}
    if not r:
        return out
    if m <= 0 or n - m <= 0 or r > m:
        sys.exit("foreign_users: need 0 < --roster-online < --users and --roster-contacts <= --roster-online")
    for j in range(n - m):
        for t in range(r):
            a, b = m + j, (j + t) % m
            out[a].append(b)
            out[b].append(a)
    return out


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_prosody(args):
    stored, server = scram_keys(args.password, SALT, args.iterations)
    # Prosody's datamanager writes every non-alphanumeric byte of a
    # host name as %xx ("b.test" -> "b%2etest").
    host = os.path.join(args.out, "".join(c if c.isalnum() else "%%%02x" % ord(c) for c in args.domain))
    accounts = os.path.join(host, "accounts")
    rosters = os.path.join(host, "roster")
    os.makedirs(accounts, exist_ok=True)
    record = (
        "return {\n"
        f'\t["iteration_count"] = {args.iterations};\n'
        f'\t["salt"] = {lua_string(SALT)};\n'
        f'\t["server_key"] = {lua_string(server)};\n'
        f'\t["stored_key"] = {lua_string(stored)};\n'
        "};\n"
    )
    roster = contacts(args)
    if args.roster_contacts:
        os.makedirs(rosters, exist_ok=True)
    for i in range(args.users):
        name = f"{args.prefix}{i}"
        with open(os.path.join(accounts, name + ".dat"), "w") as f:
            f.write(record)
        if args.roster_contacts:
            items = ["return {", '\t[false] = { ["version"] = 1; };']
            for c in roster[i]:
                jid = f"{args.prefix}{c}@{args.domain}"
                items.append(f'\t[{lua_string(jid)}] = {{ ["subscription"] = "both"; ["groups"] = {{}}; }};')
            items.append("};\n")
            with open(os.path.join(rosters, name + ".dat"), "w") as f:
                f.write("\n".join(items))


def write_xep0227(args):
    roster = contacts(args)
    with open(args.out, "w") as f:
        f.write("<?xml version='1.0' encoding='UTF-8'?>\n")
        f.write("<server-data xmlns='urn:xmpp:pie:0'>\n")
        f.write(f"<host jid={quoteattr(args.domain)}>\n")
        for i in range(args.users):
            name = f"{args.prefix}{i}"
            f.write(f"<user name={quoteattr(name)} password={quoteattr(args.password)}>")
            if roster[i]:
                f.write("<query xmlns='jabber:iq:roster'>")
                for c in roster[i]:
                    jid = f"{args.prefix}{c}@{args.domain}"
                    f.write(f"<item jid={quoteattr(jid)} subscription='both'/>")
                f.write("</query>")
            f.write("</user>\n")
        f.write("</host>\n</server-data>\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("format", choices=["prosody", "xep0227"])
    p.add_argument("out")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--prefix", default="user")
    p.add_argument("--domain", default=DOMAIN)
    p.add_argument("--password", default="pw")
    p.add_argument("--iterations", type=int, default=4096)
    p.add_argument("--roster-contacts", type=int, default=0)
    p.add_argument("--roster-online", type=int, default=0)
    args = p.parse_args()
    if args.format == "prosody":
        write_prosody(args)
    else:
        write_xep0227(args)


if __name__ == "__main__":
    main()
