/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only certificate factory over common/ pki: a throwaway CA and leaf
 * certificates issued from it, as PEM text ready for a TLS set. EC P-256
 * keys, so a test makes dozens in well under a second. Failures abort.
 */
#ifndef DUET_TL_PKI_H
#define DUET_TL_PKI_H

#include <stddef.h>
#include <stdint.h>

#include "duet/pki.h"

struct tl_ca {
    struct duet_key *key;
    struct duet_cert *cert;
    char *pem; /* ca.crt */
    size_t pem_len;
};

/* A PEM set as the agent publishes it: tls.crt, tls.key, ca.crt. */
struct tl_pem {
    char *cert, *key, *ca;
    size_t cert_len, key_len, ca_len;
};

/* A fresh EC P-256 root, valid from TL_CA_NOT_BEFORE until ten years from now. */
#define TL_CA_NOT_BEFORE 1577836800 /* 2020-01-01T00:00:00Z */
void tl_ca_new(struct tl_ca *ca, const char *cn);
void tl_ca_free(struct tl_ca *ca);
/* A leaf for CN `cn` with DNS SAN "localhost" and IP SAN 127.0.0.1, valid
 * from `now` for `validity` seconds, for `profile`. */
void tl_pem_issue(const struct tl_ca *ca, enum duet_profile profile, const char *cn, int64_t now,
                  int64_t validity, struct tl_pem *out);
void tl_pem_free(struct tl_pem *p);

#endif
