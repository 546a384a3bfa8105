/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys, certificates and CSRs over BoringSSL, behind opaque duet_ types so
 * that only crypto files include BoringSSL headers (STYLE.md 2).
 *
 * Conventions: every function that can fail returns 0 or a negative DUET_E*
 * code and, when given an errbuf, fills it with one line naming the file or
 * field at fault. Objects returned through `out` are owned by the caller and
 * released with the matching _free (all accept NULL). Inputs are borrowed.
 * Times are seconds since the Unix epoch.
 */
#ifndef DUET_PKI_H
#define DUET_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet/compiler.h"
#include "duet/err.h"

enum duet_key_type {
    DUET_KEY_RSA2048 = 1,
    DUET_KEY_RSA3072,
    DUET_KEY_RSA4096,
    DUET_KEY_EC_P256,
    DUET_KEY_EC_P384,
};

/* "rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384". */
int duet_key_type_parse(const char *s, enum duet_key_type *out) DUET_MUST_CHECK;
const char *duet_key_type_name(enum duet_key_type t);

struct duet_key;   /* a private key */
struct duet_cert;  /* one X.509 certificate */
struct duet_chain; /* an ordered list of certificates: leaf first, or a trust bundle */
struct duet_csr;   /* a PKCS#10 request whose signature has been checked */

/* ---- keys ---- */

