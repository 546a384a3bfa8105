/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One identity's life: build its expected names, issue and publish a set,
 * read a published set back and judge it. The private key exists in this
 * process (a duet_key, then one cleansed PEM buffer) and in tls.key, nowhere
 * else; logs carry serial, notAfter and the SHA-256 fingerprint only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity.h"
#include "keypool.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/log.h"
#include "duet/vol.h"

/* Largest file of a set read back (a long chain or bundle fits easily). */
#define SET_MAX_FILE (1024 * 1024)

int ag_cn_expand(const char *tmpl, const char *env, const char *product, char *buf, size_t size)
{
    size_t n = 0;

    for (const char *p = tmpl; *p;) {
        const char *rep = NULL;
        size_t skip = 1, len;

        if (strncmp(p, "{env}", 5) == 0) {
            rep = env;
            skip = 5;
        } else if (strncmp(p, "{product}", 9) == 0) {
            rep = product;
            skip = 9;
        }
        len = rep ? strlen(rep) : 1;
        if (n + len >= size)
            return DUET_E_TOOBIG;
        memcpy(buf + n, rep ? rep : p, len);
        n += len;
        p += skip;
    }
    buf[n] = '\0';
    return 0;
}

/* An owned, NULL-terminated copy of n strings (NULL for none); false when out of memory. */
static bool strv_copy(const char *const *v, size_t n, char ***out)
{
    *out = NULL;
    if (n == 0)
        return true;
    *out = duet_calloc(n + 1, sizeof(**out));
    if (!*out)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((*out)[i] = duet_strdup(v[i])))
            return false;
    return true;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        duet_free(v[i]);
    duet_free(v);
}

int ag_ident_new(const struct ag_ident_params *p, struct ag_ident **out, struct duet_errbuf *eb)
{
    struct ag_ident *id = duet_calloc(1, sizeof(*id));
    char cn[256];
    int rc = DUET_ENOMEM;

    if (!id)
        return duet_errf(eb, rc, "out of memory");
    id->key_type = p->key_type;
    id->validity_ms = p->validity_ms;
    id->server = p->server;
    id->has_group = p->has_group;
    id->group = p->group;
    id->product = duet_strdup(p->product);
    id->name = p->name ? duet_strdup(p->name) : duet_strdupf("%s/%s", p->env, p->product);
    id->dir =
        p->dir ? duet_strdup(p->dir) : duet_strdupf("%s/%s/%s", p->output_dir, p->env, p->product);
    id->uri = p->uri ? duet_strdup(p->uri)
                     : duet_strdupf("spiffe://%s/%s/%s", p->trust_domain, p->env, p->product);
    id->root = duet_strdup(p->root ? p->root : p->output_dir);
    if (!id->product || !id->name || !id->dir || !id->uri || !id->root)
        goto fail;
    id->uris[0] = id->uri;
    id->sans.uris = id->uris;
    id->sans.n_uris = 1;
    id->sans.n_dns = p->n_dns;
    id->sans.n_ips = p->n_ips;
    if (!strv_copy(p->dns, p->n_dns, &id->dns) || !strv_copy(p->ips, p->n_ips, &id->ips))
        goto fail;
    id->sans.dns = (const char *const *)id->dns;
    id->sans.ips = (const char *const *)id->ips;
    if (ag_cn_expand(p->cn_template, p->env, p->product, cn, sizeof(cn)) < 0) {
        rc = duet_errf(eb, DUET_E_CFG_RANGE, "cn_template: the CN for %s is too long", p->product);
        goto fail;
    }
    if (duet_subject_copy(&id->subject, p->subject) < 0)
        goto fail;
    duet_free(id->subject.cn);
    id->subject.cn = duet_strdup(cn);
    if (!id->subject.cn)
        goto fail;
    *out = id;
    return 0;
fail:
    ag_ident_free(id);
    if (rc == DUET_ENOMEM)
        duet_errf(eb, rc, "out of memory");
    return rc;
}

