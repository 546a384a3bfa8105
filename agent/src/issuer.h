/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where certificates come from: one small interface, two implementations.
 * `local` signs with a CA certificate and (encrypted) key read from files
 * (a mounted Secret), checked on every issuance and re-read when they
 * changed, so a rotated CA is picked up; `cfssl` asks a CloudFlare CFSSL
 * server over HTTP(S) with libcurl.
 *
 * An issuer returns what it was given by the CA; checking that the result
 * fits the key and identity is the caller's job (ag_set_check in
 * identity.h), done the same way for every issuer. Issuers are used from the
 * loop thread only. To sign, an issuer hands out a snapshot: an immutable,
 * counted handle whose signing is safe on any thread (it blocks, bounded by
 * the issuer's timeout; the agent signs off the loop), which outlives the
 * issuer if a signing thread still holds it (local: the parsed CA and its
 * key; cfssl: the configuration, each request on a curl handle of its own).
 */
#ifndef AG_ISSUER_H
#define AG_ISSUER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "duet/err.h"
#include "duet/pki.h"

struct ag_issuer;
struct ag_ca_snap;

struct ag_issue_req {
    const struct duet_csr *csr;
    const struct duet_subject *subject; /* expected subject, CN included */
    const struct duet_sans *sans;       /* expected SANs */
    int64_t validity_ms;                /* local only; CFSSL's profile decides */
    bool server;                        /* serverAuth certificate (local only) */
    const char *identity;               /* "dev/productA", for messages */
    /* Off the loop: set when the agent stops, and a request that waits on
     * the network gives up (cfssl polls it at least once a second). NULL on
     * the loop, where a pending SIGTERM says the same. */
    const atomic_bool *abandon;
};

struct ag_issue_result {
    struct duet_chain *chain;  /* leaf first, then intermediates; owned */
    struct duet_chain *bundle; /* trust bundle to publish as ca.crt; owned */
};

void ag_issue_result_clear(struct ag_issue_result *r);

struct ag_issuer_ops {
    const char *name;
    /* The current trust bundle (re-read from its file); owned by the caller. */
    int (*bundle)(struct ag_issuer *is, struct duet_chain **out, struct duet_errbuf *eb);
    /*
     * Check, without the network, that every file the configuration names
     * is there and usable (certificates parse, the CA key decrypts and
     * matches its certificate, the auth key is hex). DUET_E_ISSUER_FILES
     * (class CONFIG) with eb naming the field, e.g. "issuer.ca_key: ...".
     */
    int (*validate)(struct ag_issuer *is, struct duet_errbuf *eb);
    /* Check the issuer can sign at all (CFSSL: POST /info, at most 2 s). May be NULL. */
    int (*ready)(struct ag_issuer *is, struct duet_errbuf *eb);
    /*
     * The CA certificate that signs (re-read from its file), first in *out,
     * owned by the caller; a set signed by another CA no longer matches the
     * configuration. May be NULL (CFSSL: only the bundle is known).
     */
    int (*signer)(struct ag_issuer *is, struct duet_chain **out, struct duet_errbuf *eb);
    /*
     * The issuer as it is now (local: its files are checked, and re-read
     * when they changed), as a snapshot for ag_ca_snap_sign: 0 and a
     * reference in *out, or why not (the file at fault).
     */
    int (*snapshot)(struct ag_issuer *is, struct ag_ca_snap **out, struct duet_errbuf *eb);
    void (*free)(struct ag_issuer *is);
};

/* A snapshot's common part, first in each issuer's own. */
struct ag_ca_snap {
    unsigned refs; /* taken and dropped on the loop thread only */
    int (*sign)(const struct ag_ca_snap *s, const struct ag_issue_req *req,
                struct ag_issue_result *out, struct duet_errbuf *eb);
    void (*destroy)(struct ag_ca_snap *s);
};

/*
 * Obtain a certificate for req->csr: 0 and a filled *out (owned by the
 * caller), or a negative code with eb saying why (CFSSL's error code and
 * message, the HTTP status, the file at fault). Safe on any thread and on
 * several at once (BoringSSL's private-key operations on a shared key are;
 * curl handles are not shared; the snapshot is never modified). The
 * snapshot must stay referenced meanwhile.
 */
static inline int ag_ca_snap_sign(const struct ag_ca_snap *s, const struct ag_issue_req *req,
                                  struct ag_issue_result *out,
                                  struct duet_errbuf *eb) DUET_MUST_CHECK;
static inline int ag_ca_snap_sign(const struct ag_ca_snap *s, const struct ag_issue_req *req,
                                  struct ag_issue_result *out, struct duet_errbuf *eb)
{
    return s->sign(s, req, out, eb);
}

/* Another reference to s, which the caller holds. Loop thread. */
static inline struct ag_ca_snap *ag_ca_snap_get(struct ag_ca_snap *s)
{
    s->refs++;
    return s;
}

/* Drop a reference. Loop thread. NULL is fine. */
static inline void ag_ca_snap_put(struct ag_ca_snap *s)
{
    if (s && --s->refs == 0)
        s->destroy(s);
}

struct ag_issuer {
    const struct ag_issuer_ops *ops;
    /* The CA can put the URI SAN we ask for into certificates. CFSSL 1.2
     * cannot (it drops URI SANs from CSRs and turns `hosts` into DNS names),
     * so for it the URI SAN is not required. */
    bool uri_sans;
    /* notAfter - notBefore is the validity we ask for plus the backdating
     * (local); CFSSL's profile decides, so only an upper bound holds. */
    bool exact_lifetime;
    int64_t max_backdate_ms; /* issuer.max_backdate; 0: AG_MAX_BACKDATE_MS */
};

static inline void ag_issuer_free(struct ag_issuer *is)
{
    if (is)
        is->ops->free(is);
}

/*
 * Rewrite eb's message as "<prefix>: <message>" and return code, for a
 * layer that adds where the failure belongs (a field, a file, an issuer).
 */
int ag_err_prefix(struct duet_errbuf *eb, int code, const char *prefix);
/* eb's message under "issuer.<field>", as DUET_E_ISSUER_FILES (for validate). */
int ag_issuer_field_err(struct duet_errbuf *eb, const char *field);

/* Paths are copied. */
struct ag_local_opts {
    const char *ca_cert;
    const char *ca_key;
    const char *ca_key_passphrase_file; /* NULL: the key is not encrypted */
    const char *ca_bundle;              /* published as ca.crt; NULL: ca_cert */
};

int ag_issuer_local_new(const struct ag_local_opts *o, struct ag_issuer **out,
                        struct duet_errbuf *eb) DUET_MUST_CHECK;

struct ag_cfssl_opts {
    const char *url;            /* http:// or https://host:port, no path */
    const char *profile;        /* NULL or "": CFSSL's default profile */
    const char *server_profile; /* for server identities; NULL: profile */
    const char *auth_key_file;  /* hex key as in CFSSL's auth_keys; NULL: /sign */
    const char *ca_bundle;      /* roots issued certificates must chain to */
    const char *server_ca;      /* verifies CFSSL's HTTPS certificate; NULL: ca_bundle */
    const char *client_cert;    /* for -mutual-tls-ca; NULL: none */
    const char *client_key;
    int64_t timeout_ms; /* whole request; 0 means 10 s */
};

/* Needs curl_global_init() to have run (main does it once). */
int ag_issuer_cfssl_new(const struct ag_cfssl_opts *o, struct ag_issuer **out,
                        struct duet_errbuf *eb) DUET_MUST_CHECK;

#endif
