/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS transport over socketpairs, both ends in this process: handshake
 * steps and their interest, data both ways, want-write on a full socket and
 * the retry with the same bytes, half close, refusals with their reasons,
 * a peer gone mid-handshake, and resumption bounded by the set generation.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cmocka.h>

#include "duet/clock.h"
#include "duet/err.h"
#include "duet/loop.h"
#include "cfg.h"
#include "pump.h"
#include "tl_pki.h"
#include "tls_int.h"
#include "tls_set.h"
#include "xprt.h"
#include "xprt_tls.h"

#define DAY 86400

static struct tl_ca ca, other_ca;

/* client <-> server, each end a TLS side of its own */
struct rig {
    int fd[2];
    struct sc_side cli, srv;
    struct sc_bufpool pool;
    struct sc_listen_cfg lc_out, lc_in;
    struct sc_tls_session slot;
    struct sc_tls_set *cset, *sset;
};

static struct sc_tls_set *make_set_for(const struct tl_ca *issuer, enum duet_profile prof,
                                       const char *cn, uint64_t gen, int64_t validity)
{
    struct tl_pem p;
    struct duet_errbuf eb;
    struct sc_tls_set *s;
    unsigned use = prof == DUET_PROFILE_SERVER ? SC_USE_SERVER : SC_USE_CLIENT;

    duet_errbuf_clear(&eb);
    tl_pem_issue(issuer, prof, cn, duet_clock_now(), validity, &p);
    struct sc_tls_files f = {p.cert, p.cert_len, p.key, p.key_len, p.ca, p.ca_len, NULL, 0, 0};
    s = sc_tls_set_build(&f, "v", gen, use, &eb);
    if (!s)
        print_error("set: %s\n", eb.msg);
    assert_non_null(s);
    tl_pem_free(&p);
    return s;
}

static struct sc_tls_set *make_set(const struct tl_ca *issuer, enum duet_profile prof,
                                   const char *cn, uint64_t gen)
{
    return make_set_for(issuer, prof, cn, gen, DAY);
}

static void rig_init(struct rig *r, struct sc_tls_set *cset, struct sc_tls_set *sset)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, r->fd), 0);
    r->pool.max_free = 2;
    r->lc_out.dir = SC_OUTBOUND;
    snprintf(r->lc_out.sni, sizeof(r->lc_out.sni), "localhost");
    r->lc_in.dir = SC_INBOUND;
    r->cset = cset;
    r->sset = sset;
    r->cli = (struct sc_side){.fd = r->fd[0], .ops = &sc_xprt_tls};
    r->srv = (struct sc_side){.fd = r->fd[1], .ops = &sc_xprt_tls};
}

static void rig_open(struct rig *r)
{
    struct sc_xprt_args ca_args = {&r->pool, r->cset, &r->lc_out, &r->slot, false};
    struct sc_xprt_args sa_args = {&r->pool, r->sset, &r->lc_in, NULL, true};

    assert_int_equal(sc_xprt_tls.open(&r->cli, &ca_args), 0);
    assert_int_equal(sc_xprt_tls.open(&r->srv, &sa_args), 0);
}

static void rig_close(struct rig *r)
{
    if (r->cli.ctx)
        r->cli.ops->close(&r->cli, false);
    if (r->srv.ctx)
        r->srv.ops->close(&r->srv, false);
    if (r->fd[0] >= 0)
        close(r->fd[0]);
    if (r->fd[1] >= 0)
        close(r->fd[1]);
    assert_int_equal(r->pool.in_use, 0); /* the read-ahead gave its buffers back */
    sc_bufpool_deinit(&r->pool);
}

/* A client and a server of the same CA, generation 1. */
static void rig_std(struct rig *r)
{
    rig_init(r, make_set(&ca, DUET_PROFILE_CLIENT, "client", 1),
             make_set(&ca, DUET_PROFILE_SERVER, "server", 1));
}

static void rig_done(struct rig *r)
{
    rig_close(r);
    sc_tls_set_unref(r->cset);
    sc_tls_set_unref(r->sset);
}

