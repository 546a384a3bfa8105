/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-connection state machine. Both directions share it:
 *
 *   outbound: RESOLVING -> CONNECTING -> HANDSHAKE (up, TLS client) -> OPEN
 *   inbound:  HANDSHAKE (down, TLS server) -> RESOLVING -> CONNECTING -> OPEN
 *   OPEN -> HALF_CLOSED (one side sent its end) -> freed; any state -> CLOSING
 *
 * RESOLVING is skipped for IP literals. One timer per connection carries
 * whichever deadline is nearest: the handshake deadline before OPEN, then
 * the idle deadline (checked lazily against last_active, so traffic never
 * re-arms the timer) and the lifetime deadline (--max-conn-lifetime, our
 * certificate's notAfter outbound, the peer certificate's notAfter inbound).
 * Closing is two-step (STYLE.md 5): conn_close() marks the connection,
 * the loop frees it in step 5 of the iteration.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "conn.h"
#include "listener.h"
#include "metrics.h"
#include "pump.h"
#include "resolve.h"
#include "tls_set.h"
#include "worker.h"
#include "xprt.h"

enum sc_state {
    SC_ST_RESOLVING = 0,
    SC_ST_CONNECTING,
    SC_ST_HANDSHAKE,
    SC_ST_OPEN,
    SC_ST_HALF_CLOSED,
    SC_ST_CLOSING,
};

/*
 * Outbound connections close this long before our certificate's notAfter, or
 * a tenth of its lifetime if that is shorter: a 60-second certificate (a
 * rotation demo, a test) must not leave every connection already past its
 * deadline at birth.
 */
#define SC_EXPIRY_MARGIN_MS 60000
/*
 * Past its soft deadline a connection closes only at rest: nothing buffered,
 * the upstream spoke last (a request/response protocol has nothing pending)
 * and both sides quiet this long. A TCP proxy cannot see request boundaries,
 * and closing right after an answer races a client that pipelines its next
 * request (wrk, a busy pool): that request would be lost. After a quiet gap
 * the close looks to the client like a server's keep-alive timeout, which
 * HTTP and RPC clients are built to retry. A connection never at rest is cut
 * at the hard deadline.
 */
#define SC_REST_QUIET_MS 250
/* A connection past its soft deadline but not at rest is looked at again this often. */
#define SC_LIFE_RECHECK_MS 100
#define SC_PUMP_ROUNDS 4
/*
 * Unsent bytes a socket may hold in the kernel (TCP_NOTSENT_LOWAT) before
 * it stops being writable. Without a bound, a peer that stops reading lets
 * send-buffer autotuning queue up to tcp_wmem's maximum (4 MiB by default)
 * on our side of every such connection, and the read side's autotuning
 * follows: kernel memory that cgroup v2 charges to the sidecar's container,
 * about 5 MiB per non-reading client where our own buffers hold 128 KiB.
 * With it the pump's back-pressure reaches the other side after about this
 * much; two pump buffers keep a bulk transfer fed.
 */
#define SC_NOTSENT_LOWAT (2 * SC_BUF_SIZE)

struct sc_conn {
    struct sc_conn *prev, *next; /* the worker's struct sc_conns */
    struct sc_conn *drain_next;  /* its SSL_pending list */
    bool in_drain;
    struct sc_conn *pend_prev, *pend_next; /* the worker's pending handshakes */
    bool pending;
    enum sc_state st;
    struct sc_listener *l;
    struct sc_conns *cs; /* the worker's set, and what it lends */
    struct sc_side down, up;
    struct sc_pipe d2u, u2d;
    struct sc_tls_set *set;
    struct sc_resolve_req *rreq;
    bool rreq_owned;                /* delivered: ours to free; else the resolver's, cancel it */
    const struct addrinfo *ai_next; /* next address to try, inside rreq */
    struct duet_timer timer;
    struct duet_defer free_defer;
    struct duet_defer drain_defer;
    int64_t hs_deadline;
    int64_t life_deadline; /* 0: none; close once at rest (SC_REST_QUIET_MS) */
    int64_t life_hard;     /* close at this time even mid-transfer */
    int64_t last_active;
    bool answered; /* the last bytes moved went up -> down: nobody awaits an answer */
    int64_t resolve_start;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
};

static const char *peer_str(const struct sc_conn *c, char *buf, size_t size)
{
    return duet_net_addr_str(&c->peer.sa, buf, size);
}

static bool is_out(const struct sc_conn *c)
{
    return c->l->cfg->dir == SC_OUTBOUND;
}

