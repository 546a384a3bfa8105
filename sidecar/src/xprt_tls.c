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
 * Each TLS side has a context of its own (struct tls_ctx, the side's
 * opaque `ctx`): the SSL, the read-ahead, the want-the-other-direction
 * flags, and what the verify callback saw. The callback reaches it through
 * the SSL's app data, so nothing here knows the connection; a refused
 * certificate is kept (one reference) only until the handshake reports it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/pki_bssl.h"
#include "cfg.h"
#include "pump.h"
#include "tls_int.h"
#include "xprt.h"
#include "xprt_tls.h"

/* What the last SSL call needs before it can go on (from SSL_get_error). */
enum tls_want {
    TLS_WANT_NOTHING = 0, /* done, or failed */
    TLS_WANT_READ,        /* the socket readable */
    TLS_WANT_WRITE,       /* the socket writable */
};

struct tls_ctx {
    SSL *ssl;
    int fd;
    bool rd_want_wr; /* the last recv (or handshake step) needs the socket writable */
    bool wr_want_rd; /* the last send needs the socket readable */
    const struct sc_listen_cfg *lcfg;
    struct sc_tls_set *set;         /* borrowed: the connection holds a reference */
    struct sc_tls_session *session; /* client: the listener's resumption slot */
    /* Read-ahead: socket bytes BoringSSL has not asked for yet, in a pool
     * buffer held only while non-empty. */
    struct sc_bufpool *pool;
    struct sc_buf *rabuf;
    uint32_t ra_off;
    uint32_t ra_len;
    /* Within the current op (handshake, recv, send, shutdown): the socket
     * already gave all it had (a short read, or EAGAIN), or we just sent a
     * handshake flight the peer cannot have answered yet. Another read(2)
     * would only hear EAGAIN: the BIO says "retry" without it, and
     * level-triggered epoll reports whatever arrives. Reset by every op. */
    bool drained;
    /* recv returned bytes with an end (close_notify) or an error behind
     * them, which the next recv reports: until then pending() says so,
     * because epoll may never report the socket again (a peer that sent
     * close_notify may wait for ours before its FIN). */
    bool end_held;
    /* The verify callback's finding, for the handshake's report. */
    bool vf_set;
    int vf_x509_err;
    enum sc_fail vf_reason;
    X509 *vf_cert; /* the refused certificate (a reference), or NULL */
};

static void note_failure(struct tls_ctx *t, int x509_err, enum sc_fail reason, X509 *x)
{
    t->vf_set = true;
    t->vf_x509_err = x509_err;
    t->vf_reason = reason;
    if (x && !t->vf_cert && X509_up_ref(x))
        t->vf_cert = x;
}

/*
 * The subject's one CN, decoded to UTF-8, into buf. Returns 1 with buf set,
 * 0 when the subject has no CN, -1 when it cannot name anyone: more than one
 * CN (which one would an allow entry mean?), an embedded NUL (so
 * "a.dev\0.evil" never compares equal to "a.dev"), or a CN longer than any
 * allow entry can be (never truncated into a match).
 */
static int subject_cn(X509 *x, char *buf, size_t size)
{
    const X509_NAME *nm = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
    unsigned char *utf8 = NULL;
    int len;

    buf[0] = '\0';
    if (i < 0)
        return 0;
    if (X509_NAME_get_index_by_NID(nm, NID_commonName, i) >= 0)
        return -1;
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
    if (len < 0) {
        ERR_clear_error();
        return -1;
    }
    if ((size_t)len >= size || memchr(utf8, 0, (size_t)len)) {
        OPENSSL_free(utf8);
        return -1;
    }
    memcpy(buf, utf8, (size_t)len);
    buf[len] = '\0';
    OPENSSL_free(utf8);
    return 1;
}

/*
 * The i-th name of gens as a C string in buf, when it is a URI that fits and
 * holds no NUL: a URI that does not can never match an allow entry, and
 * logging it cut short would show a name the certificate does not carry.
 */
