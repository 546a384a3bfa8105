/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reference-counted TLS material (STYLE.md 10): one client SSL_CTX for
 * outbound listeners and one server SSL_CTX for inbound ones, built from a
 * single version of the certificate folder and checked before anyone sees
 * it. Connections hold a reference for their whole life, so a reload never
 * changes the certificate under an open connection. This file and
 * xprt_tls.c are the sidecar's only BoringSSL users.
 *
 * Each set has its own server SSL_CTX and therefore its own session-ticket
 * keys: a client cannot resume, across a reload, a session whose
 * certificate a new CRL now revokes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "sc.h"
#include "tls_int.h"

struct sc_tls_set {
    int refs; /* atomic */
    SSL_CTX *cli;
    SSL_CTX *srv;
    struct sc_tls_info info;
};


static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sc_tls_set *current;

static void free_set(struct sc_tls_set *s)
{
    SSL_CTX_free(s->cli);
    SSL_CTX_free(s->srv);
    duet_free(s);
}

void sc_tls_set_ref(struct sc_tls_set *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void sc_tls_set_unref(struct sc_tls_set *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free_set(s);
}

const struct sc_tls_info *sc_tls_set_info(const struct sc_tls_set *s)
{
    return &s->info;
}

struct sc_tls_set *sc_tls_acquire(void)
{
    struct sc_tls_set *s;

    pthread_mutex_lock(&current_mu);
    s = current;
    if (s)
        sc_tls_set_ref(s);
    pthread_mutex_unlock(&current_mu);
    return s;
}

void sc_tls_publish(struct sc_tls_set *s)
{
    struct sc_tls_set *old;

    pthread_mutex_lock(&current_mu);
    old = current;
    current = s;
    pthread_mutex_unlock(&current_mu);
    sc_tls_set_unref(old);
}

void sc_tls_shutdown(void)
{
    sc_tls_publish(NULL);
}

/* ---- parsing ---- */

struct material {
    X509 *leaf;
    STACK_OF(X509) *chain; /* intermediates after the leaf */
    EVP_PKEY *key;
    X509_STORE *store;     /* ca.crt */
    STACK_OF(X509_NAME) *ca_names;
    STACK_OF(X509_CRL) *crls;
};

static void material_free(struct material *m)
{
    X509_free(m->leaf);
    sk_X509_pop_free(m->chain, X509_free);
    EVP_PKEY_free(m->key);
    X509_STORE_free(m->store);
    sk_X509_NAME_pop_free(m->ca_names, X509_NAME_free);
    sk_X509_CRL_pop_free(m->crls, X509_CRL_free);
}

static BIO *mem_bio(const char *p, size_t len)
{
    return BIO_new_mem_buf(p, (long)len);
}

static int parse_cert(struct material *m, const struct sc_tls_files *f, struct duet_errbuf *eb)
{
    BIO *b = mem_bio(f->cert, f->cert_len);
    X509 *x;

    m->chain = sk_X509_new_null();
    if (!b || !m->chain) {
        BIO_free(b);
        return duet_errf(eb, DUET_ENOMEM, "tls.crt: out of memory");
    }
    m->leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    while (m->leaf && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        sk_X509_push(m->chain, x);
    BIO_free(b);
    ERR_clear_error(); /* the expected end-of-input error after the last certificate */
    if (!m->leaf)
        return duet_errf(eb, DUET_E_PEM, "tls.crt: no certificate");
    return 0;
}

static int parse_key(struct material *m, const struct sc_tls_files *f, struct duet_errbuf *eb)
{
    BIO *b = mem_bio(f->key, f->key_len);

    /* Empty passphrase: an encrypted key fails cleanly instead of prompting. */
    m->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"") : NULL;
    BIO_free(b);
    ERR_clear_error();
    if (!m->key)
        return duet_errf(eb, DUET_E_PEM, "tls.key: no unencrypted private key");
    if (X509_check_private_key(m->leaf, m->key) != 1) {
        ERR_clear_error();
        return duet_errf(eb, DUET_E_KEY_MISMATCH, "tls.key does not match tls.crt");
    }
    return 0;
}

static int parse_ca(struct material *m, const struct sc_tls_files *f, struct duet_errbuf *eb)
{
    BIO *b = mem_bio(f->ca, f->ca_len);
    X509 *x;
    int n = 0;

    m->store = X509_STORE_new();
    m->ca_names = sk_X509_NAME_new_null();
    if (!b || !m->store || !m->ca_names) {
        BIO_free(b);
        return duet_errf(eb, DUET_ENOMEM, "ca.crt: out of memory");
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(x));

        X509_STORE_add_cert(m->store, x);
        if (nm)
            sk_X509_NAME_push(m->ca_names, nm);
        X509_free(x);
        n++;
    }
    BIO_free(b);
    ERR_clear_error();
    if (n == 0)
        return duet_errf(eb, DUET_E_PEM, "ca.crt: no certificate");
    return 0;
}

