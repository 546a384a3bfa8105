// SPDX-License-Identifier: Apache-2.0
// podmanize: turns a rendered overlay (kubectl kustomize output) into the
// files `podman kube play` (podman 4.3, Debian 12) can run, one per workload,
// changing only what podman cannot do and what stands in for the node:
//   - DaemonSet -> Pod of the same name (kube play skips DaemonSets);
//   - native sidecars (init containers with restartPolicy: Always) -> first
//     ordinary containers (kube play runs init containers to completion first,
//     so a native sidecar would block its pod forever);
//   - run-once init containers are dropped: the only one, own-hostpath,
//     chowns the node's /var/lib/duet, which the test does itself (podman
//     4.3 races removing a finished init container: "cannot remove container
//     ... as it is running");
//   - Secret -> ConfigMap of the same name and decoded content, secret
//     volumes -> configMap volumes and secretKeyRef env -> configMapKeyRef
//     (kube play 4.3 mounts Secret data still base64-encoded);
//   - env from the pod's own annotations or labels (downward API fieldRef
//     metadata.annotations['k'] / metadata.labels['k'], as the sidecar
//     component uses) -> the literal value from the pod template: kube play
//     4.3 does not give a Deployment's pods their template's annotations,
//     so the variable would be empty (seen: the sidecar got no spec);
//   - probes removed (kube play turns httpGet probes into healthchecks that
//     run curl inside the container, and the image has no curl; the test
//     queries /readyz itself);
//   - containerPorts removed: kube play 4.3 publishes each one on the host
//     (two pods with port 15020 collide, and nothing should listen on the
//     host); pods reach each other on the test's network, where every port
//     is reachable anyway;
//   - Namespaces and Services dropped (no cluster DNS or kube-proxy): the
//     names Services give are passed in as --host-alias NAME=IP (hostAliases);
//   - hostPath paths under --node-root-from (default /var/lib/duet) are
//     rebased onto --node-root, the test's stand-in for the node's folder.
//     Nothing else changes, so a wrong path in the manifests stays wrong.
// Usage: podmanize.mjs --in RENDERED.yaml --out DIR --node-root DIR
//                      [--node-root-from /var/lib/duet] [--host-alias NAME=IP]...
// Writes DIR/<workload>.yaml (each with the ConfigMaps it mounts) and prints
// one line per file: "<file> <pod name in podman>"; DIR/volumes.txt lists the
// ConfigMap names, which kube play turns into podman volumes of those names.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import yaml from "js-yaml";

function parseArgs(argv) {
    const o = { hostAliases: [], nodeRootFrom: "/var/lib/duet" };
    for (let i = 0; i < argv.length; i++) {
        const v = argv[i + 1];
        switch (argv[i]) {
        case "--in": o.in = v; i++; break;
        case "--out": o.out = v; i++; break;
        case "--node-root": o.nodeRoot = v; i++; break;
        case "--node-root-from": o.nodeRootFrom = v; i++; break;
        case "--host-alias": {
            const [name, ip] = v.split("=");
            o.hostAliases.push({ ip, hostnames: [name] });
            i++;
            break;
        }
        default:
            throw new Error(`unknown argument ${argv[i]}`);
        }
    }
    if (!o.in || !o.out || !o.nodeRoot)
        throw new Error("--in, --out and --node-root are required");
    return o;
}

function secretToConfigMap(s) {
    const data = {};
    for (const [k, v] of Object.entries(s.data ?? {}))
        data[k] = Buffer.from(v, "base64").toString("utf8");
    Object.assign(data, s.stringData ?? {});
    return { apiVersion: "v1", kind: "ConfigMap", metadata: { name: s.metadata.name }, data };
}

function stripPodmanless(c) {
    delete c.ports;
    delete c.startupProbe;
    delete c.readinessProbe;
    delete c.livenessProbe;
    return c;
}

// secretEnvToConfigMap: env from a Secret's key reads the ConfigMap that
// stands in for that Secret.
function secretEnvToConfigMap(c) {
    for (const e of c.env ?? []) {
        if (e.valueFrom?.secretKeyRef)
            e.valueFrom = { configMapKeyRef: e.valueFrom.secretKeyRef };
    }
    return c;
}

function rebase(path, o) {
    if (path === o.nodeRootFrom || path.startsWith(o.nodeRootFrom + "/"))
        return o.nodeRoot + path.slice(o.nodeRootFrom.length);
    return path;
}