void ag_ident_free(struct ag_ident *id)
{
    if (!id)
        return;
    if (id->renewing) {
        id->orphaned = true;
        return;
    }
    strv_free(id->dns);
    strv_free(id->ips);
    duet_key_free(id->pending_key);
    duet_subject_clear(&id->subject);
    duet_free(id->product);
    duet_free(id->name);
    duet_free(id->dir);
    duet_free(id->root);
    duet_free(id->uri);
    duet_free(id);
}

void ag_ident_carry(struct ag_ident *n, const struct ag_ident *o)
{
    n->rot = o->rot;
    n->renewals = o->renewals;
    n->failures = o->failures;
    n->unsafe_sets = o->unsafe_sets;
    n->last_success = o->last_success;
    n->attempt = o->attempt;
    memcpy(n->serial, o->serial, sizeof(n->serial));
    memcpy(n->sha256, o->sha256, sizeof(n->sha256));
}

static void disk_sig(const char *dir, struct ag_disk_sig *s)
{
    char path[4096];
    struct stat st;
    ssize_t n;

    memset(s, 0, sizeof(*s));
    snprintf(path, sizeof(path), "%s/%s", dir, DUET_VOL_DATA);
    n = readlink(path, s->data, sizeof(s->data) - 1);
    if (n > 0)
        s->data[n] = '\0';
    for (size_t i = 0; i < DUET_VOL_SET_N; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, duet_vol_set_names[i]);
        duet_file_sig_get(path, &s->files[i]);
    }
    if (lstat(dir, &st) == 0)
        duet_file_sig_from_stat(&st, &s->dir);
    snprintf(path, sizeof(path), "%s/" DUET_VOL_DATA "/", dir);
    if (lstat(path, &st) == 0)
        duet_file_sig_from_stat(&st, &s->version);
}

bool ag_ident_disk_changed(const struct ag_ident *id)
{
    struct ag_disk_sig now;

    if (!id->sig_valid)
        return true;
    disk_sig(id->dir, &now);
    return memcmp(&now, &id->sig, sizeof(now)) != 0;
}

static int same_bundle(const struct duet_chain *a, const struct duet_chain *b)
{
    char *pa = NULL, *pb = NULL;
    size_t la = 0, lb = 0;
    int rc = DUET_ENOMEM;

    if (duet_chain_to_pem(a, &pa, &la) == 0 && duet_chain_to_pem(b, &pb, &lb) == 0)
        rc = (la == lb && memcmp(pa, pb, la) == 0) ? 0 : DUET_E_VERIFY;
    duet_free(pa);
    duet_free(pb);
    return rc;
}

static void set_validity(struct ag_ident *id, const struct duet_cert_info *info, int64_t received,
                         const struct ag_policy *pol)
{
    id->rot.have = true;
    id->rot.v.not_before = info->not_before * 1000;
    id->rot.v.not_after = info->not_after * 1000;
    id->rot.v.received = received;
    id->rot.renew_at = ag_rotate_renew_at(&id->rot.v, pol->renew_before_ms, ag_rotate_uniform());
    snprintf(id->serial, sizeof(id->serial), "%s", info->serial);
    snprintf(id->sha256, sizeof(id->sha256), "%s", info->sha256);
}

static struct ag_set_expect expect_of(const struct ag_ident *id, const struct ag_issuer *is)
{
    struct ag_set_expect e = {
        .subject = &id->subject,
        .uri = id->uri,
        .require_uri = is->uri_sans,
        .server = id->server,
        .sans = &id->sans,
        .key_type = id->key_type,
        .validity_ms = id->validity_ms,
        .exact_lifetime = is->exact_lifetime,
        .max_backdate_ms = is->max_backdate_ms,
    };
    return e;
}

