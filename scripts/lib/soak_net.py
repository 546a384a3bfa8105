# SPDX-License-Identifier: Apache-2.0
"""Helper processes for scripts/lib/soak.py's network scenarios.

usage: soak_net.py backend PORT
       soak_net.py attack KIND PORT SECS [ARGS...]

`backend` is an HTTP/1.0 backend on 127.0.0.1:PORT whose fault mode is set
by one word a line on stdin (normal, refuse, reset, stall, half, stats); it
answers each with one line on stdout and exits at end of input (or after an
hour). `attack` runs one kind of hostile client against a duet-sidecar
inbound listener for SECS seconds and prints one JSON line of counters:
hsflood (full TLS handshakes without a client certificate), hello
(ClientHellos left unanswered), slowloris (a ClientHello a byte a second),
malformed (oversized, garbage and truncated TLS records), noread (mTLS
clients that pipeline requests and never read the answers). Every rate and
count is bounded; only 127.0.0.1 is ever contacted.
"""
import json
import os
import selectors
import socket
import ssl
import struct
import sys
import threading
import time

ADDR = "127.0.0.1"
BODY = b"duet soak backend\n" * 60  # 1080 bytes
HEAD = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)


# ---- the faulty backend -------------------------------------------------------------

def backend(port):
    """One thread, one selector: the listening socket, the connections, stdin."""
    sel = selectors.DefaultSelector()
    state = {"mode": "normal", "lsock": None}
    conns = {}  # socket -> [request bytes, accepted at]
    seen = {}   # mode -> connections accepted in it

    def listen():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ADDR, port))
        s.listen(512)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "listen")
        state["lsock"] = s

    def unlisten():
        s = state["lsock"]
        if s is not None:
            sel.unregister(s)
            s.close()
            state["lsock"] = None

    def drop(c, reset=False):
        if reset:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sel.unregister(c)
        conns.pop(c, None)
        c.close()

    def answer(c):
        mode = state["mode"]
        try:
            if mode == "normal":
                c.sendall(HEAD + BODY)
            elif mode == "half":
                c.sendall(HEAD + BODY[:len(BODY) // 2])
            else:
                return  # stall: the request is read, never answered
        except OSError:
            pass
        drop(c)

    listen()
    sel.register(sys.stdin, selectors.EVENT_READ, "ctl")
    end = time.monotonic() + 3600
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.5):
            if key.data == "ctl":
                line = sys.stdin.readline()
                if not line:
                    return
                cmd = line.strip()
                if cmd == "stats":
                    print(json.dumps({"seen": seen, "open": len(conns)}), flush=True)
                    continue
                state["mode"] = cmd
                if cmd == "refuse":
                    unlisten()
                elif state["lsock"] is None:
                    listen()
                print("ok " + cmd, flush=True)
            elif key.data == "listen":
                for _ in range(64):
                    try:
                        c, _ = key.fileobj.accept()
                    except BlockingIOError:
                        break
                    seen[state["mode"]] = seen.get(state["mode"], 0) + 1
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, "conn")
                    conns[c] = [b"", time.monotonic()]
                    if state["mode"] == "reset":
                        drop(c, reset=True)
            else:
                c = key.fileobj
                try:
                    b = c.recv(65536)
                except OSError:
                    b = b""
                if not b:
                    drop(c)
                    continue
                st = conns[c]
                if b"\r\n\r\n" in st[0]:
                    continue  # answered or stalled: the rest is dropped
                st[0] += b
                if b"\r\n\r\n" in st[0]:
                    answer(c)
        # A stalled connection nobody closed is let go after two minutes.
        now = time.monotonic()
        for c in [c for c, st in conns.items() if now - st[1] > 120]:
            drop(c)


# ---- hostile clients ----------------------------------------------------------------

