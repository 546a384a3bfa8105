/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The unary gRPC server of grpc_server.h. nghttp2 owns the HTTP/2 state of
 * each connection and writes through send_cb straight to the non-blocking
 * socket (it keeps what the socket did not take and offers it again on the
 * next nghttp2_session_send). A call is collected in its stream (the :path,
 * the request body up to AG_GRPC_MAX_MSG + 5), dispatched when the client
 * ends its half of the stream, and answered: HEADERS, one DATA frame
 * holding the length-prefixed message, trailers with grpc-status; or, for
 * an error, a single HEADERS frame carrying the status ("Trailers-Only").
 * A held call (ag_grpc_call_hold) is answered later: the handle and its
 * stream point at each other until one goes (answered, or the stream
 * closed by the client or with its connection), so a late answer to a
 * stream that is gone is dropped; the flush of a late answer is deferred
 * to step 5 of the iteration, since nghttp2 may be inside a callback.
 *
 * Why not grpc's C core: Debian's libgrpc pulls in OpenSSL beside BoringSSL
 * (see the note in agent/CMakeLists.txt); nghttp2 is small, has no TLS and
 * fits the agent's epoll loop without a thread.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "grpc_server.h"

#include "duet/alloc.h"
#include "duet/log.h"

#define GRPC_PREFIX 5
#define READ_CHUNK 16384
#define ACCEPT_REST_MS 1000

struct stream {
    struct stream *next; /* in conn->streams */
    struct conn *c;
    struct ag_grpc_call *held; /* the handle of a held call, until answered */
    int32_t id;
    bool grpc; /* content-type application/grpc[+proto] */
    bool too_big;
    char path[128];
    uint8_t *req;
    size_t req_len, req_cap;
    uint8_t *resp; /* prefix + message */
    size_t resp_len, resp_off;
};

struct conn {
    struct ag_grpc_server *srv;
    struct conn *next; /* in srv->conns */
    int fd;
    uint32_t interest;
    bool closing;
    nghttp2_session *h2;
    struct stream *streams;
    struct duet_defer close_defer;
    struct duet_defer flush_defer; /* late answers go out in step 5 */
};

struct ag_grpc_call {
    struct stream *st; /* NULL once the stream is gone */
};

struct ag_grpc_server {
    struct duet_loop *loop;
    int lfd;
    char *path;
    const struct ag_grpc_method *methods;
    size_t n_methods;
    void *arg;
    unsigned nconns;
    struct conn *conns;
    struct duet_timer rest; /* listener resumes after EMFILE */
};

static const char *const code_names[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
};

const char *ag_grpc_code_name(int code)
{
    if (code < 0 || (size_t)code >= DUET_ARRAY_SIZE(code_names))
        return "UNKNOWN";
    return code_names[code];
}

int ag_grpc_fail(struct ag_grpc_reply *r, int code, const char *fmt, ...)
{
    va_list ap;

    r->code = code;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    return code;
}

/* ---- nghttp2 allocation through duet_malloc (fault injection covers it) ----- */

static void *mem_malloc(size_t n, void *ud)
{
    return duet_malloc(n);
}
static void mem_free(void *p, void *ud)
{
    duet_free(p);
}
static void *mem_calloc(size_t nmemb, size_t size, void *ud)
{
    return duet_calloc(nmemb, size);
}
static void *mem_realloc(void *p, size_t n, void *ud)
{
    return duet_realloc(p, n);
}

static nghttp2_mem h2_mem = {NULL, mem_malloc, mem_free, mem_calloc, mem_realloc};

/* ---- connection life ----------------------------------------------------------- */

static void stream_free(struct stream *st)
{
    if (st->held)
        st->held->st = NULL; /* the holder's answer will be dropped */
    duet_free(st->req);
    duet_free(st->resp);
    duet_free(st);
}

