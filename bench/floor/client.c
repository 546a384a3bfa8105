/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_floor_client: the least work of one new upstream TLS connection, as
 * a yardstick for a proxy's CPU per new connection in bench/run
 * (bench/README.md, "Floors"). Shares no code with duet.
 *
 *   bench_floor_client UPSTREAM_PORT CERT_DIR SNI RESUME(0|1) SECONDS
 *
 * Opens upstream connections for SECONDS (at most 1,000,000), 16 in flight
 * at once as wrk -c16 gives the proxies, each: connect to
 * 127.0.0.1:UPSTREAM_PORT, TLS 1.3 client handshake presenting
 * CERT_DIR/tls.crt + tls.key, upstream chain verified against CERT_DIR/ca.crt
 * and its name against SNI, the last session resumed when RESUME is 1; then
 * the same request the proxies carry in that scenario (GET /small with
 * Connection: close), the response read until the upstream closes, and
 * close(2). The request is what makes it comparable: the upstream's session
 * tickets and response arrive exactly as they do for a proxy, and are
 * decrypted. Non-blocking sockets and epoll, like a proxy: one connection at a
 * time with blocking calls costs more CPU per connection here (a sleep and a
 * wake-up for every round trip, with cold caches after each).
 *
 * It leaves out the whole client side of a proxy: no listening socket, no
 * accept, no plaintext read or write or shutdown, no close_notify of its
 * own (it closes once the upstream has), no buffer beyond the read-ahead.
 * Prints, on stdout, one line:
 *
 *   connections N resumed R errors E cpu_us U
 *
 * U is utime+stime (getrusage) from after the first, warm-up connection to
 * the end of the last one: the same kernel accounting bench/run reads from
 * /proc/PID/stat for the proxies, at microsecond rather than tick resolution.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF_SIZE 16384
#define CONCURRENCY 16 /* as many connections in flight as wrk -c16 gives a proxy */
#define MAX_CONNS 1000000

struct conn {
    int fd;
    SSL *ssl;
    bool hs_done, req_sent;
    uint32_t ev; /* epoll interest */
    uint32_t ra_off, ra_len;
    char ra[BUF_SIZE]; /* read-ahead: a record header and body in one read(2) */
};

static SSL_CTX *ctx;
static const char *sni;
static bool resume;
static SSL_SESSION *session;
static BIO_METHOD *ra_method;
static struct sockaddr_in up_addr;
static int epfd;
static long n_ok, n_resumed, n_err;
static const char request[] = "GET /small HTTP/1.1\r\nHost: upstream.test\r\n"
                              "Connection: close\r\n\r\n";

static int ra_read(BIO *bio, char *out, int len)
{
    struct conn *c = BIO_get_data(bio);
    uint32_t take;

    BIO_clear_retry_flags(bio);
    if (len <= 0)
        return 0;
    if (c->ra_len == 0) {
        ssize_t n = read(c->fd, c->ra, sizeof(c->ra));

        if (n <= 0) {
            if (n == -1 && errno == EAGAIN)
                BIO_set_retry_read(bio);
            return (int)n;
        }
        c->ra_off = 0;
        c->ra_len = (uint32_t)n;
    }
    take = (uint32_t)len < c->ra_len ? (uint32_t)len : c->ra_len;
    memcpy(out, c->ra + c->ra_off, take);
    c->ra_off += take;
    c->ra_len -= take;
    return (int)take;
}

static int ra_write(BIO *bio, const char *in, int len)
{
    struct conn *c = BIO_get_data(bio);
    ssize_t n = send(c->fd, in, (size_t)len, MSG_NOSIGNAL);

    BIO_clear_retry_flags(bio);
    if (n == -1 && errno == EAGAIN)
        BIO_set_retry_write(bio);
    return (int)n;
}

static long ra_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)bio;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int new_session(SSL *ssl, SSL_SESSION *s)
{
    (void)ssl;
    if (!resume)
        return 0;
    if (session)
        SSL_SESSION_free(session);
    session = s;
    return 1;
}

static void finish(struct conn *c, bool ok)
{
    if (ok) {
        n_ok++;
        n_resumed += SSL_session_reused(c->ssl) == 1;
    } else {
        n_err++;
    }
    ERR_clear_error();
    SSL_free(c->ssl); /* frees the BIO */
    c->ssl = NULL;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
}

/* Opens a new connection in c; false if that failed at once. */
static bool start(struct conn *c)
{
    int one_ = 1;
    BIO *bio;

    memset(c, 0, offsetof(struct conn, ra));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1)
        return false;
    c->ssl = SSL_new(ctx);
    bio = BIO_new(ra_method);
    if (!c->ssl || !bio) {
        BIO_free(bio);
        goto fail;
    }
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_connect_state(c->ssl);
    if (!SSL_set1_host(c->ssl, sni) || !SSL_set_tlsext_host_name(c->ssl, sni))
        goto fail;
    if (resume && session)
        SSL_set_session(c->ssl, session);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof(one_));
    if (connect(c->fd, (struct sockaddr *)&up_addr, sizeof(up_addr)) == -1 && errno != EINPROGRESS)
        goto fail;
    return true;
