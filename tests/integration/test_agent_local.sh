#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# duet-agent run with the local issuer, on real files:
# - both identities published within a second of start (rsa2048 default,
#   ec-p256 override), accepted by `openssl verify -purpose sslclient`,
#   tls.key mode 0640 and every file in key_group;
# - /healthz, /readyz, /metrics with the certificate's notAfter;
# - repair: deleted tls.crt, corrupted tls.crt, another identity's key,
#   a new CA (certificate and key) each give a correct new set in seconds;
# - SIGHUP adds and removes identities, refuses an invalid configuration;
# - a chmod 0644 on tls.key is repaired and counted (unsafe_sets_total);
# - SIGHUP and start remove (wipe, unlink) folders of unconfigured identities;
# - SIGTERM exits 0 at once; a restart keeps the valid sets (no reissue);
# - a restart with another key type re-issues and logs which property;
# - a bad configuration exits 2 naming the field;
# - no binding from the executable to libcrypto.so.3 (COMPAT.md 4).
source "$(dirname "$0")/agent_lib.sh"
agent_setup

agent_make_ca "$T/ca"
out=$T/out
port=$(t_free_port)
# A group this user belongs to, preferably not the primary one, so that the
# chown is visible.
group=$(id -g)
for g in $(id -G); do [ "$g" != "$(id -g)" ] && group=$g && break; done

write_config() { # products...
    local ids="" p
    for p in "$@"; do
        if [ "$p" = productB ]; then
            ids+="{\"product\": \"$p\", \"key_type\": \"ec-p256\"},"
        else
            ids+="{\"product\": \"$p\"},"
        fi
    done
    cat >"$T/agent.json.tmp" <<JSON
{
  "env": "dev",
  "trust_domain": "example.org",
  "output_dir": "$out",
  "subject": {"C": "LK", "ST": "WP", "O": "${ORG:-Example, Inc.}"},
  "cn_template": "{env}.{product}.{env}",
  "key_type": "rsa2048",
  "validity": "365d",
  "issuer": {"type": "local", "ca_cert": "$T/ca/ca.crt", "ca_key": "$T/ca/ca.key",
             "ca_key_passphrase_file": "$T/ca/ca.pass"},
  "identities": [${ids%,}],
  "key_group": $group,
  "status_listen": "127.0.0.1:$port"
}
JSON
    mv "$T/agent.json.tmp" "$T/agent.json"
}

A=$out/dev/productA
B=$out/dev/productB
C=$out/dev/productC

# ---- configuration errors: exit 2, one line naming the field
# refused_at_start CONFIG FIELD: exit 2 and one line naming FIELD.
refused_at_start() {
    local rc=0
    "$DUET_AGENT" run --config "$1" 2>"$1.err" || rc=$?
    [ "$rc" -eq 2 ] || t_fail "$1: exit $rc, want 2"
    grep -q "$2" "$1.err" || t_fail "$1: field $2 not named: $(cat "$1.err")"
    echo "refused at start: $(head -1 "$1.err")"
}
echo '{"env": "dev"}' >"$T/bad.json"
refused_at_start "$T/bad.json" trust_domain

# ---- issuer files are part of the configuration: checked at start
write_config productA productB
sed "s|$T/ca/ca.pass|$T/ca/wrong.pass|" "$T/agent.json" >"$T/badpass.json"
echo "not the passphrase" >"$T/ca/wrong.pass"
refused_at_start "$T/badpass.json" issuer.ca_key_passphrase_file

