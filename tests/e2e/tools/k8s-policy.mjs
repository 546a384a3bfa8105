// SPDX-License-Identifier: Apache-2.0
// k8s-policy: checks a rendered overlay (kubectl kustomize output) against
// the rules duet's manifests promise, which the API schema cannot see
// (k8s-validate.mjs checks the schema):
//   all modes  every workload in a namespace labelled PodSecurity
//              `restricted` (enforce) meets that profile (the checks of
//              Kubernetes' pod-security admission, "restricted" level);
//              no Secret holds a private key beside a passphrase; the agent
//              DaemonSet reads (volumes, env) no Secret or ConfigMap that
//              holds a private key: the CA key is the signer's alone;
//   --mode csi the CSIDriver is as the agent implements it (DESIGN.md
//              "Kubernetes"); the agent DaemonSet is a CSI node plugin with
//              the paths of its own agent.json and is the only privileged
//              or hostPath user; every other workload's namespace enforces
//              `restricted`; every CSI volume asks for a product the agent
//              knows, and the (namespace, ServiceAccount, product) triples
//              that csi.bindings refuses are exactly the --denied ones;
//   --mode folder  no CSI; the pods' hostPaths lie under the agent's
//              output_dir, and their groups are its key_group.
// Usage: k8s-policy.mjs --mode csi|folder [--denied NS/SA/PRODUCT]... FILE.yaml
// Prints one "ok" line per rule that holds and one line per violation;
// exit 0 when none, 1 otherwise, 2 on usage errors.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";

const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod", "CronJob"]);
// Volume types the restricted profile allows (pod-security-admission, restrictedVolumes).
const RESTRICTED_VOLUMES = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret"]);

function parseArgs(argv) {
    const o = { denied: [], files: [] };
    for (let i = 0; i < argv.length; i++) {
        switch (argv[i]) {
        case "--mode": o.mode = argv[++i]; break;
        case "--denied": o.denied.push(argv[++i]); break;
        default:
            if (argv[i].startsWith("--"))
                throw new Error(`unknown argument ${argv[i]}`);
            o.files.push(argv[i]);
        }
    }
    if (!["csi", "folder"].includes(o.mode) || o.files.length === 0)
        throw new Error("usage: k8s-policy.mjs --mode csi|folder [--denied NS/SA/PRODUCT]... FILE...");
    return o;
}

// podSpecOf: the pod spec a workload runs, or undefined.
function podSpecOf(d) {
    if (d.kind === "Pod")
        return d.spec;
    if (d.kind === "CronJob")
        return d.spec?.jobTemplate?.spec?.template?.spec;
    return d.spec?.template?.spec;
}

const allContainers = (s) => [...(s.initContainers ?? []), ...(s.containers ?? []),
    ...(s.ephemeralContainers ?? [])];
const id = (d) => `${d.kind} ${d.metadata?.namespace ?? "-"}/${d.metadata?.name}`;

// restrictedViolations: what pod-security admission's "restricted" level
// (baseline included) would refuse in this pod spec.
function restrictedViolations(s) {
    const v = [];
    if (s.hostNetwork || s.hostPID || s.hostIPC)
        v.push("host namespaces");
    for (const vol of s.volumes ?? []) {
        const type = Object.keys(vol).find((k) => k !== "name");
        if (!RESTRICTED_VOLUMES.has(type))
            v.push(`volume ${vol.name} is ${type}`);
    }
    const psc = s.securityContext ?? {};
    if (psc.runAsUser === 0)
        v.push("pod runAsUser 0");
    for (const c of allContainers(s)) {
        const sc = c.securityContext ?? {};
        const n = `container ${c.name}`;
        if (sc.privileged)
            v.push(`${n} privileged`);
        if (sc.allowPrivilegeEscalation !== false)
            v.push(`${n} allowPrivilegeEscalation is not false`);
        if (!(sc.capabilities?.drop ?? []).includes("ALL"))
            v.push(`${n} does not drop ALL capabilities`);
        for (const cap of sc.capabilities?.add ?? [])
            if (cap !== "NET_BIND_SERVICE")
                v.push(`${n} adds capability ${cap}`);
        if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true)
            v.push(`${n} runAsNonRoot is not true`);
        if (sc.runAsUser === 0)
            v.push(`${n} runAsUser 0`);
        const sp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
        if (sp !== "RuntimeDefault" && sp !== "Localhost")
            v.push(`${n} seccompProfile is ${sp ?? "unset"}`);
        for (const p of c.ports ?? [])
            if (p.hostPort)
                v.push(`${n} hostPort ${p.hostPort}`);
    }
    return v;
}

class Report {
    constructor() { this.bad = 0; }
    ok(msg) { console.log(`ok   ${msg}`); }
    fail(msg) { console.log(`FAIL ${msg}`); this.bad++; }
    check(cond, okMsg, failMsg) { cond ? this.ok(okMsg) : this.fail(failMsg ?? okMsg); }
}

