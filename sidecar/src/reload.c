/* SPDX-License-Identifier: Apache-2.0 */
/*
 * When and from what to rebuild the TLS set (STYLE.md 10, DESIGN.md
 * duet-sidecar). Triggers: duet_watch (inotify on the folder, never on the
 * files, debounced), SIGHUP (main.c calls sc_reload_now), and a slow stat
 * poll of the folder's signature (the ..data target plus a duet_file_sig
 * of tls.crt, tls.key, ca.crt and the CRL) that also covers a CRL kept
 * outside the folder. A changed signature means a new set was published.
 * Files are read with duet_vol_read, from the one version folder ..data
 * named, so a concurrent publish can never mix a key with another set's
 * certificate.
 *
 * A set that fails its checks is refused, logged with the reason and
 * counted; the current set stays. The same signature is not retried until
 * it changes again (or SIGHUP), so a bad set costs one log line, not one per
 * event. Runs on the main thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/file.h"
#include "duet/pki.h"
#include "duet/vol.h"
#include "duet/watch.h"
#include "reload.h"
#include "tls_set.h"

#define MAX_FILE (1024 * 1024)

/* What the folder looked like: the ..data target, then the set's files and the CRL. */
struct reload_sig {
    char version[256];
    struct duet_file_sig files[DUET_VOL_SET_N + 1];
};

struct sc_reload {
    const struct sc_cfg *cfg;
    struct duet_loop *loop;
    struct duet_timer poll;
    struct reload_sig sig;
    uint64_t generation;
    bool waiting_logged;
    bool crl_stale_logged; /* one warning per stale CRL, until a fresh one loads */
    struct duet_watch *watch;
    sc_reload_trust_cb *on_trust;
    void *on_trust_arg;
    uint64_t ok, failed; /* atomic: the status server reads them */
};

/* The version folder ..data points to, or "" for a plain folder. */
static void resolve_version(const char *dir, char *ver, size_t size)
{
    char link[4096];
    ssize_t n;

    snprintf(link, sizeof(link), "%s/..data", dir);
    n = readlink(link, ver, size - 1);
    ver[n > 0 ? n : 0] = '\0';
}

static void signature(const struct sc_reload *rl, struct reload_sig *sig)
{
    const struct sc_cfg *cfg = rl->cfg;
    char path[4096];

    memset(sig, 0, sizeof(*sig));
    resolve_version(cfg->certs, sig->version, sizeof(sig->version));
    for (size_t i = 0; i < DUET_VOL_SET_N; i++) {
        snprintf(path, sizeof(path), "%s/%s", cfg->certs, duet_vol_set_names[i]);
        duet_file_sig_get(path, &sig->files[i]);
    }
    duet_file_sig_get(cfg->crl, &sig->files[DUET_VOL_SET_N]);
}

static bool sig_equal(const struct reload_sig *a, const struct reload_sig *b)
{
    if (strcmp(a->version, b->version) != 0)
        return false;
    for (size_t i = 0; i < DUET_ARRAY_SIZE(a->files); i++) {
        if (!duet_file_sig_equal(&a->files[i], &b->files[i]))
            return false;
    }
    return true;
}

/* A server identity (serverAuth only) is fine for an inbound-only sidecar. */
static unsigned uses(const struct sc_cfg *cfg)
{
    unsigned u = 0;

    for (unsigned i = 0; i < cfg->n_listeners; i++)
        u |= cfg->listeners[i].dir == SC_OUTBOUND ? SC_USE_CLIENT : SC_USE_SERVER;
    return u;
}

/*
 * A CRL past its nextUpdate refuses every peer (X509_V_ERR_CRL_HAS_EXPIRED)
 * whether it was stale at load or went stale since: say so once, naming the
 * file and the date, when it happens (metrics and /readyz say it too).
 */
