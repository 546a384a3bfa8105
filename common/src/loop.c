/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The epoll event loop described in duet/loop.h (redis src/ae.c, haproxy
 * src/ev_epoll.c). This file owns the epoll fd, the signalfd, the fd table,
 * the timer min-heap and the deferred queue; it never owns the fds, timers or
 * defer records that callers register (they live in caller storage).
 *
 * Stale events: every registration gets a fresh 32-bit generation, packed
 * with the fd into epoll_event.data.u64. A batch entry whose generation no
 * longer matches the fd's current registration (deleted, or deleted and the
 * number reused by an accept earlier in the same batch) is dropped.
 *
 * Quiet fds (events == 0) are taken out of the epoll set instead of being
 * left registered with an empty mask: the kernel always reports EPOLLHUP and
 * EPOLLERR, so a paused, hung-up socket would otherwise spin the loop.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/err.h"
#include "duet/loop.h"

#define MAX_EVENTS 256
#define MAX_SIGNO 65

struct fd_reg {
    duet_io_cb *cb;
    void *arg;
    uint32_t gen;    /* 0: free slot */
    uint32_t events; /* DUET_EV_* requested */
    bool in_epoll;
};

struct sig_reg {
    duet_loop_cb *cb;
    void *arg;
};

struct duet_loop {
    int epfd;
    int sigfd; /* -1 until the first duet_loop_add_signal */
    sigset_t sigmask;
    bool stopped;
    bool in_timers;
    int64_t timer_now;
    int64_t now; /* see duet_loop_now_ms */
    uint32_t next_gen;

    struct fd_reg *fds;
    size_t nfds;

    struct duet_timer **heap;
    size_t heap_len;
    size_t heap_cap;

    struct duet_defer *dq_head; /* queued for this (or the next) step 5 */
    struct duet_defer *dq_tail;
    struct duet_defer *run_head; /* the part of the queue step 5 is running */

    duet_loop_cb *before_sleep;
    void *before_sleep_arg;

    struct sig_reg sigs[MAX_SIGNO];
    struct epoll_event batch[MAX_EVENTS];
};

int duet_loop_new(struct duet_loop **out)
{
    struct duet_loop *loop = duet_calloc(1, sizeof(*loop));

    if (!loop)
        return DUET_ENOMEM;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd == -1) {
        int rc = -errno;

        duet_free(loop);
        return rc;
    }
    loop->sigfd = -1;
    sigemptyset(&loop->sigmask);
    loop->next_gen = 1;
    loop->now = duet_clock_mono_ms();
    *out = loop;
    return 0;
}

void duet_loop_free(struct duet_loop *loop)
{
    if (!loop)
        return;
    if (loop->sigfd != -1)
        close(loop->sigfd);
    close(loop->epfd);
    duet_free(loop->fds);
    duet_free(loop->heap);
    duet_free(loop);
}

/* ---- file descriptors ---- */

static uint32_t to_epoll(uint32_t ev)
{
    uint32_t e = 0;

    if (ev & DUET_EV_READ)
        e |= EPOLLIN | EPOLLRDHUP;
    if (ev & DUET_EV_WRITE)
        e |= EPOLLOUT;
    return e;
}

static uint32_t from_epoll(uint32_t e)
{
    uint32_t ev = 0;

    if (e & EPOLLIN)
        ev |= DUET_EV_READ;
    if (e & EPOLLOUT)
        ev |= DUET_EV_WRITE;
    if (e & (EPOLLHUP | EPOLLRDHUP))
        ev |= DUET_EV_HUP;
    if (e & EPOLLERR)
        ev |= DUET_EV_ERR;
    return ev;
}