// agentOf: the DaemonSet that runs duet-agent, its container, and the
// agent.json of the ConfigMap it mounts at its --config folder.
function agentOf(docs, r) {
    const ds = docs.filter((d) => d.kind === "DaemonSet" &&
        podSpecOf(d).containers.some((c) => (c.command ?? []).join(" ").includes("duet-agent")));
    if (ds.length !== 1) {
        r.fail(`want one duet-agent DaemonSet, found ${ds.length}`);
        return null;
    }
    const spec = podSpecOf(ds[0]);
    const c = spec.containers.find((x) => (x.command ?? []).join(" ").includes("duet-agent"));
    const args = c.args ?? [];
    const cfgPath = args[args.indexOf("--config") + 1];
    const mount = (c.volumeMounts ?? []).find((m) => cfgPath?.startsWith(m.mountPath + "/"));
    const vol = (spec.volumes ?? []).find((v) => v.name === mount?.name);
    const cm = docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === vol?.configMap?.name &&
        d.metadata.namespace === ds[0].metadata.namespace);
    const file = cfgPath?.slice(mount.mountPath.length + 1);
    if (!cm || !cm.data?.[file]) {
        r.fail(`${id(ds[0])}: no ConfigMap holding ${cfgPath}`);
        return null;
    }
    return { ds: ds[0], spec, c, cfg: JSON.parse(cm.data[file]) };
}

// hostMount: the agent container's mount of host folder PATH, if any.
function hostMount(agent, path) {
    const vol = (agent.spec.volumes ?? []).find((v) => v.hostPath?.path === path);
    const m = (agent.c.volumeMounts ?? []).find((x) => x.name === vol?.name);
    return vol && m ? { vol, m } : null;
}

