# SPDX-License-Identifier: Apache-2.0
"""A fake CFSSL over HTTPS for the agent's error paths (test_agent_cfssl.sh,
test_agent_csi_cfssl.sh).

usage: agent_fake_cfssl.py PORTFILE CERT KEY MODEFILE OTHERCERT
Listens on 127.0.0.1 (port written to PORTFILE) and answers every POST
according to the word in MODEFILE, read per request:
  malformed  200 with a body that is not JSON
  error      400 with CFSSL's envelope, code 9002 "CSR Decode failed"
  otherkey   200 success with OTHERCERT (a valid certificate for another key)
  empty      200 success without result.certificate
  hang       reads the request, then answers nothing for 60 s
  forward URL CAFILE
             relays the request to the CFSSL at URL (HTTPS, verified with
             CAFILE) and its answer back: a CFSSL that can be made to hang
Only loopback; stdlib only.
"""
import http.server
import json
import ssl
import sys
import time
import urllib.error
import urllib.request

portfile, cert, key, modefile, othercert = sys.argv[1:6]


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        mode = open(modefile).read().strip()
        if mode == "hang":
            time.sleep(60)
            return
        if mode.startswith("forward "):
            self.forward(mode.split()[1], mode.split()[2], body)
            return
        status = 200
        if mode == "malformed":
            body = b"<html>surprise</html>"
        elif mode == "error":
            status = 400
            body = json.dumps({"success": False, "result": None, "messages": [],
                               "errors": [{"code": 9002, "message": "CSR Decode failed"}]}).encode()
        elif mode == "otherkey":
            body = json.dumps({"success": True, "errors": [], "messages": [],
                               "result": {"certificate": open(othercert).read()}}).encode()
        else:
            body = json.dumps({"success": True, "errors": [], "messages": [], "result": {}}).encode()
        self.answer(status, body)

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self, url, cafile, body):
        req = urllib.request.Request(url + self.path, data=body,
                                     headers={"Content-Type": "application/json"})
        ctx = ssl.create_default_context(cafile=cafile)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
                self.answer(r.status, r.read())
        except urllib.error.HTTPError as e:
            self.answer(e.code, e.read())

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-cfssl: " + (fmt % args) + "\n")


srv = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
