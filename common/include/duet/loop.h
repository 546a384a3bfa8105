/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A single-threaded epoll event loop: file descriptors, timers, signals and
 * deferred callbacks all register the same way (callback + argument). One
 * loop per thread; nothing here is thread-safe.
 *
 * One iteration, always in this order:
 *   1. the before-sleep hook (it may queue deferred work, e.g. to drain bytes
 *      BoringSSL already holds, which epoll will never report);
 *   2. epoll_wait, with a timeout of 0 if deferred work is queued, else until
 *      the nearest timer (or forever);
 *   3. I/O callbacks, in the order epoll reported them;
 *   4. due timers, earliest first;
 *   5. deferred callbacks, in the order queued (closes happen here, so no
 *      callback of the iteration still runs on a freed object).
 *
 * fds are level-triggered. An fd removed during step 3 receives no further
 * events from that batch, even if the number is reused by an accept in the
 * same iteration (each registration carries a generation).
 */
#ifndef DUET_LOOP_H
#define DUET_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet/compiler.h"

#define DUET_EV_READ 0x1u  /* EPOLLIN */
#define DUET_EV_WRITE 0x2u /* EPOLLOUT */
#define DUET_EV_HUP 0x4u   /* EPOLLHUP or EPOLLRDHUP: reported, never requested */
#define DUET_EV_ERR 0x8u   /* EPOLLERR: reported, never requested */

struct duet_loop;
struct duet_timer;
struct duet_defer;

typedef void duet_io_cb(struct duet_loop *loop, int fd, uint32_t events, void *arg);
typedef void duet_timer_cb(struct duet_loop *loop, struct duet_timer *t, void *arg);
typedef void duet_loop_cb(struct duet_loop *loop, void *arg);

/* Timers live in caller storage; the loop only links them into its heap. */
struct duet_timer {
    int64_t deadline; /* monotonic ms (duet_clock_mono_ms) */
    size_t slot;      /* heap position + 1; 0 when not armed */
    duet_timer_cb *cb;
    void *arg;
};

/* Deferred callbacks also live in caller storage (embed one per object). */
struct duet_defer {
    struct duet_defer *next;
    duet_loop_cb *cb;
    void *arg;
    bool queued;
};

int duet_loop_new(struct duet_loop **out) DUET_MUST_CHECK;
/* Frees the loop; registered fds are not closed (their owners close them). */
void duet_loop_free(struct duet_loop *loop);

/* events: DUET_EV_READ | DUET_EV_WRITE, or 0 to keep the fd registered but quiet. */
int duet_loop_add_fd(struct duet_loop *loop, int fd, uint32_t events, duet_io_cb *cb,
                     void *arg) DUET_MUST_CHECK;
int duet_loop_mod_fd(struct duet_loop *loop, int fd, uint32_t events) DUET_MUST_CHECK;
/* Safe to call from any callback, including the fd's own. Close the fd after. */
void duet_loop_del_fd(struct duet_loop *loop, int fd);
/*
 * duet_loop_del_fd and close(2) in one, without the EPOLL_CTL_DEL: closing
 * the last descriptor of a file takes it out of every epoll set (epoll(7),
 * Q6). Only for an fd that was never duplicated (dup, fork, SCM_RIGHTS):
 * another descriptor would keep the registration alive, and its events
 * coming. Safe from any callback, as duet_loop_del_fd; fd may be
 * unregistered (it is closed all the same).
 */
void duet_loop_close_fd(struct duet_loop *loop, int fd);

void duet_timer_init(struct duet_timer *t, duet_timer_cb *cb, void *arg);
/* (Re)arm to fire once after delay_ms (clamped at 0). */
void duet_timer_start(struct duet_loop *loop, struct duet_timer *t, int64_t delay_ms);
void duet_timer_stop(struct duet_loop *loop, struct duet_timer *t);
static inline bool duet_timer_active(const struct duet_timer *t)
{
    return t->slot != 0;
}

void duet_defer_init(struct duet_defer *d, duet_loop_cb *cb, void *arg);
/* Queue for step 5 of this iteration; queuing twice is a no-op. */
void duet_loop_defer(struct duet_loop *loop, struct duet_defer *d);
void duet_loop_cancel_defer(struct duet_loop *loop, struct duet_defer *d);

/*
 * Deliver `signo` through a signalfd: blocks it for the calling thread (call
 * before starting other threads so they inherit the mask) and calls cb from
 * step 3. One callback per signal.
 */
int duet_loop_add_signal(struct duet_loop *loop, int signo, duet_loop_cb *cb,
                         void *arg) DUET_MUST_CHECK;

void duet_loop_set_before_sleep(struct duet_loop *loop, duet_loop_cb *cb, void *arg);

/* Run iterations until duet_loop_stop(). Returns 0, or a negative errno if epoll fails. */
int duet_loop_run(struct duet_loop *loop) DUET_MUST_CHECK;
/* One iteration, waiting at most max_wait_ms (-1: no cap). For tests and drains. */
int duet_loop_run_once(struct duet_loop *loop, int max_wait_ms) DUET_MUST_CHECK;
/* Ask duet_loop_run to return after the current iteration. */
void duet_loop_stop(struct duet_loop *loop);
/*
 * duet_clock_mono_ms() as read when this iteration's epoll_wait returned
 * (refreshed again before the timers run): callbacks that only stamp
 * activity use it instead of reading the clock once per event.
 */
int64_t duet_loop_now_ms(const struct duet_loop *loop);

#endif
