#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_audit: every admitted inbound peer leaves an info line
# with listener, peer, subject, SAN URI and serial (resumed ones too), at
# most --log-admissions a second per worker, the rest counted.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
SC_EXT=srv sc_leaf "$T" root sidecar dev.resource.dev
mkdir "$T/certs"
sc_publish "$T/certs" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
bp=$(t_free_port); ip=$(t_free_port); ip2=$(t_free_port)
sc_backend "$bp"
sc_start sc --certs "$T/certs" --inbound "127.0.0.1:$ip=127.0.0.1:$bp"
pid=$SC_PID
sc_start sc2 --certs "$T/certs" --log-admissions 2 --inbound "127.0.0.1:$ip2=127.0.0.1:$bp"
pid2=$SC_PID
sc_wait_port "$ip"
sc_wait_port "$ip2"

get() {
    curl -sS --max-time 5 --cacert "$T/root.crt" --cert "$T/productA.crt" --key "$T/productA.key" \
        "https://127.0.0.1:$1/" 2>>"$T/curl.err"
}
[ "$(get "$ip")" = "backend ok" ] || t_fail "productA not proxied"
serial=$(sc_serial "$T/productA.crt")
sc_wait_log "$T/sc.log" "level=info subsys=conn worker=0 admitted listener=127.0.0.1:$ip peer=127.0.0.1:[0-9]+ subject=\"[^\"]*CN=dev.productA.dev\" san_uri=\"spiffe://example.org/dev/productA\" serial=$serial resumed=0" ||
    t_fail "admission not logged"

# Rate limit: 6 admissions in well under a second, 2 lines, 4 counted.
for i in 1 2 3 4 5 6; do get "$ip2" >/dev/null; done
sleep 1.1
get "$ip2" >/dev/null # opens the next window, which reports the suppressed ones
sc_wait_log "$T/sc2.log" "suppressed=[1-9][0-9]* msg=\"admissions not logged\"" || t_fail "suppressed admissions not counted"
n=$(grep -c " admitted " "$T/sc2.log" || true)
[ "$n" -ge 2 ] && [ "$n" -le 4 ] || t_fail "$n admission lines with --log-admissions 2"
sc_stop "$pid2" "$T/sc2.log"
sc_stop "$pid" "$T/sc.log"
echo ok
