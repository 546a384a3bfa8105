# SPDX-License-Identifier: Apache-2.0
# Helpers shared by tests/e2e/test_*.sh and tests/integration/test_manifests.sh
# (sourced; names start with e2e_). They find the project, its node tools and
# kubectl, and render overlays from a throwaway copy of manifests/ with a CA
# made per run, so a test never writes into the source tree.

e2e_src=${DUET_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
e2e_tools=$e2e_src/tests/e2e/tools
export CONTAINERS_CONF=$e2e_src/tests/e2e/containers.conf

e2e_log() { echo "[$(date -u +%T)] $*" >&2; }
e2e_fail() { e2e_log "FAIL: $*"; exit 1; }
e2e_skip() { e2e_log "SKIP: $*"; exit 77; }

# e2e_need_render_tools skip|fail: kubectl (kustomize) and the node tools of
# tests/e2e/tools, which scripts/deps --e2e installs. Without them, the
# integration test skips (deps ran without --e2e, DUET_TEST_NO_E2E=1) and
# the e2e test fails (deps --e2e should have installed them).
# A kubectl counts only when its kustomize (v4 or later) loads a folder
# listed under resources:, as the overlays do. Debian 12's kubernetes-client
# (1.20, kustomize v2.0.3, no kustomizeVersion in its version output) does
# not ("'../../base' must be a file").
e2e_kustomize_ok() {
    local v
    v=$(kubectl version --client -o json 2>/dev/null |
        sed -n 's/.*"kustomizeVersion": *"v\([0-9][0-9]*\).*/\1/p')
    [ -n "$v" ] && [ "$v" -ge 4 ]
}

e2e_need_render_tools() {
    local missing=""
    if ! command -v kubectl >/dev/null; then
        missing=" kubectl"
    elif ! e2e_kustomize_ok; then
        missing=" kubectl-with-kustomize-v4+"
    fi
    command -v node >/dev/null || missing="$missing node"
    [ -d "$e2e_tools/node_modules/kubernetes-models" ] || missing="$missing tests/e2e/tools/node_modules"
    [ -z "$missing" ] && return 0
    [ "$1" = skip ] && e2e_skip "missing$missing (scripts/deps --e2e installs them)"
    e2e_fail "missing$missing (scripts/deps --e2e installs them)"
}

# e2e_agent_bin: a duet-agent binary for `ca init` (ctest passes DUET_AGENT).
e2e_agent_bin() {
    local a=${DUET_AGENT:-$e2e_src/build/agent/duet-agent}
    [ -x "$a" ] || e2e_fail "no duet-agent binary at $a (build first)"
    echo "$a"
}

# e2e_manifests_copy DIR: copies manifests/ to DIR/manifests with a fresh
# EC CA in signer/ca and base/ca (EC: RSA-4096 keygen would cost seconds
# for nothing here).
e2e_manifests_copy() {
    cp -r "$e2e_src/manifests" "$1/manifests"
    find "$1/manifests/base/ca" "$1/manifests/signer/ca" -type f ! -name .gitignore -delete
    DUET_AGENT=$(e2e_agent_bin) "$e2e_src/scripts/make-ca-secret" \
        --manifests "$1/manifests" --key-type ec-p256 >/dev/null ||
        e2e_fail "make-ca-secret failed"
}

# e2e_render MANIFESTS OVERLAY OUT: kubectl kustomize of one overlay.
e2e_render() {
    kubectl kustomize "$1/overlays/$2" >"$3" 2>"$3.err" ||
        e2e_fail "kubectl kustomize overlays/$2: $(cat "$3.err")"
}

# e2e_validate FILE...: strict schema validation (tests/e2e/tools/k8s-validate.mjs).
e2e_validate() { node "$e2e_tools/k8s-validate.mjs" "$@"; }

# e2e_fp CERT: SHA-256 fingerprint of a PEM certificate, upper-case hex
# without colons (the form duet's logs use).
e2e_fp() {
    openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr a-f A-F
}