/* ---- closing ---- */

/*
 * The client's side ends cleanly, also on upstream failure: our end of
 * stream first (a TLS side's close_notify, then the FIN), then what the
 * client sent that nobody will read is read and dropped. close(2) with
 * unread bytes sends a reset instead of a FIN, and bytes may arrive up to
 * the very close (or be more than we drop): once the FIN is out, a reset
 * after it no longer hides the end from the client. The transport is raw
 * afterwards; side_release closes the fd.
 */
static void end_down(struct sc_side *s)
{
    char junk[4096];

    s->ops->close(s, !s->shut);
    s->ops = &sc_xprt_raw;
    (void)shutdown(s->fd, SHUT_WR);
    for (int i = 0; i < 16 && !s->eof; i++) {
        if (read(s->fd, junk, sizeof(junk)) <= 0)
            return;
    }
}

static void side_release(struct sc_conns *cs, struct sc_side *s, bool graceful)
{
    if (s->fd < 0)
        return;
    s->ops->close(s, graceful && !s->shut);
    s->ops = &sc_xprt_raw;
    duet_loop_close_fd(cs->loop, s->fd); /* a socket of ours alone: no DEL needed */
    s->fd = -1;
}

static void conn_free(struct duet_loop *loop, void *arg)
{
    struct sc_conn *c = arg;
    struct sc_conns *cs = c->cs;

    (void)loop;
    duet_timer_stop(cs->loop, &c->timer);
    duet_loop_cancel_defer(cs->loop, &c->drain_defer);
    if (c->in_drain) {
        for (struct sc_conn **pp = &cs->drain_head; *pp; pp = &(*pp)->drain_next) {
            if (*pp == c) {
                *pp = c->drain_next;
                break;
            }
        }
    }
    if (c->rreq && c->rreq_owned)
        sc_resolve_free(c->rreq);
    else if (c->rreq)
        sc_resolve_cancel(c->rreq);
    side_release(cs, &c->up, true);
    if (c->down.fd >= 0)
        end_down(&c->down);
    side_release(cs, &c->down, true);
    sc_pipe_release(&c->d2u, cs->pool);
    sc_pipe_release(&c->u2d, cs->pool);
    sc_tls_set_unref(c->set);
    SC_STAT_ADD(c->l->stats.open, (uint64_t)-1);
    if (c->prev)
        c->prev->next = c->next;
    else
        cs->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    cs->n--;
    duet_free(c);
    sc_worker_conns_changed(cs->w);
}

/* ---- pending inbound handshakes (--max-pending-handshakes) ---- */

static void pend_remove(struct sc_conn *c)
{
    struct sc_conns *cs = c->cs;

    if (!c->pending)
        return;
    if (c->pend_prev)
        c->pend_prev->pend_next = c->pend_next;
    else
        cs->pend_head = c->pend_next;
    if (c->pend_next)
        c->pend_next->pend_prev = c->pend_prev;
    else
        cs->pend_tail = c->pend_prev;
    c->pend_prev = c->pend_next = NULL;
    c->pending = false;
    cs->n_pending--;
}

static void pend_add(struct sc_conn *c)
{
    struct sc_conns *cs = c->cs;

    c->pend_prev = NULL;
    c->pend_next = cs->pend_head;
    if (cs->pend_head)
        cs->pend_head->pend_prev = c;
    else
        cs->pend_tail = c;
    cs->pend_head = c;
    c->pending = true;
    cs->n_pending++;
}

static void conn_close(struct sc_conn *c)
{
    if (c->st == SC_ST_CLOSING)
        return;
    pend_remove(c);
    c->st = SC_ST_CLOSING;
    /* The sockets keep their interest: conn_free closes them in step 5 of
     * this iteration (or of the next one, when closed from step 5), which
     * takes them out of epoll; an event until then finds on_io ignoring a
     * CLOSING connection. Quieting them first cost an epoll_ctl each. */
    duet_loop_defer(c->cs->loop, &c->free_defer);
}

