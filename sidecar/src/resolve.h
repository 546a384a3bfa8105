/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Name resolution off the event loops (resolve.c): a few resolver threads
 * for every worker, one lookup per name at a time, answers cached for a
 * fixed time, a bounded number of waiting requests. A worker owns a struct
 * sc_resolve_box, its mailbox: a thread posts finished requests there and
 * wakes the worker through the box's eventfd; the worker runs their
 * callbacks with sc_resolve_drain.
 */
#ifndef SC_RESOLVE_H
#define SC_RESOLVE_H

#include <netdb.h>
#include <pthread.h>
#include <stdint.h>

#include "duet/compiler.h"

struct sc_resolve_req;

/* Runs on the worker, from sc_resolve_drain; r is the callee's to sc_resolve_free. */
typedef void sc_resolve_cb(void *arg, struct sc_resolve_req *r);

struct sc_resolve_box {
    pthread_mutex_t mu; /* guards head */
    struct sc_resolve_req *head;
    int wake_fd; /* eventfd of the worker, borrowed */
};

struct sc_resolve_opts {
    unsigned threads;     /* getaddrinfo threads */
    unsigned queue_max;   /* requests waiting at most */
    int64_t cache_ttl_ms; /* how long an answer is reused; 0: not at all */
};

/* Counters since start (for /metrics). */
struct sc_resolve_stats {
    uint64_t lookups;       /* getaddrinfo calls */
    uint64_t failures;      /* of those, failed */
    uint64_t lookup_ms_sum; /* time spent in them */
    uint64_t cache_hits;    /* requests answered from the cache */
    uint64_t coalesced;     /* requests that joined a lookup in flight */
    uint64_t refused;       /* requests refused: queue full */
    uint64_t dropped;       /* lookups dropped: every requester had gone */
};

/* Why sc_resolve_submit returned NULL. */
#define SC_RESOLVE_UNAVAILABLE 1 /* not running, or out of memory */
#define SC_RESOLVE_QUEUE_FULL 2

int sc_resolve_init(const struct sc_resolve_opts *o) DUET_MUST_CHECK;
void sc_resolve_deinit(void);

void sc_resolve_box_init(struct sc_resolve_box *b, int wake_fd);
/* Frees what was posted and never drained. */
void sc_resolve_box_deinit(struct sc_resolve_box *b);

/* Queue host:port; cb(arg, r) runs on the box's worker (later, also for a
 * cached answer). NULL with *why set (SC_RESOLVE_*) when the resolver is
 * not running, memory is short or the queue is full (cb never runs then). */
struct sc_resolve_req *sc_resolve_submit(struct sc_resolve_box *b, const char *host, unsigned port,
                                         sc_resolve_cb *cb, void *arg, int *why);
/* The requester goes away first: the request completes into nothing. Worker thread. */
void sc_resolve_cancel(struct sc_resolve_req *r);
/* Called on the worker: run the callbacks of what the resolver posted. */
void sc_resolve_drain(struct sc_resolve_box *b);
/* The addresses (borrowed from r), or NULL with *err a getaddrinfo code. */
const struct addrinfo *sc_resolve_result(const struct sc_resolve_req *r, int *err);
void sc_resolve_free(struct sc_resolve_req *r);
/* How long r waited for its answer (lookup, queue, or nothing if cached). */
int64_t sc_resolve_wait_ms(const struct sc_resolve_req *r);
void sc_resolve_get_stats(struct sc_resolve_stats *out);

#endif