static void check_crl(struct sc_reload *rl)
{
    struct sc_tls_set *s = sc_tls_acquire();
    int64_t nu = s ? sc_tls_set_info(s)->crl_next_update : 0;
    bool stale = s && sc_tls_crl_stale(sc_tls_set_info(s), duet_clock_now());

    sc_tls_set_unref(s);
    if (!stale) {
        rl->crl_stale_logged = false;
        return;
    }
    if (!rl->crl_stale_logged) {
        char qcrl[600], when[32];
        time_t t = (time_t)nu;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        duet_log(DUET_LOG_ERROR, "reload",
                 "crl=%s next_update=%s msg=\"CRL is past its nextUpdate: every peer is "
                 "refused and /readyz reports not ready until a fresh CRL is loaded\"",
                 duet_log_quote(qcrl, sizeof(qcrl), rl->cfg->crl ? rl->cfg->crl : "-"), when);
    }
    rl->crl_stale_logged = true;
}

static void publish(struct sc_reload *rl, struct sc_tls_set *set, const char *why)
{
    struct sc_tls_set *old = sc_tls_acquire();
    const struct sc_tls_info *ni = sc_tls_set_info(set);
    char cert[DUET_CERT_LOG_MAX], qdir[600], qver[600];
    bool trust_changed;

    rl->generation++;
    duet_log(DUET_LOG_INFO, "reload",
             "dir=%s version=%s trigger=%s generation=%llu %s old_sha256=%s "
             "msg=\"certificate set loaded\"",
             duet_log_quote(qdir, sizeof(qdir), rl->cfg->certs),
             duet_log_quote(qver, sizeof(qver), ni->version), why,
             (unsigned long long)ni->generation,
             duet_cert_log_fields(cert, sizeof(cert), ni->serial, ni->not_after, ni->sha256),
             old ? sc_tls_set_info(old)->sha256 : "-");
    trust_changed = old && !sc_tls_same_trust(old, set);
    sc_tls_set_unref(old);
    sc_tls_publish(set);
    /* Open connections were admitted under the old ca.crt or CRL: the
     * workers check their peers against the new one. */
    if (trust_changed && rl->on_trust)
        rl->on_trust(rl->on_trust_arg);
    __atomic_add_fetch(&rl->ok, 1, __ATOMIC_RELAXED);
    rl->waiting_logged = false;
    rl->crl_stale_logged = false;
    check_crl(rl);
}

/* Read the folder's files and the CRL into f; vs and *crl hold the bytes. */
static int read_files(const struct sc_cfg *cfg, struct duet_vol_set *vs, char **crl,
                      size_t *crl_len, struct sc_tls_files *f, struct duet_errbuf *eb)
{
    const struct duet_vol_blob *b = vs->blobs;
    int rc;

    /* duet_vol_read resolves ..data once: key and certificate always come
     * from the same published version (docs/internals/volume-contract.md). */
    DUET_TRY(duet_vol_read_set(cfg->certs, MAX_FILE, vs, eb));
    if (cfg->crl) {
        rc = duet_file_read(cfg->crl, MAX_FILE, crl, crl_len);
        if (rc < 0)
            return duet_errf(eb, rc, "%s: %s", cfg->crl, duet_strerror(rc));
    }
    *f = (struct sc_tls_files){b[DUET_VOL_SET_CERT].data,
                               b[DUET_VOL_SET_CERT].len,
                               b[DUET_VOL_SET_KEY].data,
                               b[DUET_VOL_SET_KEY].len,
                               b[DUET_VOL_SET_CA].data,
                               b[DUET_VOL_SET_CA].len,
                               *crl,
                               *crl_len,
                               (uint32_t)(cfg->session_ms / 1000)};
    return 0;
}

static void refused(struct sc_reload *rl, int rc, const char *version, const char *why,
                    const char *msg)
{
    char qdir[600], qver[600], qmsg[800], text[700];

    duet_log_quote(qdir, sizeof(qdir), rl->cfg->certs);
    if (rc == -ENOENT && !sc_tls_ready()) {
        snprintf(text, sizeof(text), "waiting for certificates: %s", msg);
        if (!rl->waiting_logged)
            duet_log(DUET_LOG_INFO, "reload", "dir=%s msg=%s", qdir,
                     duet_log_quote(qmsg, sizeof(qmsg), text));
        rl->waiting_logged = true;
        return;
    }
    __atomic_add_fetch(&rl->failed, 1, __ATOMIC_RELAXED);
    snprintf(text, sizeof(text), "refused new certificate set, keeping the current one: %s", msg);
    duet_log(DUET_LOG_ERROR, "reload", "dir=%s version=%s trigger=%s msg=%s", qdir,
             duet_log_quote(qver, sizeof(qver), version), why,
             duet_log_quote(qmsg, sizeof(qmsg), text));
}

