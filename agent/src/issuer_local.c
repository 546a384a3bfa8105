/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local issuer: signs with a CA certificate and private key read from
 * files, typically a mounted Kubernetes Secret. What it reads is cached,
 * keyed by the identity (device, inode, size, times) of each file, and
 * every issuance checks those identities first, so replacing the Secret
 * (an update swaps ..data) rotates the CA without a restart or a signal:
 * - the decrypted key, per key and passphrase file: a key written by
 *   `duet-agent ca init` costs 600,000 PBKDF2 rounds (about half a second)
 *   to decrypt, far more than the issuance itself;
 * - a snapshot (ag_ca_snap) of the parsed CA certificate, its intermediates,
 *   the trust bundle and a reference to that key: four stat(2) calls per
 *   issuance instead of parsing two PEM files, and what signing threads
 *   share (a snapshot never changes; a new one replaces it).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/mem.h>

#include "issuer.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/err.h"
#include "duet/file.h"
#include "duet/pki.h"

struct local_snap {
    struct ag_ca_snap base;   /* first: ag_ca_snap_sign receives &base */
    struct duet_chain *ca;    /* ca_cert: [0] signs */
    struct duet_chain *inter; /* what follows the leaf in tls.crt: ca's non-self-issued */
    struct duet_chain *bundle;
    struct duet_key *key; /* a reference to the CA key it was made with */
    unsigned key_gen;     /* local_issuer.key_gen of that key */
};

struct local_issuer {
    struct ag_issuer base; /* first: the ops receive &base */
    char *ca_cert;
    char *ca_key;
    char *pass_file;                  /* NULL: unencrypted key */
    char *ca_bundle;                  /* the trust bundle published as ca.crt */
    struct duet_key *key;             /* cached CA key; NULL until loaded */
    struct duet_file_sig key_sig[2];  /* of ca_key and pass_file when key was loaded */
    unsigned key_gen;                 /* counts the loads of key */
    struct local_snap *snap;          /* current snapshot (one reference); NULL until made */
    struct duet_file_sig snap_sig[2]; /* of ca_cert and ca_bundle when snap was made */
};

void ag_issue_result_clear(struct ag_issue_result *r)
{
    duet_chain_free(r->chain);
    duet_chain_free(r->bundle);
    r->chain = NULL;
    r->bundle = NULL;
}

/*
 * The passphrase: the file's first line, without its line ending (files
 * written by `echo` or an editor end with one; the OpenSSL CLI's
 * -passin file: reads the first line too). The caller cleanses `buf`.
 */
/* The first line, as openssl's -passin file: reads it (the file may end in a newline). */
static int read_passphrase(const char *path, char *buf, size_t size, struct duet_errbuf *eb)
{
    char *text = NULL;
    size_t len = 0, line;
    int rc = duet_file_read(path, 4096, &text, &len);

    if (rc < 0)
        return duet_errf(eb, rc == DUET_E_TOOBIG ? DUET_E_PASSPHRASE : rc,
                         "ca_key_passphrase_file %s: %s", path, duet_strerror(rc));
    line = strcspn(text, "\r\n");
    if (line == 0 || line >= size) {
        duet_file_free(text, len);
        return duet_errf(eb, DUET_E_PASSPHRASE, "ca_key_passphrase_file %s: %s", path,
                         line ? "passphrase too long" : "empty");
    }
    memcpy(buf, text, line);
    buf[line] = '\0';
    duet_file_free(text, len);
    return 0;
}

/* The CA key, from the cache when neither file changed. Borrowed by the caller. */
static int load_ca_key(struct local_issuer *li, const struct duet_key **out, struct duet_errbuf *eb)
{
    struct duet_file_sig sig[2];
    char pass[1024];
    int rc = 0;

    duet_file_sig_get(li->ca_key, &sig[0]);
    duet_file_sig_get(li->pass_file, &sig[1]);
    if (li->key && duet_file_sig_equal(&sig[0], &li->key_sig[0]) &&
        duet_file_sig_equal(&sig[1], &li->key_sig[1])) {
        *out = li->key;
        return 0;
    }
    duet_key_free(li->key);
    li->key = NULL;
    if (li->pass_file)
        rc = read_passphrase(li->pass_file, pass, sizeof(pass), eb);
    if (rc == 0)
        rc = duet_key_load(li->ca_key, li->pass_file ? pass : NULL, &li->key, eb);
    OPENSSL_cleanse(pass, sizeof(pass));
    if (rc < 0)
        return rc;
    memcpy(li->key_sig, sig, sizeof(sig));
    li->key_gen++;
    *out = li->key;
    return 0;
}

