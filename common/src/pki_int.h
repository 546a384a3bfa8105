/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to common/src/pki*.c: the layout of the opaque pki types and the
 * helpers the pki files share (duet__ prefix, STYLE.md 3).
 *
 * Invariants: every object holds exactly one reference to its BoringSSL
 * object, which is never NULL while the object lives. A chain keeps its
 * certificates twice, as duet_cert wrappers (so duet_chain_at can hand out
 * borrowed duet_cert pointers) and as a STACK_OF(X509) holding its own
 * references (for BoringSSL calls); both are in the same order.
 */
#ifndef DUET_PKI_INT_H
#define DUET_PKI_INT_H

#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "duet/pki.h"
#include "duet/pki_bssl.h"

struct duet_key {
    EVP_PKEY *pkey;
};

struct duet_cert {
    X509 *x;
};

struct duet_chain {
    struct duet_cert **certs;
    size_t n, cap;
    STACK_OF(X509) * sk;
};

struct duet_csr {
    X509_REQ *req;
};

/* Largest PEM file pki reads: a long trust bundle fits, a mistaken binary does not. */
#define DUET_PKI_MAX_FILE (1024 * 1024)

/* PBKDF2-HMAC-SHA256 iterations for keys duet encrypts (OWASP 2023 figure). */
#define DUET_PKI_KDF_ITERATIONS 600000

/*
 * duet_file_read capped at DUET_PKI_MAX_FILE, with eb naming the path at
 * fault. The caller releases the buffer with duet_secret_free (it may hold
 * a key).
 */
int duet__pki_read_file(const char *path, char **buf, size_t *len,
                        struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * A read-only memory BIO over caller input, after the checks every PEM reader
 * makes: empty input is DUET_E_PEM ("<what>: empty input, no <kind>"), more
 * than DUET_PKI_MAX_FILE is DUET_E_TOOBIG. The BIO borrows pem.
 */
int duet__pki_mem_bio(const char *pem, size_t len, const char *what, const char *kind, BIO **out,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;

/* Wrap a PEM/DER buffer produced by BoringSSL into a NUL-terminated duet_malloc copy. */
int duet__pki_bio_to_string(BIO *bio, char **out, size_t *len) DUET_MUST_CHECK;

/* The message digest duet signs with for this key: SHA-384 for P-384, else SHA-256. */
const EVP_MD *duet__pki_digest_for(const EVP_PKEY *signer);

/* Fill an X509_NAME from a subject (C PrintableString, others UTF8String). */
int duet__pki_name_from_subject(X509_NAME *name, const struct duet_subject *s,
                                struct duet_errbuf *eb) DUET_MUST_CHECK;
/* A subjectAltName extension value from sans; NULL when sans has no entry. */
int duet__pki_gens_from_sans(const struct duet_sans *sans, GENERAL_NAMES **out,
                             struct duet_errbuf *eb) DUET_MUST_CHECK;
/* "RSA 2048", "EC P-256", "Ed25519", or "unknown". */
const char *duet__pki_describe_evp(const EVP_PKEY *pkey, char *buf, size_t size);
/* Append an extension given in OpenSSL config syntax ("critical,CA:FALSE"). */
int duet__pki_add_ext_conf(X509 *x, X509 *issuer, int nid, const char *value,
                           struct duet_errbuf *eb) DUET_MUST_CHECK;

#endif
