#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every overlay of manifests/ renders (kubectl kustomize) and passes strict
# validation against the Kubernetes API schemas (tests/e2e/tools/k8s-validate.mjs);
# and the validator is not a rubber stamp: each deliberate break of a
# rendered manifest below must be refused. Then each overlay passes the
# policy checks of tests/e2e/tools/k8s-policy.mjs (PodSecurity restricted,
# the CSI node plugin and its bindings, or folder mode's paths and groups),
# which must refuse deliberate breaks too.
set -uo pipefail
. "$(dirname "$0")/../e2e/lib.sh"

e2e_need_render_tools skip
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

e2e_manifests_copy "$tmp"
overlays=$(cd "$tmp/manifests/overlays" && ls)
[ -n "$overlays" ] || e2e_fail "no overlays"
for o in $overlays; do
    e2e_render "$tmp/manifests" "$o" "$tmp/$o.yaml"
    if out=$(e2e_validate "$tmp/$o.yaml" 2>&1); then
        ok "overlays/$o: $(tail -1 <<<"$out")"
    else
        bad "overlays/$o: $out"
    fi
done

# refuse NAME SED-EXPR: the local rendering with one sed edit must fail.
refuse() {
    sed -e "$2" "$tmp/local.yaml" >"$tmp/broken.yaml"
    if cmp -s "$tmp/local.yaml" "$tmp/broken.yaml"; then
        bad "$1: the edit changed nothing (fix the test)"
    elif out=$(e2e_validate "$tmp/broken.yaml" 2>&1); then
        bad "$1: accepted"
    else
        ok "$1 refused: $(head -1 <<<"$out" | sed 's/^[^:]*: //')"
    fi
}
refuse "typo in a container field" '0,/readOnlyRootFilesystem:/s//readOnlyRootFilesytem:/'
refuse "typo in a pod field" '0,/automountServiceAccountToken:/s//automountServiceAcountToken:/'
refuse "typo in a top-level field" '0,/^spec:/s//spce:/'
refuse "string where an integer goes" '0,/containerPort: 9090/s//containerPort: status-port/'
refuse "unknown kind" '0,/^kind: DaemonSet/s//kind: DeamonSet/'
refuse "missing container name" '0,/ name: agent$/s// nam: agent/'

# Beyond the schema: the rules of tests/e2e/tools/k8s-policy.mjs (PodSecurity
# restricted where a namespace enforces it; CSI: the driver object, the agent
# as a node plugin, restricted example namespaces without hostPath, the
# bindings refusing exactly client-c's request for productA; folder mode:
# hostPaths under output_dir, key_group = the pods' groups). local is the
# folder-mode overlay (podman has no CSI); every other overlay is CSI.
policy_mode() { [ "$1" = local ] && echo folder || echo csi; }
policy() { # policy MODE FILE (the examples' client-c must be refused)
    local args=(--mode "$1")
    [ "$1" = csi ] && grep -q '^  name: client-c$' "$2" && args+=(--denied duet-demo/client-c/productA)
    node "$e2e_tools/k8s-policy.mjs" "${args[@]}" "$2"
}
for o in $overlays; do
    mode=$(policy_mode "$o")
    if out=$(policy "$mode" "$tmp/$o.yaml" 2>&1); then
        ok "overlays/$o ($mode): $(grep -c '^ok' <<<"$out") policy checks"
    else
        bad "overlays/$o ($mode): $(grep -v '^ok' <<<"$out")"
    fi
done

# Each overlay names its images: kind and local the tag `dev` they build and
# load (IfNotPresent), production a registry and a digest, always pulled.
for o in $overlays; do
    imgs=$(awk '$1 == "image:" {print $2}' "$tmp/$o.yaml" | sort -u | tr '\n' ' ')
    pol=$(awk '$1 == "imagePullPolicy:" {print $2}' "$tmp/$o.yaml" | sort -u | tr '\n' ' ')
    case "$o" in
    production) want_img='^registry\.example\.org/duet/[a-z-]+@sha256:[0-9a-f]{64}$' want_pol="Always " ;;
    *) want_img='^duet(-demo|-cfssl)?:dev$' want_pol="IfNotPresent " ;;
    esac
    badimg=$(tr ' ' '\n' <<<"$imgs" | grep -v '^$' | grep -Ev "$want_img")
    [ -z "$badimg" ] && [ "$pol" = "$want_pol" ] && ok "overlays/$o: images $imgs($pol)" ||
        bad "overlays/$o: images $imgs, pull policies $pol"
