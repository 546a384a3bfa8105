#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_outbound: curl -> duet-sidecar outbound -> nginx that
# demands a client certificate from the root. nginx answers 200 and logs the
# productA serial; the same nginx refuses a client without a certificate;
# sessions resume by default and never with resume=off; half-close passes
# through TLS, and so does an upstream's close_notify that waits for ours,
# and an answer that ends with the stream in the same read; a dead upstream,
# or one that never answers the handshake, closes the client cleanly (a FIN,
# even with the client's bytes unread); usage errors exit 2.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
command -v nginx >/dev/null || { echo "skip: nginx missing"; exit 77; }

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
sc_leaf "$T" root server localhost
mkdir "$T/certs"
sc_publish "$T/certs" "$T/productA.key" "$T/productA.crt" "$T/root.crt"
np=$(t_free_port); lp=$(t_free_port); lp2=$(t_free_port); sp=$(t_free_port)
sc_nginx ngx "$np" "$T/server.crt" "$T/server.key" "$T/root.crt"

# Usage errors: one line naming the flag, exit 2.
rc=0; "$DUET_SIDECAR" --certs "$T/certs" >"$T/usage.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || t_fail "no listener: exit $rc, want 2"
grep -q -- "--outbound" "$T/usage.out" || t_fail "usage line does not name the flag"
rc=0; "$DUET_SIDECAR" --certs "$T/certs" --outbound "127.0.0.1:1=x" >"$T/usage.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <"$T/usage.out")" -eq 1 ] || t_fail "bad spec: exit $rc"

sc_start sc --certs "$T/certs" --status "127.0.0.1:$sp" \
    --outbound "127.0.0.1:$lp=127.0.0.1:$np" \
    --outbound "127.0.0.1:$lp2=localhost:$np,sni=localhost,resume=off"
pid=$SC_PID
sc_wait_port "$lp"
sc_wait_port "$sp"

# Through the sidecar: 200, and nginx saw productA's certificate.
out=$(curl -sS --max-time 5 "http://127.0.0.1:$lp/")
[ "$out" = "hello CN=dev.productA.dev" ] || t_fail "unexpected body '$out'"
serial=$(sc_serial "$T/productA.crt")
grep -q "^$serial " "$T/ngx.access" || t_fail "nginx did not log serial $serial"
# Without a certificate nginx refuses (400, "No required SSL certificate was sent").
code=$(curl -sS -k -o /dev/null -w '%{http_code}' --max-time 5 "https://127.0.0.1:$np/" || true)
[ "$code" = 400 ] || t_fail "nginx accepted a client without certificate ($code)"

# Resumption: on by default, off on the second listener (resolved by name).
for i in 1 2 3 4; do
    curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$lp/$i"
    curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$lp2/$i"
done
res1=$(sc_metric "$sp" "handshakes_resumed_total\{listener=\"127.0.0.1:$lp\"")
res2=$(sc_metric "$sp" "handshakes_resumed_total\{listener=\"127.0.0.1:$lp2\"")
hs2=$(sc_metric "$sp" "^duet_sidecar_handshakes_total\{listener=\"127.0.0.1:$lp2\"")
[ "$res1" -ge 3 ] || t_fail "default listener resumed $res1 of 5"
[ "$res2" -eq 0 ] && [ "$hs2" -eq 4 ] || t_fail "resume=off listener: $res2 resumed of $hs2"

# An upstream that refuses connections: the client side is closed cleanly.
dead=$(t_free_port); lp3=$(t_free_port)
sc_start sc2 --certs "$T/certs" --outbound "127.0.0.1:$lp3=127.0.0.1:$dead"
pid2=$SC_PID
sc_wait_port "$lp3"
rc=0; curl -sS --max-time 5 "http://127.0.0.1:$lp3/" >/dev/null 2>"$T/curl.err" || rc=$?
[ "$rc" -eq 52 ] || [ "$rc" -eq 56 ] || t_fail "dead upstream: curl exit $rc, want empty reply"
sc_wait_log "$T/sc2.log" "reason=connect" || t_fail "connect failure not logged"
sc_stop "$pid2" "$T/sc2.log"

