/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI services of csi.h, over grpc_server.c. Two sockets:
 *   <registration_dir>/<driver>-reg.sock  pluginregistration.Registration,
 *                                         for kubelet's plugin watcher;
 *   <endpoint>                            csi.v1.Identity and csi.v1.Node.
 * Only inline ephemeral volumes are served, and only to pods whose
 * (namespace, ServiceAccount) the configuration binds to the product
 * (csi_policy.h; default deny). Every call is decoded with protobuf-c and
 * logged with the pod and the volume; secrets in requests are never read.
 *
 * Status codes follow the CSI specification, with one rule of our own: an
 * issuer failure is UNAVAILABLE, never a final code, so kubelet retries.
 *
 * NodePublishVolume of a new volume: every check and the policy run at
 * once, on the loop; then the call is held (grpc_server.h) while a work
 * queue's thread makes the key, the certificate and the check (csi_vol.h),
 * and answered when the volume is published and mounted, back on the loop.
 * Both issuers sign off the loop (issuer.h's snapshots): local with the
 * parsed CA, CFSSL with a request of its own per thread, so neither a burst
 * of pods nor a CFSSL that hangs until its timeout stops the loop, and a
 * stopping agent abandons the requests in flight. Meanwhile the volume is
 * pending in the store: the same publish again waits for the same answer
 * (no second issuance), other arguments get ALREADY_EXISTS, it counts for
 * max_volumes, and an unpublish cancels it (the held calls get ABORTED,
 * nothing is written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csi.pb-c.h"
#include "pluginregistration.pb-c.h"

#include "csi.h"
#include "csi_mount.h"
#include "csi_policy.h"
#include "csi_vol.h"
#include "grpc_server.h"
#include "run.h"
#include "workq.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/log.h"

#define CTX "csi.storage.k8s.io/"
#define N_CODES 15
#define MAX_SIGNERS 4
#define UNPUBLISHED 1 /* answer_waiters: the volume was unpublished while pending */

/* A NodePublishVolume call held until its pending volume is done. */
struct ag_csi_waiter {
    struct ag_csi_waiter *next;
    struct ag_grpc_call *call;
};

struct ag_csi {
    struct duet_loop *loop;
    struct ag_gen *gen;         /* borrowed: the current generation */
    struct duet_defer *changed; /* borrowed: queued when volumes come or go */
    /* Fixed at start (a change needs a restart): copies of the configuration. */
    char *driver, *endpoint, *reg_path, *node_id, *pods_dir, *state_dir;
    struct ag_csi_store store;
    struct ag_grpc_server *node_srv, *reg_srv;
    struct ag_workq *q; /* signing threads */
    bool registered;
    uint64_t publish[N_CODES], unpublish[N_CODES]; /* by gRPC status code */
};

/* ---- protobuf-c plumbing --------------------------------------------------------- */

static void *pb_alloc(void *d, size_t n)
{
    return duet_malloc(n);
}
static void pb_free(void *d, void *p)
{
    duet_free(p);
}
static ProtobufCAllocator pb_mem = {pb_alloc, pb_free, NULL};

static void *unpack(const ProtobufCMessageDescriptor *d, const uint8_t *req, size_t len,
                    struct ag_grpc_reply *rep)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &pb_mem, len, req);

    if (!m)
        ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "malformed %s", d->short_name);
    return m;
}

static void pack(const ProtobufCMessage *m, struct ag_grpc_reply *rep)
{
    size_t n = protobuf_c_message_get_packed_size(m);

    rep->body = duet_malloc(n ? n : 1);
    if (!rep->body) {
        ag_grpc_fail(rep, AG_GRPC_RESOURCE_EXHAUSTED, "agent out of memory");
        return;
    }
    rep->len = protobuf_c_message_pack(m, rep->body);
    rep->code = AG_GRPC_OK;
}

/* ---- registration and identity --------------------------------------------------- */

static void reg_get_info(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    /* protobuf-c's fields are char *; the strings are only read. */
    static char type[] = "CSIPlugin", v1[] = "1.0.0";
    struct ag_csi *k = arg;
    char *versions[] = {v1};
    Pluginregistration__PluginInfo info = PLUGINREGISTRATION__PLUGIN_INFO__INIT;

    info.type = type;
    info.name = k->driver;
    info.endpoint = k->endpoint;
    info.n_supported_versions = 1;
    info.supported_versions = versions;
    pack(&info.base, rep);
}

