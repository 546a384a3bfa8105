/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The volume store of csi_vol.h. Order of a creation, and why: the
 * certificate is issued and published into the volume's folder first, the
 * metadata written next, the bind mount made last. An agent killed at any
 * point leaves either nothing the pod can see (the restart finds a volume
 * whose target is not mounted and wipes it; kubelet, which got no answer,
 * publishes again) or a complete volume. A volume issued off the loop
 * writes nothing before its job comes back (the key exists only in the
 * job's memory), then follows the same order.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csi_mount.h"
#include "csi_policy.h"
#include "csi_vol.h"
#include "run.h"
#include "workq.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/digest.h"
#include "duet/file.h"
#include "duet/log.h"

#define META "meta.json"
#define META_MAX (64 * 1024)

/* An issuance off the loop: built on the loop, run on a thread, finished on the loop. */
struct ag_csi_job {
    struct ag_work w; /* first: the queue hands back &w */
    struct ag_csi_store *s;
    struct ag_csi_vol *v;
    bool cancelled;             /* v was unpublished: drop the result */
    struct ag_ident *id;        /* v's identity; owned until installed */
    struct ag_set_expect exp;   /* points into id */
    struct ag_ca_snap *snap;    /* a reference */
    const char *issuer;         /* its name (static) */
    struct ag_keypool *keys;    /* borrowed: outlives the queue */
    const atomic_bool *abandon; /* the queue's: the agent stops */
    unsigned gen_no;            /* the store's when started */
    int delay_ms;
    int64_t t0; /* monotonic ms, at start */
    /* Written by the thread, read on the loop after the queue hands it back. */
    int rc;
    struct duet_errbuf eb;
    struct ag_issued got;
};

int ag_csi_store_open(struct ag_csi_store *s, const char *state_dir, unsigned size_mb,
                      struct duet_errbuf *eb)
{
    const char *delay = getenv("DUET_TEST_CSI_ISSUE_DELAY_MS");

    memset(s, 0, sizeof(*s));
    /* Tests only: how they catch a publish in the middle of its issuance. */
    if (delay && *delay) {
        long ms = strtol(delay, NULL, 10);
        s->delay_ms = ms > 0 && ms <= 60000 ? (int)ms : 0;
    }
    DUET_TRY(ag_mount_state_tmpfs(state_dir, size_mb, eb));
    s->state_dir = duet_strdup(state_dir);
    s->vdir = duet_strdupf("%s/v", state_dir);
    if (!s->state_dir || !s->vdir) {
        ag_csi_store_close(s);
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    }
    if (mkdir(s->vdir, 0700) == -1 && errno != EEXIST) {
        int err = -errno;
        ag_csi_store_close(s);
        return duet_errf(eb, err, "%s/v: %s", state_dir, duet_strerror(err));
    }
    return 0;
}

static void vol_free(struct ag_csi_vol *v)
{
    if (!v)
        return;
    ag_ident_free(v->ident);
    duet_free(v->volume_id);
    duet_free(v->target);
    duet_free(v->ns);
    duet_free(v->pod);
    duet_free(v->pod_uid);
    duet_free(v->sa);
    duet_free(v->product);
    duet_free(v->root);
    duet_free(v->data);
    duet_free(v->name);
    duet_free(v);
}

void ag_csi_store_close(struct ag_csi_store *s)
{
    for (size_t i = 0; i < s->n; i++)
        vol_free(s->v[i]);
    duet_free(s->v);
    duet_free(s->state_dir);
    duet_free(s->vdir);
    memset(s, 0, sizeof(*s));
}

struct ag_csi_vol *ag_csi_store_find(const struct ag_csi_store *s, const char *volume_id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i]->volume_id, volume_id) == 0)
            return s->v[i];
    return NULL;
}

struct ag_csi_vol *ag_csi_store_find_target(const struct ag_csi_store *s, const char *target)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i]->target, target) == 0)
            return s->v[i];
    return NULL;
}

