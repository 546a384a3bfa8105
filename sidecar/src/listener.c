/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listeners: each worker owns one SO_REUSEPORT socket per --outbound or
 * --inbound spec, so the kernel spreads new connections over the workers
 * without a shared accept lock. A worker at its share of --max-conns takes
 * its listeners out of epoll (the backlog holds newcomers) and puts them
 * back when a connection ends.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sc.h"

#define ACCEPT_BATCH 32

void sc_listener_pause(struct sc_listener *l, bool pause)
{
    if (l->fd < 0 || l->paused == pause || l->w->draining)
        return;
    if (duet_loop_mod_fd(l->w->loop, l->fd, pause ? 0 : DUET_EV_READ) == 0)
        l->paused = pause;
}

void sc_listener_on_accept(struct duet_loop *loop, int lfd, uint32_t ev, void *arg)
{
    struct sc_listener *l = arg;

    (void)loop;
    (void)ev;
    for (int i = 0; i < ACCEPT_BATCH && !l->paused; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int one = 1;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                duet_log(DUET_LOG_WARN, "listener", "listener=%s err=%s msg=\"accept failed\"",
                         l->cfg->listen, duet_err_name(-errno));
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        sc_conn_start(l, fd, (struct sockaddr *)&ss);
    }
}
