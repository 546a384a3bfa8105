# SPDX-License-Identifier: Apache-2.0
"""scripts/soak's scenarios: real agent and sidecar processes on loopback,
faults injected for minutes, one table of what was tried and what happened.

usage: soak.py AGENT SIDECAR VOL_READER WORKDIR SCALE
SCALE 1.0 is the full run (about 30 minutes); scripts/soak --quick passes
about 0.1. Every loop is bounded in time and count; only processes started
here are killed, by PID; every address is 127.0.0.1.
"""
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

AGENT, SIDECAR, READER, W, SCALE = sys.argv[1:6]
SCALE = float(SCALE)
ROWS = []
FAILED = []
PROCS = []


def row(what, tried, result, ok):
    ROWS.append((what, tried, result, "ok" if ok else "FAILED"))
    if not ok:
        FAILED.append(what)
    print(f"  {'ok' if ok else 'FAILED'}: {what}: {tried}: {result}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(name, argv, **kw):
    log = open(f"{W}/{name}.log", "ab")
    p = subprocess.Popen(argv, stdout=log, stderr=log, **kw)
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(cond, secs, step=0.05):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def sh(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def make_ca(d):
    os.makedirs(d, exist_ok=True)
    sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-out", f"{d}/ca.key")
    sh("openssl", "req", "-x509", "-new", "-key", f"{d}/ca.key", "-sha256", "-days", "3650",
       "-subj", "/O=Example, Inc./CN=Soak Root", "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", f"{d}/ca.crt")


def agent_config(path, out, ca, identities, validity="365d", renew_before=None, status=None,
                 ou="soak"):
    c = {"env": "dev", "trust_domain": "example.org", "output_dir": out,
         "subject": {"O": "Example, Inc.", "OU": ou}, "key_type": "ec-p256",
         "validity": validity,
         "issuer": {"type": "local", "ca_cert": f"{ca}/ca.crt", "ca_key": f"{ca}/ca.key"},
         "identities": identities}
    if renew_before:
        c["renew_before"] = renew_before
    if status:
        c["status_listen"] = f"127.0.0.1:{status}"
    with open(path + ".tmp", "w") as f:
        json.dump(c, f)
    os.rename(path + ".tmp", path)


def serial(path):
    r = sh("openssl", "x509", "-in", path, "-noout", "-serial")
    return r.stdout.strip() if r.returncode == 0 else None


def get(port, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as r:
        return r.status


def nginx(port, root, keepalive_requests=100000):
    os.makedirs(root, exist_ok=True)
    with open(f"{root}/index.html", "w") as f:
        f.write("soak backend " + "x" * 100 + "\n")
    conf = f"{W}/nginx-{port}.conf"
    with open(conf, "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1; pid {W}/nginx-{port}.pid;
error_log {W}/nginx-{port}.err warn;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {root};
        keepalive_requests {keepalive_requests}; }} }}