static bool same_group(const struct ag_csi_vol *v, const struct ag_csi_volspec *p)
{
    return v->has_group == p->has_group && (!v->has_group || v->group == p->group);
}

bool ag_csi_vol_same(const struct ag_csi_vol *v, const struct ag_csi_volspec *p)
{
    return strcmp(v->volume_id, p->volume_id) == 0 && strcmp(v->target, p->target) == 0 &&
           strcmp(v->ns, p->ns) == 0 && strcmp(v->pod, p->pod) == 0 &&
           strcmp(v->pod_uid, p->pod_uid) == 0 && strcmp(v->sa, p->sa) == 0 &&
           strcmp(v->product, p->product) == 0 && same_group(v, p);
}

static int store_add(struct ag_csi_store *s, struct ag_csi_vol *v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct ag_csi_vol **nv = duet_realloc(s->v, cap * sizeof(*nv));

        if (!nv)
            return DUET_ENOMEM;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return 0;
}

static void store_del(struct ag_csi_store *s, struct ag_csi_vol *v)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i] == v) {
            s->v[i] = s->v[--s->n];
            return;
        }
    }
}

static struct ag_csi_vol *vol_alloc(const struct ag_csi_store *s, const struct ag_csi_volspec *p)
{
    struct ag_csi_vol *v = duet_calloc(1, sizeof(*v));
    char hash[DUET_SHA256_HEX_LEN + 1];

    if (!v)
        return NULL;
    /* The folder is named by a hash: volume ids come from outside and must
     * never become path components. */
    duet_sha256_hex(p->volume_id, strlen(p->volume_id), hash);
    v->volume_id = duet_strdup(p->volume_id);
    v->target = duet_strdup(p->target);
    v->ns = duet_strdup(p->ns);
    v->pod = duet_strdup(p->pod);
    v->pod_uid = duet_strdup(p->pod_uid);
    v->sa = duet_strdup(p->sa);
    v->product = duet_strdup(p->product);
    v->root = duet_strdupf("%s/%s", s->vdir, hash);
    v->data = duet_strdupf("%s/%s/data", s->vdir, hash);
    v->name = duet_strdupf("%s/%s/%s", p->ns, p->pod, p->product);
    v->has_group = p->has_group;
    v->group = p->group;
    if (!v->volume_id || !v->target || !v->ns || !v->pod || !v->pod_uid || !v->sa || !v->product ||
        !v->root || !v->data || !v->name) {
        vol_free(v);
        return NULL;
    }
    return v;
}

static const struct ag_identity_cfg *find_product(const struct ag_config *c, const char *product)
{
    for (size_t i = 0; i < c->n_identities; i++)
        if (strcmp(c->identities[i].product, product) == 0)
            return &c->identities[i];
    return NULL;
}

/* The volume's identity under configuration c: its product's profile, the pod's SPIFFE ID. */
static int make_ident(const struct ag_csi_vol *v, const struct ag_config *c, struct ag_ident **out,
                      struct duet_errbuf *eb)
{
    const struct ag_identity_cfg *ic = find_product(c, v->product);
    char uri[600];

    if (!ic)
        return duet_errf(eb, -ENOENT, "product %s is not configured", v->product);
    /* An X.509-SVID carries exactly one URI SAN: the workload's, from its
     * namespace and ServiceAccount (the SPIFFE ID Kubernetes meshes use). */
    snprintf(uri, sizeof(uri), "spiffe://%s/ns/%s/sa/%s", c->trust_domain, v->ns, v->sa);
    struct ag_ident_params p;

    ag_ident_params_init(&p, c, ic);
    p.dir = v->data;
    p.root = v->root;
    p.uri = uri;
    p.name = v->name;
    p.has_group = v->has_group;
    p.group = v->group;
    return ag_ident_new(&p, out, eb);
}

