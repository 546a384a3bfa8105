/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One identity (env + product) of the agent: what it must look like (key
 * type, subject, URI SAN, folder), its rotation state and its counters.
 * An issuance has two halves: ag_ident_obtain() makes a key and CSR and
 * obtains a checked certificate, on any thread (the daemon runs it off the
 * loop: renew.c, csi_vol.c); ag_ident_install() publishes the set, on the
 * loop. ag_ident_issue() is both in a row. ag_ident_check_disk() reads the
 * published set back and decides whether it can be kept.
 */
#ifndef AG_IDENTITY_H
#define AG_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "issuer.h"
#include "rotate.h"

#include "duet/err.h"
#include "duet/file.h"
#include "duet/pki.h"
#include "duet/vol.h"

struct ag_keypool;

/* What a certificate must carry to be published or kept. */
struct ag_set_expect {
    const struct duet_subject *subject; /* every field, CN included */
    const char *uri;                    /* the SPIFFE URI SAN */
    bool require_uri;                   /* false for issuers that cannot add it */
    bool server;                        /* serverAuth instead of clientAuth */
    const struct duet_sans *sans;       /* DNS names a server certificate must carry */
    /* What the configuration fixes beyond the names (ag_cert_conforms). */
    enum duet_key_type key_type;    /* 0: not compared */
    int64_t validity_ms;            /* 0: lifetime not compared */
    bool exact_lifetime;            /* the issuer honours validity_ms (local) */
    int64_t max_backdate_ms;        /* 0: AG_MAX_BACKDATE_MS */
    const struct duet_cert *signer; /* the configured CA certificate; NULL: any in the bundle */
};

/*
 * How far an issuer may backdate notBefore by default: CFSSL takes about
 * five minutes, rounded down to the minute (so up to 5m59s); the local
 * issuer min(5 min, validity / 10). Configurable as issuer.max_backdate.
 */
#define AG_MAX_BACKDATE_MS (6 * 60 * 1000)

/*
 * Does leaf (with info, its duet_cert_info) match what exp asks for, beyond
 * key and chain: CA:FALSE, keyUsage, extendedKeyUsage, exact subject and
 * SANs, key type, lifetime, signer (ident_check.c says precisely). `now` in
 * seconds. 0, or DUET_E_VERIFY with eb naming the field that differs.
 */
