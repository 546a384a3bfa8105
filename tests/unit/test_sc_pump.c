/* SPDX-License-Identifier: Apache-2.0 */
/* The pump between two raw xprts over socketpairs: data, EOF, back-pressure, buffers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "duet/err.h"
#include "duet/loop.h"
#include "pump.h"

/* client <-> [down | pump | up] <-> server */
struct rig {
    int client, down_fd, up_fd, server;
    struct sc_side down, up;
    struct sc_pipe d2u, u2d;
    struct sc_bufpool pool;
};

static void rig_init(struct rig *r, int sndbuf)
{
    int a[2], b[2];

    memset(r, 0, sizeof(*r));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    r->client = a[0];
    r->down_fd = a[1];
    r->up_fd = b[0];
    r->server = b[1];
    if (sndbuf) {
        setsockopt(r->up_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        setsockopt(r->server, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
    }
    r->down = (struct sc_side){.fd = r->down_fd, .ops = &sc_xprt_raw};
    r->up = (struct sc_side){.fd = r->up_fd, .ops = &sc_xprt_raw};
    r->pool.max_free = 2;
}

static void rig_deinit(struct rig *r)
{
    sc_pipe_release(&r->d2u, &r->pool);
    sc_pipe_release(&r->u2d, &r->pool);
    assert_int_equal(r->pool.in_use, 0);
    sc_bufpool_deinit(&r->pool);
    close(r->client);
    close(r->down_fd);
    close(r->up_fd);
    close(r->server);
}

static void pump__moves_bytes_and_releases_buffer(void **state)
{
    struct rig r;
    char buf[64] = {0};

    (void)state;
    rig_init(&r, 0);
    assert_int_equal(write(r.client, "hello", 5), 5);
    assert_int_equal(sc_pump(&r.d2u, &r.down, &r.up, &r.pool, 4), 5);
    assert_int_equal(read(r.server, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_null(r.d2u.buf); /* drained: an idle direction holds no buffer */
    assert_int_equal(r.pool.in_use, 0);
    assert_int_equal(r.d2u.bytes, 5);
    /* Nothing to read: no bytes, no buffer kept, both directions want reads. */
    assert_int_equal(sc_pump(&r.u2d, &r.up, &r.down, &r.pool, 4), 0);
    assert_null(r.u2d.buf);
    assert_int_equal(sc_side_interest(&r.down, &r.d2u, &r.u2d), DUET_EV_READ);
    rig_deinit(&r);
}

static void pump__passes_half_close_on(void **state)
{
    struct rig r;
    char buf[64];

    (void)state;
    rig_init(&r, 0);
    assert_int_equal(write(r.client, "bye", 3), 3);
    assert_int_equal(shutdown(r.client, SHUT_WR), 0);
    assert_int_equal(sc_pump(&r.d2u, &r.down, &r.up, &r.pool, 4), 3);
    /* The short read skipped the read that would see EOF; epoll reports it. */
    assert_int_equal(sc_pump(&r.d2u, &r.down, &r.up, &r.pool, 4), 0);
    assert_true(r.down.eof);
    assert_true(r.up.shut);
    assert_true(sc_pipe_done(&r.d2u, &r.down, &r.up));
    assert_int_equal(read(r.server, buf, sizeof(buf)), 3);
    assert_int_equal(read(r.server, buf, sizeof(buf)), 0); /* the server sees EOF */
    /* The other direction still works after the half-close. */
    assert_int_equal(write(r.server, "late", 4), 4);
    assert_int_equal(sc_pump(&r.u2d, &r.up, &r.down, &r.pool, 4), 4);
    assert_int_equal(read(r.client, buf, sizeof(buf)), 4);
    assert_false(sc_pipe_done(&r.u2d, &r.up, &r.down));
    assert_int_equal(sc_side_interest(&r.down, &r.d2u, &r.u2d), 0); /* no reads after EOF */
    rig_deinit(&r);
}

static void pump__back_pressure_bounds_memory(void **state)
{
    struct rig r;
    static char chunk[65536];
    long total_in = 0, moved = 0;
    int rounds = 0;

    (void)state;
    rig_init(&r, 4096);
    memset(chunk, 'x', sizeof(chunk));
    /* The client writes far more than the server will take; the server never reads. */
    for (int i = 0; i < 64; i++) {
        ssize_t n = write(r.client, chunk, sizeof(chunk));

        if (n <= 0)
            break;
        total_in += n;
    }
    for (rounds = 0; rounds < 200; rounds++) {
        long n = sc_pump(&r.d2u, &r.down, &r.up, &r.pool, 4);

        assert_true(n >= 0);
        if (n == 0)
            break;
        moved += n;
    }
    assert_true(rounds < 200);
    assert_true(moved < total_in);   /* stuck behind the slow server */
    assert_true(r.pool.in_use <= 1); /* at most one buffer for the direction */
    assert_non_null(r.d2u.buf);
    /* While the buffer holds bytes: no reads from down, writes wanted on up. */
    assert_int_equal(sc_side_interest(&r.down, &r.d2u, &r.u2d), 0);
    assert_int_equal(sc_side_interest(&r.up, &r.u2d, &r.d2u), DUET_EV_READ | DUET_EV_WRITE);
    /* The server drains: everything arrives, in order, byte count exact. */
    {
        static char sink[65536];
        long got = 0;

        for (int i = 0; i < 100000 && got < total_in; i++) {
            ssize_t n = read(r.server, sink, sizeof(sink));

            if (n > 0)
                got += n;
            assert_true(sc_pump(&r.d2u, &r.down, &r.up, &r.pool, 4) >= 0);
        }
        assert_int_equal(got, total_in);
    }
    assert_null(r.d2u.buf);
    rig_deinit(&r);
}

static void pump__peer_reset_is_fatal(void **state)
{
    struct rig r;

    (void)state;
    rig_init(&r, 0);
    close(r.server);
    r.server = socket(AF_UNIX, SOCK_STREAM, 0); /* keep teardown simple */
    assert_int_equal(write(r.client, "x", 1), 1);
    assert_int_equal(sc_pump(&r.d2u, &r.down, &r.up, &r.pool, 4), -EPIPE);
    rig_deinit(&r);
}

static void bufpool__caches_up_to_max(void **state)
{
    struct sc_bufpool p = {.max_free = 1};
    struct sc_buf *a, *b;

    (void)state;
    a = sc_buf_get(&p);
    b = sc_buf_get(&p);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(p.in_use, 2);
    sc_buf_put(&p, a);
    sc_buf_put(&p, b); /* over max_free: freed */
    assert_int_equal(p.nfree, 1);
    assert_ptr_equal(sc_buf_get(&p), a);
    sc_buf_put(&p, a);
    sc_bufpool_deinit(&p);
    assert_int_equal(p.in_use, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pump__moves_bytes_and_releases_buffer),
        cmocka_unit_test(pump__passes_half_close_on),
        cmocka_unit_test(pump__back_pressure_bounds_memory),
        cmocka_unit_test(pump__peer_reset_is_fatal),
        cmocka_unit_test(bufpool__caches_up_to_max),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
