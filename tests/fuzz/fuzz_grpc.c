/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what the agent's CSI sockets read: HTTP/2 (nghttp2,
 * server side), our unary gRPC framing (agent/src/grpc_server.c) and the
 * protobuf-c decoding of the largest request, NodePublishVolumeRequest.
 * The input is written, as a client would, into one end of a socketpair
 * whose other end the server adopts; the loop then runs until the server
 * has nothing more to do. Seeds are real python3-grpcio requests
 * (tests/fuzz/corpus/grpc/).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "csi.pb-c.h"
#include "grpc_server.h"

#include "duet/alloc.h"
#include "duet/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void echo(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    rep->body = duet_malloc(len ? len : 1);
    if (!rep->body) {
        ag_grpc_fail(rep, AG_GRPC_RESOURCE_EXHAUSTED, "no memory");
        return;
    }
    memcpy(rep->body, req, len);
    rep->len = len;
    rep->code = AG_GRPC_OK;
}

static void publish(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    Csi__V1__NodePublishVolumeRequest *m =
        csi__v1__node_publish_volume_request__unpack(NULL, len, req);

    if (!m) {
        ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "malformed \"%s\"", "request\n\x01");
        return;
    }
    for (size_t i = 0; i < m->n_volume_context; i++)
        (void)strlen(m->volume_context[i]->key);
    ag_grpc_fail(rep, AG_GRPC_PERMISSION_DENIED, "pod %s: denied", m->volume_id);
    csi__v1__node_publish_volume_request__free_unpacked(m, NULL);
}

static const struct ag_grpc_method methods[] = {
    {"/csi.v1.Node/NodePublishVolume", publish},
    {"/csi.v1.Identity/Probe", echo},
};

static struct duet_loop *loop;
static struct ag_grpc_server *srv;

/* The server unlinks its socket file when freed. */
static void at_exit(void)
{
    ag_grpc_server_free(srv);
    duet_loop_free(loop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct duet_errbuf eb = {{0}};
    uint8_t sink[65536];
    int sv[2];

    if (!loop) {
        char path[64];

        snprintf(path, sizeof(path), "/tmp/duet-fuzz-grpc.%d.sock", (int)getpid());
        if (duet_loop_new(&loop) < 0 ||
            ag_grpc_server_new(loop, path, methods, 2, NULL, &srv, &eb) < 0)
            abort();
        atexit(at_exit);
    }
    if (size > 60000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
        return 0;
    if (write(sv[0], data, size) != (ssize_t)size || shutdown(sv[0], SHUT_WR) == -1 ||
        ag_grpc_server_adopt(srv, sv[1]) < 0) {
        close(sv[0]);
        return 0;
    }
    /* Bounded: the server closes after EOF, or after answering what it read. */
    for (int i = 0; i < 64 && ag_grpc_server_conns(srv) > 0; i++) {
        if (duet_loop_run_once(loop, 0) < 0)
            break;
        while (read(sv[0], sink, sizeof(sink)) > 0)
            ;
    }
    close(sv[0]);
    return 0;
}
