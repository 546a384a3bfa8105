#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The end-to-end test must catch a manifest whose paths no longer meet:
# test_podman_kube.sh is run with the manifests broken on purpose
# (DUET_E2E_MUTATE) and must fail, for the expected reason, each time.
#   sidecar-mount  client A mounts /var/lib/duet/dev/product-a, a folder the
#                  agent never writes: its pod cannot start (local overlay,
#                  folder mode: podman has no CSI);
#   agent-output   the agent's output_dir moves to /var/lib/duet/out: the
#                  folders the pods mount never appear.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

fails=0
# mutant NAME EXPECTED-MESSAGE
mutant() {
    local out rc
    out=$(DUET_E2E_MUTATE=$1 bash "$(dirname "$0")/test_podman_kube.sh" 2>&1)
    rc=$?
    [ "$rc" -eq 77 ] && e2e_skip "podman cannot run here"
    if [ "$rc" -ne 0 ] && grep -q "$2" <<<"$out"; then
        e2e_log "ok: mutant $1 fails: $(grep 'FAIL:' <<<"$out" | tail -1)"
    else
        e2e_log "FAIL: mutant $1 not caught (exit $rc), last lines:"
        tail -5 <<<"$out" >&2
        fails=$((fails + 1))
    fi
}
mutant sidecar-mount "FAIL: kube play client-a.yaml"
mutant agent-output "FAIL: the agent did not publish"
[ "$fails" -eq 0 ] || e2e_fail "$fails mutant(s) survived"