""")
    p = start(f"nginx-{port}", ["nginx", "-c", conf, "-p", W])
    wait_for(lambda: get_ok(port), 10)
    return p


def get_ok(port):
    try:
        return get(port, 2) == 200
    except OSError:
        return False


def wrk(port, secs, conns=8):
    r = sh("wrk", "-t1", f"-c{conns}", f"-d{int(secs)}s", "--latency", "--timeout", "5s",
           f"http://127.0.0.1:{port}/")
    out = r.stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1)) if "requests in" in out else 0
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errs += int(m.group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = None
    if m:
        p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return reqs, errs, p99, out


def metric(port, name):
    """The sum of a sidecar or agent counter over its labels, or None."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    return sum(int(l.split()[-1]) for l in text.splitlines() if l.startswith(name + "{"))


class Pool:
    """Keep-alive clients as a connection pool uses them: a request, a pause
    of 0-600 ms, the next request on the same connection. Before reusing a
    connection it checks whether the server closed it meanwhile, and it
    retries a request once when a reused connection dies before the first
    byte of the answer (what urllib3, Go's net/http and curl do). A failure
    is a request that still got no answer."""

    def __init__(self, port, conns, secs, seed):
        self.port, self.secs = port, secs
        self.requests = self.failures = self.retries = self.reconnects = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(random.Random(seed + i),))
                        for i in range(conns)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join()

    def count(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def ask(self, s):
        """One GET; True with the whole answer, False if nothing came back, else raises."""
        s.sendall(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                if got:
                    raise OSError("closed mid-answer")
                return False
            got += b
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"Content-Length: (\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    return head.startswith(b"HTTP/1.1 200")

    def run(self, rng):
        end = time.monotonic() + self.secs
        s = None
        while time.monotonic() < end:
            reused = s is not None
            if s is not None and select.select([s], [], [], 0)[0]:
                s.close()  # closed by the server while idle: a pool drops it
                s, reused = None, False
                self.count(reconnects=1)
            try:
                if s is None:
                    s = self.connect()
                ok = self.ask(s)
                if not ok and reused:
                    self.count(retries=1)
                    s.close()
                    s = self.connect()
                    ok = self.ask(s)
            except OSError:
                ok = False
            self.count(requests=1, failures=0 if ok else 1)
            if not ok and s is not None:
                s.close()
                s = None
            time.sleep(rng.uniform(0, 0.6))
        if s is not None:
            s.close()


# ---- rows -------------------------------------------------------------------------

def rotation_under_load(ca):
    """>= 100 rotations of an outbound and an inbound identity while wrk runs through both."""
    out = f"{W}/rot"
    cfg = f"{W}/rot.json"
    ids = [{"product": "productA"}, {"product": "resource", "server": True, "dns": ["localhost"],
                                     "ip": ["127.0.0.1"]},
           {"product": "productB"}, {"product": "productC"}]
    # 60-second certificates renewed 45-55 s early: each identity rotates every ~10 s.
    agent_config(cfg, out, ca, ids, validity="60s", renew_before="50s")
    agent = start("rot-agent", [AGENT, "run", "--config", cfg])
    a, r = f"{out}/dev/productA", f"{out}/dev/resource"
    wait_for(lambda: serial(f"{a}/tls.crt") and serial(f"{r}/tls.crt"), 30)
    back, inb, outb, ist, ost = (free_port() for _ in range(5))
    # nginx's own default: a keep-alive connection ends after 1000 requests,
    # with "Connection: close", which wrk follows without an error.
    ng = nginx(back, f"{W}/www", keepalive_requests=1000)
    si = start("rot-inbound", [SIDECAR, "--certs", r, "--status", f"127.0.0.1:{ist}", "--inbound",
                               f"127.0.0.1:{inb}=127.0.0.1:{back},allow-cn=dev.productA.dev"])
    so = start("rot-outbound", [SIDECAR, "--certs", a, "--status", f"127.0.0.1:{ost}",
                                "--outbound", f"127.0.0.1:{outb}=127.0.0.1:{inb},sni=localhost"])
    wait_for(lambda: get_ok(outb), 20)
    # Without rotations: the agent paused, then with it running.
    agent.send_signal(signal.SIGSTOP)
    base_reqs, base_errs, base_p99, _ = wrk(outb, max(5, 20 * SCALE))
    agent.send_signal(signal.SIGCONT)
    log = f"{W}/rot-agent.log"
    before = open(log).read().count('msg="published"')
    secs = max(60, 600 * SCALE)
    # Beside wrk, pooled keep-alive clients whose connections outlive their
    # 60-second certificates: each is closed past its soft deadline.
    pool = Pool(outb, 4, secs, 7)
    pool.start()
    reqs, errs, p99, text = wrk(outb, secs)
    pool.join()
    print("\n".join(l for l in text.splitlines() if "error" in l.lower() or "Non-2xx" in l),
          flush=True)
    txt = open(log).read()
    rotations = len(re.findall(r'identity=dev/(productA|resource) .*msg="published"', txt)) - 2
    total_pub = txt.count('msg="published"') - before
    retired = (metric(ost, "duet_sidecar_connections_retired_total") or 0) + \
        (metric(ist, "duet_sidecar_connections_retired_total") or 0)
    cut = (metric(ost, "duet_sidecar_connections_cut_total") or 0) + \
        (metric(ist, "duet_sidecar_connections_cut_total") or 0)
    for p in (so, si, ng, agent):
        stop(p)
    want = 100 if SCALE >= 1 else 10
    row("rotation under load", f"{rotations} rotations of the outbound and inbound identities "
        f"({total_pub} publishes, 4 identities overlapping) in {secs:.0f} s of wrk -c8 "
        f"(nginx keepalive_requests 1000) plus 4 pooled keep-alive clients",
        f"wrk: {reqs} requests, {errs} failed; p99 {p99} ms during rotations vs {base_p99} ms "
        f"without ({base_reqs} requests, {base_errs} failed). Pool: {pool.requests} requests, "
        f"{pool.failures} failed, {pool.retries} retried on a reused connection, "
        f"{pool.reconnects} reconnects after an idle close; sidecars closed {retired} "
        f"connections at rest and cut {cut} busy ones at notAfter",
        errs == 0 and base_errs == 0 and pool.failures == 0 and pool.requests > 0
        and rotations >= want)


def crash_during_publication(ca):
    """SIGKILL the agent at random moments while it re-issues; a reader checks every set."""
    out = f"{W}/crash"
    cfg = f"{W}/crash.json"
    ids = [{"product": "productA"}]
    agent_config(cfg, out, ca, ids, ou="a")
    first = start("crash-agent-0", [AGENT, "run", "--config", cfg])
    d = f"{out}/dev/productA"
    wait_for(lambda: serial(f"{d}/tls.crt"), 30)
    stop(first, signal.SIGKILL)
    kills = int(max(100, 1000 * SCALE))
    reader = subprocess.Popen([READER, d, str(int(kills * 0.5 + 60))], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    PROCS.append(reader)
    rng = random.Random(42)
    for i in range(kills):
        # A changed subject makes every start re-issue (the set on disk no longer fits).
        agent_config(cfg, out, ca, ids, ou="a" if i % 2 else "b")
        p = subprocess.Popen([AGENT, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.12))
        p.kill()
        p.wait()
    # Recovery: a normal start with the last configuration gets a fitting set.
    agent_config(cfg, out, ca, ids, ou="final")
    t0 = time.monotonic()
    p = start("crash-agent-final", [AGENT, "run", "--config", cfg])
    ok_final = wait_for(lambda: "OU = final" in sh("openssl", "x509", "-in", f"{d}/tls.crt",
                                                   "-noout", "-subject").stdout, 30)
    recovery = time.monotonic() - t0
    stop(p)
    reader.send_signal(signal.SIGTERM)
    rout = reader.communicate(timeout=30)[0]
    print(rout.strip()[:300], flush=True)
    m = re.search(r"reads=(\d+) versions=(\d+) bad=(\d+)", rout)
    reads, versions, bad = (int(x) for x in m.groups()) if m else (0, 0, -1)
    row("crash during publication", f"{kills} SIGKILLs of the agent at random moments "
        f"(0-120 ms after start) while it re-issues",
        f"{bad} torn or mismatched sets in {reads} concurrent reads of {versions} versions; "
        f"recovered in {recovery:.2f} s", bad == 0 and reads > 0 and ok_final)


def sidecar_restarts(ca):
    """Kill -9 and restart the outbound sidecar while a client retries."""
    out = f"{W}/restart"
    cfg = f"{W}/restart.json"
    agent_config(cfg, out, ca, [{"product": "productA"},
                                {"product": "resource", "server": True, "ip": ["127.0.0.1"]}])
    agent = start("restart-agent", [AGENT, "run", "--config", cfg])
    a, r = f"{out}/dev/productA", f"{out}/dev/resource"
    wait_for(lambda: serial(f"{a}/tls.crt") and serial(f"{r}/tls.crt"), 30)
    stop(agent)  # the files must not change below, whoever writes

    def snapshot():
        s = {}
        for root in (a, r):
            for dp, dn, fn in os.walk(root):
                for n in fn + dn:
                    st = os.lstat(os.path.join(dp, n))
                    s[os.path.join(dp, n)] = (st.st_mtime_ns, st.st_size, st.st_mode, st.st_ino)
        return s
    snap = snapshot()
    back, inb, outb = free_port(), free_port(), free_port()
    ng = nginx(back, f"{W}/www2")
    si = start("restart-inbound", [SIDECAR, "--certs", r, "--inbound",
                                   f"127.0.0.1:{inb}=127.0.0.1:{back}"])
    n = int(max(20, 100 * SCALE))
    times, stale = [], 0
    for i in range(n):
        so = start("restart-outbound", [SIDECAR, "--certs", a, "--outbound",
                                        f"127.0.0.1:{outb}=127.0.0.1:{inb}"])
        t0 = time.monotonic()
        if not wait_for(lambda: get_ok(outb), 10, 0.01):
            stale += 1
        times.append(time.monotonic() - t0)
        so.kill()
        so.wait()
    if "address already in use" in open(f"{W}/restart-outbound.log").read().lower():
        stale += 1
    stop(si)
    stop(ng)
    times.sort()
    unchanged = snapshot() == snap
    row("sidecar restarts under load", f"{n} SIGKILLs and restarts of the outbound sidecar, "
        f"client retrying", f"time to serve again p50 {times[len(times) // 2] * 1000:.0f} ms, "
        f"max {times[-1] * 1000:.0f} ms; {stale} restarts without service; published files "
        f"{'unchanged' if unchanged else 'MODIFIED'}", stale == 0 and unchanged)


def full_disk(ca):
    """output_dir on a 1 MiB tmpfs that fills during publication (needs root)."""
    if os.geteuid() != 0:
        row("full disk", "skipped", "needs root to mount a tmpfs", True)
        return
    out = f"{W}/full"
    os.makedirs(out, exist_ok=True)
    if sh("mount", "-t", "tmpfs", "-o", "size=1m", "soak-full", out).returncode != 0:
        row("full disk", "skipped", "cannot mount a tmpfs here", True)
        return
    try:
        cfg = f"{W}/full.json"
        status = free_port()
        agent_config(cfg, out, ca, [{"product": "productA"}], ou="before", status=status)
        agent = start("full-agent", [AGENT, "run", "--config", cfg])
        d = f"{out}/dev/productA"
        wait_for(lambda: serial(f"{d}/tls.crt"), 30)
        s0 = serial(f"{d}/tls.crt")
        with open(f"{out}/filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        agent_config(cfg, out, ca, [{"product": "productA"}], ou="after", status=status)
        agent.send_signal(signal.SIGHUP)
        logged = wait_for(lambda: "ENOSPC" in open(f"{W}/full-agent.log").read(), 20)
        whole = sh(READER, d, "1").returncode == 0 and serial(f"{d}/tls.crt") == s0
        try:
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{status}/metrics", timeout=5).read()
            counted = re.search(rb'duet_agent_failures_total\{[^}]*\} [1-9]', metrics) is not None
        except OSError:
            counted = False
        os.unlink(f"{out}/filler")
        t0 = time.monotonic()
        resumed = wait_for(lambda: serial(f"{d}/tls.crt") not in (None, s0), 120)
        took = time.monotonic() - t0
        stop(agent)
        row("full disk", "output_dir on a 1 MiB tmpfs filled, then a re-issue forced",
            f"old set {'whole' if whole else 'DAMAGED'}; ENOSPC {'logged' if logged else 'NOT logged'}"
            f", {'counted' if counted else 'NOT counted'}; publication resumed "
            f"{f'{took:.1f} s after space returned' if resumed else 'NEVER'}",
            whole and logged and counted and resumed)
    finally:
        sh("umount", "-l", out)


def main():
    ca = f"{W}/ca"
    make_ca(ca)
    only = os.environ.get("DUET_SOAK_ONLY", "")
    for scenario in (rotation_under_load, crash_during_publication, sidecar_restarts, full_disk):
        if only and scenario.__name__ not in only.split(","):
            continue
        print(f"== {scenario.__doc__.splitlines()[0]}", flush=True)
        try:
            scenario(ca)
        except Exception as e:  # a scenario that breaks is a failed row, not a lost table
            row(scenario.__name__.replace("_", " "), "raised", repr(e), False)
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()
    print()
    print("| what | tried | result | verdict |")
    print("|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    print(f"\nsoak: {len(ROWS) - len(FAILED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
