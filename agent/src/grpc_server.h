/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A unary gRPC server on a Unix socket, for the two clients the agent has:
 * kubelet's CSI client and its plugin watcher. HTTP/2 framing is nghttp2's
 * (server side, prior knowledge, no TLS: the socket's file mode is the
 * access control, as for every CSI plugin); the gRPC layer on top is the
 * few rules of PROTOCOL-HTTP2.md that a unary call needs: a 5-byte message
 * prefix, `content-type: application/grpc`, the status in trailers (or in
 * the only HEADERS frame when there is no message).
 *
 * Everything runs on the caller's duet_loop: no threads. A handler runs
 * inside the read callback of its connection and either answers before
 * returning, or holds the call (ag_grpc_call_hold) and answers it later from
 * any loop callback (ag_grpc_call_answer); the request bytes are gone once
 * the handler returns, either way. Limits: AG_GRPC_MAX_CONNS
 * connections, AG_GRPC_MAX_STREAMS concurrent calls per connection,
 * AG_GRPC_MAX_MSG bytes per request message (gRPC's own default).
 */
#ifndef AG_GRPC_SERVER_H
#define AG_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet/err.h"
#include "duet/loop.h"

#define AG_GRPC_MAX_CONNS 32
#define AG_GRPC_MAX_STREAMS 16
#define AG_GRPC_MAX_MSG (4u * 1024 * 1024)

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum ag_grpc_code {
    AG_GRPC_OK = 0,
    AG_GRPC_CANCELLED = 1,
    AG_GRPC_UNKNOWN = 2,
    AG_GRPC_INVALID_ARGUMENT = 3,
    AG_GRPC_DEADLINE_EXCEEDED = 4,
    AG_GRPC_NOT_FOUND = 5,
    AG_GRPC_ALREADY_EXISTS = 6,
    AG_GRPC_PERMISSION_DENIED = 7,
    AG_GRPC_RESOURCE_EXHAUSTED = 8,
    AG_GRPC_FAILED_PRECONDITION = 9,
    AG_GRPC_ABORTED = 10,
    AG_GRPC_OUT_OF_RANGE = 11,
    AG_GRPC_UNIMPLEMENTED = 12,
    AG_GRPC_INTERNAL = 13,
    AG_GRPC_UNAVAILABLE = 14,
};

/* "PERMISSION_DENIED" for logs and metrics labels. */
const char *ag_grpc_code_name(int code);

/*
 * What a handler answers. code OK: `body` (len bytes, the serialized
 * response message; owned by the reply, freed with duet_free) is sent.
 * Otherwise msg says why, in one line meant for the client (kubelet puts it
 * in the pod's events); body is ignored.
 */
struct ag_grpc_reply {
    int code;
    char msg[512];
    uint8_t *body;
    size_t len;
    void *stream; /* private to grpc_server.c: the call being answered */
    bool held;    /* private: ag_grpc_call_hold took the call */
};

/* Set code and a formatted message; returns code. */
int ag_grpc_fail(struct ag_grpc_reply *r, int code, const char *fmt, ...) DUET_PRINTF(3, 4);

/* req: the request message (borrowed for the call). Fill rep. */
typedef void ag_grpc_handler(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep);

struct ag_grpc_method {
    const char *path; /* "/csi.v1.Node/NodePublishVolume" */
    ag_grpc_handler *fn;
};

struct ag_grpc_server;
struct ag_grpc_call;

/*
 * In a handler: answer later. The call's handle is returned (owned by the
 * caller until ag_grpc_call_answer); what the handler leaves in rep is then
 * ignored. NULL when out of memory: answer through rep as usual.
 */
struct ag_grpc_call *ag_grpc_call_hold(struct ag_grpc_reply *rep) DUET_MUST_CHECK;

/*
 * Answer a held call with rep (as a handler fills it; rep->body is borrowed)
 * and free the handle. Loop thread, any callback, the handler itself too;
 * the answer goes out at the end of the loop iteration. When the client
 * has gone meanwhile (the stream was reset, the connection closed, the
 * server freed) the answer is dropped and only the handle is freed.
 */
void ag_grpc_call_answer(struct ag_grpc_call *call, const struct ag_grpc_reply *rep);

/*
 * Listen on the Unix socket `path` (a stale socket file there is replaced;
 * anything else is refused), mode 0660 — reachable by root and the socket
 * group only. methods is borrowed and must outlive the server. Calls to
 * other paths get UNIMPLEMENTED.
 */
int ag_grpc_server_new(struct duet_loop *loop, const char *path,
                       const struct ag_grpc_method *methods, size_t n, void *arg,
                       struct ag_grpc_server **out, struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * Serve an already connected stream socket as if it had been accepted (the
 * fuzz target and tests hand in one end of a socketpair). The server owns
 * fd from then on, also on failure.
 */
int ag_grpc_server_adopt(struct ag_grpc_server *s, int fd) DUET_MUST_CHECK;

/* Connections open now. */
unsigned ag_grpc_server_conns(const struct ag_grpc_server *s);

/* Closes every connection and the listener, and unlinks the socket. NULL is fine. */
void ag_grpc_server_free(struct ag_grpc_server *s);

#endif
