#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_connect: how a connection to the upstream (outbound)
# or the backend (inbound) that fails is told apart and reported. A refused
# connect is logged reason=connect, naming the upstream and the errno; an
# upstream that accepts and then closes before answering the ClientHello is
# a TLS failure (reason=protocol), not a connect one; an upstream whose
# connect completes only after the ClientHello was built gets it then; with
# a name that has two addresses, a refusal by the first moves on to the
# second, and only a refusal by both is logged (needs root and unshare for
# a private /etc/hosts; that part is skipped otherwise).
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
command -v nginx >/dev/null || { echo "skip: nginx missing"; exit 77; }

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
sc_leaf "$T" root server localhost "DNS:localhost,DNS:two.duet.test"
SC_EXT=srv sc_leaf "$T" root sidecar dev.resource.dev
mkdir "$T/certs" "$T/srvcerts"
sc_publish "$T/certs" "$T/productA.key" "$T/productA.crt" "$T/root.crt"
sc_publish "$T/srvcerts" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
np=$(t_free_port); dead=$(t_free_port); hup=$(t_free_port)
lp=$(t_free_port); lp2=$(t_free_port); ip=$(t_free_port)
sc_nginx ngx "$np" "$T/server.crt" "$T/server.key" "$T/root.crt"
# An upstream that accepts and closes at once, before any TLS.
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
' "$hup" >"$T/hup.log" 2>&1 &
SC_PIDS+=("$!")
sc_wait_port "$hup"

# empty_reply PORT: the client side is closed without an answer.
empty_reply() {
    local rc=0
    curl -sS --max-time 5 "http://127.0.0.1:$1/" >/dev/null 2>>"$T/curl.err" || rc=$?
    [ "$rc" -eq 52 ] || [ "$rc" -eq 56 ] || t_fail "port $1: curl exit $rc, want an empty reply"
}

sc_start sc --certs "$T/certs" --outbound "127.0.0.1:$lp=127.0.0.1:$dead" \
    --outbound "127.0.0.1:$lp2=127.0.0.1:$hup"
pid=$SC_PID
sc_wait_port "$lp"
empty_reply "$lp"
sc_wait_log "$T/sc.log" "upstream=127.0.0.1:$dead .*reason=connect .*msg=\"connect: Connection refused\"" ||
    t_fail "refused upstream not logged as a connect failure naming it"
empty_reply "$lp2"
sc_wait_log "$T/sc.log" "upstream=127.0.0.1:$hup .*reason=protocol" ||
    t_fail "upstream closing before the ServerHello not logged as a TLS failure"
grep -q "upstream=127.0.0.1:$hup .*reason=connect" "$T/sc.log" &&
    t_fail "upstream that accepted logged as a connect failure"
echo "outbound: refused and closed upstreams told apart"

# A dead upstream under load: 300 clients in a burst are 300 failures, but
# only about 20 lines a second reach the log; the next window counts the rest.
sleep 1.1
before=$(grep -c "upstream=127.0.0.1:$dead .*reason=connect" "$T/sc.log")
python3 -c '
import socket, sys
for _ in range(300):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.recv(1)  # the sidecar closes it once the upstream refused
    s.close()
' "$lp" || t_fail "burst against the dead upstream failed"
sleep 1.1
empty_reply "$lp" # opens the next window, which reports the suppressed ones
sc_wait_log "$T/sc.log" "suppressed=[1-9][0-9]* msg=\"upstream failures not logged\"" ||
    t_fail "suppressed upstream failures not counted"
logged=$(($(grep -c "upstream=127.0.0.1:$dead .*reason=connect" "$T/sc.log") - before))
[ "$logged" -le 61 ] || t_fail "$logged upstream failure lines for a burst of 300, want ≤ 20 a second"
sc_stop "$pid" "$T/sc.log"
echo "outbound: failures of a dead upstream logged at most 20 a second ($logged for 301)"