/* Step both ends until neither says DUET_EAGAIN; their last results come back. */
static void drive(struct rig *r, int *crc, int *src, struct sc_xprt_hs *chs, struct sc_xprt_hs *shs)
{
    *crc = *src = DUET_EAGAIN;
    for (int i = 0; i < 20 && (*crc == DUET_EAGAIN || *src == DUET_EAGAIN); i++) {
        if (*crc == DUET_EAGAIN)
            *crc = r->cli.ops->handshake(&r->cli, chs);
        if (*src == DUET_EAGAIN)
            *src = r->srv.ops->handshake(&r->srv, shs);
    }
}

static void handshake_ok(struct rig *r, struct sc_xprt_hs *chs, struct sc_xprt_hs *shs)
{
    int crc, src;

    drive(r, &crc, &src, chs, shs);
    assert_int_equal(crc, 0);
    assert_int_equal(src, 0);
}

/* rig_std, opened and past the handshake, for tests about what follows. */
static void rig_std_open(struct rig *r)
{
    struct sc_xprt_hs chs = {0}, shs = {0};

    rig_std(r);
    rig_open(r);
    handshake_ok(r, &chs, &shs);
}

/* Read until n bytes came or the socket is empty. */
static size_t recv_all(struct sc_side *s, char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        int r = s->ops->recv(s, buf + got, n - got);

        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static void handshake__first_step_waits_for_read_then_bytes_flow(void **state)
{
    struct rig r;
    struct sc_xprt_hs chs = {0}, shs = {0};
    char buf[64];

    (void)state;
    rig_std(&r);
    rig_open(&r);
    /* The ClientHello went out; nothing can come back before the server runs. */
    assert_int_equal(r.cli.ops->handshake(&r.cli, &chs), DUET_EAGAIN);
    assert_int_equal(chs.events, DUET_EV_READ);
    handshake_ok(&r, &chs, &shs);
    assert_false(chs.resumed);
    /* The server learns the client certificate's notAfter, a day from now. */
    assert_true(shs.peer_not_after > (int64_t)duet_clock_now() + DAY - 600);
    assert_true(shs.peer_not_after <= (int64_t)duet_clock_now() + DAY);
    assert_int_equal(r.cli.ops->send(&r.cli, "hello", 5), 5);
    assert_int_equal(recv_all(&r.srv, buf, 5), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(r.srv.ops->send(&r.srv, "world!", 6), 6);
    assert_int_equal(recv_all(&r.cli, buf, 6), 6);
    assert_memory_equal(buf, "world!", 6);
    /* Nothing more: an empty socket is DUET_EAGAIN and the interest is plain read. */
    assert_int_equal(r.srv.ops->recv(&r.srv, buf, sizeof(buf)), DUET_EAGAIN);
    assert_int_equal(r.srv.ops->interest(&r.srv, true, false), DUET_EV_READ);
    assert_int_equal(r.srv.ops->cross(&r.srv), SC_CROSS_NONE);
    assert_false(r.srv.ops->pending(&r.srv));
    rig_done(&r);
}

static void send__full_socket_wants_write_and_retry_delivers_the_same_bytes(void **state)
{
    static char out[16384], in[16384];
    struct rig r;
    struct sc_xprt_hs chs = {0}, shs = {0};
    size_t sent = 0, got = 0;
    int n, small = 4096;

    (void)state;
    rig_std(&r);
    setsockopt(r.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    rig_open(&r);
    handshake_ok(&r, &chs, &shs);
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (char)(i * 7);
    for (;;) {
        n = r.cli.ops->send(&r.cli, out, sizeof(out));
        if (n == DUET_EAGAIN)
            break;
        assert_int_equal(n, (int)sizeof(out));
        sent += (size_t)n;
        assert_true(sent < 64u << 20);
    }
    assert_true(r.cli.ops->interest(&r.cli, false, true) & DUET_EV_WRITE);
    /* The reader empties the socket; the same bytes, retried, go through. */
    for (int tries = 0; tries < 10000; tries++) {
        n = r.srv.ops->recv(&r.srv, in, sizeof(in));
        if (n > 0) {
            for (int i = 0; i < n; i++)
                assert_int_equal(in[i], (char)((got + (size_t)i) % sizeof(out) * 7));
            got += (size_t)n;
        }
        if (got == sent) {
            n = r.cli.ops->send(&r.cli, out, sizeof(out));
            if (n > 0) {
                sent += (size_t)n;
                break;
            }
        }
    }
    assert_int_equal(n, (int)sizeof(out));
    assert_int_equal(recv_all(&r.srv, in, sizeof(in)), sizeof(in));
    assert_memory_equal(in, out, sizeof(in));
    rig_done(&r);
}

static void shutdown__half_close_keeps_the_other_direction(void **state)
{
    struct rig r;
    char buf[16];

    (void)state;
    rig_std_open(&r);
    assert_int_equal(r.cli.ops->shutdown(&r.cli), 0);
    assert_int_equal(r.srv.ops->recv(&r.srv, buf, sizeof(buf)), DUET_EOF);
    assert_int_equal(r.srv.ops->send(&r.srv, "late", 4), 4);
    assert_int_equal(recv_all(&r.cli, buf, 4), 4);
    assert_memory_equal(buf, "late", 4);
    rig_done(&r);
}

/* Bytes and the close_notify behind them come in one read: recv returns
 * the bytes, and pending() holds the end until the next recv reports it. A
 * peer that sent close_notify may wait for ours before its FIN, so epoll
 * would never report the socket again. */
static void recv__end_behind_bytes_stays_pending_until_reported(void **state)
{
    struct rig r;
    char buf[64];

    (void)state;
    rig_std_open(&r);
    assert_int_equal(r.srv.ops->send(&r.srv, "last", 4), 4);
    assert_int_equal(r.srv.ops->shutdown(&r.srv), 0);
    assert_int_equal(r.cli.ops->recv(&r.cli, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "last", 4);
    assert_true(r.cli.ops->pending(&r.cli));
    assert_int_equal(r.cli.ops->recv(&r.cli, buf, sizeof(buf)), DUET_EOF);
    rig_done(&r);
}

static void handshake__untrusted_server_is_refused_with_its_subject(void **state)
{
    struct rig r;
    struct sc_xprt_hs chs = {0}, shs = {0};
    int crc, src;

    (void)state;
    rig_init(&r, make_set(&ca, DUET_PROFILE_CLIENT, "client", 1),
             make_set(&other_ca, DUET_PROFILE_SERVER, "stranger", 1));
    rig_open(&r);
    drive(&r, &crc, &src, &chs, &shs);
    assert_true(crc < 0);
    assert_int_equal(chs.fail, SC_FAIL_UNTRUSTED);
    assert_non_null(strstr(chs.subject, "CN=stranger"));
    assert_true(chs.why[0] != '\0');
    rig_done(&r);
}

/* A bare certificate whose subject holds these CNs (raw bytes, lengths given). */
static X509 *cert_with_cns(const char *const *cns, const size_t *lens, size_t n)
{
    X509 *x = X509_new();

    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(
            X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName, V_ASN1_UTF8STRING,
                                       (const unsigned char *)cns[i], (int)lens[i], -1, 0),
            1);
    return x;
}

static bool allowed_cns(const char *const *cns, const size_t *lens, size_t n)
{
    struct sc_listen_cfg lc = {.dir = SC_INBOUND, .n_cn = 1};
    X509 *x = cert_with_cns(cns, lens, n);
    bool ok;

    snprintf(lc.allow_cn[0], sizeof(lc.allow_cn[0]), "dev.productA.dev");
    ok = sc_tls_leaf_allowed(&lc, x);
    X509_free(x);
    return ok;
}

static void leaf_allowed__exact_cn_only(void **state)
{
    static const char nul[] = "dev.productA.dev\0.productC";
    char long_cn[264];
    const char *one[] = {"dev.productA.dev"};
    const size_t one_len[] = {16};
    const char *with_nul[] = {nul};
    const size_t with_nul_len[] = {sizeof(nul) - 1};
    const char *two[] = {"dev.productA.dev", "dev.productC.dev"};
    const size_t two_len[] = {16, 16};
    const char *prefix[] = {"dev.productA.de"};
    const size_t prefix_len[] = {15};
    const char *longer[] = {long_cn};
    const size_t longer_len[] = {sizeof(long_cn)};
    struct sc_listen_cfg lc = {.dir = SC_INBOUND, .n_cn = 1};

    (void)state;
    assert_true(allowed_cns(one, one_len, 1));
    assert_false(allowed_cns(with_nul, with_nul_len, 1));
    assert_false(allowed_cns(two, two_len, 2));
    assert_false(allowed_cns(prefix, prefix_len, 1));
    /* 264 bytes whose first 255 are the allow entry: never truncated into a match. */
    memset(long_cn, 'a', sizeof(long_cn));
    memset(lc.allow_cn[0], 'a', sizeof(lc.allow_cn[0]) - 1);
    {
        X509 *x = cert_with_cns(longer, longer_len, 1);

        assert_false(sc_tls_leaf_allowed(&lc, x));
        X509_free(x);
    }
}

/* A bare certificate whose SAN extension holds these URIs (raw bytes, lengths given). */
static X509 *cert_with_uris(const char *const *uris, const size_t *lens, size_t n)
{
    X509 *x = X509_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();

    assert_non_null(x);
    assert_non_null(gens);
    for (size_t i = 0; i < n; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *u = ASN1_IA5STRING_new();

        assert_non_null(g);
        assert_non_null(u);
        assert_int_equal(ASN1_STRING_set(u, uris[i], (int)lens[i]), 1);
        GENERAL_NAME_set0_value(g, GEN_URI, u);
        assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
    }
    assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT), 1);
    GENERAL_NAMES_free(gens);
    return x;
}

/*
 * An allow entry matches a whole URI only: not one cut at an embedded NUL,
 * not the first 255 bytes of a longer one. The audit log shows the first
 * whole URI, never a cut one that the certificate does not carry.
 */
static void leaf_allowed__uri_sans_whole_only(void **state)
{
    static const char want[] = "spiffe://example.org/dev/productA";
    static const char nul[] = "spiffe://example.org/dev/productA\0/productC";
    char longer[300], seen[256];
    const char *forged[] = {nul, longer};
    const size_t forged_len[] = {sizeof(nul) - 1, sizeof(longer)};
    const char *both[] = {nul, longer, want};
    const size_t both_len[] = {sizeof(nul) - 1, sizeof(longer), sizeof(want) - 1};
    struct sc_listen_cfg lc = {.dir = SC_INBOUND, .n_san = 2};
    X509 *x;

    (void)state;
    snprintf(lc.allow_san[0], sizeof(lc.allow_san[0]), "%s", want);
    memset(longer, 'a', sizeof(longer));
    memset(lc.allow_san[1], 'a', sizeof(lc.allow_san[1]) - 1);

    x = cert_with_uris(forged, forged_len, 2);
    assert_false(sc_tls_leaf_allowed(&lc, x));
    sc_tls_first_uri(x, seen, sizeof(seen));
    assert_string_equal(seen, "-");
    X509_free(x);

    x = cert_with_uris(both, both_len, 3);
    assert_true(sc_tls_leaf_allowed(&lc, x));
    sc_tls_first_uri(x, seen, sizeof(seen));
    assert_string_equal(seen, want);
    X509_free(x);
}

/* Every TLS 1.2 suite either context offers or accepts is ECDHE with an AEAD. */
static void set_build__tls12_suites_are_ecdhe_aead_only(void **state)
{
    struct sc_tls_set *s = make_set(&ca, DUET_PROFILE_SERVER, "server", 1);

    (void)state;
    for (int server = 0; server < 2; server++) {
        STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(sc_tls_set_ctx(s, server));

        assert_true(sk_SSL_CIPHER_num(sk) > 0);
        for (size_t i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);

            if (SSL_CIPHER_get_min_version(c) > TLS1_2_VERSION)
                continue;
            if (!SSL_CIPHER_is_aead(c) || SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe)
                fail_msg("suite %s is allowed", SSL_CIPHER_get_name(c));
        }
    }
    sc_tls_set_unref(s);
}

