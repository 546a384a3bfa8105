/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The resolver pool against /etc/hosts ("localhost"): answers come back to
 * the box's worker, the second request for a name is served from the
 * cache, a cancelled request never calls back, and past queue_max waiting
 * requests a submit fails at once with SC_RESOLVE_QUEUE_FULL.
 */
#include <netdb.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "resolve.h"

struct got {
    int calls;
    struct sc_resolve_req *r;
};

static void on_done(void *arg, struct sc_resolve_req *r)
{
    struct got *g = arg;

    g->calls++;
    g->r = r;
}

/* Drain the box until `want` callbacks came (2 s at most). */
static void wait_for(struct sc_resolve_box *b, int fd, struct got *g, int want)
{
    for (int i = 0; i < 200 && g->calls < want; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t v;

        (void)poll(&p, 1, 10);
        (void)!read(fd, &v, sizeof(v));
        sc_resolve_drain(b);
    }
}

static void resolve__cache_cancel_and_queue_bound(void **state)
{
    const struct sc_resolve_opts o = {.threads = 2, .queue_max = 1, .cache_ttl_ms = 60000};
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct sc_resolve_box box;
    struct sc_resolve_stats st;
    struct got g = {0}, g2 = {0}, g3 = {0};
    struct sc_resolve_req *r, *r2;
    int err, why = 0;

    (void)state;
    sc_resolve_box_init(&box, fd);
    assert_int_equal(sc_resolve_init(&o), 0);
    assert_non_null(sc_resolve_submit(&box, "localhost", 80, on_done, &g, &why));
    wait_for(&box, fd, &g, 1);
    assert_int_equal(g.calls, 1);
    assert_non_null(sc_resolve_result(g.r, &err));
    sc_resolve_free(g.r);
    /* The same name again: from the cache, still through the box. */
    r = sc_resolve_submit(&box, "localhost", 80, on_done, &g, &why);
    assert_non_null(r);
    wait_for(&box, fd, &g, 2);
    assert_int_equal(g.calls, 2);
    sc_resolve_free(g.r);
    sc_resolve_get_stats(&st);
    assert_int_equal(st.cache_hits, 1);
    /* A name that is not cached: one request may wait, the next is refused. */
    r = sc_resolve_submit(&box, "localhost.", 81, on_done, &g2, &why);
    assert_non_null(r);
    r2 = sc_resolve_submit(&box, "localhost.", 82, on_done, &g3, &why);
    if (!r2) {
        assert_int_equal(why, SC_RESOLVE_QUEUE_FULL);
    } else { /* the first lookup was already done: the bound was not reached */
        sc_resolve_cancel(r2);
    }
    /* Cancelled: no callback, whenever the answer arrives. */
    sc_resolve_cancel(r);
    wait_for(&box, fd, &g2, 1);
    assert_int_equal(g2.calls, 0);
    assert_int_equal(g3.calls, 0);
    sc_resolve_deinit();
    sc_resolve_drain(&box);
    sc_resolve_box_deinit(&box);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resolve__cache_cancel_and_queue_bound),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
