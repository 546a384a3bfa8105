#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_upstream_checks: what the outbound side demands of an
# upstream certificate (openssl s_server as the upstream). The name in sni=
# matches a DNS SAN only, never the subject CN; the certificate must carry
# the serverAuth extended key usage; --crl refuses a revoked upstream.
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
sc_leaf "$T" root good localhost "DNS:localhost"
sc_leaf "$T" root revoked localhost "DNS:localhost"
sc_revoke "$T" root revoked
# v1, CN=localhost, no SAN, no EKU.
openssl ecparam -name prime256v1 -genkey -noout -out "$T/v1.key" 2>/dev/null
openssl req -new -key "$T/v1.key" -subj "/CN=localhost" -out "$T/v1.csr" 2>/dev/null
openssl x509 -req -in "$T/v1.csr" -CA "$T/root.crt" -CAkey "$T/root.key" -CAcreateserial \
    -days 30 -out "$T/v1.crt" 2>/dev/null
# v3 with the right SAN but no extendedKeyUsage.
printf 'subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n' >"$T/noeku.ext"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/noeku.key" 2>/dev/null
openssl req -new -key "$T/noeku.key" -subj "/CN=localhost" -out "$T/noeku.csr" 2>/dev/null
openssl x509 -req -in "$T/noeku.csr" -CA "$T/root.crt" -CAkey "$T/root.key" -CAcreateserial \
    -days 30 -extfile "$T/noeku.ext" -out "$T/noeku.crt" 2>/dev/null
mkdir "$T/certs"
sc_publish "$T/certs" "$T/productA.key" "$T/productA.crt" "$T/root.crt"

# s_server NAME: an HTTPS upstream demanding a client certificate; its port in $UP.
s_server() {
    UP=$(t_free_port)
    openssl s_server -quiet -accept "127.0.0.1:$UP" -cert "$T/$1.crt" -key "$T/$1.key" \
        -CAfile "$T/root.crt" -Verify 1 -verify_return_error -www >"$T/up-$1.log" 2>&1 &
    SC_PIDS+=("$!")
    sc_wait_port "$UP"
}

args=()
declare -A lport
for n in good v1 noeku revoked; do
    s_server "$n"
    lport[$n]=$(t_free_port)
    args+=(--outbound "127.0.0.1:${lport[$n]}=127.0.0.1:$UP,sni=localhost")
done
sc_start sc --certs "$T/certs" --crl "$T/root.crl" "${args[@]}"
pid=$SC_PID
sc_wait_port "${lport[noeku]}"

code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:${lport[good]}/" || true)
[ "$code" = 200 ] || t_fail "SAN + serverAuth upstream refused ($code)"
for n in v1 noeku revoked; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:${lport[$n]}/" 2>/dev/null || true)
    [ "$code" = 000 ] || t_fail "$n upstream accepted ($code)"
done
sc_wait_log "$T/sc.log" "listener=127.0.0.1:${lport[v1]} .*reason=untrusted" ||
    t_fail "v1 CN-only upstream not refused as untrusted"
sc_wait_log "$T/sc.log" "listener=127.0.0.1:${lport[noeku]} .*reason=untrusted.*purpose" ||
    t_fail "EKU-less upstream not refused for its purpose"
sc_wait_log "$T/sc.log" "listener=127.0.0.1:${lport[revoked]} .*reason=revoked" ||
    t_fail "revoked upstream not refused as revoked"
sc_stop "$pid" "$T/sc.log"
echo "ok"
