/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pump driven by a scripted fake xprt (STYLE.md 11). The input is a
 * script: each byte tells the next recv (data of some length, EAGAIN, EOF,
 * error) or send (accept some bytes, EAGAIN, error) what to do. Invariants:
 * dst receives exactly a prefix of what src produced, in order; at most one
 * buffer is in use; a finished pipe holds none; every call terminates.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "duet/err.h"
#include "pump.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct script {
    const uint8_t *p;
    size_t n, i;
    uint64_t produced, consumed; /* byte counters: content is a running counter */
};

static struct script sc;

static uint8_t next(void)
{
    return sc.i < sc.n ? sc.p[sc.i++] : 0xff;
}

static int f_recv(struct sc_side *s, void *buf, size_t len)
{
    uint8_t op = next();
    size_t k;

    (void)s;
    if (op == 0xff || sc.i >= sc.n)
        return DUET_EOF;
    if ((op & 3) == 0)
        return DUET_EAGAIN;
    if (op == 1)
        return -ECONNRESET;
    k = ((size_t)(op >> 2) * 397 + 1) % len + 1;
    if (k > len)
        k = len;
    for (size_t j = 0; j < k; j++)
        ((uint8_t *)buf)[j] = (uint8_t)(sc.produced + j);
    sc.produced += k;
    return (int)k;
}

static int f_send(struct sc_side *s, const void *buf, size_t len)
{
    uint8_t op = next();
    size_t k;

    (void)s;
    if ((op & 7) == 0)
        return DUET_EAGAIN;
    if (op == 7)
        return -EPIPE;
    k = op & 0x80 ? len : ((size_t)op * 131) % len + 1;
    for (size_t j = 0; j < k; j++) {
        if (((const uint8_t *)buf)[j] != (uint8_t)(sc.consumed + j))
            abort(); /* reordered, duplicated or lost bytes */
    }
    sc.consumed += k;
    return (int)k;
}

static int f_shutdown(struct sc_side *s)
{
    (void)s;
    return (next() & 15) == 0 ? DUET_EAGAIN : 0;
}

static void f_close(struct sc_side *s, bool graceful)
{
    (void)s;
    (void)graceful;
}

static uint32_t f_interest(const struct sc_side *s, bool r, bool w)
{
    (void)s;
    return (r ? 1u : 0u) | (w ? 2u : 0u);
}

static bool f_pending(const struct sc_side *s)
{
    (void)s;
    return false;
}

static const struct sc_xprt_ops fake = {
    .recv = f_recv,
    .send = f_send,
    .shutdown = f_shutdown,
    .close = f_close,
    .interest = f_interest,
    .pending = f_pending,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sc_side src = {.fd = -1, .ops = &fake}, dst = {.fd = -1, .ops = &fake};
    struct sc_pipe p = {0};
    struct sc_bufpool pool = {.max_free = 1};

    memset(&sc, 0, sizeof(sc));
    sc.p = data;
    sc.n = size;
    for (int calls = 0; calls < 10000; calls++) {
        long r = sc_pump(&p, &src, &dst, &pool, 4);

        if (pool.in_use > 1 || (r >= 0 && (uint64_t)p.bytes != sc.consumed))
            abort();
        if (r < 0 || sc_pipe_done(&p, &src, &dst) || sc.i >= sc.n)
            break;
    }
    if (sc_pipe_done(&p, &src, &dst) && (p.buf || sc.consumed != sc.produced))
        abort();
    sc_pipe_release(&p, &pool);
    sc_bufpool_deinit(&pool);
    return 0;
}
