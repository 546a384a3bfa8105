/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transport layer of the sidecar (STYLE.md 9): one small ops table per
 * transport (raw sockets in xprt_raw.c, TLS in xprt_tls.c) behind which a
 * connection's side is opened, handshaken, read, written, shut and closed.
 * The models are HAProxy's xprt_ops and curl's connection filters: the
 * connection (conn.c) never calls a transport function by name, and a
 * transport never reaches back into the connection; what it needs is given
 * to `open`, and what it learns is handed back through its results.
 *
 * Ownership: the fd belongs to the connection, which closes it after
 * `close`; `ctx` belongs to the transport, from a successful `open` until
 * `close`. Every op runs on the worker thread that owns the side.
 */
#ifndef SC_XPRT_H
#define SC_XPRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet/compiler.h"
#include "duet/loop.h"
#include "metrics.h"

struct sc_side;
struct sc_bufpool;
struct sc_listen_cfg;
struct sc_tls_set;
struct sc_tls_session;

/* What a transport needs to open a side; all pointers borrowed for the side's life. */
struct sc_xprt_args {
    struct sc_bufpool *pool;          /* the worker's buffers (TLS read-ahead) */
    struct sc_tls_set *set;           /* TLS: the certificate set (the caller holds a reference) */
    const struct sc_listen_cfg *lcfg; /* TLS: names to verify, allow lists, resumption */
    struct sc_tls_session *session;   /* TLS client: the listener's resumption slot */
    bool server;                      /* TLS: accept (inbound) or connect (outbound) */
};

/* What a handshake step reports. */
struct sc_xprt_hs {
    uint32_t events; /* DUET_EAGAIN: the epoll interest to wait with */
    /* Success: */
    bool resumed;           /* a session was resumed */
    int64_t peer_not_after; /* the peer certificate's notAfter, Unix seconds (0: none) */
    /* Failure: */
    enum sc_fail fail;
    char why[256];
    char subject[256]; /* the refused certificate's subject ("-": none), the peer's to choose */
};

/* Who is at the other end of a TLS side, for the admission log. Strings
 * are the peer's to choose: quote them before logging. */
struct sc_xprt_peer {
    char subject[256]; /* one-line subject, "-" for none */
    char uri[256];     /* the first SAN URI, "-" for none */
    char serial[84];   /* upper-case hex */
    bool resumed;
};

/* Which way a transport call crossed over: a read that needs the socket
 * writable, a write that needs it readable (TLS renegotiation-free
 * post-handshake messages, redis src/tls.c). Bits. */
enum sc_xprt_cross {
    SC_CROSS_NONE = 0,
    SC_CROSS_RD_WANTS_WR = 0x1,
    SC_CROSS_WR_WANTS_RD = 0x2,
};

/* recv/send/shutdown return >0 (bytes) or 0 (shutdown done), DUET_EAGAIN,
 * DUET_EOF (recv only: orderly end), or another negative code (fatal). */
struct sc_xprt_ops {
    /* Set up s->ctx for s->fd. 0, or a negative code with nothing to undo. */
    int (*open)(struct sc_side *s, const struct sc_xprt_args *a);
    /* One handshake step: 0 done, DUET_EAGAIN (wait with hs->events) or a
     * negative code (hs->fail, why and subject say why). */
    int (*handshake)(struct sc_side *s, struct sc_xprt_hs *hs);
    int (*recv)(struct sc_side *s, void *buf, size_t len);
    /* All of len or DUET_EAGAIN for TLS (retry with the same bytes); raw may be partial. */
    int (*send)(struct sc_side *s, const void *buf, size_t len);
    int (*shutdown)(struct sc_side *s);
    /* Releases s->ctx; with `graceful`, first tells the peer (best effort,
     * TLS close_notify). The fd stays open: it belongs to the connection. */
    void (*close)(struct sc_side *s, bool graceful);
    /* epoll interest given what the pump wants to do on this side. */
    uint32_t (*interest)(const struct sc_side *s, bool want_recv, bool want_send);
    /* Bytes already read from the socket but not yet returned (SSL_pending). */
    bool (*pending)(const struct sc_side *s);
    /* SC_CROSS_* bits of the last calls. */
    unsigned (*cross)(const struct sc_side *s);
    /* After a handshake: describe the peer's certificate. 0, or DUET_EINVAL
     * when the side has no certificate to describe (raw). */
    int (*peer)(const struct sc_side *s, struct sc_xprt_peer *out);
    /* Does the peer of an open side still pass `set`'s checks (chain to its
     * ca.crt, its CRL, expiry, the listener's allow list or serverAuth)?
     * 0, or DUET_E_TLS with hs->fail, why and subject saying why. Raw: 0. */
    int (*recheck)(struct sc_side *s, struct sc_tls_set *set, struct sc_xprt_hs *hs);
};

/* One end of a proxied connection: down (the client) or up (the upstream). */
struct sc_side {
    int fd;
    const struct sc_xprt_ops *ops;
    void *ctx;       /* the transport's own state; NULL for raw */
    bool eof;        /* recv returned DUET_EOF: no more reads */
    bool shut;       /* our end-of-stream was sent */
    uint32_t events; /* epoll interest currently registered */
};

extern const struct sc_xprt_ops sc_xprt_raw;
extern const struct sc_xprt_ops sc_xprt_tls;

#endif