done

# ...and the policy check is not a rubber stamp either: each break of the
# kind rendering below must be refused, naming the rule (among them: the CA
# key reaching the agents, and a key beside its passphrase).
# prefuse NAME EXPECT PERL-EXPR: the kind rendering, edited, must fail with EXPECT.
prefuse() {
    perl -0pe "$3" "$tmp/kind.yaml" >"$tmp/pbroken.yaml"
    if cmp -s "$tmp/kind.yaml" "$tmp/pbroken.yaml"; then
        bad "$1: the edit changed nothing (fix the test)"
    elif out=$(policy csi "$tmp/pbroken.yaml" 2>&1); then
        bad "$1: accepted"
    elif grep -q -- "$2" <<<"$out"; then
        ok "$1 refused: $(grep -m1 -- "$2" <<<"$out" | sed 's/^FAIL //')"
    else
        bad "$1: refused, but not for '$2': $(grep -v '^ok' <<<"$out" | head -3)"
    fi
}
prefuse "examples namespace not restricted" "enforces baseline, want restricted" \
    's/(enforce: )restricted/${1}baseline/'
prefuse "an example on hostPath" "hostPath volume" \
    's|- csi:\n\s+driver: duet.example.org\n\s+readOnly: true\n\s+volumeAttributes:\n\s+product: productB|- hostPath:\n          path: /var/lib/duet/dev/productB|'
prefuse "a container allowed to escalate" "allowPrivilegeEscalation is not false" \
    's/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/'
prefuse "a pod without seccomp" "container app seccompProfile is unset" \
    's/(\n      securityContext:\n(?:        .*\n)*?)        seccompProfile:\n          type: RuntimeDefault\n/$1/'
prefuse "pods' folder not Bidirectional" "the pods' folder" \
    's|(mountPath: /var/lib/kubelet/pods\n\s+mountPropagation: )Bidirectional|${1}HostToContainer|'
prefuse "state_dir elsewhere than the agent's tmpfs mount" "csi.state_dir" \
    's|"state_dir": "/var/lib/duet/csi"|"state_dir": "/run/duet/csi"|'
prefuse "client-c bound to productA" "refuses nothing" \
    's|"service_account": "resource"|"service_account": "client-c", "products": ["productA"]}, {"namespace": "duet-demo", "service_account": "resource"|'
prefuse "CSIDriver without pod info" "wrong podInfoOnMount" \
    's/podInfoOnMount: true/podInfoOnMount: false/'
cakey=$(grep -o -m1 'duet-ca-key-[a-z0-9]*' "$tmp/kind.yaml")
prefuse "the CA key mounted into the agent" "which holds a private key" \
    "s/secretName: duet-agent-auth-[a-z0-9]+/secretName: $cakey/"
prefuse "the CA key beside its passphrase" "and passphrase passphrase together" \
    's/(\n  ca.key: )/\n  passphrase: eA==$1/'
prefuse "an unknown product" "names no product the agent knows" \
    's/(volumeAttributes:\n\s+product: )productB/${1}productZ/'

# components/sidecar on workloads of every kind it serves, beside one it must
# leave alone (no label): rendered with and without the component, schema-
# validated, and compared.
ct=$tmp/manifests/component-test
mkdir -p "$ct/with" "$ct/without" "$ct/workloads"
printf 'resources: [workloads.yaml]\n' >"$ct/workloads/kustomization.yaml"
cat >"$ct/workloads/workloads.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: labelled-deploy
  labels: {duet.example.org/inject: "true"}
  annotations: {duet.example.org/product: productB}
spec:
  selector: {matchLabels: {app: d}}
  template:
    metadata:
      labels: {app: d}
      annotations: {duet.example.org/outbound: "127.0.0.1:15001=up:8443 127.0.0.1:15002=other:8443"}
    spec:
      initContainers:
      - {name: setup, image: busybox, command: ["true"]}
      containers:
      - {name: app, image: busybox}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: labelled-sts
  labels: {duet.example.org/inject: "true"}
spec:
  serviceName: s
  selector: {matchLabels: {app: s}}
  template:
    metadata:
      labels: {app: s}
      annotations: {duet.example.org/inbound: "0.0.0.0:8443=127.0.0.1:8080,allow-cn=dev.productA.dev"}
    spec:
      containers:
      - {name: app, image: busybox}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: labelled-ds
  labels: {duet.example.org/inject: "true"}
  annotations: {duet.example.org/product: resource}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec:
      containers:
      - {name: app, image: busybox}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: labelled-job
  labels: {duet.example.org/inject: "true"}
  annotations: {duet.example.org/product: productA}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: app, image: busybox}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: unlabelled
  annotations: {duet.example.org/product: productA}
