# SPDX-License-Identifier: Apache-2.0
"""Plays kubelet against duet-agent serving CSI volumes issued by CFSSL
(test_agent_csi_cfssl.sh), in a private mount namespace, as root.

usage: csi_cfssl.py AGENT PROTOSET WORKDIR
WORKDIR holds real/ (an agent config for a real `cfssl serve`), hang/ (one
for a CFSSL that never answers) and renew/ (one for a CFSSL that relays to
the real one until renew.mode says "hang"; certificates with 2-3 minutes
left, renewed within 110 s), each with agent.json and status.port. Every
wait is bounded.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts/lib"))
from csi_client import Csi, kill_at_exit, kubelet_target, mounts_below  # noqa: E402

AGENT, PROTOSET, T = sys.argv[1:4]
CSI = Csi(PROTOSET)
BURST = 16


LOGS = []  # the agents' logs, shown on a failure


def fail(why):
    print(f"FAIL: {why}", file=sys.stderr)
    for path in LOGS:
        print(f"== {path} (last 40 lines)", file=sys.stderr)
        with open(path, errors="replace") as f:
            sys.stderr.writelines(f.readlines()[-40:])
    sys.exit(1)


def check(cond, why):
    if not cond:
        fail(why)


class Agent:
    def __init__(self, name):
        self.w = f"{T}/{name}"
        self.reg = f"{self.w}/plugins_registry/duet.example.org-reg.sock"
        self.ep = f"{self.w}/plugins/duet.example.org/csi.sock"
        self.status_port = int(open(f"{self.w}/status.port").read())
        self.log = open(f"{self.w}/agent.log", "ab")
        LOGS.append(f"{self.w}/agent.log")
        self.proc = subprocess.Popen([AGENT, "run", "--config", f"{self.w}/agent.json"],
                                     stdout=self.log, stderr=self.log)
        kill_at_exit(self.proc)
        deadline = time.time() + 30
        while not os.path.exists(self.ep) or not os.path.exists(self.reg):
            check(self.proc.poll() is None, f"agent exited with {self.proc.returncode}")
            check(time.time() < deadline, "the agent's CSI sockets never appeared")
            time.sleep(0.1)

    def status(self, path, timeout):
        with socket.create_connection(("127.0.0.1", self.status_port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def pods(self):
        return f"{self.w}/pods"

    def state_volumes(self):
        d = f"{self.w}/state/v"
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def log_text(self):
        return open(f"{self.w}/agent.log").read()


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, check=False)


def check_volume(target, cn):
    """The set at target: the key is the certificate's, the root verifies it; the key's SHA-256."""
    crt, key = f"{target}/tls.crt", f"{target}/tls.key"
    r = openssl("verify", "-CAfile", f"{T}/ca/ca.crt", "-purpose", "sslclient", crt)
    check(r.returncode == 0, f"{crt} does not verify: {r.stdout} {r.stderr}")
    subj = openssl("x509", "-in", crt, "-noout", "-subject").stdout.decode()
    check(f"CN = {cn}" in subj, f"{crt}: subject {subj.strip()}, want CN {cn}")
    pub_c = openssl("x509", "-in", crt, "-noout", "-pubkey").stdout
    pub_k = openssl("pkey", "-in", key, "-pubout").stdout
    check(pub_c and pub_c == pub_k, f"{key} does not match {crt}")
    return pub_k


def reqs_for(agent, prefix, n):
    out = []
    for i in range(n):
        sa = "client-a" if i % 2 == 0 else "client-b"
        uid = f"uid-{prefix}{i}"
        out.append(CSI.publish_req(f"vol-{prefix}{i}", kubelet_target(agent.pods(), uid),
                                   "duet-demo", f"{prefix}-{i}", uid, sa))
    return out


def real_burst():
    """BURST pods at once: every volume its own key, certified by CFSSL, all off the loop."""
    agent = Agent("real")
    reqs = reqs_for(agent, "r", BURST)
    t0 = time.time()
    codes = CSI.publish_many(agent.ep, reqs)
    took = time.time() - t0
    check(codes == [grpc.StatusCode.OK] * BURST, f"publishes: {codes}")
    keys = set()
    for i, r in enumerate(reqs):
        keys.add(check_volume(r.target_path, "dev.productA.dev" if i % 2 == 0 else "dev.productB.dev"))
    check(len(keys) == BURST, f"{BURST} pods got {len(keys)} distinct keys")
    log = agent.log_text()
    made = re.findall(r'subsys=csi volume=vol-r\d+ .*msg="published"', log)
    check(len(made) == BURST, f"{len(made)} volumes published in the log, want {BURST}")
    check("issuer=cfssl" in log, "the log does not name the cfssl issuer")
    for r in reqs:
        code, det = CSI.unpublish(agent.ep, r.volume_id, r.target_path)
        check(code == grpc.StatusCode.OK, f"unpublish {r.volume_id}: {code} {det}")
    check(mounts_below(agent.pods()) == [] and agent.state_volumes() == [],
          "the burst left mounts or volume folders")
    agent.proc.send_signal(signal.SIGTERM)
    check(agent.proc.wait(timeout=10) == 0, f"agent exit status {agent.proc.returncode}")
    print(f"ok: {BURST} concurrent publishes through cfssl serve in {took:.2f} s, "
          f"{len(keys)} keys, each verified; nothing left after unpublish")


def loop_answers(agent, while_what):
    """/healthz and NodeGetCapabilities answer within 1 s: the loop is not blocked."""
    t0 = time.time()
    try:
        health = agent.status("/healthz", timeout=5)
    except OSError as e:
        fail(f"/healthz gave no answer in 5 s while {while_what} ({e}): the loop is blocked")
    took = time.time() - t0
    check(" 200 " in health.splitlines()[0], f"/healthz: {health.splitlines()[:1]}")
    check(took < 1.0, f"/healthz took {took:.2f} s while {while_what}: the loop is blocked")
    t0 = time.time()
    CSI.call(agent.ep, "/csi.v1.Node/NodeGetCapabilities",
             CSI.msg("csi.v1.NodeGetCapabilitiesRequest")(),
             "csi.v1.NodeGetCapabilitiesResponse", timeout=5)
    took_csi = time.time() - t0
    check(took_csi < 1.0, f"NodeGetCapabilities took {took_csi:.2f} s while {while_what}")
    return took, took_csi


def sigterm_stops(agent):
    """SIGTERM stops the agent with status 0 within 3 s; the time it took."""
    t0 = time.time()
    agent.proc.send_signal(signal.SIGTERM)
    try:
        rc = agent.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        agent.proc.kill()
        fail("the agent did not stop within 10 s of SIGTERM with CFSSL requests in flight")
    stop = time.time() - t0
    check(rc == 0, f"agent exit status {rc}")
    check(stop < 3.0, f"SIGTERM took {stop:.2f} s with CFSSL requests in flight")
    return stop


def hung_cfssl():
    """Requests CFSSL never answers: the loop keeps answering, SIGTERM abandons them."""
    t0 = time.time()
    agent = Agent("hang")
    up = time.time() - t0
    # The readiness probe (/info) is bounded by 2 s, not by the 30 s timeout.
    check(up < 10, f"the CSI sockets took {up:.1f} s to appear with CFSSL hanging")
    check(re.search(r'level=warn subsys=agent issuer=cfssl err=\S+ msg=.*info', agent.log_text()),
          "no warning that CFSSL did not answer /info")
    print(f"ok: with CFSSL hanging the agent is up in {up:.1f} s, and warns that /info failed")
    reqs = reqs_for(agent, "h", 3)
    with grpc.insecure_channel(f"unix://{agent.ep}") as ch:
        pub = ch.unary_unary("/csi.v1.Node/NodePublishVolume",
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=CSI.msg("csi.v1.NodePublishVolumeResponse").FromString)
        futures = [pub.future(r, timeout=60) for r in reqs]
        time.sleep(1.0)  # the requests are with CFSSL now, its timeout 30 s away
        check(not any(f.done() for f in futures), "a publish was answered by a silent CFSSL")
        took, took_csi = loop_answers(agent, "CFSSL hangs on 3 publishes")
        print(f"ok: while CFSSL hangs on 3 publishes, /healthz answers in {took * 1000:.0f} ms "
              f"and NodeGetCapabilities in {took_csi * 1000:.0f} ms")
        stop = sigterm_stops(agent)
        for f in futures:
            try:
                f.result(timeout=10)
                fail("a publish succeeded against a silent CFSSL")
            except grpc.RpcError:
                pass
    check(mounts_below(agent.pods()) == [], f"mounts left: {mounts_below(agent.pods())}")
    left = [r.target_path for r in reqs if os.path.exists(f"{r.target_path}/tls.key")]
    check(not left, f"keys left at {left}")
    check(agent.state_volumes() == [], f"volume folders left: {agent.state_volumes()}")
    print(f"ok: SIGTERM stopped the agent in {stop:.2f} s with 3 CFSSL requests in flight; "
          "no mount, key or folder left")


def renewal_hangs():
    """CFSSL hangs on the renewals: the loop keeps answering, an unpublish goes at once."""
    agent = Agent("renew")
    reqs = reqs_for(agent, "n", 2)
    codes = CSI.publish_many(agent.ep, reqs)
    check(codes == [grpc.StatusCode.OK] * 2, f"publishes: {codes}")
    before = [open(f"{r.target_path}/tls.crt").read() for r in reqs]
    with open(f"{T}/renew.mode", "w") as f:
        f.write("hang\n")
    # Renewals start at most 110 s after issuance (test_agent_csi_cfssl.sh), the
    # two within 22 s of each other (the jitter): the first still hangs then.
    deadline = time.time() + 150
    while len(set(re.findall(r'identity=(\S+) reason=renewal-time msg="issuing"',
                             agent.log_text()))) < 2:
        check(time.time() < deadline, "the volumes' renewals did not start within 150 s")
        time.sleep(0.2)
    time.sleep(1.0)  # both renewals are with CFSSL now, its timeout 30 s away
    took, took_csi = loop_answers(agent, "CFSSL hangs on 2 renewals")
    gone = reqs[1]
    t0 = time.time()
    code, det = CSI.unpublish(agent.ep, gone.volume_id, gone.target_path)
    took_unpub = time.time() - t0
    check(code == grpc.StatusCode.OK, f"unpublish during a renewal: {code} {det}")
    check(took_unpub < 1.0, f"unpublish took {took_unpub:.2f} s while its renewal hangs")
    check(mounts_below(gone.target_path) == [], "the unpublished volume is still mounted")
    check(len(agent.state_volumes()) == 1, f"volume folders: {agent.state_volumes()}")
    print(f"ok: while CFSSL hangs on 2 renewals, /healthz answers in {took * 1000:.0f} ms, "
          f"NodeGetCapabilities in {took_csi * 1000:.0f} ms, an unpublish in "
          f"{took_unpub * 1000:.0f} ms")
    stop = sigterm_stops(agent)
    kept = reqs[0].target_path
    check(open(f"{kept}/tls.crt").read() == before[0], "the kept volume's set changed")
    check_volume(kept, "dev.productA.dev")
    check(not os.path.exists(f"{gone.target_path}/tls.key"), "the unpublished volume's key is back")
    check(len(agent.state_volumes()) == 1, f"volume folders after stop: {agent.state_volumes()}")
    print(f"ok: SIGTERM stopped the agent in {stop:.2f} s with 2 renewals in flight; the "
          "kept volume's set is intact, nothing of the unpublished one is left")


def main():
    real_burst()
    hung_cfssl()
    renewal_hangs()


if __name__ == "__main__":
    main()
