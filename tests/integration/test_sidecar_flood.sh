#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.sidecar_flood: the inbound sidecar in a 64 MiB memory cgroup
# (the example manifests' limit) with its default flags, against 10,000
# silent TCP connections and then 10,000 partial ClientHellos. It must not
# be OOM-killed (the cgroup's oom_kill count stays 0), and a real client
# must get its answer within 1 s while the hostile sockets are open. Then
# legitimate clients open idle proxied connections until the default
# --max-conns stops them: still no OOM kill (skipped under ASan, whose
# shadow memory a 64 MiB group cannot hold).
# Needs a writable cgroup v1 memory hierarchy (skips otherwise).
source "$(dirname "$0")/sidecar_lib.sh"
sc_setup
CGROOT=/sys/fs/cgroup/memory
[ -w "$CGROOT" ] && [ -f "$CGROOT/memory.limit_in_bytes" ] || { echo "skip: no writable memory cgroup"; exit 77; }
[ "$(ulimit -n)" -ge 12000 ] || ulimit -n 12000 2>/dev/null || { echo "skip: ulimit -n < 12000"; exit 77; }
CG="$CGROOT/duet-flood-$$"
SCPID=""
cg_cleanup() {
    local rc=$?
    if [ -n "$SCPID" ]; then
        kill -TERM "$SCPID" 2>/dev/null || true
        wait "$SCPID" 2>/dev/null || true
    fi
    [ -d "$CG" ] && rmdir "$CG" 2>/dev/null
    return $rc
}
trap 'cg_cleanup; t_cleanup' EXIT
mkdir "$CG"
echo $((64 * 1024 * 1024)) >"$CG/memory.limit_in_bytes"
[ -f "$CG/memory.memsw.limit_in_bytes" ] && echo $((64 * 1024 * 1024)) >"$CG/memory.memsw.limit_in_bytes"

sc_ca "$T" root
sc_leaf "$T" root productA dev.productA.dev
SC_EXT=srv sc_leaf "$T" root sidecar dev.resource.dev
mkdir "$T/certs"
sc_publish "$T/certs" "$T/sidecar.key" "$T/sidecar.crt" "$T/root.crt"
bp=$(t_free_port); ip=$(t_free_port); hp=$(t_free_port); ip2=$(t_free_port)
sc_backend "$bp"
python3 "$(dirname "$0")/sc_hold_backend.py" "$hp" 120 >"$T/hold.log" 2>&1 &
SC_PIDS+=("$!")
sc_wait_port "$hp"
bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$CG" \
    "$DUET_SIDECAR" --certs "$T/certs" --log-admissions 0 --inbound "127.0.0.1:$ip=127.0.0.1:$bp" \
    --inbound "127.0.0.1:$ip2=127.0.0.1:$hp" >"$T/sc.log" 2>&1 &
SCPID=$!
SC_PIDS+=("$SCPID")
sc_wait_port "$ip"

oom_kills() { awk '/^oom_kill / {print $2}' "$CG/memory.oom_control"; }
for mode in idle partial; do
    r=$(python3 "$(dirname "$0")/sc_flood.py" "$ip" 10000 "$mode" "$T" productA)
    peak=$(($(cat "$CG/memory.max_usage_in_bytes") / 1024 / 1024))
    echo "$mode: $r peak_MiB=$peak oom_kills=$(oom_kills)"
    kill -0 "$SCPID" 2>/dev/null || t_fail "$mode: the sidecar died"
    [ "$(oom_kills)" = 0 ] || t_fail "$mode: OOM kills in the sidecar's cgroup"
    case $r in opened=10000\ legit=ok\ *) ;; *) t_fail "$mode: $r" ;; esac
    ms=${r##*legit_ms=}
    [ "$ms" -lt 1000 ] || t_fail "$mode: the real client waited $ms ms"
done
sc_wait_log "$T/sc.log" "reason=shed" || t_fail "no handshake was shed"
# (grep -c, not -q: under pipefail an early exit of grep fails nm with SIGPIPE)
if [ "$(nm "$DUET_SIDECAR" 2>/dev/null | grep -c ' __asan_init$' || true)" -gt 0 ]; then
    echo "established: skipped under ASan"
else
    r=$(python3 "$(dirname "$0")/sc_many.py" "$ip2" 2500 "$T" productA 2)
    peak=$(($(cat "$CG/memory.max_usage_in_bytes") / 1024 / 1024))
    echo "established: $r peak_MiB=$peak oom_kills=$(oom_kills)"
    kill -0 "$SCPID" 2>/dev/null || t_fail "established: the sidecar died"
    [ "$(oom_kills)" = 0 ] || t_fail "established: OOM kills in the sidecar's cgroup"
    [ "${r#open=}" -ge 1900 ] || t_fail "established: only $r connections before the cap"
fi
SC_PIDS=("${SC_PIDS[@]/$SCPID}")
sc_stop "$SCPID" "$T/sc.log"
SCPID=""
echo ok