# An upstream that never answers the handshake, and a client that sent
# more than the sidecar drops before closing (256 KiB): at the handshake
# timeout the client still sees the end of stream, not a reset.
silent=$(t_free_port); lp7=$(t_free_port)
python3 "$(dirname "$0")/sc_halfclose.py" silent-server "$silent" 60 &
SC_PIDS+=("$!")
sc_wait_port "$silent"
sc_start sc7 --certs "$T/certs" --handshake-timeout 1s --outbound "127.0.0.1:$lp7=127.0.0.1:$silent"
pid7=$SC_PID
sc_wait_port "$lp7"
out=$(timeout 20 python3 "$(dirname "$0")/sc_halfclose.py" push-client "$lp7" 256)
[ "$out" = eof ] || t_fail "upstream handshake timeout with unread client bytes: '$out', want eof"
sc_stop "$pid7" "$T/sc7.log"

# A serverAuth-only certificate cannot be an outbound client identity:
# refused at load, the sidecar stays not ready.
SC_EXT=srv sc_leaf "$T" root srvonly dev.resource.dev
mkdir "$T/srvcerts"
sc_publish "$T/srvcerts" "$T/srvonly.key" "$T/srvonly.crt" "$T/root.crt"
lp5=$(t_free_port); sp5=$(t_free_port)
sc_start sc5 --certs "$T/srvcerts" --status "127.0.0.1:$sp5" --outbound "127.0.0.1:$lp5=127.0.0.1:$np"
pid5=$SC_PID
sc_wait_port "$sp5"
sc_wait_log "$T/sc5.log" "refused new certificate set.*for client use" || t_fail "server cert accepted for outbound"
[ "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$sp5/readyz")" = 503 ] || t_fail "ready with a server cert"
sc_stop "$pid5" "$T/sc5.log"

# behind MODE NAME: sc_halfclose.py MODE as the upstream of a new sidecar
# NAME; sets BP (the sidecar's port) and BPID (its PID).
behind() {
    local hp
    hp=$(t_free_port); BP=$(t_free_port)
    python3 "$(dirname "$0")/sc_halfclose.py" "$1" "$T" "$hp" 2>"$T/$1.log" &
    SC_PIDS+=("$!")
    sc_wait_log "$T/$1.log" listening || t_fail "$1 upstream did not start"
    sc_start "$2" --certs "$T/certs" --outbound "127.0.0.1:$BP=127.0.0.1:$hp"
    BPID=$SC_PID
    sc_wait_port "$BP"
}

# Half-close passed through: the client shuts its write side after 100 kB,
# the upstream sees end of stream (close_notify), answers, and the answer
# still reaches the client.
behind server sc4
out=$(timeout 20 python3 "$(dirname "$0")/sc_halfclose.py" client "$BP")
[ "$out" = "got 100000 after eof" ] || t_fail "half-close: '$out'"
sc_stop "$BPID" "$T/sc4.log"

# An upstream that answers, sends close_notify and waits for ours before
# its FIN (a bidirectional TLS shutdown): its end of stream, decrypted with
# the answer, must reach the client at once; the client then ends its side,
# which sends our close_notify.
behind notify sc6
out=$(timeout 8 python3 "$(dirname "$0")/sc_halfclose.py" asker "$BP") || t_fail "close_notify: no end of stream"
[ "$out" = "bye" ] || t_fail "close_notify: '$out'"
sc_wait_log "$T/notify.log" "got close_notify back" || t_fail "close_notify: ours never came"
sc_stop "$BPID" "$T/sc6.log"

# An upstream that answers and closes in one write (data and close_notify in
# one read): the end of stream reaches the client at once, not at the idle
# timeout (5 minutes by default).
hp=$(t_free_port); lp6=$(t_free_port)
python3 "$(dirname "$0")/sc_halfclose.py" oneshot-server "$T" "$hp" 2>"$T/oneshot.log" &
SC_PIDS+=("$!")
sc_wait_log "$T/oneshot.log" listening || t_fail "oneshot upstream did not start"
sc_start sc8 --certs "$T/certs" --outbound "127.0.0.1:$lp6=127.0.0.1:$hp"
pid6=$SC_PID
sc_wait_port "$lp6"
out=$(timeout 20 python3 "$(dirname "$0")/sc_halfclose.py" eof-client "$lp6")
[ "$out" = "answer and close / eof" ] || t_fail "answer and close in one write: '$out'"
sc_stop "$pid6" "$T/sc8.log"

[ "$(curl -sS "http://127.0.0.1:$sp/readyz")" = ready ] || t_fail "not ready"
sc_stop "$pid" "$T/sc.log"
echo "sidecar_outbound: ok"
