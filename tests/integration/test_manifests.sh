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
policy() { # policy MODE FILE
    local args=(--mode "$1")
    [ "$1" = csi ] && args+=(--denied duet-demo/client-c/productA)
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

# ...and the policy check is not a rubber stamp either: each break of the
# kind rendering below must be refused, naming the rule.
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
prefuse "a sidecar without seccomp" "seccompProfile is unset" \
    's/(client-a\n(?:.*\n)*?)\s+seccompProfile:\n\s+type: RuntimeDefault\n/$1\n/'
prefuse "pods' folder not Bidirectional" "the pods' folder" \
    's|(mountPath: /var/lib/kubelet/pods\n\s+mountPropagation: )Bidirectional|${1}HostToContainer|'
prefuse "state_dir elsewhere than the agent's tmpfs mount" "csi.state_dir" \
    's|"state_dir": "/var/lib/duet/csi"|"state_dir": "/run/duet/csi"|'
prefuse "client-c bound to productA" "refuses nothing" \
    's|"service_account": "resource"|"service_account": "client-c", "products": ["productA"]}, {"namespace": "duet-demo", "service_account": "resource"|'
prefuse "CSIDriver without pod info" "wrong podInfoOnMount" \
    's/podInfoOnMount: true/podInfoOnMount: false/'
prefuse "an unknown product" "names no product the agent knows" \
    's/(volumeAttributes:\n\s+product: )productB/${1}productZ/'

[ "$fails" -eq 0 ] || e2e_fail "$fails check(s) failed"
echo "manifests: all checks passed"
