/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reference-counted TLS material (STYLE.md 10): one client SSL_CTX for
 * outbound listeners and one server SSL_CTX for inbound ones, built from a
 * single version of the certificate folder and checked before anyone sees
 * it. Connections hold a reference for their whole life, so a reload never
 * changes the certificate under an open connection. This file and
 * xprt_tls.c are the sidecar's only BoringSSL users; parsing, key matching,
 * chain verification and the certificate's serial and fingerprint come from
 * common/ pki (duet/pki.h), exactly as the agent gets them.
 *
 * Each set has its own server SSL_CTX and therefore its own session-ticket
 * keys: a client cannot resume, across a reload, a session whose
 * certificate a new CRL now revokes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/pki.h"
#include "duet/pki_bssl.h"
#include "tls_int.h"
#include "tls_set.h"

struct sc_tls_set {
    int refs; /* atomic */
    SSL_CTX *cli;
    SSL_CTX *srv;
    STACK_OF(X509_CRL) * crls; /* the CRLs in the store, for resumption checks; NULL: none */
    struct sc_tls_info info;
};

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sc_tls_set *current;

static void free_set(struct sc_tls_set *s)
{
    SSL_CTX_free(s->cli);
    SSL_CTX_free(s->srv);
    sk_X509_CRL_pop_free(s->crls, X509_CRL_free);
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

/* ---- parsing and checking, through common/ pki ---- */

struct material {
    struct duet_chain *chain;  /* tls.crt: leaf first, then intermediates */
    struct duet_key *key;      /* tls.key */
    struct duet_chain *bundle; /* ca.crt */
    STACK_OF(X509_CRL) * crls; /* NULL: no CRL */
};

static void material_free(struct material *m)
{
    duet_chain_free(m->chain);
    duet_key_free(m->key);
    duet_chain_free(m->bundle);
    sk_X509_CRL_pop_free(m->crls, X509_CRL_free);
}

/* The CRL is the sidecar's alone (the agent never reads one), so it is parsed here. */
static int parse_crl(struct material *m, const struct sc_tls_files *f, struct duet_errbuf *eb)
{
    BIO *b;
    X509_CRL *crl;

    if (!f->crl)
        return 0;
    b = BIO_new_mem_buf(f->crl, (long)f->crl_len);
    m->crls = sk_X509_CRL_new_null();
    if (!b || !m->crls) {
        BIO_free(b);
        return duet_errf(eb, DUET_ENOMEM, "crl: out of memory");
    }
    while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL))) {
        if (!sk_X509_CRL_push(m->crls, crl)) {
            X509_CRL_free(crl);
            BIO_free(b);
            return duet_errf(eb, DUET_ENOMEM, "crl: out of memory");
        }
    }
    BIO_free(b);
    ERR_clear_error();
    if (sk_X509_CRL_num(m->crls) == 0)
        return duet_errf(eb, DUET_E_PEM, "crl: no X509 CRL in the file");
    return 0;
}

static int parse(struct material *m, const struct sc_tls_files *f, struct duet_errbuf *eb)
{
    int rc;

    DUET_TRY(duet_chain_from_pem(f->cert, f->cert_len, "tls.crt", &m->chain, eb));
    /* No passphrase: an encrypted key fails cleanly instead of prompting. */
    DUET_TRY(duet_key_from_pem(f->key, f->key_len, NULL, "tls.key", &m->key, eb));
    rc = duet_key_matches_cert(m->key, duet_chain_at(m->chain, 0));
    if (rc < 0)
        return duet_errf(eb, rc, "tls.key does not match tls.crt");
    DUET_TRY(duet_chain_from_pem(f->ca, f->ca_len, "ca.crt", &m->bundle, eb));
    return parse_crl(m, f, eb);
}

/* Our certificate must chain to ca.crt and be valid now for every use the
 * listeners make of it: client for outbound, server for inbound. The agent
 * gives a resource's inbound-only sidecar a serverAuth-only certificate
 * (DESIGN.md "Identities and files"), which is right there and wrong for an
 * outbound listener, where the upstream would refuse it anyway: refusing it
 * at load says why in one log line. */
