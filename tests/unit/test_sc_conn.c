/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection state machine (conn.c) on a real worker loop, driven step
 * by step from this thread: the client is a socketpair whose far end speaks
 * TLS through sc_xprt_tls, the backend a plaintext socket on 127.0.0.1.
 * Inbound: HANDSHAKE -> CONNECTING -> OPEN -> HALF_CLOSED -> freed, a
 * client that speaks while the backend connects, the handshake and idle
 * deadlines on the fake clock, a reload between two connections
 * (generations), and a refusal while no set is loaded. The
 * alloc-fail case (label alloc-fail) fails every allocation of one whole
 * connection in turn and checks that the worker is left clean each time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/err.h"
#include "duet/loop.h"
#include "cfg.h"
#include "conn.h"
#include "pump.h"
#include "tl_pki.h"
#include "tls_set.h"
#include "worker.h"
#include "xprt.h"
#include "xprt_tls.h"

#define DAY 86400
#define HANDSHAKE_MS 2000
#define IDLE_MS 30000

static struct tl_ca ca;

struct fx {
    struct sc_cfg cfg;
    int backend; /* listening, 127.0.0.1 */
    int done_fd; /* the worker's "finished" eventfd (never written: no thread) */
    unsigned finished;
    struct sc_worker *w;
    struct sc_tls_set *client_set;
    struct sc_listen_cfg client_lc;
    struct sc_bufpool pool;
};

/* One proxied connection as the test sees it. */
struct peer {
    int fd[2]; /* [0] given to the sidecar, [1] the test's client end */
    struct sc_side cli;
    int be; /* the backend's accepted socket, -1 until connected */
    struct sc_xprt_hs hs;
    int hs_rc;
};

static struct sc_tls_set *make_set(enum duet_profile prof, int64_t validity, uint64_t gen)
{
    struct tl_pem p;
    struct duet_errbuf eb;
    struct sc_tls_set *s;

    duet_errbuf_clear(&eb);
    tl_pem_issue(&ca, prof, prof == DUET_PROFILE_SERVER ? "server" : "client", duet_clock_now(),
                 validity, &p);
    struct sc_tls_files f = {p.cert, p.cert_len, p.key, p.key_len, p.ca, p.ca_len, NULL, 0, 0};
    s = sc_tls_set_build(&f, "v", gen, prof == DUET_PROFILE_SERVER ? SC_USE_SERVER : SC_USE_CLIENT,
                         &eb);
    tl_pem_free(&p);
    if (!s)
        fail_msg("set: %s", eb.msg);
    return s;
}

static int listen_local(unsigned *port)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(in);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    if (port)
        *port = ntohs(in.sin_port);
    return fd;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct sc_listen_cfg *l = &f->cfg.listeners[0];
    struct sockaddr_in *a = (struct sockaddr_in *)&l->addr;
    struct duet_errbuf eb;
    int lfd[1];

    duet_errbuf_clear(&eb);
    f->backend = listen_local(&l->port);
    l->dir = SC_INBOUND;
    snprintf(l->listen, sizeof(l->listen), "127.0.0.1:0");
    snprintf(l->host, sizeof(l->host), "127.0.0.1");
    l->literal = true;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)l->port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l->addrlen = sizeof(*a);
    f->cfg.n_listeners = 1;
    f->cfg.handshake_ms = HANDSHAKE_MS;
    f->cfg.idle_ms = IDLE_MS;
    f->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const struct sc_worker_env env = {&f->cfg, f->done_fd, &f->finished, 8, 2};
    lfd[0] = listen_local(NULL); /* nobody connects to it: the test hands sockets over */
    assert_int_equal(sc_worker_new(&env, 0, lfd, &f->w, &eb), 0);
    sc_tls_publish(make_set(DUET_PROFILE_SERVER, DAY, 1));
    f->client_set = make_set(DUET_PROFILE_CLIENT, DAY, 1);
    f->client_lc.dir = SC_OUTBOUND;
    snprintf(f->client_lc.sni, sizeof(f->client_lc.sni), "localhost");
    f->pool.max_free = 2;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    sc_worker_free(f->w);
    sc_tls_shutdown();
    sc_tls_set_unref(f->client_set);
    sc_bufpool_deinit(&f->pool);
    close(f->backend);
    close(f->done_fd);
    duet_clock_unfake();
    free(f);
    return 0;
}

static void turn(struct fx *f)
{
    assert_true(duet_loop_run_once(f->w->loop, 0) >= 0);
}

