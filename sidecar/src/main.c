/* SPDX-License-Identifier: Apache-2.0 */
/*
 * duet-sidecar: parse flags, bind every listener (one SO_REUSEPORT socket
 * per worker), load the certificate set (or wait for one), start the
 * workers, then run the control loop: SIGHUP reloads, SIGTERM/SIGINT drain
 * (stop accepting, wait up to --drain-timeout for open connections, then
 * close what is left) and exit 0. Exit status 2 for bad usage, 1 when a
 * listener cannot be bound or a thread cannot start.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "duet/status_http.h"
#include "main.h"
#include "metrics.h"
#include "resolve.h"
#include "tls_set.h"

static struct sc_app app;
static struct duet_timer drain_timer;
static bool draining;

static void on_trust_changed(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < app.n_workers; i++)
        sc_worker_command(app.workers[i], SC_CMD_RECHECK);
}

static void on_hup(struct duet_loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
    sc_reload_now(app.reload, "sighup");
}

static void on_drain_timeout(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    (void)arg;
    duet_log(DUET_LOG_WARN, "main", "msg=\"drain timeout: closing remaining connections\"");
    for (unsigned i = 0; i < app.n_workers; i++)
        sc_worker_command(app.workers[i], SC_CMD_ABORT);
}

static void on_term(struct duet_loop *loop, void *arg)
{
    (void)arg;
    if (draining)
        return;
    draining = true;
    app.ready_listeners = false;
    duet_log(DUET_LOG_INFO, "main", "drain_ms=%lld msg=\"draining\"", (long long)app.cfg.drain_ms);
    for (unsigned i = 0; i < app.n_workers; i++)
        sc_worker_command(app.workers[i], SC_CMD_DRAIN);
    duet_timer_init(&drain_timer, on_drain_timeout, NULL);
    duet_timer_start(loop, &drain_timer, app.cfg.drain_ms);
}

static void on_finished(struct duet_loop *loop, int fd, uint32_t ev, void *arg)
{
    uint64_t v;

    (void)ev;
    (void)arg;
    (void)!read(fd, &v, sizeof(v));
    if (__atomic_load_n(&app.finished, __ATOMIC_ACQUIRE) == app.n_workers)
        duet_loop_stop(loop);
}

static int bind_all(int fds[SC_MAX_WORKERS][SC_MAX_LISTENERS], struct duet_errbuf *eb)
{
    for (unsigned w = 0; w < app.n_workers; w++) {
        for (unsigned i = 0; i < app.cfg.n_listeners; i++) {
            int fd = duet_net_listen(app.cfg.listeners[i].listen, true, 1024, eb);

            if (fd < 0)
                return fd;
            fds[w][i] = fd;
        }
    }
    return 0;
}

static int run(void)
{
    static int fds[SC_MAX_WORKERS][SC_MAX_LISTENERS];
    struct duet_status_http *status = NULL;
    struct sc_worker_env env;
    struct duet_errbuf eb;
    unsigned started = 0;
    int rc;

    duet_errbuf_clear(&eb);
    memset(fds, 0xff, sizeof(fds)); /* -1 everywhere */
    app.n_workers = app.cfg.workers;
    signal(SIGPIPE, SIG_IGN);
    DUET_TRY_GOTO(duet_loop_new(&app.loop), rc, out);
    /* Signals are blocked here, before any thread starts, so every worker
     * inherits the mask and only the signalfd sees them. */
    DUET_TRY_GOTO(duet_loop_add_signal(app.loop, SIGTERM, on_term, NULL), rc, out);
    DUET_TRY_GOTO(duet_loop_add_signal(app.loop, SIGINT, on_term, NULL), rc, out);
    DUET_TRY_GOTO(duet_loop_add_signal(app.loop, SIGHUP, on_hup, NULL), rc, out);
    app.main_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (app.main_fd == -1) {
        rc = -errno;
        goto out;
    }
    DUET_TRY_GOTO(duet_loop_add_fd(app.loop, app.main_fd, DUET_EV_READ, on_finished, NULL), rc,
                  out);
    DUET_TRY_GOTO(bind_all(fds, &eb), rc, out);
    env = (struct sc_worker_env){
        .cfg = &app.cfg,
        .done_fd = app.main_fd,
        .finished = &app.finished,
        .max_conns = (app.cfg.max_conns + app.n_workers - 1) / app.n_workers,
        .max_pending = (app.cfg.max_pending + app.n_workers - 1) / app.n_workers,
    };
    for (unsigned w = 0; w < app.n_workers; w++)
        DUET_TRY_GOTO(sc_worker_new(&env, w, fds[w], &app.workers[w], &eb), rc, out);
    DUET_TRY_GOTO(sc_reload_new(app.loop, &app.cfg, on_trust_changed, NULL, &app.reload), rc, out);
    if (app.cfg.status)
        DUET_TRY_GOTO(duet_status_http_new(app.loop, app.cfg.status, NULL, sc_metrics_handler, &app,
                                           &status, &eb),
                      rc, out);
    /* The resolver thread only exists when some upstream is a name. */
    for (unsigned i = 0; i < app.cfg.n_listeners; i++) {
        if (!app.cfg.listeners[i].literal) {
            const struct sc_resolve_opts ro = {app.cfg.resolve_threads, app.cfg.resolve_queue,
                                               app.cfg.resolve_ttl_ms};

            DUET_TRY_GOTO(sc_resolve_init(&ro), rc, out);
            break;
        }
    }
    for (; started < app.n_workers; started++)
        DUET_TRY_GOTO(sc_worker_start(app.workers[started]), rc, out);
    app.ready_listeners = true;
    duet_log(DUET_LOG_INFO, "main", "workers=%u listeners=%u msg=\"started\"", app.n_workers,
             app.cfg.n_listeners);
    rc = duet_loop_run(app.loop);
out:
    if (rc < 0) {
        char q[600];

        duet_log(DUET_LOG_ERROR, "main", "err=%s msg=%s", duet_err_name(rc),
                 duet_log_quote(q, sizeof(q), eb.msg[0] ? eb.msg : duet_strerror(rc)));
    }
    for (unsigned w = 0; w < started; w++) {
        sc_worker_command(app.workers[w], SC_CMD_ABORT);
        sc_worker_join(app.workers[w]);
    }
    sc_resolve_deinit();
    for (unsigned w = 0; w < app.n_workers; w++) {
        sc_worker_free(app.workers[w]);
        for (unsigned i = 0; i < app.cfg.n_listeners; i++) {
            if (fds[w][i] >= 0)
                close(fds[w][i]);
        }
    }
    duet_status_http_free(status);
    sc_reload_free(app.reload);
    app.reload = NULL;
    sc_tls_shutdown();
    if (app.loop)
        duet_loop_free(app.loop);
    if (app.main_fd > 0)
        close(app.main_fd);
    if (rc < 0)
        return duet_err_exit_status(rc);
    duet_log(DUET_LOG_INFO, "main", "msg=\"stopped\"");
    return 0;
}

int main(int argc, char **argv)
{
    struct duet_errbuf eb;
    int rc;

    duet_errbuf_clear(&eb);
    if (duet_log_init_from_env() < 0) {
        fprintf(stderr, "duet-sidecar: DUET_LOG_LEVEL: expected error, warn, info or debug\n");
        return 2;
    }
    rc = sc_cfg_parse(&app.cfg, argc, argv, &eb);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "duet-sidecar: %s\n", eb.msg);
        return 2;
    }
    duet_log_set_level(app.cfg.log_level);
    return run();
}