static int check_chain(const struct material *m, unsigned uses, struct duet_errbuf *eb)
{
    static const struct {
        unsigned use;
        enum duet_purpose purpose;
        const char *name;
    } checks[] = {{SC_USE_CLIENT, DUET_PURPOSE_CLIENT, "client"},
                  {SC_USE_SERVER, DUET_PURPOSE_SERVER, "server"}};

    for (size_t i = 0; i < DUET_ARRAY_SIZE(checks); i++) {
        struct duet_errbuf why;
        int rc;

        if (!(uses & checks[i].use))
            continue;
        duet_errbuf_clear(&why);
        rc = duet_chain_verify(m->chain, m->bundle, duet_clock_now(), checks[i].purpose, &why);
        if (rc == DUET_E_VERIFY)
            return duet_errf(eb, rc, "tls.crt does not verify against ca.crt for %s use: %s",
                             checks[i].name, why.msg);
        if (rc < 0)
            return duet_errf(eb, rc, "tls.crt: %s", why.msg[0] ? why.msg : duet_strerror(rc));
    }
    return 0;
}

/* ---- SSL_CTX ---- */

/* The subjects of ca.crt, sent to clients as the acceptable issuers. */
static STACK_OF(X509_NAME) * ca_names(const struct duet_chain *bundle)
{
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();

    for (size_t i = 0; names && i < duet_chain_len(bundle); i++) {
        X509_NAME *nm =
            X509_NAME_dup(X509_get_subject_name(duet_cert_x509(duet_chain_at(bundle, i))));

        if (!nm || !sk_X509_NAME_push(names, nm)) {
            X509_NAME_free(nm);
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            names = NULL;
        }
    }
    return names;
}

static bool setup_server(SSL_CTX *ctx, const struct material *m)
{
    STACK_OF(X509_NAME) *names = ca_names(m->bundle);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);

    if (!names)
        return false;
    SSL_CTX_set_client_CA_list(ctx, names);
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT);
    SSL_CTX_set_session_id_context(ctx, (const uint8_t *)"duet", 4);
    /* Our order, not the client's: AEAD with ECDHE whatever it lists first. */
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    return true;
}

/*
 * TLS 1.2 suites, offered (outbound) and accepted (inbound): ECDHE key
 * exchange only (forward secrecy) with an AEAD (no CBC, so no LUCKY13; no
 * 64-bit blocks, so no SWEET32). TLS 1.3 is preferred by version
 * negotiation and its suites are all AEAD (BoringSSL fixes them). The
 * strict setter fails on any name this build does not know.
 */
#define SC_TLS12_CIPHERS                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"