static void reg_notify(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    struct ag_csi *k = arg;
    Pluginregistration__RegistrationStatus *st =
        unpack(&pluginregistration__registration_status__descriptor, req, len, rep);
    Pluginregistration__RegistrationStatusResponse out =
        PLUGINREGISTRATION__REGISTRATION_STATUS_RESPONSE__INIT;
    char q[600];

    if (!st)
        return;
    k->registered = st->plugin_registered;
    if (st->plugin_registered)
        duet_log(DUET_LOG_INFO, "csi", "driver=%s msg=\"registered with kubelet\"", k->driver);
    else
        duet_log(DUET_LOG_ERROR, "csi",
                 "driver=%s msg=\"kubelet refused the registration\" "
                 "why=%s",
                 k->driver, duet_log_quote(q, sizeof(q), st->error));
    protobuf_c_message_free_unpacked(&st->base, &pb_mem);
    pack(&out.base, rep);
}

static void id_plugin_info(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    static char version[] = DUET_VERSION;
    struct ag_csi *k = arg;
    Csi__V1__GetPluginInfoResponse out = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;

    out.name = k->driver;
    out.vendor_version = version;
    pack(&out.base, rep);
}

/* A node-only plugin: no controller service, no topology. */
static void id_capabilities(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    Csi__V1__GetPluginCapabilitiesResponse out = CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;

    pack(&out.base, rep);
}

static void id_probe(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    Csi__V1__ProbeResponse out = CSI__V1__PROBE_RESPONSE__INIT;
    Csi__V1__BoolValue ready = CSI__V1__BOOL_VALUE__INIT;

    ready.value = 1;
    out.ready = &ready;
    pack(&out.base, rep);
}

static void node_info(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    struct ag_csi *k = arg;
    Csi__V1__NodeGetInfoResponse out = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;

    out.node_id = k->node_id;
    /* 0: no limit for the scheduler. Inline volumes are not counted by it;
     * csi.max_volumes is enforced at publish. */
    out.max_volumes_per_node = 0;
    pack(&out.base, rep);
}

/* VOLUME_MOUNT_GROUP: kubelet hands us the pod's fsGroup instead of chowning a read-only mount. */
static void node_capabilities(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    Csi__V1__NodeGetCapabilitiesResponse out = CSI__V1__NODE_GET_CAPABILITIES_RESPONSE__INIT;
    Csi__V1__NodeServiceCapability cap = CSI__V1__NODE_SERVICE_CAPABILITY__INIT;
    Csi__V1__NodeServiceCapability__RPC rpc = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__INIT;
    Csi__V1__NodeServiceCapability *caps[] = {&cap};

    rpc.type = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_MOUNT_GROUP;
    cap.type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
    cap.rpc = &rpc;
    out.n_capabilities = 1;
    out.capabilities = caps;
    pack(&out.base, rep);
}

/* ---- NodePublishVolume -------------------------------------------------------------- */

/* What a publish request says, strings borrowed from the decoded message. */
struct pub_req {
    struct ag_csi_volspec spec;
    const char *want; /* the "product" attribute, or NULL */
    const char *ephemeral;
    const char *group_attr; /* the "fsGroup" attribute, or NULL */
};

/* A gid from decimal text, 0..2^31-1. */
static bool parse_gid(const char *s, gid_t *out)
{
    char *end;
    long long v;

    if (!s || !*s || *s < '0' || *s > '9')
        return false;
    v = strtoll(s, &end, 10);
    if (*end || v < 0 || v > 2147483647LL)
        return false;
    *out = (gid_t)v;
    return true;
}