static int local_bundle(struct ag_issuer *is, struct duet_chain **out, struct duet_errbuf *eb)
{
    struct local_issuer *li = (struct local_issuer *)is;

    return duet_chain_load(li->ca_bundle, out, eb);
}

/*
 * tls.crt holds the leaf then any intermediates (DESIGN.md): when ca_cert
 * is an intermediate CA, it and every other certificate of that file that
 * is not self-issued follow the leaf, so peers that trust only the root
 * (ca_bundle) can build the path.
 */
static int find_intermediates(const struct duet_chain *ca, struct duet_chain *out)
{
    struct duet_cert_info *info = duet_malloc(sizeof(*info));
    int rc = 0;

    if (!info)
        return DUET_ENOMEM;
    for (size_t i = 0; rc == 0 && i < duet_chain_len(ca); i++) {
        rc = duet_cert_info(duet_chain_at(ca, i), info);
        if (rc == 0 && strcmp(info->subject, info->issuer) != 0)
            rc = duet_chain_push(out, duet_chain_at(ca, i));
    }
    duet_free(info);
    return rc;
}

static void snap_destroy(struct ag_ca_snap *base)
{
    struct local_snap *s = (struct local_snap *)base;

    duet_chain_free(s->ca);
    duet_chain_free(s->inter);
    duet_chain_free(s->bundle);
    duet_key_free(s->key);
    duet_free(s);
}

static int snap_sign(const struct ag_ca_snap *base, const struct ag_issue_req *req,
                     struct ag_issue_result *out, struct duet_errbuf *eb);

/* Read the CA certificate and bundle (in that order, as before the cache: the same first error). */
static int snap_new(struct local_issuer *li, struct local_snap **out, struct duet_errbuf *eb)
{
    struct local_snap *s = duet_calloc(1, sizeof(*s));
    const struct duet_key *key = NULL;
    int rc;

    if (!s)
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    s->base.refs = 1;
    s->base.sign = snap_sign;
    s->base.destroy = snap_destroy;
    DUET_TRY_GOTO(duet_chain_load(li->ca_cert, &s->ca, eb), rc, fail);
    DUET_TRY_GOTO(duet_chain_load(li->ca_bundle, &s->bundle, eb), rc, fail);
    DUET_TRY_GOTO(load_ca_key(li, &key, eb), rc, fail);
    DUET_TRY_GOTO(duet_chain_new(&s->inter), rc, nomem);
    DUET_TRY_GOTO(find_intermediates(s->ca, s->inter), rc, nomem);
    DUET_TRY_GOTO(duet_key_ref(key, &s->key), rc, nomem);
    s->key_gen = li->key_gen;
    *out = s;
    return 0;
nomem:
    duet_errf(eb, rc, "out of memory");
fail:
    ag_ca_snap_put(&s->base);
    return rc;
}

/*
 * The current snapshot, made again when a file changed. The signatures are
 * taken before reading, so a file replaced during the read makes the next
 * call differ and read again.
 */
static int local_snapshot(struct ag_issuer *is, struct ag_ca_snap **out, struct duet_errbuf *eb)
{
    struct local_issuer *li = (struct local_issuer *)is;
    const struct duet_key *key = NULL;
    struct duet_file_sig sig[2];
    bool fresh;

    duet_file_sig_get(li->ca_cert, &sig[0]);
    duet_file_sig_get(li->ca_bundle, &sig[1]);
    fresh = li->snap && duet_file_sig_equal(&sig[0], &li->snap_sig[0]) &&
            duet_file_sig_equal(&sig[1], &li->snap_sig[1]);
    if (fresh) {
        DUET_TRY(load_ca_key(li, &key, eb)); /* two stat(2); reloads a changed key */
        fresh = li->snap->key_gen == li->key_gen;
    }
    if (!fresh) {
        struct local_snap *s = NULL;

        DUET_TRY(snap_new(li, &s, eb));
        if (li->snap)
            ag_ca_snap_put(&li->snap->base);
        li->snap = s;
        memcpy(li->snap_sig, sig, sizeof(sig));
    }
    *out = ag_ca_snap_get(&li->snap->base);
    return 0;
}

static int snap_sign(const struct ag_ca_snap *base, const struct ag_issue_req *req,
                     struct ag_issue_result *out, struct duet_errbuf *eb)
{
    const struct local_snap *s = (const struct local_snap *)base;
    struct duet_cert *leaf = NULL;
    struct ag_issue_result res = {0};
    int rc;