static void conn_destroy(struct conn *c)
{
    struct ag_grpc_server *s = c->srv;

    for (struct conn **pp = &s->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    s->nconns--;
    duet_loop_cancel_defer(s->loop, &c->close_defer);
    duet_loop_cancel_defer(s->loop, &c->flush_defer);
    duet_loop_del_fd(s->loop, c->fd);
    close(c->fd);
    nghttp2_session_del(c->h2);
    while (c->streams) {
        struct stream *st = c->streams;
        c->streams = st->next;
        stream_free(st);
    }
    duet_free(c);
}

static void on_close_defer(struct duet_loop *loop, void *arg)
{
    conn_destroy(arg);
}

static void conn_update(struct conn *c);

static void on_flush_defer(struct duet_loop *loop, void *arg)
{
    struct conn *c = arg;

    if (!c->closing)
        conn_update(c);
}

/* Mark for closing; freed in step 5 of this iteration, no callback runs after. */
static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    duet_loop_defer(c->srv->loop, &c->close_defer);
}

static void stream_unlink(struct conn *c, struct stream *st)
{
    for (struct stream **pp = &c->streams; *pp; pp = &(*pp)->next) {
        if (*pp == st) {
            *pp = st->next;
            return;
        }
    }
}

/* ---- nghttp2 callbacks ------------------------------------------------------------ */

static ssize_t send_cb(nghttp2_session *h2, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct conn *c = ud;
    ssize_t n;

    do
        n = send(c->fd, data, len, MSG_NOSIGNAL);
    while (n == -1 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return NGHTTP2_ERR_WOULDBLOCK;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    struct stream *st;

    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    st = duet_calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
    st->id = f->hd.stream_id;
    st->c = c;
    st->next = c->streams;
    c->streams = st;
    nghttp2_session_set_stream_user_data(h2, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    struct stream *st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);

    if (!st || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (nlen == 5 && memcmp(name, ":path", 5) == 0) {
        if (vlen >= sizeof(st->path))
            vlen = 0; /* no method has so long a name: it will be UNIMPLEMENTED */
        memcpy(st->path, value, vlen);
        st->path[vlen] = '\0';
    } else if (nlen == 12 && memcmp(name, "content-type", 12) == 0) {
        st->grpc = vlen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                   (vlen == 16 || value[16] == '+' || value[16] == ';');
    }
    return 0;
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    struct stream *st = nghttp2_session_get_stream_user_data(h2, id);

    if (!st || st->too_big)
        return 0;
    if (st->req_len + len > AG_GRPC_MAX_MSG + GRPC_PREFIX) {
        st->too_big = true; /* answered RESOURCE_EXHAUSTED when the client is done */
        return 0;
    }
    if (st->req_len + len > st->req_cap) {
        size_t cap = st->req_cap ? st->req_cap : 1024;
        uint8_t *p;

        while (cap < st->req_len + len)
            cap *= 2;
        p = duet_realloc(st->req, cap);
        if (!p)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->req = p;
        st->req_cap = cap;
    }
    memcpy(st->req + st->req_len, data, len);
    st->req_len += len;
    return 0;
}

static ssize_t read_resp(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *dflags, nghttp2_data_source *src, void *ud)
{
    struct stream *st = src->ptr;
    size_t n = DUET_MIN(len, st->resp_len - st->resp_off);
    static const nghttp2_nv ok[] = {
        {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE},
    };

    memcpy(buf, st->resp + st->resp_off, n);
    st->resp_off += n;
    if (st->resp_off == st->resp_len) {
        *dflags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(h2, id, ok, DUET_ARRAY_SIZE(ok)) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

#define NV(n, v, vl)                                                                               \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE                  \
    }

/* grpc-message is percent-encoded (PROTOCOL-HTTP2.md, "Responses"). */
static size_t pct_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < size; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return n;
}

static int submit_error(nghttp2_session *h2, int32_t id, int code, const char *msg)
{
    char status[16], enc[3 * sizeof(((struct ag_grpc_reply *)0)->msg) + 1];
    size_t sl = (size_t)snprintf(status, sizeof(status), "%d", code);
    size_t ml = pct_encode(msg, enc, sizeof(enc));
    const nghttp2_nv hdrs[] = {
        NV(":status", "200", 3),
        NV("content-type", "application/grpc", 16),
        NV("grpc-status", status, sl),
        NV("grpc-message", enc, ml),
    };

    return nghttp2_submit_response(h2, id, hdrs, DUET_ARRAY_SIZE(hdrs), NULL);
}

static int submit_ok(nghttp2_session *h2, struct stream *st, const struct ag_grpc_reply *rep)
{
    static const nghttp2_nv hdrs[] = {
        NV(":status", "200", 3),
        NV("content-type", "application/grpc", 16),
    };
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_resp};

    st->resp = duet_malloc(rep->len + GRPC_PREFIX);
    if (!st->resp)
        return submit_error(h2, st->id, AG_GRPC_RESOURCE_EXHAUSTED, "agent out of memory");
    st->resp[0] = 0; /* not compressed */
    st->resp[1] = (uint8_t)(rep->len >> 24);
    st->resp[2] = (uint8_t)(rep->len >> 16);
    st->resp[3] = (uint8_t)(rep->len >> 8);
    st->resp[4] = (uint8_t)rep->len;
    if (rep->len)
        memcpy(st->resp + GRPC_PREFIX, rep->body, rep->len);
    st->resp_len = rep->len + GRPC_PREFIX;
    return nghttp2_submit_response(h2, st->id, hdrs, DUET_ARRAY_SIZE(hdrs), &dp);
}

static const struct ag_grpc_method *find_method(const struct ag_grpc_server *s, const char *path)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].path, path) == 0)
            return &s->methods[i];
    return NULL;
}

