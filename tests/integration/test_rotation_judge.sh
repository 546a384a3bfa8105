#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# rotation_judge.py, which test_agent_rotation.sh trusts to fail a wrong
# schedule, on logs whose verdict is known: the agent log of the CI run of
# 2026-12-01 in which nothing renewed for 210 s (wrong unless the machine
# stalled then), its healthy first minute, an early start and a warning;
# and env_watch.py recording a stall.
source "$(dirname "$0")/lib.sh"
t_setup rotation-judge NO_PIDS
judge_py=$DUET_SRC/tests/integration/rotation_judge.py

cat >"$T/ci.log" <<'LOG'
ts=2026-12-01T03:58:44.099Z level=info subsys=agent config=/x/agent.json identities=2 issuer=local msg="started"
ts=2026-12-01T03:58:44.099Z level=info subsys=agent identity=dev/productA reason=no-valid-set msg="issuing"
ts=2026-12-01T03:58:44.101Z level=info subsys=agent identity=dev/productA issuer=local serial=44 not_after=1796097584 sha256=65 key="EC P-256" renew_at=1796097569 took_ms=2 msg="published" dir="/x/out/dev/productA"
ts=2026-12-01T03:58:44.101Z level=info subsys=agent identity=dev/productB reason=no-valid-set msg="issuing"
ts=2026-12-01T03:58:44.102Z level=info subsys=agent identity=dev/productB issuer=local serial=5F not_after=1796097584 sha256=DA key="EC P-256" renew_at=1796097567 took_ms=1 msg="published" dir="/x/out/dev/productB"
ts=2026-12-01T03:59:27.185Z level=info subsys=agent identity=dev/productB reason=renewal-time msg="issuing"
ts=2026-12-01T03:59:27.188Z level=info subsys=agent identity=dev/productB issuer=local serial=5E not_after=1796097627 sha256=D8 key="EC P-256" renew_at=1796097616 took_ms=2 msg="published" dir="/x/out/dev/productB"
ts=2026-12-01T03:59:29.354Z level=info subsys=agent identity=dev/productA reason=renewal-time msg="issuing"
ts=2026-12-01T03:59:29.358Z level=info subsys=agent identity=dev/productA issuer=local serial=36 not_after=1796097629 sha256=D8 key="EC P-256" renew_at=1796097611 took_ms=4 msg="published" dir="/x/out/dev/productA"
ts=2026-12-01T04:00:11.336Z level=info subsys=agent identity=dev/productA reason=renewal-time msg="issuing"
ts=2026-12-01T04:03:41.567Z level=info subsys=agent identity=dev/productA reason=renewal-time msg="issuing"
ts=2026-12-01T04:03:41.570Z level=info subsys=agent identity=dev/productA issuer=local serial=61 not_after=1796097881 sha256=A3 key="EC P-256" renew_at=1796097863 took_ms=2 msg="published" dir="/x/out/dev/productA"
ts=2026-12-01T04:03:42.303Z level=info subsys=agent identity=dev/productB reason=renewal-time msg="issuing"
ts=2026-12-01T04:03:42.308Z level=info subsys=agent identity=dev/productB issuer=local serial=1C not_after=1796097882 sha256=E3 key="EC P-256" renew_at=1796097872 took_ms=5 msg="published" dir="/x/out/dev/productB"
LOG
echo '[]' >"$T/none.json"
echo '[{"kind": "stall", "start": 1796097611.0, "end": 1796097820.5}]' >"$T/stall.json"

# judge_expect RC LOG WINDOWS ROTATIONS [PATTERN]: the verdict, and a line the report must hold.
judge_expect() {
    local want=$1 log=$2 win=$3 rot=$4 pat=${5:-} rc=0
    python3 "$judge_py" "$log" "$win" "$rot" >"$T/out" 2>&1 || rc=$?
    [ "$rc" -eq "$want" ] || t_fail "$(basename "$log") $(basename "$win"): exit $rc, want $want: $(cat "$T/out")"
    [ -z "$pat" ] || grep -q -- "$pat" "$T/out" || t_fail "no '$pat' in: $(cat "$T/out")"
    echo "ok: $(basename "$log") $(basename "$win") -> $rc${pat:+ ($pat)}"
}

# The stall with nothing to excuse it: an attempt that took 210 s, a late
# start, certificates that expired before their successors.
judge_expect 1 "$T/ci.log" "$T/none.json" 5 "BAD-SLOW:210.2s"
judge_expect 1 "$T/ci.log" "$T/none.json" 5 "BAD-START:+206.30s"
judge_expect 1 "$T/ci.log" "$T/none.json" 5 "BAD-EXPIRED"
# A recorded machine stall sets those renewals aside: too few judged, not wrong.
judge_expect 2 "$T/ci.log" "$T/stall.json" 5 "set-aside(stall)"
# The first minute was healthy.
head -9 "$T/ci.log" >"$T/healthy.log"
judge_expect 0 "$T/healthy.log" "$T/none.json" 1 "dev/productA: 1 judged renewals of 1: 45.3s=76%"
judge_expect 2 "$T/healthy.log" "$T/none.json" 2
# Starting before the planned time, or planning outside 70-90 %, is wrong.
sed 's/renew_at=1796097569/renew_at=1796097575/' "$T/healthy.log" >"$T/early.log"
judge_expect 1 "$T/early.log" "$T/none.json" 1 "BAD-START:-5.65s"
sed 's/renew_at=1796097569/renew_at=1796097580/' "$T/healthy.log" >"$T/late-plan.log"
judge_expect 1 "$T/late-plan.log" "$T/none.json" 1 "BAD-PLAN:93%"
# A renewal for another reason than its planned time is wrong.
sed '8s/reason=renewal-time/reason=no-valid-set/' "$T/healthy.log" >"$T/reason.log"
judge_expect 1 "$T/reason.log" "$T/none.json" 1 "BAD-REASON:no-valid-set"
# A warning is wrong, unless the machine was stalled when it was logged.
{ cat "$T/healthy.log"
  echo 'ts=2026-12-01T04:00:20.000Z level=warn subsys=agent identity=dev/productA err=io msg="x"'
} >"$T/warn.log"
judge_expect 1 "$T/warn.log" "$T/none.json" 1 "WARNING: ts=2026-12-01T04:00:20"
judge_expect 0 "$T/warn.log" "$T/stall.json" 1 "set aside (machine: stall)"
# No window record at all is an error, not a pass.
judge_expect 1 "$T/healthy.log" "$T/missing.json" 1 "no readable window record"

# env_watch.py, which feeds the judge its windows, records a stall: it is
# stopped for 2.5 s, as a frozen machine stops it.
mkdir "$T/ew"
python3 "$DUET_SRC/tests/integration/env_watch.py" "$T/ew" "$T/ew.json" &
ew=$!
NO_PIDS+=("$ew")
for _ in $(seq 50); do [ -s "$T/ew.json" ] && break; sleep 0.1; done
kill -STOP "$ew"
sleep 2.5
kill -CONT "$ew"
sleep 0.5
kill -TERM "$ew"
wait "$ew" || t_fail "env_watch exited with $?"
python3 - "$T/ew.json" <<'PY' || t_fail "env_watch did not record the 2.5 s stall: $(cat "$T/ew.json")"
import json, sys
ws = json.load(open(sys.argv[1]))
sys.exit(0 if any(w["kind"] == "stall" and w["end"] - w["start"] >= 2.0 for w in ws) else 1)
PY
echo "ok: env_watch recorded the stall: $(cat "$T/ew.json")"
echo PASS
