/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_floor_relay: the least an outbound mTLS proxy must do, as a yardstick
 * for bench/run (bench/README.md, "Floors"). Not part of duet and shares none
 * of its code, so that it measures the job, not duet's way of doing it.
 *
 *   bench_floor_relay LISTEN_PORT UPSTREAM_PORT CERT_DIR SNI RESUME(0|1)
 *
 * Accepts plaintext on 127.0.0.1:LISTEN_PORT; for each connection connects
 * to 127.0.0.1:UPSTREAM_PORT, runs a TLS 1.3 client handshake presenting
 * CERT_DIR/tls.crt + tls.key, verifies the upstream chain against
 * CERT_DIR/ca.crt and its name against SNI (also sent as SNI), resumes the
 * last session the upstream gave when RESUME is 1, then copies bytes both
 * ways with at most one buffer per direction, held only while bytes are in
 * flight. Half-closes are forwarded (FIN as close_notify and back).
 *
 * What it does to be cheap, and a real proxy could do too: one epoll loop,
 * level-triggered, interest changed only when it differs; reads of the TLS
 * side through a read-ahead BIO (one read(2) per wake-up instead of one per
 * record header and one per body), every whole record decrypted into one
 * plaintext write; no read that would only say EAGAIN after a short one;
 * the ClientHello is written right after connect(2) (loopback connects
 * before connect returns; if not, the write says EAGAIN and we wait).
 *
 * What it leaves out, which every real proxy has: timeouts and deadlines,
 * configuration, logging, metrics, certificate reload, name resolution,
 * connection limits, graceful shutdown, error reporting (a failure simply
 * closes both sockets), the server (inbound) role. Single-threaded; exits
 * on SIGTERM by the default action.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF_SIZE 65536
#define MAX_EVENTS 64

struct buf {
    struct buf *next; /* free list link */
    char data[BUF_SIZE];
};

/* One direction: bytes read from the source and not yet written. */
struct pipe {
    struct buf *b; /* NULL when nothing is in flight */
    uint32_t off, len;
    bool drained; /* the last read was short: the source is probably empty */
    bool eof;     /* the source is finished */
    bool shut;    /* the end of stream was passed on to the destination */
};

struct conn {
    int dfd, ufd;       /* down: plaintext client; up: TLS upstream */
    SSL *ssl;           /* on ufd */
    bool open;          /* handshake done */
    bool dead;          /* closed; freed after this batch of events */
    bool rd_want_wr;    /* an SSL_read needs ufd writable */
    bool wr_want_rd;    /* an SSL_write needs ufd readable */
    bool dreg, ureg;    /* in the epoll set */
    uint32_t dev, uev;  /* epoll interest registered */
    struct pipe du, ud; /* down to up, up to down */
    struct buf *ra;     /* read-ahead of ufd, held only while not empty */
    uint32_t ra_off, ra_len;
    struct conn *next_dead;
};

static int epfd;
static SSL_CTX *ctx;
static const char *sni;
static bool resume;
static SSL_SESSION *session; /* the last one the upstream issued */
static struct buf *free_bufs;
static struct conn *dead_list;
static BIO_METHOD *ra_method;
static struct sockaddr_in up_addr;

static struct buf *buf_get(void)
{
    struct buf *b = free_bufs;

    if (b) {
        free_bufs = b->next;
        return b;
    }
    return malloc(sizeof(*b));
}

/* Buffers go back to a free list rather than to malloc: freeing 64 KiB at
 * the top of the heap would make glibc trim it with brk(2) every time. */
static void buf_put(struct buf *b)
{
    b->next = free_bufs;
    free_bufs = b;
}

/* ---- read-ahead BIO on the upstream socket ---- */

static int ra_read(BIO *bio, char *out, int len)
{
    struct conn *c = BIO_get_data(bio);
    uint32_t take;

    BIO_clear_retry_flags(bio);
    if (len <= 0)
        return 0;
    if (c->ra_len == 0) {
        ssize_t n;

        if (!c->ra && !(c->ra = buf_get()))
            return -1;
        n = read(c->ufd, c->ra->data, BUF_SIZE);
        if (n <= 0) {
            int e = errno;

            buf_put(c->ra);
            c->ra = NULL;
            if (n == 0)
                return 0;
            if (e == EAGAIN)
                BIO_set_retry_read(bio);
            errno = e;
            return -1;
        }
        c->ra_off = 0;
        c->ra_len = (uint32_t)n;
    }
    take = (uint32_t)len < c->ra_len ? (uint32_t)len : c->ra_len;
    memcpy(out, c->ra->data + c->ra_off, take);
    c->ra_off += take;
    c->ra_len -= take;
    if (c->ra_len == 0) {
        buf_put(c->ra);
        c->ra = NULL;
    }
    return (int)take;
}