/* A connection refused or failed before OPEN: count, log, close. */
static void conn_fail(struct sc_conn *c, enum sc_fail f, const char *why, const char *subject)
{
    char peer[64], qsubj[300], qwhy[600];

    SC_STAT_ADD(c->l->stats.hs_fail[f], 1);
    /* The subject is the peer's to choose: quoted and escaped for the log. */
    duet_log_quote(qsubj, sizeof(qsubj), subject ? subject : "-");
    duet_log_quote(qwhy, sizeof(qwhy), why);
    peer_str(c, peer, sizeof(peer));
    if (is_out(c) && f != SC_FAIL_TIMEOUT && f != SC_FAIL_NO_CERTS_LOADED)
        sc_worker_log_upstream_failure(
            c->cs->w, "listener=%s upstream=%s:%u peer=%s reason=%s subject=%s msg=%s",
            c->l->cfg->listen, c->l->cfg->host, c->l->cfg->port, peer, sc_fail_names[f], qsubj,
            qwhy);
    else
        sc_worker_log_refusal(c->cs->w, "listener=%s peer=%s reason=%s subject=%s msg=%s",
                              c->l->cfg->listen, peer, sc_fail_names[f], qsubj, qwhy);
    conn_close(c);
}

/* ---- interest, timers ---- */

static void set_events(struct sc_conn *c, struct sc_side *s, uint32_t ev)
{
    if (s->fd < 0 || ev == s->events)
        return;
    if (duet_loop_mod_fd(c->cs->loop, s->fd, ev) < 0) {
        conn_close(c);
        return;
    }
    s->events = ev;
}

static void arm_timer(struct sc_conn *c, int64_t now)
{
    int64_t at;

    if (c->st < SC_ST_OPEN) {
        at = c->hs_deadline;
    } else {
        at = c->last_active + c->cs->cfg->idle_ms;
        if (c->life_deadline && c->life_deadline < at)
            at = c->life_deadline;
    }
    duet_timer_start(c->cs->loop, &c->timer, at - now);
}

static bool at_rest(const struct sc_conn *c, int64_t now)
{
    return !c->d2u.buf && !c->u2d.buf && c->answered && now - c->last_active >= SC_REST_QUIET_MS;
}

static void on_timer(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct sc_conn *c = arg;
    int64_t now = duet_clock_mono_ms();

    (void)loop;
    (void)t;
    if (c->st < SC_ST_OPEN) {
        if (now >= c->hs_deadline && c->st == SC_ST_RESOLVING) {
            char why[400];

            /* Say what it waited for: the name, not the TLS handshake. */
            snprintf(why, sizeof(why), "timeout resolving %s (no answer after %lld ms)",
                     c->l->cfg->host, (long long)(now - c->resolve_start));
            conn_fail(c, SC_FAIL_RESOLVE, why, NULL);
            return;
        }
        if (now >= c->hs_deadline) {
            conn_fail(c, SC_FAIL_TIMEOUT, "handshake timeout", NULL);
            return;
        }
    } else if (now - c->last_active >= c->cs->cfg->idle_ms) {
        duet_log(DUET_LOG_DEBUG, "conn", "listener=%s msg=\"idle timeout\"", c->l->cfg->listen);
        conn_close(c);
        return;
    } else if (c->life_deadline && now >= c->life_deadline) {
        bool rest = at_rest(c, now);

        if (!rest && now < c->life_hard) {
            int64_t wait = c->life_hard - now;

            duet_timer_start(loop, &c->timer,
                             wait < SC_LIFE_RECHECK_MS ? wait : SC_LIFE_RECHECK_MS);
            return;
        }
        if (rest)
            SC_STAT_ADD(c->l->stats.retired, 1);
        else
            SC_STAT_ADD(c->l->stats.cut, 1);
        duet_log(DUET_LOG_DEBUG, "conn", "listener=%s msg=\"lifetime or certificate deadline: %s\"",
                 c->l->cfg->listen, rest ? "closed at rest" : "cut while busy");
        conn_close(c);
        return;
    }
    arm_timer(c, now);
}

/*
 * Deadlines from --max-conn-lifetime and a certificate's notAfter (ours for
 * outbound, the peer's for inbound). The soft deadline sits `margin` before
 * notAfter so that the close is graceful; the hard one is notAfter itself.
 * A certificate already inside its margin gets no margin, so a connection
 * opened on it lives until the certificate really expires.
 */
static void set_life_deadline(struct sc_conn *c, int64_t now, int64_t not_before, int64_t not_after,
                              int64_t margin)
{
    int64_t soft = 0, hard = 0;

    if (c->cs->cfg->lifetime_ms > 0)
        soft = hard = now + c->cs->cfg->lifetime_ms;
    if (not_after > 0) {
        int64_t left = not_after * 1000 - duet_clock_real_ms();
        int64_t tenth = (not_after - not_before) * 100;

        if (not_before > 0 && tenth < margin)
            margin = tenth > 0 ? tenth : 0;
        if (left - margin <= 0)
            margin = 0;
        left = left > 0 ? left : 0;
        if (soft == 0 || now + left - margin < soft)
            soft = now + left - margin;
        if (hard == 0 || now + left < hard)
            hard = now + left;
    }
    c->life_deadline = soft;
    c->life_hard = hard;
}

