#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_lifetime: --workers 2 serves through SO_REUSEPORT
# listeners; --max-conn-lifetime closes a busy keep-alive connection; an
# inbound connection is closed when its peer certificate expires.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
command -v nginx >/dev/null || { echo "skip: nginx missing"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
sc_leaf "$T" root server localhost
sc_leaf "$T" root sidecar dev.resource.dev
mkdir "$T/certs" "$T/scerts"
sc_publish "$T/certs" "$T/productA.key" "$T/productA.crt" "$T/root.crt"
sc_publish "$T/scerts" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
np=$(t_free_port); lp=$(t_free_port); lp2=$(t_free_port); sp=$(t_free_port)
bp=$(t_free_port); ip=$(t_free_port)
sc_nginx ngx "$np" "$T/server.crt" "$T/server.key" "$T/root.crt"
sc_backend "$bp"

# Two workers: every request served, and both workers' counters add up.
sc_start sc --certs "$T/certs" --workers 2 --status "127.0.0.1:$sp" \
    --outbound "127.0.0.1:$lp=127.0.0.1:$np"
pid=$SC_PID
sc_wait_port "$lp"
for i in $(seq 1 40); do
    curl -sS --max-time 5 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$lp/$i"
done >"$T/codes"
[ "$(grep -cx 200 "$T/codes")" -eq 40 ] || t_fail "not every request served with 2 workers"
[ "$(sc_metric "$sp" 'connections_total\{')" -ge 40 ] || t_fail "connection count with 2 workers"
[ "$(ls /proc/$pid/task | wc -l)" -eq 3 ] || t_fail "want 3 threads: main and 2 workers (no resolver for IP literals)"
sc_stop "$pid" "$T/sc.log"

# --max-conn-lifetime 1s: a keep-alive connection is closed after about 1s.
sc_start sc2 --certs "$T/certs" --max-conn-lifetime 1s --outbound "127.0.0.1:$lp2=127.0.0.1:$np"
pid2=$SC_PID
sc_wait_port "$lp2"
r=$(python3 "$here/sc_hostile.py" closed-after "$lp2" 5)
case "$r" in closed\ 0.9 | closed\ 1.* | closed\ 2.*) ;; *) t_fail "lifetime: $r" ;; esac
sc_stop "$pid2" "$T/sc2.log"

# Inbound: the connection ends when the client certificate expires (made
# here, valid from a minute ago until 6 seconds from now).
sc_leaf "$T" root short dev.productA.dev "" \
    "$(date -u -d '-1 min' +%Y%m%d%H%M%SZ)" "$(date -u -d '+6 sec' +%Y%m%d%H%M%SZ)"
sc_start sc3 --certs "$T/scerts" --inbound "127.0.0.1:$ip=127.0.0.1:$bp"
pid3=$SC_PID
sc_wait_port "$ip"
r=$(python3 "$here/sc_hostile.py" tls-closed-after "$ip" 15 "$T" short)
case "$r" in closed\ *) ;; *) t_fail "expiring peer certificate: $r" ;; esac
sc_wait_log "$T/sc3.log" "reason=expired" 3 && t_fail "short certificate refused before its expiry"
sc_stop "$pid3" "$T/sc3.log"
echo "sidecar_lifetime: ok"