int duet_key_generate(enum duet_key_type t, struct duet_key **out,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;
/*
 * Read a PEM private key: PKCS#8 (plain or encrypted: PBES2 with AES or
 * DES-EDE3, PBES1), traditional RSA/EC (plain or DEK-Info encrypted). An
 * encrypted key needs `pass`; a missing or wrong one gives DUET_E_PASSPHRASE.
 * `what` names the source in messages (usually the path).
 */
int duet_key_from_pem(const char *pem, size_t len, const char *pass, const char *what,
                      struct duet_key **out, struct duet_errbuf *eb) DUET_MUST_CHECK;
int duet_key_load(const char *path, const char *pass, struct duet_key **out,
                  struct duet_errbuf *eb) DUET_MUST_CHECK;
/*
 * PEM PKCS#8. With `pass`, encrypted as PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC
 * with 600,000 iterations and a random 16-byte salt (readable by `openssl pkey
 * -passin`; decrypting it costs about a quarter of a second, on purpose). *pem is NUL-terminated
 * and owned by the caller, who must release it with duet_secret_free (it holds a key).
 */
int duet_key_to_pem(const struct duet_key *k, const char *pass, char **pem, size_t *len,
                    struct duet_errbuf *eb) DUET_MUST_CHECK;
void duet_key_free(struct duet_key *k);
/*
 * A second handle on the same key (BoringSSL's reference count), released
 * with duet_key_free like any key. Private-key operations through either
 * handle may run on several threads at once (BoringSSL's RSA and EC keys
 * are safe for concurrent signing); nothing may modify the key meanwhile.
 */
int duet_key_ref(const struct duet_key *k, struct duet_key **out) DUET_MUST_CHECK;
/* "RSA 2048", "EC P-256". Returns buf. */
const char *duet_key_describe(const struct duet_key *k, char *buf, size_t size);
/* 0 if the key is the private half of the certificate's public key, else DUET_E_KEY_MISMATCH. */
int duet_key_matches_cert(const struct duet_key *k, const struct duet_cert *c) DUET_MUST_CHECK;

/* Cleanse then free a buffer that held secret material. */
void duet_secret_free(void *p, size_t len);

/*
 * A passphrase of `len` characters (out must hold len + 1) from the CSPRNG:
 * upper, lower, digits and symbols, at least one of each class, never
 * '"', '\'', '\\', '`', '<' or '>'.
 */
int duet_passphrase_generate(char *out, size_t len) DUET_MUST_CHECK;

/* ---- certificates and chains ---- */

/*
 * Every CERTIFICATE block in the PEM, in order; none at all is DUET_E_PEM,
 * and so is a private key block (a certificate file is readable by more
 * than its key). The _mixed variant skips keys, for `inspect`, which reads
 * whatever PEM it is given and never publishes it.
 */
int duet_chain_from_pem(const char *pem, size_t len, const char *what, struct duet_chain **out,
                        struct duet_errbuf *eb) DUET_MUST_CHECK;
int duet_chain_from_mixed_pem(const char *pem, size_t len, const char *what,
                              struct duet_chain **out, struct duet_errbuf *eb) DUET_MUST_CHECK;
int duet_chain_load(const char *path, struct duet_chain **out,
                    struct duet_errbuf *eb) DUET_MUST_CHECK;
int duet_chain_to_pem(const struct duet_chain *c, char **pem, size_t *len) DUET_MUST_CHECK;
int duet_chain_new(struct duet_chain **out) DUET_MUST_CHECK;
/* Append a copy (reference) of cert. */
int duet_chain_push(struct duet_chain *c, const struct duet_cert *cert) DUET_MUST_CHECK;
size_t duet_chain_len(const struct duet_chain *c);
/* Borrowed; valid while the chain lives. */
const struct duet_cert *duet_chain_at(const struct duet_chain *c, size_t i);
void duet_chain_free(struct duet_chain *c);

int duet_cert_to_pem(const struct duet_cert *c, char **pem, size_t *len) DUET_MUST_CHECK;
void duet_cert_free(struct duet_cert *c);

/* ---- names ---- */

/* The subject fields duet reads and writes; NULL means absent. */
struct duet_subject {
    char *c, *st, *l, *o, *ou, *cn, *email;
};

/*
 * Parse the OpenSSL CLI form "/C=LK/ST=WP/O=Example, Inc./CN=x" (keys C, ST,
 * L, O, OU, CN, emailAddress; "\/" escapes a slash). Unknown keys, empty
 * values and a missing leading '/' are refused with DUET_E_SUBJECT.
 */
int duet_subject_parse(const char *s, struct duet_subject *out,
                       struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Deep copy; dst must be empty (zeroed). */
int duet_subject_copy(struct duet_subject *dst, const struct duet_subject *src) DUET_MUST_CHECK;
/* Releases the strings; leaves the struct zeroed. */
void duet_subject_clear(struct duet_subject *s);

/* Subject alternative names. Pointers are borrowed. */
struct duet_sans {
    const char *const *uris;
    size_t n_uris;
    const char *const *dns;
    size_t n_dns;
    const char *const *ips; /* textual IPv4 or IPv6 */
    size_t n_ips;
};

/* ---- CSRs ---- */

int duet_csr_build(const struct duet_key *k, const struct duet_subject *subject,
                   const struct duet_sans *sans, struct duet_csr **out,
                   struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Parses and checks the self-signature (DUET_E_CSR when bad). */
int duet_csr_from_pem(const char *pem, size_t len, const char *what, struct duet_csr **out,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;
int duet_csr_load(const char *path, struct duet_csr **out, struct duet_errbuf *eb) DUET_MUST_CHECK;
int duet_csr_to_pem(const struct duet_csr *r, char **pem, size_t *len) DUET_MUST_CHECK;
void duet_csr_free(struct duet_csr *r);

/* ---- issuing ---- */

enum duet_profile {
    DUET_PROFILE_CLIENT = 1, /* clientAuth */
    DUET_PROFILE_SERVER,     /* serverAuth (+ clientAuth not added) */
};

struct duet_sign_req {
    const struct duet_csr *csr;
    const struct duet_cert *ca_cert;
    const struct duet_key *ca_key;
    enum duet_profile profile;
    int64_t now;      /* issuance time, seconds */
    int64_t validity; /* seconds; notAfter = now + validity */
    /* Overrides: the CA decides names, not the requester. NULL: take the CSR's. */
    const struct duet_subject *subject;
    const struct duet_sans *sans;
};

/*
 * Sign a v3 certificate: SHA-256 (SHA-384 for a P-384 CA), 128-bit random
 * positive serial, notBefore backdated by min(5 min, validity / 10),
 * basicConstraints CA:FALSE critical, keyUsage digitalSignature
 * (+keyEncipherment for RSA) critical, EKU from the profile, SKI, AKI.
 * Refuses a CA certificate that is not a CA (DUET_E_NOT_CA), a CA key that
 * does not match it (DUET_E_KEY_MISMATCH), and a notAfter beyond the CA's
 * own notAfter (DUET_E_EXPIRED).
 */
int duet_cert_sign(const struct duet_sign_req *r, struct duet_cert **out,
                   struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * A self-signed root: SHA-256 (SHA-384 for P-384), random serial,
 * basicConstraints CA:TRUE critical, keyUsage keyCertSign+cRLSign critical,
 * SKI, AKI; notBefore backdated like duet_cert_sign.
 */
int duet_ca_self_sign(const struct duet_key *k, const struct duet_subject *subject, int64_t now,
                      int64_t validity, struct duet_cert **out,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;

/* ---- verification ---- */

enum duet_purpose {
    DUET_PURPOSE_ANY = 0,
    DUET_PURPOSE_CLIENT,
    DUET_PURPOSE_SERVER,
};

/*
 * Verify chain[0] using chain[1..] as untrusted intermediates against the
 * roots in `bundle`, at time `at`, for `purpose`. DUET_E_EXPIRED when the
 * only problem is time, DUET_E_VERIFY otherwise (eb says why).
 */
int duet_chain_verify(const struct duet_chain *chain, const struct duet_chain *bundle, int64_t at,
                      enum duet_purpose purpose, struct duet_errbuf *eb) DUET_MUST_CHECK;

/* ---- display ---- */

#define DUET_CERT_MAX_SANS 16

struct duet_cert_info {
    char subject[512]; /* one line, RFC 2253-like: "CN=x,O=y" */
    char issuer[512];
    char cn[256];
    char serial[96]; /* hex, upper case, no separators */
    char sha256[96]; /* hex fingerprint of the DER, upper case, no separators */
    char key[32];    /* "RSA 2048", "EC P-256" */
    int64_t not_before;
    int64_t not_after;
    int version; /* 1 or 3 */
    bool is_ca;
    bool client_auth; /* EKU absent counts as any purpose (OpenSSL, BoringSSL agree) */
    bool server_auth;
    size_t n_uris, n_dns, n_ips;
    char uris[DUET_CERT_MAX_SANS][256];
    char dns[DUET_CERT_MAX_SANS][256];
    char ips[DUET_CERT_MAX_SANS][64];
};

int duet_cert_info(const struct duet_cert *c, struct duet_cert_info *out) DUET_MUST_CHECK;

/*
 * The one way a certificate is named in a log line, in both daemons
 * (STYLE.md 6: serial, SHA-256 and notAfter only), so that one certificate
 * can be followed from the agent that issued it to the sidecar that serves
 * it: "serial=<HEX> not_after=<Unix seconds> sha256=<HEX>", hex upper case
 * as duet_cert_info gives it. Returns buf, always NUL-terminated.
 */
#define DUET_CERT_LOG_MAX 256
const char *duet_cert_log_fields(char *buf, size_t size, const char *serial, int64_t not_after,
                                 const char *sha256);
/*
 * The same view of a CSR: subject, cn, key and the requested SANs are filled,
 * version is 1, everything else is zero.
 */
int duet_csr_info(const struct duet_csr *r, struct duet_cert_info *out) DUET_MUST_CHECK;
/* 0 if the key is the private half of the CSR's public key, else DUET_E_KEY_MISMATCH. */
int duet_key_matches_csr(const struct duet_key *k, const struct duet_csr *r) DUET_MUST_CHECK;

#endif