/* ---- OPEN: pumping ---- */

/* Which pipes an event may move: pumping the other one would only cost a
 * read(2) bound to say EAGAIN. */
#define SC_PUMP_D2U 1u
#define SC_PUMP_U2D 2u
#define SC_PUMP_BOTH (SC_PUMP_D2U | SC_PUMP_U2D)

/*
 * Readable side s feeds the pipe that starts at s; writable s drains the pipe
 * that ends at s. TLS crosses over (a write that waits for the socket to be
 * readable, a read that waits for it to be writable), so those pump both. A
 * hang-up comes with EPOLLIN when s was asked to be read (the FIN is read
 * as EOF, a reset as an error) and with EPOLLOUT when s was asked to be
 * written (the write fails): the pipes those bits name are the ones it
 * concerns. Only a hang-up with neither (EPOLLHUP on a side we wanted
 * nothing from) pumps both, to find out.
 */
static unsigned pipes_for(const struct sc_conn *c, int fd, uint32_t ev)
{
    const struct sc_side *s = fd == c->down.fd ? &c->down : &c->up;
    unsigned from_s = s == &c->down ? SC_PUMP_D2U : SC_PUMP_U2D;
    unsigned to_s = from_s ^ SC_PUMP_BOTH;
    unsigned cross, m = 0;

    if ((ev & DUET_EV_HUP) && !(ev & (DUET_EV_READ | DUET_EV_WRITE)))
        return SC_PUMP_BOTH;
    cross = s->ops->cross(s);
    if (ev & DUET_EV_READ)
        m |= cross & SC_CROSS_WR_WANTS_RD ? SC_PUMP_BOTH : from_s;
    if (ev & DUET_EV_WRITE)
        m |= cross & SC_CROSS_RD_WANTS_WR ? SC_PUMP_BOTH : to_s;
    return m;
}

static void pump_pipes(struct sc_conn *c, unsigned which)
{
    struct sc_conns *cs = c->cs;
    long a = which & SC_PUMP_D2U ? sc_pump(&c->d2u, &c->down, &c->up, cs->pool, SC_PUMP_ROUNDS) : 0;
    long b = a < 0 || !(which & SC_PUMP_U2D)
                 ? 0
                 : sc_pump(&c->u2d, &c->up, &c->down, cs->pool, SC_PUMP_ROUNDS);

    if (a < 0 || b < 0) {
        duet_log(DUET_LOG_DEBUG, "conn", "listener=%s err=%s msg=\"connection ended\"",
                 c->l->cfg->listen, duet_err_name(a < 0 ? (int)a : (int)b));
        conn_close(c);
        return;
    }
    if (a > 0 || b > 0) {
        c->last_active = duet_loop_now_ms(cs->loop); /* ms resolution: no clock read per event */
        c->answered = a == 0;
        SC_STAT_ADD(c->l->stats.bytes_in, (uint64_t)a);
        SC_STAT_ADD(c->l->stats.bytes_out, (uint64_t)b);
    }
    if (sc_pipe_done(&c->d2u, &c->down, &c->up) && sc_pipe_done(&c->u2d, &c->up, &c->down)) {
        conn_close(c);
        return;
    }
    if (c->down.eof || c->up.eof)
        c->st = SC_ST_HALF_CLOSED;
    set_events(c, &c->down, sc_side_interest(&c->down, &c->d2u, &c->u2d));
    set_events(c, &c->up, sc_side_interest(&c->up, &c->u2d, &c->d2u));
    /* Bytes BoringSSL already decrypted are invisible to epoll: drain them
     * from the before-sleep hook (STYLE.md 9). */
    if (!c->in_drain && c->st != SC_ST_CLOSING &&
        ((!c->d2u.buf && !c->down.eof && c->down.ops->pending(&c->down)) ||
         (!c->u2d.buf && !c->up.eof && c->up.ops->pending(&c->up)))) {
        c->in_drain = true;
        c->drain_next = cs->drain_head;
        cs->drain_head = c;
    }
}

/* The pipes whose source holds bytes epoll cannot see (the TLS read-ahead,
 * records BoringSSL has decrypted): pumping another one would only cost a
 * read(2) bound to say EAGAIN. */
