/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS transport's state that outlives a connection: an outbound
 * listener's resumption slot. The transport itself is the ops table
 * sc_xprt_tls (xprt.h).
 */
#ifndef SC_XPRT_TLS_H
#define SC_XPRT_TLS_H

#include <stdint.h>

/* The last session an upstream gave this listener, and the TLS generation
 * it was made with (another certificate must not resume it). One worker. */
struct sc_tls_session {
    void *session; /* SSL_SESSION *, owned */
    uint64_t gen;
};

/* Release the slot's session; the slot stays usable. */
void sc_tls_session_drop(struct sc_tls_session *slot);

#endif