static bool uri_at(const GENERAL_NAMES *gens, size_t i, char *buf, size_t size)
{
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    const ASN1_STRING *u;
    size_t len;

    if (g->type != GEN_URI)
        return false;
    u = g->d.uniformResourceIdentifier;
    len = (size_t)ASN1_STRING_length(u);
    if (len >= size || memchr(ASN1_STRING_get0_data(u), 0, len))
        return false;
    memcpy(buf, ASN1_STRING_get0_data(u), len);
    buf[len] = '\0';
    return true;
}

bool sc_tls_leaf_allowed(const struct sc_listen_cfg *l, X509 *x)
{
    char cn[DUET_NET_HOST_MAX];
    char uris[SC_MAX_ALLOW][DUET_NET_HOST_MAX];
    const char *ptrs[SC_MAX_ALLOW];
    unsigned n = 0;
    GENERAL_NAMES *gens;
    int has_cn;

    if (l->n_cn == 0 && l->n_san == 0)
        return true;
    has_cn = subject_cn(x, cn, sizeof(cn));
    if (has_cn < 0)
        return false; /* an ambiguous subject is refused outright, whichever list would match */
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (size_t i = 0; gens && i < sk_GENERAL_NAME_num(gens) && n < SC_MAX_ALLOW; i++) {
        if (uri_at(gens, i, uris[n], sizeof(uris[n]))) {
            ptrs[n] = uris[n];
            n++;
        }
    }
    GENERAL_NAMES_free(gens);
    return sc_cfg_allowed(l, has_cn ? cn : NULL, ptrs, n);
}

/* An upstream must say it is a TLS server: an extendedKeyUsage extension
 * that lists serverAuth. X509_PURPOSE_SSL_SERVER alone lets a certificate
 * without the extension (a v1 certificate, say) pass as anything. */
static bool leaf_is_server(X509 *x)
{
    return (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) &&
           (X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
}

static enum sc_fail reason_of(int x509_err)
{
    switch (x509_err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return SC_FAIL_EXPIRED;
    case X509_V_ERR_CRL_HAS_EXPIRED:
        return SC_FAIL_CRL_STALE;
    case X509_V_ERR_CERT_REVOKED:
        return SC_FAIL_REVOKED;
    default:
        return SC_FAIL_UNTRUSTED;
    }
}

/*
 * A session must not outlive the certificate it was authenticated with:
 * cap the session being negotiated at the peer's notAfter, so the ticket's
 * lifetime hint and our own cache agree with it. (SSL_get_session during a
 * handshake gives the new session; the resumption check in tls_handshake
 * is what enforces the bound either way.)
 */
static void cap_session(SSL *ssl, X509 *leaf)
{
    SSL_SESSION *sess = SSL_get_session(ssl);
    int64_t left = duet_asn1_time_to_unix(X509_get0_notAfter(leaf)) - (int64_t)duet_clock_now();

    if (!sess)
        return;
    if (left < 0)
        left = 0;
    if ((uint64_t)left < SSL_SESSION_get_timeout(sess))
        SSL_SESSION_set_timeout(sess, (uint32_t)left);
}

static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls_ctx *t = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(ctx);

    if (!t)
        return 0;
    if (!ok) {
        if (!t->vf_set) {
            int e = X509_STORE_CTX_get_error(ctx);

            note_failure(t, e, reason_of(e), leaf);
        }
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(ctx) == 0 && t->lcfg->dir == SC_OUTBOUND &&
        !leaf_is_server(leaf)) {
        note_failure(t, X509_V_ERR_INVALID_PURPOSE, SC_FAIL_UNTRUSTED, leaf);
        X509_STORE_CTX_set_error(ctx, X509_V_ERR_INVALID_PURPOSE);
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(ctx) == 0 && t->lcfg->dir == SC_INBOUND &&
        !sc_tls_leaf_allowed(t->lcfg, leaf)) {
        note_failure(t, X509_V_ERR_APPLICATION_VERIFICATION, SC_FAIL_NOT_ALLOWED, leaf);
        X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(ctx) == 0)
        cap_session(ssl, leaf);
    return 1;
}

