# SPDX-License-Identifier: Apache-2.0
"""110 pods at once: the CSI publish path under kubelet's default maxPods burst.

Runs inside a private mount namespace (bench/csi-burst makes it). Starts the
agent, waits until its key pool is full (or stops growing), then sends N
concurrent NodePublishVolume calls over one channel, as kubelet does, and
reports when each identity was on disk (the call returned OK and tls.crt is
readable through the bind mount): p50, p99 and the last, from the first
call sent. Then unpublishes everything.

usage: csi_burst.py AGENT PROTOSET CONFIG WORKDIR STATUS_PORT N LABEL
"""
import concurrent.futures
import os
import re
import socket
import subprocess
import sys
import time

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../scripts/lib"))
from csi_client import Csi, kubelet_target  # noqa: E402

AGENT, PROTOSET, CONFIG, T, PORT, N, LABEL = sys.argv[1:8]
N = int(N)
REG = f"{T}/plugins_registry/duet.example.org-reg.sock"
EP = f"{T}/plugins/duet.example.org/csi.sock"

CSI = Csi(PROTOSET)
msg = CSI.msg


def metric(name):
    try:
        with socket.create_connection(("127.0.0.1", int(PORT)), timeout=2) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        m = re.search(rf"^{name} (\d+)", out.decode(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def cpu_ms(pid, tid=None):
    """utime + stime of the process (all threads) or of one thread, in ms."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return (int(fields[11]) + int(fields[12])) * 1000 // os.sysconf("SC_CLK_TCK")


def main():
    log = open(f"{T}/agent-{LABEL}.log", "ab")
    wrap = os.environ.get("DUET_BENCH_WRAP", "").split()
    agent = subprocess.Popen(wrap + [AGENT, "run", "--config", CONFIG], stdout=log, stderr=log)
    try:
        run(agent)
    finally:
        agent.terminate()
        agent.wait(timeout=30)


def run(agent):
    deadline = time.time() + 120
    while not os.path.exists(REG) or not os.path.exists(EP):
        if agent.poll() is not None or time.time() > deadline:
            sys.exit(f"agent did not start ({LABEL})")
        time.sleep(0.1)
    # Let the pool fill: stop when it holds what was asked or stops growing for 2 s.
    last, since = -1, time.time()
    while time.time() < deadline:
        ready = metric("duet_agent_keys_ready")
        if ready is None:
            break  # pool disabled
        if ready != last:
            last, since = ready, time.time()
        elif time.time() - since > 2:
            break
        time.sleep(0.2)
    reqs = [CSI.publish_req(f"v{i}", kubelet_target(f"{T}/pods", f"uid-{i}"), "duet-demo",
                            f"p{i}", f"uid-{i}", "client-a") for i in range(N)]
    ch = grpc.insecure_channel(f"unix://{EP}")
    pub = ch.unary_unary("/csi.v1.Node/NodePublishVolume", request_serializer=lambda m: m.SerializeToString(),
                         response_deserializer=msg("csi.v1.NodePublishVolumeResponse").FromString)
    unpub = ch.unary_unary("/csi.v1.Node/NodeUnpublishVolume",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=msg("csi.v1.NodeUnpublishVolumeResponse").FromString)
    grpc.channel_ready_future(ch).result(timeout=10)
    load = open("/proc/loadavg").read().split()[0]
    cpu0, loop0 = cpu_ms(agent.pid), cpu_ms(agent.pid, agent.pid)
    t0 = time.monotonic()

    def one(r):
        pub(r, timeout=120)
        with open(f"{r.target_path}/tls.crt") as f:
            assert "BEGIN CERTIFICATE" in f.read()
        return time.monotonic() - t0
    with concurrent.futures.ThreadPoolExecutor(max_workers=N) as ex:
        times = sorted(ex.map(one, reqs))
    cpu, loop = cpu_ms(agent.pid) - cpu0, cpu_ms(agent.pid, agent.pid) - loop0
    U = msg("csi.v1.NodeUnpublishVolumeRequest")
    for r in reqs:
        unpub(U(volume_id=r.volume_id, target_path=r.target_path), timeout=60)
    ch.close()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{LABEL}: pods={N} keys_ready_before={max(last, 0)} p50={p(0.5):.3f}s "
          f"p99={p(0.99):.3f}s last={times[-1]:.3f}s agent_cpu={cpu}ms loop_cpu={loop}ms "
          f"load={load}")


if __name__ == "__main__":
    main()
