/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listeners: each worker owns one SO_REUSEPORT socket per --outbound or
 * --inbound spec, so the kernel spreads new connections over the workers
 * without a shared accept lock. A worker at its share of --max-conns takes
 * its listeners out of epoll (the backlog holds newcomers) and puts them
 * back when a connection ends.
 */
#include <stdio.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "listener.h"
#include "worker.h"

/*
 * accept4 calls per wake-up at most: one connection, plus retries of the
 * errors that concern only the connection that went away (EINTR,
 * ECONNABORTED).
 */
#define ACCEPT_TRIES 4
/* Out of descriptors: how long a listener rests before trying again. */
#define FD_STARVED_MS 250

void sc_listener_pause(struct sc_listener *l, bool pause)
{
    if (l->fd < 0 || l->paused == pause || l->w->draining || (!pause && l->fd_starved))
        return;
    if (duet_loop_mod_fd(l->w->loop, l->fd, pause ? 0 : DUET_EV_READ) == 0)
        l->paused = pause;
}

static void on_fd_timer(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct sc_listener *l = arg;

    (void)loop;
    (void)t;
    l->fd_starved = false;
    if (l->w->conns.n < l->w->env.max_conns)
        sc_listener_pause(l, false);
}

/* EMFILE and friends leave the connection in the backlog and the listener
 * readable: with level-triggered epoll that would spin. Rest a while. */
static void fd_starved(struct sc_listener *l, int err)
{
    if (!l->starve_logged)
        duet_log(DUET_LOG_WARN, "listener", "listener=%s err=%s msg=\"cannot accept, pausing\"",
                 l->cfg->listen, duet_err_name(-err));
    l->starve_logged = true;
    l->fd_starved = true;
    sc_listener_pause(l, true);
    if (!duet_timer_active(&l->fd_timer))
        duet_timer_init(&l->fd_timer, on_fd_timer, l);
    duet_timer_start(l->w->loop, &l->fd_timer, FD_STARVED_MS);
}

/*
 * One connection per wake-up rather than a loop until EAGAIN: the listener
 * is level-triggered, so the next epoll_wait reports it again at once while
 * the backlog holds more (nginx's multi_accept off). At the rates a sidecar
 * sees, the backlog holds one connection per wake-up and the loop paid an
 * accept4 that only said EAGAIN for each; and under a burst, a worker does
 * not build a batch of ClientHellos before it looks at its open
 * connections again.
 */
void sc_listener_on_accept(struct duet_loop *loop, int lfd, uint32_t ev, void *arg)
{
    struct sc_listener *l = arg;

    (void)loop;
    (void)ev;
    for (int i = 0; i < ACCEPT_TRIES && !l->paused; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                fd_starved(l, errno);
            return;
        }
        l->starve_logged = false;
        sc_conn_start(&l->w->conns, l, fd, (struct sockaddr *)&ss);
        return;
    }
}

void sc_listener_stop(struct sc_listener *l)
{
    duet_timer_stop(l->w->loop, &l->fd_timer);
    sc_tls_session_drop(&l->session);
    if (l->fd < 0)
        return;
    duet_loop_del_fd(l->w->loop, l->fd);
    close(l->fd);
    l->fd = -1;
}
