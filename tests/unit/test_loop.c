/* SPDX-License-Identifier: Apache-2.0 */
/* The event loop contract of duet/loop.h, with real sockets, timers and signals. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "duet/clock.h"
#include "duet/err.h"
#include "duet/loop.h"

struct rec {
    int log[32];
    int n;
};

static void note(struct rec *r, int v)
{
    if (r->n < (int)DUET_ARRAY_SIZE(r->log))
        r->log[r->n++] = v;
}

static struct duet_loop *new_loop(void)
{
    struct duet_loop *loop = NULL;

    assert_int_equal(duet_loop_new(&loop), 0);
    return loop;
}

/* ---- fds ---- */

struct io_ctx {
    int calls;
    uint32_t last;
    struct rec *order;
    int id;
    int victim; /* fd to delete from the callback, or -1 */
    int closer; /* fd to close (duet_loop_close_fd) from the callback, or 0 for none */
};

static void on_io(struct duet_loop *loop, int fd, uint32_t ev, void *arg)
{
    struct io_ctx *c = arg;
    char buf[64];

    c->calls++;
    c->last = ev;
    if (c->order)
        note(c->order, c->id);
    if (ev & DUET_EV_READ)
        (void)!read(fd, buf, sizeof(buf));
    if (c->closer > 0) {
        duet_loop_close_fd(loop, c->closer);
        c->closer = 0;
    }
    if (c->victim >= 0) {
        duet_loop_del_fd(loop, c->victim);
        c->victim = -1;
    }
}

static void loop_add_fd__reports_readable_socketpair(void **state)
{
    struct duet_loop *loop = new_loop();
    int sv[2];
    struct io_ctx c = {.victim = -1};

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(duet_loop_add_fd(loop, sv[0], DUET_EV_READ, on_io, &c), 0);
    assert_int_equal(duet_loop_add_fd(loop, sv[0], DUET_EV_READ, on_io, &c), DUET_EEXIST);
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(duet_loop_run_once(loop, 1000), 0);
    assert_int_equal(c.calls, 1);
    assert_true(c.last & DUET_EV_READ);

    /* Write interest on an empty socket fires at once; 0 makes it quiet. */
    assert_int_equal(duet_loop_mod_fd(loop, sv[0], DUET_EV_WRITE), 0);
    assert_int_equal(duet_loop_run_once(loop, 1000), 0);
    assert_int_equal(c.calls, 2);
    assert_true(c.last & DUET_EV_WRITE);
    assert_int_equal(duet_loop_mod_fd(loop, sv[0], 0), 0);
    close(sv[1]); /* a hung-up quiet fd must not be reported */
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    assert_int_equal(c.calls, 2);
    assert_int_equal(duet_loop_mod_fd(loop, sv[0], DUET_EV_READ), 0);
    assert_int_equal(duet_loop_run_once(loop, 1000), 0);
    assert_int_equal(c.calls, 3);
    assert_true(c.last & DUET_EV_HUP);

    duet_loop_del_fd(loop, sv[0]);
    assert_int_equal(duet_loop_mod_fd(loop, sv[0], DUET_EV_READ), DUET_ENOENT);
    close(sv[0]);
    duet_loop_free(loop);
}

/* Two socketpairs, a[0] and b[0] registered for reading with ca and cb,
 * both made readable: one batch will report both. */
static void two_readable(struct duet_loop *loop, int a[2], int b[2], struct io_ctx *ca,
                         struct io_ctx *cb)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    assert_int_equal(duet_loop_add_fd(loop, a[0], DUET_EV_READ, on_io, ca), 0);
    assert_int_equal(duet_loop_add_fd(loop, b[0], DUET_EV_READ, on_io, cb), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
}

