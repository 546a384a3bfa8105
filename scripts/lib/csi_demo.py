# SPDX-License-Identifier: Apache-2.0
"""scripts/demo's Kubernetes part: pod-bound identities through CSI.

Runs inside a private mount namespace (the demo makes it with unshare -m):
starts a second duet-agent as a CSI node plugin and plays kubelet for three
pods. client-a's pod gets productA with a key of its own on a read-only
mount; client-c's pod asking for productA's identity is refused with
PERMISSION_DENIED, as kubelet would show in its FailedMount event.
Prints the demo's "ok"/"FAIL" lines; exits non-zero when a check failed.

usage: csi_demo.py AGENT PROTOSET CONFIG WORKDIR
"""
import os
import stat
import subprocess
import sys
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from csi_client import Csi, kubelet_target  # noqa: E402

AGENT, PROTOSET, CONFIG, W = sys.argv[1:5]
EP = f"{W}/plugins/duet.example.org/csi.sock"
PODS = f"{W}/pods"
failures = 0


def ok(s):
    print(f"   \033[32mok\033[0m    {s}")


def bad(s):
    global failures
    failures += 1
    print(f"   \033[31mFAIL\033[0m  {s}")


def info(s):
    print(f"         {s}")


def main():
    csi = Csi(PROTOSET)
    log = open(f"{W}/agent-csi.log", "ab")
    agent = subprocess.Popen([AGENT, "run", "--config", CONFIG], stdout=log, stderr=log)
    try:
        for _ in range(200):
            if os.path.exists(EP) or agent.poll() is not None:
                break
            time.sleep(0.05)
        pods = [("a-1", "client-a", "productA"), ("a-2", "client-a", "productA"),
                ("c-1", "client-c", "productA")]
        keys = {}
        for pod, sa, product in pods:
            t = kubelet_target(PODS, f"uid-{pod}")
            code, why = csi.publish(EP, csi.publish_req(f"vol-{pod}", t, "duet-demo", pod,
                                                        f"uid-{pod}", sa, product))
            if sa == "client-c":
                if code == grpc.StatusCode.PERMISSION_DENIED:
                    ok(f"pod {pod} (ServiceAccount {sa}) asking for {product}: {code.name}")
                    info(f"its FailedMount event would say: {why}")
                else:
                    bad(f"pod {pod} (ServiceAccount {sa}) asking for {product}: {code.name}")
                continue
            if code != grpc.StatusCode.OK:
                bad(f"pod {pod} (ServiceAccount {sa}): {code.name} {why}")
                continue
            mode = stat.S_IMODE(os.stat(f"{t}/tls.key").st_mode)
            san = subprocess.run(["openssl", "x509", "-in", f"{t}/tls.crt", "-noout", "-ext",
                                  "subjectAltName"], capture_output=True, text=True).stdout
            uri = [w for w in san.split() if w.startswith("URI:")]
            with open(f"{t}/tls.key", "rb") as f:
                keys[pod] = f.read()
            ro = os.statvfs(t).f_flag & os.ST_RDONLY
            ok(f"pod {pod} (ServiceAccount {sa}) got {product}: tls.key {oct(mode)}, "
               f"{'read-only mount' if ro else 'WRITABLE mount'}, {uri[0] if uri else 'no URI'}")
            if not ro:
                bad(f"pod {pod}'s volume is writable")
        if len(keys) == 2:
            if keys["a-1"] != keys["a-2"]:
                ok("the two pods of client-a hold different keys")
            else:
                bad("the two pods of client-a share a key")
        for pod, _, _ in pods:
            csi.unpublish(EP, f"vol-{pod}", kubelet_target(PODS, f"uid-{pod}"))
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