spec:
  selector: {matchLabels: {app: u}}
  template:
    metadata: {labels: {app: u}}
    spec:
      containers:
      - {name: app, image: busybox}
YAML
printf 'resources: [../workloads]\ncomponents: [../../components/sidecar]\n' >"$ct/with/kustomization.yaml"
printf 'resources: [../workloads]\n' >"$ct/without/kustomization.yaml"
if kubectl kustomize "$ct/with" >"$tmp/component.yaml" 2>"$tmp/component.err" &&
    kubectl kustomize "$ct/without" >"$tmp/nocomponent.yaml" 2>>"$tmp/component.err"; then
    if out=$(e2e_validate "$tmp/component.yaml" 2>&1); then
        ok "components/sidecar: $(tail -1 <<<"$out")"
    else
        bad "components/sidecar: $out"
    fi
    if out=$(E2E_TOOLS=$e2e_tools node --input-type=module - "$tmp/component.yaml" "$tmp/nocomponent.yaml" 2>&1 <<'JS'
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
const require = createRequire(process.env.E2E_TOOLS + "/");
const yaml = require("js-yaml");
const load = (f) => new Map(yaml.loadAll(readFileSync(f, "utf8")).map((d) => [d.metadata.name, d]));
const [w, wo] = process.argv.slice(2).map(load);
const want = { "labelled-deploy": "productB", "labelled-sts": undefined, "labelled-ds": "resource",
    "labelled-job": "productA" };
const errs = [];
for (const [name, product] of Object.entries(want)) {
    const s = w.get(name).spec.template.spec;
    const sc = (s.initContainers ?? []).find((c) => c.name === "duet-sidecar");
    const vol = (s.volumes ?? []).find((v) => v.name === "duet-identity");
    if (!sc || sc.restartPolicy !== "Always" || s.initContainers[0] !== sc)
        errs.push(`${name}: no native sidecar first among the init containers`);
    if (!vol || vol.csi?.driver !== "duet.example.org" || vol.csi.volumeAttributes?.product !== product)
        errs.push(`${name}: identity volume ${JSON.stringify(vol)}, want product ${product}`);
    if (s.securityContext?.fsGroup === undefined)
        errs.push(`${name}: no fsGroup`);
    if (JSON.stringify(s.containers) !== JSON.stringify(wo.get(name).spec.template.spec.containers))
        errs.push(`${name}: the application's containers changed`);
}
if (JSON.stringify(w.get("unlabelled")) !== JSON.stringify(wo.get("unlabelled")))
    errs.push("unlabelled: changed by the component");
console.log(errs.length ? errs.join("\n") : "4 labelled workloads injected, the unlabelled one unchanged");
process.exit(errs.length ? 1 : 0);
JS
    ); then
        ok "components/sidecar: $out"
    else
        bad "components/sidecar: $out"
    fi
else
    bad "components/sidecar: kubectl kustomize: $(cat "$tmp/component.err")"
fi

# Every agent configuration the manifests ship is one the agent accepts, as
# the agent itself reads it (a field the binary does not know fails a pod at
# start, which no schema check of the YAML would see).
for cfg in "$DUET_SRC"/manifests/base/agent.json "$DUET_SRC"/manifests/overlays/*/agent.json; do
    name=${cfg#"$DUET_SRC"/}
    if out=$("$DUET_AGENT" run --config "$cfg" --check 2>&1); then
        ok "$name: duet-agent run --check: ${out#*: }"
    else
        bad "$name: $out"
    fi
done

# ... and --check really checks: a binding naming a product that is not configured.
sed 's/"products": \["productA"\]/"products": ["productZ"]/' "$DUET_SRC/manifests/base/agent.json" \
    >"$tmp/bad-agent.json"
if out=$("$DUET_AGENT" run --config "$tmp/bad-agent.json" --check 2>&1); then
    bad "--check accepted a binding to an unknown product"
elif [ $? -eq 2 ] && grep -q 'csi.bindings\[0\].products\[0\]: "productZ"' <<<"$out"; then
    ok "--check refuses a binding to an unknown product (exit 2, names the field)"
else
    bad "--check on a bad binding: $out"
fi

[ "$fails" -eq 0 ] || e2e_fail "$fails check(s) failed"
echo "manifests: all checks passed"