/* Check the framing of a unary request; 0 or a status code with rep->msg. */
static int check_request(const struct stream *st, struct ag_grpc_reply *rep)
{
    uint32_t mlen;

    if (!st->grpc)
        return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "content-type is not application/grpc");
    if (st->too_big)
        return ag_grpc_fail(rep, AG_GRPC_RESOURCE_EXHAUSTED, "request larger than %u bytes",
                            AG_GRPC_MAX_MSG);
    if (st->req_len < GRPC_PREFIX)
        return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "no request message");
    if (st->req[0] != 0)
        return ag_grpc_fail(rep, AG_GRPC_UNIMPLEMENTED, "compressed messages are not supported");
    mlen = (uint32_t)st->req[1] << 24 | (uint32_t)st->req[2] << 16 | (uint32_t)st->req[3] << 8 |
           st->req[4];
    if (mlen != st->req_len - GRPC_PREFIX)
        return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "a unary call carries one message");
    return 0;
}

static int submit_reply(nghttp2_session *h2, struct stream *st, const struct ag_grpc_reply *rep)
{
    if (rep->code == AG_GRPC_OK)
        return submit_ok(h2, st, rep);
    return submit_error(h2, st->id, rep->code, rep->msg);
}

static int dispatch(struct conn *c, struct stream *st)
{
    struct ag_grpc_server *s = c->srv;
    struct ag_grpc_reply rep = {.stream = st};
    const struct ag_grpc_method *m = find_method(s, st->path);
    int rc = 0;

    if (!m)
        ag_grpc_fail(&rep, AG_GRPC_UNIMPLEMENTED, "unknown method %s", st->path);
    else if (check_request(st, &rep) == 0)
        m->fn(s->arg, st->req + GRPC_PREFIX, st->req_len - GRPC_PREFIX, &rep);
    DUET_FREE(st->req); /* the handler has answered or held; the request is not needed */
    st->req_len = st->req_cap = 0;
    if (!rep.held)
        rc = submit_reply(c->h2, st, &rep);
    duet_free(rep.body);
    return rc == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

struct ag_grpc_call *ag_grpc_call_hold(struct ag_grpc_reply *rep)
{
    struct stream *st = rep->stream;
    struct ag_grpc_call *call;

    DUET_BUG_ON(!st || rep->held);
    call = duet_calloc(1, sizeof(*call));
    if (!call)
        return NULL;
    call->st = st;
    st->held = call;
    rep->held = true;
    return call;
}

void ag_grpc_call_answer(struct ag_grpc_call *call, const struct ag_grpc_reply *rep)
{
    struct stream *st = call->st;

    duet_free(call);
    if (!st)
        return;
    st->held = NULL;
    if (st->c->closing)
        return;
    /* Refused only for a stream nghttp2 no longer has: reset it, the client retries. */
    if (submit_reply(st->c->h2, st, rep) != 0)
        nghttp2_submit_rst_stream(st->c->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    duet_loop_defer(st->c->srv->loop, &st->c->flush_defer);
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
    struct stream *st;

    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    return st ? dispatch(ud, st) : 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t err, void *ud)
{
    struct stream *st = nghttp2_session_get_stream_user_data(h2, id);

    if (st) {
        stream_unlink(ud, st);
        stream_free(st);
    }
    return 0;
}

/* ---- I/O ----------------------------------------------------------------------- */

/* Flush what nghttp2 has to say and ask the loop for what it waits for. */
static void conn_update(struct conn *c)
{
    uint32_t want = 0;

    if (nghttp2_session_send(c->h2) != 0) {
        conn_close(c);
        return;
    }
    if (nghttp2_session_want_read(c->h2))
        want |= DUET_EV_READ;
    if (nghttp2_session_want_write(c->h2))
        want |= DUET_EV_WRITE;
    if (!want) { /* GOAWAY sent and received, or a protocol error answered */
        conn_close(c);
        return;
    }
    if (want != c->interest && duet_loop_mod_fd(c->srv->loop, c->fd, want) == 0)
        c->interest = want;
}

static void on_conn_io(struct duet_loop *loop, int fd, uint32_t ev, void *arg)
{
    struct conn *c = arg;
    uint8_t buf[READ_CHUNK];

    if (c->closing)
        return;
    if (ev & (DUET_EV_READ | DUET_EV_HUP | DUET_EV_ERR)) {
        ssize_t n;

        do
            n = recv(fd, buf, sizeof(buf), 0);
        while (n == -1 && errno == EINTR);
        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            conn_close(c);
            return;
        }
        if (n > 0 && nghttp2_session_mem_recv(c->h2, buf, (size_t)n) < 0) {
            conn_close(c);
            return;
        }
    }
    conn_update(c);
}

static int conn_start(struct ag_grpc_server *s, int fd)
{
    static const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, AG_GRPC_MAX_STREAMS},
    };
    nghttp2_session_callbacks *cbs;
    struct conn *c = duet_calloc(1, sizeof(*c));
    int rc;

    if (!c || nghttp2_session_callbacks_new(&cbs) != 0) {
        duet_free(c);
        return DUET_ENOMEM;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    rc = nghttp2_session_server_new3(&c->h2, cbs, c, NULL, &h2_mem);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0 ||
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, DUET_ARRAY_SIZE(iv)) != 0 ||
        duet_loop_add_fd(s->loop, fd, DUET_EV_READ | DUET_EV_WRITE, on_conn_io, c) < 0) {
        nghttp2_session_del(c->h2);
        duet_free(c);
        return DUET_ENOMEM;
    }
    c->srv = s;
    c->fd = fd;
    c->interest = DUET_EV_READ | DUET_EV_WRITE; /* our SETTINGS go out first */
    duet_defer_init(&c->close_defer, on_close_defer, c);
    duet_defer_init(&c->flush_defer, on_flush_defer, c);
    c->next = s->conns;
    s->conns = c;
    s->nconns++;
    return 0;
}

