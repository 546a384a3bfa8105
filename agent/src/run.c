/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `duet-agent run --config FILE`: keeps one published, verified set per
 * identity, renews it on schedule, repairs it when it is damaged.
 *
 * Everything runs on one event loop:
 * - `tick` wakes the rotation decisions. Deadlines are wall-clock times held
 *   per identity and re-evaluated from the current clocks on every wake
 *   (rotate.h); the timer only says when to look next, at most 60 s ahead,
 *   so a clock jump or a suspended node is noticed within a minute.
 * - an inotify watch per identity folder (duet_watch) runs the same check
 *   as `scan` as soon as an entry of the folder changes (a deleted link, a
 *   swapped ..data); `scan` still catches writes inside the version folder,
 *   which a folder watch does not see.
 * - `scan` re-checks the published sets every couple of seconds, cheaply:
 *   a set whose files (..data target, inode, size, times) have not changed
 *   since they last passed the check is not read again. A damaged, replaced
 *   or foreign set is re-read, refused and replaced at once.
 * - SIGHUP loads and validates the configuration into a new generation and
 *   swaps it in; an invalid one is refused and the old one kept. SIGTERM and
 *   SIGINT stop the loop; the process exits 0.
 * Nothing that waits on an issuer runs on the loop: a renewal's key, CSR
 * and request run on the renewal threads (renew.h) and its set is published
 * back on the loop; a CSI volume's first certificate, which a starting pod
 * waits for, has threads of its own (csi.c). Only the issuer's readiness
 * probe, at start and reload, runs here (bounded by 2 s).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "csi.h"
#include "keypool.h"
#include "renew.h"
#include "run.h"
#include "workq.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/digest.h"
#include "duet/file.h"
#include "duet/flags.h"
#include "duet/log.h"
#include "duet/watch.h"

#define SCAN_MS 2000
/* Renewals spread over months: two threads keep one slow answer from holding the rest. */
#define RENEWERS 2
#define CONFIG_MAX (1024 * 1024)

/* Folder identities, then the CSI volumes' (NULL for a volume no longer granted). */
static size_t n_idents(const struct ag_run *r)
{
    return r->gen->n_ids + ag_csi_count(r->csi);
}

static struct ag_ident *ident_at(struct ag_run *r, size_t i)
{
    return i < r->gen->n_ids ? r->gen->ids[i] : ag_csi_ident(r->csi, i - r->gen->n_ids);
}

static void log_failure(const struct ag_ident *id, int rc, const struct duet_errbuf *eb,
                        int64_t delay_ms)
{
    char q[600];

    duet_log(DUET_LOG_WARN, "agent",
             "identity=%s err=%s attempt=%u retry_in_ms=%lld keeps_current=%s msg=%s", id->name,
             duet_err_name(rc), id->attempt, (long long)delay_ms, id->rot.have ? "yes" : "no",
             duet_log_quote(q, sizeof(q), eb->msg));
}

/* A failed attempt: count it and schedule the retry with backoff. */
static void retry_later(struct ag_ident *id, int rc, const struct duet_errbuf *eb)
{
    int64_t delay;

    id->failures++;
    delay =
        ag_backoff_delay(id->attempt, AG_BACKOFF_BASE_MS, AG_BACKOFF_CAP_MS, ag_rotate_uniform());
    delay = ag_retry_delay(&id->rot, duet_clock_real_ms(), delay, AG_BACKOFF_BASE_MS);
    id->attempt++;
    id->rot.retry_mono = duet_clock_mono_ms() + delay;
    log_failure(id, rc, eb, delay);
}

/* renew.h's answer: publish the new set, or retry later. Either way, decide again. */
static void on_renewed(void *arg, struct ag_ident *id, struct ag_issued *got, int rc,
                       struct duet_errbuf *eb, int64_t t0, const char *issuer)
{
    struct ag_run *r = arg;

