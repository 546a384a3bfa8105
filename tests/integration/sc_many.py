#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# sc_many.py PORT N CERTDIR NAME HOLD: open up to N mTLS connections to an
# inbound listener, one after another, each sending one byte and then
# staying idle; stop at the first that is not answered within 2 s (the
# sidecar at its --max-conns). Holds them HOLD seconds, prints "open=K",
# closes them. Loopback only; bounded.
import socket
import ssl
import sys
import time

port, n, certdir, name, hold = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4],
                                float(sys.argv[5]))
ctx = ssl.create_default_context(cafile=certdir + "/root.crt")
ctx.load_cert_chain(certdir + "/" + name + ".crt", certdir + "/" + name + ".key")
socks = []
t_end = time.monotonic() + 60
while len(socks) < n and time.monotonic() < t_end:
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=2),
                            server_hostname="127.0.0.1")
        s.sendall(b"x")
        socks.append(s)
    except (OSError, ssl.SSLError):
        break
print("open=%d" % len(socks), flush=True)
time.sleep(hold)
for s in socks:
    s.close()
