/* SPDX-License-Identifier: Apache-2.0 */
/*
 * When and from what to rebuild the TLS set (STYLE.md 10, DESIGN.md
 * duet-sidecar). Triggers: duet_watch (inotify on the folder, never on the
 * files, debounced), SIGHUP (main.c calls sc_reload_now), and a slow stat
 * poll of the folder's signature (the ..data target plus inode, size and
 * mtime of tls.crt, tls.key, ca.crt and the CRL) that also covers a CRL kept
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
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/vol.h"
#include "duet/watch.h"
#include "sc.h"

#define MAX_FILE (1024 * 1024)

static struct {
    struct sc_app *app;
    struct duet_timer poll;
    char sig[1024];
    uint64_t generation;
    bool waiting_logged;
    struct duet_watch *watch;
} rl;

static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t got = 0;
    int rc;

    if (fd == -1)
        return -errno;
    if (fstat(fd, &st) == -1 || st.st_size > MAX_FILE) {
        rc = fstat(fd, &st) == -1 ? -errno : DUET_E_TOOBIG;
        close(fd);
        return rc;
    }
    buf = duet_malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return DUET_ENOMEM;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

/* The version folder ..data points to, or "" for a plain folder. */
static void resolve_version(const char *dir, char *ver, size_t size)
{
    char link[4096];
    ssize_t n;

    snprintf(link, sizeof(link), "%s/..data", dir);
    n = readlink(link, ver, size - 1);
    ver[n > 0 ? n : 0] = '\0';
}

