/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Name resolution off the event loops (STYLE.md 8: callbacks never block).
 *
 * A small pool of resolver threads runs getaddrinfo(3) for every worker.
 * Lookups are per name, not per connection: a table of entries keyed by
 * host:port holds the last answer for --resolve-cache-ttl and, while a
 * lookup runs, the requests waiting for it. So a burst of connections to
 * one upstream costs one lookup, and a slow DNS server delays only the
 * connections that arrived before the first answer. getaddrinfo gives no
 * TTL, so answers are kept for a fixed time; failures are not cached.
 *
 * Bounds: at most `queue_max` requests wait at once (a submit past that
 * fails at once, and the connection says "resolver queue full"); a lookup
 * whose waiters have all gone away is dropped before it runs; the table
 * has SC_RESOLVE_ENTRIES names (an upstream is a flag, so there are at most
 * SC_MAX_LISTENERS of them).
 *
 * Ownership: a request waits in its entry (resolver side, under `mu`) until
 * it is posted to its worker's mailbox (struct sc_resolve_box), after which
 * it is the worker's. A requester that goes away first cancels: a waiting
 * request is unlinked and freed at once; a posted one only loses its
 * callback (a worker-thread field) and the drain frees it.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/net.h"
#include "cfg.h"
#include "resolve.h"

#define SC_RESOLVE_ENTRIES (2 * SC_MAX_LISTENERS)
#define SC_RESOLVE_MAX_THREADS 32

enum req_state {
    REQ_WAITING = 0, /* in an entry's waiter list: the resolver's */
    REQ_POSTED,      /* in a box or drained: the worker's */
};

struct entry;

struct sc_resolve_req {
    struct sc_resolve_req *next; /* in the entry's waiters, then in the box */
    struct sc_resolve_req *prev; /* in the entry's waiters */
    struct entry *e;             /* while waiting */
    struct sc_resolve_box *box;
    sc_resolve_cb *cb; /* NULL once cancelled; worker thread only */
    void *arg;
    enum req_state state; /* under mu */
    struct addrinfo *res; /* our own copy (ai_copy), freed with ai_free */
    int err;
    int64_t submitted_ms, done_ms;
};

struct entry {
    char host[DUET_NET_HOST_MAX];
    char port[8];
    bool used;
    bool inflight; /* a thread is (or will be) looking it up */
    bool queued;   /* in the job queue */
    struct entry *job_next;
    struct addrinfo *res; /* the cached answer (getaddrinfo's), NULL: none */
    int64_t expires_ms;   /* mono */
    struct sc_resolve_req *waiters;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct entry entries[SC_RESOLVE_ENTRIES];
static struct entry *job_head, *job_tail;
static unsigned n_waiting, queue_max = 256, n_threads;
static int64_t ttl_ms;
static bool stopping;
static pthread_t threads[SC_RESOLVE_MAX_THREADS];
static struct sc_resolve_stats stats; /* under mu */

/* ---- addrinfo copies: a request's result outlives the cache entry ---- */

static void ai_free(struct addrinfo *ai)
{
    while (ai) {
        struct addrinfo *next = ai->ai_next;

        duet_free(ai);
        ai = next;
    }
}

/* One allocation per address: the node and its sockaddr together. */
static struct addrinfo *ai_copy(const struct addrinfo *src)
{
    struct addrinfo *head = NULL, **tail = &head;