    if (rc == 0)
        rc = ag_ident_install(id, got, issuer, &r->gen->pol, t0, eb);
    if (rc < 0) {
        id->pending_key = got->key; /* the retry reuses it */
        got->key = NULL;
        retry_later(id, rc, eb);
    }
    duet_loop_defer(r->loop, &r->eval);
}

/* One issuance attempt, off the loop; on_renewed follows. */
static void renew(struct ag_run *r, struct ag_ident *id, enum ag_rotate_action why)
{
    struct ag_gen *g = r->gen;
    struct duet_errbuf eb;
    int rc;

    duet_errbuf_clear(&eb);
    duet_log(DUET_LOG_INFO, "agent", "identity=%s reason=%s msg=\"issuing\"", id->name,
             why == AG_ROTATE_URGENT ? "no-valid-set" : "renewal-time");
    rc = ag_renew_start(r->renewq, id, g->issuer, g->pol.keys, on_renewed, r, &eb);
    if (rc < 0)
        retry_later(id, rc, &eb);
}

/* Decide for every identity, act, and arm the timer for the next look. */
static void evaluate(struct ag_run *r)
{
    int64_t next = AG_ROTATE_MAX_SLEEP_MS;

    if (r->stopping)
        return; /* steps 4-5 of the iteration that saw SIGTERM still run */
    for (size_t i = 0; i < n_idents(r); i++) {
        struct ag_ident *id = ident_at(r, i);
        int64_t now_real = duet_clock_real_ms(), now_mono = duet_clock_mono_ms(), sleep_ms = 0;
        enum ag_rotate_action a;

        if (!id || id->renewing)
            continue; /* decided again when its answer comes */
        a = ag_rotate_decide(&id->rot, now_real, now_mono, &sleep_ms);
        if (a != AG_ROTATE_WAIT) {
            renew(r, id, a);
            if (id->renewing)
                continue;
            /* Not started: its retry time is set. */
            ag_rotate_decide(&id->rot, now_real, now_mono, &sleep_ms);
        }
        next = DUET_MIN(next, sleep_ms);
    }
    /* The floor keeps a rounding from spinning. */
    duet_timer_start(r->loop, &r->tick, DUET_MAX(next, 10));
}

static void on_tick(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    evaluate(arg);
}

static void on_eval(struct duet_loop *loop, void *arg)
{
    evaluate(arg);
}

/*
 * Re-read a set whose files changed. Returns true when it must be replaced.
 * A set that already failed (have == false) is not re-read every scan: the
 * decision path owns it until a new set is published.
 */
static bool scan_one(struct ag_gen *g, struct ag_ident *id)
{
    struct duet_errbuf eb;
    char q[600];
    int rc;

    if (!id->rot.have || !ag_ident_disk_changed(id))
        return false;
    duet_errbuf_clear(&eb);
    rc = ag_ident_check_disk(id, g->issuer, &g->pol, &eb);
    if (rc == 0)
        return false;
    duet_log(DUET_LOG_WARN, "agent", "identity=%s err=%s msg=%s action=reissue", id->name,
             duet_err_name(rc), duet_log_quote(q, sizeof(q), eb.msg));
    return true;
}

/*
 * A new trust bundle (the CA Secret was updated) makes every set suspect:
 * forget the file signatures so that each one is checked against it. An
 * unreadable bundle changes nothing here; issuance will report it.
 */
static void scan_bundle(struct ag_run *r)
{
    struct ag_gen *g = r->gen;
    struct duet_chain *b = NULL;
    struct duet_errbuf eb;
    char *pem = NULL;
    size_t len = 0;

    if (g->issuer->ops->bundle(g->issuer, &b, &eb) < 0 || duet_chain_to_pem(b, &pem, &len) < 0) {
        duet_chain_free(b);
        return;
    }
    duet_chain_free(b);
    if (g->bundle_pem && len == g->bundle_len && memcmp(pem, g->bundle_pem, len) == 0) {
        duet_free(pem);
        return;
    }
    if (g->bundle_pem)
        duet_log(DUET_LOG_INFO, "agent", "msg=\"trust bundle changed: checking every set\"");
    duet_free(g->bundle_pem);
    g->bundle_pem = pem;
    g->bundle_len = len;
    for (size_t i = 0; i < n_idents(r); i++)
        if (ident_at(r, i))
            ident_at(r, i)->sig_valid = false;
}