static int read_context(const Csi__V1__NodePublishVolumeRequest *m, struct pub_req *r,
                        struct ag_grpc_reply *rep)
{
    for (size_t i = 0; i < m->n_volume_context; i++) {
        const char *key = m->volume_context[i]->key, *val = m->volume_context[i]->value;

        if (strcmp(key, CTX "pod.name") == 0)
            r->spec.pod = val;
        else if (strcmp(key, CTX "pod.namespace") == 0)
            r->spec.ns = val;
        else if (strcmp(key, CTX "pod.uid") == 0)
            r->spec.pod_uid = val;
        else if (strcmp(key, CTX "serviceAccount.name") == 0)
            r->spec.sa = val;
        else if (strcmp(key, CTX "ephemeral") == 0)
            r->ephemeral = val;
        else if (strcmp(key, "product") == 0)
            r->want = val;
        else if (strcmp(key, "fsGroup") == 0)
            r->group_attr = val;
        else if (strncmp(key, CTX, strlen(CTX)) != 0) /* kubelet may add more of its own */
            return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT,
                                "unknown volume attribute \"%.64s\""
                                " (duet takes \"product\" and \"fsGroup\")",
                                key);
    }
    return 0;
}

/* A path kubelet could have made for this pod: below pods_dir/<uid>/, without . or .. parts. */
static bool target_ok(const struct ag_csi *k, const char *t, const char *uid)
{
    size_t pl = strlen(k->pods_dir), ul = strlen(uid);

    if (strlen(t) > 4000 || strncmp(t, k->pods_dir, pl) != 0 || t[pl] != '/' ||
        strncmp(t + pl + 1, uid, ul) != 0 || t[pl + 1 + ul] != '/' || strstr(t, "/./") ||
        strstr(t, "/../") || strstr(t, "//"))
        return false;
    size_t n = strlen(t);
    return !(n >= 3 && strcmp(t + n - 3, "/..") == 0) && !(n >= 2 && strcmp(t + n - 2, "/.") == 0);
}

/* Kubernetes names (namespace, pod, ServiceAccount) and UIDs: nothing a log or path could misread.
 */
static bool k8s_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return false;
    return true;
}

/* Pod information and the request's shape; 0 or a status code with rep->msg. */
static int check_pub(const struct ag_csi *k, const Csi__V1__NodePublishVolumeRequest *m,
                     struct pub_req *r, struct ag_grpc_reply *rep)
{
    const Csi__V1__VolumeCapability *cap = m->volume_capability;

    r->spec.volume_id = m->volume_id;
    r->spec.target = m->target_path;
    if (!*m->volume_id || strlen(m->volume_id) > 256)
        return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "volume_id missing or too long");
    if (!cap || cap->access_type_case != CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT)
        return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT,
                            "volume_capability must be a mount "
                            "(duet volumes are folders, not block devices)");
    DUET_TRY(read_context(m, r, rep));
    if (!r->spec.pod || !r->spec.ns || !r->spec.pod_uid || !r->spec.sa || !*r->spec.pod ||
        !*r->spec.ns || !*r->spec.pod_uid || !*r->spec.sa)
        return ag_grpc_fail(rep, AG_GRPC_PERMISSION_DENIED,
                            "no pod information in the request: "
                            "the CSIDriver object %s needs podInfoOnMount: true",
                            k->driver);
    if (!k8s_name(r->spec.pod) || !k8s_name(r->spec.ns) || !k8s_name(r->spec.pod_uid) ||
        !k8s_name(r->spec.sa))
        return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "malformed pod information");
    if (!r->ephemeral || strcmp(r->ephemeral, "true") != 0)
        return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT,
                            "%s serves only inline ephemeral "
                            "volumes (a csi: volume in the pod spec)",
                            k->driver);
    if (!target_ok(k, m->target_path, r->spec.pod_uid))
        return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "target_path is not below %s/%s/",
                            k->pods_dir, r->spec.pod_uid);
    if (cap->mount->volume_mount_group && *cap->mount->volume_mount_group) {
        if (!parse_gid(cap->mount->volume_mount_group, &r->spec.group))
            return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "volume_mount_group is not a gid");
        r->spec.has_group = true;
    } else if (r->group_attr) {
        if (!parse_gid(r->group_attr, &r->spec.group))
            return ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "attribute fsGroup is not a gid");
        r->spec.has_group = true;
    }
    return 0;
}

/* The same volume again (kubelet retries, or restarted): OK, mounted again if it was lost. */
static int republish(struct ag_csi_vol *v, const struct ag_csi_volspec *spec,
                     struct ag_grpc_reply *rep)
{
    struct duet_errbuf eb;

