#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end: the project's image and manifests, run by podman as a cluster
# would run them (DESIGN.md "Kubernetes"), and checked from inside the pods.
#  1. base images (cached) and `podman build` of the Dockerfile (three targets);
#  2. a CA per run, the local overlay rendered and schema-validated, then
#     converted for podman 4.3 (tests/e2e/tools/podmanize.mjs says what and why);
#  3. on a podman network made here (internal: no route out), the signing
#     service (CFSSL, the only holder of the CA key), the agent pod (folder
#     mode, CFSSL issuer over HTTPS with its HMAC key), then the resource,
#     then clients A, B and C;
#  4. checks: the signer loaded the CA key; the agent holds no private key
#     but its own and gets its certificates from the signer; it publishes
#     every identity with the agreed ownership
#     (uid 65532, tls.key 0640 group 65532); A and B get the resource's page
#     through their sidecars; C is refused; every container runs as 65532;
#     under a request loop, the agent rotates A's and the resource's
#     certificates (local overlay: 5-minute validity), the sidecars load them,
#     and no request fails;
#  5. teardown of exactly the pods, volumes and network made here.
# DUET_E2E_MUTATE=sidecar-mount|agent-output breaks the manifests copy on
# purpose (tests/e2e/test_podman_mutants.sh expects this test to fail then).
# DUET_E2E_KEEP=1 leaves everything in place for a look (then clean by hand).
# Exit 77 (skipped) only when podman cannot run here.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

run_id=$$
net=duet-e2e-$run_id
image=localhost/duet:dev
demo_image=localhost/duet-demo:dev
cfssl_image=localhost/duet-cfssl:dev
played=()   # podmanized files given to kube play, for kube down
tmp=""