    for (; src; src = src->ai_next) {
        struct addrinfo *n = duet_calloc(1, sizeof(*n) + src->ai_addrlen);

        if (!n) {
            ai_free(head);
            return NULL;
        }
        n->ai_family = src->ai_family;
        n->ai_socktype = src->ai_socktype;
        n->ai_protocol = src->ai_protocol;
        n->ai_addrlen = src->ai_addrlen;
        n->ai_addr = (struct sockaddr *)(n + 1);
        memcpy(n->ai_addr, src->ai_addr, src->ai_addrlen);
        *tail = n;
        tail = &n->ai_next;
    }
    return head;
}

/* ---- posting back to workers ---- */

static void post(struct sc_resolve_req *r)
{
    struct sc_resolve_box *b = r->box;
    uint64_t one = 1;

    pthread_mutex_lock(&b->mu);
    r->next = b->head;
    b->head = r;
    pthread_mutex_unlock(&b->mu);
    (void)!write(b->wake_fd, &one, sizeof(one));
}

/* Under mu: give r its answer (a copy of res, or err) and make it the worker's. */
static void complete(struct sc_resolve_req *r, const struct addrinfo *res, int err)
{
    r->res = res ? ai_copy(res) : NULL;
    r->err = res && !r->res ? EAI_MEMORY : err;
    r->done_ms = duet_clock_mono_ms();
    r->state = REQ_POSTED;
    r->e = NULL;
    r->prev = NULL;
    post(r);
}

/* ---- the threads ---- */

static void *run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct entry *e = job_head;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
        struct addrinfo *res = NULL;
        struct sc_resolve_req *w;
        int64_t t0;
        int err;

