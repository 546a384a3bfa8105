#!/bin/sh
# Fails when the binary $1 names OpenSSL's libssl.so.3 or libcrypto.so.3 in
# its own dynamic section (agent/CMakeLists.txt says why).
if readelf -d "$1" | grep -E 'NEEDED.*lib(ssl|crypto)\.so\.3'; then
    echo "$1 links OpenSSL directly beside BoringSSL" >&2
    exit 1
fi
exit 0
