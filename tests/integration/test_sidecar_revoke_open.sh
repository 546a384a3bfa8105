#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_revoke_open: a CRL reload that revokes productB closes
# B's open inbound connection and the open outbound connection to the
# now-revoked upstream (logged with reason=revoked, counted in
# duet_sidecar_connections_closed_recheck_total); productA's connection,
# still valid, stays open.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
command -v nginx >/dev/null || { echo "skip: nginx missing"; exit 77; }

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
sc_leaf "$T" root productB dev.productB.dev
sc_leaf "$T" root upstream localhost "DNS:localhost"
sc_leaf "$T" root sidecar dev.resource.dev
sc_crl "$T" root
cp "$T/root.crl" "$T/current.crl"
mkdir "$T/certs"
sc_publish "$T/certs" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
bp=$(t_free_port); ip=$(t_free_port); op=$(t_free_port); np=$(t_free_port); sp=$(t_free_port)
sc_backend "$bp"
sc_nginx ngx "$np" "$T/upstream.crt" "$T/upstream.key" "$T/root.crt"
sc_start sc --certs "$T/certs" --crl "$T/current.crl" --reload-poll 100ms --status "127.0.0.1:$sp" \
    --inbound "127.0.0.1:$ip=127.0.0.1:$bp" --outbound "127.0.0.1:$op=127.0.0.1:$np,sni=localhost"
pid=$SC_PID
sc_wait_port "$ip"
sc_wait_port "$op"

hold=$(dirname "$0")/sc_hold.py
python3 "$hold" tls "$ip" "$T" productB 15 >"$T/holdB.out" 2>&1 &
SC_PIDS+=("$!"); hb=$!
python3 "$hold" tls "$ip" "$T" productA 5 >"$T/holdA.out" 2>&1 &
SC_PIDS+=("$!"); ha=$!
python3 "$hold" http "$op" 15 >"$T/holdO.out" 2>&1 &
SC_PIDS+=("$!"); ho=$!
for f in holdA holdB holdO; do
    for i in $(seq 1 50); do grep -q ready "$T/$f.out" && break; sleep 0.1; done
    grep -q ready "$T/$f.out" || t_fail "$f did not connect"
done
sleep 0.3
sc_revoke "$T" root productB
sc_revoke "$T" root upstream
cp "$T/root.crl" "$T/current.crl.new" && mv "$T/current.crl.new" "$T/current.crl"
wait "$hb" || true; wait "$ho" || true; wait "$ha" || true
[ "$(tail -1 "$T/holdB.out")" = closed ] || t_fail "revoked productB's connection stayed open"
[ "$(tail -1 "$T/holdO.out")" = closed ] || t_fail "connection to the revoked upstream stayed open"
[ "$(tail -1 "$T/holdA.out")" = open ] || t_fail "productA's connection was closed"
sc_wait_log "$T/sc.log" "closed listener=127.0.0.1:$ip peer=.* reason=revoked subject=\"[^\"]*CN=dev.productB.dev\"" ||
    t_fail "inbound close not logged"
sc_wait_log "$T/sc.log" "closed listener=127.0.0.1:$op peer=.* reason=revoked subject=\"[^\"]*CN=localhost\"" ||
    t_fail "outbound close not logged"
[ "$(sc_metric "$sp" "closed_recheck_total\{listener=\"127.0.0.1:$ip\"")" = 1 ] || t_fail "inbound close not counted"
[ "$(sc_metric "$sp" "closed_recheck_total\{listener=\"127.0.0.1:$op\"")" = 1 ] || t_fail "outbound close not counted"
sc_stop "$pid" "$T/sc.log"
echo ok
