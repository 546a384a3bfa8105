/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Name resolution off the event loops (STYLE.md 8: callbacks never block).
 * One resolver thread serves every worker: a worker queues a request, the
 * thread runs getaddrinfo(3) and posts the request back to that worker's
 * mailbox (struct sc_resolve_box), waking it through the box's eventfd.
 * Requests are owned by the resolver until posted, then by the worker; a
 * requester that goes away first only clears the request's callback, on
 * the worker thread, so the two threads never touch the same field.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/net.h"
#include "resolve.h"

struct sc_resolve_req {
    struct sc_resolve_req *next;
    struct sc_resolve_box *box;
    sc_resolve_cb *cb; /* NULL once cancelled; worker thread only */
    void *arg;
    char host[DUET_NET_HOST_MAX];
    char port[8];
    struct addrinfo *res;
    int err;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct sc_resolve_req *q_head, *q_tail;
static bool stopping;
static bool started;
static pthread_t thread;

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

static void *run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct sc_resolve_req *r = q_head;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};

        if (!r) {
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        q_head = r->next;
        if (!q_head)
            q_tail = NULL;
        pthread_mutex_unlock(&mu);
        r->err = getaddrinfo(r->host, r->port, &hints, &r->res);
        post(r);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int sc_resolve_init(void)
{
    int rc;

    stopping = false;
    rc = pthread_create(&thread, NULL, run, NULL);
    if (rc != 0)
        return -rc;
    started = true;
    return 0;
}

void sc_resolve_deinit(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    started = false;
    while (q_head) {
        struct sc_resolve_req *r = q_head;

        q_head = r->next;
        sc_resolve_free(r);
    }
    q_tail = NULL;
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

struct sc_resolve_req *sc_resolve_submit(struct sc_resolve_box *b, const char *host, unsigned port,
                                         sc_resolve_cb *cb, void *arg)
{
    struct sc_resolve_req *r;

    if (!started)
        return NULL;
    r = duet_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->box = b;
    r->cb = cb;
    r->arg = arg;
    snprintf(r->host, sizeof(r->host), "%s", host);
    snprintf(r->port, sizeof(r->port), "%u", port);
    pthread_mutex_lock(&mu);
    if (q_tail)
        q_tail->next = r;
    else
        q_head = r;
    q_tail = r;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return r;
}

void sc_resolve_cancel(struct sc_resolve_req *r)
{
    r->cb = NULL;
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

void sc_resolve_free(struct sc_resolve_req *r)
{
    if (!r)
        return;
    if (r->res)
        freeaddrinfo(r->res);
    duet_free(r);
}