/* The test's client end: a socketpair whose far end speaks TLS. */
static void peer_init(struct fx *f, struct peer *p)
{
    const struct sc_xprt_args args = {&f->pool, f->client_set, &f->client_lc, NULL, false};

    memset(p, 0, sizeof(*p));
    p->be = -1;
    p->hs_rc = DUET_EAGAIN;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
    p->cli = (struct sc_side){.fd = p->fd[1], .ops = &sc_xprt_tls};
    assert_int_equal(sc_xprt_tls.open(&p->cli, &args), 0);
}

/* Hand the near end to the sidecar as if its listener had accepted it. */
static void peer_hand_over(struct fx *f, struct peer *p)
{
    struct sockaddr_in from = {
        .sin_family = AF_INET, .sin_port = htons(40000), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    sc_conn_start(&f->w->conns, &f->w->listeners[0], p->fd[0], (struct sockaddr *)&from);
}

static void peer_start(struct fx *f, struct peer *p)
{
    peer_init(f, p);
    peer_hand_over(f, p);
}

static void peer_free(struct peer *p)
{
    if (p->cli.ctx)
        p->cli.ops->close(&p->cli, false);
    close(p->fd[1]);
    if (p->be >= 0)
        close(p->be);
}

/* Step the client's handshake and the worker until the backend has its
 * connection; false when either side gave up. */
static bool peer_open(struct fx *f, struct peer *p)
{
    for (int i = 0; i < 200 && (p->hs_rc == DUET_EAGAIN || p->be < 0); i++) {
        if (p->hs_rc == DUET_EAGAIN)
            p->hs_rc = p->cli.ops->handshake(&p->cli, &p->hs);
        if (p->hs_rc < 0 && p->hs_rc != DUET_EAGAIN)
            return false;
        turn(f);
        if (p->be < 0)
            p->be = accept4(f->backend, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    return p->hs_rc == 0 && p->be >= 0;
}

/* Client -> backend: n bytes through the sidecar; false if they never arrive. */
static bool to_backend(struct fx *f, struct peer *p, const char *msg)
{
    size_t n = strlen(msg), got = 0;
    char buf[64];

    if (p->cli.ops->send(&p->cli, msg, n) != (int)n)
        return false;
    for (int i = 0; i < 100 && got < n; i++) {
        ssize_t r;

        turn(f);
        r = read(p->be, buf + got, sizeof(buf) - got);
        if (r == 0)
            return false;
        if (r > 0)
            got += (size_t)r;
    }
    return got == n && memcmp(buf, msg, n) == 0;
}

/* Backend -> client; false if the bytes never arrive. */
static bool to_client(struct fx *f, struct peer *p, const char *msg)
{
    size_t n = strlen(msg), got = 0;
    char buf[64];

    if (write(p->be, msg, n) != (ssize_t)n)
        return false;
    for (int i = 0; i < 100 && got < n; i++) {
        int r;

        turn(f);
        r = p->cli.ops->recv(&p->cli, buf + got, sizeof(buf) - got);
        if (r > 0)
            got += (size_t)r;
        else if (r != DUET_EAGAIN)
            return false;
    }
    return got == n && memcmp(buf, msg, n) == 0;
}

/* What the client reads next, turning the loop while there is nothing. */
static int client_next(struct fx *f, struct peer *p)
{
    char buf[64];
    int r = DUET_EAGAIN;

    for (int i = 0; i < 100 && r == DUET_EAGAIN; i++) {
        turn(f);
        r = p->cli.ops->recv(&p->cli, buf, sizeof(buf));
    }
    return r;
}

static void settle(struct fx *f)
{
    for (int i = 0; i < 20 && f->w->conns.n > 0; i++)
        turn(f);
}

static void conn__inbound_handshake_connect_open_half_close(void **state)
{
    struct fx *f = *state;
    struct sc_lstats *st = &f->w->listeners[0].stats;
    struct peer p;
    char buf[8];
    ssize_t r = -1;

    peer_start(f, &p);
    assert_int_equal(f->w->conns.n, 1);
    assert_true(peer_open(f, &p));
    assert_int_equal(st->hs_ok, 1);
    assert_true(to_backend(f, &p, "ping"));
    assert_true(to_client(f, &p, "pong"));
    /* The backend ends its side: the client sees close_notify, and can still talk. */
    assert_int_equal(shutdown(p.be, SHUT_WR), 0);
    assert_int_equal(client_next(f, &p), DUET_EOF);
    assert_true(to_backend(f, &p, "more"));
    assert_int_equal(f->w->conns.n, 1);
    /* The client ends its side too: the backend reads EOF and the connection goes. */
    assert_int_equal(p.cli.ops->shutdown(&p.cli), 0);
    for (int i = 0; i < 100 && r != 0; i++) {
        turn(f);
        r = read(p.be, buf, sizeof(buf));
    }
    assert_int_equal(r, 0);
    settle(f);
    assert_int_equal(f->w->conns.n, 0);
    assert_int_equal(st->open, 0);
    assert_int_equal(f->w->pool.in_use, 0);
    peer_free(&p);
}

/*
 * The backend's accept queue is full (listen backlog 0, held by a
 * connection of the test's own), so the sidecar's connect stays in progress
 * until the test frees the queue and the kernel sends the SYN again, about
 * a second later. The client speaks meanwhile: the loop must not spin on
 * its readable socket, and its bytes reach the backend once connected.
 */
static void conn__inbound_client_speaks_while_the_backend_connects(void **state)
{
    struct fx *f = *state;
    struct sc_listen_cfg *l = &f->cfg.listeners[0];
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(in);
    int slow = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int64_t t0;
    char buf[16];
    size_t got = 0;
    struct peer p;

    assert_true(slow >= 0 && filler >= 0);
    assert_int_equal(bind(slow, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(slow, 0), 0);
    assert_int_equal(getsockname(slow, (struct sockaddr *)&in, &len), 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&in, sizeof(in)), 0);
    ((struct sockaddr_in *)&l->addr)->sin_port = in.sin_port;
    l->port = ntohs(in.sin_port);

    peer_start(f, &p);
    for (int i = 0; i < 200 && p.hs_rc == DUET_EAGAIN; i++) {
        p.hs_rc = p.cli.ops->handshake(&p.cli, &p.hs);
        turn(f);
    }
    assert_int_equal(p.hs_rc, 0);
    assert_int_equal(p.cli.ops->send(&p.cli, "early", 5), 5);
    turn(f);
    turn(f);
    /* Nothing to report while the connect waits: the loop sleeps. */
    t0 = duet_clock_mono_ms();
    assert_true(duet_loop_run_once(f->w->loop, 60) >= 0);
    assert_true(duet_clock_mono_ms() - t0 >= 40);
    assert_int_equal(f->w->conns.n, 1);

    close(accept4(slow, NULL, NULL, SOCK_CLOEXEC)); /* the filler's: the queue is free */
    close(filler);
    for (int i = 0; i < 100 && got < 5; i++) {
        ssize_t r;

        assert_true(duet_loop_run_once(f->w->loop, 50) >= 0);
        if (p.be < 0)
            p.be = accept4(slow, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (p.be >= 0 && (r = read(p.be, buf + got, sizeof(buf) - got)) > 0)
            got += (size_t)r;
    }
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "early", 5);
    assert_true(to_client(f, &p, "late"));
    peer_free(&p);
    settle(f);
    assert_int_equal(f->w->conns.n, 0);
    close(slow);
}

/* Silent sockets (no TLS byte) count as pending handshakes; past the cap
 * (2 here) the oldest is shed; a real client still gets in. */
static void conn__pending_handshakes_are_capped_oldest_first(void **state)
{
    struct fx *f = *state;
    struct peer idle[3], p;
    char c;

    for (int i = 0; i < 3; i++) {
        peer_start(f, &idle[i]);
        turn(f);
    }
    assert_int_equal(f->w->conns.n_pending, 2);
    settle(f);
    assert_int_equal(f->w->listeners[0].stats.hs_fail[SC_FAIL_SHED], 1);
    assert_int_equal(read(idle[0].fd[1], &c, 1), 0); /* the oldest went */
    assert_int_equal(read(idle[1].fd[1], &c, 1), -1);
    assert_int_equal(read(idle[2].fd[1], &c, 1), -1);
    peer_start(f, &p);
    assert_true(peer_open(f, &p));
    assert_int_equal(f->w->conns.n_pending, 1); /* idle[2]; idle[1] was shed for p */
    assert_true(to_backend(f, &p, "ping"));
    for (int i = 0; i < 3; i++)
        peer_free(&idle[i]);
    peer_free(&p);
    settle(f);
    assert_int_equal(f->w->conns.n, 0);
    assert_int_equal(f->w->conns.n_pending, 0);
}

static void conn__handshake_deadline_closes_a_silent_client(void **state)
{
    struct fx *f = *state;
    struct peer p;
    char c;

    duet_clock_fake(duet_clock_real_ms());
    peer_start(f, &p);
    turn(f);
    duet_clock_advance(HANDSHAKE_MS - 1);
    turn(f);
    assert_int_equal(f->w->conns.n, 1);
    duet_clock_advance(2);
    turn(f);
    settle(f);
    assert_int_equal(f->w->conns.n, 0);
    assert_int_equal(f->w->listeners[0].stats.hs_fail[SC_FAIL_TIMEOUT], 1);
    assert_int_equal(read(p.fd[1], &c, 1), 0); /* closed, and not reset */
    peer_free(&p);
}

static void conn__idle_deadline_closes_an_open_connection(void **state)
{
    struct fx *f = *state;
    struct peer p;
    char c;

    duet_clock_fake(duet_clock_real_ms());
    peer_start(f, &p);
    assert_true(peer_open(f, &p));
    assert_true(to_backend(f, &p, "x"));
    duet_clock_advance(IDLE_MS - 10);
    turn(f);
    assert_int_equal(f->w->conns.n, 1);
    duet_clock_advance(20);
    turn(f);
    settle(f);
    assert_int_equal(f->w->conns.n, 0);
    assert_int_equal(client_next(f, &p), DUET_EOF); /* close_notify first */
    assert_int_equal(read(p.be, &c, 1), 0);
    peer_free(&p);
}

static void conn__reload_keeps_open_connections_on_their_generation(void **state)
{
    struct fx *f = *state;
    int64_t now = (int64_t)duet_clock_now();
    struct peer a, b;

    peer_start(f, &a);
    assert_true(peer_open(f, &a));
    assert_true(a.hs.peer_not_after <= now + DAY + 5);
    sc_tls_publish(make_set(DUET_PROFILE_SERVER, 2 * DAY, 2));
    peer_start(f, &b);
    assert_true(peer_open(f, &b));
    /* The new connection got the new certificate; the old one keeps its own. */
    assert_true(b.hs.peer_not_after > now + DAY + 5);
    assert_true(to_backend(f, &a, "old"));
    assert_true(to_client(f, &a, "still"));
    assert_true(to_backend(f, &b, "new"));
    assert_int_equal(f->w->conns.n, 2);
    peer_free(&a);
    peer_free(&b);
    settle(f);
    assert_int_equal(f->w->conns.n, 0);
}

static void conn__refused_while_no_set_is_loaded(void **state)
{
    struct fx *f = *state;
    struct peer p;
    char c;

    sc_tls_shutdown();
    peer_start(f, &p);
    settle(f);
    assert_int_equal(f->w->conns.n, 0);
    assert_int_equal(f->w->listeners[0].stats.hs_fail[SC_FAIL_NO_CERTS_LOADED], 1);
    assert_int_equal(read(p.fd[1], &c, 1), 0);
    peer_free(&p);
}

/* One whole connection with allocations failing after `fail_after` of them
 * (-1: none fail); *made counts the allocations tried. Whatever fails, the
 * worker must end clean. */
static bool one_connection(struct fx *f, long fail_after, long *made)
{
    struct peer p;
    bool ok;

    peer_init(f, &p);
    /* Empty caches, so every buffer of the run is a real allocation. */
    sc_bufpool_deinit(&f->w->pool);
    sc_bufpool_deinit(&f->pool);
    (void)duet_alloc_fail_after(fail_after);
    peer_hand_over(f, &p);
    ok = peer_open(f, &p) && to_backend(f, &p, "ping") && to_client(f, &p, "pong");
    *made = duet_alloc_fail_after(-1);
    peer_free(&p);
    settle(f);
    assert_int_equal(f->w->conns.n, 0);
    assert_int_equal(f->w->pool.in_use, 0);
    assert_int_equal(f->pool.in_use, 0);
    return ok;
}

static void conn__alloc_fail_each_allocation_of_a_connection(void **state)
{
    struct fx *f = *state;
    long n, made;

    assert_true(one_connection(f, -1, &n));
    assert_true(n > 0);
    /* A failure may come after the bytes went through (the pump's next
     * read buffer): what is checked is that the worker always ends clean. */
    for (long i = 0; i < n; i++)
        (void)one_connection(f, i, &made);
    assert_true(one_connection(f, -1, &made)); /* and it still works */
}

static int setup_ca(void **state)
{
    (void)state;
    tl_ca_new(&ca, "duet test CA");
    return 0;
}

static int teardown_ca(void **state)
{
    (void)state;
    tl_ca_free(&ca);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(conn__inbound_handshake_connect_open_half_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn__inbound_client_speaks_while_the_backend_connects,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(conn__pending_handshakes_are_capped_oldest_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn__handshake_deadline_closes_a_silent_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn__idle_deadline_closes_an_open_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(conn__reload_keeps_open_connections_on_their_generation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(conn__refused_while_no_set_is_loaded, setup, teardown),
    };
    const struct CMUnitTest alloc_fail[] = {
        cmocka_unit_test_setup_teardown(conn__alloc_fail_each_allocation_of_a_connection, setup,
                                        teardown),
    };

    /* ctest runs this twice: label unit, and label alloc-fail (DUET_TEST_ALLOC_FAIL=1). */
    if (getenv("DUET_TEST_ALLOC_FAIL"))
        return cmocka_run_group_tests(alloc_fail, setup_ca, teardown_ca);
    return cmocka_run_group_tests(tests, setup_ca, teardown_ca);
}
