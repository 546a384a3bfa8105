/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key pool of keypool.h: one mutex, one condition variable, a ring of
 * ready keys per type. Workers generate outside the lock and pick the type
 * with the fewest ready keys, so a burst of one type does not starve the
 * others. Errors in a worker (out of memory) are retried after a pause;
 * the loop then generates in place, so nothing depends on the pool.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "keypool.h"

#include "duet/alloc.h"

#define MAX_TYPES 8
#define MAX_THREADS 8

struct ring {
    enum duet_key_type type;
    struct duet_key **keys; /* per_type slots: n ready keys from head */
    size_t head, n;
    size_t making; /* keys workers are generating for this ring */
};

struct ag_keypool {
    pthread_mutex_t mu;
    pthread_cond_t need; /* a slot is free, or stop */
    bool stop;
    unsigned per_type;
    struct ring rings[MAX_TYPES];
    size_t n_rings;
    pthread_t threads[MAX_THREADS];
    unsigned n_threads;
};

/* Refilling is background work: under contention the signing threads and
 * the loop, which a starting pod is waiting for, go first (a refill racing
 * a burst's signatures made its last identity later). Idle cores still
 * refill at full speed. Best effort: a thread that may not lower its own
 * priority just works at the normal one. */
#define REFILL_NICE 10

/* The ring with the most free slots, or NULL when all are full. Under mu. */
static struct ring *neediest(struct ag_keypool *p)
{
    struct ring *best = NULL;

    for (size_t i = 0; i < p->n_rings; i++)
        if (p->rings[i].n + p->rings[i].making < p->per_type &&
            (!best || p->rings[i].n + p->rings[i].making < best->n + best->making))
            best = &p->rings[i];
    return best;
}

static void *worker(void *arg)
{
    struct ag_keypool *p = arg;

    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), REFILL_NICE); /* this thread only */
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct ring *r = neediest(p);
        struct duet_key *key = NULL;
        struct duet_errbuf eb;
        enum duet_key_type t;

        if (!r) {
            pthread_cond_wait(&p->need, &p->mu);
            continue;
        }
        t = r->type;
        r->making++;
        pthread_mutex_unlock(&p->mu);
        duet_errbuf_clear(&eb);
        if (duet_key_generate(t, &key, &eb) < 0) {
            struct timespec pause = {.tv_sec = 1};
            nanosleep(&pause, NULL);
        }
        pthread_mutex_lock(&p->mu);
        r->making--;
        if (key) {
            r->keys[(r->head + r->n) % p->per_type] = key;
            r->n++;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct duet_key *ag_keypool_take(struct ag_keypool *p, enum duet_key_type t)
{
    struct duet_key *key = NULL;

    if (!p)
        return NULL;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_rings; i++) {
        struct ring *r = &p->rings[i];

        if (r->type == t && r->n) {
            key = r->keys[r->head];
            r->keys[r->head] = NULL;
            r->head = (r->head + 1) % p->per_type;
            r->n--;
            pthread_cond_signal(&p->need);
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return key;
}

size_t ag_keypool_ready(struct ag_keypool *p)
{
    size_t n = 0;

    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_rings; i++)
        n += p->rings[i].n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void ag_keypool_free(struct ag_keypool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->need);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    for (size_t i = 0; i < p->n_rings; i++) {
        for (size_t j = 0; j < p->per_type; j++)
            duet_key_free(p->rings[i].keys[j]);
        duet_free(p->rings[i].keys);
    }
    pthread_cond_destroy(&p->need);
    pthread_mutex_destroy(&p->mu);
    duet_free(p);
}

int ag_keypool_new(const enum duet_key_type *types, size_t n, unsigned per_type, unsigned threads,
                   struct ag_keypool **out, struct duet_errbuf *eb)
{
    struct ag_keypool *p = duet_calloc(1, sizeof(*p));

    if (!p)
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->need, NULL);
    p->per_type = per_type < 1 ? 1 : per_type > 4096 ? 4096 : per_type;
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;

        for (size_t j = 0; j < p->n_rings; j++)
            seen |= p->rings[j].type == types[i];
        if (seen || p->n_rings == MAX_TYPES)
            continue;
        p->rings[p->n_rings].type = types[i];
        p->rings[p->n_rings].keys = duet_calloc(p->per_type, sizeof(struct duet_key *));
        if (!p->rings[p->n_rings++].keys) {
            ag_keypool_free(p);
            return duet_errf(eb, DUET_ENOMEM, "out of memory");
        }
    }
    for (; p->n_threads < threads; p->n_threads++) {
        if (pthread_create(&p->threads[p->n_threads], NULL, worker, p) != 0) {
            ag_keypool_free(p);
            return duet_errf(eb, DUET_E_INTERNAL, "cannot start the key pool's threads");
        }
    }
    *out = p;
    return 0;
}
