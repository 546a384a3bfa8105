#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# duet-agent as a CSI node plugin, against a kubelet played by Debian's
# python3-grpcio (csi_kubelet.py) in a private mount namespace: plugin
# registration, Identity and Node calls, default-deny bindings (C asking for
# A's identity is refused and nothing is written), a key per pod on a
# read-only bind mount, rotation through the mount, restart, unpublish, 200
# publish/unpublish cycles that leave nothing behind, and A's sidecar on its
# CSI volume getting through an inbound sidecar.
source "$(dirname "$0")/agent_lib.sh"
agent_setup

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root for mounts"; exit 77; }
unshare -m --propagation private true 2>/dev/null ||
    { echo "skip: cannot make a mount namespace here"; exit 77; }
# Debian's grpc and protobuf modules are visible to /usr/bin/python3 only.
/usr/bin/python3 -c 'import grpc, google.protobuf' ||
    t_fail "python3-grpcio / python3-protobuf missing (scripts/deps installs them)"
protoset="$DUET_BUILD/agent/proto/duet-csi.protoset"
[ -f "$protoset" ] || t_fail "$protoset missing (built with duet-agent)"

agent_make_ca "$T/ca"
port=$(t_free_port)
# 60 s certificates renewed 50 s before notAfter: a rotation every ~10 s.
cat >"$T/agent.json" <<JSON
{
  "env": "dev", "trust_domain": "example.org",
  "subject": {"C": "LK", "ST": "WP", "O": "Example, Inc."},
  "key_type": "ec-p256", "validity": "60s", "renew_before": "50s",
  "issuer": {"type": "local", "ca_cert": "$T/ca/ca.crt", "ca_key": "$T/ca/ca.key",
             "ca_key_passphrase_file": "$T/ca/ca.pass"},
  "identities": [
    {"product": "productA", "key_type": "rsa2048"},
    {"product": "productB"},
    {"product": "resource", "server": true, "dns": ["resource"]}
  ],
  "status_listen": "127.0.0.1:$port",
  "csi": {
    "driver": "duet.example.org",
    "endpoint": "$T/plugins/duet.example.org/csi.sock",
    "registration_dir": "$T/plugins_registry",
    "state_dir": "$T/state",
    "pods_dir": "$T/pods",
    "node_id": "test-node",
    "bindings": [
      {"namespace": "duet-demo", "service_account": "client-a", "products": ["productA"]},
      {"namespace": "duet-demo", "service_account": "client-b", "products": ["productB"]},
      {"namespace": "duet-demo", "service_account": "resource", "products": ["resource"]}
    ]
  }
}
JSON
mkdir -p "$T/pods"
unshare -m --propagation private -- /usr/bin/python3 "$DUET_SRC/tests/integration/csi_kubelet.py" \
    "$DUET_AGENT" "$DUET_SIDECAR" "$protoset" "$T/agent.json" "$T" "$port" ||
    t_fail "the CSI scenario failed"
# The namespace is gone with the python process: nothing can stay mounted.
grep -q " $T/" /proc/self/mountinfo && t_fail "a mount under $T leaked out of the namespace"
echo "PASS: agent CSI"
