#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Rotation under observation: with validity 60s each identity is renewed
# again and again, each time between 70% and 90% of the certificate's
# usable lifetime after the previous one, while a reader per identity
# (vol_reader: duet_vol_read + duet_key_matches_cert, as fast as it can)
# never sees a missing file or a key that does not match its certificate.
# Old version folders are removed. Takes about five minutes.
#
# The schedule is judged to the second, which a machine that stops running
# us for minutes (a CI host with a full disk or a paused VM did, once) can
# break without any fault of the agent's. env_watch.py records such periods;
# rotation_judge.py sets aside the renewals they overlap and the watch goes
# on, up to ten minutes, until enough renewals could be judged. The readers'
# verdict is never set aside.
source "$(dirname "$0")/agent_lib.sh"
agent_setup

reader=$DUET_BUILD/tests/integration/vol_reader
[ -x "$reader" ] || t_fail "vol_reader not built ($reader)"
agent_make_ca "$T/ca"
out=$T/out
rotations=${AGENT_ROTATIONS:-5}
# Five renewals take at most 5 x 54 s after the first publish; a stalled
# machine earns more time, up to the cap.
watch_s=$((rotations * 54 + 15))
cap_s=600

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

python3 "$DUET_SRC/tests/integration/env_watch.py" "$T" "$T/windows.json" &
AGENT_PIDS+=("$!")
"$reader" "$out/dev/productA" "$((cap_s + 60))" >"$T/readerA.out" 2>"$T/readerA.log" &
ra=$!
"$reader" "$out/dev/productB" "$((cap_s + 60))" >"$T/readerB.out" 2>"$T/readerB.log" &
rb=$!
AGENT_PIDS+=("$ra" "$rb")
echo "watching for ${watch_s} s, up to ${cap_s} s on a stalled machine"
judge() {
    python3 "$DUET_SRC/tests/integration/rotation_judge.py" "$T/agent.log" "$T/windows.json" \
        "$rotations" >"$T/judge.out" 2>&1
}
sleep "$watch_s"
verdict=0
judge || verdict=$?
while [ "$verdict" -eq 2 ] && [ "$SECONDS" -lt "$cap_s" ]; do
    sleep 10
    verdict=0
    judge || verdict=$?
done
cat "$T/judge.out"
kill -TERM "$ra" "$rb" 2>/dev/null || true
wait "$ra" || t_fail "reader A saw a bad set: $(cat "$T/readerA.log")"
wait "$rb" || t_fail "reader B saw a bad set: $(cat "$T/readerB.log")"
echo "reader A: $(cat "$T/readerA.out")"
echo "reader B: $(cat "$T/readerB.out")"
case $verdict in
0) ;;
2) t_fail "too few renewals could be judged in ${cap_s} s (the machine windows above)" ;;
*) t_fail "renewal schedule wrong (above)" ;;
esac

for p in productA productB; do
    # No key_group configured: the key is the owner's alone.
    [ "$(stat -L -c %a "$out/dev/$p/tls.key")" = 600 ] || t_fail "$p/tls.key is not 0600"
    n=$(find "$out/dev/$p" -maxdepth 1 -name '..2*' | wc -l)
    [ "$n" -eq 1 ] || t_fail "$n version folders in $p"
done
agent_stop "$AGENT_PID"
echo PASS
