/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared types of duet-sidecar. Layers (STYLE.md 9): listener (accepts, one
 * SO_REUSEPORT socket per worker), conn (the per-connection state machine
 * and its timers), xprt (raw or TLS ops, pump.h) and pump (bytes). Around
 * them: cfg (flags), tls_set (reference-counted TLS material), reload (when
 * and from which files to build a new set), resolve (names off the loop),
 * worker (one thread and one loop each) and metrics (/metrics text).
 *
 * Threads: main runs the control loop (signals, reload, status server);
 * each worker runs its own loop with its listeners and connections. Workers
 * share only the current TLS set (sc_tls_acquire: mutex + refcount), the
 * resolver queue and the counters, which each worker writes alone and main
 * reads with relaxed atomics.
 */
#ifndef SC_H
#define SC_H

#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "duet/err.h"
#include "duet/log.h"
#include "duet/loop.h"
#include "duet/net.h"
#include "duet/status_http.h"
#include "pump.h"

#define SC_MAX_ALLOW 8
#define SC_MAX_LISTENERS 32
#define SC_MAX_WORKERS 64

/* ---- configuration (cfg.c) ---- */

enum sc_dir {
    SC_OUTBOUND = 0, /* plaintext in, TLS out */
    SC_INBOUND,      /* TLS in, plaintext out */
};

struct sc_listen_cfg {
    enum sc_dir dir;
    char listen[DUET_NET_HOST_MAX + 8]; /* as given, host:port */
    char host[DUET_NET_HOST_MAX];       /* upstream or backend host */
    unsigned port;
    char sni[DUET_NET_HOST_MAX]; /* outbound: the name verified and sent ("" for none) */
    bool verify_ip;              /* outbound: sni is an IP literal, verified as an IP SAN */
    bool resume;                 /* outbound: TLS session resumption */
    bool literal;                /* host is an IP literal: no resolution */
    struct sockaddr_storage addr; /* the literal's address */
    socklen_t addrlen;
    unsigned n_cn, n_san;
    char allow_cn[SC_MAX_ALLOW][DUET_NET_HOST_MAX];
    char allow_san[SC_MAX_ALLOW][DUET_NET_HOST_MAX];
};

struct sc_cfg {
    const char *certs;
    const char *crl; /* NULL: no CRL */
    const char *status;
    unsigned workers;
    unsigned max_conns;
    int64_t drain_ms;
    int64_t handshake_ms;
    int64_t idle_ms;
    int64_t lifetime_ms; /* 0: unbounded */
    int64_t poll_ms;
    enum duet_log_level log_level;
    unsigned n_listeners;
    struct sc_listen_cfg listeners[SC_MAX_LISTENERS];
};

/*
 * Parse argv into cfg (environment DUET_SIDECAR_* for unset flags). Returns
 * 0, 1 when --help or --version was printed, or DUET_E_USAGE with eb naming
 * the flag.
 */
int sc_cfg_parse(struct sc_cfg *cfg, int argc, char **argv, struct duet_errbuf *eb)
    DUET_MUST_CHECK;
