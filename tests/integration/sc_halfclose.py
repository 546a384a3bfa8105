#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Half-close through duet-sidecar outbound. "server CERTDIR PORT": a TLS
# server (client certificate required) that reads until the client's end of
# stream, then answers with the byte count and closes. "client PORT": sends
# data, shuts down its write side, prints what comes back. "notify CERTDIR
# PORT": answers the first line with "bye", then sends close_notify and
# waits for the peer's before it closes (a bidirectional TLS shutdown).
# "asker PORT": sends a line and prints what comes back until the end of
# stream, without ending its own side first. "oneshot-server CERTDIR PORT":
# answers one request with its answer and close_notify in a single write
# (both reach the sidecar in one read). "eof-client PORT": one request;
# prints the answer and whether the end of stream came within 3 s.
# "silent-server PORT SECS": listens and never accepts (TCP connects, TLS
# never starts). "push-client PORT KIB": sends KIB KiB at once, then reads
# until the end: prints "eof" or how the connection failed.
import errno
import socket
import ssl
import sys
import time

def server_ctx(d):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d + "/server.crt", d + "/server.key")
    ctx.load_verify_locations(d + "/root.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def read_to_end(s):
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            return out
        out += b


def oneshot(c, ctx):
    """Handshake and one request over memory BIOs; the answer and the
    close_notify leave in one write."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_side=True)

    def feed():
        if out.pending:
            c.sendall(out.read())
        b = c.recv(65536)
        if not b:
            raise EOFError
        inc.write(b)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            feed()
    req = b""
    while b"\r\n\r\n" not in req:
        try:
            b = tls.read(65536)
        except ssl.SSLWantReadError:
            feed()
            continue
        if not b:
            raise EOFError  # close_notify (the port probe's connection)
        req += b
    tls.write(b"answer and close\n")
    try:
        tls.unwrap()
    except ssl.SSLWantReadError:
        pass
    c.sendall(out.read())
    while c.recv(65536):
        pass


if sys.argv[1] == "notify":
    ctx = server_ctx(sys.argv[2])
    ls = socket.create_server(("127.0.0.1", int(sys.argv[3])))
    ls.settimeout(30)
    print("listening", file=sys.stderr, flush=True)
    while True:
        c, _ = ls.accept()
        c.settimeout(10)
        try:
            s = ctx.wrap_socket(c, server_side=True)
            req = b""
            while not req.endswith(b"\n"):
                b = s.recv(4096)
                if not b:
                    break
                req += b
            if not req:  # a readiness probe through the sidecar: nothing asked
                c.close()
                continue
            s.sendall(b"bye\n")
            s.unwrap()  # close_notify, then the peer's before the FIN
            print("server: got close_notify back", file=sys.stderr)
        except (OSError, ssl.SSLError) as e:
            print("server:", e, file=sys.stderr)
        c.close()
        break
elif sys.argv[1] == "asker":
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
    s.sendall(b"hi\n")
    print(read_to_end(s).decode().strip())
elif sys.argv[1] == "oneshot-server":
    ctx = server_ctx(sys.argv[2])
    ls = socket.create_server(("127.0.0.1", int(sys.argv[3])))
    ls.settimeout(30)
    print("listening", file=sys.stderr, flush=True)
    for _ in range(2):  # the first may be the port probe's
        c, _ = ls.accept()
        c.settimeout(10)
        try:
            oneshot(c, ctx)
        except (OSError, ssl.SSLError, EOFError) as e:
            print("oneshot-server:", repr(e), file=sys.stderr)
        c.close()
elif sys.argv[1] == "silent-server":
    ls = socket.create_server(("127.0.0.1", int(sys.argv[2])), backlog=64)
    time.sleep(float(sys.argv[3]))
elif sys.argv[1] == "push-client":
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5)
    try:
        s.settimeout(1)
        s.sendall(b"x" * (int(sys.argv[3]) << 10))
        s.settimeout(5)
        while s.recv(65536):
            pass
        print("eof")
    except OSError as e:
        print(errno.errorcode.get(e.errno, repr(e)))
elif sys.argv[1] == "eof-client":
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=3)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                print(got.decode().strip() + " / eof")
                break
            got += b
    except socket.timeout:
        print(got.decode().strip() + " / no eof after 3 s")
elif sys.argv[1] == "server":
    ctx = server_ctx(sys.argv[2])
    ls = socket.create_server(("127.0.0.1", int(sys.argv[3])))
    ls.settimeout(30)
    print("listening", file=sys.stderr, flush=True)
    for _ in range(2):
        c, _ = ls.accept()
        c.settimeout(10)
        try:
            s = ctx.wrap_socket(c, server_side=True)
            n = len(read_to_end(s))
            s.sendall(b"got %d after eof\n" % n)
            s.close()
        except (OSError, ssl.SSLError) as e:
            print("server:", e, file=sys.stderr)
else:
    port = int(sys.argv[2])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"x" * 100000)
    s.shutdown(socket.SHUT_WR)
    print(read_to_end(s).decode().strip())
