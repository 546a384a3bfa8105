/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256 as lower-case hex, for names derived from untrusted strings. */
#ifndef DUET_DIGEST_H
#define DUET_DIGEST_H

#include <stddef.h>

#define DUET_SHA256_HEX_LEN 64

/* out receives 64 hex digits and a NUL. */
void duet_sha256_hex(const void *data, size_t len, char out[DUET_SHA256_HEX_LEN + 1]);

#endif
