/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the PEM parsers that read files an operator or a
 * peer controls: certificate chains, private keys and CSRs. Keys are read
 * without a passphrase: the structure checks of encrypted keys run, but not
 * PBKDF2, whose iteration count comes from the input and would only make the
 * fuzzer time out.
 * Deterministic: no clock, no files; every object made is freed.
 */
#include <stddef.h>
#include <stdint.h>

#include "duet/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *pem = (const char *)data;
    struct duet_errbuf eb = {{0}};
    struct duet_chain *chain = NULL;
    struct duet_key *key = NULL;
    struct duet_csr *csr = NULL;
    struct duet_cert_info info;

    if (duet_chain_from_pem(pem, size, "fuzz", &chain, &eb) == 0) {
        for (size_t i = 0; i < duet_chain_len(chain); i++)
            (void)duet_cert_info(duet_chain_at(chain, i), &info);
    }
    if (duet_key_from_pem(pem, size, NULL, "fuzz", &key, &eb) == 0 && chain)
        (void)duet_key_matches_cert(key, duet_chain_at(chain, 0));
    duet_key_free(key);
    if (duet_csr_from_pem(pem, size, "fuzz", &csr, &eb) == 0)
        (void)duet_csr_info(csr, &info);
    duet_csr_free(csr);
    duet_chain_free(chain);
    return 0;
}