# An upstream whose connect completes a second late (its accept queue is
# full, the kernel drops the first SYN): the ClientHello, ready before the
# connect completed, waits in BoringSSL and goes out on EPOLLOUT.
slow=$(t_free_port); lp5=$(t_free_port)
python3 "$(dirname "$0")/sc_slowaccept.py" "$slow" "$T/server.crt" "$T/server.key" "$T/root.crt" \
    "$T/go" >"$T/slow.log" 2>&1 &
SC_PIDS+=("$!")
sc_wait_log "$T/slow.log" ready || t_fail "slow upstream did not start"
sc_start sc3 --certs "$T/certs" --outbound "127.0.0.1:$lp5=127.0.0.1:$slow,sni=localhost"
pid=$SC_PID
sc_wait_port "$lp5"
curl -sS --max-time 10 "http://127.0.0.1:$lp5/" >"$T/slow.out" 2>>"$T/curl.err" &
cpid=$!
sleep 0.5
touch "$T/go"
wait "$cpid" || t_fail "slow upstream: curl failed"
[ "$(cat "$T/slow.out")" = "slow ok" ] || t_fail "slow upstream: unexpected body '$(cat "$T/slow.out")'"
grep -q "reason=" "$T/sc3.log" && t_fail "slow upstream: a failure was logged"
sc_stop "$pid" "$T/sc3.log"
echo "outbound: a connect still in progress after connect(2) completes the handshake later"

# Inbound: a backend that refuses is logged with the reason, once.
sc_start sci --certs "$T/srvcerts" --inbound "127.0.0.1:$ip=127.0.0.1:$dead"
pid=$SC_PID
sc_wait_port "$ip"
curl -sS --max-time 5 --cacert "$T/root.crt" --cert "$T/productA.crt" --key "$T/productA.key" \
    "https://127.0.0.1:$ip/" >/dev/null 2>>"$T/curl.err" && t_fail "inbound answered with no backend"
sc_wait_log "$T/sci.log" "refused listener=127.0.0.1:$ip .*reason=connect .*msg=\"connect: Connection refused\"" ||
    t_fail "refused backend not logged as a connect failure"
sc_stop "$pid" "$T/sci.log"
echo "inbound: refused backend logged"

if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! unshare -m true 2>/dev/null; then
    echo "skip the two-address part: needs root and unshare"
    echo ok
    exit 0
fi
# two.duet.test is ::1 first (RFC 6724 precedence), then 127.0.0.1; nginx
# listens on 127.0.0.1 only, so the first address refuses.
printf '::1 two.duet.test\n127.0.0.1 two.duet.test\n' >"$T/hosts"
lp3=$(t_free_port); lp4=$(t_free_port)
sc_start_bound sc2 "$T/hosts" /etc/hosts --certs "$T/certs" \
    --outbound "127.0.0.1:$lp3=two.duet.test:$np" --outbound "127.0.0.1:$lp4=two.duet.test:$dead"
pid=$SC_PID
sc_wait_port "$lp3"
for i in 1 2 3; do
    out=$(curl -sS --max-time 5 "http://127.0.0.1:$lp3/$i") || t_fail "two addresses: request $i failed"
    [ "$out" = "hello CN=dev.productA.dev" ] || t_fail "two addresses: unexpected body '$out'"
done
grep -q "reason=connect" "$T/sc2.log" && t_fail "a refusal by the first address was logged"
empty_reply "$lp4"
sc_wait_log "$T/sc2.log" "upstream=two.duet.test:$dead .*reason=connect .*msg=\"connect: Connection refused\"" ||
    t_fail "both addresses refused, not logged as a connect failure"
[ "$(grep -c "reason=connect" "$T/sc2.log")" -eq 1 ] || t_fail "one connection, more than one refusal logged"
SC_PIDS=("${SC_PIDS[@]/$pid}")
sc_stop "$pid" "$T/sc2.log"
echo "two addresses: the second one used after a refusal"
echo ok
