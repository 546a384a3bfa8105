/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS xprt (STYLE.md 9): BoringSSL behind the same recv/send/shutdown
 * ops as raw sockets. SSL_ERROR_WANT_READ/WRITE become per-direction flags
 * on the side (a read that needs the socket writable, a write that needs it
 * readable) and the epoll interest is derived from them after every call
 * (redis src/tls.c). Sends never use partial-write mode: a write that would
 * block is retried with the same bytes, as SSL_write requires.
 *
 * Reads go through a small BIO of our own with read-ahead: BoringSSL asks
 * the transport for a record header and then for its body (two read(2)s per
 * record with a socket BIO); this BIO reads up to a buffer at once and hands
 * out the rest from memory, so one syscall usually carries a whole record,
 * or several. The read-ahead buffer comes from the worker's pool and is
 * given back as soon as it is empty: an idle connection holds none.
 *
 * Verification failures are recorded in thread-local scratch during the
 * handshake call and read back right after it by the layer that logs, so no
 * connection carries a subject buffer for its whole life.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "duet/clock.h"
#include "sc.h"
#include "tls_int.h"

static _Thread_local int vf_x509_err;
static _Thread_local enum sc_fail vf_reason;
static _Thread_local bool vf_set;
static _Thread_local char vf_subject[256];

static void note_subject(X509 *x)
{
    if (x)
        X509_NAME_oneline(X509_get_subject_name(x), vf_subject, sizeof(vf_subject));
}

static void get_cn(X509 *x, char *buf, size_t size)
{
    buf[0] = '\0';
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)size) < 0)
        buf[0] = '\0';
}

/* Allow lists by CN and SAN URI (only when the listener has any). */
static bool leaf_allowed(const struct sc_listen_cfg *l, X509 *x)
{
    char cn[DUET_NET_HOST_MAX];
    char uris[SC_MAX_ALLOW][DUET_NET_HOST_MAX];
    const char *ptrs[SC_MAX_ALLOW];
    unsigned n = 0;
    GENERAL_NAMES *gens;

    if (l->n_cn == 0 && l->n_san == 0)
        return true;
    get_cn(x, cn, sizeof(cn));
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (size_t i = 0; gens && i < sk_GENERAL_NAME_num(gens) && n < SC_MAX_ALLOW; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_STRING *u;
        size_t len;

        if (g->type != GEN_URI)
            continue;
        u = g->d.uniformResourceIdentifier;
        len = (size_t)ASN1_STRING_length(u);
        /* An embedded NUL or an oversized URI can never match an allow entry. */
        if (len >= DUET_NET_HOST_MAX || memchr(ASN1_STRING_get0_data(u), 0, len))
            continue;
        memcpy(uris[n], ASN1_STRING_get0_data(u), len);
        uris[n][len] = '\0';
        ptrs[n] = uris[n];
        n++;
    }
    GENERAL_NAMES_free(gens);
    return sc_cfg_allowed(l, cn, ptrs, n);
}

static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct sc_listener *l = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(ctx);

    if (!ok) {
        if (!vf_set) {
            int e = X509_STORE_CTX_get_error(ctx);

            vf_set = true;
            vf_x509_err = e;
            vf_reason = e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID
                            ? SC_FAIL_EXPIRED
                        : e == X509_V_ERR_CERT_REVOKED ? SC_FAIL_REVOKED
                                                       : SC_FAIL_UNTRUSTED;
            note_subject(leaf);
        }
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(ctx) == 0 && l && l->cfg->dir == SC_INBOUND &&
        !leaf_allowed(l->cfg, leaf)) {
        vf_set = true;
        vf_x509_err = X509_V_ERR_APPLICATION_VERIFICATION;
        vf_reason = SC_FAIL_NOT_ALLOWED;
        note_subject(leaf);
        X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

int sc_tls_on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct sc_listener *l = SSL_get_app_data(ssl);
    struct sc_tls_set *set = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

    if (!l || !set || !l->cfg->resume)
        return 0;
    if (l->session)
        SSL_SESSION_free(l->session);
    l->session = sess; /* returning 1 keeps the reference BoringSSL handed us */
    l->session_gen = sc_tls_set_info(set)->generation;
    return 1;
}

void sc_tls_listener_drop_session(struct sc_listener *l)
{
    if (l->session)
        SSL_SESSION_free(l->session);
    l->session = NULL;
}

