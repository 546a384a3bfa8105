/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bottom layer of the sidecar (STYLE.md 9): the pump that moves bytes
 * from one side to the other through one bounded buffer per direction,
 * through the sides' transports (xprt.h). The pump sees only bytes,
 * DUET_EAGAIN and DUET_EOF.
 *
 * Buffers exist only while data is in flight: a direction takes a 64 KiB
 * buffer when a read returns data and gives it back when the write side has
 * taken all of it, so an idle connection holds none. A direction never reads
 * while its buffer holds unsent bytes: that is the back-pressure (a slow
 * reader stops the reads on the other side; memory never grows).
 */
#ifndef SC_PUMP_H
#define SC_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet/compiler.h"
#include "xprt.h"

/*
 * 64 KiB: four full TLS records per read and one plaintext write for them
 * (bulk transfer pays per syscall and wake-up, not per byte, beyond the
 * copies). An idle connection holds no buffer, so the size only bounds what
 * a busy one has in flight: at most one per direction plus one read-ahead
 * per TLS side.
 */
#define SC_BUF_SIZE 65536
/* What a worker's pool keeps cached when the buffers come back. */
#define SC_POOL_CACHE_BYTES (512u * 1024u)

struct sc_buf {
    struct sc_buf *next; /* in the pool's free list */
    char data[SC_BUF_SIZE];
};

/*
 * A per-worker cache of free buffers. Rule zero (STYLE.md 5, "no custom
 * pools until a profile asks"): the performance budget asks. Every request
 * through a keep-alive connection takes and returns a buffer per direction;
 * the cache makes that a pointer swap instead of a 64 KiB malloc/free, and
 * is capped so an idle worker gives memory back.
 */
struct sc_bufpool {
    struct sc_buf *free;
    unsigned nfree;
    unsigned max_free;
    uint64_t in_use; /* buffers handed out and not yet returned */
};

struct sc_buf *sc_buf_get(struct sc_bufpool *p) DUET_MUST_CHECK;
void sc_buf_put(struct sc_bufpool *p, struct sc_buf *b);
/* Frees the cached buffers (those in use stay with their owners). */
void sc_bufpool_deinit(struct sc_bufpool *p);

/* One direction: bytes read from src waiting to be written to dst. */
struct sc_pipe {
    struct sc_buf *buf; /* NULL when nothing is in flight */
    uint32_t off;
    uint32_t len;
    uint64_t bytes; /* total moved, for metrics */
};

/*
 * Move bytes src -> dst until one side would block, at most `rounds`
 * buffers, then pass a src EOF on as a dst shutdown once the buffer is empty.
 * Returns the number of bytes written to dst (>= 0) or a fatal negative code
 * (the connection must close).
 */
long sc_pump(struct sc_pipe *p, struct sc_side *src, struct sc_side *dst, struct sc_bufpool *pool,
             int rounds) DUET_MUST_CHECK;

/* True once everything src will ever send has been delivered and dst shut. */
static inline bool sc_pipe_done(const struct sc_pipe *p, const struct sc_side *src,
                                const struct sc_side *dst)
{
    return src->eof && !p->buf && dst->shut;
}

/*
 * The epoll interest for side s given the pipe it feeds (from_s) and the
 * pipe that writes to it (to_s).
 */
uint32_t sc_side_interest(const struct sc_side *s, const struct sc_pipe *from_s,
                          const struct sc_pipe *to_s);

void sc_pipe_release(struct sc_pipe *p, struct sc_bufpool *pool);

#endif