static void loop_del_fd__no_stale_event_in_same_batch(void **state)
{
    struct duet_loop *loop = new_loop();
    int a[2], b[2];
    struct rec order = {0};
    struct io_ctx ca = {.order = &order, .id = 1, .victim = -1};
    struct io_ctx cb = {.order = &order, .id = 2, .victim = -1};

    (void)state;
    two_readable(loop, a, b, &ca, &cb);
    /* Both readable: whichever runs first deletes the other. */
    ca.victim = b[0];
    cb.victim = a[0];
    assert_int_equal(duet_loop_run_once(loop, 1000), 0);
    assert_int_equal(order.n, 1);
    assert_int_equal(ca.calls + cb.calls, 1);

    /* Deleted and re-added under the same number: the new registration works. */
    {
        int gone = ca.calls ? b[0] : a[0];
        struct io_ctx cn = {.victim = -1};

        assert_int_equal(duet_loop_add_fd(loop, gone, DUET_EV_READ, on_io, &cn), 0);
        assert_int_equal(write(gone == a[0] ? a[1] : b[1], "y", 1), 1);
        assert_int_equal(duet_loop_run_once(loop, 1000), 0);
        assert_int_equal(cn.calls, 1);
        duet_loop_del_fd(loop, gone);
    }
    duet_loop_del_fd(loop, a[0]);
    duet_loop_del_fd(loop, b[0]);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    duet_loop_free(loop);
}

/* Closed without EPOLL_CTL_DEL: no stale event in the batch, none after
 * (the kernel dropped the registration with the file), and the number
 * works again for a new socket. */
static void loop_close_fd__no_stale_event_and_number_reused(void **state)
{
    struct duet_loop *loop = new_loop();
    int a[2], b[2], n[2], gone, left;
    struct rec order = {0};
    struct io_ctx ca = {.order = &order, .id = 1, .victim = -1};
    struct io_ctx cb = {.order = &order, .id = 2, .victim = -1};
    struct io_ctx cn = {.victim = -1};

    (void)state;
    two_readable(loop, a, b, &ca, &cb);
    ca.closer = b[0];
    cb.closer = a[0];
    assert_int_equal(duet_loop_run_once(loop, 1000), 0);
    assert_int_equal(order.n, 1);
    gone = ca.calls ? b[0] : a[0];
    left = ca.calls ? a[0] : b[0];
    assert_int_equal(duet_loop_mod_fd(loop, gone, DUET_EV_READ), DUET_ENOENT);
    /* It still had a byte to read: level-triggered, it would be reported
     * again if the kernel had kept the registration. */
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    assert_int_equal(order.n, 1);

    /* The lowest free number comes back for the next socket. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, n), 0);
    assert_int_equal(n[0], gone);
    assert_int_equal(duet_loop_add_fd(loop, n[0], DUET_EV_READ, on_io, &cn), 0);
    assert_int_equal(write(n[1], "z", 1), 1);
    assert_int_equal(duet_loop_run_once(loop, 1000), 0);
    assert_int_equal(cn.calls, 1);
    duet_loop_close_fd(loop, n[0]);
    duet_loop_close_fd(loop, left);
    duet_loop_close_fd(loop, -1); /* no-op */
    close(n[1]);
    close(a[1]);
    close(b[1]);
    duet_loop_free(loop);
}

/* ---- timers ---- */

struct tctx {
    struct rec *order;
    int id;
    struct duet_timer *other; /* stopped from this callback */
    int rearm;                /* re-arm self this many times */
};

static void on_timer(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct tctx *c = arg;

    note(c->order, c->id);
    if (c->other)
        duet_timer_stop(loop, c->other);
    if (c->rearm > 0) {
        c->rearm--;
        duet_timer_start(loop, t, 0);
    }
}

static void run_until_quiet(struct duet_loop *loop, int max_iter)
{
    for (int i = 0; i < max_iter; i++)
        assert_int_equal(duet_loop_run_once(loop, 0), 0);
}

static void timer_start__fires_earliest_first(void **state)
{
    struct duet_loop *loop = new_loop();
    struct rec order = {0};
    struct tctx c[5];
    struct duet_timer t[5];
    const int64_t delay[5] = {40, 10, 30, 0, 20};

    (void)state;
    duet_clock_fake(1700000000000);
    for (int i = 0; i < 5; i++) {
        c[i] = (struct tctx){.order = &order, .id = (int)delay[i]};
        duet_timer_init(&t[i], on_timer, &c[i]);
        duet_timer_start(loop, &t[i], delay[i]);
        assert_true(duet_timer_active(&t[i]));
    }
    run_until_quiet(loop, 2);
    assert_int_equal(order.n, 1);
    duet_clock_advance(100);
    run_until_quiet(loop, 2);
    assert_int_equal(order.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(order.log[i], i * 10);
        assert_false(duet_timer_active(&t[i]));
    }
    duet_clock_unfake();
    duet_loop_free(loop);
}

