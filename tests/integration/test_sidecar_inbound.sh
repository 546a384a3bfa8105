#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_inbound: curl --cert -> duet-sidecar inbound -> a
# plain HTTP backend. productA passes; no certificate, another root's
# certificate, an expired certificate and (allow-cn=dev.productA.dev)
# productB are refused, each logged with peer, subject and reason; a CRL
# listing productA's serial refuses it after the reload it triggers.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup

sc_ca "$T" root
sc_ca "$T" other
sc_leaf "$T" root productA dev.productA.dev
sc_leaf "$T" root productB dev.productB.dev
# The inbound sidecar's own identity is a server certificate (serverAuth
# only), as the agent issues for "server": true identities.
SC_EXT=srv sc_leaf "$T" root sidecar dev.resource.dev
sc_leaf "$T" other productC dev.productC.dev
sc_leaf "$T" root expired dev.productA.dev "" 20200101000000Z 20200201000000Z
sc_crl "$T" root
cp "$T/root.crl" "$T/current.crl"
mkdir "$T/certs"
sc_publish "$T/certs" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
bp=$(t_free_port); ip=$(t_free_port); ip2=$(t_free_port); sp=$(t_free_port)
sc_backend "$bp"
sc_start sc --certs "$T/certs" --crl "$T/current.crl" --status "127.0.0.1:$sp" \
    --inbound "127.0.0.1:$ip=127.0.0.1:$bp,allow-cn=dev.productA.dev" \
    --inbound "127.0.0.1:$ip2=127.0.0.1:$bp,allow-san=spiffe://example.org/dev/productB"
pid=$SC_PID
sc_wait_port "$ip"

# get PORT NAME: curl with NAME's certificate (or none); prints the body.
get() {
    local port=$1 n=${2:-}
    local args=(-sS --max-time 5 --cacert "$T/root.crt")
    [ -n "$n" ] && args+=(--cert "$T/$n.crt" --key "$T/$n.key")
    curl "${args[@]}" "https://127.0.0.1:$port/" 2>>"$T/curl.err"
}
refused() {
    local out
    if out=$(get "$@"); then
        t_fail "port $1 accepted ${2:-no certificate}: '$out'"
    fi
    return 0
}

[ "$(get "$ip" productA)" = "backend ok" ] || t_fail "productA not proxied"
[ "$(get "$ip2" productB)" = "backend ok" ] || t_fail "productB not allowed by SAN URI"
refused "$ip"
refused "$ip" productC
refused "$ip" expired
refused "$ip" productB
refused "$ip2" productA

# A session from the listener that accepts productB must not resume on the
# one whose allow list refuses it (resumption skips verification).
r=$(python3 "$(dirname "$0")/sc_hostile.py" resume-across "$ip2" "$ip" "$T" productB)
[ "$r" = "same-listener-reused=True other-listener-reused=False other-answer=no" ] ||
    t_fail "session resumed across listeners: $r"

log=$T/sc.log
for reason in no_cert untrusted expired not_allowed; do
    sc_wait_log "$log" "refused listener=127.0.0.1:$ip peer=127.0.0.1:[0-9]+ reason=$reason" ||
        t_fail "refusal '$reason' not logged"
    v=$(sc_metric "$sp" "failures_total\{listener=\"127.0.0.1:$ip\",reason=\"$reason\"\}")
    [ "$v" -ge 1 ] || t_fail "metric for $reason is $v"
done
grep "reason=not_allowed" "$log" | grep -q 'subject="/CN=dev.productB.dev"' ||
    t_fail "refusal does not name the subject"

# Revoke productA: the CRL is replaced atomically, the poll reloads it.
sc_revoke "$T" root productA
cp "$T/root.crl" "$T/new.crl"
mv "$T/new.crl" "$T/current.crl"
sc_wait_metric "$sp" 'reloads_total\{result="ok"\}' 2 || t_fail "CRL change not reloaded"
refused "$ip" productA
sc_wait_log "$log" "reason=revoked" || t_fail "revocation not logged"
[ "$(get "$ip2" productB)" = "backend ok" ] || t_fail "productB refused after the CRL"

# A broken CRL is refused as a whole: the old set (with the CRL) stays.
echo "garbage" >"$T/bad.crl"
mv "$T/bad.crl" "$T/current.crl"
sc_wait_metric "$sp" 'reloads_total\{result="failed"\}' 1 || t_fail "bad CRL accepted"
refused "$ip" productA
[ "$(get "$ip2" productB)" = "backend ok" ] || t_fail "service lost after a bad CRL"

sc_stop "$pid" "$log"
echo "sidecar_inbound: ok"
