#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# sc_resume.py PORT CERTDIR NAME VERSION NOT_AFTER: for test_sidecar_resume.sh.
# A full handshake with NAME's certificate (TLS VERSION, 1.2 or 1.3) and a
# GET; then, once the certificate's notAfter (Unix seconds) has passed, a
# resumption of that session and the same GET. Prints one line:
# "first=yes|no timeout=TICKET_LIFETIME_HINT reused=True|False answer=yes|no".
import socket
import ssl
import sys
import time

port, certdir, name, version, not_after = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                           sys.argv[4], int(sys.argv[5]))
ctx = ssl.create_default_context(cafile=certdir + "/root.crt")
ctx.load_cert_chain(certdir + "/" + name + ".crt", certdir + "/" + name + ".key")
v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v


def get(sess=None):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
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


s1, out = get()
sess = s1.session
while time.time() < not_after + 1.5:
    time.sleep(0.1)
try:
    s2, out2 = get(sess)
    reused = s2.session_reused
except (OSError, ssl.SSLError):  # TLS 1.2 reports the refusal in the handshake
    reused, out2 = False, b""
print("first=%s timeout=%d reused=%s answer=%s" % (
    "yes" if out.startswith(b"HTTP/1.") else "no", sess.ticket_lifetime_hint, reused,
    "yes" if out2.startswith(b"HTTP/1.") else "no"))
