/* SPDX-License-Identifier: Apache-2.0 */
/*
 * duet-sidecar's configuration: the flags, parsed once at startup (cfg.c)
 * into one struct sc_cfg that every other module reads and none writes.
 */
#ifndef SC_CFG_H
#define SC_CFG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h> /* before duet/compiler.h poisons sprintf, which stdio.h declares */
#include <sys/socket.h>

#include "duet/err.h"
#include "duet/log.h"
#include "duet/net.h"

#define SC_MAX_ALLOW 8
#define SC_MAX_LISTENERS 32
#define SC_MAX_WORKERS 64

enum sc_dir {
    SC_OUTBOUND = 0, /* plaintext in, TLS out */
    SC_INBOUND,      /* TLS in, plaintext out */
};

struct sc_listen_cfg {
    enum sc_dir dir;
    char listen[DUET_NET_HOST_MAX + 8]; /* as given, host:port */
    char host[DUET_NET_HOST_MAX];       /* upstream or backend host */
    unsigned port;
    char sni[DUET_NET_HOST_MAX];  /* outbound: the name verified and sent ("" for none) */
    bool verify_ip;               /* outbound: sni is an IP literal, verified as an IP SAN */
    bool resume;                  /* outbound: TLS session resumption */
    bool literal;                 /* host is an IP literal: no resolution */
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
    unsigned max_pending; /* inbound TLS handshakes in progress at most */
    unsigned admission_logs;
    unsigned resolve_threads;
    unsigned resolve_queue;
    int64_t resolve_ttl_ms; /* admitted peers logged a second per worker; 0: none */
    int64_t drain_ms;
    int64_t handshake_ms;
    int64_t idle_ms;
    int64_t lifetime_ms; /* 0: unbounded */
    int64_t session_ms;  /* TLS session (ticket) lifetime at most */
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
int sc_cfg_parse(struct sc_cfg *cfg, int argc, char **argv, struct duet_errbuf *eb) DUET_MUST_CHECK;
/* One --outbound/--inbound value. */
int sc_cfg_parse_spec(struct sc_listen_cfg *l, enum sc_dir dir, const char *spec,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Does a certificate with this CN and these SAN URIs pass l's allow lists? */
bool sc_cfg_allowed(const struct sc_listen_cfg *l, const char *cn, const char *const *uris,
                    unsigned n_uris);

#endif
