# SPDX-License-Identifier: Apache-2.0
# What every integration test needs (sourced by agent_lib.sh and
# sidecar_lib.sh): a throwaway folder $T, a cleanup trap that kills only the
# PIDs the test recorded and shows the logs of a failed run, a failure
# helper and a free port. Every wait in the tests is bounded.

# t_setup NAME PIDS: creates $T and the array named PIDS (the test appends
# the PID of every process it starts), and arms the cleanup trap.
t_setup() {
    set -euo pipefail
    T=$(mktemp -d "${TMPDIR:-/tmp}/duet-$1-test.XXXXXX")
    T_PIDS_VAR=$2
    declare -g -a "$2=()"
    trap t_cleanup EXIT
}

t_cleanup() {
    local rc=$? p f
    local -n t_pids=$T_PIDS_VAR
    for p in "${t_pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${t_pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "${T:-}" ]; then
        echo "---- logs (${T}) ----" >&2
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "== $f" >&2
            tail -n 60 "$f" >&2
        done
    fi
    if [ -n "${T:-}" ]; then
        python3 "$T_PORTS_PY" --release "$T/.ports"
        rm -rf "$T"
    fi
    exit "$rc"
}

t_fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# A free TCP port on 127.0.0.1, reserved for this test until its cleanup
# (scripts/lib/ports.py says why not the kernel's ephemeral pick).
T_PORTS_PY=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib" && pwd)/ports.py
t_free_port() {
    python3 "$T_PORTS_PY" --owner "$T/.ports"
}
