#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A fresh Debian 12 machine: in a pristine debian:bookworm container (the
# debootstrap image scripts/podman-setup makes), with a copy of the source
# tree (no build folders, no node_modules):
#  1. scripts/deps --e2e installs everything and finds every command podman
#     and the e2e tests run (iptables for netavark was missing once: Debian's
#     podman only recommends it, and `podman build` died on a fresh machine);
#  2. DUET_TEST_FAST=1 scripts/test (its own scripts/deps call, the gcc
#     build, unit + integration tests) passes there.
# So the next package missing from scripts/deps fails here, not on a
# newcomer's machine. Needs the Debian archive and the npm registry (as
# scripts/deps does); network on the container's default podman network.
# Where this machine trusts local CAs (/usr/local/share/ca-certificates: an
# egress proxy that intercepts TLS), npm in the container gets this
# machine's CA bundle, as a machine on that network would be set up; the
# image itself stays pristine.
# Bounded: the container gets DUET_FRESH_TIMEOUT seconds (default 3000),
# then it is removed. Exit 77 (skipped) only when podman cannot run here.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

limit=${DUET_FRESH_TIMEOUT:-3000}
image=docker.io/library/debian:bookworm
name=duet-fresh-$$
tmp=""

teardown() {
    podman rm -f --time 0 "$name" >/dev/null 2>&1 || true
    [ -n "$tmp" ] && rm -rf "$tmp"
}
trap teardown EXIT

rc=0
"$e2e_src/scripts/podman-setup" || rc=$?
[ "$rc" = 77 ] && e2e_skip "podman cannot run a container here"
[ "$rc" = 0 ] || e2e_fail "scripts/podman-setup failed ($rc)"

tmp=$(mktemp -d --tmpdir=/var/tmp duet-fresh.XXXXXX)
mkdir "$tmp/src"
# What a fresh clone holds: the tracked tree, nothing built or installed.
tar -C "$e2e_src" --exclude=./.git --exclude='./build' --exclude='./build-*' \
    --exclude=node_modules --exclude=./out -cf - . | tar -C "$tmp/src" -xf - ||
    e2e_fail "copying the source tree"

# The script the machine runs, as root (as CI does). The tree is copied out
# of the read-only mount so nothing is written back.
cat >"$tmp/run.sh" <<'EOF'
set -euo pipefail
cp -a /src /duet
cd /duet
echo "== scripts/deps --e2e"
scripts/deps --e2e
echo "== DUET_TEST_FAST=1 scripts/test"
# The quick soak needs nothing scripts/deps --bench has not installed, and
# it already runs on the host: here it would only time load inside load.
DUET_TEST_FAST=1 DUET_TEST_NO_SOAK=1 scripts/test
EOF

site_ca=()
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1 && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$tmp/site-ca.crt"
    site_ca=(-v "$tmp/site-ca.crt:/etc/duet-site-ca.crt:ro"
             -e NODE_EXTRA_CA_CERTS=/etc/duet-site-ca.crt -e npm_config_cafile=/etc/duet-site-ca.crt)
    e2e_log "npm in the container trusts this machine's CA bundle (local CAs present)"
fi

e2e_log "pristine $image: scripts/deps --e2e, then DUET_TEST_FAST=1 scripts/test (limit ${limit}s)"
t0=$(date +%s)
rc=0
timeout --kill-after=30 "$limit" \
    podman run --rm --name "$name" -v "$tmp/src:/src:ro" -v "$tmp/run.sh:/run.sh:ro" \
    "${site_ca[@]}" "$image" bash /run.sh >"$tmp/fresh.log" 2>&1 || rc=$?
took=$(($(date +%s) - t0))
# A failing test's own lines first (the summary below only names it).
if [ "$rc" != 0 ]; then
    grep -B3 -A12 "FAIL:" "$tmp/fresh.log" | head -80 >&2 || true
fi
tail -40 "$tmp/fresh.log" >&2
[ "$rc" = 124 ] || [ "$rc" = 137 ] && e2e_fail "not done within ${limit}s"
[ "$rc" = 0 ] || e2e_fail "exit $rc after ${took}s on a fresh Debian 12 (log above)"
grep -q '^total: [0-9]* passed, 0 failed' "$tmp/fresh.log" || e2e_fail "no test summary"
e2e_log "fresh Debian 12: $(grep '^total:' "$tmp/fresh.log") in ${took}s"
echo PASS
