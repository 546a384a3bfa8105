/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The work queue of workq.h: one mutex, one condition variable for the
 * workers, two lists (to run, finished) and an eventfd the loop reads.
 * The eventfd is written once per batch: only when the finished list goes
 * from empty to non-empty, since the loop takes the whole list at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "workq.h"

#include "duet/alloc.h"

#define MAX_THREADS 8

struct list {
    struct ag_work *head, *tail;
};

struct ag_workq {
    struct duet_loop *loop;
    int efd;
    pthread_mutex_t mu;
    pthread_cond_t work; /* queued is not empty, or stop */
    /* Set once, under mu for the workers that wait on `work`; read without
     * mu by jobs through ag_workq_abandon. */
    atomic_bool stop;
    struct list queued, finished; /* under mu */
    size_t pending;               /* loop thread: submitted, not handed back */
    pthread_t threads[MAX_THREADS];
    unsigned n_threads;
};

static void push(struct list *l, struct ag_work *w)
{
    w->next = NULL;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

static struct ag_work *take_all(struct list *l)
{
    struct ag_work *w = l->head;

    l->head = l->tail = NULL;
    return w;
}

static void wake_loop(int efd)
{
    uint64_t one = 1;

    /* Fails only when the counter would overflow: the loop is awake then anyway. */
    while (write(efd, &one, sizeof(one)) == -1 && errno == EINTR)
        ;
}

static void *worker(void *arg)
{
    struct ag_workq *q = arg;

    pthread_mutex_lock(&q->mu);
    for (;;) {
        struct ag_work *w;
        bool was_empty;

        while (!q->stop && !q->queued.head)
            pthread_cond_wait(&q->work, &q->mu);
        if (q->stop)
            break;
        w = q->queued.head;
        q->queued.head = w->next;
        if (!q->queued.head)
            q->queued.tail = NULL;
        pthread_mutex_unlock(&q->mu);
        w->run(w);
        pthread_mutex_lock(&q->mu);
        was_empty = !q->finished.head;
        push(&q->finished, w);
        if (was_empty)
            wake_loop(q->efd);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Hand back every finished job. Each done() may submit more or free its job. */
static void deliver(struct ag_workq *q, struct ag_work *w, bool cancelled)
{
    while (w) {
        struct ag_work *next = w->next;

        q->pending--;
        w->done(w, cancelled);
        w = next;
    }
}

static void on_wake(struct duet_loop *loop, int fd, uint32_t ev, void *arg)
{
    struct ag_workq *q = arg;
    struct ag_work *w;
    uint64_t n;

    while (read(fd, &n, sizeof(n)) == -1 && errno == EINTR)
        ;
    pthread_mutex_lock(&q->mu);
    w = take_all(&q->finished);
    pthread_mutex_unlock(&q->mu);
    deliver(q, w, false);
}

void ag_workq_submit(struct ag_workq *q, struct ag_work *w)
{
    pthread_mutex_lock(&q->mu);
    push(&q->queued, w);
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
    q->pending++;
}

size_t ag_workq_pending(const struct ag_workq *q)
{
    return q ? q->pending : 0;
}

const atomic_bool *ag_workq_abandon(const struct ag_workq *q)
{
    return &q->stop;
}

void ag_workq_free(struct ag_workq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    atomic_store(&q->stop, true);
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    for (unsigned i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    /* Alone now: what finished, then what never ran. */
    deliver(q, take_all(&q->finished), true);
    deliver(q, take_all(&q->queued), true);
    if (q->efd != -1) {
        duet_loop_del_fd(q->loop, q->efd);
        close(q->efd);
    }
    pthread_cond_destroy(&q->work);
    pthread_mutex_destroy(&q->mu);
    duet_free(q);
}

int ag_workq_new(struct duet_loop *loop, unsigned threads, struct ag_workq **out,
                 struct duet_errbuf *eb)
{
    struct ag_workq *q = duet_calloc(1, sizeof(*q));
    int rc;

    if (!q)
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    q->loop = loop;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd == -1) {
        rc = -errno;
        ag_workq_free(q);
        return duet_errf(eb, rc, "eventfd: %s", duet_strerror(rc));
    }
    rc = duet_loop_add_fd(loop, q->efd, DUET_EV_READ, on_wake, q);
    if (rc < 0) {
        close(q->efd);
        q->efd = -1;
        ag_workq_free(q);
        return duet_errf(eb, rc, "eventfd: cannot watch it: %s", duet_strerror(rc));
    }
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    for (; q->n_threads < threads; q->n_threads++) {
        if (pthread_create(&q->threads[q->n_threads], NULL, worker, q) != 0) {
            ag_workq_free(q);
            return duet_errf(eb, DUET_E_INTERNAL, "cannot start the signing threads");
        }
    }
    *out = q;
    return 0;
}