function checkCsi(docs, o, r) {
    const drivers = docs.filter((d) => d.kind === "CSIDriver");
    const agent = agentOf(docs, r);
    if (drivers.length !== 1 || !agent) {
        r.fail(`want one CSIDriver, found ${drivers.length}`);
        return;
    }
    const drv = drivers[0];
    const want = { attachRequired: false, podInfoOnMount: true, fsGroupPolicy: "File",
        requiresRepublish: false };
    const wrong = Object.entries(want).filter(([k, v]) => drv.spec?.[k] !== v).map(([k]) => k);
    if (JSON.stringify(drv.spec?.volumeLifecycleModes) !== '["Ephemeral"]')
        wrong.push("volumeLifecycleModes");
    r.check(wrong.length === 0, `CSIDriver ${drv.metadata.name}: podInfoOnMount, Ephemeral, no attach, fsGroupPolicy File`,
        `CSIDriver ${drv.metadata.name}: wrong ${wrong.join(", ")}`);

    const csi = agent.cfg.csi;
    if (!csi) {
        r.fail(`${id(agent.ds)}: agent.json has no "csi" section`);
        return;
    }
    r.check(csi.driver === drv.metadata.name, `agent.json csi.driver is ${drv.metadata.name}`,
        `agent.json csi.driver ${csi.driver} is not the CSIDriver ${drv.metadata.name}`);
    const a = id(agent.ds);
    const sock = csi.endpoint?.slice(0, csi.endpoint.lastIndexOf("/"));
    for (const [what, path, prop] of [["csi.endpoint's folder", sock, undefined],
        ["csi.registration_dir", csi.registration_dir, undefined],
        ["csi.state_dir", csi.state_dir, "Bidirectional"],
        ["the pods' folder", "/var/lib/kubelet/pods", "Bidirectional"]]) {
        const hm = hostMount(agent, path);
        r.check(hm && hm.m.mountPath === path && (prop === undefined || hm.m.mountPropagation === prop),
            `${a}: ${what} ${path} is the host's${prop ? `, ${prop}` : ""}`,
            `${a}: ${what} ${path} is not mounted from the host at the same path${prop ? ` with ${prop}` : ""}`);
    }
    r.check(hostMount(agent, csi.state_dir)?.vol.hostPath.type === "DirectoryOrCreate",
        `${a}: state_dir hostPath is DirectoryOrCreate`);
    const sc = agent.c.securityContext ?? {};
    r.check(sc.privileged === true && sc.readOnlyRootFilesystem === true,
        `${a}: agent container privileged, read-only root`);
    r.check(agent.spec.priorityClassName === "system-node-critical", `${a}: priorityClassName system-node-critical`);
    r.check((agent.spec.volumes ?? []).some((v) => v.emptyDir?.medium === "Memory"),
        `${a}: scratch on tmpfs (emptyDir medium Memory)`);
    r.check((agent.c.env ?? []).some((e) => e.name === "NODE_NAME" &&
        e.valueFrom?.fieldRef?.fieldPath === "spec.nodeName"), `${a}: NODE_NAME from spec.nodeName`);
    const others = allContainers(agent.spec).filter((c) => c !== agent.c && c.securityContext?.privileged);
    r.check(others.length === 0, `${a}: no other privileged container`);

    const nsLabels = new Map(docs.filter((d) => d.kind === "Namespace")
        .map((d) => [d.metadata.name, d.metadata.labels ?? {}]));
    const products = new Set((agent.cfg.identities ?? []).map((i) => i.product));
    const denied = [];
    let workloads = 0;
    for (const d of docs) {
        if (!WORKLOADS.has(d.kind) || d === agent.ds)
            continue;
        workloads++;
        const s = podSpecOf(d);
        const ns = d.metadata.namespace ?? "default";
        const enforce = nsLabels.get(ns)?.["pod-security.kubernetes.io/enforce"];
        if (ns === agent.ds.metadata.namespace) {
            /* duet-system must allow the agent; what else runs there (the
             * signer) still meets restricted. */
            const v = restrictedViolations(s);
            r.check(v.length === 0, `${id(d)}: beside the agent, meets PodSecurity restricted`,
                `${id(d)}: beside the agent, PodSecurity restricted would refuse it: ${v.join("; ")}`);
        } else {
            r.check(enforce === "restricted", `${id(d)}: namespace ${ns} enforces restricted`,
                `${id(d)}: namespace ${ns} enforces ${enforce ?? "nothing (no Namespace object)"}, want restricted`);
        }
        const hp = (s.volumes ?? []).filter((v) => v.hostPath);
        r.check(hp.length === 0, `${id(d)}: no hostPath`, `${id(d)}: hostPath volume ${hp.map((v) => v.name)}`);
        for (const v of (s.volumes ?? []).filter((x) => x.csi)) {
            if (v.csi.driver !== drv.metadata.name) {
                r.fail(`${id(d)}: volume ${v.name} uses CSI driver ${v.csi.driver}`);
                continue;
            }
            r.check(v.csi.readOnly === true && s.securityContext?.fsGroup !== undefined,
                `${id(d)}: volume ${v.name} read-only, pod fsGroup ${s.securityContext?.fsGroup} (tls.key group)`,
                `${id(d)}: volume ${v.name} must be readOnly and the pod must set fsGroup`);
            const sa = s.serviceAccountName ?? "default";
            const bound = (csi.bindings ?? []).filter((b) => b.namespace === ns && b.service_account === sa)
                .flatMap((b) => b.products);
            const product = v.csi.volumeAttributes?.product ?? (bound.length === 1 ? bound[0] : undefined);
            r.check(product !== undefined && products.has(product), `${id(d)}: product ${product} is an identity of agent.json`,
                `${id(d)}: volume ${v.name} names no product the agent knows (${product})`);
            if (!bound.includes(product))
                denied.push(`${ns}/${sa}/${product}`);
        }
    }
    r.check(workloads > 0, `${workloads} workload(s) besides the agent`, "no workload besides the agent");
    const got = denied.sort().join(" "), exp = [...o.denied].sort().join(" ");
    r.check(got === exp, `csi.bindings refuses exactly: ${got || "nothing"}`,
        `csi.bindings refuses ${got || "nothing"}, expected ${exp || "nothing"}`);
}

function checkFolder(docs, r) {
    const agent = agentOf(docs, r);
    if (!agent)
        return;
    r.check(!docs.some((d) => d.kind === "CSIDriver"), "no CSIDriver in folder mode");
    const out = agent.cfg.output_dir, kg = agent.cfg.key_group;
    r.check(typeof out === "string" && !agent.cfg.csi, `agent.json publishes folders under ${out}`,
        "agent.json has no output_dir, or a csi section");
    r.check(hostMount(agent, out)?.m.mountPath === out, `${id(agent.ds)}: ${out} is the node's`);
    for (const d of docs) {
        if (!WORKLOADS.has(d.kind) || d === agent.ds)
            continue;
        const s = podSpecOf(d);
        for (const v of s.volumes ?? []) {
            if (v.csi)
                r.fail(`${id(d)}: CSI volume ${v.name} in folder mode`);
            if (!v.hostPath)
                continue;
            r.check(v.hostPath.path.startsWith(out + "/"), `${id(d)}: hostPath ${v.hostPath.path} is under output_dir`,
                `${id(d)}: hostPath ${v.hostPath.path} is not under output_dir ${out}`);
            const g = [s.securityContext?.fsGroup, s.securityContext?.runAsGroup];
            r.check(g.every((x) => x === kg), `${id(d)}: fsGroup/runAsGroup ${g} = key_group ${kg}`,
                `${id(d)}: fsGroup/runAsGroup ${g} but key_group ${kg}`);
        }
    }
}