    if (!ag_csi_vol_same(v, spec))
        return ag_grpc_fail(rep, AG_GRPC_ALREADY_EXISTS,
                            "volume %s is published with other "
                            "arguments",
                            spec->volume_id);
    if (ag_mount_is_mountpoint(v->target) == 1)
        return 0;
    duet_errbuf_clear(&eb);
    if (ag_csi_vol_remount(v, &eb) < 0)
        return ag_grpc_fail(rep, AG_GRPC_INTERNAL, "%s", eb.msg);
    return 0;
}

/* A failed creation: kubelet retries every failure; UNAVAILABLE says "try again" for issuer
 * trouble. */
static int publish_failed(struct ag_grpc_reply *rep, int rc, const struct ag_csi_volspec *v,
                          const struct duet_errbuf *eb)
{
    enum duet_err_class cls = duet_err_class(rc);
    int code = cls == DUET_ERRC_INTERNAL || cls == DUET_ERRC_CONFIG ? AG_GRPC_INTERNAL
                                                                    : AG_GRPC_UNAVAILABLE;

    return ag_grpc_fail(rep, code, "pod %s/%s: %s for %s failed: %s", v->ns, v->pod,
                        code == AG_GRPC_UNAVAILABLE ? "issuing" : "publishing", v->product,
                        eb->msg);
}

static void log_published(const struct ag_csi_vol *v)
{
    duet_log(DUET_LOG_INFO, "csi",
             "volume=%s pod=%s/%s sa=%s product=%s serial=%s sha256=%s "
             "not_after=%lld msg=\"published\"",
             v->volume_id, v->ns, v->pod, v->sa, v->product, v->ident->serial, v->ident->sha256,
             (long long)(v->ident->rot.v.not_after / 1000));
}

/* Hold the call until the pending volume v is done; 0, or a status for an answer now. */
static int wait_for(struct ag_csi_vol *v, const struct ag_csi_volspec *spec,
                    struct ag_grpc_reply *rep)
{
    struct ag_csi_waiter *w;

    if (!ag_csi_vol_same(v, spec))
        return ag_grpc_fail(rep, AG_GRPC_ALREADY_EXISTS,
                            "volume %s is being published with other arguments", spec->volume_id);
    w = duet_calloc(1, sizeof(*w));
    if (!w || !(w->call = ag_grpc_call_hold(rep))) {
        duet_free(w);
        /* The issuance goes on; kubelet's retry finds it. */
        return ag_grpc_fail(rep, AG_GRPC_UNAVAILABLE, "agent out of memory");
    }
    w->next = v->waiters;
    v->waiters = w;
    return 0;
}

static void count(uint64_t *by_code, int code);
static void log_call(const char *call, const struct pub_req *r, const char *vid,
                     const struct ag_grpc_reply *rep);

/* Answer every call held for v: OK (rc 0) or why not. */
static void answer_waiters(struct ag_csi *k, struct ag_csi_vol *v, int rc,
                           const struct duet_errbuf *eb)
{
    const struct pub_req r = {.spec = {.volume_id = v->volume_id,
                                       .target = v->target,
                                       .ns = v->ns,
                                       .pod = v->pod,
                                       .sa = v->sa,
                                       .product = v->product}};

    while (v->waiters) {
        struct ag_csi_waiter *w = v->waiters;
        Csi__V1__NodePublishVolumeResponse out = CSI__V1__NODE_PUBLISH_VOLUME_RESPONSE__INIT;
        struct ag_grpc_reply rep = {0};

        v->waiters = w->next;
        if (rc == 0)
            pack(&out.base, &rep);
        else if (rc == UNPUBLISHED)
            ag_grpc_fail(&rep, AG_GRPC_ABORTED,
                         "volume %s was unpublished while its certificate was being issued",
                         v->volume_id);
        else
            publish_failed(&rep, rc, &r.spec, eb);
        count(k->publish, rep.code);
        log_call("NodePublishVolume", &r, v->volume_id, &rep);
        ag_grpc_call_answer(w->call, &rep);
        duet_free(rep.body);
        duet_free(w);
    }
}