// resolveFieldRefs: env that the downward API fills from the pod's own
// annotations or labels gets the value itself (missing key: empty, as
// kubelet gives). status.podIP, which podman 4.3 refuses, becomes empty:
// the sidecar's status listener then binds every IPv4 address, as the
// component's comment says.
const FIELD_REF = /^metadata\.(annotations|labels)\['([^']+)'\]$/;
function resolveFieldRefs(c, meta) {
    for (const e of c.env ?? []) {
        if (e.valueFrom?.fieldRef?.fieldPath === "status.podIP") {
            delete e.valueFrom;
            e.value = "";
            continue;
        }
        const m = FIELD_REF.exec(e.valueFrom?.fieldRef?.fieldPath ?? "");
        if (!m)
            continue;
        delete e.valueFrom;
        e.value = meta?.[m[1]]?.[m[2]] ?? "";
    }
    return c;
}

// podSpec: the podman-runnable version of a pod template's spec, whose
// metadata is meta.
function podSpec(spec, o, meta) {
    const s = structuredClone(spec);
    const sidecars = (s.initContainers ?? []).filter((c) => c.restartPolicy === "Always");
    for (const c of sidecars)
        delete c.restartPolicy;
    s.containers = [...sidecars, ...s.containers].map(stripPodmanless).map(secretEnvToConfigMap)
        .map((c) => resolveFieldRefs(c, meta));
    delete s.initContainers;
    for (const v of s.volumes ?? []) {
        if (v.hostPath)
            v.hostPath.path = rebase(v.hostPath.path, o);
        if (v.secret) {
            const { secretName, defaultMode, optional } = v.secret;
            delete v.secret;
            v.configMap = { name: secretName, defaultMode, optional };
        }
    }
    if (o.hostAliases.length)
        s.hostAliases = [...(s.hostAliases ?? []), ...o.hostAliases];
    return s;
}

// mountedConfigMaps: the ConfigMaps a (converted) pod spec reads, through
// volumes or env, each once: kube play finds them in the same file.
function mountedConfigMaps(spec, byName) {
    const names = new Set((spec.volumes ?? []).filter((v) => v.configMap).map((v) => v.configMap.name));
    for (const c of spec.containers)
        for (const e of c.env ?? [])
            if (e.valueFrom?.configMapKeyRef)
                names.add(e.valueFrom.configMapKeyRef.name);
    return [...names].filter((n) => byName.has(n)).map((n) => byName.get(n));
}

function main() {
    const o = parseArgs(process.argv.slice(2));
    const docs = yaml.loadAll(readFileSync(o.in, "utf8")).filter(Boolean);
    const configMaps = new Map();
    for (const d of docs) {
        if (d.kind === "ConfigMap")
            configMaps.set(d.metadata.name, { apiVersion: "v1", kind: "ConfigMap",
                metadata: { name: d.metadata.name }, data: d.data });
        if (d.kind === "Secret")
            configMaps.set(d.metadata.name, secretToConfigMap(d));
    }
    mkdirSync(o.out, { recursive: true });
    writeFileSync(`${o.out}/volumes.txt`, [...configMaps.keys()].map((n) => n + "\n").join(""));
    for (const d of docs) {
        let workload, podName;
        const name = d.metadata.name;
        if (d.kind === "DaemonSet") {
            workload = { apiVersion: "v1", kind: "Pod",
                metadata: { name, labels: d.spec.template.metadata?.labels },
                spec: podSpec(d.spec.template.spec, o, d.spec.template.metadata) };
            podName = name;
        } else if (d.kind === "Deployment") {
            workload = structuredClone(d);
            delete workload.metadata.namespace;
            workload.spec.template.spec = podSpec(d.spec.template.spec, o, d.spec.template.metadata);
            podName = `${name}-pod-0`; /* kube play 4.3's name for a Deployment's first pod */
        } else if (d.kind === "Pod") {
            workload = structuredClone(d);
            delete workload.metadata.namespace;
            workload.spec = podSpec(d.spec, o, d.metadata);
            podName = name;
        } else {
            continue; /* Namespace, Service, ConfigMap, Secret: see the header */
        }
        const spec = workload.kind === "Pod" ? workload.spec : workload.spec.template.spec;
        const out = [...mountedConfigMaps(spec, configMaps), workload];
        const file = `${o.out}/${name}.yaml`;
        writeFileSync(file, out.map((x) => yaml.dump(x, { lineWidth: -1 })).join("---\n"));
        console.log(`${file} ${podName}`);
    }
}

try {
    main();
} catch (e) {
    console.error(`podmanize: ${e.message}`);
    process.exit(2);
}
