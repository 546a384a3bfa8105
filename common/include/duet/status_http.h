/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny HTTP status server on the event loop, for /healthz, /readyz and
 * /metrics. GET only; the request line and headers must fit a fixed 2 KiB
 * buffer (else 431); every reply carries Content-Length and
 * "Connection: close" and the connection is closed after it. A client must
 * send its whole request within request_timeout_ms (a probe sends it with
 * the connection) and take its reply within timeout_ms. At most max_conns
 * clients at once; when full, a newcomer evicts the oldest client still
 * sending its request, so sockets held open by anyone cannot starve a
 * liveness probe. Single threaded: everything runs on the loop given to
 * duet_status_http_new.
 */
#ifndef DUET_STATUS_HTTP_H
#define DUET_STATUS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "duet/compiler.h"
#include "duet/err.h"

struct duet_loop;
struct duet_status_http;

/* What a handler fills in. status defaults to 200, content_type to text/plain. */
struct duet_status_reply {
    int status;
    const char *content_type; /* borrowed: a string literal or static storage */
    char *body;               /* owned by the server; append with duet_status_reply_printf */
    size_t len;
    size_t cap;
    int err; /* set by duet_status_reply_printf on failure: the server answers 500 */
};

/*
 * Append to the reply body. Returns 0 or DUET_ENOMEM (the body is then
 * truncated and the server answers 500).
 */
int duet_status_reply_printf(struct duet_status_reply *r, const char *fmt, ...) DUET_PRINTF(2, 3);

/*
 * Called from the loop for each well-formed GET with the path (query string
 * removed, NUL-terminated, borrowed for the call). It must not block.
 */
typedef void duet_status_handler(const char *path, struct duet_status_reply *r, void *arg);

struct duet_status_http_opts {
    int64_t timeout_ms;         /* per connection, request and reply; 0 means 5000 */
    int64_t request_timeout_ms; /* from accept to a whole request; 0 means 1000 */
    unsigned max_conns;         /* 0 means 256 */
};

/*
 * Listen on `listen` ("host:port") and serve from `loop`. opts may be NULL.
 * On failure nothing is left registered and eb names the address.
 */
int duet_status_http_new(struct duet_loop *loop, const char *listen,
                         const struct duet_status_http_opts *opts, duet_status_handler *h,
                         void *arg, struct duet_status_http **out,
                         struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Closes the listener and every open client. NULL is accepted. */
void duet_status_http_free(struct duet_status_http *s);
/* The bound port: what the kernel chose when listen asked for port 0. */
unsigned duet_status_http_port(const struct duet_status_http *s);

#endif