int ag_cert_conforms(const struct ag_set_expect *exp, const struct duet_cert *leaf,
                     const struct duet_cert_info *info, int64_t now,
                     struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * The key matches chain[0], the chain verifies against bundle at `now` for
 * client authentication, and the subject, clientAuth and (when required)
 * URI SAN are as expected. Fills *info for the caller's logs. Returns 0 or
 * a negative code with eb saying what is wrong.
 */
int ag_set_check(const struct ag_set_expect *exp, const struct duet_key *key,
                 const struct duet_chain *chain, const struct duet_chain *bundle, int64_t now,
                 struct duet_cert_info *info, struct duet_errbuf *eb) DUET_MUST_CHECK;

/* Identity of the files of a published set, to skip re-reading an unchanged one. */
struct ag_disk_sig {
    char data[256];                             /* the ..data target */
    struct duet_file_sig files[DUET_VOL_SET_N]; /* in duet_vol_set_names order */
    struct duet_file_sig dir, version;          /* a chmod of the folders shows (item 16) */
};

struct ag_ident_params {
    const char *env, *product, *trust_domain, *output_dir, *cn_template;
    const struct duet_subject *subject; /* C, ST, L, O, OU, emailAddress; CN is ignored */
    enum duet_key_type key_type;
    int64_t validity_ms;
    bool server;
    const char *const *dns; /* copied */
    size_t n_dns;
    const char *const *ips; /* copied */
    size_t n_ips;
    /* A pod's volume (csi_vol.c) overrides the folder identity's derived
     * values; NULL / false keep output_dir/env/product, the env/product
     * SPIFFE path, "env/product" and the policy's key_group. */
    const char *dir;
    const char *root; /* nothing below it is trusted (duet_vol_opts.root); default output_dir */
    const char *uri;
    const char *name;
    bool has_group;
    gid_t group;
};

struct ag_ident {
    char *product;
    char *name; /* "env/product", for logs and metrics */
    char *dir;  /* output_dir/env/product */
    char *root; /* output_dir: nothing below it is trusted (duet_vol_opts.root) */
    char *uri;  /* spiffe://trust_domain/env/product */
    enum duet_key_type key_type;
    int64_t validity_ms;
    bool server;
    bool has_group; /* group below instead of the policy's key_group */
    gid_t group;
    const char *uris[1];         /* { uri } */
    char **dns, **ips;           /* owned copies: a thread may read them after a reload */
    struct duet_sans sans;       /* uri, and DNS/IP for a server identity */
    struct duet_subject subject; /* with the CN from the template */

    struct ag_rotate_state rot;
    struct ag_disk_sig sig; /* of the set last found good on disk */
    bool sig_valid;
    char serial[96];
    char sha256[96];
    unsigned attempt; /* consecutive failed issuances */
    /* Key of an issuance that failed, reused by the retries so an issuer
     * outage does not cost a key generation per attempt (RSA: about 0.1 s
     * of CPU). Dropped once a set is published. Owned. */
    struct duet_key *pending_key;
    /* A renewal off the loop reads this identity (renew.c). ag_ident_free
     * then only marks it `orphaned`; the renewal frees it when it ends and
     * publishes nothing. Loop thread only. */
    bool renewing, orphaned;

    uint64_t renewals;    /* successful issuances */
    uint64_t failures;    /* failed issuances */
    uint64_t unsafe_sets; /* published sets found with a wrong mode/owner or a symlink */
    int64_t last_success; /* wall seconds, 0: never */
    bool keep;            /* scratch for the SIGHUP reconciliation */
};

/* Expand the CN template ({env}, {product}) into buf. DUET_E_TOOBIG if it does not fit. */
int ag_cn_expand(const char *tmpl, const char *env, const char *product, char *buf,
                 size_t size) DUET_MUST_CHECK;

int ag_ident_new(const struct ag_ident_params *p, struct ag_ident **out,
                 struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Gone for the caller; freed now, or when its renewal ends (renewing). */
void ag_ident_free(struct ag_ident *id);

/*
 * Carry rotation state, counters and the last certificate's serial and
 * fingerprint from `o` to its successor `n` (a configuration reload), so a
 * reload neither reissues valid sets nor resets the counters. The disk
 * signature is not carried: the successor re-reads the set once.
 */
void ag_ident_carry(struct ag_ident *n, const struct ag_ident *o);

/* Policy shared by every identity of one configuration. */
struct ag_policy {
    int64_t renew_before_ms; /* 0: the 70-90% rule */
    gid_t key_group;         /* (gid_t)-1: none */
    struct ag_keypool *keys; /* borrowed; NULL: every key is generated when needed */
};

/*
 * Read the published set back and check it against the issuer's current
 * bundle. Good: id->rot describes it (the renewal time is kept when it is
 * the certificate this process issued) and 0 is returned. Otherwise
 * id->rot.have turns false and the code says why (eb too).
 */
int ag_ident_check_disk(struct ag_ident *id, struct ag_issuer *is, const struct ag_policy *pol,
                        struct duet_errbuf *eb) DUET_MUST_CHECK;

/* True when the files of the set differ from the ones last found good. */
bool ag_ident_disk_changed(const struct ag_ident *id);

/*
 * Key, CSR, certificate, check, publish, on the calling thread. On success
 * the new set is live and id->rot, serial, counters are updated and the
 * issuance logged. On failure the published set is untouched and the key is
 * kept for the retry (pending_key); the caller counts and schedules it.
 */
int ag_ident_issue(struct ag_ident *id, struct ag_issuer *is, const struct ag_policy *pol,
                   struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * ag_ident_issue in two halves, for issuance off the loop (renew.c,
 * csi_vol.c). First, on the loop: what the certificate must look like under
 * issuer `is`, and a CA snapshot (ops->snapshot).
 */
struct ag_set_expect ag_ident_expect(const struct ag_ident *id, const struct ag_issuer *is);

/* What the thread half obtained, before it is published. */
struct ag_issued {
    struct duet_key *key;        /* the new private key; owned */
    struct ag_issue_result res;  /* owned */
    struct duet_cert_info *info; /* of res.chain[0]; owned */
    int64_t received;            /* wall ms, when the certificate was made */
};

/* Free what r holds (the key is cleansed by BoringSSL); leaves r zeroed. */
void ag_issued_clear(struct ag_issued *r);

/*
 * The thread half: a key (out->key if set, a retry's; else from keys, else
 * generated), its CSR, a certificate from snap (of the issuer named
 * `issuer`, for messages), checked against exp (which points into id). Safe
 * on any thread: reads id and exp, which nothing may change meanwhile,
 * writes only *out (owned by the caller, ag_issued_clear). 0 or a negative
 * code with eb saying why; then only out->key is left, for a retry.
 */
int ag_ident_obtain(const struct ag_ident *id, const struct ag_set_expect *exp,
                    const struct ag_ca_snap *snap, const char *issuer, struct ag_keypool *keys,
                    const atomic_bool *abandon, struct ag_issued *out,
                    struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * The loop half: publish r (the caller keeps it and clears it) and update id
 * as ag_ident_issue does; `issuer` names it in the log, t0 (monotonic ms)
 * is when the issuance started.
 */
int ag_ident_install(struct ag_ident *id, const struct ag_issued *r, const char *issuer,
                     const struct ag_policy *pol, int64_t t0,
                     struct duet_errbuf *eb) DUET_MUST_CHECK;

#endif