static SSL_CTX *new_ctx(const struct material *m, bool crl, X509_STORE *store, bool server,
                        uint32_t session_s)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());

    if (!ctx)
        return NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        /* X25519 first: the cheapest key exchange (DESIGN.md "Performance budget"). */
        !SSL_CTX_set1_curves_list(ctx, "X25519:P-256:P-384") ||
        !SSL_CTX_set_strict_cipher_list(ctx, SC_TLS12_CIPHERS) ||
        !SSL_CTX_use_certificate(ctx, duet_cert_x509(duet_chain_at(m->chain, 0))) ||
        !SSL_CTX_use_PrivateKey(ctx, duet_key_evp(m->key)))
        goto fail;
    for (size_t i = 1; i < duet_chain_len(m->chain); i++) {
        if (!SSL_CTX_add1_chain_cert(ctx, duet_cert_x509(duet_chain_at(m->chain, i))))
            goto fail;
    }
    X509_STORE_up_ref(store);
    SSL_CTX_set_cert_store(ctx, store);
    /* The CRL (in the shared store) applies both ways: a revoked upstream
     * is refused like a revoked client. */
    if (crl)
        X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_CRL_CHECK);
    /* Sessions live --session-lifetime at most (BoringSSL: 2 days for TLS
     * 1.3, 2 hours for 1.2); xprt_tls.c bounds each one further by the
     * peer's notAfter and re-checks the peer whenever one is resumed. */
    SSL_CTX_set_timeout(ctx, session_s);
    SSL_CTX_set_session_psk_dhe_timeout(ctx, session_s);
    SSL_CTX_set_mode(ctx,
                     SSL_MODE_RELEASE_BUFFERS); /* a no-op in BoringSSL, which always releases */
    if (server) {
        if (!setup_server(ctx, m))
            goto fail;
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

/* Both contexts share one store: ca.crt and the CRLs, checked both ways. */
static int build_ctxs(struct sc_tls_set *s, STACK_OF(X509_CRL) * crls, const struct material *m,
                      uint32_t session_s, struct duet_errbuf *eb)
{
    X509_STORE *store = duet_chain_to_store(m->bundle);

    /* A CRL already in the store (listed twice) is not an error. */
    for (size_t i = 0; store && crls && i < sk_X509_CRL_num(crls); i++)
        (void)X509_STORE_add_crl(store, sk_X509_CRL_value(crls, i));
    if (store) {
        s->cli = new_ctx(m, crls != NULL, store, false, session_s);
        s->srv = new_ctx(m, crls != NULL, store, true, session_s);
    }
    X509_STORE_free(store); /* the contexts hold their own references */
    if (!s->cli || !s->srv) {
        duet_errf(eb, DUET_E_TLS, "building SSL_CTX failed");
        duet_errbuf_add_ssl(eb);
        return DUET_E_TLS;
    }
    /* xprt_tls.c finds the generation of a session's context through this. */
    SSL_CTX_set_app_data(s->cli, s);
    SSL_CTX_set_app_data(s->srv, s);
    return 0;
}

static int fill_info(struct sc_tls_info *info, STACK_OF(X509_CRL) * crls, const struct material *m)
{
    struct duet_cert_info ci;

    for (size_t i = 0; crls && i < sk_X509_CRL_num(crls); i++) {
        const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(sk_X509_CRL_value(crls, i));
        int64_t t = nu ? duet_asn1_time_to_unix(nu) : 0;

        if (t > 0 && (info->crl_next_update == 0 || t < info->crl_next_update))
            info->crl_next_update = t;
    }

    DUET_TRY(duet_cert_info(duet_chain_at(m->chain, 0), &ci));
    snprintf(info->serial, sizeof(info->serial), "%s", ci.serial);
    snprintf(info->sha256, sizeof(info->sha256), "%s", ci.sha256);
    info->not_before = ci.not_before;
    info->not_after = ci.not_after;
    return 0;
}

/* ca.crt and the CRL as given, length-prefixed so the boundary counts. */
static void trust_digest(uint8_t out[32], const struct sc_tls_files *f)
{
    SHA256_CTX h;
    uint64_t n;

    SHA256_Init(&h);
    n = f->ca_len;
    SHA256_Update(&h, &n, sizeof(n));
    SHA256_Update(&h, f->ca, f->ca_len);
    n = f->crl ? f->crl_len : 0;
    SHA256_Update(&h, &n, sizeof(n));
    if (f->crl)
        SHA256_Update(&h, f->crl, f->crl_len);
    SHA256_Final(out, &h);
}

struct sc_tls_set *sc_tls_set_build(const struct sc_tls_files *f, const char *version,
                                    uint64_t generation, unsigned uses, struct duet_errbuf *eb)
{
    const uint32_t session_s = f->session_lifetime_s ? f->session_lifetime_s : 3600;
    struct material m = {0};
    struct sc_tls_set *s = NULL;
    int rc;

    DUET_TRY_GOTO(parse(&m, f, eb), rc, out);
    DUET_TRY_GOTO(check_chain(&m, uses, eb), rc, out);
    s = duet_calloc(1, sizeof(*s));
    if (!s) {
        duet_errf(eb, DUET_ENOMEM, "out of memory");
        goto out;
    }
    s->refs = 1;
    s->info.generation = generation;
    snprintf(s->info.version, sizeof(s->info.version), "%s", version);
    trust_digest(s->info.trust, f);
    s->crls = m.crls; /* the set keeps them: resumption checks read them */
    m.crls = NULL;
    if (build_ctxs(s, s->crls, &m, session_s, eb) < 0 || fill_info(&s->info, s->crls, &m) < 0) {
        free_set(s);
        s = NULL;
    }
out:
    (void)rc;
    material_free(&m);
    return s;
}

const STACK_OF(X509_CRL) * sc_tls_set_crls(const struct sc_tls_set *s)
{
    return s->crls;
}

SSL_CTX *sc_tls_set_ctx(struct sc_tls_set *s, bool server)
{
    return server ? s->srv : s->cli;
}

bool sc_tls_same_trust(const struct sc_tls_set *a, const struct sc_tls_set *b)
{
    return a == b || memcmp(a->info.trust, b->info.trust, sizeof(a->info.trust)) == 0;
}

bool sc_tls_crl_stale(const struct sc_tls_info *info, int64_t now)
{
    return info->crl_next_update > 0 && now > info->crl_next_update;
}

bool sc_tls_ready(void)
{
    struct sc_tls_set *s = sc_tls_acquire();
    bool ok = s && s->info.not_after * 1000 > duet_clock_real_ms();

    sc_tls_set_unref(s);
    return ok;
}