static void handshake__allow_list_refuses_another_cn(void **state)
{
    struct rig r;
    struct sc_xprt_hs chs = {0}, shs = {0};
    int crc, src;

    (void)state;
    rig_std(&r);
    r.lc_in.n_cn = 1;
    snprintf(r.lc_in.allow_cn[0], sizeof(r.lc_in.allow_cn[0]), "someone-else");
    rig_open(&r);
    drive(&r, &crc, &src, &chs, &shs);
    assert_true(src < 0);
    assert_int_equal(shs.fail, SC_FAIL_NOT_ALLOWED);
    assert_string_equal(shs.why, "certificate not in the allow list");
    assert_non_null(strstr(shs.subject, "CN=client"));
    rig_done(&r);
}

static void handshake__peer_gone_midway_is_a_protocol_failure(void **state)
{
    struct rig r;
    struct sc_xprt_hs chs = {0}, shs = {0};
    int rc = DUET_EAGAIN;

    (void)state;
    rig_std(&r);
    rig_open(&r);
    assert_int_equal(r.cli.ops->handshake(&r.cli, &chs), DUET_EAGAIN);
    r.cli.ops->close(&r.cli, false);
    close(r.fd[0]);
    r.fd[0] = -1;
    /* The ClientHello is there to read; the answer finds nobody. */
    for (int i = 0; i < 5 && rc == DUET_EAGAIN; i++)
        rc = r.srv.ops->handshake(&r.srv, &shs);
    assert_true(rc < 0);
    assert_int_equal(shs.fail, SC_FAIL_PROTOCOL);
    assert_string_equal(shs.subject, "-");
    rig_done(&r);
}