int sc_tls_on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_ctx *t = SSL_get_app_data(ssl);
    struct sc_tls_set *set = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

    if (!t || !t->session || !set || !t->lcfg->resume)
        return 0;
    if (t->session->session)
        SSL_SESSION_free(t->session->session);
    t->session->session = sess; /* returning 1 keeps the reference BoringSSL handed us */
    t->session->gen = sc_tls_set_info(set)->generation;
    return 1;
}

void sc_tls_session_drop(struct sc_tls_session *slot)
{
    if (slot->session)
        SSL_SESSION_free(slot->session);
    slot->session = NULL;
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

static void ra_release(struct tls_ctx *t)
{
    if (t->rabuf)
        sc_buf_put(t->pool, t->rabuf);
    t->rabuf = NULL;
    t->ra_off = t->ra_len = 0;
}

static int ra_read(BIO *b, char *out, int len)
{
    struct tls_ctx *t = BIO_get_data(b);
    uint32_t take;

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (t->ra_len == 0) {
        ssize_t n;

        if (t->drained) {
            BIO_set_retry_read(b);
            errno = EAGAIN;
            return -1;
        }
        if (!t->rabuf && !(t->rabuf = sc_buf_get(t->pool))) {
            errno = ENOMEM;
            return -1;
        }
        do {
            n = read(t->fd, t->rabuf->data, SC_BUF_SIZE);
        } while (n == -1 && errno == EINTR);
        if (n <= 0) {
            int e = errno;

            ra_release(t);
            if (n == 0)
                return 0;
            if (e == EAGAIN) {
                BIO_set_retry_read(b);
                t->drained = true;
            }
            errno = e;
            return -1;
        }
        t->ra_off = 0;
        t->ra_len = (uint32_t)n;
        t->drained = n < SC_BUF_SIZE; /* a short read emptied the socket */
    }
    take = (uint32_t)len < t->ra_len ? (uint32_t)len : t->ra_len;
    memcpy(out, t->rabuf->data + t->ra_off, take);
    t->ra_off += take;
    t->ra_len -= take;
    if (t->ra_len == 0)
        ra_release(t);
    return (int)take;
}

static int ra_write(BIO *b, const char *in, int len)
{
    struct tls_ctx *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do {
        n = send(t->fd, in, (size_t)len, MSG_NOSIGNAL);
    } while (n == -1 && errno == EINTR);
    if (n == -1 && errno == EAGAIN)
        BIO_set_retry_write(b);
    /* A handshake flight just left: its answer is a round trip away, so
     * the read BoringSSL makes next (ClientHello, server flight) would only
     * hear EAGAIN. */
    if (n > 0 && SSL_in_init(t->ssl))
        t->drained = true;
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

static BIO *ra_bio_new(struct tls_ctx *t)
{
    BIO *b;

    pthread_once(&ra_once, ra_method_init);
    if (!ra_method || !(b = BIO_new(ra_method)))
        return NULL;
    BIO_set_data(b, t);
    BIO_set_init(b, 1);
    return b;
}

/* ---- the ops ---- */

static struct tls_ctx *ctx_of(const struct sc_side *s)
{
    return s->ctx;
}

static void ctx_free(struct tls_ctx *t)
{
    SSL_free(t->ssl);
    ra_release(t);
    X509_free(t->vf_cert);
    duet_free(t);
}

static int setup_ssl(struct tls_ctx *t, const struct sc_xprt_args *a)
{
    const struct sc_listen_cfg *lc = a->lcfg;
    BIO *bio = ra_bio_new(t);

    if (!bio)
        return DUET_E_TLS;
    SSL_set_bio(t->ssl, bio, bio); /* one reference, owned by the SSL */
    SSL_set_app_data(t->ssl, t);
    if (a->server) {
        uint8_t sid[32];

        /* Sessions resume only on the listener that verified them: a
         * resumption skips verification, so a session from a listener
         * without allow lists must not open one that has them. */
        if (!SSL_set_session_id_context(t->ssl, sid, sid_ctx(lc, sid)))
            return DUET_E_TLS;
        SSL_set_accept_state(t->ssl);
        SSL_set_verify(t->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    SSL_set_verify(t->ssl, SSL_VERIFY_PEER, verify_cb);
    if (lc->verify_ip) {
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), lc->sni))
            return DUET_E_TLS;
    } else if (!SSL_set1_host(t->ssl, lc->sni) || !SSL_set_tlsext_host_name(t->ssl, lc->sni)) {
        return DUET_E_TLS;
    }
    /* Host names are matched against DNS SANs only, never the subject CN
     * (RFC 6125 6.4.4; a CN is free text, and a certificate without SANs
     * must not stand in for a name). */
    X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(t->ssl), X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    if (lc->resume && t->session && t->session->session &&
        t->session->gen == sc_tls_set_info(a->set)->generation)
        SSL_set_session(t->ssl, t->session->session);
    return 0;
}

static int tls_open(struct sc_side *s, const struct sc_xprt_args *a)
{
    struct tls_ctx *t = duet_calloc(1, sizeof(*t));
    int rc;

    if (!t)
        return DUET_ENOMEM;
    t->fd = s->fd;
    t->pool = a->pool;
    t->lcfg = a->lcfg;
    t->set = a->set;
    t->session = a->server ? NULL : a->session;
    t->ssl = SSL_new(sc_tls_set_ctx(a->set, a->server));
    rc = t->ssl ? setup_ssl(t, a) : DUET_ENOMEM;
    if (rc < 0) {
        ctx_free(t);
        ERR_clear_error();
        return rc;
    }
    s->ctx = t;
    return 0;
}

/* Map SSL_get_error for a call that returned r: a code, and what it waits for. */
static int classify(struct tls_ctx *t, int r, enum tls_want *want)
{
    int err = SSL_get_error(t->ssl, r);

    *want = TLS_WANT_NOTHING;
    switch (err) {
    case SSL_ERROR_WANT_READ:
        *want = TLS_WANT_READ;
        return DUET_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = TLS_WANT_WRITE;
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
    struct tls_ctx *t = ctx_of(s);
    enum tls_want want;
    size_t got = 0;
    int r;

    t->drained = false;
    ERR_clear_error();
    errno = 0;
    r = SSL_read(t->ssl, buf, (int)len);
    t->end_held = false;
    if (r <= 0) {
        int rc = classify(t, r, &want);

        /* WANT_READ: the socket is simply empty. WANT_WRITE: a post-handshake
         * message (TLS 1.3 KeyUpdate) must go out first. */
        t->rd_want_wr = want == TLS_WANT_WRITE;
        return rc;
    }
    t->rd_want_wr = false;
    got = (size_t)r;
    /* Decrypt every whole record already read (BoringSSL's pending bytes and
     * our read-ahead) into this one buffer: several records per wake become
     * one plaintext write. A partial record left in the read-ahead costs at
     * most one read(2), which usually brings the rest. */
    while (got < len && (t->ra_len > 0 || SSL_pending(t->ssl) > 0)) {
        r = SSL_read(t->ssl, (char *)buf + got, (int)(len - got));
        if (r <= 0) {
            int e = SSL_get_error(t->ssl, r);

            /* What we have goes out first; an EOF or error comes back on the
             * next call (BoringSSL repeats it), which pending() asks for. A
             * reply BoringSSL could not send (KeyUpdate) must still ask for
             * writability. */
            t->rd_want_wr = e == SSL_ERROR_WANT_WRITE;
            t->end_held = e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
            ERR_clear_error(); /* only this path can leave errors queued */
            break;
        }
        got += (size_t)r;
    }
    return (int)got;
}

static int tls_send(struct sc_side *s, const void *buf, size_t len)
{
    struct tls_ctx *t = ctx_of(s);
    enum tls_want want;
    int r, rc;

    t->drained = false;
    ERR_clear_error();
    errno = 0;
    r = SSL_write(t->ssl, buf, (int)len);
    if (r > 0) {
        t->wr_want_rd = false;
        return r;
    }
    rc = classify(t, r, &want);
    t->wr_want_rd = want == TLS_WANT_READ; /* for a send, wanting read is the odd case */
    return rc == DUET_EOF ? -EPIPE : rc;
}

static int tls_shutdown(struct sc_side *s)
{
    struct tls_ctx *t = ctx_of(s);
    enum tls_want want;
    int r;

    t->drained = false;
    ERR_clear_error();
    r = SSL_shutdown(t->ssl); /* sends close_notify; reading goes on (half-close) */
    if (r >= 0) {
        t->rd_want_wr = false;
        return 0;
    }
    if (classify(t, r, &want) == DUET_EAGAIN) {
        t->rd_want_wr = true; /* come back when writable */
        return DUET_EAGAIN;
    }
    return 0; /* the peer is gone; nothing left to tell it */
}

static void tls_close(struct sc_side *s, bool graceful)
{
    struct tls_ctx *t = ctx_of(s);

    if (!t)
        return;
    if (graceful)
        (void)tls_shutdown(s); /* best effort close_notify */
    ctx_free(t);
    s->ctx = NULL;
}

static uint32_t tls_interest(const struct sc_side *s, bool want_recv, bool want_send)
{
    const struct tls_ctx *t = ctx_of(s);
    uint32_t ev = 0;

    if (want_recv || (want_send && t->wr_want_rd))
        ev |= DUET_EV_READ;
    if ((want_send && !t->wr_want_rd) || t->rd_want_wr)
        ev |= DUET_EV_WRITE;
    return ev;
}

static bool tls_pending(const struct sc_side *s)
{
    const struct tls_ctx *t = ctx_of(s);

    return t->ra_len > 0 || SSL_pending(t->ssl) > 0 || t->end_held;
}

static unsigned tls_cross(const struct sc_side *s)
{
    const struct tls_ctx *t = ctx_of(s);

    return (t->rd_want_wr ? SC_CROSS_RD_WANTS_WR : 0u) |
           (t->wr_want_rd ? SC_CROSS_WR_WANTS_RD : 0u);
}

/* After a failed handshake: the reason, and a log-ready description. */
static void report_failure(struct tls_ctx *t, struct sc_xprt_hs *hs)
{
    uint32_t e = ERR_peek_error();

    snprintf(hs->subject, sizeof(hs->subject), "-");
    if (t->vf_cert)
        X509_NAME_oneline(X509_get_subject_name(t->vf_cert), hs->subject, sizeof(hs->subject));
    if (t->vf_set) {
        hs->fail = t->vf_reason;
        snprintf(hs->why, sizeof(hs->why), "%s",
                 hs->fail == SC_FAIL_NOT_ALLOWED ? "certificate not in the allow list"
                 : hs->fail == SC_FAIL_CRL_STALE
                     ? "our CRL is past its nextUpdate: every peer is refused until a fresh "
                       "CRL is loaded (not the peer's fault)"
                     : X509_verify_cert_error_string(t->vf_x509_err));
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        hs->fail = SC_FAIL_NO_CERT;
        snprintf(hs->why, sizeof(hs->why), "no client certificate");
    } else {
        const char *r = e ? ERR_reason_error_string(e) : NULL;

        hs->fail = SC_FAIL_PROTOCOL;
        snprintf(hs->why, sizeof(hs->why), "%s", r ? r : "connection closed during handshake");
        if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
            hs->fail = SC_FAIL_UNTRUSTED;
    }
    X509_free(t->vf_cert);
    t->vf_cert = NULL;
    ERR_clear_error();
}

/* ---- checking a peer again: on resumption, and after a reload ---- */

static bool valid_now(X509 *x, int64_t now)
{
    return duet_asn1_time_to_unix(X509_get0_notBefore(x)) <= now &&
           now < duet_asn1_time_to_unix(X509_get0_notAfter(x));
}

/* Expiry of the chain the peer sent, and the set's CRL for the leaf: what
 * can have changed since the session was made with this very set (same
 * ca.crt, same CRL file). No signature is checked again, so a resumption
 * stays cheap. */
static int quick_check(struct tls_ctx *t, X509 *leaf, struct sc_tls_set *set)
{
    const STACK_OF(X509_CRL) *crls = sc_tls_set_crls(set);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
    int64_t now = duet_clock_now();
    bool covered = false;

    if (!valid_now(leaf, now))
        return X509_V_ERR_CERT_HAS_EXPIRED;
    for (size_t i = 0; chain && i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);

        /* A client's chain starts with the leaf (the same object): checked. */
        if (x != leaf && !valid_now(x, now))
            return X509_V_ERR_CERT_HAS_EXPIRED;
    }
    if (!crls)
        return X509_V_OK;
    if (sc_tls_crl_stale(sc_tls_set_info(set), now))
        return X509_V_ERR_CRL_HAS_EXPIRED;
    for (size_t i = 0; i < sk_X509_CRL_num(crls); i++) {
        X509_CRL *crl = sk_X509_CRL_value(crls, i);
        X509_REVOKED *rev;

        if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(leaf)) != 0)
            continue;
        covered = true;
        if (X509_CRL_get0_by_cert(crl, &rev, leaf) == 1)
            return X509_V_ERR_CERT_REVOKED;
    }
    return covered ? X509_V_OK : X509_V_ERR_UNABLE_TO_GET_CRL;
}

