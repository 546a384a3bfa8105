#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every C source and header of the tree is formatted as .clang-format says
# (STYLE.md 13: style is a tool's job). Fails naming the files and the first
# lines that differ; fix with: clang-format -i FILE (clang-format 14, as
# Debian 12 ships it and scripts/deps installs).
set -uo pipefail
cd "${DUET_SRC:?}"
command -v clang-format >/dev/null || { echo "FAIL: clang-format missing (scripts/deps installs it)"; exit 1; }
mapfile -t files < <(find common agent sidecar tests bench -name '*.[ch]' \
    -not -path '*/node_modules/*' -not -path '*/corpus/*' | sort)
[ ${#files[@]} -gt 50 ] || { echo "FAIL: found only ${#files[@]} C files under $PWD"; exit 1; }
bad=()
for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "FAIL: ${#bad[@]} of ${#files[@]} files are not clang-formatted:"
    for f in "${bad[@]}"; do
        echo "  $f"
        clang-format "$f" | diff -u "$f" - | sed -n '3,12p' | sed 's/^/      /'
    done
    exit 1
fi
echo "PASS: ${#files[@]} C files formatted ($(clang-format --version | grep -oE 'version [0-9.]+'))"
