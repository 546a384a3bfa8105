/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The status server of duet/status_http.h. Each client gets a fixed request
 * buffer and one timer; the reply (head + body) is built once and written
 * with as many non-blocking writes as the socket needs. Closing is deferred
 * to step 5 of the loop so no callback runs on a freed client.
 *
 * Liveness probes must get through whatever else is connected: a client
 * has request_timeout_ms (1 s) to send its request, and when all
 * max_conns slots are taken a new connection evicts the oldest client that
 * is still reading its request, instead of the listener pausing while idle
 * sockets hold every slot (16 of them used to make /healthz fail).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/log.h"
#include "duet/loop.h"
#include "duet/net.h"
#include "duet/status_http.h"

#include "status_http_int.h"

#define REQ_MAX 2048
#define HEAD_MAX 256

struct client {
    struct duet_status_http *srv;
    struct client *next; /* in srv->clients, newest first */
    int fd;
    bool writing;
    bool closing;
    size_t req_len;
    size_t head_len;
    size_t sent; /* bytes of head + body written */
    struct duet_timer timer;
    struct duet_defer close_defer;
    struct duet_status_reply reply;
    char head[HEAD_MAX];
    char req[REQ_MAX];
};

struct duet_status_http {
    struct duet_loop *loop;
    int lfd;
    bool paused;            /* listener quiet because max_conns are open */
    struct duet_timer rest; /* resumes the listener after EMFILE */
    unsigned port;
    unsigned nclients;
    struct duet_status_http_opts opts;
    duet_status_handler *handler;
    void *arg;
    struct client *clients;
};

int duet_status_reply_printf(struct duet_status_reply *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = r->cap - r->len;

        va_start(ap, fmt);
        n = vsnprintf(r->body ? r->body + r->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return r->err = DUET_EINVAL;
        if ((size_t)n < room) {
            r->len += (size_t)n;
            return 0;
        }
        size_t cap = r->cap ? r->cap : 1024;
        char *p;

        while (cap - r->len <= (size_t)n)
            cap *= 2;
        p = duet_realloc(r->body, cap);
        if (!p)
            return r->err = DUET_ENOMEM;
        r->body = p;
        r->cap = cap;
    }
}

static void client_free(struct client *c)
{
    struct duet_status_http *s = c->srv;

    for (struct client **pp = &s->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    s->nclients--;
    duet_timer_stop(s->loop, &c->timer);
    duet_loop_cancel_defer(s->loop, &c->close_defer);
    duet_loop_del_fd(s->loop, c->fd);
    close(c->fd);
    duet_free(c->reply.body);
    duet_free(c);
    if (s->paused && duet_loop_mod_fd(s->loop, s->lfd, DUET_EV_READ) == 0)
        s->paused = false;
}

static void on_close_defer(struct duet_loop *loop, void *arg)
{
    (void)loop;
    client_free(arg);
}

static void client_close(struct client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (duet_loop_mod_fd(c->srv->loop, c->fd, 0) < 0)
        duet_loop_del_fd(c->srv->loop, c->fd); /* quiet it either way */
    duet_loop_defer(c->srv->loop, &c->close_defer);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static void client_write(struct client *c)
{
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        ssize_t w;

        if (c->sent < c->head_len)
            iov[n++] = (struct iovec){c->head + c->sent, c->head_len - c->sent};
        size_t boff = c->sent > c->head_len ? c->sent - c->head_len : 0;
        if (boff < c->reply.len)
            iov[n++] = (struct iovec){c->reply.body + boff, c->reply.len - boff};
        if (n == 0) {
            /* Whole reply written: half-close so the client sees the end
             * even before it reads Content-Length bytes. */
            shutdown(c->fd, SHUT_WR);
            client_close(c);
            return;
        }
        w = writev(c->fd, iov, n);
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1) {
            if (errno != EAGAIN)
                client_close(c);
            return;
        }
        c->sent += (size_t)w;
    }
}

