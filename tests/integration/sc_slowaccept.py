#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# sc_slowaccept.py PORT CERT KEY CA GO_FILE: for test_sidecar_connect.sh. A
# TLS server on 127.0.0.1:PORT (client certificate from CA required) whose
# accept queue is held full by a connection of its own (listen backlog 0)
# until GO_FILE exists: meanwhile a connect to it stays in progress (the
# kernel drops its SYN; the client sends it again a second later). Then it
# makes room for more and answers each request with "slow ok".
import os
import socket
import ssl
import sys
import time

port, cert, key, ca, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(0)
filler = socket.create_connection(("127.0.0.1", port))
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
s.accept()[0].close()
filler.close()
s.listen(16)  # room for every connect waiting (the sidecar's readiness probe's too)
print("queue freed", flush=True)
while True:
    c, _ = s.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        req = b""
        while b"\r\n\r\n" not in req:
            b = t.recv(4096)
            if not b:
                break
            req += b
        t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nslow ok")
        t.close()
    except (OSError, ssl.SSLError) as e:
        print("error", e, flush=True)
        c.close()
