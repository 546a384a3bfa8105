#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# sc_flood.py PORT N MODE CERTDIR NAME: open N hostile sockets to an inbound
# listener as fast as the kernel allows (MODE "idle": no byte at all;
# "partial": a TLS record header and the start of a ClientHello, then
# silence), and while they are open time one real mTLS client (handshake +
# GET, 5 s at most). Prints "opened=N legit=ok|fail legit_ms=MS". Loopback
# only; every wait is bounded; every socket is closed before exit.
import socket
import ssl
import sys
import time

port, n, mode, certdir, name = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4],
                                sys.argv[5])
hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32
socks = []
t_end = time.monotonic() + 30
while len(socks) < n and time.monotonic() < t_end:
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        time.sleep(0.01)
        continue
    socks.append(s)
if mode == "partial":
    for s in socks:
        try:
            s.send(hello)
        except OSError:
            pass
time.sleep(0.5)
ctx = ssl.create_default_context(cafile=certdir + "/root.crt")
ctx.load_cert_chain(certdir + "/" + name + ".crt", certdir + "/" + name + ".key")
t0 = time.monotonic()
ok = False
try:
    c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                        server_hostname="127.0.0.1")
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    ok = c.recv(64).startswith(b"HTTP/1.")
    c.close()
except (OSError, ssl.SSLError):
    pass
ms = (time.monotonic() - t0) * 1000
for s in socks:
    s.close()
print("opened=%d legit=%s legit_ms=%d" % (len(socks), "ok" if ok else "fail", ms))