static int ra_write(BIO *bio, const char *in, int len)
{
    struct conn *c = BIO_get_data(bio);
    ssize_t n = send(c->ufd, in, (size_t)len, MSG_NOSIGNAL);

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

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    /* close(2) also drops the fds from the epoll set. */
    close(c->dfd);
    if (c->ufd != -1)
        close(c->ufd);
    SSL_free(c->ssl);
    if (c->ra)
        buf_put(c->ra);
    if (c->du.b)
        buf_put(c->du.b);
    if (c->ud.b)
        buf_put(c->ud.b);
    c->next_dead = dead_list;
    dead_list = c;
}

static int set_interest(struct conn *c, bool up, uint32_t want)
{
    uint32_t *cur = up ? &c->uev : &c->dev;
    bool *reg = up ? &c->ureg : &c->dreg;
    struct epoll_event ev = {.events = want, .data.u64 = (uintptr_t)c | (up ? 1u : 0u)};

    if (*reg ? *cur == want : want == 0)
        return 0;
    if (epoll_ctl(epfd, *reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, up ? c->ufd : c->dfd, &ev) == -1)
        return -1;
    *reg = true;
    *cur = want;
    return 0;
}

static int update_interest(struct conn *c)
{
    uint32_t d = 0, u = 0;

    if (!c->du.eof && !c->du.b)
        d |= EPOLLIN;
    if (c->ud.b)
        d |= EPOLLOUT;
    if ((!c->ud.eof && !c->ud.b) || (c->du.b && c->wr_want_rd))
        u |= EPOLLIN;
    if ((c->du.b && !c->wr_want_rd) || c->rd_want_wr)
        u |= EPOLLOUT;
    if (set_interest(c, false, d) == -1 || set_interest(c, true, u) == -1)
        return -1;
    return 0;
}

static bool tls_pending(const struct conn *c)
{
    return c->ra_len > 0 || SSL_pending(c->ssl) > 0;
}

/* Plaintext from the client into SSL_write. 0: waiting; -1: close. */
static int pump_du(struct conn *c)
{
    struct pipe *p = &c->du;

    for (;;) {
        if (p->b) {
            int n;

            ERR_clear_error();
            n = SSL_write(c->ssl, p->b->data + p->off, (int)(p->len - p->off));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);

                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    c->wr_want_rd = e == SSL_ERROR_WANT_READ;
                    return 0; /* retried later with the same bytes */
                }
                return -1;
            }
            c->wr_want_rd = false;
            buf_put(p->b);
            p->b = NULL;
            if (p->drained)
                return 0;
            continue;
        }
        if (p->eof) {
            if (!p->shut) {
                ERR_clear_error();
                if (SSL_shutdown(c->ssl) < 0 && SSL_get_error(c->ssl, -1) == SSL_ERROR_WANT_WRITE) {
                    c->rd_want_wr = true;
                    return 0;
                }
                p->shut = true;
            }
            return 0;
        }
        if (!(p->b = buf_get()))
            return -1;
        ssize_t n = read(c->dfd, p->b->data, BUF_SIZE);

        if (n > 0) {
            p->off = 0;
            p->len = (uint32_t)n;
            p->drained = n < BUF_SIZE;
            continue;
        }
        buf_put(p->b);
        p->b = NULL;
        if (n == -1)
            return errno == EAGAIN ? 0 : -1;
        p->eof = true;
    }
}

/* Every whole record already read, decrypted into one buffer. */
static int tls_read(struct conn *c, char *out, int len)
{
    int got, r;

    ERR_clear_error();
    r = SSL_read(c->ssl, out, len);
    if (r <= 0) {
        int e = SSL_get_error(c->ssl, r);

        c->rd_want_wr = e == SSL_ERROR_WANT_WRITE;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return -EAGAIN;
        if (e == SSL_ERROR_ZERO_RETURN ||
            (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && (errno == 0 || errno == EAGAIN)))
            return 0; /* close_notify, or a FIN without one */
        return -EIO;
    }
    c->rd_want_wr = false;
    got = r;
    while (got < len && tls_pending(c)) {
        r = SSL_read(c->ssl, out + got, len - got);
        if (r <= 0) {
            c->rd_want_wr = SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE;
            ERR_clear_error(); /* an EOF or error comes back on the next call */
            break;
        }
        got += r;
    }
    return got;
}

