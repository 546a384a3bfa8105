/* SPDX-License-Identifier: Apache-2.0 */
/* duet/digest.h on BoringSSL's SHA-256. */
#include <openssl/sha.h>

#include "duet/digest.h"

void duet_sha256_hex(const void *data, size_t len, char out[DUET_SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256(data, len, md);
    for (size_t i = 0; i < sizeof(md); i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[DUET_SHA256_HEX_LEN] = '\0';
}