/* A session-id context per listener: "duet-in" + FNV-1a of its address. */
static unsigned sid_ctx(const struct sc_listen_cfg *lc, uint8_t sid[32])
{
    uint64_t h = 1469598103934665603ULL;
    int n;

    for (const char *p = lc->listen; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    n = snprintf((char *)sid, 32, "duet-in:%016llx", (unsigned long long)h);
    return (unsigned)n;
}

/* ---- the read-ahead BIO ---- */

static BIO_METHOD *ra_method;
static pthread_once_t ra_once = PTHREAD_ONCE_INIT;

static void ra_release(struct sc_side *s)
{
    if (s->rabuf)
        sc_buf_put(s->pool, s->rabuf);
    s->rabuf = NULL;
    s->ra_off = s->ra_len = 0;
}

static int ra_read(BIO *b, char *out, int len)
{
    struct sc_side *s = BIO_get_data(b);
    uint32_t take;

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (s->ra_len == 0) {
        ssize_t n;

        if (!s->rabuf && !(s->rabuf = sc_buf_get(s->pool))) {
            errno = ENOMEM;
            return -1;
        }
        do {
            n = read(s->fd, s->rabuf->data, SC_BUF_SIZE);
        } while (n == -1 && errno == EINTR);
        if (n <= 0) {
            int e = errno;

            ra_release(s);
            if (n == 0)
                return 0;
            if (e == EAGAIN)
                BIO_set_retry_read(b);
            errno = e;
            return -1;
        }
        s->ra_off = 0;
        s->ra_len = (uint32_t)n;
    }
    take = (uint32_t)len < s->ra_len ? (uint32_t)len : s->ra_len;
    memcpy(out, s->rabuf->data + s->ra_off, take);
    s->ra_off += take;
    s->ra_len -= take;
    if (s->ra_len == 0)
        ra_release(s);
    return (int)take;
}

static int ra_write(BIO *b, const char *in, int len)
{
    struct sc_side *s = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do {
        n = send(s->fd, in, (size_t)len, MSG_NOSIGNAL);
    } while (n == -1 && errno == EINTR);
    if (n == -1 && errno == EAGAIN)
        BIO_set_retry_write(b);
    return (int)n;
}

static long ra_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void ra_method_init(void)
{
    ra_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "duet read-ahead");
    if (!ra_method)
        return;
    BIO_meth_set_read(ra_method, ra_read);
    BIO_meth_set_write(ra_method, ra_write);
    BIO_meth_set_ctrl(ra_method, ra_ctrl);
}

static BIO *ra_bio_new(struct sc_side *s)
{
    BIO *b;

    pthread_once(&ra_once, ra_method_init);
    if (!ra_method || !(b = BIO_new(ra_method)))
        return NULL;
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return b;
}

int sc_tls_side_new(struct sc_side *s, struct sc_tls_set *set, struct sc_conn *c, bool server,
                    const struct sc_listen_cfg *lc, void *session)
{
    SSL *ssl = SSL_new(sc_tls_set_ctx(set, server));
    struct sc_listener *l = sc_conn_listener(c);
    const struct sc_tls_info *info = sc_tls_set_info(set);

    BIO *bio;

    if (!ssl)
        return DUET_ENOMEM;
    bio = ra_bio_new(s);
    if (!bio)
        goto fail;
    SSL_set_bio(ssl, bio, bio); /* one reference, owned by ssl */
    SSL_set_app_data(ssl, l);
    if (server) {
        uint8_t sid[32];

        /* Sessions resume only on the listener that verified them: a
         * resumption skips verification, so a session from a listener
         * without allow lists must not open one that has them. */
        if (!SSL_set_session_id_context(ssl, sid, sid_ctx(lc, sid)))
            goto fail;
        SSL_set_accept_state(ssl);
        SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
    } else {
        SSL_set_connect_state(ssl);
        SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_cb);
        if (lc->verify_ip) {
            if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), lc->sni))
                goto fail;
        } else if (!SSL_set1_host(ssl, lc->sni) || !SSL_set_tlsext_host_name(ssl, lc->sni)) {
            goto fail;
        }
        if (lc->resume && session && l->session_gen == info->generation)
            SSL_set_session(ssl, session);
    }
    s->tls = ssl;
    s->ops = &sc_xprt_tls;
    return 0;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return DUET_E_TLS;
}

/* Map SSL_get_error for a call that returned r; sets the want flag for dir. */
static int classify(struct sc_side *s, int r, bool *want_other)
{
    SSL *ssl = s->tls;
    int err = SSL_get_error(ssl, r);

    switch (err) {
    case SSL_ERROR_WANT_READ:
        *want_other = false;
        return DUET_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want_other = true;
        return DUET_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return DUET_EOF;
    case SSL_ERROR_SYSCALL:
        /* A peer that closes without close_notify: most HTTP stacks do. */
        if (ERR_peek_error() == 0)
            return errno && errno != EAGAIN ? -errno : DUET_EOF;
        return DUET_E_TLS;
    default:
        return DUET_E_TLS;
    }
}