/* The whole verification again, against another set's ca.crt and CRL. */
static int full_check(struct tls_ctx *t, X509 *leaf, struct sc_tls_set *set)
{
    SSL_CTX *ctx = sc_tls_set_ctx(set, t->lcfg->dir == SC_INBOUND);
    X509_STORE_CTX *sctx = X509_STORE_CTX_new();
    int e = X509_V_ERR_OUT_OF_MEM;

    if (sctx &&
        X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), leaf,
                            SSL_get_peer_cert_chain(t->ssl)) &&
        X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(sctx), SSL_CTX_get0_param(ctx)))
        e = X509_verify_cert(sctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(sctx);
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    return e;
}

/* 0, or DUET_E_TLS with hs saying why the peer fails now. */
static int check_peer(struct tls_ctx *t, struct sc_tls_set *set, bool full, struct sc_xprt_hs *hs)
{
    X509 *leaf = SSL_get_peer_certificate(t->ssl);
    enum sc_fail f = SC_FAIL_COUNT;
    int e;

    if (!leaf) {
        hs->fail = SC_FAIL_NO_CERT;
        snprintf(hs->why, sizeof(hs->why), "no peer certificate");
        snprintf(hs->subject, sizeof(hs->subject), "-");
        return DUET_E_TLS;
    }
    e = full ? full_check(t, leaf, set) : quick_check(t, leaf, set);
    if (e != X509_V_OK)
        f = reason_of(e);
    else if (t->lcfg->dir == SC_INBOUND && !sc_tls_leaf_allowed(t->lcfg, leaf))
        f = SC_FAIL_NOT_ALLOWED;
    else if (t->lcfg->dir == SC_OUTBOUND && !leaf_is_server(leaf))
        f = SC_FAIL_UNTRUSTED, e = X509_V_ERR_INVALID_PURPOSE;
    if (f != SC_FAIL_COUNT) {
        hs->fail = f;
        X509_NAME_oneline(X509_get_subject_name(leaf), hs->subject, sizeof(hs->subject));
        snprintf(hs->why, sizeof(hs->why), "%s: %s", full ? "re-checked" : "resumed session",
                 f == SC_FAIL_NOT_ALLOWED ? "certificate not in the allow list"
                 : f == SC_FAIL_CRL_STALE ? "our CRL is past its nextUpdate"
                                          : X509_verify_cert_error_string(e));
    }
    X509_free(leaf);
    return f == SC_FAIL_COUNT ? 0 : DUET_E_TLS;
}

