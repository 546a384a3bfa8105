#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's first command, on the binaries under test: local CA, agent,
# inbound and outbound sidecars on loopback, A and B answered, C refused, and
# a live rotation of 60-second certificates with zero failed requests.
# (60-second certificates also guard the sidecar's expiry margin: outbound
# connections on a certificate younger than the margin must still work.)
set -euo pipefail
: "${DUET_AGENT:?}" "${DUET_SIDECAR:?}" "${DUET_SRC:?}"
command -v python3 >/dev/null && command -v curl >/dev/null || exit 77
exec "$DUET_SRC/scripts/demo"