fail:
    finish(c, false);
    return false;
}

/* Advances c as far as it goes without blocking: handshake, request,
 * response until the upstream closes. Returns true when c is finished. */
static bool step(struct conn *c)
{
    char buf[BUF_SIZE];
    uint32_t want;
    int r, e;

    ERR_clear_error();
    if (!c->hs_done) {
        r = SSL_do_handshake(c->ssl);
        if (r != 1)
            goto blocked;
        c->hs_done = true;
    }
    if (!c->req_sent) {
        r = SSL_write(c->ssl, request, (int)sizeof(request) - 1);
        if (r <= 0)
            goto blocked;
        c->req_sent = true;
    }
    while ((r = SSL_read(c->ssl, buf, sizeof(buf))) > 0)
        ;
blocked:
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        struct epoll_event ev;

        want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
        ev.events = want;
        ev.data.ptr = c;
        if (c->ev != want &&
            epoll_ctl(epfd, c->ev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == -1) {
            finish(c, false);
            return true;
        }
        c->ev = want;
        return false;
    }
    /* The end: close_notify, or a FIN without one, after the response. */
    finish(c, c->req_sent && (e == SSL_ERROR_ZERO_RETURN ||
                              (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)));
    return true;
}

/* Starts connections in c until one is in flight, or the budget is spent. */
static void refill(struct conn *c, bool *more)
{
    while (*more) {
        if (n_ok + n_err >= MAX_CONNS) {
            *more = false;
            return;
        }
        if (start(c) && !step(c))
            return;
    }
}

static int load_ctx(const char *dir)
{
    char path[4096];

    ctx = SSL_CTX_new(TLS_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
        return -1;
    snprintf(path, sizeof(path), "%s/tls.crt", dir);
    if (!SSL_CTX_use_certificate_chain_file(ctx, path))
        return -1;
    snprintf(path, sizeof(path), "%s/tls.key", dir);
    if (!SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM))
        return -1;
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    if (!SSL_CTX_load_verify_locations(ctx, path, NULL))
        return -1;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    ra_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "floor read-ahead");
    if (!ra_method)
        return -1;
    BIO_meth_set_read(ra_method, ra_read);
    BIO_meth_set_write(ra_method, ra_write);
    BIO_meth_set_ctrl(ra_method, ra_ctrl);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    static struct conn conns[CONCURRENCY];
    struct epoll_event evs[CONCURRENCY];
    long port, in_flight = 0;
    double secs, end;
    long long c0;
    char *e1, *e2;
    bool more = true;

    if (argc != 6) {
        fprintf(stderr, "usage: %s UPSTREAM_PORT CERT_DIR SNI RESUME(0|1) SECONDS\n", argv[0]);
        return 2;
    }
    port = strtol(argv[1], &e1, 10);
    secs = strtod(argv[5], &e2);
    if (*e1 || *e2 || port < 1 || port > 65535 || !(secs > 0 && secs <= 600)) {
        fprintf(stderr, "%s: bad port or seconds\n", argv[0]);
        return 2;
    }
    sni = argv[3];
    resume = strcmp(argv[4], "1") == 0;
    signal(SIGPIPE, SIG_IGN);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd == -1 || load_ctx(argv[2]) < 0) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    up_addr.sin_family = AF_INET;
    up_addr.sin_port = htons((uint16_t)port);
    up_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* Warm-up, not counted: lazy library setup and the first session. */
    if (start(&conns[0]))
        while (!step(&conns[0]) && epoll_wait(epfd, evs, 1, 5000) == 1)
            ;
    if (n_ok != 1) {
        fprintf(stderr, "%s: first connection failed\n", argv[0]);
        return 1;
    }
    if (conns[0].fd != -1)
        finish(&conns[0], false);
    n_ok = n_resumed = n_err = 0;

    c0 = cpu_us();
    end = now_s() + secs;
    for (int i = 0; i < CONCURRENCY; i++) {
        refill(&conns[i], &more);
        in_flight += conns[i].fd != -1;
    }
    while (in_flight > 0) {
        int n = epoll_wait(epfd, evs, CONCURRENCY, 5000);

        if (n <= 0)
            break; /* the upstream stopped answering: report what we have */
        if (more && now_s() >= end)
            more = false;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;

            if (!step(c))
                continue;
            refill(c, &more);
            in_flight -= c->fd == -1;
        }
    }
    printf("connections %ld resumed %ld errors %ld cpu_us %lld\n", n_ok, n_resumed, n_err,
           cpu_us() - c0);
    return n_ok > 0 ? 0 : 1;
}