static int parse_crl(struct material *m, const struct sc_tls_files *f, struct duet_errbuf *eb)
{
    BIO *b;
    X509_CRL *crl;

    if (!f->crl)
        return 0;
    b = mem_bio(f->crl, f->crl_len);
    m->crls = sk_X509_CRL_new_null();
    if (!b || !m->crls) {
        BIO_free(b);
        return duet_errf(eb, DUET_ENOMEM, "crl: out of memory");
    }
    while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)))
        sk_X509_CRL_push(m->crls, crl);
    BIO_free(b);
    ERR_clear_error();
    if (sk_X509_CRL_num(m->crls) == 0)
        return duet_errf(eb, DUET_E_PEM, "crl: no X509 CRL in the file");
    return 0;
}

/* verify_for: 1 if our chain verifies for `purpose` now, else 0 with *err set
 * (-1 when no verification context could be made). */
static int verify_for(struct material *m, int purpose, int *err)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok;

    if (!ctx || !X509_STORE_CTX_init(ctx, m->store, m->leaf, m->chain)) {
        X509_STORE_CTX_free(ctx);
        *err = -1;
        return 0;
    }
    X509_STORE_CTX_set_purpose(ctx, purpose);
    X509_STORE_CTX_set_time(ctx, 0, duet_clock_now());
    ok = X509_verify_cert(ctx);
    *err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return ok == 1;
}

/* Our certificate must chain to ca.crt and be valid now for every use the
 * listeners make of it: client for outbound, server for inbound. The agent
 * gives a resource's inbound-only sidecar a serverAuth-only certificate
 * (DESIGN.md "Identities and files"), which is right there and wrong for an
 * outbound listener, where the upstream would refuse it anyway: refusing it
 * at load says why in one log line. */
static int check_chain(struct material *m, unsigned uses, struct duet_errbuf *eb)
{
    static const struct {
        unsigned use;
        int purpose;
        const char *name;
    } checks[] = {{SC_USE_CLIENT, X509_PURPOSE_SSL_CLIENT, "client"},
                  {SC_USE_SERVER, X509_PURPOSE_SSL_SERVER, "server"}};
    int err;

    for (size_t i = 0; i < DUET_ARRAY_SIZE(checks); i++) {
        if (!(uses & checks[i].use) || verify_for(m, checks[i].purpose, &err))
            continue;
        if (err == -1)
            return duet_errf(eb, DUET_ENOMEM, "verify: out of memory");
        if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID)
            return duet_errf(eb, DUET_E_EXPIRED, "tls.crt: %s",
                             X509_verify_cert_error_string(err));
        return duet_errf(eb, DUET_E_VERIFY,
                         "tls.crt does not verify against ca.crt for %s use: %s",
                         checks[i].name, X509_verify_cert_error_string(err));
    }
    return 0;
}

/* ---- SSL_CTX ---- */

