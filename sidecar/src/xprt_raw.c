/* SPDX-License-Identifier: Apache-2.0 */
/* The plaintext xprt: no handshake, no state, one syscall per recv/send, errno mapped to DUET_E*.
 */
#include <stdio.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "duet/err.h"
#include "duet/loop.h"
#include "xprt.h"

static int raw_open(struct sc_side *s, const struct sc_xprt_args *a)
{
    (void)a;
    s->ctx = NULL;
    return 0;
}

static int raw_handshake(struct sc_side *s, struct sc_xprt_hs *hs)
{
    (void)s;
    (void)hs;
    return 0;
}

static int raw_recv(struct sc_side *s, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(s->fd, buf, len);

        if (n > 0)
            return (int)n;
        if (n == 0)
            return DUET_EOF;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? DUET_EAGAIN : -errno;
    }
}

static int raw_send(struct sc_side *s, const void *buf, size_t len)
{
    for (;;) {
        /* MSG_NOSIGNAL: a peer that went away is an EPIPE here, not a SIGPIPE. */
        ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);

        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? DUET_EAGAIN : -errno;
    }
}

static int raw_shutdown(struct sc_side *s)
{
    if (shutdown(s->fd, SHUT_WR) == -1 && errno != ENOTCONN)
        return -errno;
    return 0;
}

/* Nothing to tell the peer: close(2) of the fd, by the connection, sends the FIN. */
static void raw_close(struct sc_side *s, bool graceful)
{
    (void)s;
    (void)graceful;
}

static uint32_t raw_interest(const struct sc_side *s, bool want_recv, bool want_send)
{
    (void)s;
    return (want_recv ? DUET_EV_READ : 0) | (want_send ? DUET_EV_WRITE : 0);
}

static bool raw_pending(const struct sc_side *s)
{
    (void)s;
    return false;
}

static unsigned raw_cross(const struct sc_side *s)
{
    (void)s;
    return SC_CROSS_NONE;
}

static int raw_peer(const struct sc_side *s, struct sc_xprt_peer *out)
{
    (void)s;
    (void)out;
    return DUET_EINVAL;
}

static int raw_recheck(struct sc_side *s, struct sc_tls_set *set, struct sc_xprt_hs *hs)
{
    (void)s;
    (void)set;
    (void)hs;
    return 0;
}

const struct sc_xprt_ops sc_xprt_raw = {
    .open = raw_open,
    .handshake = raw_handshake,
    .recv = raw_recv,
    .send = raw_send,
    .shutdown = raw_shutdown,
    .close = raw_close,
    .interest = raw_interest,
    .pending = raw_pending,
    .cross = raw_cross,
    .peer = raw_peer,
    .recheck = raw_recheck,
};
