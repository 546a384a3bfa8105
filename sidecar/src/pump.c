/* SPDX-License-Identifier: Apache-2.0 */
/* Buffer cache and the byte pump; see pump.h. */
#include <stdio.h>
#include <stddef.h>

#include "duet/alloc.h"
#include "duet/err.h"
#include "duet/loop.h"
#include "pump.h"

struct sc_buf *sc_buf_get(struct sc_bufpool *p)
{
    struct sc_buf *b = p->free;

    if (b) {
        p->free = b->next;
        p->nfree--;
    } else {
        b = duet_malloc(sizeof(*b));
        if (!b)
            return NULL;
    }
    p->in_use++;
    return b;
}

void sc_buf_put(struct sc_bufpool *p, struct sc_buf *b)
{
    p->in_use--;
    if (p->nfree >= p->max_free) {
        duet_free(b);
        return;
    }
    b->next = p->free;
    p->free = b;
    p->nfree++;
}

void sc_bufpool_deinit(struct sc_bufpool *p)
{
    while (p->free) {
        struct sc_buf *b = p->free;

        p->free = b->next;
        duet_free(b);
    }
    p->nfree = 0;
}

void sc_pipe_release(struct sc_pipe *p, struct sc_bufpool *pool)
{
    if (p->buf)
        sc_buf_put(pool, p->buf);
    p->buf = NULL;
    p->off = p->len = 0;
}

long sc_pump(struct sc_pipe *p, struct sc_side *src, struct sc_side *dst, struct sc_bufpool *pool,
             int rounds)
{
    long moved = 0;
    bool drained = false; /* src gave less than a buffer: probably empty now */

    while (rounds > 0) {
        int n;

        if (p->buf) {
            n = dst->ops->send(dst, p->buf->data + p->off, p->len - p->off);
            if (n == DUET_EAGAIN)
                return moved;
            if (n < 0)
                return n;
            p->off += (uint32_t)n;
            p->bytes += (uint64_t)n;
            moved += n;
            if (p->off == p->len) {
                sc_pipe_release(p, pool);
                rounds--;
                /* A short read almost always emptied the socket: skip the
                 * read that would only say EAGAIN (one syscall per request
                 * and direction); level-triggered epoll reports anything
                 * that arrived meanwhile. */
                if (drained && !src->ops->pending(src))
                    return moved;
            }
            continue;
        }
        if (src->eof) {
            if (!dst->shut) {
                n = dst->ops->shutdown(dst);
                if (n == DUET_EAGAIN)
                    return moved;
                if (n < 0)
                    return n;
                dst->shut = true;
            }
            return moved;
        }
        p->buf = sc_buf_get(pool);
        if (!p->buf)
            return DUET_ENOMEM;
        n = src->ops->recv(src, p->buf->data, SC_BUF_SIZE);
        if (n > 0) {
            p->off = 0;
            p->len = (uint32_t)n;
            drained = n < SC_BUF_SIZE;
            continue;
        }
        sc_pipe_release(p, pool); /* nothing in flight: give the buffer back */
        if (n == DUET_EAGAIN)
            return moved;
        if (n != DUET_EOF)
            return n;
        src->eof = true;
    }
    return moved;
}

uint32_t sc_side_interest(const struct sc_side *s, const struct sc_pipe *from_s,
                          const struct sc_pipe *to_s)
{
    bool want_recv = !s->eof && !from_s->buf;
    bool want_send = to_s->buf != NULL;

    return s->ops->interest(s, want_recv, want_send);
}
