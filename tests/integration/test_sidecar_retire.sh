#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_retire: an outbound connection on a certificate near
# its end is closed at rest, never under a request. One waiting for a slow
# answer when the soft deadline passes gets its answer, then is closed after
# a quiet gap (retired); one whose answer never comes is cut at notAfter.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
here=$(cd "$(dirname "$0")" && pwd)

sc_ca "$T" root
sc_leaf "$T" root server localhost
# Valid from 60 s ago to 20 s from now: a tenth of its life (8 s) is the
# margin, so the soft deadline is 12 s from now.
nb=$(($(date +%s) - 60))
na=$((nb + 80))
sc_leaf "$T" root productA dev.productA.dev "" \
    "$(date -u -d "@$nb" +%Y%m%d%H%M%SZ)" "$(date -u -d "@$na" +%Y%m%d%H%M%SZ)"
mkdir "$T/certs"
sc_publish "$T/certs" "$T/productA.key" "$T/productA.crt" "$T/root.crt"
up=$(t_free_port); lp=$(t_free_port); sp=$(t_free_port)
python3 "$here/sc_retire.py" upstream "$up" "$T" 40 >"$T/upstream.log" 2>&1 &
SC_PIDS+=("$!")
sc_wait_port "$up"
sc_start sc --certs "$T/certs" --status "127.0.0.1:$sp" --outbound "127.0.0.1:$lp=127.0.0.1:$up"
pid=$SC_PID
sc_wait_port "$lp"

python3 "$here/sc_retire.py" client "$lp" "$na" "$nb" >"$T/client.out" 2>&1
cat "$T/client.out"
read -r _ answered after before < <(grep '^slow ' "$T/client.out")
[ "$answered" = answered=1 ] || t_fail "the request waiting at the soft deadline lost its answer"
awk -v a="${after#*=}" -v b="${before#*=}" 'BEGIN { exit !(a >= 0.2 && a < 2.5 && b > 3) }' ||
    t_fail "slow: not closed at rest after its answer, well before notAfter ($after $before)"
read -r _ never < <(grep '^never ' "$T/client.out")
awk -v b="${never#*=}" 'BEGIN { exit !(b > -1.5 && b < 1) }' ||
    t_fail "never: a connection awaiting an answer must be cut at notAfter ($never)"
[ "$(sc_metric "$sp" 'connections_retired_total\{')" -eq 1 ] || t_fail "retired count"
[ "$(sc_metric "$sp" 'connections_cut_total\{')" -eq 1 ] || t_fail "cut count"
sc_stop "$pid" "$T/sc.log"
echo "sidecar_retire: ok"