# ---- first publish
write_config productA productB
t0=$(date +%s%N)
agent_start agent "$T/agent.json"
pid=$AGENT_PID
agent_wait 10 agent_set_ok "$A" || t_fail "productA not published"
agent_wait 10 agent_set_ok "$B" || t_fail "productB not published"
t1=$(date +%s%N)
first_ms=$(((t1 - t0) / 1000000))
echo "time to first publish of both identities: ${first_ms} ms"
limit_ms=1000
case "$DUET_BUILD" in *asan*) limit_ms=4000 ;; esac
# RSA key generation is CPU-bound: on a machine loaded far beyond its cores
# (parallel builds of the whole team) the limit says nothing about the agent.
load=$(cut -d' ' -f1 /proc/loadavg)
if python3 -c "import os,sys; sys.exit(0 if $load > 2 * os.cpu_count() else 1)"; then
    echo "note: load average $load on $(nproc) cores: limit relaxed to 4x"
    limit_ms=$((limit_ms * 4))
fi
[ "$first_ms" -le "$limit_ms" ] || t_fail "first publish took ${first_ms} ms (> ${limit_ms})"

for d in "$A" "$B"; do
    openssl verify -CAfile "$d/ca.crt" -purpose sslclient "$d/tls.crt" >/dev/null ||
        t_fail "openssl verify refused $d/tls.crt"
    [ "$(stat -L -c %a "$d/tls.key")" = 640 ] || t_fail "$d/tls.key mode $(stat -L -c %a "$d/tls.key")"
    for f in tls.key tls.crt ca.crt; do
        [ "$(stat -L -c %g "$d/$f")" = "$group" ] || t_fail "$d/$f group $(stat -L -c %g "$d/$f") != $group"
    done
done
openssl x509 -in "$A/tls.crt" -noout -text | grep -q "Public-Key: (2048 bit)" || t_fail "productA is not RSA 2048"
openssl x509 -in "$B/tls.crt" -noout -text | grep -q "ASN1 OID: prime256v1" || t_fail "productB is not P-256"
openssl x509 -in "$A/tls.crt" -noout -subject | grep -q "CN = dev.productA.dev" || t_fail "productA CN"
openssl x509 -in "$A/tls.crt" -noout -ext subjectAltName | grep -q "URI:spiffe://example.org/dev/productA" ||
    t_fail "productA SAN"
agent_wait 5 grep -q "identity=dev/productA .*serial=.*not_after=.*sha256=" "$T/agent.log" || t_fail "issuance not logged"
if grep -qE "BEGIN|PRIVATE" "$T/agent.log"; then t_fail "key material in the log"; fi

# ---- status endpoints
curl -fsS "http://127.0.0.1:$port/healthz" | grep -q ok || t_fail "/healthz"
curl -fsS "http://127.0.0.1:$port/readyz" | grep -q ready || t_fail "/readyz"
na=$(date -d "$(openssl x509 -in "$A/tls.crt" -noout -enddate | cut -d= -f2)" +%s)
got=$(agent_metric "$port" duet_agent_cert_not_after_seconds 'identity="dev/productA"')
[ "$got" = "$na" ] || t_fail "metrics notAfter $got != $na"
[ "$(agent_metric "$port" duet_agent_renewals_total 'identity="dev/productB"')" = 1 ] || t_fail "renewals_total"
[ "$(agent_metric "$port" duet_agent_failures_total 'identity="dev/productB"')" = 0 ] || t_fail "failures_total"
rin=$(agent_metric "$port" duet_agent_renewal_in_seconds 'identity="dev/productA"')
python3 - "$rin" <<'PY' || t_fail "renewal_in_seconds $rin outside 70-90% of 365 days"
import sys
v = float(sys.argv[1]); d = 365 * 86400
sys.exit(0 if 0.69 * d <= v <= 0.9 * d else 1)
PY
st=$(agent_metric "$port" duet_agent_start_time_seconds "")
[ -n "$st" ] && [ "$st" -le "$(date +%s)" ] || t_fail "start time"
echo "status endpoints ok"

# ---- repair: deleted certificate
s=$(agent_serial "$A/tls.crt")
rm -f "$A/tls.crt"
agent_wait 10 agent_set_ok_new "$A" "$s" || t_fail "deleted tls.crt not repaired"
echo "repaired: deleted tls.crt"

