/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Name resolution off the event loops (resolve.c): one resolver thread for
 * every worker. A worker owns a struct sc_resolve_box, its mailbox: the
 * thread posts finished requests there and wakes the worker through the
 * box's eventfd; the worker runs their callbacks with sc_resolve_drain.
 */
#ifndef SC_RESOLVE_H
#define SC_RESOLVE_H

#include <netdb.h>
#include <pthread.h>

#include "duet/compiler.h"

struct sc_resolve_req;

/* Runs on the worker, from sc_resolve_drain; r is the callee's to sc_resolve_free. */
typedef void sc_resolve_cb(void *arg, struct sc_resolve_req *r);

struct sc_resolve_box {
    pthread_mutex_t mu; /* guards head */
    struct sc_resolve_req *head;
    int wake_fd; /* eventfd of the worker, borrowed */
};

int sc_resolve_init(void) DUET_MUST_CHECK;
void sc_resolve_deinit(void);

void sc_resolve_box_init(struct sc_resolve_box *b, int wake_fd);
/* Frees what was posted and never drained. */
void sc_resolve_box_deinit(struct sc_resolve_box *b);

/* Queue host:port; cb(arg, r) runs on the box's worker. NULL when the
 * resolver is not running or memory is short (cb never runs then). */
struct sc_resolve_req *sc_resolve_submit(struct sc_resolve_box *b, const char *host, unsigned port,
                                         sc_resolve_cb *cb, void *arg);
/* The requester goes away first: the request completes into nothing. Worker thread. */
void sc_resolve_cancel(struct sc_resolve_req *r);
/* Called on the worker: run the callbacks of what the resolver posted. */
void sc_resolve_drain(struct sc_resolve_box *b);
/* The addresses (borrowed from r), or NULL with *err a getaddrinfo code. */
const struct addrinfo *sc_resolve_result(const struct sc_resolve_req *r, int *err);
void sc_resolve_free(struct sc_resolve_req *r);

#endif