static unsigned pending_pipes(const struct sc_conn *c)
{
    return (c->down.ops->pending(&c->down) ? SC_PUMP_D2U : 0u) |
           (c->up.ops->pending(&c->up) ? SC_PUMP_U2D : 0u);
}

static void on_drain(struct duet_loop *loop, void *arg)
{
    struct sc_conn *c = arg;
    unsigned which = pending_pipes(c);

    (void)loop;
    if ((c->st == SC_ST_OPEN || c->st == SC_ST_HALF_CLOSED) && which)
        pump_pipes(c, which);
}

void sc_conn_before_sleep(struct duet_loop *loop, void *arg)
{
    struct sc_conns *cs = arg;

    while (cs->drain_head) {
        struct sc_conn *c = cs->drain_head;

        cs->drain_head = c->drain_next;
        c->in_drain = false;
        duet_loop_defer(loop, &c->drain_defer);
    }
}

static void go_open(struct sc_conn *c)
{
    int64_t now = duet_clock_mono_ms();

    c->st = SC_ST_OPEN;
    c->last_active = now;
    c->answered = true; /* nothing asked yet */
    arm_timer(c, now);
    /* Pump what can move now; level-triggered epoll reports the rest once
     * pump_pipes has set the interest. Outbound, the client has been
     * waiting since its accept (its request is usually there already), and
     * the upstream says nothing before it has the request: only bytes held
     * in TLS are worth a look. Inbound, the client's bytes held in TLS (a
     * request sent with its Finished), and nothing from the backend, which
     * was connected a moment ago. */
    pump_pipes(c, pending_pipes(c) | (is_out(c) ? SC_PUMP_D2U : 0u));
}

/* ---- handshake ---- */

/* The side that speaks TLS: the upstream outbound, the client inbound. */
static struct sc_side *tls_side(struct sc_conn *c)
{
    return is_out(c) ? &c->up : &c->down;
}

static void connect_start(struct sc_conn *c);
static void connect_retry(struct sc_conn *c, int err);
static void up_connected(struct sc_conn *c);

/*
 * A handshake that began before a reload verified the peer with the old
 * ca.crt and CRL; a recheck sweep that ran meanwhile skipped it. Check it
 * against the current set now. False when the connection was closed.
 */
static bool handshake_trust_current(struct sc_conn *c)
{
    struct sc_tls_set *cur = sc_tls_acquire();
    struct sc_xprt_hs hs = {0};
    struct sc_side *s = tls_side(c);
    bool ok = true;

    if (cur && !sc_tls_same_trust(cur, c->set) && s->ops->recheck(s, cur, &hs) < 0) {
        conn_fail(c, hs.fail, hs.why, hs.subject);
        ok = false;
    }
    sc_tls_set_unref(cur);
    return ok;
}

/* Who got in (inbound), so an audit can answer it: rate-limited, at info. */
static void log_admission(struct sc_conn *c, struct sc_side *s)
{
    struct sc_xprt_peer p;
    char peer[64], qsubj[300], quri[300];

    if (!sc_worker_may_log_admission(c->cs->w) || s->ops->peer(s, &p) < 0)
        return;
    duet_log(DUET_LOG_INFO, "conn",
             "worker=%u admitted listener=%s peer=%s subject=%s san_uri=%s serial=%s resumed=%d",
             sc_worker_id(c->cs->w), c->l->cfg->listen, peer_str(c, peer, sizeof(peer)),
             duet_log_quote(qsubj, sizeof(qsubj), p.subject),
             duet_log_quote(quri, sizeof(quri), p.uri), p.serial, p.resumed);
}

/* A failure that is the socket's own (its errno), not TLS's nor ours. */
static bool socket_error(int rc)
{
    enum duet_err_class k = duet_err_class(rc);

    return k == DUET_ERRC_IO || k == DUET_ERRC_CLOSED;
}