static int grow_fds(struct duet_loop *loop, int fd)
{
    size_t n = loop->nfds ? loop->nfds : 64;
    struct fd_reg *p;

    while (n <= (size_t)fd)
        n *= 2;
    if (n == loop->nfds)
        return 0;
    p = duet_realloc(loop->fds, n * sizeof(*p));
    if (!p)
        return DUET_ENOMEM;
    memset(p + loop->nfds, 0, (n - loop->nfds) * sizeof(*p));
    loop->fds = p;
    loop->nfds = n;
    return 0;
}

/* Bring the kernel's view of fd in line with reg->events. */
static int sync_epoll(struct duet_loop *loop, int fd, struct fd_reg *reg)
{
    struct epoll_event ev = {.events = to_epoll(reg->events),
                             .data.u64 = ((uint64_t)reg->gen << 32) | (uint32_t)fd};
    int op;

    if (reg->events == 0) {
        if (!reg->in_epoll)
            return 0;
        op = EPOLL_CTL_DEL;
    } else {
        op = reg->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    }
    if (epoll_ctl(loop->epfd, op, fd, &ev) == -1)
        return -errno;
    reg->in_epoll = reg->events != 0;
    return 0;
}

int duet_loop_add_fd(struct duet_loop *loop, int fd, uint32_t events, duet_io_cb *cb, void *arg)
{
    struct fd_reg *reg;
    int rc;

    DUET_ENSURE(fd >= 0 && cb, DUET_EINVAL);
    DUET_TRY(grow_fds(loop, fd));
    reg = &loop->fds[fd];
    DUET_ENSURE(reg->gen == 0, DUET_EEXIST);
    reg->cb = cb;
    reg->arg = arg;
    reg->events = events & (DUET_EV_READ | DUET_EV_WRITE);
    reg->in_epoll = false;
    reg->gen = loop->next_gen++;
    if (loop->next_gen == 0) /* 0 marks a free slot */
        loop->next_gen = 1;
    rc = sync_epoll(loop, fd, reg);
    if (rc < 0)
        memset(reg, 0, sizeof(*reg));
    return rc;
}

int duet_loop_mod_fd(struct duet_loop *loop, int fd, uint32_t events)
{
    struct fd_reg *reg;

    DUET_ENSURE(fd >= 0 && (size_t)fd < loop->nfds, DUET_ENOENT);
    reg = &loop->fds[fd];
    DUET_ENSURE(reg->gen != 0, DUET_ENOENT);
    events &= DUET_EV_READ | DUET_EV_WRITE;
    if (events == reg->events)
        return 0;
    reg->events = events;
    return sync_epoll(loop, fd, reg);
}

