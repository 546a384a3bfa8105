#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Half-close through duet-sidecar outbound. "server CERTDIR PORT": a TLS
# server (client certificate required) that reads until the client's end of
# stream, then answers with the byte count and closes. "client PORT": sends
# data, shuts down its write side, prints what comes back.
import socket
import ssl
import sys

if sys.argv[1] == "server":
    d, port = sys.argv[2], int(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d + "/server.crt", d + "/server.key")
    ctx.load_verify_locations(d + "/root.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ls = socket.create_server(("127.0.0.1", port))
    ls.settimeout(30)
    for _ in range(2):
        c, _ = ls.accept()
        c.settimeout(10)
        try:
            s = ctx.wrap_socket(c, server_side=True)
            n = 0
            while True:
                b = s.recv(65536)
                if not b:
                    break
                n += len(b)
            s.sendall(b"got %d after eof\n" % n)
            s.close()
        except (OSError, ssl.SSLError) as e:
            print("server:", e, file=sys.stderr)
else:
    port = int(sys.argv[2])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"x" * 100000)
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    print(out.decode().strip())