    struct duet_sign_req sr = {
        .csr = req->csr,
        .ca_cert = duet_chain_at(s->ca, 0),
        .ca_key = s->key,
        .profile = req->server ? DUET_PROFILE_SERVER : DUET_PROFILE_CLIENT,
        .now = duet_clock_now(),
        .validity = req->validity_ms / 1000,
        .subject = req->subject,
        .sans = req->sans,
    };
    DUET_TRY_GOTO(duet_cert_sign(&sr, &leaf, eb), rc, out);
    rc = duet_chain_new(&res.chain);
    for (size_t i = 0; rc == 0 && i <= duet_chain_len(s->inter); i++)
        rc = duet_chain_push(res.chain, i == 0 ? leaf : duet_chain_at(s->inter, i - 1));
    if (rc == 0)
        rc = duet_chain_new(&res.bundle);
    for (size_t i = 0; rc == 0 && i < duet_chain_len(s->bundle); i++)
        rc = duet_chain_push(res.bundle, duet_chain_at(s->bundle, i));
    if (rc < 0) {
        duet_errf(eb, rc, "out of memory");
        goto out;
    }
    *out = res;
    res.chain = NULL;
    res.bundle = NULL;
out:
    ag_issue_result_clear(&res);
    duet_cert_free(leaf);
    return rc;
}

static int local_validate(struct ag_issuer *is, struct duet_errbuf *eb)
{
    struct local_issuer *li = (struct local_issuer *)is;
    struct duet_chain *ca = NULL, *bundle = NULL;
    const struct duet_key *key = NULL;
    int rc = 0;

    if (duet_chain_load(li->ca_cert, &ca, eb) < 0)
        rc = ag_issuer_field_err(eb, "ca_cert");
    else if (duet_chain_load(li->ca_bundle, &bundle, eb) < 0)
        rc = ag_issuer_field_err(eb, "ca_bundle");
    else if ((rc = load_ca_key(li, &key, eb)) < 0)
        rc = ag_issuer_field_err(
            eb, rc == DUET_E_PASSPHRASE && li->pass_file ? "ca_key_passphrase_file" : "ca_key");
    else if (duet_key_matches_cert(key, duet_chain_at(ca, 0)) < 0)
        rc =
            duet_errf(eb, DUET_E_ISSUER_FILES, "issuer.ca_key: %s does not match issuer.ca_cert %s",
                      li->ca_key, li->ca_cert);
    duet_chain_free(bundle);
    duet_chain_free(ca);
    return rc;
}

static int local_signer(struct ag_issuer *is, struct duet_chain **out, struct duet_errbuf *eb)
{
    struct local_issuer *li = (struct local_issuer *)is;

    return duet_chain_load(li->ca_cert, out, eb);
}

static void local_free(struct ag_issuer *is)
{
    struct local_issuer *li = (struct local_issuer *)is;

    duet_free(li->ca_cert);
    duet_free(li->ca_key);
    duet_free(li->pass_file);
    duet_free(li->ca_bundle);
    if (li->snap)
        ag_ca_snap_put(&li->snap->base);
    duet_key_free(li->key);
    duet_free(li);
}

static const struct ag_issuer_ops local_ops = {
    .name = "local",
    .bundle = local_bundle,
    .validate = local_validate,
    .ready = NULL,
    .signer = local_signer,
    .snapshot = local_snapshot,
    .free = local_free,
};

int ag_issuer_local_new(const struct ag_local_opts *o, struct ag_issuer **out,
                        struct duet_errbuf *eb)
{
    struct local_issuer *li = duet_calloc(1, sizeof(*li));

    if (!li)
        return duet_errf(eb, DUET_ENOMEM, "local issuer: out of memory");
    li->base.ops = &local_ops;
    li->base.uri_sans = true;
    li->base.exact_lifetime = true;
    li->ca_cert = duet_strdup(o->ca_cert);
    li->ca_key = duet_strdup(o->ca_key);
    if (o->ca_key_passphrase_file)
        li->pass_file = duet_strdup(o->ca_key_passphrase_file);
    li->ca_bundle = duet_strdup(o->ca_bundle ? o->ca_bundle : o->ca_cert);
    if (!li->ca_cert || !li->ca_key || !li->ca_bundle ||
        (o->ca_key_passphrase_file && !li->pass_file)) {
        local_free(&li->base);
        return duet_errf(eb, DUET_ENOMEM, "local issuer: out of memory");
    }
    *out = &li->base;
    return 0;
}
