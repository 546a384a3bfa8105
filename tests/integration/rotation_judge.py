#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""rotation_judge.py AGENT_LOG WINDOWS ROTATIONS: judge the agent's renewal
schedule from its log (test_agent_rotation.sh).

For each identity, each published certificate's planned renewal (renew_at)
must lie between 70 % and 90 % of its usable lifetime counted from when it
was published, and the next issuance must start at that time, for the
planned reason (renewal-time): not before, and after by at most 5 s of a
loaded machine; it must publish within 5 s, and no certificate may expire
before its successor is published. renew_at is logged in whole seconds, hence the 1 s
allowances. A warning (a failed attempt, a damaged set) is a failure.

WINDOWS is env_watch.py's record of when the machine itself could not run
the agent fairly (stalled, slow or failing disk). A renewal whose interval
overlaps such a window, and a warning inside one, prove nothing either way:
they are listed and set aside, and the test watches longer instead.

Exit 0 when every identity has ROTATIONS judged renewals and nothing was
wrong, 1 when something was wrong, 2 when nothing was wrong but there are
too few judged renewals yet.
"""
import datetime
import json
import re
import sys

MARGIN = 2.0  # seconds around a window that it still excuses

PUB = re.compile(r'ts=(\S+)Z .*identity=(\S+) issuer=\S+ serial=\S+ '
                 r'not_after=(\d+) .*renew_at=(\d+) .*msg="published"')
ISSUING = re.compile(r'ts=(\S+)Z .*identity=(\S+) reason=(\S+) msg="issuing"')
WARN = re.compile(r'ts=(\S+)Z level=(warn|error) ')


def ts(s):
    t = datetime.datetime.fromisoformat(s)
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def read_windows(path):
    try:
        with open(path) as f:
            ws = json.load(f)
    except (OSError, ValueError):
        return None
    return [(w["kind"], w["start"], w["end"] if w["end"] is not None else float("inf"))
            for w in ws]


def excused(windows, a, b):
    """The window that overlaps [a, b], if any."""
    for w in windows:
        if w[1] - MARGIN <= b and a <= w[2] + MARGIN:
            return w
    return None


def read_log(path):
    events = {}  # identity -> [(ts, "pub", not_after, renew_at) | (ts, "start", reason)]
    warns = []
    for line in open(path, errors="replace"):
        m = PUB.search(line)
        if m:
            events.setdefault(m.group(2), []).append(
                (ts(m.group(1)), "pub", int(m.group(3)), int(m.group(4))))
            continue
        m = ISSUING.search(line)
        if m:
            events.setdefault(m.group(2), []).append((ts(m.group(1)), "start", m.group(3)))
            continue
        m = WARN.search(line)
        if m:
            warns.append((ts(m.group(1)), line.strip()))
    return events, warns


def judge_identity(ident, evs, windows, rotations):
    """(bad, judged, report line) for one identity's events."""
    pubs = [i for i, e in enumerate(evs) if e[1] == "pub"]
    out, bad, judged = [], False, 0
    for n, i in enumerate(pubs):
        t, _, na, at = evs[i]
        nxt = pubs[n + 1] if n + 1 < len(pubs) else None
        # The first issuance started after this publication.
        start = next((e for e in evs[i + 1:nxt] if e[1] == "start"), None)
        end = evs[nxt][0] if nxt is not None else (start[0] if start else t)
        w = excused(windows, t, max(end, at))
        if w:
            out.append(f"set-aside({w[0]})")
            continue
        life = na - t
        if not (0.70 * life - 1 <= at - t <= 0.90 * life + 1):
            bad = True
            out.append(f"BAD-PLAN:{(at - t) / life:.0%}")
        if nxt is None:
            continue
        s = start[0] if start else evs[nxt][0]
        out.append(f"{s - t:.1f}s={(s - t) / life:.0%}")
        if not start or start[2] != "renewal-time":
            bad = True
            out.append(f"BAD-REASON:{start[2] if start else 'none'}")
        elif not (-0.001 <= s - at <= 5.0):
            bad = True
            out.append(f"BAD-START:{s - at:+.2f}s")
        elif evs[nxt][0] - s > 5.0:
            bad = True
            out.append(f"BAD-SLOW:{evs[nxt][0] - s:.1f}s")
        else:
            judged += 1
        if evs[nxt][0] > na:
            bad = True
            out.append(f"BAD-EXPIRED:{evs[nxt][0] - na:.1f}s-before-successor")
    line = f"{ident}: {judged} judged renewals of {len(pubs) - 1}: {' '.join(out)}"
    if judged < rotations:
        line += f" (want {rotations})"
    return bad, judged, line


def main():
    log, wpath, rotations = sys.argv[1], sys.argv[2], int(sys.argv[3])
    windows = read_windows(wpath)
    if windows is None:
        print(f"rotation_judge: no readable window record {wpath}")
        return 1
    events, warns = read_log(log)
    bad = len(events) != 2
    enough = True
    for ident in sorted(events):
        b, judged, line = judge_identity(ident, events[ident], windows, rotations)
        print(line)
        bad |= b
        enough &= judged >= rotations
    for t, line in warns:
        w = excused(windows, t, t)
        if w:
            print(f"set aside (machine: {w[0]}): {line}")
        else:
            bad = True
            print(f"WARNING: {line}")
    for kind, a, b in windows:
        end = "still open" if b == float("inf") else f"{b - a:.1f} s"
        print(f"machine window: {kind} from {datetime.datetime.fromtimestamp(a, datetime.timezone.utc):%H:%M:%S}, {end}")
    return 1 if bad else 0 if enough else 2


if __name__ == "__main__":
    sys.exit(main())
