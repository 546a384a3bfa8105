/* SPDX-License-Identifier: Apache-2.0 */
/* The status server against a real client socket, driven on one loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "duet/loop.h"
#include "duet/net.h"
#include "duet/status_http.h"

struct fixture {
    struct duet_loop *loop;
    struct duet_status_http *srv;
    int calls;
};

static void handler(const char *path, struct duet_status_reply *r, void *arg)
{
    struct fixture *f = arg;

    f->calls++;
    if (strcmp(path, "/healthz") == 0) {
        (void)duet_status_reply_printf(r, "ok\n");
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        r->content_type = "text/plain; version=0.0.4";
        for (int i = 0; i < 200; i++)
            (void)duet_status_reply_printf(r, "m{i=\"%d\"} %d\n", i, i);
        return;
    }
    r->status = 404;
    (void)duet_status_reply_printf(r, "no\n");
}

static int setup(void **state)
{
    static struct fixture f;
    struct duet_errbuf eb;
    struct duet_status_http_opts o = {.timeout_ms = 100, .max_conns = 2};

    memset(&f, 0, sizeof(f));
    assert_int_equal(duet_loop_new(&f.loop), 0);
    assert_int_equal(duet_status_http_new(f.loop, "127.0.0.1:0", &o, handler, &f, &f.srv, &eb), 0);
    assert_true(duet_status_http_port(f.srv) > 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    duet_status_http_free(f->srv);
    duet_loop_free(f->loop);
    return 0;
}

static int dial(struct fixture *f)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(duet_status_http_port(f->srv))};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_true(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS);
    return fd;
}

/* Send req (may be NULL), then run the loop until the server closes. */
static const char *exchange(struct fixture *f, const char *req, size_t reqlen)
{
    static char out[16384];
    size_t len = 0;
    int fd = dial(f);

    if (req)
        assert_int_equal(write(fd, req, reqlen), (ssize_t)reqlen);
    for (int i = 0; i < 500; i++) {
        ssize_t n;

        assert_int_equal(duet_loop_run_once(f->loop, 10), 0);
        n = read(fd, out + len, sizeof(out) - 1 - len);
        if (n == 0)
            break;
        if (n > 0)
            len += (size_t)n;
    }
    out[len] = '\0';
    close(fd);
    return out;
}

#define GET(f, s) exchange((f), (s), strlen(s))

static void status_http__serves_handler_reply(void **state)
{
    struct fixture *f = *state;
    const char *r = GET(f, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");

    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Length: 3\r\n"));
    assert_non_null(strstr(r, "Connection: close\r\n"));
    assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\nok\n");
    r = GET(f, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "version=0.0.4"));
    assert_non_null(strstr(r, "m{i=\"199\"} 199\n"));
    r = GET(f, "GET /nope HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found"));
    /* netcat-style bare LF line ends (fuzz_status_http found them answered 400). */
    r = GET(f, "GET /healthz HTTP/1.0\n\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_int_equal(f->calls, 4);
}

static void status_http__refuses_bad_requests(void **state)
{
    struct fixture *f = *state;
    char big[4096];

    assert_non_null(strstr(GET(f, "POST /healthz HTTP/1.1\r\n\r\n"), " 405 "));
    assert_non_null(strstr(GET(f, "GET /healthz SPDY/3\r\n\r\n"), " 400 "));
    assert_non_null(strstr(GET(f, "\x16\x03\x01garbage\r\n\r\n"), " 400 "));
    assert_non_null(strstr(GET(f, "GET healthz HTTP/1.1\r\n\r\n"), " 400 "));
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    assert_non_null(strstr(exchange(f, big, sizeof(big)), " 431 "));
    assert_int_equal(f->calls, 0);
}

/* A fixture of its own: long reply timeout, max_conns 2. */
static void open_srv(struct fixture *f, int64_t timeout_ms, int64_t request_timeout_ms)
{
    struct duet_errbuf eb;
    struct duet_status_http_opts o = {
        .timeout_ms = timeout_ms, .request_timeout_ms = request_timeout_ms, .max_conns = 2};

    memset(f, 0, sizeof(*f));
    assert_int_equal(duet_loop_new(&f->loop), 0);
    assert_int_equal(duet_status_http_new(f->loop, "127.0.0.1:0", &o, handler, f, &f->srv, &eb), 0);
}