/* One full connection on the listener slot; returns whether it resumed. */
static bool connect_once(struct sc_tls_set *cset, struct sc_tls_set *sset,
                         struct sc_tls_session *slot)
{
    struct rig r;
    struct sc_xprt_hs chs = {0}, shs = {0};
    char buf[8];

    rig_init(&r, cset, sset);
    r.lc_out.resume = true;
    r.slot = *slot;
    rig_open(&r);
    handshake_ok(&r, &chs, &shs);
    /* TLS 1.3 tickets come after the handshake: a round trip delivers them. */
    assert_int_equal(r.srv.ops->send(&r.srv, "x", 1), 1);
    assert_int_equal(recv_all(&r.cli, buf, 1), 1);
    *slot = r.slot;
    rig_close(&r);
    return chs.resumed;
}

static void open__resumes_only_within_one_generation(void **state)
{
    struct sc_tls_set *c1 = make_set(&ca, DUET_PROFILE_CLIENT, "client", 1);
    struct sc_tls_set *c2 = make_set(&ca, DUET_PROFILE_CLIENT, "client", 2);
    struct sc_tls_set *s1 = make_set(&ca, DUET_PROFILE_SERVER, "server", 1);
    struct sc_tls_session slot = {0};

    (void)state;
    assert_false(connect_once(c1, s1, &slot));
    assert_non_null(slot.session);
    assert_int_equal(slot.gen, 1);
    assert_true(connect_once(c1, s1, &slot));
    /* A reload: the next set must not resume a session of the last one. */
    assert_false(connect_once(c2, s1, &slot));
    assert_int_equal(slot.gen, 2);
    sc_tls_session_drop(&slot);
    assert_null(slot.session);
    sc_tls_set_unref(c1);
    sc_tls_set_unref(c2);
    sc_tls_set_unref(s1);
}

