/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sidecar's TLS material (tls_set.c): a reference-counted set of
 * SSL_CTXs built from one version of the certificate folder through
 * common/ pki, and the one "current" set that new connections take. Opaque
 * outside tls_set.c and xprt_tls.c (tls_int.h).
 */
#ifndef SC_TLS_SET_H
#define SC_TLS_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet/err.h"

struct sc_tls_set; /* opaque: SSL_CTXs + metadata, reference counted */

struct sc_tls_info {
    uint64_t generation;
    int64_t not_before; /* of our certificate, Unix seconds */
    int64_t not_after;
    char sha256[96]; /* SHA-256 of our leaf, as duet_cert_info gives it */
    char serial[96];
    char version[256];       /* the ..data folder it came from */
    int64_t crl_next_update; /* the earliest nextUpdate of the CRLs, Unix seconds; 0: none */
    uint8_t trust[32];       /* SHA-256 over ca.crt and the CRL: what peers are judged by */
};

struct sc_tls_files {
    const char *cert;
    size_t cert_len;
    const char *key;
    size_t key_len;
    const char *ca;
    size_t ca_len;
    const char *crl; /* may be NULL */
    size_t crl_len;
    uint32_t session_lifetime_s; /* TLS session lifetime at most; 0: one hour */
};

/* What our certificate must be good for: outbound listeners present it as
 * a client, inbound ones as a server. */
#define SC_USE_CLIENT 0x1u
#define SC_USE_SERVER 0x2u

/*
 * Build and check a set from PEM text: key matches the certificate, the
 * certificate chains to ca and is valid now for every use in `uses`
 * (SC_USE_*), the CRL (if any) parses. Returns the set with one reference,
 * or NULL with eb saying why.
 */
struct sc_tls_set *sc_tls_set_build(const struct sc_tls_files *f, const char *version,
                                    uint64_t generation, unsigned uses, struct duet_errbuf *eb);
void sc_tls_set_ref(struct sc_tls_set *s);
/* Accepts NULL. */
void sc_tls_set_unref(struct sc_tls_set *s);
const struct sc_tls_info *sc_tls_set_info(const struct sc_tls_set *s);

/* The current set for new connections, with a reference; NULL while none is loaded. */
struct sc_tls_set *sc_tls_acquire(void);
/* Install s as current (takes the caller's reference). Any thread. */
void sc_tls_publish(struct sc_tls_set *s);
/* Drop the current set at exit. */
void sc_tls_shutdown(void);
/* A current set is loaded and its certificate has not expired (duet_clock). */
bool sc_tls_ready(void);
/* The set has a CRL and it is past its nextUpdate at `now` (Unix seconds):
 * every peer it is asked about is then refused. */
bool sc_tls_crl_stale(const struct sc_tls_info *info, int64_t now);
/* Do a and b judge peers alike (same ca.crt, same CRL)? */
bool sc_tls_same_trust(const struct sc_tls_set *a, const struct sc_tls_set *b);

#endif