int ag_grpc_server_adopt(struct ag_grpc_server *s, int fd)
{
    int rc = conn_start(s, fd);

    if (rc < 0)
        close(fd);
    return rc;
}

unsigned ag_grpc_server_conns(const struct ag_grpc_server *s)
{
    return s->nconns;
}

static void on_rest(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct ag_grpc_server *s = arg;

    if (duet_loop_mod_fd(loop, s->lfd, DUET_EV_READ) < 0)
        duet_timer_start(loop, &s->rest, ACCEPT_REST_MS);
}

static void on_accept(struct duet_loop *loop, int lfd, uint32_t ev, void *arg)
{
    struct ag_grpc_server *s = arg;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd == -1) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Level-triggered: rest instead of spinning on a full fd table. */
            duet_log(DUET_LOG_WARN, "grpc", "socket=%s err=%s msg=\"cannot accept; resting\"",
                     s->path, duet_err_name(-errno));
            if (duet_loop_mod_fd(loop, lfd, 0) == 0)
                duet_timer_start(loop, &s->rest, ACCEPT_REST_MS);
        }
        return;
    }
    if (s->nconns >= AG_GRPC_MAX_CONNS) {
        duet_log(DUET_LOG_WARN, "grpc", "socket=%s max_conns=%d msg=\"connection refused\"",
                 s->path, AG_GRPC_MAX_CONNS);
        close(fd);
        return;
    }
    if (ag_grpc_server_adopt(s, fd) < 0)
        duet_log(DUET_LOG_WARN, "grpc", "socket=%s msg=\"out of memory: connection closed\"",
                 s->path);
}

