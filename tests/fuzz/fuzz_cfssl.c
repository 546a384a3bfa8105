/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what the agent makes of a CFSSL reply
 * (agent/src/issuer_cfssl.c): the JSON envelope, then for /sign the
 * certificate it carries (PEM chain, leaf details, usable life) and for
 * /info the profile's expiry. The HTTP exchange is libcurl's; from the
 * status and body on, these are the functions the daemon runs.
 *
 * Input: byte 0 picks the reply (bit 0: /info instead of /sign, bit 1:
 * /authsign's wording), bytes 1-2 the HTTP status (big-endian, modulo
 * 600), the rest is the body. Seeds are replies of a real `cfssl serve`
 * (tests/fuzz/corpus/cfssl/). DUET_FUZZ_VERBOSE=1 prints each verdict,
 * for triage of single inputs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "issuer_cfssl_int.h"

#include "duet/alloc.h"
#include "duet/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed "now" (2026-12-01T00:00:00Z) keeps the usable-life check
 * deterministic: the same input takes the same branch on every run. */
#define FUZZ_NOW 1796083200

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct duet_cert_info *info;
    struct duet_chain *chain = NULL;
    struct duet_errbuf eb = {{0}};
    char expiry[64];
    long status;
    char *body;
    int rc;

    /* The daemon stops reading at 256 KiB (REPLY_MAX). */
    if (size < 3 || size - 3 > 256 * 1024)
        return 0;
    status = (long)(((unsigned)data[1] << 8 | data[2]) % 600);
    /* libcurl's write callback hands the issuer a NUL-terminated copy. */
    body = malloc(size - 3 + 1);
    info = malloc(sizeof(*info));
    if (!body || !info)
        abort();
    memcpy(body, data + 3, size - 3);
    body[size - 3] = '\0';
    if (data[0] & 1) {
        rc = ag_cfssl_info_reply(body, status, expiry, sizeof(expiry), &eb);
        if (rc == 0 && !memchr(expiry, '\0', sizeof(expiry)))
            abort();
    } else {
        rc = ag_cfssl_sign_reply(body, status, data[0] & 2 ? "authsign" : "sign", FUZZ_NOW, &chain,
                                 info, &eb);
        /* A chain comes back exactly when the reply was accepted. */
        if ((rc == 0) != (chain != NULL) || (rc == 0 && duet_chain_len(chain) == 0))
            abort();
        duet_chain_free(chain);
    }
    /* For triage: what the agent would log about this reply. */
    if (getenv("DUET_FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz_cfssl: rc=%s %s\n", duet_err_name(rc), eb.msg);
    if (rc < 0 && eb.msg[0] == '\0')
        abort();
    free(info);
    free(body);
    return 0;
}
