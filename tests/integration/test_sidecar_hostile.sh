#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_hostile: garbage bytes, a half-finished handshake
# (closed by the handshake timeout), 10,000 connect-and-reset, more idle
# connections than --max-conns, and a client that never reads leave the
# sidecar up, within its memory and connection bounds (its kernel socket
# queues included), and serving the next good client.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
here=$(cd "$(dirname "$0")" && pwd)

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
sc_leaf "$T" root sidecar dev.resource.dev
mkdir "$T/certs"
sc_publish "$T/certs" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
bp=$(t_free_port); ip=$(t_free_port); sp=$(t_free_port)
sc_backend "$bp"
# A client that never reads asks for this: more than every buffer on the way holds.
truncate -s 64M "$T/www/big"
sc_start sc --certs "$T/certs" --status "127.0.0.1:$sp" --handshake-timeout 1s \
    --idle-timeout 5s --max-conns 100 --inbound "127.0.0.1:$ip=127.0.0.1:$bp"
pid=$SC_PID
sc_wait_port "$ip"

good() {
    [ "$(curl -sS --max-time 5 --cacert "$T/root.crt" --cert "$T/productA.crt" \
        --key "$T/productA.key" "https://127.0.0.1:$ip/")" = "backend ok" ] ||
        t_fail "good client not served after $1"
}
good start
rss0=$(sc_rss "$pid")

[ "$(python3 "$here/sc_hostile.py" garbage "$ip")" = closed ] || t_fail "garbage left open"
good garbage

r=$(python3 "$here/sc_hostile.py" half-handshake "$ip")
case "$r" in
closed\ 0.* | closed\ 1.* | closed\ 2.*) ;;
*) t_fail "half-finished handshake: $r (want closed after ~1s)" ;;
esac
good half-handshake

r=$(timeout 180 python3 "$here/sc_hostile.py" resets "$ip" 10000)
[ "$r" = "resets 10000" ] || t_fail "connect-and-reset loop: $r"
kill -0 "$pid" || t_fail "sidecar died under resets"
good resets

# More idle connections than --max-conns: never more than 100 open at once.
python3 "$here/sc_hostile.py" hold "$ip" 300 3 >"$T/hold.out" &
holder=$!
SC_PIDS+=("$holder")
max=0
for i in $(seq 1 25); do
    o=$(sc_metric "$sp" "connections_open\{listener=\"127.0.0.1:$ip\"")
    [ "$o" -gt "$max" ] && max=$o
    sleep 0.1
done
[ "$max" -le 100 ] || t_fail "$max connections open with --max-conns 100"
[ "$max" -ge 50 ] || t_fail "only $max connections seen open"
wait "$holder" || true
good max-conns

# Out of file descriptors: the listener rests instead of spinning, and
# accepts again once descriptors are free.
if command -v prlimit >/dev/null; then
    soft=$(awk '/Max open files/ {print $4}' "/proc/$pid/limits")
    prlimit --pid "$pid" --nofile=48:
    python3 "$here/sc_hostile.py" hold "$ip" 80 2 >"$T/hold2.out" &
    holder=$!
    SC_PIDS+=("$holder")
    sleep 0.5
    c0=$(awk '{print $14+$15}' "/proc/$pid/stat")
    sleep 1
    c1=$(awk '{print $14+$15}' "/proc/$pid/stat")
    [ $((c1 - c0)) -lt 40 ] || t_fail "spinning without descriptors: $((c1 - c0)) ticks in 1s"
    wait "$holder" || true
    prlimit --pid "$pid" --nofile="$soft":
    sc_wait_log "$T/sc.log" "cannot accept, pausing" || t_fail "EMFILE not logged"
    sleep 1.2 # the handshake timeout closes what the holder left
    good emfile
fi

# A client that never reads: the sidecar stops reading the backend, and the
# kernel queues on its sockets stay small too (TCP_NOTSENT_LOWAT; without
# it send-buffer autotuning queues 4 MiB toward the client, memory that
# cgroup v2 charges to the sidecar's container).
python3 "$here/sc_hostile.py" no-read "$ip" "$T" 3 >"$T/noread.out" &
nr=$!
SC_PIDS+=("$nr")
sleep 2
q=$(python3 "$here/sc_hostile.py" queued "$pid")
echo "kernel queues of the sidecar's sockets with a non-reading client: $q"
tx=${q#tx=}
tx=${tx%% *}
[ "$tx" -lt 1048576 ] || t_fail "send queues hold $tx bytes for one non-reading client"
good no-read
rss1=$(sc_rss "$pid")
wait "$nr" || true
kill -0 "$pid" || t_fail "sidecar died"

# Everything is closed again (handshake and idle timeouts), memory bounded.
for i in $(seq 1 80); do
    [ "$(sc_metric "$sp" "connections_open\{listener=\"127.0.0.1:$ip\"")" -eq 0 ] && break
    sleep 0.1
done
o=$(sc_metric "$sp" "connections_open\{listener=\"127.0.0.1:$ip\"")
[ "$o" -eq 0 ] || t_fail "$o connections still open"
rss2=$(sc_rss "$pid")
echo "VmRSS KiB: start $rss0, with a non-reading client $rss1, after $rss2"
# ASan keeps freed memory in quarantine (256 MB by default): a looser bound there.
bound=32768
grep -qa __asan_init "$DUET_SIDECAR" && bound=300000
[ $((rss1 - rss0)) -lt "$bound" ] || t_fail "RSS grew by $((rss1 - rss0)) KiB"
good end
sc_stop "$pid" "$T/sc.log"
echo "sidecar_hostile: ok"