# ---- repair: corrupted certificate (in place, inside the version folder)
s=$(agent_serial "$A/tls.crt")
printf 'garbage\n' >"$A/..data/tls.crt"
agent_wait 10 agent_set_ok_new "$A" "$s" || t_fail "corrupted tls.crt not repaired"
echo "repaired: corrupted tls.crt"

# ---- repair: another identity's key
s=$(agent_serial "$A/tls.crt")
cat "$B/tls.key" >"$A/..data/tls.key"
agent_wait 10 agent_set_ok_new "$A" "$s" || t_fail "foreign key not repaired"
echo "repaired: swapped key"

# ---- repair: a key file whose mode drifted (chmod 0644) is re-issued and counted
s=$(agent_serial "$A/tls.crt")
chmod 0644 "$A/..data/tls.key"
agent_wait 10 agent_set_ok_new "$A" "$s" || t_fail "chmod 0644 tls.key not repaired"
[ "$(stat -L -c %a "$A/tls.key")" = 640 ] || t_fail "tls.key mode $(stat -L -c %a "$A/tls.key") after repair"
[ "$(agent_metric "$port" duet_agent_unsafe_sets_total 'identity="dev/productA"')" = 1 ] ||
    t_fail "mode drift not counted"
grep -q 'identity=dev/productA err=DUET_E_VOL_UNSAFE .*tls.key: mode 0644, want 0640' "$T/agent.log" ||
    t_fail "mode drift not logged"
echo "repaired: key mode drift"

# ---- repair: a new CA (certificate and key replaced, as a Secret update does)
sa=$(agent_serial "$A/tls.crt")
sb=$(agent_serial "$B/tls.crt")
agent_make_ca "$T/ca2" "Test Root CA 2"
cp "$T/ca2/ca.pass" "$T/ca/ca.pass.new" && cp "$T/ca2/ca.key" "$T/ca/ca.key.new" &&
    cp "$T/ca2/ca.crt" "$T/ca/ca.crt.new"
mv "$T/ca/ca.pass.new" "$T/ca/ca.pass"
mv "$T/ca/ca.key.new" "$T/ca/ca.key"
mv "$T/ca/ca.crt.new" "$T/ca/ca.crt"
new_ca_ok() { agent_set_ok_new "$1" "$2" && cmp -s "$1/ca.crt" "$T/ca2/ca.crt"; }
agent_wait 10 new_ca_ok "$A" "$sa" || t_fail "productA not reissued by the new CA"
agent_wait 10 new_ca_ok "$B" "$sb" || t_fail "productB not reissued by the new CA"
openssl verify -CAfile "$T/ca2/ca.crt" -purpose sslclient "$A/tls.crt" >/dev/null || t_fail "new CA verify"
echo "repaired: CA rotation"

# ---- SIGHUP: add productC, drop productB
write_config productA productC
kill -HUP "$pid"
agent_wait 10 agent_set_ok "$C" || t_fail "productC not published after SIGHUP"
metrics=$(curl -fsS "http://127.0.0.1:$port/metrics")
grep -q 'identity="dev/productB"' <<<"$metrics" && t_fail "productB still renewed after SIGHUP"
# Its folder, key included, is gone (wiped, then unlinked).
agent_wait 5 bash -c "[ ! -e '$B' ]" || t_fail "productB folder left after SIGHUP"
agent_wait 5 grep -q 'identity=dev/productB .*msg="no longer configured: key wiped' "$T/agent.log" ||
    t_fail "productB removal not logged"
grep -q '^duet_agent_reloads_total 1' <<<"$metrics" || t_fail "reloads_total"
# An invalid configuration is refused; the old one stays.
echo '{"env": ' >"$T/agent.json"
kill -HUP "$pid"
agent_wait 5 bash -c "curl -fsS http://127.0.0.1:$port/metrics | grep -q '^duet_agent_reload_failures_total 1'" ||
    t_fail "invalid reload not counted"
