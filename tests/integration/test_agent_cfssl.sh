#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# duet-agent run with a real CFSSL (`cfssl serve`, Debian golang-cfssl) on
# 127.0.0.1 over HTTPS with mutual TLS (-mutual-tls-ca) and authsign:
# - both identities published and accepted by openssl verify;
# - CFSSL stopped: renewal fails, the published set stays, the retries
#   follow the capped exponential backoff (counted in the log), and the
#   agent recovers when CFSSL is back;
# - a fake HTTPS CFSSL answering garbage, an error envelope, a success
#   without a certificate, or a certificate for another key: each refused
#   and logged, nothing published;
# - SIGTERM while a request hangs exits 0 at once, not after the timeout.
# Runs in the ASan build too: that is the HTTPS-with-client-certificate
# request from inside the agent binary beside BoringSSL (DESIGN.md).
source "$(dirname "$0")/agent_lib.sh"
agent_setup
command -v cfssl >/dev/null || { echo "cfssl not installed: skipped"; exit 77; }

agent_make_ca "$T/ca"
# CFSSL 1.2 cannot read encrypted PKCS#8 (COMPAT.md 5): give it a plain copy.
openssl pkey -in "$T/ca/ca.key" -passin "file:$T/ca/ca.pass" -out "$T/ca/plain.key"

agent_sign_with_ca server "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth" "/CN=cfssl.test"
agent_sign_with_ca client "extendedKeyUsage=clientAuth" "/CN=duet-agent.node1"
# A certificate for productA's name but someone else's key (for the fake).
agent_sign_with_ca other "extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://example.org/dev/productA" "/O=Example, Inc./CN=dev.productA.dev"

authkey=$(openssl rand -hex 16)
echo "$authkey" >"$T/auth.key"
cat >"$T/cfssl.json" <<JSON
{ "signing": {
    "default": { "expiry": "8760h", "usages": ["signing", "digital signature", "client auth"] },
    "profiles": {
      "client": { "expiry": "8m", "usages": ["signing", "digital signature", "client auth"],
                  "auth_key": "primary" } } },
  "auth_keys": { "primary": { "type": "standard", "key": "$authkey" } } }
JSON
cport=$(t_free_port)
start_cfssl() {
    cfssl serve -address 127.0.0.1 -port "$cport" -ca "$T/ca/ca.crt" -ca-key "$T/ca/plain.key" \
        -config "$T/cfssl.json" -tls-cert "$T/server.crt" -tls-key "$T/server.key" \
        -mutual-tls-ca "$T/ca/ca.crt" >>"$T/cfssl.log" 2>&1 &
    CFSSL_PID=$!
    AGENT_PIDS+=("$CFSSL_PID")
    # Readiness: CFSSL listens even without a signer; /info must say success.
    agent_wait 20 bash -c "curl -fsS --cacert '$T/ca/ca.crt' --cert '$T/client.crt' --key '$T/client.key' \
        -d '{\"profile\":\"client\"}' https://127.0.0.1:$cport/api/v1/cfssl/info | grep -q '\"success\":true'" ||
        t_fail "cfssl did not become ready"
}
start_cfssl

out=$T/out
cat >"$T/agent.json" <<JSON
{
  "env": "dev",
  "trust_domain": "example.org",
  "output_dir": "$out",
  "subject": {"O": "Example, Inc."},
  "key_type": "ec-p256",
  "renew_before": "105s",
  "issuer": {"type": "cfssl", "url": "https://127.0.0.1:$cport", "profile": "client",
             "auth_key_file": "$T/auth.key", "ca_bundle": "$T/ca/ca.crt",
             "client_cert": "$T/client.crt", "client_key": "$T/client.key", "timeout": "5s"},
  "identities": [{"product": "productA"}, {"product": "productB", "key_type": "rsa2048"}]
}
JSON
A=$out/dev/productA
B=$out/dev/productB
agent_start agent "$T/agent.json"
pid=$AGENT_PID
agent_wait 15 agent_set_ok "$A" || t_fail "productA not published through cfssl"
agent_wait 15 agent_set_ok "$B" || t_fail "productB not published through cfssl"
grep -q 'issuer=cfssl msg="issuer ready"' "$T/agent.log" || t_fail "readiness not checked"
openssl x509 -in "$A/tls.crt" -noout -subject | grep -q "CN = dev.productA.dev" || t_fail "CN"
echo "published through cfssl (authsign, mutual TLS)"

