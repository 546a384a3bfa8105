#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every overlay of manifests/ renders (kubectl kustomize) and passes strict
# validation against the Kubernetes API schemas (tests/e2e/tools/k8s-validate.mjs);
# and the validator is not a rubber stamp: each deliberate break of a
# rendered manifest below must be refused. Also checks the contracts the
# manifests share with the daemons' configuration (key_group vs the pods'
# groups, the agent's output_dir vs the hostPath mounts).
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

# The agent's key_group must be the pods' group, and the hostPaths the pods
# mount must lie under the agent's output_dir (one check per overlay config).
for cfg in "$tmp"/manifests/base/agent.json "$tmp"/manifests/overlays/*/agent.json; do
    [ -f "$cfg" ] || continue
    rel=${cfg#"$tmp/"}
    kg=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).key_group)' "$cfg")
    out=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).output_dir)' "$cfg")
    groups=$(grep -hE '^ +(runAsGroup|fsGroup):' "$tmp"/manifests/examples/*.yaml | awk '{print $2}' | sort -u)
    [ "$groups" = "$kg" ] && ok "$rel: key_group $kg = the pods' runAsGroup/fsGroup" ||
        bad "$rel: key_group $kg but the pods use groups: $groups"
    paths=$(grep -hA2 'hostPath:' "$tmp"/manifests/examples/*.yaml | awk '/path:/ {print $2}')
    for p in $paths; do
        case "$p" in
        "$out"/*) ;;
        *) bad "$rel: hostPath $p is not under output_dir $out"; continue ;;
        esac
    done
    ok "$rel: every example hostPath is under output_dir $out"
done

[ "$fails" -eq 0 ] || e2e_fail "$fails check(s) failed"
echo "manifests: all checks passed"