/* Parse and check the three blobs of a set read back from disk. */
static int judge_set(struct ag_ident *id, struct ag_issuer *is, const struct duet_vol_set *set,
                     struct duet_cert_info *info, struct duet_errbuf *eb)
{
    struct duet_key *key = NULL;
    struct duet_chain *chain = NULL, *published = NULL, *bundle = NULL, *signer = NULL;
    struct ag_set_expect exp = expect_of(id, is);
    const struct duet_vol_blob *k = &set->blobs[DUET_VOL_SET_KEY];
    const struct duet_vol_blob *c = &set->blobs[DUET_VOL_SET_CERT];
    const struct duet_vol_blob *b = &set->blobs[DUET_VOL_SET_CA];
    int rc;

    DUET_TRY_GOTO(duet_key_from_pem(k->data, k->len, NULL, DUET_VOL_KEY, &key, eb), rc, out);
    DUET_TRY_GOTO(duet_chain_from_pem(c->data, c->len, DUET_VOL_CERT, &chain, eb), rc, out);
    DUET_TRY_GOTO(duet_chain_from_pem(b->data, b->len, DUET_VOL_CA, &published, eb), rc, out);
    DUET_TRY_GOTO(is->ops->bundle(is, &bundle, eb), rc, out);
    /* A set from a CA the configuration no longer names is re-issued. */
    if (is->ops->signer) {
        DUET_TRY_GOTO(is->ops->signer(is, &signer, eb), rc, out);
        exp.signer = duet_chain_at(signer, 0);
    }
    DUET_TRY_GOTO(ag_set_check(&exp, key, chain, bundle, duet_clock_now(), info, eb), rc, out);
    rc = same_bundle(published, bundle);
    if (rc < 0)
        duet_errf(eb, rc, "ca.crt differs from the current trust bundle");
out:
    duet_chain_free(signer);
    duet_chain_free(bundle);
    duet_chain_free(published);
    duet_chain_free(chain);
    duet_key_free(key);
    return rc;
}

/*
 * duet_vol_read reads through ..data, as a careful reader does; applications
 * open DIR/tls.crt, so the top-level links must be intact too.
 */
static int check_links(const char *dir, const char *const *names, size_t n, struct duet_errbuf *eb)
{
    for (size_t i = 0; i < n; i++) {
        char path[4096], want[64], got[64];
        ssize_t len;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(want, sizeof(want), "%s/%s", DUET_VOL_DATA, names[i]);
        len = readlink(path, got, sizeof(got) - 1);
        if (len < 0 || (size_t)len != strlen(want) || memcmp(got, want, (size_t)len) != 0)
            return duet_errf(eb, DUET_E_VOL_LAYOUT, "%s is not a link to %s", names[i], want);
    }
    return 0;
}

/*
 * The files of a set and how they are published: one table for the writer
 * and for the check of modes and owners. data/len are filled by publish.
 */
static void set_layout(const struct ag_ident *id, const struct ag_policy *pol,
                       struct duet_vol_file files[3], struct duet_vol_opts *vo)
{
    /* A pod's volume carries the pod's fsGroup; a folder identity the policy's key_group. */
    gid_t gid = id->has_group ? id->group : pol->key_group;
    bool group = gid != (gid_t)-1;

    files[0] = (struct duet_vol_file){DUET_VOL_KEY, NULL, 0, group ? 0640 : 0600};
    files[1] = (struct duet_vol_file){DUET_VOL_CERT, NULL, 0, 0644};
    files[2] = (struct duet_vol_file){DUET_VOL_CA, NULL, 0, 0644};
    *vo = (struct duet_vol_opts){.gid = gid, .dir_mode = group ? 0750 : 0755, .root = id->root};
}

/* Modes, owners and symlinks of the published set, before its content. */
static int check_layout(struct ag_ident *id, const struct ag_policy *pol, struct duet_errbuf *eb)
{
    struct duet_vol_file files[3];
    struct duet_vol_opts vo;
    int rc;

    set_layout(id, pol, files, &vo);
    rc = duet_vol_inspect(id->dir, files, 3, &vo, eb);
    if (rc == DUET_E_VOL_UNSAFE)
        id->unsafe_sets++;
    return rc;
}

