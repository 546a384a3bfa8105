/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A listener: one SO_REUSEPORT socket of one worker for one --outbound or
 * --inbound spec (listener.c). It accepts, hands each socket to conn.c,
 * and rests when the worker is full or out of descriptors.
 */
#ifndef SC_LISTENER_H
#define SC_LISTENER_H

#include <stdbool.h>
#include <stdint.h>

#include "duet/loop.h"
#include "cfg.h"
#include "metrics.h"
#include "xprt_tls.h"

struct sc_worker;

struct sc_listener {
    struct sc_worker *w;             /* the owner */
    const struct sc_listen_cfg *cfg; /* borrowed from the process's sc_cfg */
    int fd;
    bool paused;
    bool fd_starved;    /* paused by EMFILE/ENFILE, resumed by fd_timer */
    bool starve_logged; /* one log line per episode, until an accept works */
    struct duet_timer fd_timer;
    struct sc_lstats stats;
    struct sc_tls_session session; /* outbound resumption */
};

/* The listening socket's loop callback (arg: the listener). */
void sc_listener_on_accept(struct duet_loop *loop, int fd, uint32_t ev, void *arg);
/* Take the listener out of epoll (pause) or put it back; a no-op while draining or starved. */
void sc_listener_pause(struct sc_listener *l, bool pause);
/* Stop for good: timer stopped, fd out of the loop and closed, session dropped. */
void sc_listener_stop(struct sc_listener *l);

#endif