/* csi_vol.h's report for a volume made off the loop. It is logged before it is answered:
 * whoever reads the answer may read the log next. */
static void on_vol_done(void *arg, struct ag_csi_vol *v, int rc, const struct duet_errbuf *eb)
{
    struct ag_csi *k = arg;

    if (rc >= 0)
        log_published(v);
    answer_waiters(k, v, rc, eb);
    if (rc >= 0)
        duet_loop_defer(k->loop, k->changed);
}

static int do_publish(struct ag_csi *k, struct pub_req *r, struct ag_grpc_reply *rep)
{
    struct ag_csi_vol *v = ag_csi_store_find(&k->store, r->spec.volume_id);
    struct duet_errbuf eb;
    char why[400];
    int rc;

    /* The policy first, also for a republish: what it names must still be granted. */
    rc = ag_csi_decide(k->gen->cfg, r->spec.ns, r->spec.sa, r->want, &r->spec.product, why,
                       sizeof(why));
    if (rc != 0)
        return ag_grpc_fail(rep, rc, "pod %s/%s: %s", r->spec.ns, r->spec.pod, why);
    if (v && v->job)
        return wait_for(v, &r->spec, rep);
    if (v)
        return republish(v, &r->spec, rep);
    if (ag_csi_store_find_target(&k->store, r->spec.target))
        return ag_grpc_fail(rep, AG_GRPC_ALREADY_EXISTS, "target_path holds another volume");
    if (k->store.n >= (size_t)k->gen->cfg->csi->max_volumes)
        return ag_grpc_fail(rep, AG_GRPC_RESOURCE_EXHAUSTED,
                            "this node holds the maximum of "
                            "%zu duet volumes (csi.max_volumes)",
                            k->store.n);
    duet_errbuf_clear(&eb);
    rc = ag_csi_vol_start(&k->store, k->gen, &r->spec, &v, &eb);
    if (rc < 0)
        return publish_failed(rep, rc, &r->spec, &eb);
    return wait_for(v, &r->spec, rep);
}

static void count(uint64_t *by_code, int code)
{
    by_code[code >= 0 && code < N_CODES ? code : AG_GRPC_UNKNOWN]++;
}

static void log_call(const char *call, const struct pub_req *r, const char *vid,
                     const struct ag_grpc_reply *rep)
{
    char q[600], t[600];

    if (rep->code == AG_GRPC_OK)
        return;
    duet_log(DUET_LOG_WARN, "csi", "call=%s volume=%s pod=%s/%s sa=%s target=%s code=%s msg=%s",
             call, vid, r && r->spec.ns ? r->spec.ns : "-", r && r->spec.pod ? r->spec.pod : "-",
             r && r->spec.sa ? r->spec.sa : "-",
             duet_log_quote(t, sizeof(t), r && r->spec.target ? r->spec.target : "-"),
             ag_grpc_code_name(rep->code), duet_log_quote(q, sizeof(q), rep->msg));
}

static void node_publish(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    struct ag_csi *k = arg;
    Csi__V1__NodePublishVolumeRequest *m =
        unpack(&csi__v1__node_publish_volume_request__descriptor, req, len, rep);
    Csi__V1__NodePublishVolumeResponse out = CSI__V1__NODE_PUBLISH_VOLUME_RESPONSE__INIT;
    struct pub_req r = {0};

    if (m && check_pub(k, m, &r, rep) == 0 && do_publish(k, &r, rep) == 0 && !rep->held)
        pack(&out.base, rep);
    if (!rep->held) { /* else counted and logged when answered */
        count(k->publish, rep->code);
        log_call("NodePublishVolume", &r, m ? m->volume_id : "-", rep);
    }
    if (m)
        protobuf_c_message_free_unpacked(&m->base, &pb_mem);
}

/* ---- NodeUnpublishVolume ------------------------------------------------------------ */

static int do_unpublish(struct ag_csi *k, const char *vid, const char *target,
                        struct ag_grpc_reply *rep)
{
    struct ag_csi_vol *v = ag_csi_store_find(&k->store, vid);
    struct duet_errbuf eb;
    size_t pl = strlen(k->pods_dir);