static void attempt(struct sc_reload *rl, const char *why)
{
    const struct sc_cfg *cfg = rl->cfg;
    struct duet_errbuf eb;
    struct duet_vol_set vs;
    struct sc_tls_files tf;
    char *crl = NULL;
    size_t crl_len = 0;
    struct sc_tls_set *set = NULL;
    int rc;

    memset(&vs, 0, sizeof(vs));
    duet_errbuf_clear(&eb);
    rc = read_files(cfg, &vs, &crl, &crl_len, &tf, &eb);
    if (rc == 0)
        set = sc_tls_set_build(&tf, vs.version, rl->generation + 1, uses(cfg), &eb);
    if (set)
        publish(rl, set, why);
    else
        refused(rl, rc, vs.version, why, eb.msg);
    duet_file_free(crl, crl_len);
    duet_vol_set_clear(&vs);
}

void sc_reload_now(struct sc_reload *rl, const char *why)
{
    signature(rl, &rl->sig);
    attempt(rl, why);
}

static void check(struct sc_reload *rl, const char *why)
{
    struct reload_sig sig;

    signature(rl, &sig);
    if (!sig_equal(&sig, &rl->sig)) {
        rl->sig = sig;
        attempt(rl, why);
    }
}

static void on_poll(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct sc_reload *rl = arg;

    check(rl, "poll");
    check_crl(rl);
    duet_timer_start(loop, t, rl->cfg->poll_ms);
}

/* inotify on DIR (never on the files), debounced by duet_watch. */
static void on_watch(struct duet_watch *w, void *arg)
{
    (void)w;
    check(arg, "inotify");
}

int sc_reload_new(struct duet_loop *loop, const struct sc_cfg *cfg, sc_reload_trust_cb *on_trust,
                  void *arg, struct sc_reload **out)
{
    struct sc_reload *rl = duet_calloc(1, sizeof(*rl));
    struct duet_errbuf eb;
    int rc;

    if (!rl)
        return DUET_ENOMEM;
    rl->cfg = cfg;
    rl->loop = loop;
    rl->on_trust = on_trust;
    rl->on_trust_arg = arg;
    duet_timer_init(&rl->poll, on_poll, rl);
    sc_reload_now(rl, "start");
    duet_timer_start(loop, &rl->poll, cfg->poll_ms);
    duet_errbuf_clear(&eb);
    rc = duet_watch_new(loop, cfg->certs, NULL, on_watch, rl, &rl->watch, &eb);
    if (rc < 0) { /* the stat poll alone still reloads, only later */
        char qdir[600], qmsg[600];

        duet_log(DUET_LOG_WARN, "reload", "dir=%s err=%s msg=%s",
                 duet_log_quote(qdir, sizeof(qdir), cfg->certs), duet_err_name(rc),
                 duet_log_quote(qmsg, sizeof(qmsg), eb.msg));
    }
    *out = rl;
    return 0;
}

void sc_reload_free(struct sc_reload *rl)
{
    if (!rl)
        return;
    duet_watch_free(rl->watch);
    duet_timer_stop(rl->loop, &rl->poll);
    duet_free(rl);
}

uint64_t sc_reload_ok(const struct sc_reload *rl)
{
    return rl ? __atomic_load_n(&rl->ok, __ATOMIC_RELAXED) : 0;
}

uint64_t sc_reload_failed(const struct sc_reload *rl)
{
    return rl ? __atomic_load_n(&rl->failed, __ATOMIC_RELAXED) : 0;
}
