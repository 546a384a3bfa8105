/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what the agent's CSI sockets read: HTTP/2 (nghttp2,
 * server side), our unary gRPC framing (agent/src/grpc_server.c) and the
 * protobuf-c decoding of the largest request, NodePublishVolumeRequest.
 * The input is written, as a client would, into one end of a socketpair
 * whose other end the server adopts; the loop then runs until the server
 * has nothing more to do. Seeds are real python3-grpcio requests
 * (tests/fuzz/corpus/grpc/). A well-formed NodePublishVolumeRequest is held
 * (as the CSI layer holds a publish while its certificate is made): answered
 * in step 5 of the same iteration when its volume_id has an odd length,
 * else after the connection is gone (the answer is dropped).
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

static struct duet_loop *loop;
static struct ag_grpc_call *soon[AG_GRPC_MAX_STREAMS * 4], *late[AG_GRPC_MAX_STREAMS * 4];
static size_t n_soon, n_late;
static struct duet_defer answer_defer;

static void answer(struct ag_grpc_call **calls, size_t *n)
{
    struct ag_grpc_reply rep = {0};

    ag_grpc_fail(&rep, AG_GRPC_ABORTED, "late answer");
    for (size_t i = 0; i < *n; i++)
        ag_grpc_call_answer(calls[i], &rep);
    *n = 0;
}

static void on_answer(struct duet_loop *l, void *arg)
{
    answer(soon, &n_soon);
}

static void publish(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    Csi__V1__NodePublishVolumeRequest *m =
        csi__v1__node_publish_volume_request__unpack(NULL, len, req);
    struct ag_grpc_call *call;
    bool odd;

    if (!m) {
        ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "malformed \"%s\"", "request\n\x01");
        return;
    }
    for (size_t i = 0; i < m->n_volume_context; i++)
        (void)strlen(m->volume_context[i]->key);
    ag_grpc_fail(rep, AG_GRPC_PERMISSION_DENIED, "pod %s: denied", m->volume_id);
    odd = strlen(m->volume_id) % 2;
    csi__v1__node_publish_volume_request__free_unpacked(m, NULL);
    if ((odd ? n_soon : n_late) == DUET_ARRAY_SIZE(soon) || !(call = ag_grpc_call_hold(rep)))
        return; /* answered now, with rep */
    if (odd) {
        soon[n_soon++] = call;
        duet_loop_defer(loop, &answer_defer);
    } else {
        late[n_late++] = call;
    }
}

static const struct ag_grpc_method methods[] = {
    {"/csi.v1.Node/NodePublishVolume", publish},
    {"/csi.v1.Identity/Probe", echo},
};

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
        duet_defer_init(&answer_defer, on_answer, NULL);
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
    /* After the loop, so usually to a connection already closed. */
    answer(soon, &n_soon);
    answer(late, &n_late);
    for (int i = 0; i < 4 && ag_grpc_server_conns(srv) > 0; i++)
        if (duet_loop_run_once(loop, 0) < 0)
            break;
    return 0;
}
