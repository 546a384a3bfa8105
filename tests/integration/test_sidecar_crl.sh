#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_crl: a CRL past its nextUpdate is reported (an error
# line naming the file and the date, duet_sidecar_crl_stale 1, /readyz 503)
# and every refusal it causes says why (reason=crl_stale); a fresh CRL
# brings the sidecar back.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
SC_EXT=srv sc_leaf "$T" root sidecar dev.resource.dev
openssl ca -batch -config "$T/root.cnf" -gencrl -crlsec 1 -out "$T/current.crl" 2>/dev/null ||
    t_fail "gencrl"
sleep 2 # the CRL is now past its nextUpdate
mkdir "$T/certs"
sc_publish "$T/certs" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
bp=$(t_free_port); ip=$(t_free_port); sp=$(t_free_port)
sc_backend "$bp"
sc_start sc --certs "$T/certs" --crl "$T/current.crl" --status "127.0.0.1:$sp" \
    --reload-poll 100ms --inbound "127.0.0.1:$ip=127.0.0.1:$bp"
pid=$SC_PID
sc_wait_port "$ip"
sc_wait_port "$sp"

get() {
    curl -sS --max-time 5 --cacert "$T/root.crt" --cert "$T/productA.crt" --key "$T/productA.key" \
        "https://127.0.0.1:$ip/" 2>>"$T/curl.err"
}

sc_wait_log "$T/sc.log" "level=error subsys=reload crl=\"$T/current.crl\" next_update=20[0-9-]+T" ||
    t_fail "stale CRL not reported with its file and nextUpdate"
[ "$(sc_metric "$sp" '^duet_sidecar_crl_stale ')" = 1 ] || t_fail "crl_stale metric not 1"
[ "$(sc_metric "$sp" '^duet_sidecar_crl_next_update_seconds ')" -gt 0 ] || t_fail "no nextUpdate metric"
body=$(curl -sS -w ' %{http_code}' "http://127.0.0.1:$sp/readyz")
[ "$body" = "CRL past its nextUpdate
 503" ] || t_fail "readyz with a stale CRL: '$body'"
if out=$(get); then t_fail "admitted with a stale CRL: $out"; fi
sc_wait_log "$T/sc.log" "refused .*reason=crl_stale .*nextUpdate" || t_fail "refusal does not name the stale CRL"
[ "$(sc_metric "$sp" 'handshake_failures_total\{.*reason="crl_stale"')" -ge 1 ] || t_fail "crl_stale not counted"

# A fresh CRL: ready again, productA admitted.
sc_crl "$T" root
cp "$T/root.crl" "$T/current.crl.new" && mv "$T/current.crl.new" "$T/current.crl"
for i in $(seq 1 50); do
    [ "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$sp/readyz")" = 200 ] && break
    sleep 0.1
done
[ "$(sc_metric "$sp" '^duet_sidecar_crl_stale ')" = 0 ] || t_fail "crl_stale still 1 after a fresh CRL"
[ "$(get)" = "backend ok" ] || t_fail "productA refused after a fresh CRL"
sc_stop "$pid" "$T/sc.log"
echo ok
