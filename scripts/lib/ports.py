#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A free TCP port on 127.0.0.1 for a test's listener, safe when tests run
side by side.

Asking the kernel for port 0 and closing the socket hands out an ephemeral
port, and the next outgoing connection of any parallel test may take it
before the listener binds (CI saw EADDRINUSE that way). So ports come from
below the ephemeral range, where the kernel never picks a local port on its
own, and each one is reserved across processes with an atomic mkdir in
RESERVED until its owner releases it.

CLI: ports.py [--owner FILE]  prints one port and appends it to FILE;
     ports.py --release FILE  releases every port listed in FILE.
"""
import atexit
import errno
import os
import random
import socket
import sys
import time

RESERVED = "/tmp/duet-ports"
STALE_S = 3 * 3600  # a reservation this old outlived its test (killed by -9)
LOW = 20000


def _range():
    """[lo, hi): the ports below the kernel's ephemeral range, or above it
    when that range starts too low to leave room."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo, eph_hi = (int(x) for x in f.read().split())
    except OSError:
        eph_lo, eph_hi = 32768, 60999
    if eph_lo - LOW >= 2000:
        return LOW, eph_lo
    return eph_hi + 1, 65536


def _claim(port):
    path = f"{RESERVED}/{port}"
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        pass
    try:
        if time.time() - os.stat(path).st_mtime < STALE_S:
            return False
        os.rmdir(path)
        os.mkdir(path)
        return True
    except OSError:
        return False  # another process reclaimed it first


def _bindable(port):
    # Without SO_REUSEADDR, so a port with a TIME_WAIT or any listener on
    # it is passed over too.
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        return False
    finally:
        s.close()


def reserve(owner=None):
    """One port, reserved until release(); listed in the file owner if given."""
    os.makedirs(RESERVED, mode=0o1777, exist_ok=True)
    lo, hi = _range()
    for _ in range(1000):
        port = random.randrange(lo, hi)
        if not _claim(port):
            continue
        if _bindable(port):
            if owner:
                with open(owner, "a") as f:
                    f.write(f"{port}\n")
            return port
        release(port)
    raise RuntimeError(f"no free port in {lo}-{hi - 1} after 1000 tries")


def reserve_until_exit():
    """One port for this Python process, released when it exits."""
    port = reserve()
    atexit.register(release, port)
    return port


def release(port):
    try:
        os.rmdir(f"{RESERVED}/{port}")
    except OSError:
        pass


def release_listed(owner):
    try:
        with open(owner) as f:
            for line in f:
                if line.strip().isdigit():
                    release(int(line))
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--release"] and len(args) == 2:
        release_listed(args[1])
    elif not args or (args[:1] == ["--owner"] and len(args) == 2):
        print(reserve(args[1] if args else None))
    else:
        sys.exit("usage: ports.py [--owner FILE] | --release FILE")