static void timer_stop__from_callback_and_rearm(void **state)
{
    struct duet_loop *loop = new_loop();
    struct rec order = {0};
    struct duet_timer ta, tb, tc;
    struct tctx ca = {.order = &order, .id = 1, .other = &tb, .rearm = 2};
    struct tctx cb = {.order = &order, .id = 2};
    struct tctx cc = {.order = &order, .id = 3};

    (void)state;
    duet_clock_fake(1700000000000);
    duet_timer_init(&ta, on_timer, &ca);
    duet_timer_init(&tb, on_timer, &cb);
    duet_timer_init(&tc, on_timer, &cc);
    duet_timer_start(loop, &ta, 5);
    duet_timer_start(loop, &tb, 7);
    duet_timer_start(loop, &tc, 1000);
    duet_timer_start(loop, &tc, 6); /* re-arming moves it */
    duet_clock_advance(10);
    /* ta fires, stops tb (due in the same step), re-arms itself with 0 delay:
     * it must not fire again within this step. */
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    assert_int_equal(order.n, 2);
    assert_int_equal(order.log[0], 1);
    assert_int_equal(order.log[1], 3);
    assert_false(duet_timer_active(&tb));
    assert_true(duet_timer_active(&ta));
    duet_clock_advance(1);
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    duet_clock_advance(1);
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    duet_clock_advance(1);
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    assert_int_equal(order.n, 4); /* 1 + two re-arms */
    assert_false(duet_timer_active(&ta));
    duet_timer_stop(loop, &ta); /* stopping an idle timer is a no-op */
    duet_clock_unfake();
    duet_loop_free(loop);
}

static void timer__heap_keeps_order_under_churn(void **state)
{
    struct duet_loop *loop = new_loop();
    struct rec order = {0};
    struct duet_timer t[20];
    struct tctx c[20];

    (void)state;
    duet_clock_fake(1700000000000);
    for (int i = 0; i < 20; i++) {
        c[i] = (struct tctx){.order = &order, .id = i};
        duet_timer_init(&t[i], on_timer, &c[i]);
        duet_timer_start(loop, &t[i], (i * 7) % 20 + 1);
    }
    for (int i = 0; i < 20; i += 2)
        duet_timer_stop(loop, &t[i]);
    duet_clock_advance(100);
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    assert_int_equal(order.n, 10);
    for (int i = 1; i < order.n; i++)
        assert_true((order.log[i - 1] * 7) % 20 < (order.log[i] * 7) % 20);
    duet_clock_unfake();
    duet_loop_free(loop);
}

/* ---- deferred, before-sleep, stop ---- */

struct dctx {
    struct rec *order;
    int id;
    struct duet_defer *cancel;
    struct duet_defer *queue;
};

static void on_defer(struct duet_loop *loop, void *arg)
{
    struct dctx *c = arg;

    note(c->order, c->id);
    if (c->cancel)
        duet_loop_cancel_defer(loop, c->cancel);
    if (c->queue)
        duet_loop_defer(loop, c->queue);
}

static void loop_defer__runs_in_queue_order(void **state)
{
    struct duet_loop *loop = new_loop();
    struct rec order = {0};
    struct duet_defer d[4];
    struct dctx c[4];

    (void)state;
    for (int i = 0; i < 4; i++) {
        c[i] = (struct dctx){.order = &order, .id = i};
        duet_defer_init(&d[i], on_defer, &c[i]);
    }
    c[0].cancel = &d[2];
    c[1].queue = &d[3];
    duet_loop_defer(loop, &d[1]);
    duet_loop_defer(loop, &d[0]);
    duet_loop_defer(loop, &d[1]); /* no-op */
    duet_loop_defer(loop, &d[2]);
    assert_int_equal(duet_loop_run_once(loop, -1), 0); /* queued work: no sleep */
    assert_int_equal(order.n, 2);
    assert_int_equal(order.log[0], 1);
    assert_int_equal(order.log[1], 0);
    assert_false(d[2].queued);
    assert_true(d[3].queued); /* queued from step 5: next iteration */
    assert_int_equal(duet_loop_run_once(loop, -1), 0);
    assert_int_equal(order.n, 3);
    assert_int_equal(order.log[2], 3);
    duet_loop_free(loop);
}

