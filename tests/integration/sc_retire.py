#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# sc_retire.py upstream PORT CERTDIR SECS
#   A TLS upstream demanding a client certificate from CERTDIR/root.crt.
#   "GET /slow/MS" is answered after MS milliseconds; "GET /never" is never
#   answered. Serves for SECS seconds.
# sc_retire.py client PORT NOT_AFTER NOT_BEFORE
#   Through an outbound sidecar whose certificate runs from NOT_BEFORE to
#   NOT_AFTER (Unix seconds; its soft deadline is a tenth of that life
#   before NOT_AFTER), two connections: "slow" asks 1.5 s before the soft
#   deadline for an answer that takes 3 s, then idles; "never" asks then for
#   an answer that never comes. Prints, for slow, whether the answer came and
#   when the connection was closed after it and before NOT_AFTER; for never,
#   when it was closed before NOT_AFTER (negative: after).
# Loopback only; every wait is bounded.
import socket
import ssl
import sys
import threading
import time


def upstream(port, certdir, secs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{certdir}/server.crt", f"{certdir}/server.key")
    ctx.load_verify_locations(f"{certdir}/root.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ls = socket.create_server(("127.0.0.1", port))
    ls.settimeout(0.5)
    print("ready", flush=True)

    def serve(raw):
        try:
            s = ctx.wrap_socket(raw, server_side=True)
            s.settimeout(secs)
            buf = b""
            while True:
                b = s.recv(4096)
                if not b:
                    return
                buf += b
                while b"\r\n\r\n" in buf:
                    req, buf = buf.split(b"\r\n\r\n", 1)
                    path = req.split(b" ")[1].decode()
                    if path == "/never":
                        continue
                    if path.startswith("/slow/"):
                        time.sleep(int(path[6:]) / 1000)
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        except (OSError, ssl.SSLError, IndexError, ValueError):
            pass
        finally:
            raw.close()

    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def wait_eof(s, until):
    """Seconds until EOF or an error, or None if still open at `until`."""
    while time.time() < until:
        s.settimeout(max(0.01, min(0.1, until - time.time())))
        try:
            if s.recv(4096) == b"":
                return time.time()
        except socket.timeout:
            continue
        except OSError:
            return time.time()
    return None


def exchange(s, path, until):
    """Send one request; True if the whole answer came back before `until`."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = b""
    while time.time() < until and not got.endswith(b"ok\n"):
        s.settimeout(max(0.01, min(0.1, until - time.time())))
        try:
            b = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return False
        if not b:
            return False
        got += b
    return got.endswith(b"ok\n")


def client(port, not_after, not_before):
    soft = not_after - (not_after - not_before) / 10
    slow = socket.create_connection(("127.0.0.1", port), timeout=5)
    never = socket.create_connection(("127.0.0.1", port), timeout=5)
    # Both handshakes happen on connect; a first quick exchange proves it.
    ok = exchange(slow, "/slow/0", time.time() + 5) and exchange(never, "/slow/0", time.time() + 5)
    if not ok:
        print("setup failed", flush=True)
        return
    time.sleep(max(0, soft - 1.5 - time.time()))
    # "slow" is waiting on its answer when the soft deadline passes.
    never.sendall(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
    answered = exchange(slow, "/slow/3000", not_after + 3)
    t_ans = time.time()
    eof = wait_eof(slow, not_after + 3)
    print(f"slow answered={int(answered)} closed_after_answer="
          f"{(eof - t_ans) if eof else -1:.2f} closed_before_end="
          f"{(not_after - eof) if eof else -99:.2f}", flush=True)
    eof = wait_eof(never, not_after + 3)
    print(f"never closed_before_end={(not_after - eof) if eof else -99:.2f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "upstream":
        upstream(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    else:
        client(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