static void scan_all(struct ag_run *r)
{
    bool any = false;

    scan_bundle(r);
    for (size_t i = 0; i < n_idents(r); i++)
        if (ident_at(r, i))
            any |= scan_one(r->gen, ident_at(r, i));
    if (any)
        duet_loop_defer(r->loop, &r->eval);
}

static void on_scan(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct ag_run *r = arg;

    scan_all(r);
    duet_timer_start(loop, &r->scan, SCAN_MS);
}

/* Our own publishes fire it too; they match the stored signature and cost a few stats. */
static void on_watch(struct duet_watch *w, void *arg)
{
    scan_all(arg);
}

/*
 * Watch every identity folder of g. A watch that cannot be set up is
 * logged and left out: the periodic scan still covers that folder.
 */
static void watch_folders(struct ag_run *r, struct ag_gen *g)
{
    const struct duet_watch_opts wo = {.settle_ms = 50, .poll_ms = 0, .no_inotify = false};

    g->watches = duet_calloc(g->n_ids, sizeof(*g->watches));
    for (size_t i = 0; g->watches && i < g->n_ids; i++) {
        struct duet_errbuf eb;
        char q[600];

        duet_errbuf_clear(&eb);
        if (duet_watch_new(r->loop, g->ids[i]->dir, &wo, on_watch, r, &g->watches[i], &eb) < 0)
            duet_log(DUET_LOG_WARN, "agent", "identity=%s msg=%s action=\"periodic check only\"",
                     g->ids[i]->name, duet_log_quote(q, sizeof(q), eb.msg));
    }
}

/* The first look at a generation's identities: keep what is on disk and valid. */
static void adopt_disk_sets(struct ag_gen *g)
{
    for (size_t i = 0; i < g->n_ids; i++) {
        struct ag_ident *id = g->ids[i];
        struct duet_errbuf eb;
        char q[600], cert[DUET_CERT_LOG_MAX];
        int rc;

        duet_errbuf_clear(&eb);
        rc = ag_ident_check_disk(id, g->issuer, &g->pol, &eb);
        if (rc == 0) {
            duet_log(DUET_LOG_INFO, "agent",
                     "identity=%s %s renew_at=%lld msg=\"kept the published set\"", id->name,
                     duet_cert_log_fields(cert, sizeof(cert), id->serial,
                                          id->rot.v.not_after / 1000, id->sha256),
                     (long long)(id->rot.renew_at / 1000));
        } else if (rc != -ENOENT) {
            duet_log(DUET_LOG_WARN, "agent", "identity=%s err=%s msg=%s action=reissue", id->name,
                     duet_err_name(rc), duet_log_quote(q, sizeof(q), eb.msg));
        }
    }
}

/*
 * Carry state over from the old generation to identities that remain, so a
 * reload neither reissues valid sets nor resets the counters. The disk check
 * that follows decides again with the new expectations (a changed subject
 * makes the old set unfit and triggers a reissue).
 */
static void carry_over(const struct ag_gen *old, struct ag_gen *g)
{
    for (size_t i = 0; i < g->n_ids; i++) {
        for (size_t j = 0; j < old->n_ids; j++) {
            struct ag_ident *n = g->ids[i];
            const struct ag_ident *o = old->ids[j];

            if (strcmp(n->name, o->name) == 0)
                ag_ident_carry(n, o);
        }
    }
}

/* SHA-256 of the configuration file, "" when unreadable. */
static void config_sig(const char *path, char out[DUET_SHA256_HEX_LEN + 1])
{
    char *text = NULL;
    size_t len = 0;

    out[0] = '\0';
    if (duet_file_read(path, CONFIG_MAX, &text, &len) == 0)
        duet_sha256_hex(text, len, out);
    duet_file_free(text, len);
}