const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
const PASSPHRASE_NAME = /pass(phrase|word)?|pin/i;

// secretValues: a Secret's or ConfigMap's entries, decoded.
function dataOf(d) {
    const out = {};
    for (const [k, v] of Object.entries(d.data ?? {}))
        out[k] = d.kind === "Secret" ? Buffer.from(String(v).replace(/\s/g, ""), "base64").toString("latin1") : String(v);
    for (const [k, v] of Object.entries(d.stringData ?? {}))
        out[k] = String(v);
    for (const [k, v] of Object.entries(d.binaryData ?? {}))
        out[k] = Buffer.from(String(v), "base64").toString("latin1");
    return out;
}

// mountedObjects: the Secrets and ConfigMaps a pod spec reads (volumes,
// projected volumes, env, envFrom), as "Secret/name" or "ConfigMap/name".
function mountedObjects(s) {
    const refs = new Set();
    for (const v of s.volumes ?? []) {
        if (v.secret) refs.add(`Secret/${v.secret.secretName}`);
        if (v.configMap) refs.add(`ConfigMap/${v.configMap.name}`);
        for (const src of v.projected?.sources ?? []) {
            if (src.secret) refs.add(`Secret/${src.secret.name}`);
            if (src.configMap) refs.add(`ConfigMap/${src.configMap.name}`);
        }
    }
    for (const c of allContainers(s)) {
        for (const e of c.env ?? []) {
            if (e.valueFrom?.secretKeyRef) refs.add(`Secret/${e.valueFrom.secretKeyRef.name}`);
            if (e.valueFrom?.configMapKeyRef) refs.add(`ConfigMap/${e.valueFrom.configMapKeyRef.name}`);
        }
        for (const e of c.envFrom ?? []) {
            if (e.secretRef) refs.add(`Secret/${e.secretRef.name}`);
            if (e.configMapRef) refs.add(`ConfigMap/${e.configMapRef.name}`);
        }
    }
    return refs;
}

// checkKeys: no Secret holds a private key beside a passphrase, and the
// agent DaemonSet reads no object that holds a private key (the CA key
// lives in the signing service only).
function checkKeys(docs, r) {
    const objs = new Map();
    for (const d of docs.filter((x) => x.kind === "Secret" || x.kind === "ConfigMap")) {
        objs.set(`${d.metadata.namespace ?? "default"}/${d.kind}/${d.metadata.name}`, d);
        const data = dataOf(d);
        const keys = Object.keys(data).filter((k) => PRIVATE_KEY.test(data[k]));
        const pass = Object.keys(data).filter((k) => PASSPHRASE_NAME.test(k));
        if (d.kind === "Secret" || keys.length)
            r.check(!(keys.length && pass.length), `${id(d)}: no private key beside a passphrase`,
                `${id(d)}: holds private key ${keys} and passphrase ${pass} together`);
    }
    const agent = agentOf(docs, r);
    if (!agent)
        return;
    const ns = agent.ds.metadata.namespace ?? "default";
    for (const ref of mountedObjects(agent.spec)) {
        const d = objs.get(`${ns}/${ref}`);
        if (!d) {
            r.fail(`${id(agent.ds)}: reads ${ref}, which is not in the rendering`);
            continue;
        }
        const data = dataOf(d);
        const keys = Object.keys(data).filter((k) => PRIVATE_KEY.test(data[k]));
        r.check(keys.length === 0, `${id(agent.ds)}: ${ref} holds no private key`,
            `${id(agent.ds)}: reads ${ref}, which holds a private key (${keys})`);
    }
}

function main() {
    const o = parseArgs(process.argv.slice(2));
    const docs = o.files.flatMap((f) => yaml.loadAll(readFileSync(f, "utf8")).filter(Boolean));
    const r = new Report();
    const nsLabels = new Map(docs.filter((d) => d.kind === "Namespace")
        .map((d) => [d.metadata.name, d.metadata.labels ?? {}]));
    for (const d of docs) {
        if (!WORKLOADS.has(d.kind))
            continue;
        const ns = d.metadata.namespace ?? "default";
        if (nsLabels.get(ns)?.["pod-security.kubernetes.io/enforce"] !== "restricted")
            continue;
        const v = restrictedViolations(podSpecOf(d));
        r.check(v.length === 0, `${id(d)}: meets PodSecurity restricted`,
            `${id(d)}: PodSecurity restricted would refuse it: ${v.join("; ")}`);
    }
    checkKeys(docs, r);
    if (o.mode === "csi")
        checkCsi(docs, o, r);
    else
        checkFolder(docs, r);
    console.log(`k8s-policy: ${r.bad} violation(s)`);
    process.exit(r.bad === 0 ? 0 : 1);
}

try {
    main();
} catch (e) {
    console.error(`k8s-policy: ${e.message}`);
    process.exit(2);
}
