#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Rotation under observation: with validity 60s each identity is renewed
# again and again, each time between 70% and 90% of the certificate's
# usable lifetime after the previous one, while a reader per identity
# (vol_reader: duet_vol_read + duet_key_matches_cert, as fast as it can)
# never sees a missing file or a key that does not match its certificate.
# Old version folders are removed. Takes about five minutes.
source "$(dirname "$0")/agent_lib.sh"
agent_setup

reader=$DUET_BUILD/tests/integration/vol_reader
[ -x "$reader" ] || t_fail "vol_reader not built ($reader)"
agent_make_ca "$T/ca"
out=$T/out
rotations=${AGENT_ROTATIONS:-5}
# Worst case 5 x 54 s after the first publish, plus margin.
watch_s=$((rotations * 54 + 15))

cat >"$T/agent.json" <<JSON
{
  "env": "dev",
  "trust_domain": "example.org",
  "output_dir": "$out",
  "subject": {"O": "Example, Inc."},
  "key_type": "ec-p256",
  "validity": "60s",
  "issuer": {"type": "local", "ca_cert": "$T/ca/ca.crt", "ca_key": "$T/ca/ca.key",
             "ca_key_passphrase_file": "$T/ca/ca.pass"},
  "identities": [{"product": "productA"}, {"product": "productB"}]
}
JSON

agent_start agent "$T/agent.json"
agent_wait 10 agent_set_ok "$out/dev/productA" || t_fail "productA not published"
agent_wait 10 agent_set_ok "$out/dev/productB" || t_fail "productB not published"

"$reader" "$out/dev/productA" "$watch_s" >"$T/readerA.out" 2>"$T/readerA.log" &
ra=$!
"$reader" "$out/dev/productB" "$watch_s" >"$T/readerB.out" 2>"$T/readerB.log" &
rb=$!
AGENT_PIDS+=("$ra" "$rb")
echo "watching for ${watch_s} s"
wait "$ra" || t_fail "reader A saw a bad set: $(cat "$T/readerA.log")"
wait "$rb" || t_fail "reader B saw a bad set: $(cat "$T/readerB.log")"
echo "reader A: $(cat "$T/readerA.out")"
echo "reader B: $(cat "$T/readerB.out")"

# From the log, per identity: each certificate's planned renewal (renew_at)
# must lie between 70% and 90% of its usable lifetime counted from when it
# was published, and the next issuance must start at that time (not before;
# after by at most a few seconds of a loaded machine). renew_at is logged in
# whole seconds, hence the 1 s allowances.
python3 - "$T/agent.log" "$rotations" <<'PY' || t_fail "renewal times outside 70-90% of the lifetime"
import re, sys, datetime
log, rotations = sys.argv[1], int(sys.argv[2])
def ts(s):
    return datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc).timestamp()
pubs, starts = {}, {}
for line in open(log):
    m = re.search(r'ts=(\S+)Z .*identity=(\S+) issuer=\S+ serial=\S+ not_after=(\d+) .*renew_at=(\d+) .*msg="published"', line)
    if m:
        pubs.setdefault(m.group(2), []).append((ts(m.group(1)), int(m.group(3)), int(m.group(4))))
    m = re.search(r'ts=(\S+)Z .*identity=(\S+) reason=renewal-time msg="issuing"', line)
    if m:
        starts.setdefault(m.group(2), []).append(ts(m.group(1)))
ok = len(pubs) == 2
for ident, ps in sorted(pubs.items()):
    out = []
    for k, (t, na, at) in enumerate(ps):
        life = na - t
        frac = (at - t) / life
        if not (0.70 * life - 1 <= at - t <= 0.90 * life + 1):
            ok = False
            out.append(f"BAD-PLAN:{frac:.0%}")
        if k + 1 < len(ps):
            s = starts[ident][k]
            late = s - at
            out.append(f"{s - t:.1f}s={(s - t) / life:.0%}")
            if not (-0.001 <= late <= 5.0):
                ok = False
                out.append(f"BAD-START:{late:+.2f}s")
    print(f"{ident}: {len(ps) - 1} renewals: {' '.join(out)}")
    if len(ps) - 1 < rotations:
        print(f"{ident}: only {len(ps) - 1} renewals, want {rotations}")
        ok = False
sys.exit(0 if ok else 1)
PY

for p in productA productB; do
    # No key_group configured: the key is the owner's alone.
    [ "$(stat -L -c %a "$out/dev/$p/tls.key")" = 600 ] || t_fail "$p/tls.key is not 0600"
    n=$(find "$out/dev/$p" -maxdepth 1 -name '..2*' | wc -l)
    [ "$n" -eq 1 ] || t_fail "$n version folders in $p"
done
grep -q "level=warn" "$T/agent.log" && t_fail "warnings during rotation: $(grep level=warn "$T/agent.log" | head -3)"
agent_stop "$AGENT_PID"
echo PASS
