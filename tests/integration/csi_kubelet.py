# SPDX-License-Identifier: Apache-2.0
"""Plays kubelet against a real duet-agent serving CSI (test_agent_csi.sh).

Runs inside a private mount namespace (unshare -m), as root: the agent's
tmpfs and bind mounts are real kernel operations, gone with the namespace.
The gRPC client is Debian's python3-grpcio; the messages come from the
descriptor set protoc-c wrote from agent/proto, so client and server speak
the very same .proto files. Every wait is bounded.

usage: csi_kubelet.py AGENT SIDECAR PROTOSET CONFIG WORKDIR STATUS_PORT
"""
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts/lib"))
from csi_client import Csi, kill_at_exit, kubelet_target, mounts_below  # noqa: E402
import ports  # noqa: E402

AGENT, SIDECAR, PROTOSET, CONFIG, T, STATUS_PORT = sys.argv[1:7]
DRIVER = "duet.example.org"
REG = f"{T}/plugins_registry/{DRIVER}-reg.sock"
PODS = f"{T}/pods"
STATE = f"{T}/state"

CSI = Csi(PROTOSET)
msg = CSI.msg
rpc = CSI.call
rpc_err = CSI.call_status
publish_req = CSI.publish_req
publish = CSI.publish
unpublish = CSI.unpublish


def fail(why):
    print(f"FAIL: {why}", file=sys.stderr)
    sys.exit(1)


def check(cond, why):
    if not cond:
        fail(why)


# ---- the agent ------------------------------------------------------------------

class Agent:
    def __init__(self):
        self.proc = None
        self.log = open(f"{T}/agent.log", "ab")

    def start(self, delay_ms=None):
        env = dict(os.environ, DUET_LOG_LEVEL="info")
        env.pop("DUET_TEST_CSI_ISSUE_DELAY_MS", None)
        if delay_ms:  # every issuance off the loop then takes that much longer
            env["DUET_TEST_CSI_ISSUE_DELAY_MS"] = str(delay_ms)
        self.proc = subprocess.Popen([AGENT, "run", "--config", CONFIG], stdout=self.log,
                                     stderr=self.log, env=env)
        kill_at_exit(self.proc)
        deadline = time.time() + 60
        while time.time() < deadline:
            check(self.proc.poll() is None, f"agent exited with {self.proc.returncode}")
            if os.path.exists(REG):
                try:
                    rpc(REG, "/pluginregistration.Registration/GetInfo",
                        msg("pluginregistration.InfoRequest")(), "pluginregistration.PluginInfo", 5)
                    return
                except grpc.RpcError:
                    pass
            time.sleep(0.1)
        fail("agent registration socket never answered")

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path:
                return True
    return False


def target_of(uid, vol="duet-identity"):
    return kubelet_target(PODS, uid, vol)


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)


def cert_serial(path):
    r = openssl("x509", "-in", path, "-noout", "-serial")
    return r.stdout.decode().strip() if r.returncode == 0 else None


def check_volume(target, cn, uri):
    check(mounted(target), f"{target} is not a mount point")
    for name in ("tls.key", "tls.crt", "ca.crt"):
        check(os.path.isfile(f"{target}/{name}"), f"{target}/{name} missing")
    try:
        open(f"{target}/intruder", "w")
        fail(f"{target} is writable")
    except OSError as e:
        check(e.errno == 30, f"writing into {target}: {e} (expected EROFS)")
    r = openssl("verify", "-CAfile", f"{target}/ca.crt", "-purpose", "sslclient", f"{target}/tls.crt")
    check(r.returncode == 0, f"openssl verify refused {target}/tls.crt: {r.stdout} {r.stderr}")
    text = openssl("x509", "-in", f"{target}/tls.crt", "-noout", "-subject", "-ext",
                   "subjectAltName").stdout.decode()
    check(f"CN = {cn}" in text, f"subject of {target}/tls.crt: {text}")
    check(f"URI:{uri}" in text and text.count("URI:") == 1, f"SAN of {target}/tls.crt: {text}")
    k = openssl("pkey", "-in", f"{target}/tls.key", "-pubout").stdout
    c = openssl("x509", "-in", f"{target}/tls.crt", "-noout", "-pubkey").stdout
    check(k and k == c, f"{target}: key does not match certificate")
    st = os.stat(f"{target}/tls.key")
    check(stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == 65532,
          f"tls.key mode {oct(st.st_mode)} gid {st.st_gid}, expected 0640 group 65532")
    return k