/* One --outbound/--inbound value. */
int sc_cfg_parse_spec(struct sc_listen_cfg *l, enum sc_dir dir, const char *spec,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Does a certificate with this CN and these SAN URIs pass l's allow lists? */
bool sc_cfg_allowed(const struct sc_listen_cfg *l, const char *cn, const char *const *uris,
                    unsigned n_uris);

/* ---- TLS material (tls_set.c) ---- */

struct sc_tls_set; /* opaque: SSL_CTXs + metadata, reference counted */

struct sc_tls_info {
    uint64_t generation;
    time_t not_before; /* of our certificate */
    time_t not_after;
    char fingerprint[65]; /* SHA-256 of our leaf, hex */
    char serial[64];      /* hex */
    char version[256];    /* the ..data folder it came from */
};

struct sc_tls_files {
    const char *cert;
    size_t cert_len;
    const char *key;
    size_t key_len;
    const char *ca;
    size_t ca_len;
    const char *crl; /* may be NULL */
    size_t crl_len;
};

/* What our certificate must be good for: outbound listeners present it as
 * a client, inbound ones as a server. */
#define SC_USE_CLIENT 0x1u
#define SC_USE_SERVER 0x2u

/*
 * Build and check a set from PEM text: key matches the certificate, the
 * certificate chains to ca and is valid now for every use in `uses`
 * (SC_USE_*), the CRL (if any) parses. Returns the set with one reference,
 * or NULL with eb saying why.
 */
struct sc_tls_set *sc_tls_set_build(const struct sc_tls_files *f, const char *version,
                                    uint64_t generation, unsigned uses,
                                    struct duet_errbuf *eb);
void sc_tls_set_ref(struct sc_tls_set *s);
void sc_tls_set_unref(struct sc_tls_set *s);
const struct sc_tls_info *sc_tls_set_info(const struct sc_tls_set *s);

/* The current set for new connections, with a reference; NULL while none is loaded. */
struct sc_tls_set *sc_tls_acquire(void);
/* Install s as current (takes the caller's reference). */
void sc_tls_publish(struct sc_tls_set *s);
/* Drop the current set at exit. */
void sc_tls_shutdown(void);

/* ---- counters ---- */

enum sc_fail {
    SC_FAIL_NO_CERT = 0,
    SC_FAIL_UNTRUSTED,
    SC_FAIL_EXPIRED,
    SC_FAIL_REVOKED,
    SC_FAIL_NOT_ALLOWED,
    SC_FAIL_PROTOCOL,
    SC_FAIL_TIMEOUT,
    SC_FAIL_CONNECT,
    SC_FAIL_RESOLVE,
    SC_FAIL_NO_CERTS_LOADED,
    SC_FAIL_COUNT,
};

extern const char *const sc_fail_names[SC_FAIL_COUNT];

/* Written by one worker, read by main: relaxed atomics, no lock prefix on write. */
struct sc_lstats {
    uint64_t open;
    uint64_t total;
    uint64_t bytes_in;  /* from the client (down) to the upstream (up) */
    uint64_t bytes_out; /* from up to down */
    uint64_t hs_ok;
    uint64_t hs_resumed;
    uint64_t hs_fail[SC_FAIL_COUNT];
    uint64_t refused_limit;
};

#define SC_STAT_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define SC_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* ---- workers, listeners, connections ---- */

struct sc_worker;
struct sc_conn;
struct sc_app;

struct sc_listener {
    struct sc_worker *w;
    const struct sc_listen_cfg *cfg;
    int fd;
    bool paused;
    bool fd_starved;         /* paused by EMFILE/ENFILE, resumed by fd_timer */
    bool starve_logged;      /* one log line per episode, until an accept works */
    struct duet_timer fd_timer;
    struct sc_lstats stats;
    /* Outbound resumption: the last session the upstream gave, and the TLS
     * generation it was made with (another certificate must not resume it). */
    void *session; /* SSL_SESSION * */
    uint64_t session_gen;
};

struct sc_resolve_req;

struct sc_worker {
    struct sc_app *app;
    unsigned id;
    pthread_t thread;
    struct duet_loop *loop;
    int ctl_fd; /* eventfd: main -> worker commands, resolver completions */
    unsigned n_listeners;
    struct sc_listener listeners[SC_MAX_LISTENERS];
    struct sc_conn *conns; /* all open connections, doubly linked */
    unsigned nconns;
    unsigned max_conns;
    bool draining;
    struct sc_bufpool pool;
    struct sc_conn *drain_head; /* SSL_pending drain list for the before-sleep hook */
    pthread_mutex_t done_mu;    /* guards done_head (resolver completions) */
    struct sc_resolve_req *done_head;
    unsigned cmd; /* SC_CMD_* bits, atomic */
    /* rate limit for refusal log lines */
    int64_t log_window;
    unsigned log_count;
    unsigned log_suppressed;
};

#define SC_CMD_DRAIN 0x1u
#define SC_CMD_ABORT 0x2u

struct sc_app {
    struct sc_cfg cfg;
    struct duet_loop *loop; /* main thread */
    unsigned n_workers;
    struct sc_worker *workers[SC_MAX_WORKERS];
    int main_fd; /* eventfd: worker -> main "I have finished" */
    unsigned finished; /* atomic */
    bool ready_listeners;
    uint64_t reloads_ok, reloads_failed; /* atomic */
};

/* worker.c */
int sc_worker_new(struct sc_app *app, unsigned id, int *listen_fds, struct sc_worker **out,
                  struct duet_errbuf *eb) DUET_MUST_CHECK;
int sc_worker_start(struct sc_worker *w) DUET_MUST_CHECK;
void sc_worker_command(struct sc_worker *w, unsigned cmd);
void sc_worker_join(struct sc_worker *w);
void sc_worker_free(struct sc_worker *w);
/* Log a refused peer, at most a few lines per second per worker. */
void sc_worker_log_refusal(struct sc_worker *w, const char *fmt, ...) DUET_PRINTF(2, 3);

/* listener.c */
void sc_listener_on_accept(struct duet_loop *loop, int fd, uint32_t ev, void *arg);
void sc_listener_pause(struct sc_listener *l, bool pause);

/* conn.c */
void sc_conn_start(struct sc_listener *l, int fd, const struct sockaddr *peer);
void sc_conn_close_all(struct sc_worker *w);
void sc_conn_before_sleep(struct duet_loop *loop, void *arg);
void sc_conn_resolved(struct sc_conn *c, struct sc_resolve_req *r);

/* resolve.c: one thread for every worker; results come back to the worker's ctl_fd. */
int sc_resolve_init(void) DUET_MUST_CHECK;
void sc_resolve_deinit(void);
struct sc_resolve_req *sc_resolve_submit(struct sc_worker *w, struct sc_conn *c,
                                         const char *host, unsigned port);
/* The connection goes away first: the request completes into nothing. */
void sc_resolve_cancel(struct sc_resolve_req *r);
/* Called on the worker: run completions that the resolver posted. */
void sc_resolve_drain(struct sc_worker *w);
const struct addrinfo *sc_resolve_result(const struct sc_resolve_req *r, int *err);
void sc_resolve_free(struct sc_resolve_req *r);

/* xprt_tls.c */
extern const struct sc_xprt_ops sc_xprt_tls;
/* Make side s a TLS client (outbound) or server (inbound) on set. */
int sc_tls_side_new(struct sc_side *s, struct sc_tls_set *set, struct sc_conn *c, bool server,
                    const struct sc_listen_cfg *l, void *session) DUET_MUST_CHECK;
/* Run the handshake: 0 done, DUET_EAGAIN (interest from sc_tls_hs_interest), or error. */
int sc_tls_handshake(struct sc_side *s) DUET_MUST_CHECK;
uint32_t sc_tls_hs_interest(const struct sc_side *s);
/* After a failed handshake: the reason and a log-ready description. */
enum sc_fail sc_tls_fail_reason(struct sc_side *s, char *why, size_t why_len, char *subject,
                                size_t subj_len);
/* After a successful inbound handshake: the peer certificate's notAfter. */
time_t sc_tls_peer_not_after(const struct sc_side *s);
bool sc_tls_resumed(const struct sc_side *s);
/* The new_session callback stores into the listener; see xprt_tls.c. */
void sc_tls_listener_drop_session(struct sc_listener *l);

/* conn.c accessors used by xprt_tls.c */
struct sc_listener *sc_conn_listener(struct sc_conn *c);
void sc_conn_note_verify(struct sc_conn *c, int x509_err, enum sc_fail reason,
                         const char *subject);

/* reload.c */
int sc_reload_init(struct sc_app *app) DUET_MUST_CHECK;
void sc_reload_now(struct sc_app *app, const char *why);
void sc_reload_deinit(void);
bool sc_reload_ready(void);

/* metrics.c */
void sc_metrics_handler(const char *path, struct duet_status_reply *r, void *arg);

#endif