/* A client certificate good for 100 s: its session says so, and once the
 * certificate has expired a resumption is refused before any byte moves. */
/*
 * A full handshake and a resumption on c and s, then one more resumption
 * 200 s later on the fake clock: its results in crc, src, chs, shs. The
 * slot it leaves is returned (drop it).
 */
static struct sc_tls_session resume_200s_later(struct sc_tls_set *c, struct sc_tls_set *s, int *crc,
                                               int *src, struct sc_xprt_hs *chs,
                                               struct sc_xprt_hs *shs)
{
    struct sc_tls_session slot = {0};
    struct rig r;

    assert_false(connect_once(c, s, &slot));
    assert_non_null(slot.session);
    /* The ticket's lifetime is the certificate's, not BoringSSL's 2 days. */
    assert_true(SSL_SESSION_get_timeout(slot.session) <= 100);
    assert_true(connect_once(c, s, &slot));
    duet_clock_fake(duet_clock_real_ms() + 200 * 1000);
    rig_init(&r, c, s);
    r.lc_out.resume = true;
    r.slot = slot;
    rig_open(&r);
    drive(&r, crc, src, chs, shs);
    duet_clock_unfake();
    slot = r.slot;
    rig_close(&r);
    return slot;
}

static void resume__refused_once_the_peer_has_expired(void **state)
{
    struct sc_tls_set *c1 = make_set_for(&ca, DUET_PROFILE_CLIENT, "client", 1, 100);
    struct sc_tls_set *s1 = make_set(&ca, DUET_PROFILE_SERVER, "server", 1);
    struct sc_xprt_hs chs = {0}, shs = {0};
    struct sc_tls_session slot;
    int crc, src;

    (void)state;
    slot = resume_200s_later(c1, s1, &crc, &src, &chs, &shs);
    assert_true(src < 0);
    assert_int_equal(shs.fail, SC_FAIL_EXPIRED);
    assert_non_null(strstr(shs.why, "resumed session"));
    assert_non_null(strstr(shs.subject, "CN=client"));
    sc_tls_session_drop(&slot);
    sc_tls_set_unref(c1);
    sc_tls_set_unref(s1);
}