/* meta.json: what a restarted agent needs to find the volume again. */
static int save_meta(const struct ag_csi_vol *v, struct duet_errbuf *eb)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL, path[4200], tmp[4210];
    int fd = -1, rc = DUET_ENOMEM;

    if (!o || !cJSON_AddStringToObject(o, "volume_id", v->volume_id) ||
        !cJSON_AddStringToObject(o, "target", v->target) ||
        !cJSON_AddStringToObject(o, "namespace", v->ns) ||
        !cJSON_AddStringToObject(o, "pod", v->pod) ||
        !cJSON_AddStringToObject(o, "pod_uid", v->pod_uid) ||
        !cJSON_AddStringToObject(o, "service_account", v->sa) ||
        !cJSON_AddStringToObject(o, "product", v->product) ||
        !cJSON_AddNumberToObject(o, "group", v->has_group ? (double)v->group : -1) ||
        !(text = cJSON_PrintUnformatted(o))) {
        duet_errf(eb, rc, "out of memory");
        goto out;
    }
    snprintf(path, sizeof(path), "%s/%s", v->root, META);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
        rename(tmp, path) == -1) {
        rc = duet_errf(eb, -errno, "%s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    if (fd != -1)
        close(fd);
    cJSON_free(text);
    cJSON_Delete(o);
    return rc;
}

static void log_vol(enum duet_log_level lvl, const struct ag_csi_vol *v, const char *msg, int rc,
                    const struct duet_errbuf *eb)
{
    char q[600], t[600];

    duet_log(lvl, "csi", "volume=%s pod=%s/%s sa=%s product=%s target=%s%s%s msg=\"%s\"%s%s",
             v->volume_id, v->ns, v->pod, v->sa, v->product,
             duet_log_quote(t, sizeof(t), v->target), rc ? " err=" : "",
             rc ? duet_err_name(rc) : "", msg, eb ? " why=" : "",
             eb ? duet_log_quote(q, sizeof(q), eb->msg) : "");
}

/* ---- issuance off the loop --------------------------------------------------------- */

void ag_csi_store_async(struct ag_csi_store *s, struct ag_workq *q, ag_csi_vol_done *done,
                        void *arg)
{
    s->q = q;
    s->done = done;
    s->done_arg = arg;
}

static void job_free(struct ag_csi_job *j)
{
    ag_issued_clear(&j->got); /* the key, unless it was published */
    ag_ca_snap_put(j->snap);
    ag_ident_free(j->id);
    duet_free(j);
}

/* On a worker thread: touches only the job (and reads its identity). */
static void job_run(struct ag_work *w)
{
    struct ag_csi_job *j = (struct ag_csi_job *)w;

    duet_errbuf_clear(&j->eb);
    j->rc =
        ag_ident_obtain(j->id, &j->exp, j->snap, j->issuer, j->keys, j->abandon, &j->got, &j->eb);
    if (j->delay_ms) {
        struct timespec ts = {.tv_sec = j->delay_ms / 1000,
                              .tv_nsec = (long)(j->delay_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Folder, set, metadata, mount: the loop's half, after the issuer's answer. */
static int finish(struct ag_csi_store *s, struct ag_csi_job *j, struct duet_errbuf *eb)
{
    struct ag_csi_vol *v = j->v;
    struct duet_errbuf ignore;

    DUET_TRY(j->rc < 0 ? duet_errf(eb, j->rc, "%s", j->eb.msg) : 0);
    if (j->gen_no != s->gen_no)
        return duet_errf(eb, DUET_EAGAIN, "the configuration changed during the issuance");
    duet_errbuf_clear(&ignore);
    if (ag_wipe_tree(v->root, &ignore) < 0 || mkdir(v->root, 0700) == -1)
        return duet_errf(eb, -errno, "%s: %s", v->root, strerror(errno));
    DUET_TRY(ag_ident_install(j->id, &j->got, j->issuer, &s->gen->pol, j->t0, eb));
    DUET_TRY(save_meta(v, eb));
    return ag_mount_bind_ro(v->data, v->target, eb);
}

/* Back on the loop. */
static void job_done(struct ag_work *w, bool stopping)
{
    struct ag_csi_job *j = (struct ag_csi_job *)w;
    struct ag_csi_store *s = j->s;
    struct ag_csi_vol *v = j->v;
    struct duet_errbuf eb, ignore;
    int rc;

    if (j->cancelled) { /* unpublished meanwhile: nothing of it was written */
        job_free(j);
        vol_free(v);
        return;
    }
    v->job = NULL;
    duet_errbuf_clear(&eb);
    rc = stopping ? duet_errf(&eb, -ECANCELED, "the agent is stopping") : finish(s, j, &eb);
    if (rc == 0) {
        v->ident = j->id; /* installed: the volume owns it now */
        j->id = NULL;
        job_free(j);
        s->done(s->done_arg, v, 0, NULL);
        return;
    }
    duet_errbuf_clear(&ignore);
    if (!stopping && ag_wipe_tree(v->root, &ignore) < 0)
        log_vol(DUET_LOG_ERROR, v, "cannot wipe the failed volume", DUET_E_INTERNAL, &ignore);
    store_del(s, v);
    job_free(j);
    s->done(s->done_arg, v, rc, &eb);
    vol_free(v);
}

int ag_csi_vol_start(struct ag_csi_store *s, struct ag_gen *g, const struct ag_csi_volspec *spec,
                     struct ag_csi_vol **out, struct duet_errbuf *eb)
{
    struct ag_csi_job *j;
    struct ag_csi_vol *v;
    int rc;

    j = duet_calloc(1, sizeof(*j));
    v = vol_alloc(s, spec);
    if (!j || !v) {
        rc = duet_errf(eb, DUET_ENOMEM, "out of memory");
        goto fail;
    }
    DUET_TRY_GOTO(make_ident(v, g->cfg, &j->id, eb), rc, fail);
    DUET_TRY_GOTO(g->issuer->ops->snapshot(g->issuer, &j->snap, eb), rc, fail);
    rc = store_add(s, v);
    if (rc < 0) {
        duet_errf(eb, rc, "out of memory");
        goto fail;
    }
    j->w.run = job_run;
    j->w.done = job_done;
    j->s = s;
    j->v = v;
    j->exp = ag_ident_expect(j->id, g->issuer);
    j->issuer = g->issuer->ops->name;
    j->keys = g->pol.keys;
    j->abandon = ag_workq_abandon(s->q);
    j->gen_no = s->gen_no;
    j->delay_ms = s->delay_ms;
    j->t0 = duet_clock_mono_ms();
    v->job = j;
    ag_workq_submit(s->q, &j->w);
    *out = v;
    return 0;
fail:
    if (j)
        job_free(j);
    vol_free(v);
    return rc;
}

void ag_csi_vol_cancel(struct ag_csi_store *s, struct ag_csi_vol *v)
{
    DUET_BUG_ON(!v->job || v->waiters);
    store_del(s, v);
    v->job->cancelled = true; /* job_done frees both */
}

int ag_csi_vol_remount(struct ag_csi_vol *v, struct duet_errbuf *eb)
{
    return ag_mount_bind_ro(v->data, v->target, eb);
}

int ag_csi_vol_destroy(struct ag_csi_store *s, struct ag_csi_vol *v, struct duet_errbuf *eb)
{
    DUET_TRY(ag_mount_release(v->target, eb));
    DUET_TRY(ag_wipe_tree(v->root, eb));
    store_del(s, v);
    vol_free(v);
    return 0;
}

void ag_csi_store_rebind(struct ag_csi_store *s, struct ag_gen *g)
{
    s->gen = g;
    s->gen_no++; /* a pending volume's job was made under the old one: not published */
    for (size_t i = 0; i < s->n; i++) {
        struct ag_csi_vol *v = s->v[i];
        struct ag_ident *id = NULL;
        struct duet_errbuf eb;
        const char *product;
        char why[256];
        int rc;

        if (v->job)
            continue;
        duet_errbuf_clear(&eb);
        rc = ag_csi_decide(g->cfg, v->ns, v->sa, v->product, &product, why, sizeof(why));
        if (rc != 0) {
            duet_errf(&eb, DUET_E_CFG_RANGE, "%s", why);
            rc = DUET_E_CFG_RANGE;
        } else {
            rc = make_ident(v, g->cfg, &id, &eb);
        }
        if (rc < 0) {
            if (v->ident)
                log_vol(DUET_LOG_WARN, v, "no longer granted: the set stays, without renewals", rc,
                        &eb);
            ag_ident_free(v->ident);
            v->ident = NULL;
            continue;
        }
        if (v->ident)
            ag_ident_carry(id, v->ident);
        ag_ident_free(v->ident);
        v->ident = id;
    }
}

/* ---- restart ----------------------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) && v->valuestring && *v->valuestring ? v->valuestring : NULL;
}

/* One folder of v/: a volume to keep (returned) or NULL (caller wipes it). */
static struct ag_csi_vol *restore_one(struct ag_csi_store *s, const char *entry)
{
    char path[4200], hash[DUET_SHA256_HEX_LEN + 1];
    struct ag_csi_volspec p = {0};
    struct ag_csi_vol *v = NULL;
    char *text = NULL;
    size_t len = 0;
    cJSON *o;

    snprintf(path, sizeof(path), "%s/%s/%s", s->vdir, entry, META);
    o = duet_file_read(path, META_MAX, &text, &len) == 0 ? cJSON_Parse(text) : NULL;
    duet_file_free(text, len);
    if (!o)
        return NULL;
    const cJSON *grp = cJSON_GetObjectItemCaseSensitive(o, "group");
    p.volume_id = jstr(o, "volume_id");
    p.target = jstr(o, "target");
    p.ns = jstr(o, "namespace");
    p.pod = jstr(o, "pod");
    p.pod_uid = jstr(o, "pod_uid");
    p.sa = jstr(o, "service_account");
    p.product = jstr(o, "product");
    p.has_group = cJSON_IsNumber(grp) && grp->valuedouble >= 0 && grp->valuedouble < 2147483648.0;
    p.group = p.has_group ? (gid_t)grp->valuedouble : 0;
    if (p.volume_id && p.target && p.ns && p.pod && p.pod_uid && p.sa && p.product) {
        duet_sha256_hex(p.volume_id, strlen(p.volume_id), hash);
        if (strcmp(hash, entry) == 0 && ag_mount_is_mountpoint(p.target) == 1)
            v = vol_alloc(s, &p);
    }
    cJSON_Delete(o);
    return v;
}

size_t ag_csi_store_restore(struct ag_csi_store *s, struct ag_gen *g)
{
    DIR *d = opendir(s->vdir);
    struct dirent *e;
    size_t kept = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        struct ag_csi_vol *v;
        struct duet_errbuf eb;
        char root[4200];

        if (e->d_name[0] == '.')
            continue;
        duet_errbuf_clear(&eb);
        v = restore_one(s, e->d_name);
        if (v && store_add(s, v) == 0) {
            kept++;
            continue;
        }
        vol_free(v);
        snprintf(root, sizeof(root), "%s/%s", s->vdir, e->d_name);
        duet_log(DUET_LOG_INFO, "csi",
                 "folder=%s msg=\"volume gone while the agent was down: "
                 "wiped\"",
                 e->d_name);
        if (ag_wipe_tree(root, &eb) < 0)
            duet_log(DUET_LOG_WARN, "csi", "folder=%s err=%s msg=\"cannot wipe\"", e->d_name,
                     duet_err_name(-errno));
    }
    closedir(d);
    ag_csi_store_rebind(s, g);
    for (size_t i = 0; i < s->n; i++) {
        struct ag_csi_vol *v = s->v[i];
        struct duet_errbuf eb;

        duet_errbuf_clear(&eb);
        if (v->ident && ag_ident_check_disk(v->ident, g->issuer, &g->pol, &eb) < 0)
            log_vol(DUET_LOG_WARN, v, "set unusable: reissuing", DUET_E_VERIFY, &eb);
        else
            log_vol(DUET_LOG_INFO, v, "volume found again after restart", 0, NULL);
    }
    return kept;
}
