#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CSI volumes issued by CFSSL, off the agent's loop: a burst of pods against
# a real `cfssl serve` (authsign, HTTPS) each get their own key and a
# certificate the root verifies; against a CFSSL that takes requests and
# never answers, the agent's loop still answers /healthz and CSI calls at
# once, and SIGTERM abandons the requests in flight and stops the agent
# promptly, leaving no mount and no key behind. The same holds when CFSSL
# starts hanging later, on the volumes' renewals (2-3 minutes left),
# and a volume unpublished while its renewal hangs goes at once.
source "$(dirname "$0")/agent_lib.sh"
agent_setup

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root for mounts"; exit 77; }
unshare -m --propagation private true 2>/dev/null ||
    { echo "skip: cannot make a mount namespace here"; exit 77; }
command -v cfssl >/dev/null || t_fail "cfssl missing (scripts/deps installs it)"
/usr/bin/python3 -c 'import grpc, google.protobuf' ||
    t_fail "python3-grpcio / python3-protobuf missing (scripts/deps installs them)"
protoset="$DUET_BUILD/agent/proto/duet-csi.protoset"
[ -f "$protoset" ] || t_fail "$protoset missing (built with duet-agent)"

# The root, a plain copy of its key for CFSSL 1.2 (COMPAT.md 5), CFSSL's HTTPS pair.
agent_make_ca "$T/ca"
openssl pkey -in "$T/ca/ca.key" -passin "file:$T/ca/ca.pass" -out "$T/ca/plain.key"
agent_sign_with_ca srv "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth" "/CN=cfssl"
openssl rand -hex 16 >"$T/auth.key"
cat >"$T/cfssl.json" <<JSON
{ "signing": { "default": { "expiry": "8760h", "usages": ["signing", "digital signature", "client auth"] },
    "profiles": { "client": { "expiry": "8760h", "usages": ["signing", "digital signature", "client auth"],
                              "auth_key": "primary" },
                  "short": { "expiry": "8m", "usages": ["signing", "digital signature", "client auth"],
                             "auth_key": "primary" } } },
  "auth_keys": { "primary": { "type": "standard", "key": "$(cat "$T/auth.key")" } } }
JSON
cport=$(t_free_port)
cfssl serve -address 127.0.0.1 -port "$cport" -ca "$T/ca/ca.crt" -ca-key "$T/ca/plain.key" \
    -config "$T/cfssl.json" -tls-cert "$T/srv.crt" -tls-key "$T/srv.key" >"$T/cfssl.log" 2>&1 &
AGENT_PIDS+=("$!")
agent_wait 20 curl -fsS --cacert "$T/ca/ca.crt" -d '{"profile":"client"}' \
    "https://127.0.0.1:$cport/api/v1/cfssl/info" || t_fail "cfssl serve did not start"

# A CFSSL that reads each request and never answers.
echo hang >"$T/mode"
python3 "$DUET_SRC/tests/integration/agent_fake_cfssl.py" "$T/hang.port" "$T/srv.crt" \
    "$T/srv.key" "$T/mode" "$T/srv.crt" >"$T/fake.log" 2>&1 &
AGENT_PIDS+=("$!")
agent_wait 10 test -s "$T/hang.port" || t_fail "the hanging CFSSL did not start"
# One that relays to cfssl serve until told to hang (csi_cfssl.py writes renew.mode).
echo "forward https://127.0.0.1:$cport $T/ca/ca.crt" >"$T/renew.mode"
python3 "$DUET_SRC/tests/integration/agent_fake_cfssl.py" "$T/renew.port" "$T/srv.crt" \
    "$T/srv.key" "$T/renew.mode" "$T/srv.crt" >"$T/fake-renew.log" 2>&1 &
AGENT_PIDS+=("$!")
agent_wait 10 test -s "$T/renew.port" || t_fail "the relaying CFSSL did not start"

# agent_config NAME URL [PROFILE RENEW_BEFORE]: an agent config for CSI with a
# CFSSL issuer at URL.
agent_config() {
    local w=$T/$1 port rb=""
    [ -z "${4:-}" ] || rb="\"renew_before\": \"$4\","
    port=$(t_free_port)
    mkdir -p "$w/pods"
    cat >"$w/agent.json" <<JSON
{ "env": "dev", "trust_domain": "example.org", "subject": {"O": "Example, Inc."},
  "key_type": "ec-p256", $rb
  "issuer": {"type": "cfssl", "url": "$2", "profile": "${3:-client}", "auth_key_file": "$T/auth.key",
             "ca_bundle": "$T/ca/ca.crt", "timeout": "30s"},
  "identities": [{"product": "productA"}, {"product": "productB"}],
  "status_listen": "127.0.0.1:$port",
  "csi": { "endpoint": "$w/plugins/duet.example.org/csi.sock", "registration_dir": "$w/plugins_registry",
           "state_dir": "$w/state", "pods_dir": "$w/pods", "node_id": "test-node",
           "bindings": [{"namespace": "duet-demo", "service_account": "client-a", "products": ["productA"]},
                        {"namespace": "duet-demo", "service_account": "client-b", "products": ["productB"]}] } }
JSON
    echo "$port" >"$w/status.port"
}
agent_config real "https://127.0.0.1:$cport"
agent_config hang "https://127.0.0.1:$(cat "$T/hang.port")"
# CFSSL backdates notBefore to the minute 5 min before and counts the expiry
# from there: an "8m" certificate has 121-180 s left (by the second of the
# minute it is made in), renewed 99-121 s before its end: 0-81 s after issuance
# (at 70-90% when 121 s are left: 85-109 s).
agent_config renew "https://127.0.0.1:$(cat "$T/renew.port")" short 110s

unshare -m --propagation private -- /usr/bin/python3 "$DUET_SRC/tests/integration/csi_cfssl.py" \
    "$DUET_AGENT" "$protoset" "$T" || t_fail "the CSI-with-CFSSL scenario failed"
grep -q " $T/" /proc/self/mountinfo && t_fail "a mount under $T leaked out of the namespace"
echo "PASS: agent CSI with CFSSL"