struct bs_ctx {
    int calls;
    struct duet_defer *d;
    int stop_after;
};

static void on_before_sleep(struct duet_loop *loop, void *arg)
{
    struct bs_ctx *c = arg;

    c->calls++;
    duet_loop_defer(loop, c->d);
    if (c->calls == c->stop_after)
        duet_loop_stop(loop);
}

static void loop_run__before_sleep_then_stop(void **state)
{
    struct duet_loop *loop = new_loop();
    struct rec order = {0};
    struct dctx dc = {.order = &order, .id = 7};
    struct duet_defer d;
    struct bs_ctx bs = {.d = &d, .stop_after = 3};

    (void)state;
    duet_defer_init(&d, on_defer, &dc);
    duet_loop_set_before_sleep(loop, on_before_sleep, &bs);
    /* The hook queues work each time, so epoll never sleeps; stop ends the
     * run after the third iteration completes. */
    assert_int_equal(duet_loop_run(loop), 0);
    assert_int_equal(bs.calls, 3);
    assert_int_equal(order.n, 3);
    duet_loop_free(loop);
}

/* ---- signals ---- */

static void on_sig(struct duet_loop *loop, void *arg)
{
    (*(int *)arg)++;
    duet_loop_stop(loop);
}

static void loop_add_signal__delivers_through_loop(void **state)
{
    struct duet_loop *loop = new_loop();
    int usr1 = 0, usr2 = 0;

    (void)state;
    assert_int_equal(duet_loop_add_signal(loop, SIGUSR1, on_sig, &usr1), 0);
    assert_int_equal(duet_loop_add_signal(loop, SIGUSR2, on_sig, &usr2), 0);
    assert_int_equal(duet_loop_add_signal(loop, 0, on_sig, &usr2), DUET_EINVAL);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(duet_loop_run(loop), 0);
    assert_int_equal(usr1, 1);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(duet_loop_run_once(loop, 1000), 0);
    assert_int_equal(usr2, 1);
    duet_loop_free(loop);
}

static void loop_run_once__timeout_bounded_by_timer(void **state)
{
    struct duet_loop *loop = new_loop();
    struct rec order = {0};
    struct tctx c = {.order = &order, .id = 9};
    struct duet_timer t;
    int64_t start = duet_clock_mono_ms();

    (void)state;
    duet_timer_init(&t, on_timer, &c);
    duet_timer_start(loop, &t, 20);
    for (int i = 0; i < 100 && order.n == 0; i++)
        assert_int_equal(duet_loop_run_once(loop, -1), 0);
    assert_int_equal(order.n, 1);
    assert_true(duet_clock_mono_ms() - start >= 20);
    assert_true(duet_clock_mono_ms() - start < 2000);
    duet_loop_free(loop);
}

static void loop_now_ms__cached_per_iteration(void **state)
{
    struct duet_loop *loop = new_loop();
    int64_t t0;

    (void)state;
    duet_clock_fake(1700000000000);
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    t0 = duet_loop_now_ms(loop);
    assert_int_equal(t0, duet_clock_mono_ms());
    duet_clock_advance(5);
    assert_int_equal(duet_loop_now_ms(loop), t0); /* no new iteration yet */
    assert_int_equal(duet_loop_run_once(loop, 0), 0);
    assert_int_equal(duet_loop_now_ms(loop), t0 + 5);
    duet_clock_unfake();
    duet_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loop_add_fd__reports_readable_socketpair),
        cmocka_unit_test(loop_del_fd__no_stale_event_in_same_batch),
        cmocka_unit_test(loop_close_fd__no_stale_event_and_number_reused),
        cmocka_unit_test(timer_start__fires_earliest_first),
        cmocka_unit_test(timer_stop__from_callback_and_rearm),
        cmocka_unit_test(timer__heap_keeps_order_under_churn),
        cmocka_unit_test(loop_defer__runs_in_queue_order),
        cmocka_unit_test(loop_run__before_sleep_then_stop),
        cmocka_unit_test(loop_add_signal__delivers_through_loop),
        cmocka_unit_test(loop_run_once__timeout_bounded_by_timer),
        cmocka_unit_test(loop_now_ms__cached_per_iteration),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
