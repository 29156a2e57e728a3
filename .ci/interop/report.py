#!/usr/bin/env python3
"""Reads the log of Smack's integration test framework and reports per
test class; checks the outcome against the committed lists.

The framework logs (java.util.logging) one line when a test starts and
one when it ends:

    INFO: RosterIntegrationTest.subscribeRequestListenerTest (Normal) Start
    INFO: RosterIntegrationTest.subscribeRequestListenerTest (Normal) Success
    SEVERE: MultiUserChatEntityIntegrationTest.mucTestForDiscoveringRoomItems (Normal) Failed
    INFO: MultiUserChatOccupantIntegrationTest.mucJoinRoomWithPublicLoggingTest (Normal) is not possible

one line for a class it could not run at all:

    INFO: Could not run org.jivesoftware.smackx.mam.MamIntegrationTest because: <reason>

and, at the end, each failure again with its cause:

    SEVERE: <Class.method> (Normal) failed: <exception>: <message>

A test that started and never ended (the run was cut off by the time
limit) counts as failed, "did not finish".

Writes OUT/results.tsv (class, method, result, detail) and
OUT/summary.txt, prints the summary, and exits 1 when a test listed in
the expected-pass list did not pass, or when a test that did not pass is
in neither list (every test not passing must be listed with its reason).
"""

import argparse
import re
import sys
from collections import OrderedDict

TEST = re.compile(
    r"^(?:INFO|SEVERE|WARNING): (?P<cls>\w+)\.(?P<method>\w+) \((?P<kind>[^)]*)\) "
    r"(?P<what>Start|Success|Failed|is not possible)\s*$"
)
CLASS_SKIP = re.compile(r"^INFO: Could not run (?:[\w.]+\.)?(?P<cls>\w+) because: (?P<why>.*)$")
FAILURE = re.compile(r"^SEVERE: (?P<cls>\w+)\.(?P<method>\w+) \([^)]*\) failed: (?P<why>.*)$")
IMPOSSIBLE = re.compile(r"^INFO: (?P<cls>\w+)\.(?P<method>\w+) \([^)]*\) is not possible")


def read_list(path):
    """Lines of a list file: `name` or `name<whitespace>reason`; `#` comments."""
    entries = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            name = parts[0]
            reason = parts[1].strip() if len(parts) > 1 else ""
            entries[name] = reason
    return entries


def parse(log_path):
    results = OrderedDict()  # (cls, method) -> [result, detail]
    skipped_classes = OrderedDict()  # cls -> reason
    with open(log_path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        m = TEST.match(line)
        if m:
            key = (m["cls"], m["method"])
            what = m["what"]
            if what == "Start":
                results.setdefault(key, ["fail", "did not finish (the run was cut off)"])
            elif what == "Success":
                results[key] = ["pass", ""]
            elif what == "Failed":
                results[key] = ["fail", ""]
            else:
                results[key] = ["skip", "not possible"]
            continue
        m = CLASS_SKIP.match(line)
        if m:
            skipped_classes[m["cls"]] = m["why"].strip()
            continue
        m = FAILURE.match(line)
        if m:
            key = (m["cls"], m["method"])
            why = m["why"].strip()
            # The cause often says more than the assertion ("No response
            # received within reply timeout" under a wrapped exception).
            for nxt in lines[i + 1:i + 6]:
                if nxt.startswith("Caused by:"):
                    why += " | " + nxt[len("Caused by:"):].strip()
                    break
            results.setdefault(key, ["fail", ""])
            if results[key][0] == "fail":
                results[key][1] = why
            continue
    # Why a test was impossible: the framework logs the exception on the
    # lines after "is not possible" only at a finer level, so keep the
    # generic word unless a list gives the reason.
    return results, skipped_classes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--known", required=True)
    ap.add_argument("--only", default="", help="comma-separated classes that were run")
    a = ap.parse_args()

    results, skipped_classes = parse(a.log)
    expected = read_list(a.expected)
    known = read_list(a.known)
    only = {c.strip() for c in a.only.split(",") if c.strip()}

    def in_scope(name):
        return not only or name.split(".")[0] in only

    with open(f"{a.out}/results.tsv", "w", encoding="utf-8") as f:
        f.write("class\tmethod\tresult\tdetail\n")
        for (cls, method), (res, why) in results.items():
            f.write(f"{cls}\t{method}\t{res}\t{why}\n")
        for cls, why in skipped_classes.items():
            f.write(f"{cls}\t*\tskip\t{why}\n")

    per_class = OrderedDict()
    for (cls, _), (res, _) in sorted(results.items()):
        c = per_class.setdefault(cls, {"pass": 0, "fail": 0, "skip": 0})
        c[res] += 1
    totals = {"pass": 0, "fail": 0, "skip": 0}
    out = []
    out.append("XMPP Interop Testing (Smack integration test framework) against Switchboard")
    out.append("")
    width = max([len(c) for c in list(per_class) + list(skipped_classes)] + [10])
    out.append(f"{'test class':<{width}}  pass  fail  skip")
    for cls, c in per_class.items():
        out.append(f"{cls:<{width}}  {c['pass']:>4}  {c['fail']:>4}  {c['skip']:>4}")
        for k in totals:
            totals[k] += c[k]
    for cls, why in sorted(skipped_classes.items()):
        out.append(f"{cls:<{width}}     -     -   all  ({why})")
    out.append("")

    problems = []
    not_passing = []
    for (cls, method), (res, why) in results.items():
        name = f"{cls}.{method}"
        if res == "pass":
            if name in known or cls in known:
                out.append(f"now passes (move it to expected-pass.txt): {name}")
            continue
        reason = known.get(name) or known.get(cls)
        not_passing.append(f"  {res.upper()} {name}: {why}" + (f"\n       known: {reason}" if reason else ""))
        if name in expected or cls in expected:
            problems.append(f"REGRESSION: {name} is expected to pass but did not ({res}: {why})")
        elif reason is None:
            problems.append(f"UNLISTED: {name} did not pass ({res}: {why}) and is not in known-failures.txt")
    for cls, why in skipped_classes.items():
        if cls in expected:
            problems.append(f"REGRESSION: {cls} is expected to run but was skipped ({why})")
        elif cls not in known:
            problems.append(f"UNLISTED: {cls} was skipped ({why}) and is not in known-failures.txt")
    for name in expected:
        cls, _, method = name.partition(".")
        if not in_scope(name):
            continue
        ran = (cls, method) in results if method else any(k[0] == cls for k in results)
        if not ran and cls not in skipped_classes:
            problems.append(f"REGRESSION: {name} is expected to pass but did not run")

    if not_passing:
        out.append("Tests that did not pass:")
        out.extend(not_passing)
        out.append("")
    ran = totals["pass"] + totals["fail"] + totals["skip"]
    out.append(
        f"interop totals: {totals['pass']} of {ran} tests passed, {totals['fail']} did not, "
        f"{totals['skip']} not possible; {len(skipped_classes)} classes skipped by the framework"
    )
    if problems:
        out.append("")
        out.extend(problems)
        out.append(f"interop: FAILED ({len(problems)} problems above)")
    else:
        out.append("interop: every expected test passed; every other test is listed with its reason")
    text = "\n".join(out) + "\n"
    with open(f"{a.out}/summary.txt", "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)
    if ran == 0:
        print("interop: FAILED: the framework ran no test")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