    duet_errbuf_clear(&eb);
    if (v && v->job) {
        /* Mid-issuance: nothing of it is on disk yet, and nothing will be. */
        answer_waiters(k, v, UNPUBLISHED, NULL);
        ag_csi_vol_cancel(&k->store, v);
        duet_log(DUET_LOG_INFO, "csi",
                 "volume=%s msg=\"unpublished during its issuance: nothing written\"", vid);
        v = NULL; /* and the target as for an unknown volume, below */
    } else if (v) {
        char name[600];

        snprintf(name, sizeof(name), "%s", v->name);
        if (ag_csi_vol_destroy(&k->store, v, &eb) < 0)
            return ag_grpc_fail(rep, AG_GRPC_INTERNAL, "%s", eb.msg);
        duet_log(DUET_LOG_INFO, "csi", "volume=%s identity=%s msg=\"unpublished: key wiped\"", vid,
                 name);
        return 0;
    }
    /* Unknown (already removed, or lost with a crash): make sure nothing of
     * ours stays mounted there, and answer OK as the specification asks. */
    if (strncmp(target, k->pods_dir, pl) == 0 && target[pl] == '/' && !strstr(target, "/../") &&
        ag_mount_release(target, &eb) < 0)
        return ag_grpc_fail(rep, AG_GRPC_INTERNAL, "%s", eb.msg);
    return 0;
}

static void node_unpublish(void *arg, const uint8_t *req, size_t len, struct ag_grpc_reply *rep)
{
    struct ag_csi *k = arg;
    Csi__V1__NodeUnpublishVolumeRequest *m =
        unpack(&csi__v1__node_unpublish_volume_request__descriptor, req, len, rep);
    Csi__V1__NodeUnpublishVolumeResponse out = CSI__V1__NODE_UNPUBLISH_VOLUME_RESPONSE__INIT;
    struct pub_req r = {0};

    if (m) {
        r.spec.target = m->target_path;
        if (!*m->volume_id || !*m->target_path || m->target_path[0] != '/')
            ag_grpc_fail(rep, AG_GRPC_INVALID_ARGUMENT, "volume_id and target_path are required");
        else if (do_unpublish(k, m->volume_id, m->target_path, rep) == 0)
            pack(&out.base, rep);
    }
    count(k->unpublish, rep->code);
    log_call("NodeUnpublishVolume", &r, m ? m->volume_id : "-", rep);
    if (m)
        protobuf_c_message_free_unpacked(&m->base, &pb_mem);
}

/* ---- life ------------------------------------------------------------------------ */

static const struct ag_grpc_method reg_methods[] = {
    {"/pluginregistration.Registration/GetInfo", reg_get_info},
    {"/pluginregistration.Registration/NotifyRegistrationStatus", reg_notify},
};

static const struct ag_grpc_method csi_methods[] = {
    {"/csi.v1.Identity/GetPluginInfo", id_plugin_info},
    {"/csi.v1.Identity/GetPluginCapabilities", id_capabilities},
    {"/csi.v1.Identity/Probe", id_probe},
    {"/csi.v1.Node/NodeGetInfo", node_info},
    {"/csi.v1.Node/NodeGetCapabilities", node_capabilities},
    {"/csi.v1.Node/NodePublishVolume", node_publish},
    {"/csi.v1.Node/NodeUnpublishVolume", node_unpublish},
};

static int copy_cfg(struct ag_csi *k, const struct ag_csi_cfg *c)
{
    char reg[256];

    snprintf(reg, sizeof(reg), "%s/%s-reg.sock", c->registration_dir, c->driver);
    k->driver = duet_strdup(c->driver);
    k->endpoint = duet_strdup(c->endpoint);
    k->reg_path = duet_strdup(reg);
    k->node_id = duet_strdup(c->node_id);
    k->pods_dir = duet_strdup(c->pods_dir);
    k->state_dir = duet_strdup(c->state_dir);
    return k->driver && k->endpoint && k->reg_path && k->node_id && k->pods_dir && k->state_dir
               ? 0
               : DUET_ENOMEM;
}