/* The same from the client's side: an upstream whose certificate expired
 * since the session was made is refused on resumption (its leaf heads the
 * chain a client sees), and the session is dropped. */
static void resume__refused_once_the_upstream_has_expired(void **state)
{
    struct sc_tls_set *c1 = make_set(&ca, DUET_PROFILE_CLIENT, "client", 1);
    struct sc_tls_set *s1 = make_set_for(&ca, DUET_PROFILE_SERVER, "server", 1, 100);
    struct sc_xprt_hs chs = {0}, shs = {0};
    struct sc_tls_session slot;
    int crc, src;

    (void)state;
    slot = resume_200s_later(c1, s1, &crc, &src, &chs, &shs);
    assert_true(crc < 0);
    assert_int_equal(chs.fail, SC_FAIL_EXPIRED);
    assert_non_null(strstr(chs.why, "resumed session"));
    assert_non_null(strstr(chs.subject, "CN=server"));
    assert_null(slot.session); /* the next connection handshakes in full */
    sc_tls_session_drop(&slot);
    sc_tls_set_unref(c1);
    sc_tls_set_unref(s1);
}

static int setup(void **state)
{
    (void)state;
    tl_ca_new(&ca, "duet test CA");
    tl_ca_new(&other_ca, "another CA");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_ca_free(&ca);
    tl_ca_free(&other_ca);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake__first_step_waits_for_read_then_bytes_flow),
        cmocka_unit_test(send__full_socket_wants_write_and_retry_delivers_the_same_bytes),
        cmocka_unit_test(shutdown__half_close_keeps_the_other_direction),
        cmocka_unit_test(recv__end_behind_bytes_stays_pending_until_reported),
        cmocka_unit_test(handshake__untrusted_server_is_refused_with_its_subject),
        cmocka_unit_test(handshake__allow_list_refuses_another_cn),
        cmocka_unit_test(leaf_allowed__exact_cn_only),
        cmocka_unit_test(leaf_allowed__uri_sans_whole_only),
        cmocka_unit_test(set_build__tls12_suites_are_ecdhe_aead_only),
        cmocka_unit_test(handshake__peer_gone_midway_is_a_protocol_failure),
        cmocka_unit_test(open__resumes_only_within_one_generation),
        cmocka_unit_test(resume__refused_once_the_peer_has_expired),
        cmocka_unit_test(resume__refused_once_the_upstream_has_expired),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
