/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker: one thread, one loop, its own SO_REUSEPORT listeners, its
 * connections, its buffer cache and its resumption sessions. main talks to
 * it through an eventfd and a command word (drain, abort); the resolver
 * thread wakes it through the same eventfd. When it has nothing left to do
 * it tells main through main's eventfd and its thread returns.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "sc.h"

#define REFUSAL_LOGS_PER_SEC 20

const char *const sc_fail_names[SC_FAIL_COUNT] = {
    [SC_FAIL_NO_CERT] = "no_cert",
    [SC_FAIL_UNTRUSTED] = "untrusted",
    [SC_FAIL_EXPIRED] = "expired",
    [SC_FAIL_REVOKED] = "revoked",
    [SC_FAIL_NOT_ALLOWED] = "not_allowed",
    [SC_FAIL_PROTOCOL] = "protocol",
    [SC_FAIL_TIMEOUT] = "timeout",
    [SC_FAIL_CONNECT] = "connect",
    [SC_FAIL_RESOLVE] = "resolve",
    [SC_FAIL_NO_CERTS_LOADED] = "no_certs_loaded",
};

void sc_worker_log_refusal(struct sc_worker *w, const char *fmt, ...)
{
    int64_t now = duet_clock_mono_ms();
    char line[768];
    va_list ap;

    if (!duet_log_enabled(DUET_LOG_INFO))
        return;
    if (now - w->log_window >= 1000) {
        if (w->log_suppressed)
            duet_log(DUET_LOG_WARN, "conn", "worker=%u suppressed=%u msg=\"refusals not logged\"",
                     w->id, w->log_suppressed);
        w->log_window = now;
        w->log_count = 0;
        w->log_suppressed = 0;
    }
    if (w->log_count >= REFUSAL_LOGS_PER_SEC) {
        w->log_suppressed++;
        return;
    }
    w->log_count++;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    duet_log(DUET_LOG_INFO, "conn", "worker=%u refused %s", w->id, line);
}

static void stop_listeners(struct sc_worker *w)
{
    for (unsigned i = 0; i < w->n_listeners; i++) {
        struct sc_listener *l = &w->listeners[i];

        duet_timer_stop(w->loop, &l->fd_timer);
        if (l->fd < 0)
            continue;
        duet_loop_del_fd(w->loop, l->fd);
        close(l->fd);
        l->fd = -1;
    }
}

static void on_ctl(struct duet_loop *loop, int fd, uint32_t ev, void *arg)
{
    struct sc_worker *w = arg;
    uint64_t v;
    unsigned cmd;

    (void)ev;
    (void)!read(fd, &v, sizeof(v));
    sc_resolve_drain(w);
    cmd = __atomic_exchange_n(&w->cmd, 0, __ATOMIC_ACQ_REL);
    if (cmd & (SC_CMD_DRAIN | SC_CMD_ABORT)) {
        w->draining = true;
        stop_listeners(w);
    }
    if (cmd & SC_CMD_ABORT)
        sc_conn_close_all(w);
    if (w->draining && w->nconns == 0)
        duet_loop_stop(loop);
}

void sc_worker_command(struct sc_worker *w, unsigned cmd)
{
    uint64_t one = 1;

    __atomic_or_fetch(&w->cmd, cmd, __ATOMIC_ACQ_REL);
    (void)!write(w->ctl_fd, &one, sizeof(one));
}

int sc_worker_new(struct sc_app *app, unsigned id, int *listen_fds, struct sc_worker **out,
                  struct duet_errbuf *eb)
{
    struct sc_worker *w = duet_calloc(1, sizeof(*w));
    int rc;

    if (!w)
        return DUET_ENOMEM;
    w->app = app;
    w->id = id;
    w->ctl_fd = -1;
    for (unsigned i = 0; i < SC_MAX_LISTENERS; i++)
        w->listeners[i].fd = -1;
    w->pool.max_free = SC_POOL_CACHE_BYTES / SC_BUF_SIZE;
    w->max_conns = (app->cfg.max_conns + app->n_workers - 1) / app->n_workers;
    pthread_mutex_init(&w->done_mu, NULL);
    DUET_TRY_GOTO(duet_loop_new(&w->loop), rc, fail);
    w->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->ctl_fd == -1) {
        rc = -errno;
        goto fail;
    }
    DUET_TRY_GOTO(duet_loop_add_fd(w->loop, w->ctl_fd, DUET_EV_READ, on_ctl, w), rc, fail);
    duet_loop_set_before_sleep(w->loop, sc_conn_before_sleep, w);
    w->n_listeners = app->cfg.n_listeners;
    for (unsigned i = 0; i < w->n_listeners; i++)
        w->listeners[i].fd = -1;
    for (unsigned i = 0; i < w->n_listeners; i++) {
        struct sc_listener *l = &w->listeners[i];

        l->w = w;
        l->cfg = &app->cfg.listeners[i];
        l->fd = listen_fds[i];
        listen_fds[i] = -1; /* ours now */
        DUET_TRY_GOTO(duet_loop_add_fd(w->loop, l->fd, DUET_EV_READ, sc_listener_on_accept, l),
                      rc, fail);
    }
    *out = w;
    return 0;
fail:
    duet_errf(eb, rc, "worker %u: %s", id, duet_strerror(rc));
    sc_worker_free(w);
    return rc;
}

static void *worker_main(void *arg)
{
    struct sc_worker *w = arg;
    uint64_t one = 1;
    int rc = duet_loop_run(w->loop);

    if (rc < 0)
        duet_log(DUET_LOG_ERROR, "worker", "worker=%u err=%s msg=\"event loop failed\"", w->id,
                 duet_err_name(rc));
    /* Finish closing what is still open (abort, or a loop failure). */
    sc_conn_close_all(w);
    for (int i = 0; i < 4 && w->nconns > 0; i++) {
        if (duet_loop_run_once(w->loop, 0) < 0)
            break;
    }
    __atomic_add_fetch(&w->app->finished, 1, __ATOMIC_ACQ_REL);
    (void)!write(w->app->main_fd, &one, sizeof(one));
    return NULL;
}

int sc_worker_start(struct sc_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);

    return rc ? -rc : 0;
}

void sc_worker_join(struct sc_worker *w)
{
    pthread_join(w->thread, NULL);
}

void sc_worker_free(struct sc_worker *w)
{
    if (!w)
        return;
    sc_resolve_drain(w); /* frees requests posted after the connections went */
    if (w->loop) {
        stop_listeners(w);
        sc_conn_close_all(w);
        for (int i = 0; i < 4 && w->nconns > 0; i++) {
            if (duet_loop_run_once(w->loop, 0) < 0)
                break;
        }
    }
    for (unsigned i = 0; i < w->n_listeners; i++)
        sc_tls_listener_drop_session(&w->listeners[i]);
    if (w->ctl_fd >= 0) {
        if (w->loop)
            duet_loop_del_fd(w->loop, w->ctl_fd);
        close(w->ctl_fd);
    }
    sc_bufpool_deinit(&w->pool);
    duet_loop_free(w->loop);
    pthread_mutex_destroy(&w->done_mu);
    duet_free(w);
}