static SSL_CTX *new_ctx(struct material *m, bool server)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());

    if (!ctx)
        return NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        /* X25519 first: the cheapest key exchange (DESIGN.md "Performance budget"). */
        !SSL_CTX_set1_curves_list(ctx, "X25519:P-256:P-384") ||
        !SSL_CTX_use_certificate(ctx, m->leaf) || !SSL_CTX_use_PrivateKey(ctx, m->key))
        goto fail;
    for (size_t i = 0; i < sk_X509_num(m->chain); i++) {
        if (!SSL_CTX_add1_chain_cert(ctx, sk_X509_value(m->chain, i)))
            goto fail;
    }
    X509_STORE_up_ref(m->store);
    SSL_CTX_set_cert_store(ctx, m->store);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* a no-op in BoringSSL, which always releases */
    if (server) {
        STACK_OF(X509_NAME) *names = sk_X509_NAME_deep_copy(m->ca_names, X509_NAME_dup,
                                                            X509_NAME_free);
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);

        if (!names)
            goto fail;
        SSL_CTX_set_client_CA_list(ctx, names);
        X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT);
        if (m->crls) {
            for (size_t i = 0; i < sk_X509_CRL_num(m->crls); i++)
                X509_STORE_add_crl(m->store, sk_X509_CRL_value(m->crls, i));
            X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK);
        }
        SSL_CTX_set_session_id_context(ctx, (const uint8_t *)"duet", 4);
    } else {
        X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_SERVER);
        /* Sessions are kept per listener by sc_tls_on_new_session (COMPAT.md 2:
         * TLS 1.3 resumes only with sessions captured this way). */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(ctx, sc_tls_on_new_session);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void fill_info(struct sc_tls_info *info, struct material *m)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int days = 0, secs = 0;
    BIGNUM *bn;

    if (X509_digest(m->leaf, EVP_sha256(), md, &mdlen)) {
        for (unsigned i = 0; i < mdlen && i < 32; i++)
            snprintf(info->fingerprint + 2 * i, 3, "%02x", md[i]);
    }
    bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(m->leaf), NULL);
    if (bn) {
        char *hex = BN_bn2hex(bn);

        if (hex)
            snprintf(info->serial, sizeof(info->serial), "%s", hex);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    /* NULL "from" means now; time of day is good enough for the seconds. */
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(m->leaf)))
        info->not_after = (time_t)(time(NULL) + (time_t)days * 86400 + secs);
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(m->leaf)))
        info->not_before = (time_t)(time(NULL) + (time_t)days * 86400 + secs);
}

struct sc_tls_set *sc_tls_set_build(const struct sc_tls_files *f, const char *version,
                                    uint64_t generation, unsigned uses,
                                    struct duet_errbuf *eb)
{
    struct material m = {0};
    struct sc_tls_set *s = NULL;
    int rc;

    DUET_TRY_GOTO(parse_cert(&m, f, eb), rc, out);
    DUET_TRY_GOTO(parse_key(&m, f, eb), rc, out);
    DUET_TRY_GOTO(parse_ca(&m, f, eb), rc, out);
    DUET_TRY_GOTO(parse_crl(&m, f, eb), rc, out);
    DUET_TRY_GOTO(check_chain(&m, uses, eb), rc, out);
    s = duet_calloc(1, sizeof(*s));
    if (!s) {
        duet_errf(eb, DUET_ENOMEM, "out of memory");
        goto out;
    }
    s->refs = 1;
    s->cli = new_ctx(&m, false);
    s->srv = new_ctx(&m, true);
    if (!s->cli || !s->srv) {
        duet_errf(eb, DUET_E_TLS, "building SSL_CTX failed");
        duet_errbuf_add_ssl(eb);
        free_set(s);
        s = NULL;
        goto out;
    }
    /* xprt_tls.c finds the generation of a session's context through this. */
    SSL_CTX_set_app_data(s->cli, s);
    SSL_CTX_set_app_data(s->srv, s);
    s->info.generation = generation;
    snprintf(s->info.version, sizeof(s->info.version), "%s", version);
    fill_info(&s->info, &m);
out:
    (void)rc;
    material_free(&m);
    return s;
}

SSL_CTX *sc_tls_set_ctx(struct sc_tls_set *s, bool server)
{
    return server ? s->srv : s->cli;
}
