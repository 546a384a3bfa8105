#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Hostile clients against a duet-sidecar inbound (TLS) listener, for
# test_sidecar_hostile.sh. Each mode prints one result line; every loop and
# wait is bounded. Loopback only.
import os
import socket
import ssl
import struct
import sys
import time

mode, port = sys.argv[1], int(sys.argv[2])
addr = ("127.0.0.1", port)


def closed_within(s, secs):
    """Seconds until the peer closed s (reading and dropping data), or None."""
    s.settimeout(0.2)
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs:
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
    return None


if mode == "garbage":
    s = socket.create_connection(addr)
    s.sendall(os.urandom(4096))
    t = closed_within(s, 5)
    print("closed" if t is not None else "open")
elif mode == "half-handshake":
    # A TLS record header and the start of a ClientHello, then silence.
    s = socket.create_connection(addr)
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    t = closed_within(s, 10)
    print("closed %.1f" % t if t is not None else "open")
elif mode == "resets":
    n = int(sys.argv[3])
    done = 0
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            s.connect(addr)
            done += 1
        except OSError:
            pass
        s.close()  # linger 0: a reset
        if time.monotonic() - t0 > 120:
            break
    print("resets %d" % done)
elif mode == "hold":
    # n idle connections held open for secs seconds.
    n, secs = int(sys.argv[3]), float(sys.argv[4])
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(addr)
        socks.append(s)
    time.sleep(secs)
    print("held %d" % len(socks))
elif mode == "no-read":
    # Completes mTLS, then sends requests without ever reading the answers.
    certdir = sys.argv[3]
    ctx = ssl.create_default_context(cafile=certdir + "/root.crt")
    ctx.load_cert_chain(certdir + "/productA.crt", certdir + "/productA.key")
    s = ctx.wrap_socket(socket.create_connection(addr), server_hostname="127.0.0.1")
    s.settimeout(2)
    sent = 0
    req = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
    t0 = time.monotonic()
    try:
        while sent < 20000 and time.monotonic() - t0 < 15:
            s.sendall(req)
            sent += 1
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    hold = float(sys.argv[4])
    time.sleep(hold)
    print("sent %d" % sent)
    s.close()
elif mode == "queued":
    # Bytes the kernel holds for process PORT's TCP sockets (here a PID):
    # "tx=N rx=M", send queues (unacknowledged and unsent) and receive queues.
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % port):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (port, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    tx = rx = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                col = line.split()
                if col[9] in inodes:
                    t, r = col[4].split(":")
                    tx += int(t, 16)
                    rx += int(r, 16)
    print("tx=%d rx=%d" % (tx, rx))
elif mode in ("closed-after", "tls-closed-after"):
    # One request, then wait for the sidecar to close: prints the seconds.
    limit = float(sys.argv[3])
    s = socket.create_connection(addr)
    if mode == "tls-closed-after":
        certdir, name = sys.argv[4], sys.argv[5]
        ctx = ssl.create_default_context(cafile=certdir + "/root.crt")
        ctx.load_cert_chain(certdir + "/" + name + ".crt", certdir + "/" + name + ".key")
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    t0 = time.monotonic()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    first = s.recv(65536)
    if not first.startswith(b"HTTP/1."):
        sys.exit("no answer: %r" % first[:40])
    s.settimeout(0.2)
    while time.monotonic() - t0 < limit:
        try:
            if s.recv(65536) == b"":
                break
        except socket.timeout:
            continue
        except (OSError, ssl.SSLError):
            break
    else:
        print("open")
        sys.exit(0)
    print("closed %.1f" % (time.monotonic() - t0))
elif mode == "resume-across":
    # A session from listener PORT resumed on listener PORT2.
    port2, certdir, name = int(sys.argv[3]), sys.argv[4], sys.argv[5]
    ctx = ssl.create_default_context(cafile=certdir + "/root.crt")
    ctx.load_cert_chain(certdir + "/" + name + ".crt", certdir + "/" + name + ".key")

    def get(p, sess=None):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", p), timeout=5),
                            server_hostname="127.0.0.1", session=sess)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (OSError, ssl.SSLError):
            pass
        return s, out

    s1, out = get(port)
    if not out.startswith(b"HTTP/1."):
        sys.exit("first connection failed")
    same, _ = get(port, s1.session)
    s2, out2 = get(port2, s1.session)
    print("same-listener-reused=%s other-listener-reused=%s other-answer=%s" % (
        same.session_reused, s2.session_reused, "yes" if out2.startswith(b"HTTP/1.") else "no"))
else:
    sys.exit("unknown mode " + mode)
