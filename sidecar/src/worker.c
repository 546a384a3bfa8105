/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker: one thread, one loop, its own SO_REUSEPORT listeners, its
 * connections, its buffer cache and its resolver mailbox. main talks to it
 * through an eventfd and a command word (drain, abort); the resolver thread
 * wakes it through the same eventfd. When it has nothing left to do it
 * tells main through the done eventfd of its env and its thread returns.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "tls_set.h"
#include "worker.h"

#define LIMITED_LOGS_PER_SEC 20

static bool ratelim_take(struct sc_ratelim *rl, unsigned per_sec, unsigned id, const char *what)
{
    int64_t now = duet_clock_mono_ms();

    if (now - rl->window >= 1000) {
        if (rl->suppressed)
            duet_log(DUET_LOG_WARN, "conn", "worker=%u suppressed=%u msg=\"%s not logged\"", id,
                     rl->suppressed, what);
        rl->window = now;
        rl->count = 0;
        rl->suppressed = 0;
    }
    if (rl->count >= per_sec) {
        rl->suppressed++;
        return false;
    }
    rl->count++;
    return true;
}

unsigned sc_worker_id(const struct sc_worker *w)
{
    return w->id;
}

unsigned sc_worker_max_pending(const struct sc_worker *w)
{
    return w->env.max_pending;
}

bool sc_worker_may_log_admission(struct sc_worker *w)
{
    unsigned per_sec = w->env.cfg->admission_logs;

    return per_sec > 0 && duet_log_enabled(DUET_LOG_INFO) &&
           ratelim_take(&w->admissions, per_sec, w->id, "admissions");
}

/* One line of a kind that a peer can provoke at will (a refused client, a
 * dead upstream): at most LIMITED_LOGS_PER_SEC per worker and kind. */
DUET_PRINTF(5, 0)
static void log_limited(struct sc_worker *w, struct sc_ratelim *rl, const char *what,
                        const char *verb, const char *fmt, va_list ap)
{
    char line[1024];

    if (!duet_log_enabled(DUET_LOG_INFO) || !ratelim_take(rl, LIMITED_LOGS_PER_SEC, w->id, what))
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    duet_log(DUET_LOG_INFO, "conn", "worker=%u %s %s", w->id, verb, line);
}

void sc_worker_log_refusal(struct sc_worker *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_limited(w, &w->refusals, "refusals", "refused", fmt, ap);
    va_end(ap);
}

void sc_worker_log_upstream_failure(struct sc_worker *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_limited(w, &w->upstream_failures, "upstream failures", "failed", fmt, ap);
    va_end(ap);
}

static void stop_listeners(struct sc_worker *w)
{
    for (unsigned i = 0; i < w->n_listeners; i++)
        sc_listener_stop(&w->listeners[i]);
}

static void on_ctl(struct duet_loop *loop, int fd, uint32_t ev, void *arg)
{
    struct sc_worker *w = arg;
    uint64_t v;
    unsigned cmd;

    (void)ev;
    (void)!read(fd, &v, sizeof(v));
    sc_resolve_drain(&w->rbox);
    cmd = __atomic_exchange_n(&w->cmd, 0, __ATOMIC_ACQ_REL);
    if (cmd & (SC_CMD_DRAIN | SC_CMD_ABORT)) {
        w->draining = true;
        stop_listeners(w);
    }
    if (cmd & SC_CMD_ABORT)
        sc_conn_close_all(&w->conns);
    if (cmd & SC_CMD_RECHECK) {
        struct sc_tls_set *set = sc_tls_acquire();

        if (set)
            sc_conn_recheck_all(&w->conns, set);
        sc_tls_set_unref(set);
    }
    if (w->draining && w->conns.n == 0)
        duet_loop_stop(loop);
}

void sc_worker_conns_changed(struct sc_worker *w)
{
    bool full = w->conns.n >= w->env.max_conns;

    for (unsigned i = 0; i < w->n_listeners; i++)
        sc_listener_pause(&w->listeners[i], full);
    if (w->draining && w->conns.n == 0)
        duet_loop_stop(w->loop);
}

