#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_slowdns: an outbound upstream named through a DNS
# server that takes 1.5 s per answer, the sidecar in a private mount
# namespace whose /etc/resolv.conf points at it. 50 connections at 5 a
# second all succeed (one lookup serves the burst, then the cache), a
# connection after the burst is answered from the cache, and the lookups
# are visible in /metrics apart from the handshakes. Needs root (unshare,
# port 53 on 127.0.0.77); skips otherwise.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
command -v nginx >/dev/null || { echo "skip: nginx missing"; exit 77; }
command -v unshare >/dev/null && [ "$(id -u)" = 0 ] || { echo "skip: needs root and unshare"; exit 77; }
unshare -m true 2>/dev/null || { echo "skip: cannot unshare a mount namespace"; exit 77; }

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
sc_leaf "$T" root server localhost "DNS:localhost"
mkdir "$T/certs"
sc_publish "$T/certs" "$T/productA.key" "$T/productA.crt" "$T/root.crt"
np=$(t_free_port); op=$(t_free_port); sp=$(t_free_port)
sc_nginx ngx "$np" "$T/server.crt" "$T/server.key" "$T/root.crt"
(cd "$T" && exec python3 "$(cd "$(dirname "$0")" && pwd)/sc_slowdns.py" 127.0.0.77 1.5 slow.duet.test 127.0.0.1) \
    >"$T/dns.log" 2>&1 &
SC_PIDS+=("$!")
for i in $(seq 1 50); do grep -q ready "$T/dns.log" && break; sleep 0.1; done
grep -q ready "$T/dns.log" || t_fail "DNS server did not start"
printf 'nameserver 127.0.0.77\noptions timeout:5 attempts:1\n' >"$T/resolv.conf"
sc_start_bound sc "$T/resolv.conf" /etc/resolv.conf --certs "$T/certs" --status "127.0.0.1:$sp" \
    --outbound "127.0.0.1:$op=slow.duet.test:$np,sni=localhost"
pid=$SC_PID
sc_wait_port "$op"

pids=()
for i in $(seq 1 50); do
    (curl -sS -o /dev/null -w '%{http_code}\n' --max-time 15 "http://127.0.0.1:$op/$i" >"$T/c$i.out" 2>/dev/null || echo fail >"$T/c$i.out") &
    pids+=("$!")
    sleep 0.2
done
for p in "${pids[@]}"; do wait "$p" || true; done
ok=$(cat "$T"/c*.out | grep -c '^200$' || true)
echo "burst: $ok of 50 succeeded, $(cat "$T/dns-queries") DNS queries"
[ "$ok" -eq 50 ] || t_fail "only $ok of 50 connections succeeded"
t0=$(date +%s%N)
[ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$op/after")" = 200 ] ||
    t_fail "connection after the burst failed"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 1000 ] || t_fail "connection after the burst took $ms ms (no cache?)"
lookups=$(sc_metric "$sp" 'resolve_lookups_total\{result="ok"\}')
cached=$(sc_metric "$sp" 'resolve_requests_total\{outcome="cache"\}')
secs=$(sc_metric "$sp" '^duet_sidecar_resolve_lookup_seconds_total')
echo "lookups=$lookups cache_hits=$cached lookup_seconds=$secs"
[ "$lookups" -ge 1 ] && [ "$lookups" -le 3 ] || t_fail "$lookups lookups for one name"
[ "$cached" -ge 40 ] || t_fail "only $cached requests answered from the cache"
SC_PIDS=("${SC_PIDS[@]/$pid}")
sc_stop "$pid" "$T/sc.log"
echo ok
