#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# duet-agent ca init / issue / inspect against the real openssl CLI:
# profiles as `openssl x509 -text` shows them, `openssl verify`, `req -verify`,
# `pkey -passin`, a CA made by the manual OpenSSL workflow (COMPAT.md 1),
# an mTLS handshake with data read back through `openssl s_server -www`, and
# every refusal case (exit status, one line naming the culprit, no output left).
set -uo pipefail
: "${DUET_AGENT:?}"
command -v openssl >/dev/null || exit 77

T=$(mktemp -d "${TMPDIR:-/tmp}/duet-cli-test.XXXXXX")
CLI_PIDS=()
cli_cleanup() {
    local rc=$? p
    for p in "${CLI_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${CLI_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -z "${ports_py:-}" ] || python3 "$ports_py" --release "$T/.ports"
    rm -rf "$T"
    exit "$rc"
}
trap cli_cleanup EXIT

fails=0
cli_ok() { echo "ok   - $*"; }
cli_bad() { echo "FAIL - $*" >&2; fails=$((fails + 1)); }
cli_check() { # DESCRIPTION COMMAND...: passes when the command succeeds
    local what=$1; shift
    if "$@" >"$T/check.out" 2>&1; then cli_ok "$what"; else cli_bad "$what: $(head -c 600 "$T/check.out")"; fi
}
cli_has() { # DESCRIPTION FILE PATTERN (grep -E)
    if grep -Eq -- "$3" "$2"; then cli_ok "$1"; else cli_bad "$1: /$3/ not in $2"; fi
}
cli_mode() { # FILE MODE
    local m; m=$(stat -c %a "$1")
    [ "$m" = "$2" ] && cli_ok "mode $2 $(basename "$1")" || cli_bad "mode of $1 is $m, want $2"
}
agent() { "$DUET_AGENT" "$@"; }

# cli_refuse STATUS WORD DIR -- COMMAND...: the command must exit STATUS with
# exactly one stderr line containing WORD, print no key material, and leave
# DIR (if it exists) exactly as it was (no new, temporary or changed files).
cli_refuse() {
    local want=$1 word=$2 dir=$3; shift 4
    local before after rc lines
    before=$( [ -d "$dir" ] && cd "$dir" && find . -type f -exec md5sum {} + | sort)
    "$@" >"$T/r.out" 2>"$T/r.err"; rc=$?
    after=$( [ -d "$dir" ] && cd "$dir" && find . -type f -exec md5sum {} + | sort)
    lines=$(wc -l <"$T/r.err")
    if [ "$rc" -ne "$want" ]; then
        cli_bad "refuse [$word]: exit $rc, want $want: $(cat "$T/r.err")"
    elif [ "$lines" -ne 1 ]; then
        cli_bad "refuse [$word]: $lines stderr lines: $(cat "$T/r.err")"
    elif ! grep -qiF -- "$word" "$T/r.err"; then
        cli_bad "refuse [$word]: message lacks it: $(cat "$T/r.err")"
    elif [ "$before" != "$after" ]; then
        cli_bad "refuse [$word]: $dir changed: $(ls -A "$dir")"
    elif grep -q "PRIVATE KEY" "$T/r.out" "$T/r.err"; then
        cli_bad "refuse [$word]: key material printed"
    else
        cli_ok "refuse [$word] exit $want: $(cat "$T/r.err")"
    fi
}

# ---------------------------------------------------------------- ca init
# The one RSA-4096 of the test: the default key type.
cli_check "ca init (rsa4096 default)" agent ca init --env dev --out "$T/ca" \
    --subject "/C=LK/ST=WP/L=Colombo/O=Example, Inc./OU=Dev/CN=Dev Root CA/emailAddress=ca@example.com"