void sc_worker_command(struct sc_worker *w, unsigned cmd)
{
    uint64_t one = 1;

    __atomic_or_fetch(&w->cmd, cmd, __ATOMIC_ACQ_REL);
    (void)!write(w->ctl_fd, &one, sizeof(one));
}

int sc_worker_new(const struct sc_worker_env *env, unsigned id, int *listen_fds,
                  struct sc_worker **out, struct duet_errbuf *eb)
{
    struct sc_worker *w = duet_calloc(1, sizeof(*w));
    int rc;

    if (!w)
        return DUET_ENOMEM;
    w->env = *env;
    w->id = id;
    w->ctl_fd = -1;
    for (unsigned i = 0; i < SC_MAX_LISTENERS; i++) {
        w->listeners[i].w = w;
        w->listeners[i].fd = -1;
    }
    w->pool.max_free = SC_POOL_CACHE_BYTES / SC_BUF_SIZE;
    w->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->ctl_fd == -1) {
        rc = -errno;
        duet_free(w);
        return duet_errf(eb, rc, "worker %u: %s", id, duet_strerror(rc));
    }
    sc_resolve_box_init(&w->rbox, w->ctl_fd);
    DUET_TRY_GOTO(duet_loop_new(&w->loop), rc, fail);
    sc_conns_init(&w->conns, w, w->loop, &w->pool, &w->rbox, env->cfg);
    DUET_TRY_GOTO(duet_loop_add_fd(w->loop, w->ctl_fd, DUET_EV_READ, on_ctl, w), rc, fail);
    duet_loop_set_before_sleep(w->loop, sc_conn_before_sleep, &w->conns);
    w->n_listeners = env->cfg->n_listeners;
    for (unsigned i = 0; i < w->n_listeners; i++) {
        struct sc_listener *l = &w->listeners[i];

        l->cfg = &env->cfg->listeners[i];
        l->fd = listen_fds[i];
        listen_fds[i] = -1; /* ours now */
        DUET_TRY_GOTO(duet_loop_add_fd(w->loop, l->fd, DUET_EV_READ, sc_listener_on_accept, l), rc,
                      fail);
    }
    *out = w;
    return 0;
fail:
    duet_errf(eb, rc, "worker %u: %s", id, duet_strerror(rc));
    sc_worker_free(w);
    return rc;
}

/*
 * Stop accepting, close every connection and run the loop until the
 * deferred frees have happened. Called when the thread's loop returns
 * (abort, or a loop failure) and again by sc_worker_free for a worker whose
 * thread never ran; the second call finds nothing left to do.
 */
static void close_everything(struct sc_worker *w)
{
    stop_listeners(w);
    sc_conn_close_all(&w->conns);
    for (int i = 0; i < 4 && w->conns.n > 0; i++) {
        if (duet_loop_run_once(w->loop, 0) < 0)
            break;
    }
}

static void *worker_main(void *arg)
{
    struct sc_worker *w = arg;
    uint64_t one = 1;
    int rc = duet_loop_run(w->loop);

    if (rc < 0)
        duet_log(DUET_LOG_ERROR, "worker", "worker=%u err=%s msg=\"event loop failed\"", w->id,
                 duet_err_name(rc));
    close_everything(w);
    __atomic_add_fetch(w->env.finished, 1, __ATOMIC_ACQ_REL);
    (void)!write(w->env.done_fd, &one, sizeof(one));
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
    if (w->loop) {
        sc_resolve_drain(&w->rbox); /* frees requests posted after their connections went */
        close_everything(w);
    }
    if (w->loop)
        duet_loop_del_fd(w->loop, w->ctl_fd);
    sc_resolve_box_deinit(&w->rbox);
    close(w->ctl_fd);
    sc_bufpool_deinit(&w->pool);
    duet_loop_free(w->loop);
    duet_free(w);
}
