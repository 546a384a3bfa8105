/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local issuer: signs with a CA certificate and private key read from
 * files, typically a mounted Kubernetes Secret. The certificate and bundle
 * are read again for every issuance, so replacing the Secret rotates the CA
 * without a restart or a signal. The decrypted key is cached, keyed by the
 * identity (device, inode, size, times) of the key and passphrase files:
 * a key written by `duet-agent ca init` costs 600,000 PBKDF2 rounds (about
 * half a second) to decrypt, far more than the issuance itself, and any
 * change to either file (a Secret update swaps ..data) reloads it.
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

struct local_issuer {
    struct ag_issuer base; /* first: the ops receive &base */
    char *ca_cert;
    char *ca_key;
    char *pass_file;                 /* NULL: unencrypted key */
    char *ca_bundle;                 /* the trust bundle published as ca.crt */
    struct duet_key *key;            /* cached CA key; NULL until loaded */
    struct duet_file_sig key_sig[2]; /* of ca_key and pass_file when key was loaded */
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
static int push_intermediates(struct duet_chain *chain, const struct duet_chain *ca)
{
    struct duet_cert_info *info = duet_malloc(sizeof(*info));
    int rc = 0;

    if (!info)
        return DUET_ENOMEM;
    for (size_t i = 0; rc == 0 && i < duet_chain_len(ca); i++) {
        rc = duet_cert_info(duet_chain_at(ca, i), info);
        if (rc == 0 && strcmp(info->subject, info->issuer) != 0)
            rc = duet_chain_push(chain, duet_chain_at(ca, i));
    }
    duet_free(info);
    return rc;
}

static int local_sign(struct ag_issuer *is, const struct ag_issue_req *req,
                      struct ag_issue_result *out, struct duet_errbuf *eb)
{
    struct local_issuer *li = (struct local_issuer *)is;
    const struct duet_key *ca_key = NULL;
    struct duet_cert *leaf = NULL;
    struct duet_chain *ca = NULL;
    struct ag_issue_result res = {0};
    int rc;

    DUET_TRY_GOTO(duet_chain_load(li->ca_cert, &ca, eb), rc, out);
    DUET_TRY_GOTO(duet_chain_load(li->ca_bundle, &res.bundle, eb), rc, out);
    DUET_TRY_GOTO(load_ca_key(li, &ca_key, eb), rc, out);
    struct duet_sign_req sr = {
        .csr = req->csr,
        .ca_cert = duet_chain_at(ca, 0),
        .ca_key = ca_key,
        .profile = req->server ? DUET_PROFILE_SERVER : DUET_PROFILE_CLIENT,
        .now = duet_clock_now(),
        .validity = req->validity_ms / 1000,
        .subject = req->subject,
        .sans = req->sans,
    };
    DUET_TRY_GOTO(duet_cert_sign(&sr, &leaf, eb), rc, out);
    DUET_TRY_GOTO(duet_chain_new(&res.chain), rc, out);
    DUET_TRY_GOTO(duet_chain_push(res.chain, leaf), rc, out);
    DUET_TRY_GOTO(push_intermediates(res.chain, ca), rc, out);
    *out = res;
    res.chain = NULL;
    res.bundle = NULL;
out:
    ag_issue_result_clear(&res);
    duet_chain_free(ca);
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
    duet_key_free(li->key);
    duet_free(li);
}

static const struct ag_issuer_ops local_ops = {
    .name = "local",
    .sign = local_sign,
    .bundle = local_bundle,
    .validate = local_validate,
    .ready = NULL,
    .signer = local_signer,
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