void duet_loop_del_fd(struct duet_loop *loop, int fd)
{
    struct fd_reg *reg;

    if (fd < 0 || (size_t)fd >= loop->nfds || loop->fds[fd].gen == 0)
        return;
    reg = &loop->fds[fd];
    if (reg->in_epoll)
        (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(reg, 0, sizeof(*reg)); /* gen 0: later batch entries for fd are stale */
}

/* One epoll_ctl less per closed socket, as nginx (NGX_CLOSE_EVENT) and
 * haproxy (ev_epoll.c __fd_clo: DEL only for a shared fd) do. */
void duet_loop_close_fd(struct duet_loop *loop, int fd)
{
    if (fd < 0)
        return;
    if ((size_t)fd < loop->nfds)
        memset(&loop->fds[fd], 0, sizeof(loop->fds[fd])); /* as del_fd: stale from here */
    close(fd);
}

/* ---- timers: a binary min-heap of caller-owned records; slot = index + 1 ---- */

static void heap_set(struct duet_loop *loop, size_t i, struct duet_timer *t)
{
    loop->heap[i] = t;
    t->slot = i + 1;
}

static void heap_up(struct duet_loop *loop, size_t i)
{
    struct duet_timer *t = loop->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (loop->heap[parent]->deadline <= t->deadline)
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(struct duet_loop *loop, size_t i)
{
    struct duet_timer *t = loop->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= loop->heap_len)
            break;
        if (c + 1 < loop->heap_len && loop->heap[c + 1]->deadline < loop->heap[c]->deadline)
            c++;
        if (t->deadline <= loop->heap[c]->deadline)
            break;
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

void duet_timer_init(struct duet_timer *t, duet_timer_cb *cb, void *arg)
{
    memset(t, 0, sizeof(*t));
    t->cb = cb;
    t->arg = arg;
}

void duet_timer_stop(struct duet_loop *loop, struct duet_timer *t)
{
    size_t i;
    struct duet_timer *last;

    if (t->slot == 0)
        return;
    i = t->slot - 1;
    t->slot = 0;
    last = loop->heap[--loop->heap_len];
    if (i == loop->heap_len)
        return;
    heap_set(loop, i, last);
    heap_up(loop, i);
    heap_down(loop, last->slot - 1);
}

void duet_timer_start(struct duet_loop *loop, struct duet_timer *t, int64_t delay_ms)
{
    int64_t deadline = duet_clock_mono_ms() + (delay_ms > 0 ? delay_ms : 0);

    /* A timer re-armed from step 4 never fires again in the same step, or a
     * zero-delay re-arm would loop forever on a clock that has not moved. */
    if (loop->in_timers && deadline <= loop->timer_now)
        deadline = loop->timer_now + 1;
    duet_timer_stop(loop, t);
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
        struct duet_timer **h = duet_realloc(loop->heap, cap * sizeof(*h));

        /* The heap only grows by doubling, to a size bounded by the number
         * of live timers; failing to grow it is an exhausted process. */
        DUET_BUG_ON(!h);
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->deadline = deadline;
    heap_set(loop, loop->heap_len++, t);
    heap_up(loop, loop->heap_len - 1);
}

static void run_timers(struct duet_loop *loop)
{
    loop->timer_now = duet_clock_mono_ms();
    loop->now = loop->timer_now;
    loop->in_timers = true;
    while (loop->heap_len > 0 && loop->heap[0]->deadline <= loop->timer_now) {
        struct duet_timer *t = loop->heap[0];

        duet_timer_stop(loop, t);
        t->cb(loop, t, t->arg);
    }
    loop->in_timers = false;
}

/* ---- deferred callbacks ---- */

void duet_defer_init(struct duet_defer *d, duet_loop_cb *cb, void *arg)
{
    memset(d, 0, sizeof(*d));
    d->cb = cb;
    d->arg = arg;
}

void duet_loop_defer(struct duet_loop *loop, struct duet_defer *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    if (loop->dq_tail)
        loop->dq_tail->next = d;
    else
        loop->dq_head = d;
    loop->dq_tail = d;
}

/* Unlink d from the list starting at *head (tail may be NULL); true if found. */
static bool unlink_defer(struct duet_defer **head, struct duet_defer **tail, struct duet_defer *d)
{
    struct duet_defer *prev = NULL;

    for (struct duet_defer *p = *head; p; prev = p, p = p->next) {
        if (p != d)
            continue;
        if (prev)
            prev->next = d->next;
        else
            *head = d->next;
        if (tail && *tail == d)
            *tail = prev;
        return true;
    }
    return false;
}

void duet_loop_cancel_defer(struct duet_loop *loop, struct duet_defer *d)
{
    if (!d->queued)
        return;
    if (!unlink_defer(&loop->dq_head, &loop->dq_tail, d))
        (void)unlink_defer(&loop->run_head, NULL, d);
    d->next = NULL;
    d->queued = false;
}

/* Runs what was queued when step 5 began; work queued by these callbacks
 * waits for the next iteration (whose epoll_wait then does not sleep), so a
 * callback that re-queues itself cannot starve I/O. */
static void run_deferred(struct duet_loop *loop)
{
    loop->run_head = loop->dq_head;
    loop->dq_head = NULL;
    loop->dq_tail = NULL;
    while (loop->run_head) {
        struct duet_defer *d = loop->run_head;

        loop->run_head = d->next;
        d->next = NULL;
        d->queued = false;
        d->cb(loop, d->arg);
    }
}

/* ---- signals ---- */

static void on_signalfd(struct duet_loop *loop, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;

    (void)events;
    (void)arg;
    for (;;) {
        ssize_t n = read(fd, &si, sizeof(si));

        if (n == -1 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(si))
            return; /* EAGAIN: drained */
        if (si.ssi_signo < MAX_SIGNO && loop->sigs[si.ssi_signo].cb)
            loop->sigs[si.ssi_signo].cb(loop, loop->sigs[si.ssi_signo].arg);
    }
}

int duet_loop_add_signal(struct duet_loop *loop, int signo, duet_loop_cb *cb, void *arg)
{
    sigset_t one;
    int fd;

    DUET_ENSURE(signo > 0 && signo < MAX_SIGNO && cb, DUET_EINVAL);
    sigemptyset(&one);
    sigaddset(&one, signo);
    if (pthread_sigmask(SIG_BLOCK, &one, NULL) != 0)
        return DUET_EINVAL;
    sigaddset(&loop->sigmask, signo);
    fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd == -1)
        return -errno;
    if (loop->sigfd == -1) {
        int rc = duet_loop_add_fd(loop, fd, DUET_EV_READ, on_signalfd, NULL);

        if (rc < 0) {
            close(fd);
            return rc;
        }
        loop->sigfd = fd;
    }
    loop->sigs[signo].cb = cb;
    loop->sigs[signo].arg = arg;
    return 0;
}

/* ---- iteration ---- */

void duet_loop_set_before_sleep(struct duet_loop *loop, duet_loop_cb *cb, void *arg)
{
    loop->before_sleep = cb;
    loop->before_sleep_arg = arg;
}

static int wait_timeout(struct duet_loop *loop, int max_wait_ms)
{
    int64_t t = -1;

    if (loop->dq_head)
        return 0;
    if (loop->heap_len > 0) {
        t = loop->heap[0]->deadline - duet_clock_mono_ms();
        if (t < 0)
            t = 0;
        if (t > INT32_MAX)
            t = INT32_MAX;
    }
    if (max_wait_ms >= 0 && (t < 0 || t > max_wait_ms))
        t = max_wait_ms;
    return (int)t;
}

static void dispatch(struct duet_loop *loop, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t u = loop->batch[i].data.u64;
        int fd = (int)(uint32_t)u;
        uint32_t gen = (uint32_t)(u >> 32);
        struct fd_reg *reg;

        if ((size_t)fd >= loop->nfds)
            continue;
        reg = &loop->fds[fd];
        if (reg->gen != gen)
            continue; /* deleted (and maybe reused) earlier in this batch */
        reg->cb(loop, fd, from_epoll(loop->batch[i].events), reg->arg);
    }
}

int duet_loop_run_once(struct duet_loop *loop, int max_wait_ms)
{
    int n;

    if (loop->before_sleep)
        loop->before_sleep(loop, loop->before_sleep_arg);
    n = epoll_wait(loop->epfd, loop->batch, MAX_EVENTS, wait_timeout(loop, max_wait_ms));
    if (n == -1) {
        if (errno != EINTR)
            return -errno;
        n = 0; /* a signal not routed through the signalfd: just go round */
    }
    loop->now = duet_clock_mono_ms();
    dispatch(loop, n);
    run_timers(loop);
    run_deferred(loop);
    return 0;
}

int duet_loop_run(struct duet_loop *loop)
{
    loop->stopped = false;
    while (!loop->stopped)
        DUET_TRY(duet_loop_run_once(loop, -1));
    return 0;
}

void duet_loop_stop(struct duet_loop *loop)
{
    loop->stopped = true;
}

int64_t duet_loop_now_ms(const struct duet_loop *loop)
{
    return loop->now;
}