def wait_for(cond, seconds, why):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    fail(f"timed out after {seconds}s: {why}")


def status(path):
    with socket.create_connection(("127.0.0.1", int(STATUS_PORT)), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def state_volumes():
    return sorted(os.listdir(f"{STATE}/v")) if os.path.isdir(f"{STATE}/v") else []


# ---- the scenario ----------------------------------------------------------------

def registration():
    info = rpc(REG, "/pluginregistration.Registration/GetInfo",
               msg("pluginregistration.InfoRequest")(), "pluginregistration.PluginInfo")
    check(info.type == "CSIPlugin" and info.name == DRIVER, f"GetInfo: {info}")
    check(list(info.supported_versions) == ["1.0.0"], f"versions: {info.supported_versions}")
    check(stat.S_IMODE(os.stat(REG).st_mode) == 0o660, "registration socket not 0660")
    st = msg("pluginregistration.RegistrationStatus")(plugin_registered=True)
    rpc(REG, "/pluginregistration.Registration/NotifyRegistrationStatus", st,
        "pluginregistration.RegistrationStatusResponse")
    return info.endpoint


def identity_and_node(ep):
    pi = rpc(ep, "/csi.v1.Identity/GetPluginInfo", msg("csi.v1.GetPluginInfoRequest")(),
             "csi.v1.GetPluginInfoResponse")
    check(pi.name == DRIVER and pi.vendor_version, f"GetPluginInfo: {pi}")
    caps = rpc(ep, "/csi.v1.Identity/GetPluginCapabilities",
               msg("csi.v1.GetPluginCapabilitiesRequest")(), "csi.v1.GetPluginCapabilitiesResponse")
    check(len(caps.capabilities) == 0, f"a node-only plugin offers no controller: {caps}")
    pr = rpc(ep, "/csi.v1.Identity/Probe", msg("csi.v1.ProbeRequest")(), "csi.v1.ProbeResponse")
    check(pr.ready.value, "Probe: not ready")
    ni = rpc(ep, "/csi.v1.Node/NodeGetInfo", msg("csi.v1.NodeGetInfoRequest")(),
             "csi.v1.NodeGetInfoResponse")
    check(ni.node_id == "test-node", f"NodeGetInfo: {ni}")
    nc = rpc(ep, "/csi.v1.Node/NodeGetCapabilities", msg("csi.v1.NodeGetCapabilitiesRequest")(),
             "csi.v1.NodeGetCapabilitiesResponse")
    check([c.rpc.type for c in nc.capabilities] == [6], f"capabilities: {nc}")  # VOLUME_MOUNT_GROUP
    code, _ = rpc_err(ep, "/csi.v1.Node/NodeStageVolume", msg("csi.v1.NodeGetInfoRequest")(),
                      "csi.v1.NodeGetInfoResponse")
    check(code == grpc.StatusCode.UNIMPLEMENTED, f"NodeStageVolume answered {code}")
    print("ok: registration, Identity and Node info")


def refusals(ep):
    before = state_volumes()
    tc = target_of("uid-c1")
    code, det = publish(ep, publish_req("vol-c1", tc, "duet-demo", "client-c-1", "uid-c1", "client-c",
                                        "productA"))
    check(code == grpc.StatusCode.PERMISSION_DENIED, f"C asking for productA: {code} {det}")
    for word in ("client-c-1", "client-c", "productA"):
        check(word in det, f"refusal does not name {word}: {det}")
    check(not mounted(tc) and not os.path.exists(tc), "C's refused target exists or is mounted")
    check(state_volumes() == before, "a refused publish left a volume folder")
    # B's ServiceAccount asking for A's product, in A's namespace.
    code, det = publish(ep, publish_req("vol-b9", target_of("uid-b9"), "duet-demo", "b9", "uid-b9",
                                        "client-b", "productA"))
    check(code == grpc.StatusCode.PERMISSION_DENIED, f"client-b asking for productA: {code}")
    # client-a in another namespace is another ServiceAccount.
    code, det = publish(ep, publish_req("vol-x", target_of("uid-x"), "other", "a", "uid-x",
                                        "client-a", "productA"))
    check(code == grpc.StatusCode.PERMISSION_DENIED, f"other/client-a: {code}")
    code, det = publish(ep, publish_req("vol-np", target_of("uid-np"), "duet-demo", "a", "uid-np",
                                        "client-a", podinfo=False))
    check(code == grpc.StatusCode.PERMISSION_DENIED and "podInfoOnMount" in det,
          f"no pod information: {code} {det}")
    code, det = publish(ep, publish_req("vol-tr", f"{T}/elsewhere/mount", "duet-demo", "a",
                                        "uid-tr", "client-a"))
    check(code == grpc.StatusCode.INVALID_ARGUMENT, f"target outside the pod's folder: {code}")
    check(state_volumes() == before, "refused publishes left volume folders")
    print("ok: C refused (PERMISSION_DENIED naming pod, ServiceAccount, product); nothing written")


def main():
    agent = Agent()
    agent.start()
    ep = registration()
    identity_and_node(ep)
    refusals(ep)

    ta1, ta2 = target_of("uid-a1"), target_of("uid-a2")
    req_a1 = publish_req("vol-a1", ta1, "duet-demo", "client-a-1", "uid-a1", "client-a")
    code, det = publish(ep, req_a1)
    check(code == grpc.StatusCode.OK, f"publish for client-a: {code} {det}")
    k1 = check_volume(ta1, "dev.productA.dev", "spiffe://example.org/ns/duet-demo/sa/client-a")
    code, det = publish(ep, publish_req("vol-a2", ta2, "duet-demo", "client-a-2", "uid-a2",
                                        "client-a", "productA"))
    check(code == grpc.StatusCode.OK, f"second pod of client-a: {code} {det}")
    k2 = check_volume(ta2, "dev.productA.dev", "spiffe://example.org/ns/duet-demo/sa/client-a")
    check(k1 != k2, "two pods got the same key")
    print("ok: A's pods each got their own key, read-only, verified by openssl")

    # A kubelet restart: the plugin is registered again and every live pod's
    # volume published again with the same arguments; nothing is reissued.
    registration()
    code, _ = publish(ep, req_a1)
    check(code == grpc.StatusCode.OK, f"the same publish twice: {code}")
    code, _ = publish(ep, publish_req("vol-a2", ta2, "duet-demo", "client-a-2", "uid-a2",
                                      "client-a", "productA"))
    check(code == grpc.StatusCode.OK, f"republish of vol-a2: {code}")
    created = re.findall(r'subsys=csi volume=vol-a[12] .*msg="published"',
                         open(f"{T}/agent.log").read())
    check(len(created) == 2, f"volumes created {len(created)} times, expected once each")
    other = publish_req("vol-a1", target_of("uid-a1", "other"), "duet-demo", "client-a-1",
                        "uid-a1", "client-a")
    code, _ = publish(ep, other)
    check(code == grpc.StatusCode.ALREADY_EXISTS, f"same volume, other target: {code}")
    code, _ = unpublish(ep, "vol-unknown", target_of("uid-zz"))
    check(code == grpc.StatusCode.OK, f"unknown unpublish: {code}")
    print("ok: publish idempotent, ALREADY_EXISTS for other arguments, unknown unpublish OK")

    # Rotation, seen through the bind mount (renew_before leaves ~10 s of each 60 s lifetime).
    s0 = cert_serial(f"{ta1}/tls.crt")
    wait_for(lambda: cert_serial(f"{ta1}/tls.crt") not in (None, s0), 40, "rotation of vol-a1")
    check_volume(ta1, "dev.productA.dev", "spiffe://example.org/ns/duet-demo/sa/client-a")
    print("ok: rotation seen through the read-only bind mount")

    # Restart: a1 stays and keeps rotating; a2's pod goes away while the agent is down.
    agent.kill()
    subprocess.run(["umount", ta2], check=True)
    os.rmdir(ta2)
    agent.start()
    registration()
    check(mounted(ta1), "vol-a1 lost its mount across the restart")
    check(len(state_volumes()) == 1, f"after restart, volumes on tmpfs: {state_volumes()}")
    s1 = cert_serial(f"{ta1}/tls.crt")
    wait_for(lambda: cert_serial(f"{ta1}/tls.crt") not in (None, s1), 40,
             "rotation of vol-a1 after the agent restarted")
    print("ok: a restarted agent keeps rotating its volumes and drops those gone")

    sidecar_flow(ep)

    code, det = unpublish(ep, "vol-a1", ta1)
    check(code == grpc.StatusCode.OK, f"unpublish vol-a1: {code} {det}")
    check(not mounted(ta1) and not os.path.exists(ta1), "vol-a1 still mounted or present")
    check(state_volumes() == [], f"volume folders left: {state_volumes()}")
    print("ok: unpublish leaves no mount, no key, no folder")

    config_reload(ep)
    cycles(agent, ep)
    refusals(ep)  # counted by this process (the counters restarted with it)
    m = status("/metrics")
    check(re.search(r'duet_agent_csi_publish_total\{code="PERMISSION_DENIED"\} [1-9]', m),
          "metrics lack the refused publishes")
    check("pod.uid" not in m and "uid-" not in m, "metrics carry per-pod series")
    burst(ep)
    agent.kill(signal.SIGTERM)
    check(agent.proc.returncode == 0, f"agent exit status {agent.proc.returncode}")
    check(not os.path.exists(REG), "registration socket left after a clean stop")
    print("ok: clean stop removes the registration socket")
    in_flight(agent)


def published_count(vid):
    return len(re.findall(rf'subsys=csi volume={vid} .*msg="published"',
                          open(f"{T}/agent.log").read()))


def in_background(fn, *args):
    """Run fn(*args) on a thread; the returned function joins it and gives its result."""
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", fn(*args)), daemon=True)
    th.start()

    def join(timeout=60):
        th.join(timeout)
        check(not th.is_alive(), f"{fn.__name__} did not return within {timeout}s")
        return out["r"]
    return join


def burst(ep):
    """24 pods at once over one channel, as kubelet: each its own key, all gone after."""
    reqs = [publish_req(f"vol-burst{i}", target_of(f"uid-burst{i}"), "duet-demo", f"b-{i}",
                        f"uid-burst{i}", "client-b") for i in range(24)]
    codes = CSI.publish_many(ep, reqs)
    check(codes == [grpc.StatusCode.OK] * len(reqs), f"burst publishes: {codes}")
    keys = set()
    for r in reqs:
        keys.add(check_volume(r.target_path, "dev.productB.dev",
                              "spiffe://example.org/ns/duet-demo/sa/client-b"))
    check(len(keys) == len(reqs), f"{len(reqs)} pods got {len(keys)} distinct keys")
    for r in reqs:
        code, det = unpublish(ep, r.volume_id, r.target_path)
        check(code == grpc.StatusCode.OK, f"unpublish {r.volume_id}: {code} {det}")
    check(mounts_below(PODS) == [] and state_volumes() == [], "the burst left mounts or folders")
    print(f"ok: {len(reqs)} concurrent publishes, {len(keys)} keys, nothing left after unpublish")


def start_pending(ep, name):
    """A publish of vol-NAME for pod NAME (client-b), left half a second into its issuance."""
    t = target_of(f"uid-{name}")
    req = publish_req(f"vol-{name}", t, "duet-demo", name, f"uid-{name}", "client-b")
    join = in_background(publish, ep, req)
    time.sleep(0.5)
    return t, req, join


def in_flight(agent):
    """Calls that arrive while a volume's certificate is being made off the loop (each
    issuance held 2 s longer by DUET_TEST_CSI_ISSUE_DELAY_MS): a duplicate publish waits for
    the same answer, an unpublish cancels it, SIGTERM and SIGKILL leave nothing behind."""
    delay = 2.0
    agent.start(delay_ms=int(delay * 1000))
    ep = registration()

    # The same publish twice while the first is being issued: one issuance, two OKs.
    t, req, first = start_pending(ep, "dup")
    second = in_background(publish, ep, req)
    time.sleep(0.2)
    t0 = time.monotonic()
    code, det = publish(ep, publish_req("vol-dup", target_of("uid-dup", "other"), "duet-demo",
                                        "dup", "uid-dup", "client-b"))
    check(code == grpc.StatusCode.ALREADY_EXISTS, f"other arguments during issuance: {code} {det}")
    check(time.monotonic() - t0 < delay / 2, "ALREADY_EXISTS waited for the issuance")
    code, det = publish(ep, publish_req("vol-dup2", target_of("uid-dup2"), "duet-demo", "dup2",
                                        "uid-dup2", "client-c", "productA"))
    check(code == grpc.StatusCode.PERMISSION_DENIED, f"default deny during issuance: {code}")
    check(first() == (grpc.StatusCode.OK, "") and second() == (grpc.StatusCode.OK, ""),
          "a publish and its duplicate during issuance did not both succeed")
    check(published_count("vol-dup") == 1,
          f"vol-dup issued {published_count('vol-dup')} times, expected once")
    check_volume(t, "dev.productB.dev", "spiffe://example.org/ns/duet-demo/sa/client-b")
    code, _ = unpublish(ep, "vol-dup", t)
    check(code == grpc.StatusCode.OK, "unpublish vol-dup")
    print("ok: a duplicate publish during issuance waits for the same answer, issued once")

    # Unpublish while the certificate is being made: the publish is aborted, nothing written.
    t, req, pending = start_pending(ep, "gone")
    t0 = time.monotonic()
    code, det = unpublish(ep, "vol-gone", t)
    check(code == grpc.StatusCode.OK, f"unpublish during issuance: {code} {det}")
    check(time.monotonic() - t0 < delay / 2, "the unpublish waited for the issuance")
    code, det = pending()
    check(code == grpc.StatusCode.ABORTED, f"the publish unpublished meanwhile answered {code}")
    time.sleep(delay)  # the job comes back and is dropped
    check(not mounted(t) and not os.path.exists(t), "vol-gone's target mounted or present")
    check(state_volumes() == [], f"vol-gone left folders: {state_volumes()}")
    check(published_count("vol-gone") == 0, "vol-gone was published after its unpublish")
    code, det = publish(ep, req)  # kubelet's next attempt: a fresh issuance
    check(code == grpc.StatusCode.OK, f"publish after the cancelled one: {code} {det}")
    code, _ = unpublish(ep, "vol-gone", t)
    check(code == grpc.StatusCode.OK and state_volumes() == [], "unpublish vol-gone")
    print("ok: an unpublish during issuance cancels it: ABORTED, no key, no mount, no folder")

    # A configuration reload while issuing: that certificate was made under the old one.
    import json
    t, req, pending = start_pending(ep, "reload")
    cfg = json.load(open(CONFIG))
    cfg["csi"]["bindings"].append({"namespace": "other", "service_account": "client-b",
                                   "products": ["productB"]})
    with open(CONFIG + ".new", "w") as f:
        json.dump(cfg, f)
    os.rename(CONFIG + ".new", CONFIG)
    code, det = pending()
    check(code == grpc.StatusCode.UNAVAILABLE and "configuration changed" in det,
          f"a publish across a reload answered {code} {det}")
    check(not mounted(t) and state_volumes() == [], "the reload left a mount or folder")
    code, det = publish(ep, req)
    check(code == grpc.StatusCode.OK, f"kubelet's retry after the reload: {code} {det}")
    code, _ = unpublish(ep, "vol-reload", t)
    check(code == grpc.StatusCode.OK and state_volumes() == [], "unpublish vol-reload")
    print("ok: a reload during issuance answers UNAVAILABLE; the retry is issued anew")

    # SIGTERM with calls in flight: a clean exit, nothing half-written.
    t, _, pending = start_pending(ep, "term")
    agent.kill(signal.SIGTERM)
    check(agent.proc.returncode == 0, f"agent exit status {agent.proc.returncode} (SIGTERM)")
    code, _ = pending()
    check(code != grpc.StatusCode.OK, "a publish in flight at SIGTERM answered OK")
    check(not mounted(t) and state_volumes() == [], "SIGTERM mid-issuance left a mount or folder")
    print(f"ok: SIGTERM with a publish in flight: exit 0, the call got {code.name}, nothing left")

    # SIGKILL mid-issuance: nothing torn; the restarted agent serves the retry.
    agent.start(delay_ms=int(delay * 1000))
    ep = registration()
    t, req, pending = start_pending(ep, "kill")
    agent.kill()
    pending()
    check(not mounted(t) and state_volumes() == [], "SIGKILL mid-issuance left a mount or folder")
    agent.start()
    ep = registration()
    check(state_volumes() == [], f"after the restart: {state_volumes()}")
    code, det = publish(ep, req)
    check(code == grpc.StatusCode.OK, f"kubelet's retry after the kill: {code} {det}")
    check_volume(t, "dev.productB.dev", "spiffe://example.org/ns/duet-demo/sa/client-b")
    code, _ = unpublish(ep, "vol-kill", t)
    check(code == grpc.StatusCode.OK and state_volumes() == [], "unpublish vol-kill")
    agent.kill(signal.SIGTERM)
    check(agent.proc.returncode == 0, f"agent exit status {agent.proc.returncode}")
    print("ok: SIGKILL mid-issuance leaves nothing; the restarted agent serves the retry")


def lifetime(path):
    r = openssl("x509", "-in", path, "-noout", "-startdate", "-enddate")
    if r.returncode != 0:
        return 0
    d = dict(l.split("=", 1) for l in r.stdout.decode().splitlines())
    t = lambda v: time.mktime(time.strptime(" ".join(v.split()), "%b %d %H:%M:%S %Y GMT"))
    return t(d["notAfter"]) - t(d["notBefore"])


def config_reload(ep):
    """A new configuration file (as a ConfigMap update swaps it) applies without SIGHUP:
    a new binding, and a changed product that live volumes are re-issued for."""
    import json
    ta3 = target_of("uid-a3")
    code, det = publish(ep, publish_req("vol-a3", ta3, "duet-demo", "client-a-3", "uid-a3",
                                        "client-a"))
    check(code == grpc.StatusCode.OK, f"publish vol-a3: {code} {det}")
    check(lifetime(f"{ta3}/tls.crt") < 80, "vol-a3 does not have a 60 s certificate")
    cfg = json.load(open(CONFIG))
    cfg["identities"][0]["validity"] = "90s"  # productA
    cfg["csi"]["bindings"].append({"namespace": "duet-demo", "service_account": "client-c",
                                   "products": ["productB"]})
    with open(CONFIG + ".new", "w") as f:
        json.dump(cfg, f)
    os.rename(CONFIG + ".new", CONFIG)
    t = target_of("uid-c2")
    req = publish_req("vol-c2", t, "duet-demo", "client-c-2", "uid-c2", "client-c", "productB")
    wait_for(lambda: publish(ep, req)[0] == grpc.StatusCode.OK, 20,
             "the new binding after the configuration file changed")
    code, _ = unpublish(ep, "vol-c2", t)
    check(code == grpc.StatusCode.OK, "unpublish vol-c2")
    code, _ = publish(ep, publish_req("vol-c3", target_of("uid-c3"), "duet-demo", "client-c-3",
                                      "uid-c3", "client-c", "productA"))
    check(code == grpc.StatusCode.PERMISSION_DENIED, f"client-c asking productA after reload: {code}")
    wait_for(lambda: lifetime(f"{ta3}/tls.crt") > 80, 20,
             "vol-a3 re-issued with the new validity of productA")
    code, _ = unpublish(ep, "vol-a3", ta3)
    check(code == grpc.StatusCode.OK, "unpublish vol-a3")
    print("ok: a changed configuration file is reloaded without SIGHUP")


def cycles(agent, ep):
    """200 publish/unpublish cycles leave no mount, fd or tmpfs byte behind."""
    def used():
        st = os.statvfs(STATE)
        return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_files - st.f_ffree
    fd0, used0 = agent.fds(), used()
    for i in range(200):
        t = target_of(f"uid-cyc{i}")
        code, det = publish(ep, publish_req(f"vol-cyc{i}", t, "duet-demo", f"client-b-{i}",
                                            f"uid-cyc{i}", "client-b"))
        check(code == grpc.StatusCode.OK, f"cycle {i}: publish {code} {det}")
        code, det = unpublish(ep, f"vol-cyc{i}", t)
        check(code == grpc.StatusCode.OK, f"cycle {i}: unpublish {code} {det}")
    check(mounts_below(PODS) == [], f"mounts left: {mounts_below(PODS)}")
    check(state_volumes() == [], "volume folders left after the cycles")
    # Each call is a connection the agent closes when it reads the client's
    # end: on a loaded machine the last one may still be open for a moment.
    # A leak stays; a closing connection does not.
    deadline = time.time() + 5
    while agent.fds() > fd0 and time.time() < deadline:
        time.sleep(0.1)
    fd1, used1 = agent.fds(), used()
    check(fd1 <= fd0, f"agent fds {fd0} -> {fd1} (5 s after the last cycle)")
    check(used1 == used0, f"tmpfs bytes/inodes {used0} -> {used1}")
    print(f"ok: 200 publish/unpublish cycles: fds {fd0}->{fd1}, tmpfs {used0}->{used1}")


def sidecar_flow(ep):
    """A's sidecar, on its CSI volume, reaches a resource guarded by an inbound sidecar."""
    tr = target_of("uid-r1")
    code, det = publish(ep, publish_req("vol-r1", tr, "duet-demo", "resource-1", "uid-r1",
                                        "resource"))
    check(code == grpc.StatusCode.OK, f"publish for resource: {code} {det}")
    backend, inbound, outbound = (ports.reserve_until_exit() for _ in range(3))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", backend))
    srv.listen(8)

    def echo():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                data = c.recv(65536)
                c.sendall(b"echo:" + data)
    threading.Thread(target=echo, daemon=True).start()
    log = open(f"{T}/sidecars.log", "ab")
    inb = subprocess.Popen([SIDECAR, "--certs", tr, "--inbound",
                            f"127.0.0.1:{inbound}=127.0.0.1:{backend},allow-cn=dev.productA.dev"],
                           stdout=log, stderr=log)
    out = subprocess.Popen([SIDECAR, "--certs", target_of("uid-a1"), "--outbound",
                            f"127.0.0.1:{outbound}=127.0.0.1:{inbound},sni=resource"],
                           stdout=log, stderr=log)
    try:
        def through():
            try:
                with socket.create_connection(("127.0.0.1", outbound), timeout=5) as c:
                    c.sendall(b"hello from A")
                    return c.recv(100) == b"echo:hello from A"
            except OSError:
                return False
        wait_for(through, 20, "A's request through both sidecars")
        print("ok: A's sidecar on its CSI volume got through the inbound sidecar")
    finally:
        for p in (inb, out):
            p.terminate()
            p.wait(timeout=30)
        srv.close()
    code, _ = unpublish(ep, "vol-r1", tr)
    check(code == grpc.StatusCode.OK, "unpublish vol-r1")


if __name__ == "__main__":
    main()