def client_ctx(certdir=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if certdir:
        ctx.load_cert_chain(f"{certdir}/tls.crt", f"{certdir}/tls.key")
    return ctx


def hello_bytes(ctx):
    """The bytes of a fresh ClientHello (a new key share each time)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def connect_nb(port):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((ADDR, port))
    except BlockingIOError:
        pass
    return s


class Watch:
    """Sockets waiting for the server to close them: how, and how fast."""

    def __init__(self, limit):
        self.sel = selectors.DefaultSelector()
        self.limit = limit
        self.closed = {}  # how -> count
        self.times = []   # seconds from the last byte sent to the close
        self.got = 0      # bytes the server sent

    def add(self, s, tag, t0):
        self.sel.register(s, selectors.EVENT_READ, [tag, t0])

    def count(self):
        return len(self.sel.get_map())

    def _done(self, s, how):
        tag, t0 = self.sel.get_key(s).data
        self.sel.unregister(s)
        s.close()
        k = f"{tag}:{how}" if tag else how
        self.closed[k] = self.closed.get(k, 0) + 1
        if how != "left-open":
            self.times.append(time.monotonic() - t0)

    def poll(self, timeout):
        if not self.sel.get_map():
            time.sleep(timeout)
            return
        for key, _ in self.sel.select(timeout):
            s = key.fileobj
            try:
                b = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                self._done(s, "reset")
                continue
            if not b:
                self._done(s, "eof")
            else:
                self.got += len(b)
        now = time.monotonic()
        for key in list(self.sel.get_map().values()):
            if now - key.data[1] > self.limit:
                self._done(key.fileobj, "left-open")

    def finish(self):
        for key in list(self.sel.get_map().values()):
            self._done(key.fileobj, "open-at-end")

    def report(self):
        t = sorted(self.times)
        return {"closed": self.closed, "close_s_p50": round(t[len(t) // 2], 2) if t else None,
                "close_s_max": round(t[-1], 2) if t else None, "server_bytes": self.got}


def paced(rate, end, n_max):
    """Yields at most n_max times, `rate` a second, until end."""
    t = time.monotonic()
    for _ in range(n_max):
        now = time.monotonic()
        if now >= end:
            return
        if t > now:
            time.sleep(min(t - now, end - now))
        t += 1.0 / rate
        yield


def attack_hello(port, secs, rate, hold):
    """ClientHellos sent and left: each costs the server a key share and a signature."""
    ctx = client_ctx()
    w = Watch(hold)
    end = time.monotonic() + secs
    sent = refused = 0
    for _ in paced(rate, end, int(rate * secs) + 1):
        try:
            s = socket.create_connection((ADDR, port), timeout=1)
            s.sendall(hello_bytes(ctx))
            s.setblocking(False)
            w.add(s, "", time.monotonic())
            sent += 1
        except OSError:
            refused += 1
        w.poll(0)
    while w.count() and time.monotonic() < end + 1:
        w.poll(0.1)
    w.finish()
    return dict(sent=sent, connect_failed=refused, **w.report())


def attack_slowloris(port, secs, conns):
    """conns connections, each sending a ClientHello one byte a second; reopened once closed."""
    ctx = client_ctx()
    sel = selectors.DefaultSelector()
    end = time.monotonic() + secs
    opened = closed = bytes_sent = 0
    lived = []

    def open_one():
        nonlocal opened
        s = connect_nb(port)
        sel.register(s, selectors.EVENT_READ, [hello_bytes(ctx), 0, time.monotonic()])
        opened += 1

    for _ in range(conns):
        open_one()
    next_tick = time.monotonic()
    while time.monotonic() < end:
        timeout = max(0.0, min(next_tick, end) - time.monotonic())
        for key, _ in sel.select(timeout):
            try:
                b = key.fileobj.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            if not b:
                lived.append(time.monotonic() - key.data[2])
                sel.unregister(key.fileobj)
                key.fileobj.close()
                closed += 1
        if time.monotonic() >= next_tick:
            next_tick += 1.0
            for key in list(sel.get_map().values()):
                hello, i = key.data[0], key.data[1]
                if i < len(hello):
                    try:
                        if key.fileobj.send(hello[i:i + 1]) == 1:
                            key.data[1] += 1
                            bytes_sent += 1
                    except OSError:
                        pass
            for _ in range(conns - len(sel.get_map())):
                open_one()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    lived.sort()
    return {"opened": opened, "closed_by_server": closed, "bytes_sent": bytes_sent,
            "lived_s_p50": round(lived[len(lived) // 2], 1) if lived else None,
            "lived_s_max": round(lived[-1], 1) if lived else None}


def malformed_payloads(ctx):
    hello = hello_bytes(ctx)
    return [
        # A record longer than TLS allows (2^14 + 2048), body and all.
        ("oversized", b"\x16\x03\x01\xff\xff" + os.urandom(65535)),
        # A handshake message that says it is 16 MiB long, in full-size records.
        ("huge-msg", b"\x16\x03\x01\x40\x00\x01\xff\xff\xff" + os.urandom(16380) +
         b"".join(b"\x16\x03\x01\x40\x00" + os.urandom(16384) for _ in range(3))),
        ("garbage", os.urandom(4096)),
        # A good ClientHello, then a record of a type that does not exist.
        ("bad-type", hello + b"\x63\x03\x03\x00\x10" + os.urandom(16)),
        # A thousand empty handshake records.
        ("empty-records", b"\x16\x03\x01\x00\x00" * 1000),
        # Half a ClientHello record, then silence (the handshake timeout's job).
        ("truncated", hello[:len(hello) // 2]),
    ]


def attack_malformed(port, secs, rate, hold):
    ctx = client_ctx()
    w = Watch(hold)
    end = time.monotonic() + secs
    kinds = malformed_payloads(ctx)
    sent = 0
    for i, _ in enumerate(paced(rate, end, int(rate * secs) + 1)):
        tag, data = kinds[i % len(kinds)]
        try:
            s = socket.create_connection((ADDR, port), timeout=1)
            s.settimeout(1)
            try:
                s.sendall(data)
            except OSError:
                pass  # the server closed before taking it all: that is an answer too
            s.setblocking(False)
            w.add(s, tag, time.monotonic())
            sent += 1
        except OSError:
            w.closed["connect-failed"] = w.closed.get("connect-failed", 0) + 1
        w.poll(0)
    while w.count() and time.monotonic() < end + 1:
        w.poll(0.1)
    w.finish()
    return dict(sent=sent, **w.report())


def attack_hsflood(port, secs, rate, threads):
    """Full handshakes without a client certificate (the sidecar must refuse
    every one); `threads` at a time, `rate` a second in all."""
    ctx = client_ctx()
    end = time.monotonic() + secs
    lock = threading.Lock()
    c = {"handshakes": 0, "refused": 0, "served": 0, "failed": 0}

    def one():
        try:
            with socket.create_connection((ADDR, port), timeout=5) as raw:
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                with lock:
                    c["handshakes"] += 1
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                got = s.recv(64)
                with lock:
                    c["served" if got.startswith(b"HTTP/") else "refused"] += 1
        except (ssl.SSLError, ConnectionError):
            with lock:
                c["refused"] += 1
        except OSError:
            with lock:
                c["failed"] += 1

    def run():
        for _ in paced(rate / threads, end, int(rate * secs / threads) + 1):
            one()

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(secs + 30)
    return c


def attack_noread(port, secs, conns, certdir, hold):
    """mTLS clients with a good certificate that pipeline GET /big and never
    read, each for `hold` seconds, then again; their starts are spread over
    the first `hold` seconds (one new connection every hold/conns s)."""
    ctx = client_ctx(certdir)
    end = time.monotonic() + secs
    lock = threading.Lock()
    c = {"connections": 0, "requests": 0, "failed": 0}
    req = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"

    def run(i):
        time.sleep(min(i * hold / conns, secs))
        while time.monotonic() < end:
            try:
                with socket.create_connection((ADDR, port), timeout=5) as raw:
                    s = ctx.wrap_socket(raw, server_hostname="localhost")
                    s.settimeout(1)
                    n = 0
                    try:
                        while n < 5000 and time.monotonic() < end:
                            s.sendall(req)
                            n += 1
                    except (socket.timeout, ssl.SSLError, OSError):
                        pass
                    with lock:
                        c["connections"] += 1
                        c["requests"] += n
                    time.sleep(max(0.0, min(hold, end - time.monotonic())))
            except (OSError, ssl.SSLError):
                with lock:
                    c["failed"] += 1
                time.sleep(0.5)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(secs + hold + 30)
    return c


def main():
    if sys.argv[1] == "backend":
        backend(int(sys.argv[2]))
        return
    kind, port, secs = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    a = sys.argv[5:]
    if kind == "hello":
        r = attack_hello(port, secs, float(a[0]), float(a[1]))
    elif kind == "slowloris":
        r = attack_slowloris(port, secs, int(a[0]))
    elif kind == "malformed":
        r = attack_malformed(port, secs, float(a[0]), float(a[1]))
    elif kind == "hsflood":
        r = attack_hsflood(port, secs, float(a[0]), int(a[1]))
    elif kind == "noread":
        r = attack_noread(port, secs, int(a[0]), a[1], float(a[2]))
    else:
        sys.exit("unknown attack " + kind)
    print(json.dumps({"kind": kind, "secs": secs, **r}), flush=True)


if __name__ == "__main__":
    main()