        if (!e) {
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        job_head = e->job_next;
        if (!job_head)
            job_tail = NULL;
        e->queued = false;
        if (!e->waiters) { /* every requester went away: nothing to look up */
            e->inflight = false;
            stats.dropped++;
            continue;
        }
        pthread_mutex_unlock(&mu);
        t0 = duet_clock_mono_ms();
        err = getaddrinfo(e->host, e->port, &hints, &res);
        pthread_mutex_lock(&mu);
        stats.lookups++;
        stats.lookup_ms_sum += (uint64_t)(duet_clock_mono_ms() - t0);
        if (err)
            stats.failures++;
        e->inflight = false;
        if (e->res)
            freeaddrinfo(e->res);
        e->res = err ? NULL : res;
        e->expires_ms = duet_clock_mono_ms() + ttl_ms;
        w = e->waiters;
        e->waiters = NULL;
        while (w) {
            struct sc_resolve_req *next = w->next;

            n_waiting--;
            complete(w, e->res, err);
            w = next;
        }
        if (ttl_ms == 0 && e->res) { /* no cache: the answer was only for the waiters */
            freeaddrinfo(e->res);
            e->res = NULL;
        }
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int sc_resolve_init(const struct sc_resolve_opts *o)
{
    pthread_mutex_lock(&mu);
    stopping = false;
    queue_max = o->queue_max;
    ttl_ms = o->cache_ttl_ms;
    pthread_mutex_unlock(&mu);
    for (unsigned i = 0; i < o->threads && i < SC_RESOLVE_MAX_THREADS; i++) {
        int rc = pthread_create(&threads[i], NULL, run, NULL);

        if (rc != 0) {
            sc_resolve_deinit();
            return -rc;
        }
        n_threads++;
    }
    return 0;
}

void sc_resolve_deinit(void)
{
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (unsigned i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
    n_threads = 0;
    /* The workers are gone: what still waits is nobody's but ours. */
    for (size_t i = 0; i < SC_RESOLVE_ENTRIES; i++) {
        struct entry *e = &entries[i];

        while (e->waiters) {
            struct sc_resolve_req *r = e->waiters;

            e->waiters = r->next;
            duet_free(r);
        }
        if (e->res)
            freeaddrinfo(e->res);
        memset(e, 0, sizeof(*e));
    }
    job_head = job_tail = NULL;
    n_waiting = 0;
}

void sc_resolve_box_init(struct sc_resolve_box *b, int wake_fd)
{
    pthread_mutex_init(&b->mu, NULL);
    b->head = NULL;
    b->wake_fd = wake_fd;
}

void sc_resolve_box_deinit(struct sc_resolve_box *b)
{
    while (b->head) {
        struct sc_resolve_req *r = b->head;

        b->head = r->next;
        sc_resolve_free(r);
    }
    pthread_mutex_destroy(&b->mu);
}

/* Under mu: the entry for host:port, a free or expired one for it, or NULL. */
static struct entry *entry_for(const char *host, const char *port, int64_t now)
{
    struct entry *spare = NULL;

    for (size_t i = 0; i < SC_RESOLVE_ENTRIES; i++) {
        struct entry *e = &entries[i];

        if (e->used && strcmp(e->host, host) == 0 && strcmp(e->port, port) == 0)
            return e;
        if (!spare &&
            (!e->used || (!e->inflight && !e->queued && !e->waiters && e->expires_ms <= now)))
            spare = e;
    }
    if (!spare)
        return NULL;
    if (spare->res)
        freeaddrinfo(spare->res);
    memset(spare, 0, sizeof(*spare));
    spare->used = true;
    snprintf(spare->host, sizeof(spare->host), "%s", host);
    snprintf(spare->port, sizeof(spare->port), "%s", port);
    return spare;
}

struct sc_resolve_req *sc_resolve_submit(struct sc_resolve_box *b, const char *host, unsigned port,
                                         sc_resolve_cb *cb, void *arg, int *why)
{
    struct sc_resolve_req *r;
    struct entry *e;
    char ports[8];
    int64_t now = duet_clock_mono_ms();

    *why = SC_RESOLVE_UNAVAILABLE;
    if (n_threads == 0)
        return NULL;
    r = duet_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->box = b;
    r->cb = cb;
    r->arg = arg;
    r->submitted_ms = now;
    snprintf(ports, sizeof(ports), "%u", port);
    pthread_mutex_lock(&mu);
    e = entry_for(host, ports, now);
    if (e && e->res && now < e->expires_ms) {
        stats.cache_hits++;
        complete(r, e->res, 0);
        pthread_mutex_unlock(&mu);
        return r;
    }
    if (!e || n_waiting >= queue_max) {
        stats.refused++;
        pthread_mutex_unlock(&mu);
        duet_free(r);
        *why = SC_RESOLVE_QUEUE_FULL;
        return NULL;
    }
    r->e = e;
    r->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = r;
    e->waiters = r;
    n_waiting++;
    if (e->inflight) {
        stats.coalesced++;
    } else {
        e->inflight = e->queued = true;
        e->job_next = NULL;
        if (job_tail)
            job_tail->job_next = e;
        else
            job_head = e;
        job_tail = e;
        pthread_cond_signal(&cv);
    }
    pthread_mutex_unlock(&mu);
    return r;
}

void sc_resolve_cancel(struct sc_resolve_req *r)
{
    bool waiting;

    pthread_mutex_lock(&mu);
    waiting = r->state == REQ_WAITING;
    if (waiting) {
        if (r->prev)
            r->prev->next = r->next;
        else
            r->e->waiters = r->next;
        if (r->next)
            r->next->prev = r->prev;
        n_waiting--;
    }
    pthread_mutex_unlock(&mu);
    if (waiting)
        duet_free(r); /* never posted: nobody else can reach it */
    else
        r->cb = NULL; /* posted: the drain frees it */
}

void sc_resolve_drain(struct sc_resolve_box *b)
{
    struct sc_resolve_req *r;

    pthread_mutex_lock(&b->mu);
    r = b->head;
    b->head = NULL;
    pthread_mutex_unlock(&b->mu);
    while (r) {
        struct sc_resolve_req *next = r->next;

        r->next = NULL;
        if (r->cb)
            r->cb(r->arg, r); /* the requester now owns r */
        else
            sc_resolve_free(r);
        r = next;
    }
}

const struct addrinfo *sc_resolve_result(const struct sc_resolve_req *r, int *err)
{
    *err = r->err;
    return r->err == 0 ? r->res : NULL;
}

int64_t sc_resolve_wait_ms(const struct sc_resolve_req *r)
{
    return r->done_ms - r->submitted_ms;
}

void sc_resolve_free(struct sc_resolve_req *r)
{
    if (!r)
        return;
    ai_free(r->res);
    duet_free(r);
}

void sc_resolve_get_stats(struct sc_resolve_stats *out)
{
    pthread_mutex_lock(&mu);
    *out = stats;
    pthread_mutex_unlock(&mu);
}
