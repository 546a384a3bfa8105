#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# integration.bench_smoke: `bench/run --smoke` (duet + haproxy, 1 repetition
# of 1 s) runs end to end and produces a number for every metric of both
# proxies. It never judges a timing: CI machines are too noisy for that, the
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

timeout 300 python3 "$src/bench/run" --smoke --duet "$DUET_SIDECAR" --out "$out"

python3 - "$out" <<'EOF'
import glob, json, sys
path = glob.glob(sys.argv[1] + "/*.json")[0]
res = json.load(open(path))
metrics = ["keepalive_us_per_req", "resumed_us_per_conn", "full_ec_us_per_hs",
           "full_rsa_us_per_hs", "bulk_cpu_s_per_gb", "mem_kb_per_idle_conn", "idle_rss_kb"]
bad = []
for proxy in ("duet", "haproxy"):
    got = res["summary"].get(proxy, {})
    for m in metrics:
        v = got.get(m, {}).get("median")
        if not isinstance(v, (int, float)):
            bad.append(f"{proxy}.{m}={v}")
if bad:
    print("bench_smoke: no number for " + ", ".join(bad))
    print("failures: " + json.dumps(res.get("failures", {})))
    sys.exit(1)
print("bench_smoke: every metric measured for duet and haproxy")
EOF