static void handshake_step(struct sc_conn *c)
{
    struct sc_side *s = tls_side(c);
    struct sc_xprt_hs hs = {0};
    int rc = s->ops->handshake(s, &hs);

    /* Outbound, the first step runs straight after connect(2) (see
     * connect_begin). A step that waits to write has not sent the
     * ClientHello: the connect is still in progress. A step that failed on
     * the socket failed on its first write, which reports the connect's
     * errno. Anything else sent the ClientHello: connected. */
    if (c->st == SC_ST_CONNECTING) {
        if (rc == DUET_EAGAIN && (hs.events & DUET_EV_WRITE)) {
            set_events(c, s, DUET_EV_WRITE);
            return;
        }
        if (socket_error(rc)) {
            connect_retry(c, rc);
            return;
        }
        up_connected(c);
    }
    if (rc == DUET_EAGAIN) {
        set_events(c, s, hs.events);
        return;
    }
    if (rc < 0) {
        conn_fail(c, hs.fail, hs.why, hs.subject);
        return;
    }
    pend_remove(c);
    SC_STAT_ADD(c->l->stats.hs_ok, 1);
    if (hs.resumed)
        SC_STAT_ADD(c->l->stats.hs_resumed, 1);
    if (!handshake_trust_current(c))
        return;
    if (is_out(c)) {
        go_open(c);
        return;
    }
    log_admission(c, s);
    set_life_deadline(c, duet_clock_mono_ms(), 0, hs.peer_not_after, 0);
    /* The client keeps its interest while the backend is reached: most say
     * nothing meanwhile (the request, if sent, came with the Finished), so
     * quieting it here and adding it back at OPEN would be two epoll_ctl
     * for nothing. One that does speak is quieted then (on_io). */
    connect_start(c);
}

/* Open the TLS side and take the first handshake step. */
static void start_tls(struct sc_conn *c)
{
    struct sc_side *s = tls_side(c);
    const struct sc_xprt_args args = {
        .pool = c->cs->pool,
        .set = c->set,
        .lcfg = c->l->cfg,
        .session = &c->l->session,
        .server = !is_out(c),
    };

    if (sc_xprt_tls.open(s, &args) < 0) {
        conn_fail(c, SC_FAIL_PROTOCOL, "cannot create TLS state", NULL);
        return;
    }
    s->ops = &sc_xprt_tls;
    if (c->st != SC_ST_CONNECTING)
        c->st = SC_ST_HANDSHAKE;
    handshake_step(c);
}

/*
 * Inbound (outbound handshakes start with the connect, connect_begin): the
 * connection waits, with no TLS state (an SSL and its buffers are ~20 KB),
 * until the client's first bytes, and it joins the pending list; at
 * --max-pending-handshakes the oldest pending one is shed, so a flood of
 * silent or slow sockets costs a bounded amount of memory and cannot keep
 * a real client out.
 */
static void start_handshake(struct sc_conn *c)
{
    struct sc_conns *cs = c->cs;

    if (cs->n_pending >= sc_worker_max_pending(c->cs->w) && cs->pend_tail)
        conn_fail(cs->pend_tail, SC_FAIL_SHED, "handshake shed: too many pending", NULL);
    pend_add(c);
    c->st = SC_ST_HANDSHAKE;
    set_events(c, &c->down, DUET_EV_READ);
}

/* ---- connecting ---- */

/* Both sides' sockets: no Nagle delay, and a bounded kernel send queue.
 * Best effort: a socket that refuses (not TCP) works without them. */