/* Sockets that never send a request hold every slot: a probe still gets its
 * answer at once, by evicting the oldest of them. */
static void status_http__idle_clients_cannot_starve_a_probe(void **state)
{
    struct fixture f;
    int idle[4];
    const char *r;

    (void)state;
    open_srv(&f, 5000, 5000);
    for (int i = 0; i < 4; i++) {
        idle[i] = dial(&f);
        assert_int_equal(duet_loop_run_once(f.loop, 10), 0);
    }
    /* exchange() allows 500 rounds of 10 ms; the answer must come in far
     * fewer than the 5 s the idle clients could otherwise hold the slots. */
    {
        struct timespec a, b;

        clock_gettime(CLOCK_MONOTONIC, &a);
        r = GET(&f, "GET /healthz HTTP/1.1\r\n\r\n");
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert_non_null(strstr(r, "200 OK"));
        assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 1000);
    }
    for (int i = 0; i < 4; i++)
        close(idle[i]);
    duet_status_http_free(f.srv);
    duet_loop_free(f.loop);
}

/* An idle client is closed after request_timeout_ms, not the reply timeout. */
static void status_http__closes_idle_client_after_request_timeout(void **state)
{
    struct fixture f;
    struct timespec a, b;

    (void)state;
    open_srv(&f, 5000, 100);
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_string_equal(exchange(&f, "GET /hea", 8), "");
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 1000);
    duet_status_http_free(f.srv);
    duet_loop_free(f.loop);
}

static void status_http__drops_silent_client_after_timeout(void **state)
{
    struct fixture *f = *state;

    /* exchange() returns once the server closes: well before 500 rounds. */
    assert_string_equal(exchange(f, "GET /hea", 8), "");
    assert_string_equal(GET(f, "GET /healthz HTTP/1.1\r\n\r\n") + 9,
                        "200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
                        "3\r\nConnection: close\r\n\r\nok\n");
}

static void net_split_hostport__accepts_and_refuses(void **state)
{
    char host[DUET_NET_HOST_MAX];
    unsigned port;
    struct duet_errbuf eb;

    (void)state;
    assert_int_equal(duet_net_split_hostport("127.0.0.1:443", host, &port, &eb), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 443);
    assert_int_equal(duet_net_split_hostport("[::1]:8443", host, &port, &eb), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(duet_net_split_hostport(":9", host, &port, &eb), 0);
    assert_string_equal(host, "");
    assert_int_equal(duet_net_split_hostport("example.org:1", host, &port, &eb), 0);
    assert_int_equal(duet_net_split_hostport("::1:80", host, &port, &eb), DUET_E_USAGE);
    assert_int_equal(duet_net_split_hostport("host", host, &port, &eb), DUET_E_USAGE);
    assert_int_equal(duet_net_split_hostport("host:", host, &port, &eb), DUET_E_USAGE);
    assert_int_equal(duet_net_split_hostport("host:65536", host, &port, &eb), DUET_E_USAGE);
    assert_int_equal(duet_net_split_hostport("host:-1", host, &port, &eb), DUET_E_USAGE);
    assert_int_equal(duet_net_split_hostport("host:8x", host, &port, &eb), DUET_E_USAGE);
    assert_int_equal(duet_net_split_hostport("[::1]80", host, &port, &eb), DUET_E_USAGE);
    assert_true(duet_net_is_ip_literal("::1"));
    assert_true(duet_net_is_ip_literal("10.0.0.1"));
    assert_false(duet_net_is_ip_literal("localhost"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(status_http__serves_handler_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(status_http__refuses_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(status_http__drops_silent_client_after_timeout, setup,
                                        teardown),
        cmocka_unit_test(net_split_hostport__accepts_and_refuses),
        cmocka_unit_test(status_http__idle_clients_cannot_starve_a_probe),
        cmocka_unit_test(status_http__closes_idle_client_after_request_timeout),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