static int tls_recheck(struct sc_side *s, struct sc_tls_set *set, struct sc_xprt_hs *hs)
{
    return check_peer(ctx_of(s), set, true, hs);
}

static void report_success(struct tls_ctx *t, struct sc_xprt_hs *hs)
{
    X509 *x = SSL_get_peer_certificate(t->ssl);

    hs->resumed = SSL_session_reused(t->ssl) == 1;
    hs->peer_not_after = x ? duet_asn1_time_to_unix(X509_get0_notAfter(x)) : 0;
    X509_free(x);
    X509_free(t->vf_cert); /* a callback that failed and was overruled: nothing to report */
    t->vf_cert = NULL;
}

static int tls_handshake(struct sc_side *s, struct sc_xprt_hs *hs)
{
    struct tls_ctx *t = ctx_of(s);
    enum tls_want want;
    int r, rc;

    t->vf_set = false;
    t->drained = false;
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->rd_want_wr = false;
        /* A resumption skips verification: before a byte is forwarded, make
         * sure the peer has not expired since, nor been revoked by the CRL,
         * and still passes the allow list. */
        if (SSL_session_reused(t->ssl) == 1 && check_peer(t, t->set, false, hs) < 0) {
            if (t->session)
                sc_tls_session_drop(t->session); /* the next connection handshakes in full */
            X509_free(t->vf_cert);
            t->vf_cert = NULL;
            return DUET_E_TLS;
        }
        report_success(t, hs);
        return 0;
    }
    rc = classify(t, r, &want);
    t->rd_want_wr = want == TLS_WANT_WRITE;
    if (rc == DUET_EAGAIN) {
        hs->events = t->rd_want_wr ? DUET_EV_WRITE : DUET_EV_READ;
        return rc;
    }
    report_failure(t, hs);
    return rc == DUET_EOF ? DUET_E_TLS : rc;
}