static void tune_socket(int fd)
{
    int one = 1, lowat = SC_NOTSENT_LOWAT;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

static void on_io(struct duet_loop *loop, int fd, uint32_t ev, void *arg);

/* A socket connecting to sa, in the loop with no interest yet (which costs
 * no epoll_ctl: connect_begin sets the first one). */
static int try_addr(struct sc_conn *c, const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc;

    if (fd == -1)
        return -errno;
    tune_socket(fd);
    if (connect(fd, sa, len) == -1 && errno != EINPROGRESS) {
        rc = -errno;
        close(fd);
        return rc;
    }
    rc = duet_loop_add_fd(c->cs->loop, fd, 0, on_io, c);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->up.fd = fd;
    c->up.events = 0;
    c->st = SC_ST_CONNECTING;
    return 0;
}

/*
 * A connect is in progress on c->up. Inbound, wait for the backend socket
 * to become writable. Outbound, take the first TLS step at once, as the
 * floor relay does: when the connect has already completed (on loopback it
 * has by the time connect(2) returns EINPROGRESS; a nearby upstream may
 * have too), the ClientHello goes out now, without an EPOLLOUT round trip
 * and its two epoll_ctl; when it has not, the send says EAGAIN, BoringSSL
 * keeps the ClientHello and the step waits for writability, which is what
 * the connect needed anyway. handshake_step tells the cases apart.
 */
static void connect_begin(struct sc_conn *c)
{
    if (is_out(c)) {
        start_tls(c);
        return;
    }
    set_events(c, &c->up, DUET_EV_WRITE);
}

/* Try the next resolved address; false when none is left. */
static bool try_next(struct sc_conn *c)
{
    while (c->ai_next) {
        const struct addrinfo *ai = c->ai_next;

        c->ai_next = ai->ai_next;
        if (try_addr(c, ai->ai_addr, ai->ai_addrlen) == 0) {
            connect_begin(c);
            return true;
        }
    }
    return false;
}

static void connect_failed(struct sc_conn *c, int err)
{
    char why[512];

    snprintf(why, sizeof(why), "connect: %s", duet_strerror(err));
    conn_fail(c, SC_FAIL_CONNECT, why, NULL);
}

/* The connect on c->up failed with err: the next address, or the refusal.
 * (Through connect_begin this may run again for the next address: at most
 * once per address.) */
static void connect_retry(struct sc_conn *c, int err)
{
    side_release(c->cs, &c->up, false);
    if (!try_next(c))
        connect_failed(c, err);
}

static void on_resolved(void *arg, struct sc_resolve_req *r);

static void connect_start(struct sc_conn *c)
{
    const struct sc_listen_cfg *lc = c->l->cfg;
    int rc, why;

    if (lc->literal) {
        rc = try_addr(c, (const struct sockaddr *)&lc->addr, lc->addrlen);
        if (rc < 0)
            connect_failed(c, rc);
        else
            connect_begin(c);
        return;
    }
    c->st = SC_ST_RESOLVING;
    c->resolve_start = duet_clock_mono_ms();
    c->rreq = sc_resolve_submit(c->cs->rbox, lc->host, lc->port, on_resolved, c, &why);
    if (!c->rreq)
        conn_fail(c, SC_FAIL_RESOLVE,
                  why == SC_RESOLVE_QUEUE_FULL ? "resolver queue full" : "resolver unavailable",
                  NULL);
}

static void on_resolved(void *arg, struct sc_resolve_req *r)
{
    struct sc_conn *c = arg;
    int err = 0;

    c->rreq_owned = true;
    if (c->st != SC_ST_RESOLVING)
        return; /* closing (timeout, abort) while the name was resolving */
    c->ai_next = sc_resolve_result(r, &err);
    if (!c->ai_next) {
        char why[512];

        snprintf(why, sizeof(why), "resolve %s: %s (after %lld ms)", c->l->cfg->host,
                 gai_strerror(err), (long long)sc_resolve_wait_ms(r));
        conn_fail(c, SC_FAIL_RESOLVE, why, NULL);
        return;
    }
    if (!try_next(c))
        connect_failed(c, -ECONNREFUSED);
}

/* Connected: the address list is no longer needed. Outbound, the TLS
 * handshake (already begun) goes on. */
static void up_connected(struct sc_conn *c)
{
    if (c->rreq) {
        sc_resolve_free(c->rreq);
        c->rreq = NULL;
        c->ai_next = NULL;
    }
    if (is_out(c))
        c->st = SC_ST_HANDSHAKE;
}

/*
 * The first event on a connecting socket (ev: its DUET_EV_* bits). EPOLLOUT
 * alone means connected; a connect that failed is reported with EPOLLERR
 * (and EPOLLHUP), and only then is SO_ERROR read, for the reason to log. A
 * socket that did connect and saw its peer hang up at once reads 0 there
 * and goes on: its first read or write tells the rest.
 */
static void connected(struct sc_conn *c, uint32_t ev)
{
    int err = 0;

    if (ev & (DUET_EV_ERR | DUET_EV_HUP)) {
        socklen_t len = sizeof(err);

        if (getsockopt(c->up.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            err = errno;
    }
    if (err) {
        connect_retry(c, -err);
        return;
    }
    up_connected(c);
    if (is_out(c)) {
        handshake_step(c); /* the ClientHello BoringSSL kept goes out */
        return;
    }
    go_open(c);
}

/* ---- events ---- */

static void on_io(struct duet_loop *loop, int fd, uint32_t ev, void *arg)
{
    struct sc_conn *c = arg;

    (void)loop;
    switch (c->st) {
    case SC_ST_RESOLVING:
    case SC_ST_CONNECTING:
        if (fd == c->up.fd) {
            connected(c, ev);
            return;
        }
        /* Inbound, the client spoke (or hung up) before the backend was
         * reached: quiet it until OPEN, or level-triggered epoll would
         * report it again and again. */
        set_events(c, &c->down, 0);
        return;
    case SC_ST_HANDSHAKE:
        if (fd != tls_side(c)->fd)
            return;
        if (tls_side(c)->ops == &sc_xprt_raw) {
            start_tls(c); /* the first bytes of an inbound client */
            return;
        }
        handshake_step(c);
        return;
    case SC_ST_OPEN:
    case SC_ST_HALF_CLOSED:
        if (ev & DUET_EV_ERR) {
            conn_close(c);
            return;
        }
        pump_pipes(c, pipes_for(c, fd, ev));
        return;
    default:
        return;
    }
}

void sc_conn_start(struct sc_conns *cs, struct sc_listener *l, int fd, const struct sockaddr *peer)
{
    struct sc_conn *c = duet_calloc(1, sizeof(*c));
    int64_t now = duet_clock_mono_ms();

    tune_socket(fd);
    if (!c || duet_loop_add_fd(cs->loop, fd, 0, on_io, c) < 0) {
        duet_free(c);
        close(fd);
        return;
    }
    c->cs = cs;
    c->l = l;
    c->down.fd = fd;
    c->down.ops = &sc_xprt_raw;
    c->up.fd = -1;
    c->up.ops = &sc_xprt_raw;
    memcpy(&c->peer, peer, peer->sa_family == AF_INET6 ? sizeof(c->peer.in6) : sizeof(c->peer.in));
    duet_timer_init(&c->timer, on_timer, c);
    duet_defer_init(&c->free_defer, conn_free, c);
    duet_defer_init(&c->drain_defer, on_drain, c);
    c->next = cs->head;
    if (cs->head)
        cs->head->prev = c;
    cs->head = c;
    cs->n++;
    SC_STAT_ADD(l->stats.open, 1);
    SC_STAT_ADD(l->stats.total, 1);
    sc_worker_conns_changed(cs->w);
    c->hs_deadline = now + cs->cfg->handshake_ms;
    arm_timer(c, now);
    c->set = sc_tls_acquire();
    if (!c->set) {
        conn_fail(c, SC_FAIL_NO_CERTS_LOADED, "no valid certificate set loaded yet", NULL);
        return;
    }
    if (is_out(c)) {
        set_life_deadline(c, now, sc_tls_set_info(c->set)->not_before,
                          sc_tls_set_info(c->set)->not_after, SC_EXPIRY_MARGIN_MS);
        connect_start(c);
        return;
    }
    start_handshake(c);
}

void sc_conns_init(struct sc_conns *cs, struct sc_worker *w, struct duet_loop *loop,
                   struct sc_bufpool *pool, struct sc_resolve_box *rbox, const struct sc_cfg *cfg)
{
    *cs = (struct sc_conns){.w = w, .loop = loop, .pool = pool, .rbox = rbox, .cfg = cfg};
}

/* Past its handshake: the TLS side has a verified peer. */
static bool verified(const struct sc_conn *c)
{
    if (c->st == SC_ST_CLOSING || c->st == SC_ST_HANDSHAKE)
        return false;
    return is_out(c) ? c->st >= SC_ST_OPEN : c->down.ops == &sc_xprt_tls;
}

/* The peer of c against set; closes c (gracefully) when it fails. */
static void recheck(struct sc_conn *c, struct sc_tls_set *set)
{
    struct sc_side *s = tls_side(c);
    struct sc_xprt_hs hs = {0};
    char peer[64], qsubj[300], qwhy[600];

    if (s->ops->recheck(s, set, &hs) == 0)
        return;
    SC_STAT_ADD(c->l->stats.closed_recheck, 1);
    duet_log(DUET_LOG_INFO, "conn",
             "worker=%u closed listener=%s peer=%s reason=%s subject=%s msg=%s",
             sc_worker_id(c->cs->w), c->l->cfg->listen, peer_str(c, peer, sizeof(peer)),
             sc_fail_names[hs.fail], duet_log_quote(qsubj, sizeof(qsubj), hs.subject),
             duet_log_quote(qwhy, sizeof(qwhy), hs.why));
    conn_close(c);
}

void sc_conn_recheck_all(struct sc_conns *cs, struct sc_tls_set *set)
{
    for (struct sc_conn *c = cs->head; c; c = c->next) {
        if (verified(c) && !sc_tls_same_trust(c->set, set))
            recheck(c, set);
    }
}

void sc_conn_close_all(struct sc_conns *cs)
{
    for (struct sc_conn *c = cs->head; c; c = c->next)
        conn_close(c);
}