void ag_csi_stop(struct ag_csi *k)
{
    if (!k)
        return;
    ag_grpc_server_free(k->reg_srv); /* first: kubelet deregisters before the endpoint goes */
    ag_grpc_server_free(k->node_srv);
    /* Pending volumes come back cancelled, unwritten; their held calls are gone with the
     * connections. */
    ag_workq_free(k->q);
    ag_csi_store_close(&k->store);
    duet_free(k->driver);
    duet_free(k->endpoint);
    duet_free(k->reg_path);
    duet_free(k->node_id);
    duet_free(k->pods_dir);
    duet_free(k->state_dir);
    duet_free(k);
}

/*
 * One signing thread per core (at most MAX_SIGNERS): the local CA's
 * signature is CPU only; CFSSL's requests wait on the server, one in flight
 * per thread.
 */
static int start_signers(struct ag_csi *k, struct duet_errbuf *eb)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    DUET_TRY(ag_workq_new(k->loop,
                          cpus < 1             ? 1
                          : cpus > MAX_SIGNERS ? MAX_SIGNERS
                                               : (unsigned)cpus,
                          &k->q, eb));
    ag_csi_store_async(&k->store, k->q, on_vol_done, k);
    return 0;
}

int ag_csi_start(struct duet_loop *loop, struct ag_gen *g, struct duet_defer *changed,
                 struct ag_csi **out, struct duet_errbuf *eb)
{
    const struct ag_csi_cfg *c = g->cfg->csi;
    struct ag_csi *k = duet_calloc(1, sizeof(*k));
    size_t kept;
    int rc;

    if (!k || copy_cfg(k, c) < 0) {
        ag_csi_stop(k);
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    }
    k->loop = loop;
    k->gen = g;
    k->changed = changed;
    DUET_TRY_GOTO(ag_csi_store_open(&k->store, c->state_dir, (unsigned)c->tmpfs_size_mb, eb), rc,
                  fail);
    kept = ag_csi_store_restore(&k->store, g);
    DUET_TRY_GOTO(start_signers(k, eb), rc, fail);
    DUET_TRY_GOTO(ag_grpc_server_new(loop, k->endpoint, csi_methods, DUET_ARRAY_SIZE(csi_methods),
                                     k, &k->node_srv, eb),
                  rc, fail);
    /* Registration last: kubelet connects to the endpoint as soon as it sees this socket. */
    DUET_TRY_GOTO(ag_grpc_server_new(loop, k->reg_path, reg_methods, DUET_ARRAY_SIZE(reg_methods),
                                     k, &k->reg_srv, eb),
                  rc, fail);
    duet_log(DUET_LOG_INFO, "csi",
             "driver=%s node=%s endpoint=%s registration=%s volumes=%zu "
             "msg=\"CSI node plugin serving\"",
             k->driver, k->node_id, k->endpoint, k->reg_path, kept);
    *out = k;
    return 0;
fail:
    ag_csi_stop(k);
    return rc;
}

int ag_csi_reload(struct ag_csi *k, struct ag_gen *g, struct duet_errbuf *eb)
{
    const struct ag_csi_cfg *c = g->cfg->csi;
    char reg[256];

    if (!c)
        return duet_errf(eb, DUET_E_CFG_RANGE, "csi: removing it needs a restart");
    snprintf(reg, sizeof(reg), "%s/%s-reg.sock", c->registration_dir, c->driver);
    if (strcmp(c->driver, k->driver) != 0 || strcmp(c->endpoint, k->endpoint) != 0 ||
        strcmp(reg, k->reg_path) != 0 || strcmp(c->state_dir, k->state_dir) != 0 ||
        strcmp(c->pods_dir, k->pods_dir) != 0 || strcmp(c->node_id, k->node_id) != 0)
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "csi: driver, endpoint, registration_dir, "
                         "state_dir, pods_dir and node_id change only with a restart");
    ag_csi_store_rebind(&k->store, g);
    k->gen = g;
    return 0;
}

size_t ag_csi_count(const struct ag_csi *k)
{
    return k ? k->store.n : 0;
}

struct ag_ident *ag_csi_ident(struct ag_csi *k, size_t i)
{
    return k->store.v[i]->ident;
}

/* ---- status ------------------------------------------------------------------------ */