static int tls_recv(struct sc_side *s, void *buf, size_t len)
{
    SSL *ssl = s->tls;
    size_t got = 0;
    int r;

    ERR_clear_error();
    errno = 0;
    r = SSL_read(ssl, buf, (int)len);
    if (r <= 0) {
        bool ww = false;
        int rc = classify(s, r, &ww);

        /* WANT_READ: the socket is simply empty. WANT_WRITE: a post-handshake
         * message (TLS 1.3 KeyUpdate) must go out first. */
        s->rd_want_wr = rc == DUET_EAGAIN && ww;
        return rc;
    }
    s->rd_want_wr = false;
    got = (size_t)r;
    /* Decrypt every whole record already read (BoringSSL's pending bytes and
     * our read-ahead) into this one buffer: several records per wake become
     * one plaintext write. A partial record left in the read-ahead costs at
     * most one read(2), which usually brings the rest. */
    while (got < len && (s->ra_len > 0 || SSL_pending(ssl) > 0)) {
        r = SSL_read(ssl, (char *)buf + got, (int)(len - got));
        if (r <= 0) {
            /* What we have goes out first; an EOF or error comes back on the
             * next call. A reply BoringSSL could not send (KeyUpdate) must
             * still ask for writability. */
            s->rd_want_wr = SSL_get_error(ssl, r) == SSL_ERROR_WANT_WRITE;
            ERR_clear_error(); /* only this path can leave errors queued */
            break;
        }
        got += (size_t)r;
    }
    return (int)got;
}

static int tls_send(struct sc_side *s, const void *buf, size_t len)
{
    int r;

    ERR_clear_error();
    errno = 0;
    r = SSL_write(s->tls, buf, (int)len);
    if (r > 0) {
        s->wr_want_rd = false;
        return r;
    }
    bool wr = false;
    int rc = classify(s, r, &wr);

    /* classify's flag means "wants write"; for a send, wanting read is the odd case. */
    s->wr_want_rd = rc == DUET_EAGAIN && !wr;
    return rc == DUET_EOF ? -EPIPE : rc;
}

static int tls_shutdown(struct sc_side *s)
{
    int r;

    ERR_clear_error();
    r = SSL_shutdown(s->tls); /* sends close_notify; reading goes on (half-close) */
    if (r >= 0) {
        s->rd_want_wr = false;
        return 0;
    }
    bool ww = false;
    int rc = classify(s, r, &ww);

    if (rc == DUET_EAGAIN) {
        s->rd_want_wr = true; /* come back when writable */
        return rc;
    }
    return 0; /* the peer is gone; nothing left to tell it */
}

static void tls_close(struct sc_side *s)
{
    SSL_free(s->tls);
    s->tls = NULL;
    ra_release(s);
}

static uint32_t tls_interest(const struct sc_side *s, bool want_recv, bool want_send)
{
    uint32_t ev = 0;

    if (want_recv || (want_send && s->wr_want_rd))
        ev |= DUET_EV_READ;
    if ((want_send && !s->wr_want_rd) || s->rd_want_wr)
        ev |= DUET_EV_WRITE;
    return ev;
}

static bool tls_pending(const struct sc_side *s)
{
    return s->ra_len > 0 || (s->tls && SSL_pending(s->tls) > 0);
}

const struct sc_xprt_ops sc_xprt_tls = {
    .name = "tls",
    .recv = tls_recv,
    .send = tls_send,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .interest = tls_interest,
    .pending = tls_pending,
};

int sc_tls_handshake(struct sc_side *s)
{
    int r;

    vf_set = false;
    vf_subject[0] = '\0';
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(s->tls);
    if (r == 1) {
        s->rd_want_wr = false;
        return 0;
    }
    bool ww = false;
    int rc = classify(s, r, &ww);

    s->rd_want_wr = rc == DUET_EAGAIN && ww;
    return rc == DUET_EOF ? DUET_E_TLS : rc;
}

uint32_t sc_tls_hs_interest(const struct sc_side *s)
{
    return s->rd_want_wr ? DUET_EV_WRITE : DUET_EV_READ;
}

enum sc_fail sc_tls_fail_reason(struct sc_side *s, char *why, size_t why_len, char *subject,
                                size_t subj_len)
{
    uint32_t e = ERR_peek_error();
    enum sc_fail f;

    snprintf(subject, subj_len, "%s", vf_subject[0] ? vf_subject : "-");
    if (vf_set) {
        f = vf_reason;
        snprintf(why, why_len, "%s", f == SC_FAIL_NOT_ALLOWED
                                         ? "certificate not in the allow list"
                                         : X509_verify_cert_error_string(vf_x509_err));
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        f = SC_FAIL_NO_CERT;
        snprintf(why, why_len, "no client certificate");
    } else {
        const char *r = e ? ERR_reason_error_string(e) : NULL;

        f = SC_FAIL_PROTOCOL;
        snprintf(why, why_len, "%s", r ? r : "connection closed during handshake");
        if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
            f = SC_FAIL_UNTRUSTED;
    }
    (void)s;
    ERR_clear_error();
    return f;
}

time_t sc_tls_peer_not_after(const struct sc_side *s)
{
    X509 *x = SSL_get_peer_certificate(s->tls);
    int days = 0, secs = 0;
    time_t t = 0;

    if (x && ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)))
        t = time(NULL) + (time_t)days * 86400 + secs;
    X509_free(x);
    return t;
}

bool sc_tls_resumed(const struct sc_side *s)
{
    return SSL_session_reused(s->tls) == 1;
}
