#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_ciphers: a scripted ClientHello per TLS 1.2 suite the
# openssl CLI knows (security level 0, so 3DES, static RSA and CBC-SHA1 are
# offered) against an inbound listener with an RSA key. Only ECDHE with
# AES-GCM or ChaCha20-Poly1305 may be negotiated, and a client offering
# TLS 1.3 gets TLS 1.3. Outbound, an upstream that speaks only CBC and
# static-RSA suites gets no connection.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup

sc_ca "$T" root
sc_leaf "$T" root client dev.productA.dev
openssl req -new -newkey rsa:2048 -nodes -keyout "$T/rsa.key" -subj "/O=duet test/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$T/rsa.csr" 2>/dev/null
openssl ca -batch -config "$T/root.cnf" -extensions ext -days 30 -in "$T/rsa.csr" \
    -out "$T/rsa.crt" -notext 2>/dev/null || t_fail "openssl ca rsa"
mkdir "$T/certs"
sc_publish "$T/certs" "$T/rsa.key" "$T/rsa.crt" "$T/root.crt"
bp=$(t_free_port); ip=$(t_free_port)
sc_backend "$bp"
sc_start sc --certs "$T/certs" --inbound "127.0.0.1:$ip=127.0.0.1:$bp"
pid=$SC_PID
sc_wait_port "$ip"

allowed=" ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-RSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384"
allowed+=" ECDHE-RSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305 ECDHE-RSA-CHACHA20-POLY1305 "
hello() { # hello ARGS...: the suite the listener picked, or (NONE)
    timeout 5 openssl s_client -connect "127.0.0.1:$ip" -cert "$T/client.crt" -key "$T/client.key" \
        -CAfile "$T/root.crt" "$@" </dev/null 2>/dev/null | sed -n 's/.*Cipher is \([^ ]*\).*/\1/p' | head -1 || true
}
n=0; ok=0
for c in $(openssl ciphers -tls1_2 'ALL:COMPLEMENTOFALL:@SECLEVEL=0' | tr ':' ' '); do
    case $c in TLS_*) continue ;; esac
    n=$((n + 1))
    got=$(hello -tls1_2 -cipher "$c:@SECLEVEL=0")
    [ -z "$got" ] || [ "$got" = "(NONE)" ] && continue
    case "$allowed" in *" $got "*) ok=$((ok + 1)) ;; *) t_fail "listener accepted $got" ;; esac
done
[ "$n" -ge 20 ] || t_fail "only $n suites scanned"
[ "$ok" -ge 2 ] || t_fail "only $ok good suites accepted"
echo "scanned $n TLS 1.2 suites, $ok accepted"
v=$(timeout 5 openssl s_client -connect "127.0.0.1:$ip" -cert "$T/client.crt" -key "$T/client.key" \
    -CAfile "$T/root.crt" </dev/null 2>/dev/null | sed -n "s/^New, \(TLSv[0-9.]*\),.*/\1/p" | head -1 || true)
[ "$v" = TLSv1.3 ] || t_fail "default handshake is '$v', want TLSv1.3"

# Outbound: the upstream offers only weak TLS 1.2 suites; the sidecar must not agree.
up=$(t_free_port); op=$(t_free_port)
openssl s_server -quiet -accept "127.0.0.1:$up" -cert "$T/rsa.crt" -key "$T/rsa.key" -tls1_2 \
    -cipher 'ECDHE-RSA-AES128-SHA:AES128-SHA:AES128-GCM-SHA256:DES-CBC3-SHA:@SECLEVEL=0' \
    -CAfile "$T/root.crt" -Verify 1 -www >"$T/up.log" 2>&1 &
SC_PIDS+=("$!")
sc_wait_port "$up"
mkdir "$T/ccerts"
sc_publish "$T/ccerts" "$T/client.key" "$T/client.crt" "$T/root.crt"
sc_start sco --certs "$T/ccerts" --outbound "127.0.0.1:$op=127.0.0.1:$up,sni=localhost"
pid2=$SC_PID
sc_wait_port "$op"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$op/" 2>/dev/null || true)
[ "$code" = 000 ] || t_fail "outbound agreed on a weak suite ($code)"
sc_wait_log "$T/sco.log" "reason=protocol" || t_fail "outbound failure not logged"
sc_stop "$pid2" "$T/sco.log"
sc_stop "$pid" "$T/sc.log"
echo ok
