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

#include "duet/compiler.h"
#include "duet/err.h"
#include "pump.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct script {
    const uint8_t *p;
    size_t n, i;
    uint64_t produced, consumed; /* byte counters: content is a running counter */
};

static struct script sc;

/* ramp[i] == i mod 256: the content at stream offset o is ramp[o & 255],
 * so filling and checking are memcpy/memcmp of at most 256-byte runs, not
 * an instrumented loop per byte (which held this target to ~2k execs/s). */
static uint8_t ramp[512];

static void fill(uint8_t *buf, size_t k, uint64_t off)
{
    for (size_t j = 0; j < k;) {
        size_t run = DUET_MIN(k - j, 256);

        memcpy(buf + j, ramp + ((off + j) & 255), run);
        j += run;
    }
}

static bool matches(const uint8_t *buf, size_t k, uint64_t off)
{
    for (size_t j = 0; j < k;) {
        size_t run = DUET_MIN(k - j, 256);

        if (memcmp(buf + j, ramp + ((off + j) & 255), run) != 0)
            return false;
        j += run;
    }
    return true;
}

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
    fill(buf, k, sc.produced);
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
    if (!matches(buf, k, sc.consumed))
        abort(); /* reordered, duplicated or lost bytes */
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

    if (ramp[1] == 0) {
        for (size_t j = 0; j < sizeof(ramp); j++)
            ramp[j] = (uint8_t)j;
    }
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