kill -0 "$pid" || t_fail "agent died on an invalid reload"
curl -fsS "http://127.0.0.1:$port/readyz" | grep -q ready || t_fail "not ready after refused reload"
# A new subject in the configuration makes the published sets unfit: reissued.
ORG="Other Org" write_config productA productC
kill -HUP "$pid"
org_is() { openssl x509 -in "$1/tls.crt" -noout -subject | grep -q "O = $2"; }
agent_wait 10 org_is "$A" "Other Org" || t_fail "productA not reissued with the new subject"
agent_wait 10 org_is "$C" "Other Org" || t_fail "productC not reissued with the new subject"
agent_set_ok "$A" || t_fail "productA set after the subject change"
echo "SIGHUP ok"

# ---- SIGTERM, then a restart keeps valid sets
sa=$(agent_serial "$A/tls.crt")
sc=$(agent_serial "$C/tls.crt")
t0=$(date +%s%N)
agent_stop "$pid"
ms=$((($(date +%s%N) - t0) / 1000000))
echo "SIGTERM exit after ${ms} ms"
[ "$ms" -lt 3000 ] || t_fail "SIGTERM took ${ms} ms"
ORG="Other Org" write_config productA productC
# A set left by an identity no longer configured goes at start.
cp -a "$C" "$out/dev/productZ"
agent_start agent2 "$T/agent.json"
pid=$AGENT_PID
agent_wait 5 bash -c "curl -fsS http://127.0.0.1:$port/readyz | grep -q ready" || t_fail "restart not ready"
[ "$(agent_serial "$A/tls.crt")" = "$sa" ] || t_fail "restart reissued productA"
[ "$(agent_serial "$C/tls.crt")" = "$sc" ] || t_fail "restart reissued productC"
agent_wait 5 grep -q "kept the published set" "$T/agent2.log" || t_fail "restart did not say it kept the sets"
[ ! -e "$out/dev/productZ" ] || t_fail "unconfigured productZ left at start"
agent_wait 5 grep -q 'identity=dev/productZ .*no longer configured' "$T/agent2.log" || t_fail "productZ removal not logged"
# Old version folders are gone.
n=$(find "$A" -maxdepth 1 -name '..2*' | wc -l)
[ "$n" -eq 1 ] || t_fail "$n version folders in $A"
agent_stop "$pid"
echo "restart ok"

# ---- a restart under another key type re-issues at once and says why
sa=$(agent_serial "$A/tls.crt")
ORG="Other Org" write_config productA productC
sed -i 's/"key_type": "rsa2048"/"key_type": "ec-p256"/' "$T/agent.json"
agent_start agent3 "$T/agent.json"
pid=$AGENT_PID
agent_wait 10 agent_set_ok_new "$A" "$sa" || t_fail "key type change did not re-issue productA"
openssl x509 -in "$A/tls.crt" -noout -text | grep -q "NIST CURVE: P-256" || t_fail "productA not EC after the change"
grep -q 'identity=dev/productA err=DUET_E_VERIFY msg="key type is rsa2048, configured ec-p256" action=reissue' \
    "$T/agent3.log" || t_fail "key type change not logged"
agent_stop "$pid"
echo "configuration change re-issued"

# ---- the executable binds nothing to OpenSSL's libcrypto.so.3 (LD_BIND_NOW
# resolves every symbol up front, so the list is complete)
LD_BIND_NOW=1 LD_DEBUG=bindings "$DUET_AGENT" --version 2>"$T/bindings.txt" >/dev/null
own="binding file $DUET_AGENT \\[0\\] to"
grep -qE "$own [^ ]*android/libcrypto\\.so\\.0" "$T/bindings.txt" ||
    t_fail "no binding from duet-agent to BoringSSL seen: the check would be blind"
b=$(grep -cE "$own [^ ]*libcrypto\\.so\\.3" "$T/bindings.txt" || true)
[ "$b" -eq 0 ] || t_fail "$b bindings from duet-agent to libcrypto.so.3"
echo "no binding from duet-agent to libcrypto.so.3"
echo PASS