teardown() {
    local v i
    if [ "${DUET_E2E_KEEP:-0}" = 1 ]; then
        e2e_log "DUET_E2E_KEEP=1: left pods, network $net and $tmp in place"
        return
    fi
    # The busybox loops ignore SIGTERM as PID 1: remove the pods at once
    # (one call: podman takes seconds per call), then let kube down catch
    # anything else a played file made.
    local pods=()
    for ((i = ${#played[@]} - 1; i >= 0; i--)); do pods+=("$(pod_of "${played[$i]}")"); done
    [ ${#pods[@]} -eq 0 ] || podman pod rm -f -t 0 "${pods[@]}" >/dev/null 2>&1
    for ((i = ${#played[@]} - 1; i >= 0; i--)); do
        podman kube down "${played[$i]}" >/dev/null 2>&1
    done
    if [ -n "$tmp" ] && [ -f "$tmp/pm/volumes.txt" ]; then
        while read -r v; do
            podman volume rm -f "$v" >/dev/null 2>&1
        done <"$tmp/pm/volumes.txt"
    fi
    podman network rm -f "$net" >/dev/null 2>&1
    [ -n "$tmp" ] && rm -rf "$tmp"
}
trap teardown EXIT

# Pod names come from the manifests, so two runs on one machine (two
# developers' scripts/test) would collide: take turns.
exec 9>/var/tmp/duet-e2e.lock
flock -w 900 9 || e2e_fail "another e2e run held /var/tmp/duet-e2e.lock for 15 minutes"

# --- 1. podman, base images, image build --------------------------------
t0=$(date +%s)
"$e2e_src/scripts/podman-setup" || {
    rc=$?
    [ "$rc" -eq 77 ] && e2e_skip "podman cannot run here"
    e2e_fail "scripts/podman-setup failed ($rc)"
}
e2e_need_render_tools fail
t1=$(date +%s)
e2e_log "base images ready in $((t1 - t0))s"

tmp=$(mktemp -d --tmpdir=/var/tmp)
chmod 0755 "$tmp"
podman build --pull=never -q -t "$image" "$e2e_src" >"$tmp/build.log" 2>&1 ||
    { tail -40 "$tmp/build.log"; e2e_fail "podman build (runtime)"; }
podman build --pull=never -q --target demo -t "$demo_image" "$e2e_src" >>"$tmp/build.log" 2>&1 ||
    { tail -40 "$tmp/build.log"; e2e_fail "podman build (demo)"; }
podman build --pull=never -q --target cfssl -t "$cfssl_image" "$e2e_src" >>"$tmp/build.log" 2>&1 ||
    { tail -40 "$tmp/build.log"; e2e_fail "podman build (cfssl)"; }
t2=$(date +%s)
e2e_log "images built in $((t2 - t1))s: $image $(podman image inspect --format '{{.Size}}' "$image") bytes," \
    "$demo_image $(podman image inspect --format '{{.Size}}' "$demo_image") bytes," \
    "$cfssl_image $(podman image inspect --format '{{.Size}}' "$cfssl_image") bytes"

# --- 2. render, validate, convert ---------------------------------------
e2e_manifests_copy "$tmp"
m=$tmp/manifests
case "${DUET_E2E_MUTATE:-}" in
"") ;;
sidecar-mount) sed -i 's|/var/lib/duet/dev/productA|/var/lib/duet/dev/product-a|' "$m/overlays/local/examples-hostpath.yaml" ;;
agent-output) sed -i 's|"output_dir": "/var/lib/duet"|"output_dir": "/var/lib/duet/out"|' \
    "$m/overlays/local/agent.json" ;;
*) e2e_fail "unknown DUET_E2E_MUTATE=$DUET_E2E_MUTATE" ;;
esac
e2e_render "$m" local "$tmp/local.yaml"
e2e_validate "$tmp/local.yaml" >"$tmp/validate.log" || { cat "$tmp/validate.log"; e2e_fail "schema validation"; }

# The node's /var/lib/duet. Owned by 65532 as the own-hostpath init
# container leaves it (podmanize drops that container: see its header).
node=$tmp/node
mkdir -m 0755 "$node"
chown 65532:65532 "$node"

# pod_of FILE: the podman pod name podmanize announced for a played file.
pod_of() { awk -v f="$1" '$1 == f {print $2}' "$tmp/pm.list"; }

# podmanize: converts the rendering again with the Service names known so
# far (aliases: --host-alias NAME=IP, as the pods come up).
aliases=()
podmanize() {
    node "$e2e_tools/podmanize.mjs" --in "$tmp/local.yaml" --out "$tmp/pm" --node-root "$node" \
        "${aliases[@]}" >"$tmp/pm.list" || e2e_fail "podmanize"
}
# pod_ip POD: the pod's address on the test's network.
pod_ip() {
    local infra
    infra=$(podman pod inspect "$1" --format '{{.InfraContainerID}}')
    podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$infra"
}
podmanize

podman network create --internal "$net" >/dev/null || e2e_fail "podman network create $net"

# play FILE: kube play on our network; remembered for teardown.
play() {
    played+=("$1")
    podman kube play --network "$net" "$1" >"$tmp/play.log" 2>&1 ||
        { cat "$tmp/play.log"; e2e_fail "kube play $(basename "$1")"; }
}

# --- 3a. signing service, then the agent ---------------------------------
play "$tmp/pm/duet-ca.yaml"
S=$(pod_of "$tmp/pm/duet-ca.yaml")
for ((i = 0; i < 30; i++)); do
    grep -q 'Now listening' <<<"$(podman logs "$S-cfssl" 2>&1)" && break
    sleep 1
done
slog=$(podman logs "$S-cfssl" 2>&1)
grep -q 'Now listening' <<<"$slog" || { tail -20 <<<"$slog"; e2e_fail "the signer (cfssl serve) did not listen in 30s"; }
# CFSSL listens even without its CA key (COMPAT.md 5): make sure it has it.
! grep -q "couldn't initialize signer" <<<"$slog" ||
    { grep "couldn't initialize signer" <<<"$slog"; e2e_fail "the signer could not load the CA key"; }
sip=$(pod_ip "$S")
[ -n "$sip" ] || e2e_fail "signer pod has no address on $net"
aliases+=(--host-alias "duet-ca.duet-system.svc=$sip")
podmanize
e2e_log "signer (CFSSL) up at $sip with the CA key"
play "$tmp/pm/duet-agent.yaml"
ids=(productA productB resource)
for ((i = 0; i < 45; i++)); do
    n=0
    for id in "${ids[@]}"; do [ -f "$node/dev/$id/tls.crt" ] && n=$((n + 1)); done
    [ "$n" -eq ${#ids[@]} ] && break
    sleep 1
done
[ "$n" -eq ${#ids[@]} ] || {
    podman logs duet-agent-agent 2>&1 | tail -20
    ls -laR "$node" | head -30
    e2e_fail "the agent did not publish dev/{${ids[*]}} under the node folder in 45s"
}
for id in "${ids[@]}"; do
    own=$(stat -L -c '%u %g %a' "$node/dev/$id/tls.key")
    [ "$own" = "65532 65532 640" ] || e2e_fail "dev/$id/tls.key is '$own', want '65532 65532 640'"
done
e2e_log "agent published ${ids[*]} (tls.key 65532:65532 0640)"
# ...from the signer, which logged each signing, and with no private key in
# what the agent was given (the CA key stays in the signer's pod).
grep -q 'issuer=cfssl' <<<"$(podman logs duet-agent-agent 2>&1)" || e2e_fail "the agent does not use the cfssl issuer"
nsig=$(podman logs "$S-cfssl" 2>&1 | grep -c 'POST /api/v1/cfssl/authsign" 200')
[ "$nsig" -ge ${#ids[@]} ] || e2e_fail "the signer logged $nsig authsign requests, want ${#ids[@]} or more"
keys=$(timeout 20 podman exec duet-agent-agent grep -rlE -- '-----BEGIN [A-Z ]*PRIVATE KEY' /etc/duet 2>&1)
[ -z "$keys" ] || e2e_fail "the agent pod holds private keys: $keys"
e2e_log "the agent got its certificates from the signer ($nsig authsign) and holds no CA key"

# --- 3b. resource, then the clients with its Service name -----------------
play "$tmp/pm/resource.yaml"
rip=$(pod_ip "$(pod_of "$tmp/pm/resource.yaml")")
[ -n "$rip" ] || e2e_fail "resource pod has no address on $net"
aliases+=(--host-alias "resource.duet-demo.svc=$rip")
podmanize
for c in client-a client-b client-c; do play "$tmp/pm/$c.yaml"; done
# Containers are named <pod>-<container> by kube play.
R=$(pod_of "$tmp/pm/resource.yaml")
A=$(pod_of "$tmp/pm/client-a.yaml")
B=$(pod_of "$tmp/pm/client-b.yaml")
C=$(pod_of "$tmp/pm/client-c.yaml")

# inpod POD-CONTAINER CMD...: run a command inside a container.
inpod() { local c=$1; shift; timeout 20 podman exec "$c" "$@"; }

# ready POD: the pod's sidecar answers /readyz (busybox in its app container).
ready() {
    local i
    for ((i = 0; i < 60; i++)); do
        inpod "$1" busybox timeout 3 busybox wget -q -O /dev/null http://127.0.0.1:15020/readyz 2>/dev/null && return 0
        sleep 1
    done
    return 1
}
ready "$R-http" || { podman logs "$R-duet-sidecar" 2>&1 | tail; e2e_fail "resource sidecar not ready"; }
for p in "$A" "$B"; do
    ready "$p-app" || { podman logs "$p-duet-sidecar" 2>&1 | tail; e2e_fail "$p sidecar not ready"; }
done

# --- 4. checks ----------------------------------------------------------
want="hello from the duet example resource"
for p in "$A" "$B"; do
    got=$(inpod "$p-app" busybox timeout 5 busybox wget -q -O - http://127.0.0.1:15001/ 2>&1)
    [ "$got" = "$want" ] || {
        podman logs "$p-duet-sidecar" 2>&1 | tail
        podman logs "$R-duet-sidecar" 2>&1 | tail
        e2e_fail "$p through its sidecar got '$got'"
    }
done
e2e_log "A and B reach the resource through their sidecars"

if got=$(inpod "$C-app" busybox timeout 5 busybox wget -q -O - http://resource.duet-demo.svc:8443/ 2>&1); then
    e2e_fail "C (no identity) was served: '$got'"
fi
if got=$(inpod "$C-app" busybox timeout 5 busybox wget -q -O - "http://$rip:8080/" 2>&1); then
    e2e_fail "C reached the resource's plaintext port: '$got'"
fi
# ...and it is the resource's sidecar that refused it, naming C as the peer.
cinfra=$(podman pod inspect "$C" --format '{{.InfraContainerID}}')
cip=$(podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$cinfra")
# (Logs go to a variable first: with pipefail, grep -q exiting at the first
# match makes podman logs die of SIGPIPE and the pipeline "fail".)
rlog=$(podman logs "$R-duet-sidecar" 2>&1)
grep -q "peer=$cip:" <<<"$rlog" ||
    { podman logs "$R-duet-sidecar" 2>&1 | tail -5; e2e_fail "no refusal of C ($cip) in the resource sidecar's log"; }
e2e_log "C is refused by the resource's sidecar"

for ctr in "$S-cfssl" duet-agent-agent "$R-duet-sidecar" "$R-http" "$A-duet-sidecar" "$A-app" \
    "$B-duet-sidecar" "$B-app" "$C-app"; do
    ug=$(podman top "$ctr" huser hgroup | awk 'NR==2 {print $1":"$2}')
    [ "$ug" = "65532:65532" ] || e2e_fail "$ctr runs as '$ug', want 65532:65532"
    ro=$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$ctr")
    [ "$ro" = true ] || e2e_fail "$ctr has a writable root file system"
    capeff=$(podman top "$ctr" capeff | awk 'NR==2 {print $1}')
    [ "$capeff" = none ] || e2e_fail "$ctr has effective capabilities: $capeff"
done
e2e_log "every container runs as 65532:65532, read-only root, no capabilities"

# The agent's status port, as its Service and probes use it (bash's
# /dev/tcp: the runtime image has no HTTP client).
status=$(timeout 10 podman exec duet-agent-agent bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/9090; printf "GET /readyz HTTP/1.0\r\n\r\n" >&3; head -1 <&3')
[[ "$status" == "HTTP/1."?" 200"* ]] || e2e_fail "agent /readyz answered '$status'"
metrics=$(timeout 10 podman exec duet-agent-agent bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/9090; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3')
grep -q 'productA' <<<"$metrics" || e2e_fail "agent /metrics does not mention productA"
e2e_log "agent status port answers /readyz and /metrics"

# Rotation under load: the agent logs when it renews (renew_at, Unix time);
# load runs until a little after the later of A's and the resource's.
renew_at() {
    podman logs duet-agent-agent 2>&1 | grep "identity=dev/$1 " | grep -o 'renew_at=[0-9]*' |
        tail -1 | cut -d= -f2
}
fpA=$(e2e_fp "$node/dev/productA/tls.crt")
fpR=$(e2e_fp "$node/dev/resource/tls.crt")
ra=$(renew_at productA)
rr=$(renew_at resource)
[ -n "$ra" ] && [ -n "$rr" ] || e2e_fail "no renew_at in the agent's log"
until_t=$(( (ra > rr ? ra : rr) + 12 ))
secs=$(( until_t - $(date +%s) ))
[ "$secs" -le 240 ] || e2e_fail "next renewal in ${secs}s: longer than the local overlay allows"
[ "$secs" -ge 5 ] || secs=5
e2e_log "load for ${secs}s across the renewals of productA and resource"
load='n=0; f=0; end=$(( $(date +%s) + '$secs' ));
while [ "$(date +%s)" -lt "$end" ]; do
  n=$((n + 1));
  busybox timeout 5 busybox wget -q -O /dev/null http://127.0.0.1:15001/ || f=$((f + 1));
  sleep 0.1;
done; echo "requests=$n failed=$f"'
for p in "$A" "$B"; do
    timeout $((secs + 30)) podman exec "$p-app" busybox sh -c "$load" >"$tmp/load-$p" 2>&1 &
done
wait
for p in "$A" "$B"; do
    res=$(tail -1 "$tmp/load-$p")
    e2e_log "$p: $res"
    [[ "$res" =~ ^requests=([0-9]+)\ failed=0$ ]] || e2e_fail "$p: requests failed during rotation: $res"
    [ "${BASH_REMATCH[1]}" -ge 20 ] || e2e_fail "$p: too few requests ($res)"
done

fpA2=$(e2e_fp "$node/dev/productA/tls.crt")
fpR2=$(e2e_fp "$node/dev/resource/tls.crt")
[ "$fpA2" != "$fpA" ] || e2e_fail "productA was not rotated (still $fpA)"
[ "$fpR2" != "$fpR" ] || e2e_fail "resource was not rotated (still $fpR)"
# loaded POD-CONTAINER FP: the sidecar logged loading the certificate FP.
loaded() {
    local i
    for ((i = 0; i < 15; i++)); do
        grep -qi "sha256=$2" <<<"$(podman logs "$1" 2>&1)" && return 0
        sleep 1
    done
    return 1
}
loaded "$A-duet-sidecar" "$fpA2" || e2e_fail "client-a's sidecar did not load the rotated certificate"
loaded "$R-duet-sidecar" "$fpR2" || e2e_fail "the resource's sidecar did not load its rotated certificate"
e2e_log "rotation: productA $fpA -> $fpA2, resource $fpR -> $fpR2, loaded by the sidecars, no failed request"
got=$(inpod "$A-app" busybox timeout 5 busybox wget -q -O - http://127.0.0.1:15001/ 2>&1)
[ "$got" = "$want" ] || e2e_fail "after rotation, A got '$got'"

# Clean-up as docs/kind.md says for folder mode: once the pods are gone,
# the keys the agent left on the node are wiped, and none remains.
pods=()
for ((i = ${#played[@]} - 1; i >= 0; i--)); do pods+=("$(pod_of "${played[$i]}")"); done
podman pod rm -f -t 0 "${pods[@]}" >/dev/null 2>&1
[ -n "$(find "$node" -name tls.key)" ] || e2e_fail "no key on the node before the clean-up: nothing tested"
find "$node" -name tls.key -exec shred -zu {} +
rm -rf "$node/dev"
left=$(find "$node" \( -name tls.key -o -name '*.key' \) | head -3)
[ -z "$left" ] || e2e_fail "keys left on the node after the documented clean-up: $left"
e2e_log "clean-up: the node folder holds no key after the documented wipe"

e2e_log "PASS in $(($(date +%s) - t0))s (base images $((t1 - t0))s, image build $((t2 - t1))s)"