static void reload_refused(struct ag_run *r, int rc, const struct duet_errbuf *eb)
{
    char q[600];

    r->reload_failures++;
    duet_log(DUET_LOG_ERROR, "agent",
             "config=%s err=%s msg=%s action=\"kept the old configuration\"", r->config_path,
             duet_err_name(rc), duet_log_quote(q, sizeof(q), eb->msg));
}

static void on_hup(struct duet_loop *loop, void *arg)
{
    struct ag_run *r = arg;
    struct ag_gen *g = NULL;
    struct duet_errbuf eb;
    int rc;

    /* What this reload reads: the folder watch then skips the same content. */
    config_sig(r->config_path, r->cfg_sig);
    duet_errbuf_clear(&eb);
    rc = ag_gen_load(r->config_path, &g, &eb);
    if (rc < 0) {
        reload_refused(r, rc, &eb);
        return;
    }
    if (!r->csi != !g->cfg->csi) {
        rc = duet_errf(&eb, DUET_E_CFG_RANGE, "csi: %s it needs a restart",
                       r->csi ? "removing" : "adding");
    } else if (r->csi) {
        rc = ag_csi_reload(r->csi, g, &eb);
    }
    if (rc < 0) {
        reload_refused(r, rc, &eb);
        ag_gen_free(g);
        return;
    }
    if ((g->status_listen == NULL) != (r->gen->status_listen == NULL) ||
        (g->status_listen && strcmp(g->status_listen, r->gen->status_listen) != 0))
        duet_log(DUET_LOG_WARN, "agent", "msg=\"status_listen changes need a restart\"");
    g->pol.keys = r->keys;
    carry_over(r->gen, g);
    for (size_t i = 0; i < g->n_ids; i++)
        g->ids[i]->sig_valid = false; /* re-read everything once */
    adopt_disk_sets(g);
    ag_prune_unconfigured(g);
    watch_folders(r, g);
    ag_gen_free(r->gen);
    r->gen = g;
    r->reloads++;
    duet_log(DUET_LOG_INFO, "agent", "config=%s identities=%zu msg=\"configuration reloaded\"",
             r->config_path, g->n_ids);
    duet_loop_defer(loop, &r->eval);
}

static void on_term(struct duet_loop *loop, void *arg)
{
    struct ag_run *r = arg;

    r->stopping = true;
    duet_log(DUET_LOG_INFO, "agent", "msg=\"stopping\"");
    duet_loop_stop(loop);
}

/*
 * A ConfigMap update swaps the mounted folder's ..data link, which kubelet
 * does a minute or so after the change: reload then, as SIGHUP would, once
 * per new content (an invalid file is reported once, not on every event).
 */
static void on_config_change(struct duet_watch *w, void *arg)
{
    struct ag_run *r = arg;
    char sig[DUET_SHA256_HEX_LEN + 1];

    config_sig(r->config_path, sig);
    if (!sig[0] || strcmp(sig, r->cfg_sig) == 0)
        return;
    duet_log(DUET_LOG_INFO, "agent", "config=%s msg=\"configuration file changed: reloading\"",
             r->config_path);
    on_hup(r->loop, r);
}

static void watch_config(struct ag_run *r)
{
    const struct duet_watch_opts wo = {.settle_ms = 200, .poll_ms = 0, .no_inotify = false};
    char dir[4096], q[600];
    struct duet_errbuf eb;
    char *slash;

    config_sig(r->config_path, r->cfg_sig);
    snprintf(dir, sizeof(dir), "%s", r->config_path);
    slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    duet_errbuf_clear(&eb);
    if (duet_watch_new(r->loop, dir, &wo, on_config_change, r, &r->cfg_watch, &eb) < 0)
        duet_log(DUET_LOG_WARN, "agent", "config=%s msg=%s action=\"reload on SIGHUP only\"",
                 r->config_path, duet_log_quote(q, sizeof(q), eb.msg));
}