static void signature(char *out, size_t size)
{
    const struct sc_cfg *cfg = &rl.app->cfg;
    static const char *const names[] = {"tls.crt", "tls.key", "ca.crt"};
    char ver[256];
    size_t off;

    resolve_version(cfg->certs, ver, sizeof(ver));
    off = (size_t)snprintf(out, size, "%s", ver);
    for (size_t i = 0; i <= DUET_ARRAY_SIZE(names) && off < size; i++) {
        char path[4096];
        struct stat st;

        if (i == DUET_ARRAY_SIZE(names)) {
            if (!cfg->crl)
                break;
            snprintf(path, sizeof(path), "%s", cfg->crl);
        } else {
            snprintf(path, sizeof(path), "%s/%s", cfg->certs, names[i]);
        }
        if (stat(path, &st) == -1)
            memset(&st, 0, sizeof(st));
        off += (size_t)snprintf(out + off, size - off, "|%lu:%ld:%ld.%ld",
                                (unsigned long)st.st_ino, (long)st.st_size,
                                (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    }
}

/* A server identity (serverAuth only) is fine for an inbound-only sidecar. */
static unsigned uses(const struct sc_cfg *cfg)
{
    unsigned u = 0;

    for (unsigned i = 0; i < cfg->n_listeners; i++)
        u |= cfg->listeners[i].dir == SC_OUTBOUND ? SC_USE_CLIENT : SC_USE_SERVER;
    return u;
}

static void publish(struct sc_tls_set *set, const char *why)
{
    struct sc_tls_set *old = sc_tls_acquire();
    const struct sc_tls_info *ni = sc_tls_set_info(set);
    char na[32];
    struct tm tm;

    rl.generation++;
    gmtime_r(&ni->not_after, &tm);
    strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm);
    duet_log(DUET_LOG_INFO, "reload",
             "dir=%s version=\"%s\" trigger=%s generation=%llu serial=%s sha256=%s "
             "not_after=%s old_sha256=%s msg=\"certificate set loaded\"",
             rl.app->cfg.certs, ni->version, why, (unsigned long long)ni->generation,
             ni->serial, ni->fingerprint, na, old ? sc_tls_set_info(old)->fingerprint : "-");
    sc_tls_set_unref(old);
    sc_tls_publish(set);
    __atomic_add_fetch(&rl.app->reloads_ok, 1, __ATOMIC_RELAXED);
    rl.waiting_logged = false;
}

static void attempt(const char *why)
{
    static const char *const names[] = {DUET_VOL_CERT, DUET_VOL_KEY, DUET_VOL_CA};
    const struct sc_cfg *cfg = &rl.app->cfg;
    struct duet_errbuf eb;
    struct duet_vol_set vs;
    char *crl = NULL;
    size_t crl_len = 0;
    struct sc_tls_set *set = NULL;
    int rc;

    memset(&vs, 0, sizeof(vs));
    duet_errbuf_clear(&eb);
    /* duet_vol_read resolves ..data once: key and certificate always come
     * from the same published version (docs/internals/volume-contract.md). */
    rc = duet_vol_read(cfg->certs, names, DUET_ARRAY_SIZE(names), MAX_FILE, &vs, &eb);
    if (rc == 0 && cfg->crl) {
        rc = read_file(cfg->crl, &crl, &crl_len);
        if (rc < 0)
            duet_errf(&eb, rc, "%s: %s", cfg->crl, duet_strerror(rc));
    }
    if (rc == 0) {
        struct sc_tls_files tf = {vs.blobs[0].data, vs.blobs[0].len, vs.blobs[1].data,
                                  vs.blobs[1].len,  vs.blobs[2].data, vs.blobs[2].len,
                                  crl,              crl_len};

        set = sc_tls_set_build(&tf, vs.version, rl.generation + 1, uses(cfg), &eb);
    }
    duet_free(crl);
    if (!set) {
        if (rc == -ENOENT && !sc_reload_ready()) {
            if (!rl.waiting_logged)
                duet_log(DUET_LOG_INFO, "reload", "dir=%s msg=\"waiting for certificates: %s\"",
                         cfg->certs, eb.msg);
            rl.waiting_logged = true;
            duet_vol_set_clear(&vs);
            return;
        }
        __atomic_add_fetch(&rl.app->reloads_failed, 1, __ATOMIC_RELAXED);
        duet_log(DUET_LOG_ERROR, "reload",
                 "dir=%s version=\"%s\" trigger=%s msg=\"refused new certificate set, keeping "
                 "the current one: %s\"",
                 cfg->certs, vs.version, why, eb.msg);
        duet_vol_set_clear(&vs);
        return;
    }
    publish(set, why);
    duet_vol_set_clear(&vs);
}

void sc_reload_now(struct sc_app *app, const char *why)
{
    (void)app;
    signature(rl.sig, sizeof(rl.sig));
    attempt(why);
}

static void check(const char *why)
{
    char sig[sizeof(rl.sig)];

    signature(sig, sizeof(sig));
    if (strcmp(sig, rl.sig) != 0) {
        memcpy(rl.sig, sig, sizeof(sig));
        attempt(why);
    }
}

static void on_poll(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    (void)arg;
    check("poll");
    duet_timer_start(loop, t, rl.app->cfg.poll_ms);
}

/* inotify on DIR (never on the files), debounced by duet_watch. */
static void on_watch(struct duet_watch *w, void *arg)
{
    (void)w;
    (void)arg;
    check("inotify");
}

int sc_reload_init(struct sc_app *app)
{
    struct duet_errbuf eb;
    int rc;

    rl.app = app;
    rl.generation = 0;
    duet_timer_init(&rl.poll, on_poll, NULL);
    sc_reload_now(app, "start");
    duet_timer_start(app->loop, &rl.poll, app->cfg.poll_ms);
    duet_errbuf_clear(&eb);
    rc = duet_watch_new(app->loop, app->cfg.certs, NULL, on_watch, NULL, &rl.watch, &eb);
    if (rc < 0) /* the stat poll alone still reloads, only later */
        duet_log(DUET_LOG_WARN, "reload", "dir=%s err=%s msg=\"no folder watch: %s\"",
                 app->cfg.certs, duet_err_name(rc), eb.msg);
    return 0;
}

void sc_reload_deinit(void)
{
    duet_watch_free(rl.watch);
    rl.watch = NULL;
    if (rl.app)
        duet_timer_stop(rl.app->loop, &rl.poll);
}

bool sc_reload_ready(void)
{
    struct sc_tls_set *s = sc_tls_acquire();
    bool ok = s && sc_tls_set_info(s)->not_after * 1000 > duet_clock_real_ms();

    sc_tls_set_unref(s);
    return ok;
}