/* Hex of the serial's content octets, straight from the certificate: no
 * bignum, no allocation. */
static void serial_hex(X509 *x, char *out, size_t size)
{
    const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
    const uint8_t *p = ASN1_STRING_get0_data(sn);
    size_t n = (size_t)ASN1_STRING_length(sn), o = 0;

    for (size_t i = 0; i < n && o + 3 <= size; i++, o += 2)
        snprintf(out + o, 3, "%02X", p[i]);
    out[o] = '\0';
    if (o == 0)
        snprintf(out, size, "-");
}

void sc_tls_first_uri(X509 *x, char *out, size_t size)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    bool found = false;

    for (size_t i = 0; gens && !found && i < sk_GENERAL_NAME_num(gens); i++)
        found = uri_at(gens, i, out, size);
    if (!found)
        snprintf(out, size, "-");
    GENERAL_NAMES_free(gens);
    ERR_clear_error();
}

static int tls_peer(const struct sc_side *s, struct sc_xprt_peer *out)
{
    const struct tls_ctx *t = ctx_of(s);
    X509 *x = SSL_get_peer_certificate(t->ssl);

    if (!x)
        return DUET_EINVAL;
    X509_NAME_oneline(X509_get_subject_name(x), out->subject, sizeof(out->subject));
    sc_tls_first_uri(x, out->uri, sizeof(out->uri));
    serial_hex(x, out->serial, sizeof(out->serial));
    out->resumed = SSL_session_reused(t->ssl) == 1;
    X509_free(x);
    return 0;
}

const struct sc_xprt_ops sc_xprt_tls = {
    .open = tls_open,
    .handshake = tls_handshake,
    .recv = tls_recv,
    .send = tls_send,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .interest = tls_interest,
    .pending = tls_pending,
    .cross = tls_cross,
    .peer = tls_peer,
    .recheck = tls_recheck,
};
