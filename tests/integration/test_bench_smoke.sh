#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.bench_smoke: `bench/run --smoke` (duet + haproxy + the two
# floors, 1 repetition of 1 s) runs end to end and produces a number for
# every metric of every contender (the client-loop floor has only the
# new-connection metrics). It never judges a timing: CI machines are too noisy for that, the
# full benchmark is run by hand (bench/README.md).
# Skipped (77) when the benchmark's tools are not installed (scripts/deps --bench).
set -euo pipefail

src=${DUET_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
for tool in haproxy nginx wrk curl taskset openssl python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "bench_smoke: $tool not installed (scripts/deps --bench): skipped"
        exit 77
    fi
done
if [ "$(nproc)" -lt 2 ]; then
    echo "bench_smoke: needs 2 cores: skipped"
    exit 77
fi
if [ -z "${DUET_SIDECAR:-}" ] || [ ! -x "$DUET_SIDECAR" ]; then
    echo "bench_smoke: DUET_SIDECAR not built: skipped"
    exit 77
fi

out=$(mktemp -d /tmp/duet-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT

# The floors built with this tree (bench/floor/), else bench/run builds them.
floor_dir=${DUET_BUILD:+$DUET_BUILD/bench/floor}
timeout 300 python3 "$src/bench/run" --smoke --duet "$DUET_SIDECAR" --out "$out" \
    ${floor_dir:+--floor-dir "$floor_dir"}

python3 - "$out" <<'EOF'
import glob, json, sys
path = glob.glob(sys.argv[1] + "/*.json")[0]
res = json.load(open(path))
conn = ["resumed_us_per_conn", "full_ec_us_per_hs", "full_rsa_us_per_hs"]
metrics = conn + ["keepalive_us_per_req", "keepalive_p99_ms", "bulk_cpu_s_per_gb", "mem_kb_per_idle_conn",
                  "mem_uss_kb_per_idle_conn", "mem_pss_kb_per_idle_conn", "idle_rss_kb",
                  "idle_uss_kb", "idle_pss_kb"]
bad = []
for proxy, want in (("duet", metrics), ("haproxy", metrics), ("floor-relay", metrics),
                    ("floor-client", conn)):
    got = res["summary"].get(proxy, {})
    for m in want:
        v = got.get(m, {}).get("median")
        if not isinstance(v, (int, float)):
            bad.append(f"{proxy}.{m}={v}")
for m in metrics:
    if not isinstance(res["verdict"].get(m, {}).get("ratio_floor"), (int, float)):
        bad.append(f"ratio to floor of {m}")
# Every metric with a target has a verdict on each target (met or not, never
# unknown): the issue-14 targets are all judged from this run.
for m, v in res["verdict"].items():
    for label, ok in v.get("checks", []):
        if ok is None:
            bad.append(f"verdict of {m} on '{label}'")
# The keep-alive runs also say what each request cost the load core and how
# many TCP segments it took: at least the request and the answer on each
# hop, four in all.
for proxy in ("duet", "haproxy", "floor-relay"):
    for r in res["raw"].get(proxy, {}).get("keepalive_us_per_req", []):
        if not all(isinstance(r.get(k), (int, float)) and r[k] > 0
                   for k in ("upstream_us", "wrk_us")) or not (r.get("segs") or 0) >= 3.9:
            bad.append(f"{proxy} keep-alive chain cost {[r.get(k) for k in ('upstream_us', 'wrk_us', 'segs')]}")
if "TCP segments/req" not in open(path[:-5] + ".md").read():
    bad.append("keep-alive chain columns in the report")
if not res["verdict"]["idle_uss_kb"].get("checks"):
    bad.append("no target for idle USS")
if bad:
    print("bench_smoke: no number for " + ", ".join(bad))
    print("failures: " + json.dumps(res.get("failures", {})))
    sys.exit(1)
print("bench_smoke: every metric measured for duet, haproxy and the floors")
EOF
