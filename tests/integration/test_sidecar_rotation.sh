#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_rotation: while wrk (keep-alive) and a curl loop (a
# new connection per request) run through an outbound listener, the
# certificate set is republished 10 times the way the agent does it. No
# request fails; after each publication new connections present the new
# serial within 1 s (nginx's log); an invalid set (mismatched key) published
# in the middle is refused and counted, and the previous one stays in use.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
for tool in nginx wrk; do
    command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
done

sc_ca "$T" root
for i in $(seq 0 10); do
    sc_leaf "$T" root "a$i" dev.productA.dev
done
sc_leaf "$T" root server localhost
np=$(t_free_port); lp=$(t_free_port); sp=$(t_free_port)
sc_nginx ngx "$np" "$T/server.crt" "$T/server.key" "$T/root.crt"
mkdir "$T/certs"
sc_publish "$T/certs" "$T/a0.key" "$T/a0.crt" "$T/root.crt"
sc_start sc --certs "$T/certs" --status "127.0.0.1:$sp" --outbound "127.0.0.1:$lp=127.0.0.1:$np"
pid=$SC_PID
sc_wait_port "$lp"

wrk -t1 -c8 -d25s "http://127.0.0.1:$lp/" >"$T/wrk.out" 2>&1 &
wrkpid=$!
SC_PIDS+=("$wrkpid")
(
    fails=0
    end=$((SECONDS + 24))
    n=0
    while [ "$SECONDS" -lt "$end" ] && [ "$n" -lt 5000 ]; do
        curl -sS --max-time 5 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$lp/loop" 2>&1 |
            grep -qx 200 || fails=$((fails + 1))
        n=$((n + 1))
    done
    echo "$n $fails" >"$T/loop.result"
) &
loop=$!
SC_PIDS+=("$loop")

# probe PATH: request PATH on a new connection; print the serial nginx saw for it.
probe() {
    curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$lp$1" || t_fail "probe $1 failed"
    grep " $1\$" "$T/ngx.access" | tail -1 | cut -d' ' -f1
}

sleep 1
for i in $(seq 1 10); do
    if [ "$i" -eq 5 ]; then
        # Mismatched key: refused, counted, the current set stays.
        cur=$(sc_serial "$T/a4.crt")
        sc_publish "$T/certs" "$T/a1.key" "$T/a5.crt" "$T/root.crt"
        sc_wait_metric "$sp" 'reloads_total\{result="failed"\}' 1 || t_fail "bad set not refused"
        sc_wait_log "$T/sc.log" 'refused new certificate set.*does not match' || t_fail "refusal not logged"
        [ "$(probe /after-bad)" = "$cur" ] ||
            t_fail "old set not kept after the bad one"
    fi
    want=$(sc_serial "$T/a$i.crt")
    sc_publish "$T/certs" "$T/a$i.key" "$T/a$i.crt" "$T/root.crt"
    t0=$(date +%s%N)
    ok=0
    k=0
    while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 1000 ]; do
        k=$((k + 1))
        if [ "$(probe "/probe-$i-$k")" = "$want" ]; then ok=1; break; fi
        sleep 0.05
    done
    [ "$ok" = 1 ] || t_fail "publication $i: serial $want not presented within 1s"
    sleep 0.8
done

wait "$loop" || true
wait "$wrkpid" || true
read -r n fails <"$T/loop.result"
[ "$fails" -eq 0 ] || t_fail "$fails of $n new-connection requests failed"
[ "$n" -ge 50 ] || t_fail "only $n requests in the loop"
grep -q "Requests/sec" "$T/wrk.out" || t_fail "wrk did not run"
if grep -Eq "Non-2xx|Socket errors" "$T/wrk.out"; then
    cat "$T/wrk.out" >&2
    t_fail "wrk saw errors"
fi
[ "$(sc_metric "$sp" 'reloads_total\{result="ok"\}')" -eq 11 ] || t_fail "reload count"
echo "loop: $n requests; wrk: $(grep Requests/sec "$T/wrk.out")"
sc_stop "$pid" "$T/sc.log" 30
echo "sidecar_rotation: ok"