static void respond(struct client *c, int status)
{
    struct duet_status_reply *r = &c->reply;
    int n;

    if (status) {
        r->len = 0;
        r->err = 0;
        r->status = status;
        r->content_type = NULL;
        (void)duet_status_reply_printf(r, "%s\n", reason(status));
    }
    n = snprintf(c->head, sizeof(c->head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 r->status, reason(r->status),
                 r->content_type ? r->content_type : "text/plain; charset=utf-8", r->len);
    c->head_len = (size_t)n < sizeof(c->head) ? (size_t)n : sizeof(c->head) - 1;
    c->writing = true;
    duet_timer_start(c->srv->loop, &c->timer, c->srv->opts.timeout_ms);
    if (duet_loop_mod_fd(c->srv->loop, c->fd, DUET_EV_WRITE) < 0) {
        client_close(c);
        return;
    }
    client_write(c);
}

/* Request line "GET /path HTTP/1.x"; headers are read to their end and ignored. */
static void handle_request(struct client *c)
{
    char *line_end = strchr(c->req, '\n');
    char *sp1, *sp2, *q;

    if (!line_end) {
        respond(c, 400);
        return;
    }
    /* A bare LF ends the line too, as on_client's end-of-head test allows. */
    if (line_end > c->req && line_end[-1] == '\r')
        line_end--;
    *line_end = '\0';
    sp1 = strchr(c->req, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1[1] != '/' || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1') || sp2[9] != '\0') {
        respond(c, 400);
        return;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    if (strcmp(c->req, "GET") != 0) {
        respond(c, 405);
        return;
    }
    q = strchr(sp1 + 1, '?');
    if (q)
        *q = '\0';
    c->reply.status = 200;
    c->srv->handler(sp1 + 1, &c->reply, c->srv->arg);
    respond(c, c->reply.err ? 500 : 0);
}

static void on_client(struct duet_loop *loop, int fd, uint32_t ev, void *arg)
{
    struct client *c = arg;

    (void)loop;
    if (c->writing) {
        client_write(c);
        return;
    }
    if (ev & DUET_EV_ERR) {
        client_close(c);
        return;
    }
    for (;;) {
        ssize_t n = read(fd, c->req + c->req_len, REQ_MAX - 1 - c->req_len);

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return;
        if (n <= 0) {
            client_close(c);
            return;
        }
        c->req_len += (size_t)n;
        c->req[c->req_len] = '\0';
        /* Bare LF line ends are tolerated (curl never sends them, netcat may). */
        if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
            handle_request(c);
            return;
        }
        if (c->req_len == REQ_MAX - 1) {
            respond(c, 431);
            return;
        }
    }
}

static void on_client_timeout(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    client_close(arg);
}

/* The oldest client still reading its request (not one being answered),
 * or NULL. */
static struct client *oldest_reading(const struct duet_status_http *s)
{
    struct client *oldest = NULL;

    for (struct client *c = s->clients; c; c = c->next) {
        if (!c->writing && !c->closing)
            oldest = c;
    }
    return oldest;
}

int duet__status_http_adopt(struct duet_status_http *s, int fd)
{
    struct client *c;
    int rc;

    if (s->nclients >= s->opts.max_conns) {
        struct client *victim = oldest_reading(s);

        if (!victim) {
            close(fd);
            return DUET_EAGAIN;
        }
        /* Full: the newcomer takes the oldest reader's slot. Freeing it
         * here is safe: no callback of that client is running. */
        client_free(victim);
    }
    c = duet_calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return DUET_ENOMEM;
    }
    rc = duet_loop_add_fd(s->loop, fd, DUET_EV_READ, on_client, c);
    if (rc < 0) {
        duet_free(c);
        close(fd);
        return rc;
    }
    c->srv = s;
    c->fd = fd;
    duet_timer_init(&c->timer, on_client_timeout, c);
    duet_defer_init(&c->close_defer, on_close_defer, c);
    duet_timer_start(s->loop, &c->timer, s->opts.request_timeout_ms);
    c->next = s->clients;
    s->clients = c;
    s->nclients++;
    return 0;
}

#define ACCEPT_BATCH 64

static void on_accept(struct duet_loop *loop, int lfd, uint32_t ev, void *arg)
{
    struct duet_status_http *s = arg;

    (void)ev;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd;

        if (s->nclients >= s->opts.max_conns && !oldest_reading(s))
            break;
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1 && (errno == EMFILE || errno == ENFILE)) {
            /* Out of descriptors: the connection stays queued and the
             * listener readable; rest instead of spinning. */
            if (duet_loop_mod_fd(loop, lfd, 0) == 0) {
                s->paused = true;
                duet_timer_start(loop, &s->rest, 250);
            }
            return;
        }
        if (fd == -1)
            return; /* EAGAIN, or a transient error (ECONNABORTED) */
        if (duet__status_http_adopt(s, fd) < 0)
            return;
    }
    /* Every slot is being answered (or a batch is done and more wait):
     * rest until a client leaves; the backlog holds the rest. */
    if (s->nclients >= s->opts.max_conns && duet_loop_mod_fd(loop, lfd, 0) == 0)
        s->paused = true;
}

static void on_rest(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct duet_status_http *s = arg;

    (void)t;
    if (s->paused && s->nclients < s->opts.max_conns &&
        duet_loop_mod_fd(loop, s->lfd, DUET_EV_READ) == 0)
        s->paused = false;
}

int duet_status_http_new(struct duet_loop *loop, const char *listen,
                         const struct duet_status_http_opts *opts, duet_status_handler *h,
                         void *arg, struct duet_status_http **out, struct duet_errbuf *eb)
{
    struct duet_status_http *s = duet_calloc(1, sizeof(*s));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int rc;

    if (!s)
        return DUET_ENOMEM;
    s->loop = loop;
    duet_timer_init(&s->rest, on_rest, s);
    s->handler = h;
    s->arg = arg;
    if (opts)
        s->opts = *opts;
    if (s->opts.timeout_ms <= 0)
        s->opts.timeout_ms = 5000;
    if (s->opts.request_timeout_ms <= 0)
        s->opts.request_timeout_ms = 1000;
    if (s->opts.request_timeout_ms > s->opts.timeout_ms)
        s->opts.request_timeout_ms = s->opts.timeout_ms;
    if (s->opts.max_conns == 0)
        s->opts.max_conns = 256;
    s->lfd = duet_net_listen(listen, false, 256, eb);
    if (s->lfd < 0) {
        rc = s->lfd;
        duet_free(s);
        return rc;
    }
    if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    rc = duet_loop_add_fd(loop, s->lfd, DUET_EV_READ, on_accept, s);
    if (rc < 0) {
        close(s->lfd);
        duet_free(s);
        return duet_errf(eb, rc, "status listener '%s': %s", listen, duet_strerror(rc));
    }
    *out = s;
    return 0;
}

void duet_status_http_free(struct duet_status_http *s)
{
    if (!s)
        return;
    while (s->clients)
        client_free(s->clients);
    duet_timer_stop(s->loop, &s->rest);
    duet_loop_del_fd(s->loop, s->lfd);
    close(s->lfd);
    duet_free(s);
}

unsigned duet_status_http_port(const struct duet_status_http *s)
{
    return s->port;
}