static const char run_usage[] =
    "usage: duet-agent run --config FILE [--check]\n"
    "  --check  validate the configuration (every field and rule, not the files it names)\n"
    "           and exit: 0 valid, 2 not\n";

static int parse_args(int argc, char **argv, const char **config, bool *check)
{
    const struct duet_flag flags[] = {
        {"config", DUET_FLAG_STR, config, NULL},
        {"check", DUET_FLAG_BOOL, check, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct duet_errbuf eb;
    size_t n_pos;
    int rc;

    *config = NULL;
    duet_errbuf_clear(&eb);
    rc = duet_flags_parse(argc, argv, flags, NULL, NULL, 0, &n_pos, &eb);
    if (rc == DUET_FLAGS_HELP) {
        fputs(run_usage, stdout);
        return 1;
    }
    if (rc == 0 && !*config)
        rc = duet_errf(&eb, DUET_E_USAGE, "--config FILE is required");
    if (rc < 0) {
        fprintf(stderr, "duet-agent run: %s\n%s", eb.msg, run_usage);
        return DUET_E_USAGE;
    }
    return 0;
}

/*
 * CFSSL listens even when its signer failed to load (COMPAT.md 5): say so at
 * start rather than only at the first failed issuance. Not fatal: the
 * issuer may come up later, and issuance retries.
 */
static void check_ready(struct ag_gen *g)
{
    struct duet_errbuf eb;
    char q[600];
    int rc;

    if (!g->issuer->ops->ready)
        return;
    duet_errbuf_clear(&eb);
    rc = g->issuer->ops->ready(g->issuer, &eb);
    if (rc < 0)
        duet_log(DUET_LOG_WARN, "agent", "issuer=%s err=%s msg=%s", g->issuer->ops->name,
                 duet_err_name(rc), duet_log_quote(q, sizeof(q), eb.msg));
    else
        duet_log(DUET_LOG_INFO, "agent", "issuer=%s msg=\"issuer ready\"", g->issuer->ops->name);
}

/*
 * CSI volumes are made on demand, many at once when a node starts its pods:
 * keep keys of every configured type ready (threads start after the loop
 * blocked its signals, so they never take one).
 */
static int start_key_pool(struct ag_run *r, struct duet_errbuf *eb)
{
    const struct ag_config *c = r->gen->cfg;
    enum duet_key_type types[16];
    size_t n = 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (c->csi->key_pool == 0)
        return 0;
    for (size_t i = 0; i < c->n_identities && n < DUET_ARRAY_SIZE(types); i++)
        types[n++] = c->identities[i].key_type;
    DUET_TRY(ag_keypool_new(types, n, (unsigned)c->csi->key_pool,
                            cpus < 1   ? 1
                            : cpus > 4 ? 4
                                       : (unsigned)cpus,
                            &r->keys, eb));
    r->gen->pol.keys = r->keys;
    return 0;
}

static int start(struct ag_run *r, struct duet_errbuf *eb)
{
    DUET_TRY(duet_loop_new(&r->loop));
    DUET_TRY(duet_loop_add_signal(r->loop, SIGTERM, on_term, r));
    DUET_TRY(duet_loop_add_signal(r->loop, SIGINT, on_term, r));
    DUET_TRY(duet_loop_add_signal(r->loop, SIGHUP, on_hup, r));
    /* Renewals have their own threads: a CFSSL that hangs on them does not
     * queue a new pod's first certificate (csi.c's threads) behind them. */
    DUET_TRY(ag_workq_new(r->loop, RENEWERS, &r->renewq, eb));
    duet_timer_init(&r->tick, on_tick, r);
    duet_timer_init(&r->scan, on_scan, r);
    duet_defer_init(&r->eval, on_eval, r);
    if (r->gen->status_listen)
        DUET_TRY(duet_status_http_new(r->loop, r->gen->status_listen, NULL, ag_status_handle, r,
                                      &r->status, eb));
    check_ready(r->gen);
    if (r->gen->cfg->csi) {
        DUET_TRY(start_key_pool(r, eb));
        DUET_TRY(ag_csi_start(r->loop, r->gen, &r->eval, &r->csi, eb));
    }
    adopt_disk_sets(r->gen);
    ag_prune_unconfigured(r->gen);
    watch_folders(r, r->gen);
    watch_config(r);
    duet_timer_start(r->loop, &r->scan, SCAN_MS);
    duet_loop_defer(r->loop, &r->eval);
    return 0;
}

/* Everything registered on the loop goes before the loop itself. */
static void stop(struct ag_run *r)
{
    ag_workq_free(r->renewq); /* abandons the requests in flight; nothing is published */
    r->renewq = NULL;
    duet_watch_free(r->cfg_watch);
    ag_csi_stop(r->csi);
    r->csi = NULL;
    duet_status_http_free(r->status);
    if (r->loop) {
        duet_timer_stop(r->loop, &r->tick);
        duet_timer_stop(r->loop, &r->scan);
        duet_loop_cancel_defer(r->loop, &r->eval);
    }
    ag_gen_free(r->gen); /* its folder watches live on the loop */
    r->gen = NULL;
    ag_keypool_free(r->keys);
    r->keys = NULL;
    duet_loop_free(r->loop);
}

/* --check: what a ConfigMap would make the agent do, without starting it (exit 0 or 2). */
static int check_config(const char *path)
{
    struct ag_config *c = NULL;
    struct duet_errbuf eb;
    int rc;

    duet_errbuf_clear(&eb);
    rc = ag_config_load(path, &c, &eb);
    if (rc < 0) {
        fprintf(stderr, "duet-agent run: %s\n", eb.msg[0] ? eb.msg : duet_strerror(rc));
        return duet_err_exit_status(rc);
    }
    if (c->csi)
        printf("%s: valid; CSI driver %s, %zu products, %zu bindings\n", path, c->csi->driver,
               c->n_identities, c->csi->n_bindings);
    else
        printf("%s: valid; %zu identities published below %s\n", path, c->n_identities,
               c->output_dir);
    ag_config_free(c);
    return 0;
}

int ag_run_main(int argc, char **argv)
{
    struct ag_run r = {0};
    struct duet_errbuf eb;
    const char *config;
    bool check = false;
    int rc;

    rc = parse_args(argc, argv, &config, &check);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (check)
        return check_config(config);
    if (duet_log_init_from_env() < 0)
        fprintf(stderr, "duet-agent run: DUET_LOG_LEVEL ignored (error, warn, info, debug)\n");
    duet_errbuf_clear(&eb);
    rc = ag_gen_load(config, &r.gen, &eb);
    if (rc < 0) {
        fprintf(stderr, "duet-agent run: %s\n", eb.msg[0] ? eb.msg : duet_strerror(rc));
        return duet_err_exit_status(rc);
    }
    if (r.gen->log_level) {
        enum duet_log_level lvl;
        if (duet_log_parse_level(r.gen->log_level, &lvl) == 0)
            duet_log_set_level(lvl);
    }
    /* Once, before any handle exists, as libcurl requires; only `run` talks HTTP. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "duet-agent run: libcurl initialisation failed\n");
        ag_gen_free(r.gen);
        return 1;
    }
    r.config_path = config;
    r.start_time = duet_clock_now();
    rc = start(&r, &eb);
    if (rc == 0) {
        duet_log(DUET_LOG_INFO, "agent", "config=%s identities=%zu issuer=%s msg=\"started\"",
                 config, r.gen->n_ids, r.gen->issuer->ops->name);
        rc = duet_loop_run(r.loop);
    }
    if (rc < 0)
        fprintf(stderr, "duet-agent run: %s\n", eb.msg[0] ? eb.msg : duet_strerror(rc));
    stop(&r);
    curl_global_cleanup();
    return rc < 0 ? duet_err_exit_status(rc) : 0;
}