int ag_ident_check_disk(struct ag_ident *id, struct ag_issuer *is, const struct ag_policy *pol,
                        struct duet_errbuf *eb)
{
    struct duet_vol_set set;
    struct duet_cert_info *info = duet_malloc(sizeof(*info));
    struct ag_disk_sig before;
    int rc;

    if (!info)
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    /* The signature is taken before reading, so a change racing the read
     * makes the next comparison differ and the set is read again. */
    disk_sig(id->dir, &before);
    memset(&set, 0, sizeof(set));
    rc = check_layout(id, pol, eb);
    if (rc == 0)
        rc = duet_vol_read_set(id->dir, SET_MAX_FILE, &set, eb);
    if (rc == 0)
        rc = check_links(id->dir, duet_vol_set_names, DUET_VOL_SET_N, eb);
    if (rc == 0)
        rc = judge_set(id, is, &set, info, eb);
    duet_vol_set_clear(&set);
    if (rc < 0) {
        id->rot.have = false;
        id->sig_valid = false;
    } else {
        /* Keep the deadline drawn at issuance for the certificate we made;
         * a set found on disk (restart) gets a fresh one, with the lifetime
         * counted from notBefore since its receipt time is unknown. */
        if (!id->rot.have || strcmp(id->serial, info->serial) != 0)
            set_validity(id, info, 0, pol);
        id->sig = before;
        id->sig_valid = true;
    }
    duet_free(info);
    return rc;
}

static void log_issued(const struct ag_ident *id, const struct duet_cert_info *info,
                       const char *issuer, int64_t took_ms)
{
    char buf[512], cert[DUET_CERT_LOG_MAX];

    duet_log(DUET_LOG_INFO, "agent",
             "identity=%s issuer=%s %s key=\"%s\" renew_at=%lld "
             "took_ms=%lld msg=\"published\" dir=%s",
             id->name, issuer,
             duet_cert_log_fields(cert, sizeof(cert), info->serial, info->not_after, info->sha256),
             info->key, (long long)(id->rot.renew_at / 1000), (long long)took_ms,
             duet_log_quote(buf, sizeof(buf), id->dir));
}

/* Serialize and publish; the key PEM is cleansed before it is freed. */
static int publish(struct ag_ident *id, const struct duet_key *key, const struct ag_issue_result *r,
                   const struct ag_policy *pol, struct duet_errbuf *eb)
{
    char *kp = NULL, *cp = NULL, *bp = NULL;
    size_t kl = 0, cl = 0, bl = 0;
    struct duet_vol_file files[3];
    struct duet_vol_opts vo;
    int rc;

    DUET_TRY_GOTO(duet_key_to_pem(key, NULL, &kp, &kl, eb), rc, out);
    DUET_TRY_GOTO(duet_chain_to_pem(r->chain, &cp, &cl), rc, out);
    DUET_TRY_GOTO(duet_chain_to_pem(r->bundle, &bp, &bl), rc, out);
    set_layout(id, pol, files, &vo);
    files[0].data = kp;
    files[0].len = kl;
    files[1].data = cp;
    files[1].len = cl;
    files[2].data = bp;
    files[2].len = bl;
    rc = duet_vol_publish(id->dir, files, 3, &vo, eb);
out:
    if (kp)
        duet_secret_free(kp, kl);
    duet_free(cp);
    duet_free(bp);
    return rc;
}

static struct ag_issue_req req_of(const struct ag_ident *id, const struct duet_csr *csr)
{
    struct ag_issue_req req = {
        .csr = csr,
        .subject = &id->subject,
        .sans = &id->sans,
        .validity_ms = id->validity_ms,
        .server = id->server,
        .identity = id->name,
    };
    return req;
}

void ag_issued_clear(struct ag_issued *r)
{
    duet_key_free(r->key);
    ag_issue_result_clear(&r->res);
    duet_free(r->info);
    memset(r, 0, sizeof(*r));
}