/* Decrypted bytes from the upstream to the client. 0: waiting; -1: close. */
static int pump_ud(struct conn *c)
{
    struct pipe *p = &c->ud;

    for (;;) {
        if (p->b) {
            ssize_t n = send(c->dfd, p->b->data + p->off, p->len - p->off, MSG_NOSIGNAL);

            if (n == -1)
                return errno == EAGAIN ? 0 : -1;
            p->off += (uint32_t)n;
            if (p->off < p->len)
                continue;
            buf_put(p->b);
            p->b = NULL;
            if (p->drained && !tls_pending(c))
                return 0;
            continue;
        }
        if (p->eof) {
            if (!p->shut) {
                shutdown(c->dfd, SHUT_WR);
                p->shut = true;
            }
            return 0;
        }
        if (!(p->b = buf_get()))
            return -1;
        errno = 0;
        int n = tls_read(c, p->b->data, BUF_SIZE);

        if (n > 0) {
            p->off = 0;
            p->len = (uint32_t)n;
            p->drained = n < BUF_SIZE;
            continue;
        }
        buf_put(p->b);
        p->b = NULL;
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return -1;
        p->eof = true;
    }
}

/* Moves what the event allows: only the pipes it can move, so that no read
 * is made just to hear EAGAIN (one syscall per request and direction). */
static void pump(struct conn *c, bool du, bool ud)
{
    if ((du && pump_du(c) < 0) || (ud && pump_ud(c) < 0))
        goto fail;
    if (c->du.shut && c->ud.shut) {
        conn_close(c);
        return;
    }
    if (update_interest(c) == 0)
        return;
fail:
    conn_close(c);
}

static void handshake(struct conn *c)
{
    int r, e;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->open = true;
        /* The client's first bytes are likely waiting already, and the
         * read-ahead may hold records epoll will not report. */
        pump(c, true, true);
        return;
    }
    e = SSL_get_error(c->ssl, r);
    if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
        set_interest(c, true, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT) == -1)
        conn_close(c);
}

static int new_session(SSL *ssl, SSL_SESSION *s)
{
    (void)ssl;
    if (!resume)
        return 0;
    if (session)
        SSL_SESSION_free(session);
    session = s;
    return 1; /* we keep BoringSSL's reference */
}

static void on_accept(int lfd)
{
    int one = 1;
    int dfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct conn *c;
    BIO *bio;

    if (dfd == -1)
        return;
    c = calloc(1, sizeof(*c));
    if (!c) {
        close(dfd);
        return;
    }
    c->dfd = dfd;
    c->ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->ssl = SSL_new(ctx);
    bio = BIO_new(ra_method);
    if (c->ufd == -1 || !c->ssl || !bio) {
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
    /* Both sides: a proxy must not add Nagle's delay to small records. */
    setsockopt(dfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->ufd, (struct sockaddr *)&up_addr, sizeof(up_addr)) == -1 && errno != EINPROGRESS)
        goto fail;
    handshake(c);
    return;
fail:
    conn_close(c);
}

static void on_event(struct conn *c, bool up, uint32_t ev)
{
    if (c->dead)
        return;
    if (!c->open) {
        if (up)
            handshake(c);
        return;
    }
    if (ev & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (up)
        pump(c, (ev & EPOLLOUT) || ((ev & EPOLLIN) && c->wr_want_rd),
             (ev & (EPOLLIN | EPOLLHUP)) || ((ev & EPOLLOUT) && c->rd_want_wr));
    else
        pump(c, ev & (EPOLLIN | EPOLLHUP), ev & EPOLLOUT);
    /* A hang-up is reported whatever the interest: once that side's input
     * is finished, nothing can go out to it either (it was reset, or both
     * halves are shut), so waiting would only spin. */
    if ((ev & EPOLLHUP) && !c->dead && (up ? c->ud.eof : c->du.eof))
        conn_close(c);
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
    /* TLS 1.3 tickets arrive after the handshake: keep them ourselves. */
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

static int parse_port(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    return *end || v < 1 || v > 65535 ? -1 : (int)v;
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct epoll_event evs[MAX_EVENTS], lev = {.events = EPOLLIN, .data.u64 = 0};
    int lport, uport, lfd, one = 1;

    if (argc != 6 || (lport = parse_port(argv[1])) < 0 || (uport = parse_port(argv[2])) < 0) {
        fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT CERT_DIR SNI RESUME(0|1)\n", argv[0]);
        return 2;
    }
    sni = argv[4];
    resume = strcmp(argv[5], "1") == 0;
    signal(SIGPIPE, SIG_IGN);
    if (load_ctx(argv[3]) < 0) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    up_addr.sin_family = AF_INET;
    up_addr.sin_port = htons((uint16_t)uport);
    up_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)lport);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lfd == -1 || epfd == -1 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(lfd, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(lfd, 4096) == -1 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) == -1) {
        perror("bench_floor_relay: listen");
        return 1;
    }
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);

        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;

            if (tag == 0)
                on_accept(lfd);
            else
                on_event((struct conn *)(uintptr_t)(tag & ~(uint64_t)1), tag & 1, evs[i].events);
        }
        while (dead_list) {
            struct conn *c = dead_list;

            dead_list = c->next_dead;
            free(c);
        }
    }
}