CA=$T/ca/rootCaDev
cp "$T/check.out" "$T/cainit.out"
for f in key crt pass; do [ -f "$CA.$f" ] || cli_bad "missing $CA.$f"; done
cli_mode "$CA.key" 600
cli_mode "$CA.pass" 600
PASS=$(head -1 "$CA.pass")
if [ ${#PASS} -eq 35 ] && [[ $PASS =~ [A-Z] ]] && [[ $PASS =~ [a-z] ]] && [[ $PASS =~ [0-9] ]] &&
   [[ $PASS =~ [^A-Za-z0-9] ]] && ! [[ $PASS =~ [\"\'\\\`\<\>[:space:]] ]]; then
    cli_ok "passphrase: 35 chars, all classes, no forbidden character"
else
    cli_bad "passphrase shape: ${#PASS} chars"
fi
grep -qF -- "$PASS" "$T/cainit.out" && cli_bad "ca init printed the passphrase" || cli_ok "passphrase not printed"
cli_has "ca init names the .pass file" "$T/cainit.out" "rootCaDev.pass"
cli_check "openssl pkey -passin opens the CA key" openssl pkey -in "$CA.key" -passin "file:$CA.pass" -noout
cli_has "CA key is encrypted PKCS#8" "$CA.key" "BEGIN ENCRYPTED PRIVATE KEY"
openssl x509 -in "$CA.crt" -noout -text >"$T/ca.txt"
grep -A1 "Basic Constraints: critical" "$T/ca.txt" | grep -q "CA:TRUE" && cli_ok "CA: basicConstraints CA:TRUE critical" || cli_bad "CA basicConstraints"
grep -A1 "Key Usage: critical" "$T/ca.txt" | grep -q "Certificate Sign, CRL Sign" && cli_ok "CA: keyCertSign+cRLSign critical" || cli_bad "CA keyUsage"
cli_has "CA: SKI" "$T/ca.txt" "Subject Key Identifier"
cli_has "CA: SHA-256" "$T/ca.txt" "sha256WithRSAEncryption"
cli_has "CA: RSA 4096" "$T/ca.txt" "Public-Key: \(4096 bit\)"
cli_has "CA: subject" "$T/ca.txt" "Subject: C = LK, ST = WP, L = Colombo, O = \"Example, Inc.\", OU = Dev, CN = Dev Root CA, emailAddress = ca@example.com"
nb=$(date -d "$(openssl x509 -in "$CA.crt" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$CA.crt" -noout -enddate | cut -d= -f2)" +%s)
[ $((na - nb)) -eq $((3650 * 86400 + 300)) ] && cli_ok "CA: 3650 days (+5 min backdating)" || cli_bad "CA validity $((na - nb))"

# Another environment's root (no passphrase, EC for speed).
cli_check "ca init stage --no-passphrase" agent ca init --env stage --out "$T/stage" --key-type ec-p256 --no-passphrase
[ ! -e "$T/stage/rootCaStage.pass" ] && cli_ok "no .pass with --no-passphrase" || cli_bad ".pass written"
cli_has "stage key unencrypted" "$T/stage/rootCaStage.key" "BEGIN PRIVATE KEY"
printf 'given-pass\n' >"$T/given.pass"
cli_check "ca init with --passphrase-file" agent ca init --env qa --out "$T/qa" --key-type ec-p384 --passphrase-file "$T/given.pass" --days 30
[ ! -e "$T/qa/rootCaQa.pass" ] && cli_ok "no .pass with --passphrase-file" || cli_bad ".pass written"
cli_check "qa key opens with the given passphrase" openssl pkey -in "$T/qa/rootCaQa.key" -passin pass:given-pass -noout

# ---------------------------------------------------------------- issue (client)
ISSUE=(issue --ca-cert "$CA.crt" --ca-key "$CA.key" --ca-passphrase-file "$CA.pass")
cli_check "issue productA (rsa2048 default)" agent "${ISSUE[@]}" --env dev --product productA \
    --out "$T/out/new" --subject "/C=LK/ST=WP/O=Example, Inc."
A=$T/out/new/dev.productA.dev
for f in key csr crt; do [ -f "$A.$f" ] || cli_bad "missing $A.$f"; done
cli_mode "$A.key" 600
openssl x509 -in "$A.crt" -noout -text >"$T/a.txt"
cli_has "client: v3" "$T/a.txt" "Version: 3"
cli_has "client: SHA-256" "$T/a.txt" "sha256WithRSAEncryption"
grep -A1 "Basic Constraints: critical" "$T/a.txt" | grep -q "CA:FALSE" && cli_ok "client: CA:FALSE critical" || cli_bad "client basicConstraints"
grep -A1 "Key Usage: critical" "$T/a.txt" | grep -q "Digital Signature, Key Encipherment" && cli_ok "client: keyUsage critical" || cli_bad "client keyUsage"
cli_has "client: clientAuth" "$T/a.txt" "TLS Web Client Authentication"
grep -q "TLS Web Server Authentication" "$T/a.txt" && cli_bad "client has serverAuth" || cli_ok "client: no serverAuth"
cli_has "client: SKI" "$T/a.txt" "Subject Key Identifier"
cli_has "client: AKI" "$T/a.txt" "Authority Key Identifier"
cli_has "client: SPIFFE URI" "$T/a.txt" "URI:spiffe://duet.local/dev/productA"
cli_has "client: subject" "$T/a.txt" "Subject: C = LK, ST = WP, O = \"Example, Inc.\", CN = dev.productA.dev"
cli_has "client: RSA 2048" "$T/a.txt" "Public-Key: \(2048 bit\)"
serial=$(openssl x509 -in "$A.crt" -noout -serial | cut -d= -f2)
[ ${#serial} -ge 30 ] && [ ${#serial} -le 32 ] && cli_ok "client: 128-bit serial ($serial)" || cli_bad "serial $serial"
nb=$(date -d "$(openssl x509 -in "$A.crt" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$A.crt" -noout -enddate | cut -d= -f2)" +%s)
[ $((na - nb)) -eq $((365 * 86400 + 300)) ] && cli_ok "client: 365 days (+5 min backdating)" || cli_bad "client validity $((na - nb))"
openssl verify -CAfile "$CA.crt" -purpose sslclient "$A.crt" >"$T/v.out" 2>&1
cli_has "openssl verify -purpose sslclient: OK" "$T/v.out" "dev.productA.dev.crt: OK"
openssl verify -CAfile "$CA.crt" -purpose sslserver "$A.crt" >/dev/null 2>&1 && cli_bad "client cert passes sslserver" || cli_ok "client cert refused for sslserver"
cli_check "openssl req -verify accepts the CSR" openssl req -in "$A.csr" -verify -noout
cli_check "inspect --ca: exit 0" agent inspect "$A.crt" --ca "$CA.crt"
cli_has "inspect shows the chain verdict" "$T/check.out" "chain against .*: ok"
cli_has "inspect shows days left" "$T/check.out" "(36[45] days left)"
cli_check "inspect key: exit 0" agent inspect "$A.key"
grep -q "PRIVATE KEY" "$T/check.out" && cli_bad "inspect printed key material" || cli_ok "inspect key prints no key material"
cli_check "inspect csr: exit 0" agent inspect "$A.csr"
cli_check "inspect encrypted CA key with --passphrase-file" agent inspect "$CA.key" --passphrase-file "$CA.pass"
agent inspect "$A.crt" --ca "$CA.crt" --json >"$T/j.json"
cli_check "inspect --json parses, ok true" python3 -c "
import json,sys; d=json.load(open('$T/j.json'))
assert d['ok'] is True and d['chain_ok'] is True, d
assert d['certificates'][0]['cn']=='dev.productA.dev'
assert d['certificates'][0]['sans']['uri']==['spiffe://duet.local/dev/productA']"
cli_check "issue with a CN template and trust domain" agent "${ISSUE[@]}" --env dev --product productB \
    --out "$T/out/tpl" --cn-template "orgsync.{env}.{product}.{env}" --trust-domain example.org --key-type ec-p256
[ -f "$T/out/tpl/orgsync.dev.productB.dev.crt" ] && cli_ok "file base follows the CN template" || cli_bad "template file name"
openssl x509 -in "$T/out/tpl/orgsync.dev.productB.dev.crt" -noout -text >"$T/b.txt"
cli_has "template: URI in trust domain" "$T/b.txt" "URI:spiffe://example.org/dev/productB"
grep -A1 "Key Usage: critical" "$T/b.txt" | grep -q "Digital Signature$" && cli_ok "EC leaf: no keyEncipherment" || cli_bad "EC keyUsage"

# ---------------------------------------------------------------- issue (server) + mTLS
cli_check "issue --server" agent "${ISSUE[@]}" --env dev --product resource --out "$T/srv" \
    --server --dns localhost --ip 127.0.0.1 --key-type ec-p256
S=$T/srv/dev.resource.dev
openssl x509 -in "$S.crt" -noout -text >"$T/s.txt"
cli_has "server: serverAuth" "$T/s.txt" "TLS Web Server Authentication"
cli_has "server: DNS SAN" "$T/s.txt" "DNS:localhost"
cli_has "server: IP SAN" "$T/s.txt" "IP Address:127.0.0.1"
openssl verify -CAfile "$CA.crt" -purpose sslclient "$S.crt" >/dev/null 2>&1 && cli_bad "server cert passes sslclient" || cli_ok "server cert refused for sslclient"
cli_check "issue productC in stage" agent issue --ca-cert "$T/stage/rootCaStage.crt" --ca-key "$T/stage/rootCaStage.key" \
    --env stage --product productC --out "$T/c" --key-type ec-p256
C=$T/c/stage.productC.stage

ports_py=$(cd "$(dirname "$0")/../../scripts/lib" && pwd)/ports.py
port=$(python3 "$ports_py" --owner "$T/.ports")
openssl s_server -accept "127.0.0.1:$port" -www -Verify 1 -verify_return_error -CAfile "$CA.crt" \
    -cert "$S.crt" -key "$S.key" >"$T/s_server.log" 2>&1 &
CLI_PIDS+=($!)
for _ in $(seq 1 100); do grep -q ACCEPT "$T/s_server.log" && break; sleep 0.1; done
cli_get() { # CERT KEY: GET / over mTLS, print what came back
    local args=(-connect "127.0.0.1:$port" -CAfile "$CA.crt" -verify_return_error -quiet)
    [ -n "$1" ] && args+=(-cert "$1" -key "$2")
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client "${args[@]}" 2>&1
}
cli_get "$A.crt" "$A.key" >"$T/m1.out"
cli_has "mTLS with productA: HTTP 200 read back" "$T/m1.out" "HTTP/1.0 200 ok"
cli_get "$C.crt" "$C.key" >"$T/m2.out"
grep -q "HTTP/1.0 200" "$T/m2.out" && cli_bad "stage cert accepted by dev server" || cli_ok "mTLS refuses another environment's cert"
cli_get "" "" >"$T/m3.out"
grep -q "HTTP/1.0 200" "$T/m3.out" && cli_bad "no cert accepted" || cli_ok "mTLS refuses a client without a certificate"

# ---------------------------------------------------------------- the manual OpenSSL workflow
M=$T/manual
mkdir -p "$M"
(
    cd "$M" &&
    openssl genrsa -des3 -passout pass:devpass -out rootCaDev.key 4096 &&
    openssl req -x509 -new -nodes -key rootCaDev.key -passin pass:devpass -sha256 -days 3650 \
        -subj "/C=LK/ST=WP/L=Colombo/O=Example, Inc./OU=Dev/CN=Dev Root CA/emailAddress=ca@example.com" -out rootCaDev.crt &&
    openssl genrsa -out dev.productA.dev.key 2048 &&
    openssl req -new -sha256 -key dev.productA.dev.key -subj "/C=LK/ST=WP/O=Example, Inc./CN=dev.productA.dev" -out dev.productA.dev.csr &&
    openssl x509 -req -in dev.productA.dev.csr -CA rootCaDev.crt -CAkey rootCaDev.key -passin pass:devpass \
        -CAcreateserial -out dev.productA.dev.crt -days 365 -sha256
) >"$T/manual.log" 2>&1 && cli_ok "manual OpenSSL workflow ran" || cli_bad "manual workflow: $(cat "$T/manual.log")"
printf 'devpass\n' >"$M/pass"
cli_check "inspect --ca verifies the manual v1 client cert" agent inspect "$M/dev.productA.dev.crt" --ca "$M/rootCaDev.crt"
cli_check "issue signs with the manual -des3 CA" agent issue --ca-cert "$M/rootCaDev.crt" --ca-key "$M/rootCaDev.key" \
    --ca-passphrase-file "$M/pass" --env dev --product productB --out "$M/out" --key-type ec-p256
openssl verify -CAfile "$M/rootCaDev.crt" -purpose sslclient "$M/out/dev.productB.dev.crt" >"$T/v2.out" 2>&1
cli_has "manual CA + duet leaf: openssl verify OK" "$T/v2.out" ": OK"

# ---------------------------------------------------------------- published folder
V=$T/vol
mkdir -p "$V/..2026_11_29_10_00_00.1"
cp "$A.crt" "$V/..2026_11_29_10_00_00.1/tls.crt"
cp "$A.key" "$V/..2026_11_29_10_00_00.1/tls.key"
cp "$CA.crt" "$V/..2026_11_29_10_00_00.1/ca.crt"
ln -s ..2026_11_29_10_00_00.1 "$V/..data"
for f in tls.crt tls.key ca.crt; do ln -s "..data/$f" "$V/$f"; done
cli_check "inspect a published folder: exit 0" agent inspect "$V"
cli_has "folder: key matches" "$T/check.out" "key matches certificate: yes"
cli_has "folder: chain against ca.crt" "$T/check.out" "chain against ca.crt: ok"

# ---------------------------------------------------------------- inspect: bad verdicts
cat "$A.crt" "$S.key" >"$T/mismatch.pem"
agent inspect "$T/mismatch.pem" >"$T/i1.out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "key matches certificate: no" "$T/i1.out" && cli_ok "inspect: key mismatch exits 1" || cli_bad "inspect mismatch rc=$rc"
agent inspect "$C.crt" --ca "$CA.crt" >"$T/i2.out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "FAILED" "$T/i2.out" && cli_ok "inspect: foreign chain exits 1" || cli_bad "inspect chain rc=$rc"
if python3 -c 'import cryptography' 2>/dev/null; then
    python3 - "$T/stage/rootCaStage.crt" "$T/stage/rootCaStage.key" "$T/expired.crt" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
ca = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read())
cakey = serialization.load_pem_private_key(open(sys.argv[2], 'rb').read(), None)
k = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
c = (x509.CertificateBuilder()
     .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'expired')]))
     .issuer_name(ca.subject).public_key(k.public_key()).serial_number(x509.random_serial_number())
     .not_valid_before(now - datetime.timedelta(days=10)).not_valid_after(now - datetime.timedelta(days=1))
     .sign(cakey, hashes.SHA256()))
open(sys.argv[3], 'wb').write(c.public_bytes(serialization.Encoding.PEM))
PY
    agent inspect "$T/expired.crt" --ca "$T/stage/rootCaStage.crt" >"$T/i3.out" 2>&1; rc=$?
    [ $rc -eq 1 ] && grep -q "within validity: no" "$T/i3.out" && cli_ok "inspect: expired exits 1" || cli_bad "inspect expired rc=$rc: $(cat "$T/i3.out")"
fi

# ---------------------------------------------------------------- refusals
O=$T/refuse
mkdir -p "$O"
DEVCA=(--ca-cert "$CA.crt" --ca-key "$CA.key")
NAMES=(--env dev --product productA --key-type ec-p256 --out "$O")
printf 'wrong\n' >"$T/wrong.pass"
printf 'garbage\n' >"$T/garbage.pem"
head -c 700 "$CA.crt" >"$T/truncated.pem"
cli_refuse 1 "$CA.key" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$T/wrong.pass" "${NAMES[@]}"
grep -qi "wrong passphrase" "$T/r.err" && cli_ok "wrong passphrase says so" || cli_bad "wrong passphrase message"
cli_refuse 1 "ca-passphrase-file" "$O" -- agent issue "${DEVCA[@]}" "${NAMES[@]}"
cli_refuse 1 "nothere.crt" "$O" -- agent issue --ca-cert "$T/nothere.crt" --ca-key "$CA.key" --ca-passphrase-file "$CA.pass" "${NAMES[@]}"
cli_refuse 1 "nothere.pass" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$T/nothere.pass" "${NAMES[@]}"
cli_refuse 1 "garbage.pem" "$O" -- agent issue --ca-cert "$T/garbage.pem" --ca-key "$CA.key" --ca-passphrase-file "$CA.pass" "${NAMES[@]}"
cli_refuse 1 "truncated.pem" "$O" -- agent issue --ca-cert "$T/truncated.pem" --ca-key "$CA.key" --ca-passphrase-file "$CA.pass" "${NAMES[@]}"
cli_refuse 1 "garbage.pem" "$O" -- agent issue --ca-cert "$CA.crt" --ca-key "$T/garbage.pem" "${NAMES[@]}"
cli_refuse 1 "does not match" "$O" -- agent issue --ca-cert "$CA.crt" --ca-key "$T/stage/rootCaStage.key" "${NAMES[@]}"
cli_refuse 1 "not a CA" "$O" -- agent issue --ca-cert "$S.crt" --ca-key "$S.key" "${NAMES[@]}"
cli_refuse 1 "expires" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$CA.pass" "${NAMES[@]}" --days 4000
cli_refuse 2 "--env" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$CA.pass" --env dev_1 --product productA --out "$O"
cli_refuse 2 "--product" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$CA.pass" --env dev --product 'prod/A' --out "$O"
cli_refuse 2 "--env" "$T/none" -- agent ca init --env 'd v' --out "$T/never"
[ ! -e "$T/never" ] && cli_ok "bad env: --out not even created" || cli_bad "$T/never created"
cli_refuse 2 "rsa1024" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$CA.pass" --env dev --product productA --out "$O" --key-type rsa1024
cli_refuse 2 "rsa1024" "$T/none" -- agent ca init --env prod --out "$T/never" --key-type rsa1024
cli_refuse 2 "--days" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$CA.pass" "${NAMES[@]}" --days 0
cli_refuse 2 "XX" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$CA.pass" "${NAMES[@]}" --subject "/XX=1"
cli_refuse 2 "--frobnicate" "$O" -- agent issue --frobnicate
cli_refuse 2 "999.1.1.1" "$O" -- agent issue "${DEVCA[@]}" --ca-passphrase-file "$CA.pass" "${NAMES[@]}" --server --ip 999.1.1.1
# Existing outputs: refused, untouched; --force replaces them.
cli_refuse 2 "already exists" "$T/out/new" -- agent "${ISSUE[@]}" --env dev --product productA --out "$T/out/new" --key-type ec-p256
cli_refuse 2 "already exists" "$T/ca" -- agent ca init --env dev --out "$T/ca" --key-type ec-p256
old=$(md5sum <"$A.crt")
cli_check "issue --force replaces" agent "${ISSUE[@]}" --env dev --product productA --out "$T/out/new" --key-type ec-p256 --force
[ "$(md5sum <"$A.crt")" != "$old" ] && cli_ok "--force wrote a new certificate" || cli_bad "--force did not replace"
[ -z "$(find "$T/out/new" -name '.*tmp*')" ] && cli_ok "no temporaries left" || cli_bad "temporaries left"
# A passphrase file from an earlier CA must not survive beside a new key it does not open.
cp -r "$T/ca" "$T/ca-force"
cli_refuse 2 "already exists" "$T/ca-force" -- agent ca init --env dev --out "$T/ca-force" --key-type ec-p256 --no-passphrase
rm "$T/ca-force/rootCaDev.key" "$T/ca-force/rootCaDev.crt"
cli_refuse 2 "rootCaDev.pass" "$T/ca-force" -- agent ca init --env dev --out "$T/ca-force" --key-type ec-p256 --no-passphrase
cli_check "ca init --force --no-passphrase" agent ca init --env dev --out "$T/ca-force" --key-type ec-p256 --no-passphrase --force
[ ! -e "$T/ca-force/rootCaDev.pass" ] && cli_ok "--force --no-passphrase removed the stale .pass" ||
    cli_bad "stale rootCaDev.pass left beside an unencrypted key"
cli_refuse 1 "passphrase" "$T/none" -- agent inspect "$CA.key"
cli_refuse 1 "garbage.pem" "$T/none" -- agent inspect "$T/garbage.pem"
cli_refuse 2 "PATH" "$T/none" -- agent inspect
cli_refuse 2 "loud" "$T/none" -- agent inspect "$A.crt" --log-level loud
cli_refuse 2 "needs a subcommand" "$T/none" -- agent ca
cli_check "--log-level debug accepted" agent inspect "$A.crt" --log-level debug

echo "---- $fails failure(s)"
[ "$fails" -eq 0 ]
