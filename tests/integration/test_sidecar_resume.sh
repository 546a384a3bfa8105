#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_resume: a client whose certificate expires a few
# seconds after its full handshake. Its session lifetime is bounded by that
# notAfter, and a resumption after it (TLS 1.3 and 1.2) is refused before
# the backend sees a byte, logged with reason=expired.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup

sc_ca "$T" root
SC_EXT=srv sc_leaf "$T" root sidecar dev.resource.dev
start=$(date -u -d '-1 min' +%Y%m%d%H%M%SZ)
mkdir "$T/certs"
sc_publish "$T/certs" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
bp=$(t_free_port); ip=$(t_free_port)
sc_backend "$bp"
sc_start sc --certs "$T/certs" --inbound "127.0.0.1:$ip=127.0.0.1:$bp"
pid=$SC_PID
sc_wait_port "$ip"

for v in 1.3 1.2; do
    end_s=$(($(date +%s) + 6))
    sc_leaf "$T" root "short$v" dev.productA.dev "" "$start" "$(date -u -d "@$end_s" +%Y%m%d%H%M%SZ)"
    before=$(grep -c '"GET / ' "$T/backend.log" || true)
    r=$(python3 "$(dirname "$0")/sc_resume.py" "$ip" "$T" "short$v" "$v" "$end_s")
    echo "TLS $v: $r"
    case $r in "first=yes "*) ;; *) t_fail "TLS $v: first connection failed: $r" ;; esac
    t=$(echo "$r" | sed 's/.*timeout=\([0-9]*\).*/\1/')
    [ "$t" -le 8 ] || t_fail "TLS $v: session lifetime $t s outlives the certificate"
    case $r in *" answer=no") ;; *) t_fail "TLS $v: expired client served after resumption: $r" ;; esac
    after=$(grep -c '"GET / ' "$T/backend.log" || true)
    [ "$after" -eq $((before + 1)) ] || t_fail "TLS $v: backend saw $((after - before)) requests, want 1"
done
# Whether the client resumed or was made to handshake in full, the refusal says why.
sc_wait_log "$T/sc.log" "refused .*reason=expired" || t_fail "expired client not refused as expired"
sc_stop "$pid" "$T/sc.log"
echo ok