bool ag_csi_readyz(const struct ag_csi *k, struct duet_status_reply *rep)
{
    int64_t now = duet_clock_real_ms();
    bool ok = true;

    for (size_t i = 0; i < k->store.n; i++) {
        const struct ag_csi_vol *v = k->store.v[i];
        if (v->ident && (!v->ident->rot.have || ag_rotate_invalid_at(&v->ident->rot.v, now))) {
            ok = false;
            duet_status_reply_printf(rep, "not ready: volume of %s\n", v->name);
        }
    }
    return ok;
}

struct group {
    const char *ns, *product;
    uint64_t volumes, orphaned, renewals, failures;
    int64_t min_not_after; /* ms; 0: none */
};

/* Aggregate per (namespace, product): a series per pod would grow without bound. */
static size_t aggregate(const struct ag_csi *k, struct group *g)
{
    size_t n = 0;

    for (size_t i = 0; i < k->store.n; i++) {
        const struct ag_csi_vol *v = k->store.v[i];
        size_t j = 0;

        while (j < n && (strcmp(g[j].ns, v->ns) != 0 || strcmp(g[j].product, v->product) != 0))
            j++;
        if (j == n)
            g[n++] = (struct group){.ns = v->ns, .product = v->product};
        g[j].volumes++;
        if (v->job) /* pending: not yet issued */
            continue;
        if (!v->ident) {
            g[j].orphaned++;
            continue;
        }
        g[j].renewals += v->ident->renewals;
        g[j].failures += v->ident->failures;
        if (v->ident->rot.have &&
            (!g[j].min_not_after || v->ident->rot.v.not_after < g[j].min_not_after))
            g[j].min_not_after = v->ident->rot.v.not_after;
    }
    return n;
}

static void metric_calls(struct duet_status_reply *rep, const char *name, const char *help,
                         const uint64_t *by_code)
{
    duet_status_reply_printf(rep, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int c = 0; c < N_CODES; c++)
        if (by_code[c])
            duet_status_reply_printf(rep, "%s{code=\"%s\"} %llu\n", name, ag_grpc_code_name(c),
                                     (unsigned long long)by_code[c]);
}

void ag_csi_metrics(const struct ag_csi *k, struct duet_status_reply *rep)
{
    struct group *g = k->store.n ? duet_calloc(k->store.n, sizeof(*g)) : NULL;
    size_t n = g ? aggregate(k, g) : 0;
    static const char *const names[] = {
        "duet_agent_csi_volumes", "duet_agent_csi_volumes_not_renewed",
        "duet_agent_csi_renewals_total", "duet_agent_csi_failures_total",
        "duet_agent_csi_cert_not_after_min_seconds"};
    static const char *const help[] = {
        "gauge volumes published", "gauge volumes whose product is no longer granted",
        "counter certificates issued for volumes", "counter failed issuances for volumes",
        "gauge earliest notAfter among the volumes, Unix time"};

    metric_calls(rep, "duet_agent_csi_publish_total", "NodePublishVolume calls by status",
                 k->publish);
    metric_calls(rep, "duet_agent_csi_unpublish_total", "NodeUnpublishVolume calls by status",
                 k->unpublish);
    duet_status_reply_printf(rep,
                             "# HELP duet_agent_csi_registered 1 once kubelet confirmed "
                             "the registration\n# TYPE duet_agent_csi_registered gauge\n"
                             "duet_agent_csi_registered %d\n",
                             k->registered ? 1 : 0);
    for (size_t s = 0; s < DUET_ARRAY_SIZE(names); s++) {
        const char *type = help[s][0] == 'g' ? "gauge" : "counter";

        duet_status_reply_printf(rep, "# HELP %s %s\n# TYPE %s %s\n", names[s],
                                 strchr(help[s], ' ') + 1, names[s], type);
        for (size_t i = 0; i < n; i++) {
            uint64_t val[] = {g[i].volumes, g[i].orphaned, g[i].renewals, g[i].failures,
                              (uint64_t)(g[i].min_not_after / 1000)};
            /* Label values are Kubernetes names and configured products: [a-zA-Z0-9.-]. */
            duet_status_reply_printf(rep, "%s{namespace=\"%s\",product=\"%s\"} %llu\n", names[s],
                                     g[i].ns, g[i].product, (unsigned long long)val[s]);
        }
    }
    duet_free(g);
}