/* ---- listener -------------------------------------------------------------------- */

/* Create the socket's folder (kubelet's plugin folders are 0750 root). */
static int make_parent(const char *path, struct duet_errbuf *eb)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;

            *p = '\0';
            if (mkdir(dir, 0750) == -1 && errno != EEXIST)
                return duet_errf(eb, -errno, "%s: cannot create folder: %s", dir, strerror(errno));
            *p = c;
            if (c == '\0')
                return 0;
        }
    }
}

/* A stale socket from an earlier run is replaced; any other file is not ours. */
static int clear_stale(const char *path, struct duet_errbuf *eb)
{
    struct stat st;

    if (lstat(path, &st) == -1)
        return errno == ENOENT ? 0 : duet_errf(eb, -errno, "%s: %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return duet_errf(eb, DUET_EINVAL, "%s: exists and is not a socket", path);
    if (unlink(path) == -1)
        return duet_errf(eb, -errno, "%s: cannot remove the old socket: %s", path, strerror(errno));
    return 0;
}

static int listen_unix(const char *path, struct duet_errbuf *eb)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, err;

    if (strlen(path) >= sizeof(sa.sun_path) || path[0] != '/')
        return duet_errf(eb, DUET_EINVAL, "%s: not an absolute socket path of at most %zu bytes",
                         path, sizeof(sa.sun_path) - 1);
    DUET_TRY(make_parent(path, eb));
    DUET_TRY(clear_stale(path, eb));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return duet_errf(eb, -errno, "%s: socket: %s", path, strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || chmod(path, 0660) == -1 ||
        listen(fd, 64) == -1) {
        err = errno;
        close(fd);
        return duet_errf(eb, -err, "%s: cannot listen: %s", path, strerror(err));
    }
    return fd;
}

int ag_grpc_server_new(struct duet_loop *loop, const char *path,
                       const struct ag_grpc_method *methods, size_t n, void *arg,
                       struct ag_grpc_server **out, struct duet_errbuf *eb)
{
    struct ag_grpc_server *s = duet_calloc(1, sizeof(*s));
    int rc;

    if (!s || !(s->path = duet_strdup(path))) {
        duet_free(s);
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    }
    s->loop = loop;
    s->methods = methods;
    s->n_methods = n;
    s->arg = arg;
    duet_timer_init(&s->rest, on_rest, s);
    s->lfd = listen_unix(path, eb);
    if (s->lfd < 0) {
        rc = s->lfd;
        duet_free(s->path);
        duet_free(s);
        return rc;
    }
    rc = duet_loop_add_fd(loop, s->lfd, DUET_EV_READ, on_accept, s);
    if (rc < 0) {
        close(s->lfd);
        unlink(path);
        duet_free(s->path);
        duet_free(s);
        return duet_errf(eb, rc, "%s: cannot watch the socket", path);
    }
    *out = s;
    return 0;
}

void ag_grpc_server_free(struct ag_grpc_server *s)
{
    if (!s)
        return;
    while (s->conns)
        conn_destroy(s->conns);
    duet_timer_stop(s->loop, &s->rest);
    duet_loop_del_fd(s->loop, s->lfd);
    close(s->lfd);
    unlink(s->path);
    duet_free(s->path);
    duet_free(s);
}
