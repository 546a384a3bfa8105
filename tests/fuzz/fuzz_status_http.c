/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the status listener (common/src/status_http.c) that
 * both daemons run for /healthz, /readyz and /metrics: request bytes go into
 * one end of a socketpair whose other end the server adopts as it adopts an
 * accepted connection, and the loop runs the same reads, request parsing
 * and replies a probe gets, in as many pieces as the input asks for.
 *
 * Input: byte 0 is the size of each write (0: one write), byte 1 flags
 * (bit 0: an idle client holds the only slot first, so the request must
 * evict it), the rest is what the client sends before it half-closes.
 * Whatever the bytes, the server must end the exchange within a bounded
 * number of iterations, and any reply must be one well-formed HTTP/1.1
 * response whose Content-Length is what follows its head.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "status_http_int.h"

#include "duet/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Past the 2 KiB request buffer, so 431 is reachable, and byte-wise writes
 * stay fast. */
#define INPUT_MAX 3000
/* Enough iterations for the largest reply in 4 KiB reads, and then some. */
#define ITER_MAX 512
/* 24 KB of /metrics overflows the server's 4 KiB send buffer (set below)
 * many times over, which is all the EAGAIN path needs; 256 KB replies
 * through the default ~200 KB buffer held the target to ~700 execs/s. */
#define METRICS_LINES 24
#define SERVER_SNDBUF 4096
/* Writes are at least (size - 2) / PIECES_MAX bytes: a byte at a time,
 * each with a loop turn and a drain, cost four syscalls per input byte;
 * 48 pieces still split a request anywhere it can be split. */
#define PIECES_MAX 48

static struct duet_loop *loop;
static struct duet_status_http *srv;
static char reply[512 * 1024];

/* Replies of the daemons' shapes; /metrics is larger than the server's
 * buffer, so the server's writes stop on EAGAIN and resume. */
static void handler(const char *path, struct duet_status_reply *r, void *arg)
{
    static char line[1000];

    (void)arg;
    if (strcmp(path, "/healthz") == 0) {
        (void)duet_status_reply_printf(r, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        r->status = 503;
        (void)duet_status_reply_printf(r, "not ready: no certificate yet\n");
    } else if (strcmp(path, "/metrics") == 0) {
        if (!line[0])
            memset(line, 'x', sizeof(line) - 1);
        r->content_type = "text/plain; version=0.0.4";
        for (int i = 0; i < METRICS_LINES; i++)
            (void)duet_status_reply_printf(r, "duet_fuzz_line{n=\"%d\",pad=\"%s\"} 1\n", i, line);
    } else {
        r->status = 404;
        (void)duet_status_reply_printf(r, "unknown path\n");
    }
}

static void at_exit(void)
{
    duet_status_http_free(srv);
    duet_loop_free(loop);
}

/* Read what is there into reply[*got..]; 1 at end of stream, else 0. */
static int drain(int fd, size_t *got)
{
    for (;;) {
        char sink[4096];
        size_t room = sizeof(reply) - *got;
        ssize_t n = read(fd, room ? reply + *got : sink, room ? room : sizeof(sink));

        if (n == 0)
            return 1;
        if (n < 0)
            return errno == EAGAIN ? 0 : 1;
        if (room)
            *got += (size_t)n;
    }
}

/* One response: status line, headers, blank line, Content-Length bytes. */
static void check_reply(const char *r, size_t len)
{
    const char *end, *cl;
    unsigned long clen;
    int status;

    if (len == 0)
        return; /* closed without a reply: an incomplete request */
    if (len >= sizeof(reply))
        abort();
    if (sscanf(r, "HTTP/1.1 %3d ", &status) != 1 || status < 200 || status > 599)
        abort();
    end = memmem(r, len, "\r\n\r\n", 4);
    cl = memmem(r, len, "\r\nContent-Length: ", 18);
    if (!end || !cl || cl > end || sscanf(cl + 18, "%lu", &clen) != 1)
        abort();
    if ((size_t)(r + len - (end + 4)) != clen)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2], idle[2] = {-1, -1};
    size_t step, got = 0;
    bool eof = false;

    if (!loop) {
        struct duet_status_http_opts o = {
            /* Far beyond a run: only the bytes decide, never the clock. */
            .timeout_ms = 600000,
            .request_timeout_ms = 600000,
            .max_conns = 1,
        };
        struct duet_errbuf eb = {{0}};

        if (duet_loop_new(&loop) < 0 ||
            duet_status_http_new(loop, "127.0.0.1:0", &o, handler, NULL, &srv, &eb) < 0)
            abort();
        atexit(at_exit);
    }
    if (size < 2 || size - 2 > INPUT_MAX)
        return 0;
    step = data[0] ? data[0] : size - 2;
    if (step < (size - 2 + PIECES_MAX - 1) / PIECES_MAX)
        step = (size - 2 + PIECES_MAX - 1) / PIECES_MAX;
    if (data[1] & 1) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, idle) == -1)
            return 0;
        if (duet__status_http_adopt(srv, idle[1]) < 0)
            abort();
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
        abort();
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &(int){SERVER_SNDBUF}, sizeof(int));
    /* With the idle client in the only slot, this evicts it. A client of
     * the last input still being answered would make it fail instead. */
    if (duet__status_http_adopt(srv, sv[1]) < 0)
        abort();
    for (size_t off = 2; off < size && !eof; off += step) {
        size_t n = size - off < step ? size - off : step;

        /* The server may have answered and closed already: EPIPE ends it. */
        if (send(sv[0], data + off, n, MSG_NOSIGNAL) != (ssize_t)n)
            break;
        if (duet_loop_run_once(loop, 0) < 0)
            abort();
        eof = drain(sv[0], &got);
    }
    shutdown(sv[0], SHUT_WR);
    for (int i = 0; i < ITER_MAX && !eof; i++) {
        if (duet_loop_run_once(loop, 0) < 0)
            abort();
        eof = drain(sv[0], &got);
    }
    /* A client that said all it had to say is answered or let go at once. */
    if (!eof)
        abort();
    check_reply(reply, got);
    close(sv[0]);
    if (idle[0] != -1)
        close(idle[0]);
    return 0;
}