# ---- CFSSL goes away: the set stays, retries back off, recovery follows
sa=$(agent_serial "$A/tls.crt")
ha=$(sha256sum "$A/tls.crt" "$A/tls.key" "$A/ca.crt")
kill -TERM "$CFSSL_PID"
wait "$CFSSL_PID" 2>/dev/null || true
failed() { grep -q 'identity=dev/productA err=.*attempt=1 ' "$T/agent.log"; }
# renew_before 105s on an 8m profile (about 2-3 usable minutes): renewal is due soon.
agent_wait 150 failed || t_fail "no renewal attempt while cfssl was down"
sleep 25
[ "$(sha256sum "$A/tls.crt" "$A/tls.key" "$A/ca.crt")" = "$ha" ] || t_fail "published set changed while cfssl was down"
agent_set_ok "$A" || t_fail "published set damaged while cfssl was down"
python3 - "$T/agent.log" <<'PY' || t_fail "retries do not follow the backoff"
import re, sys, datetime
ts = []
for line in open(sys.argv[1]):
    m = re.search(r'ts=(\S+)Z level=warn subsys=agent identity=dev/productA err=\S+ attempt=(\d+)', line)
    if m:
        ts.append(datetime.datetime.fromisoformat(m.group(1)).timestamp())
gaps = [b - a for a, b in zip(ts, ts[1:])]
print(f"{len(ts)} failed attempts in {ts[-1] - ts[0]:.1f} s, gaps: " + " ".join(f"{g:.2f}" for g in gaps))
ok = 3 <= len(ts) <= 12
for k, g in enumerate(gaps):
    # attempt k+1 waits uniform in [1 s, min(300 s, 2^k s)]
    if not (0.95 <= g <= min(300, 2 ** k) + 2.0):
        ok = False
sys.exit(0 if ok else 1)
PY
[ "$(agent_serial "$A/tls.crt")" = "$sa" ] || t_fail "serial changed while cfssl was down"
start_cfssl
# The retry already scheduled may be up to 2^attempt s away (about 2 min after
# half a minute of failures): recovery comes then, not before.
agent_wait 150 agent_set_ok_new "$A" "$sa" || t_fail "no recovery after cfssl came back"
# The agent logs a set after it renamed it into place: wait for the line.
agent_wait 5 grep -q "identity=dev/productA issuer=cfssl serial=$(agent_serial "$A/tls.crt") .*published" \
    "$T/agent.log" || t_fail "recovery not logged"
echo "cfssl outage: set kept, backoff respected, recovered"
agent_stop "$pid"

# ---- a CFSSL that could not load its CA key still listens (COMPAT.md 5):
# the agent's readiness check says so at start.
openssl pkey -in "$T/ca/plain.key" -aes256 -passout pass:unknown -out "$T/ca/enc.key"
nport=$(t_free_port)
cfssl serve -address 127.0.0.1 -port "$nport" -ca "$T/ca/ca.crt" -ca-key "$T/ca/enc.key" \
    -config "$T/cfssl.json" >>"$T/cfssl-nosigner.log" 2>&1 &
AGENT_PIDS+=("$!")
agent_wait 20 curl -s -o /dev/null "http://127.0.0.1:$nport/" || t_fail "signer-less cfssl did not listen"
sed -e "s|https://127.0.0.1:$cport|http://127.0.0.1:$nport|" -e "s|\"output_dir\": \"$out\"|\"output_dir\": \"$T/nosigner\"|" \
    "$T/agent.json" >"$T/nosigner-https-only.json"
