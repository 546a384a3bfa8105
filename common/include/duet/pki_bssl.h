/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bridge between duet's opaque pki types and raw BoringSSL objects.
 * Only files whose job is crypto include this (STYLE.md 2): common/src/pki*.c,
 * agent/src/issuer*.c and the sidecar's TLS files. Everyone else stays on
 * duet/pki.h.
 *
 * Accessors return BORROWED pointers: valid while the duet object lives, not
 * to be freed, and not to be modified (the caller may up-ref them to keep
 * them longer). Constructors from raw objects take a NEW reference (they call
 * *_up_ref) and leave the caller's reference alone, so the caller still
 * frees what it owns.
 */
#ifndef DUET_PKI_BSSL_H
#define DUET_PKI_BSSL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "duet/pki.h"

/* Borrowed. Never NULL for a valid object. */
X509 *duet_cert_x509(const struct duet_cert *c);
EVP_PKEY *duet_key_evp(const struct duet_key *k);
X509_REQ *duet_csr_req(const struct duet_csr *r);
/*
 * Borrowed: the chain's certificates in order (leaf first), e.g. for
 * SSL_CTX_set1_chain or X509_STORE_CTX_init. Stays in step with
 * duet_chain_push.
 */
STACK_OF(X509) * duet_chain_stack(const struct duet_chain *c);

/* New duet objects holding a new reference to the raw object (up-ref). */
int duet_cert_from_x509(X509 *x, struct duet_cert **out) DUET_MUST_CHECK;
int duet_key_from_evp(EVP_PKEY *pkey, struct duet_key **out) DUET_MUST_CHECK;
/* Seconds since the Unix epoch for an ASN1_TIME; 0 if it cannot be read. */
int64_t duet_asn1_time_to_unix(const ASN1_TIME *t);

/*
 * A new X509_STORE trusting every certificate of `bundle` (returned owned:
 * X509_STORE_free). NULL on allocation failure.
 */
X509_STORE *duet_chain_to_store(const struct duet_chain *bundle);

#endif
