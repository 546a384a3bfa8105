#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""env_watch.py DIR STATE: until SIGTERM, record when this machine could not
run a timing test fairly, so that the test can set those periods aside
instead of blaming the program under test for them.

Three kinds of window, each with its wall-clock start and end:
  stall  a 100 ms sleep took more than 1 s: nothing of ours was scheduled
         (CPU starvation, a paused VM, reclaim);
  io     writing and fsyncing 4 KiB in DIR took more than 1 s;
  space  DIR's file system had less than 128 MiB free, or the probe write
         failed (ENOSPC, EIO): a publication there may fail too.

STATE is rewritten atomically whenever a window opens or closes, as JSON:
[{"kind": "stall", "start": 1764561600.1, "end": 1764561810.3}, ...], with
"end": null while a window is open. A rewrite that fails (a full disk) is
retried on the next tick; nothing is lost but the delay.
"""
import json
import os
import signal
import sys
import threading
import time

TICK = 0.1
STALL = 1.0
IO_SLOW = 1.0
LOW_SPACE = 128 << 20

lock = threading.Lock()
windows = []  # dicts: kind, start, end (None while open)
is_open = {}  # kind -> the open window
dirty = False
stop = threading.Event()
probe_t0 = None  # wall time the disk probe in progress started, or None


def mark(kind, bad, start, now):
    """Open the kind's window at start when bad, close it at now when not."""
    global dirty
    with lock:
        w = is_open.get(kind)
        if bad and w is None:
            w = {"kind": kind, "start": start, "end": None}
            windows.append(w)
            is_open[kind] = w
            dirty = True
        elif not bad and w is not None:
            w["end"] = now
            del is_open[kind]
            dirty = True


def save(path):
    global dirty
    with lock:
        if not dirty:
            return
        data = json.dumps(windows)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        return
    with lock:
        dirty = data != json.dumps(windows)


def probe_disk(d):
    """A small durable write, as a publication makes; its time and outcome."""
    global probe_t0
    path = os.path.join(d, ".env_watch.probe")
    while not stop.is_set():
        t0 = probe_t0 = time.time()
        ok = True
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
            st = os.statvfs(d)
            ok = st.f_bavail * st.f_frsize >= LOW_SPACE
        except OSError:
            ok = False
        probe_t0 = None
        mark("space", not ok, t0, time.time())
        stop.wait(1.0)


def main():
    d, state = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=probe_disk, args=(d,), daemon=True).start()
    global dirty
    dirty = True  # an empty list says the watch is running
    save(state)
    last = time.monotonic(), time.time()
    while not stop.is_set():
        time.sleep(TICK)
        now = time.monotonic(), time.time()
        if now[0] - last[0] > STALL:
            mark("stall", True, last[1], now[1])
            mark("stall", False, last[1], now[1])
        # Judged from here, so that a probe stuck in fsync opens its window
        # while it is stuck, not only once it returns.
        t0 = probe_t0
        mark("io", t0 is not None and now[1] - t0 > IO_SLOW, t0, now[1])
        last = now
        save(state)
    with lock:
        for w in is_open.values():
            w["end"] = time.time()
        is_open.clear()
        dirty = True
    save(state)


if __name__ == "__main__":
    main()
