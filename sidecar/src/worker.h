/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker (worker.c): one thread, one loop, its own listeners, its
 * connections, its buffer cache and its resolver mailbox. main talks to it
 * through sc_worker_command; it tells main it has finished through the
 * done eventfd given at creation.
 */
#ifndef SC_WORKER_H
#define SC_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "duet/err.h"
#include "duet/loop.h"
#include "cfg.h"
#include "conn.h"
#include "listener.h"
#include "pump.h"
#include "resolve.h"

#define SC_CMD_DRAIN 0x1u
#define SC_CMD_ABORT 0x2u
#define SC_CMD_RECHECK 0x4u /* the trust changed: check every open connection's peer */

/* At most `per_sec` events a second; the rest are counted and summed up in
 * one line when the next window opens. */
struct sc_ratelim {
    int64_t window;
    unsigned count;
    unsigned suppressed;
};

/* What a worker borrows from the process for its whole life. */
struct sc_worker_env {
    const struct sc_cfg *cfg;
    int done_fd;          /* eventfd written once when the thread finishes */
    unsigned *finished;   /* atomic count of finished workers */
    unsigned max_conns;   /* this worker's share of --max-conns */
    unsigned max_pending; /* this worker's share of --max-pending-handshakes */
};

struct sc_worker {
    struct sc_worker_env env;
    unsigned id;
    pthread_t thread;
    struct duet_loop *loop;
    int ctl_fd; /* eventfd: main -> worker commands, resolver completions */
    unsigned n_listeners;
    struct sc_listener listeners[SC_MAX_LISTENERS];
    struct sc_conns conns;
    bool draining;
    struct sc_bufpool pool;
    struct sc_resolve_box rbox;
    unsigned cmd;                        /* SC_CMD_* bits, atomic */
    struct sc_ratelim refusals;          /* refusal log lines */
    struct sc_ratelim admissions;        /* admission log lines */
    struct sc_ratelim upstream_failures; /* outbound connections that failed */
};

/* Takes listen_fds[0 .. cfg->n_listeners) (set to -1 as they are taken). */
int sc_worker_new(const struct sc_worker_env *env, unsigned id, int *listen_fds,
                  struct sc_worker **out, struct duet_errbuf *eb) DUET_MUST_CHECK;
int sc_worker_start(struct sc_worker *w) DUET_MUST_CHECK;
/* Any thread. */
void sc_worker_command(struct sc_worker *w, unsigned cmd);
void sc_worker_join(struct sc_worker *w);
/* Accepts NULL. */
void sc_worker_free(struct sc_worker *w);
/* Log a refused peer, at most a few lines per second per worker. */
void sc_worker_log_refusal(struct sc_worker *w, const char *fmt, ...) DUET_PRINTF(2, 3);
/* Log an outbound connection the upstream failed, limited the same way: a
 * dead upstream under load would otherwise log a line per client. */
void sc_worker_log_upstream_failure(struct sc_worker *w, const char *fmt, ...) DUET_PRINTF(2, 3);
/* May an admission be logged now (--log-admissions a second per worker)? */
bool sc_worker_may_log_admission(struct sc_worker *w);
/* The worker's number (logs) and its share of --max-pending-handshakes. */
unsigned sc_worker_id(const struct sc_worker *w);
unsigned sc_worker_max_pending(const struct sc_worker *w);
/* Called by conn.c as connections come and go: pauses and resumes the
 * listeners at the limit, and stops a draining worker's loop at zero. */
void sc_worker_conns_changed(struct sc_worker *w);

#endif