/* The issuer's answer in r, checked against exp with key; a refusal names the issuer. */
static int check_answer(const struct ag_set_expect *exp, const struct duet_key *key,
                        const char *issuer, struct ag_issued *r, struct duet_errbuf *eb)
{
    int rc;

    r->received = duet_clock_real_ms();
    rc = ag_set_check(exp, key, r->res.chain, r->res.bundle, r->received / 1000, r->info, eb);
    if (rc < 0) {
        /* Keep the check's reason, but say it was the issuer's answer. */
        char what[64];
        snprintf(what, sizeof(what), "refused the certificate from %s", issuer);
        ag_err_prefix(eb, rc, what);
    }
    return rc;
}

/* Publish r's certificate with key, and record the new set in id. */
static int install(struct ag_ident *id, const struct duet_key *key, const struct ag_issued *r,
                   const char *issuer, const struct ag_policy *pol, int64_t t0,
                   struct duet_errbuf *eb)
{
    DUET_TRY(publish(id, key, &r->res, pol, eb));
    set_validity(id, r->info, r->received, pol);
    id->renewals++;
    id->attempt = 0;
    id->rot.retry_mono = 0;
    id->last_success = r->received / 1000;
    disk_sig(id->dir, &id->sig);
    id->sig_valid = true;
    log_issued(id, r->info, issuer, duet_clock_mono_ms() - t0);
    return 0;
}

struct ag_set_expect ag_ident_expect(const struct ag_ident *id, const struct ag_issuer *is)
{
    return expect_of(id, is);
}

int ag_ident_obtain(const struct ag_ident *id, const struct ag_set_expect *exp,
                    const struct ag_ca_snap *snap, const char *issuer, struct ag_keypool *keys,
                    const atomic_bool *abandon, struct ag_issued *out, struct duet_errbuf *eb)
{
    struct ag_issued r = {0};
    struct duet_csr *csr = NULL;
    int rc;

    r.key = out->key;
    out->key = NULL;
    r.info = duet_malloc(sizeof(*r.info));
    if (!r.info)
        DUET_TRY_GOTO(duet_errf(eb, DUET_ENOMEM, "out of memory"), rc, out);
    if (!r.key)
        r.key = ag_keypool_take(keys, id->key_type);
    if (!r.key)
        DUET_TRY_GOTO(duet_key_generate(id->key_type, &r.key, eb), rc, out);
    DUET_TRY_GOTO(duet_csr_build(r.key, &id->subject, &id->sans, &csr, eb), rc, out);
    struct ag_issue_req req = req_of(id, csr);
    req.abandon = abandon;
    DUET_TRY_GOTO(ag_ca_snap_sign(snap, &req, &r.res, eb), rc, out);
    rc = check_answer(exp, r.key, issuer, &r, eb);
out:
    duet_csr_free(csr);
    if (rc == 0) {
        *out = r;
        return 0;
    }
    out->key = r.key; /* the retry's */
    r.key = NULL;
    ag_issued_clear(&r);
    return rc;
}

int ag_ident_install(struct ag_ident *id, const struct ag_issued *r, const char *issuer,
                     const struct ag_policy *pol, int64_t t0, struct duet_errbuf *eb)
{
    return install(id, r->key, r, issuer, pol, t0, eb);
}

int ag_ident_issue(struct ag_ident *id, struct ag_issuer *is, const struct ag_policy *pol,
                   struct duet_errbuf *eb)
{
    struct ag_set_expect exp = expect_of(id, is);
    struct ag_issued r = {.key = id->pending_key};
    struct ag_ca_snap *snap = NULL;
    int64_t t0 = duet_clock_mono_ms();
    int rc;

    id->pending_key = NULL;
    rc = is->ops->snapshot(is, &snap, eb);
    if (rc == 0)
        rc = ag_ident_obtain(id, &exp, snap, is->ops->name, pol->keys, NULL, &r, eb);
    ag_ca_snap_put(snap);
    if (rc == 0)
        rc = install(id, r.key, &r, is->ops->name, pol, t0, eb);
    if (rc < 0) { /* the next attempt reuses the key */
        id->pending_key = r.key;
        r.key = NULL;
    }
    ag_issued_clear(&r);
    return rc;
}
