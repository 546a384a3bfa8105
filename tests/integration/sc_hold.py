#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# sc_hold.py tls PORT CERTDIR NAME SECS | http PORT SECS: hold one connection
# open and say whether the other end closed it within SECS. "tls": an mTLS
# client with NAME's certificate that completes its handshake and then
# sends nothing. "http": a plain client that makes one HTTP/1.1 keep-alive
# request and then waits. Prints "ready" once connected, then "closed" or
# "open". Loopback only; every wait is bounded.
import socket
import ssl
import sys
import time

mode, port = sys.argv[1], int(sys.argv[2])
raw = socket.create_connection(("127.0.0.1", port), timeout=5)
if mode == "tls":
    certdir, name, secs = sys.argv[3], sys.argv[4], float(sys.argv[5])
    ctx = ssl.create_default_context(cafile=certdir + "/root.crt")
    ctx.load_cert_chain(certdir + "/" + name + ".crt", certdir + "/" + name + ".key")
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
else:
    secs = float(sys.argv[3])
    s = raw
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
print("ready", flush=True)
s.settimeout(0.2)
t0 = time.monotonic()
while time.monotonic() - t0 < secs:
    try:
        b = s.recv(65536)
        if b == b"":
            print("closed", flush=True)
            sys.exit(0)
    except socket.timeout:
        continue
    except (OSError, ssl.SSLError):
        print("closed", flush=True)
        sys.exit(0)
print("open", flush=True)