# Plain HTTP is refused unless the configuration says so, and then warned about.
rc=0
"$DUET_AGENT" run --config "$T/nosigner-https-only.json" >"$T/http-refused.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q 'issuer.url: .* is not HTTPS' "$T/http-refused.log" ||
    t_fail "http:// issuer accepted without insecure_http (rc=$rc)"
sed -e 's|"profile": "client",|"profile": "client", "insecure_http": true,|' \
    "$T/nosigner-https-only.json" >"$T/nosigner.json"
agent_start nosigner "$T/nosigner.json"
agent_wait 20 grep -q "issuer=cfssl err=DUET_E_ISSUER .*CFSSL runs without a signer" "$T/nosigner.log" ||
    t_fail "signer-less cfssl not reported at start"
grep -q 'level=warn .*insecure_http' "$T/nosigner.log" || t_fail "insecure_http not warned at start"
agent_stop "$AGENT_PID"
echo "signer-less cfssl reported: $(grep -o 'msg="cfssl info[^"]*"' "$T/nosigner.log" | head -1)"

# ---- a fake CFSSL with bad answers
echo malformed >"$T/mode"
python3 "$DUET_SRC/tests/integration/agent_fake_cfssl.py" "$T/fake.port" "$T/server.crt" \
    "$T/server.key" "$T/mode" "$T/other.crt" 2>>"$T/fakesrv.log" &
AGENT_PIDS+=("$!")
agent_wait 10 test -s "$T/fake.port" || t_fail "fake cfssl did not start"
fport=$(cat "$T/fake.port")
sport=$(t_free_port)
cat >"$T/fake.json" <<JSON
{
  "env": "dev",
  "status_listen": "127.0.0.1:$sport",
  "trust_domain": "example.org",
  "output_dir": "$T/fakeout",
  "subject": {"O": "Example, Inc."},
  "key_type": "ec-p256",
  "issuer": {"type": "cfssl", "url": "https://127.0.0.1:$fport", "ca_bundle": "$T/ca/ca.crt",
             "timeout": "5s"},
  "identities": [{"product": "productA"}]
}
JSON
# One agent run per kind of answer: its first attempt comes at once.
refused() { # MODE MESSAGE
    echo "$1" >"$T/mode"
    agent_start "fake-$1" "$T/fake.json"
    agent_wait 20 grep -q "$2" "$T/fake-$1.log" || t_fail "$1 answer not refused with \"$2\""
    # Not ready, and the failure is counted.
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$sport/readyz")" = 503 ] ||
        t_fail "/readyz is not 503 without a valid set"
    [ "$(agent_metric "$sport" duet_agent_failures_total 'identity="dev/productA"')" -ge 1 ] ||
        t_fail "failure not counted in /metrics"
    agent_stop "$AGENT_PID"
    [ -e "$T/fakeout/dev/productA/tls.crt" ] && t_fail "something was published from a $1 answer"
    echo "refused: $1: $(grep -o "msg=\"[^\"]*$2[^\"]*\"" "$T/fake-$1.log" | head -1)"
}
refused malformed "cfssl sign: HTTP 200, reply is not a CFSSL JSON envelope"
refused error "cfssl sign: HTTP 400, error code 9002: CSR Decode failed"
refused empty "success without result.certificate"
refused otherkey "refused the certificate from cfssl: the key does not match"
echo "bad answers refused"

# ---- SIGTERM while a request hangs (a CFSSL that accepts and never
# answers): the agent abandons the request and exits 0 well before the
# 20 s request timeout (under 5 s even on a loaded machine under ASan).
echo hang >"$T/mode"
sed 's/"timeout": "5s"/"timeout": "20s"/' "$T/fake.json" >"$T/hang.json"
agent_start hang "$T/hang.json"
sleep 1.5
t0=$(date +%s%N)
agent_stop "$AGENT_PID"
ms=$((($(date +%s%N) - t0) / 1000000))
echo "SIGTERM during a hanging request: exit after ${ms} ms"
[ "$ms" -lt 5000 ] || t_fail "SIGTERM took ${ms} ms during a hanging request"
echo PASS
