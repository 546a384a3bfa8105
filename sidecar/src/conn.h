/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Proxied connections (conn.c): the per-connection state machine, its
 * timers and its two sides. A worker keeps its connections in a
 * struct sc_conns, which only conn.c changes; it also carries what the
 * worker lends them (loop, buffers, resolver mailbox, configuration), so
 * conn.c reaches the worker only through worker.h's functions.
 */
#ifndef SC_CONN_H
#define SC_CONN_H

#include <sys/socket.h>

#include "duet/loop.h"

struct sc_bufpool;
struct sc_cfg;
struct sc_conn;
struct sc_listener;
struct sc_resolve_box;
struct sc_worker;

/* A worker's connections: all of them, those BoringSSL holds bytes for,
 * and the inbound ones still in their TLS handshake (oldest at the tail). */
struct sc_conns {
    struct sc_conn *head;       /* doubly linked */
    struct sc_conn *drain_head; /* SSL_pending drain list for the before-sleep hook */
    unsigned n;
    /* Borrowed from the worker for the set's life. */
    struct sc_worker *w; /* told of every change (sc_worker_conns_changed) */
    struct duet_loop *loop;
    struct sc_bufpool *pool;
    struct sc_resolve_box *rbox;
    const struct sc_cfg *cfg;
    struct sc_conn *pend_head, *pend_tail; /* pending handshakes, newest first */
    unsigned n_pending;
};

void sc_conns_init(struct sc_conns *cs, struct sc_worker *w, struct duet_loop *loop,
                   struct sc_bufpool *pool, struct sc_resolve_box *rbox, const struct sc_cfg *cfg);

/*
 * Take an accepted socket (ownership of fd passes to the connection, which
 * closes it; on failure it is closed at once) from listener l, whose worker
 * runs the loop this is called on.
 */
void sc_conn_start(struct sc_conns *cs, struct sc_listener *l, int fd, const struct sockaddr *peer);
/* Mark every connection closing; the loop frees them at the end of its iteration. */
void sc_conn_close_all(struct sc_conns *cs);
/* Check the peer of every connection past its handshake against set (a new
 * ca.crt or CRL) and close, gracefully, logged and counted, those that fail. */
struct sc_tls_set;
void sc_conn_recheck_all(struct sc_conns *cs, struct sc_tls_set *set);
/* The before-sleep hook (arg: the struct sc_conns): drain what epoll cannot see. */
void sc_conn_before_sleep(struct duet_loop *loop, void *arg);

#endif
