#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A long-lived HTTP/1.1 keep-alive client for the sidecar tests. Reads
# commands on stdin, one per line: "get PATH" sends a request on the one
# connection and prints "<status> <body>"; "quit" closes it.
import socket
import sys

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
        break
    s.sendall(f"GET {cmd[1]} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status = f.readline().split()[1].decode()
    length = 0
    while True:
        h = f.readline().strip()
        if not h:
            break
        k, _, v = h.decode().partition(":")
        if k.lower() == "content-length":
            length = int(v)
    body = f.read(length).decode().strip()
    print(status, body, flush=True)
s.close()
