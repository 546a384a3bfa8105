/* SPDX-License-Identifier: Apache-2.0 */
/*
 * duet-sidecar flags. Every option is declared once in `options[]` (flag,
 * environment variable, default, help, and where its value goes); --help
 * and parsing (common/ duet_flags_parse) derive from it (STYLE.md 7).
 * Precedence: flag, then environment, then default. Nothing here is
 * reloadable: only certificate material changes at run time.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "duet/duration.h"
#include "duet/flags.h"
#include "cfg.h"

enum opt_kind {
    OPT_STR = 0,
    OPT_UINT,
    OPT_DURATION,
    OPT_SPEC_OUT,
    OPT_SPEC_IN,
    OPT_LEVEL,
};

struct option_def {
    const char *flag;
    const char *env;
    enum opt_kind kind;
    const char *def;  /* NULL: no default */
    int64_t min, max; /* OPT_UINT: the integer's bounds; OPT_DURATION: milliseconds */
    const char *help;
    size_t off; /* where the value goes in struct sc_cfg (the listeners: unused) */
};

#define AT(field) offsetof(struct sc_cfg, field)
#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static const struct option_def options[] = {
    {"--certs", "DUET_SIDECAR_CERTS", OPT_STR, NULL, 0, 0,
     "folder with tls.crt, tls.key, ca.crt (Secret-volume layout)", AT(certs)},
    {"--outbound", NULL, OPT_SPEC_OUT, NULL, 0, 0,
     "LISTEN=UPSTREAM[,sni=NAME][,resume=on|off]: plaintext in, mTLS out (repeatable)", 0},
    {"--inbound", NULL, OPT_SPEC_IN, NULL, 0, 0,
     "LISTEN=BACKEND[,allow-cn=CN][,allow-san=URI]: mTLS in, plaintext out (repeatable)", 0},
    {"--status", "DUET_SIDECAR_STATUS", OPT_STR, NULL, 0, 0,
     "host:port for /healthz, /readyz, /metrics", AT(status)},
    {"--workers", "DUET_SIDECAR_WORKERS", OPT_UINT, "1", 1, SC_MAX_WORKERS,
     "worker threads, each with its own loop and SO_REUSEPORT listeners", AT(workers)},
    {"--max-conns", "DUET_SIDECAR_MAX_CONNS", OPT_UINT, "2000", 1, 1000000,
     "open proxied connections at most (split across workers)", AT(max_conns)},
    {"--max-pending-handshakes", "DUET_SIDECAR_MAX_PENDING_HANDSHAKES", OPT_UINT, "256", 1, 100000,
     "inbound TLS handshakes in progress at most (split across workers); past it the oldest is "
     "shed",
     AT(max_pending)},
    {"--resolver-threads", "DUET_SIDECAR_RESOLVER_THREADS", OPT_UINT, "4", 1, 32,
     "getaddrinfo threads for upstream names (one lookup per name at a time)", AT(resolve_threads)},
    {"--resolve-queue", "DUET_SIDECAR_RESOLVE_QUEUE", OPT_UINT, "1024", 1, 1000000,
     "connections waiting for a name at most; past it they fail at once", AT(resolve_queue)},
    {"--resolve-cache-ttl", "DUET_SIDECAR_RESOLVE_CACHE_TTL", OPT_DURATION, "30s", 0, HOUR,
     "reuse a resolved address this long (0s: resolve every connection)", AT(resolve_ttl_ms)},
    {"--log-admissions", "DUET_SIDECAR_LOG_ADMISSIONS", OPT_UINT, "20", 0, 100000,
     "admitted inbound peers logged at info per second per worker (0: none); the rest are counted",
     AT(admission_logs)},
    {"--drain-timeout", "DUET_SIDECAR_DRAIN_TIMEOUT", OPT_DURATION, "20s", 0, HOUR,
     "on SIGTERM, wait this long for open connections", AT(drain_ms)},
    {"--handshake-timeout", "DUET_SIDECAR_HANDSHAKE_TIMEOUT", OPT_DURATION, "10s", 100, 5 * MIN,
     "connect + TLS handshake deadline", AT(handshake_ms)},
    {"--idle-timeout", "DUET_SIDECAR_IDLE_TIMEOUT", OPT_DURATION, "5m", SEC, DAY,
     "close a connection without traffic for this long", AT(idle_ms)},
    {"--max-conn-lifetime", "DUET_SIDECAR_MAX_CONN_LIFETIME", OPT_DURATION, "0s", 0, 30 * DAY,
     "close any connection this old (0s: no limit)", AT(lifetime_ms)},
    {"--session-lifetime", "DUET_SIDECAR_SESSION_LIFETIME", OPT_DURATION, "1h", SEC, DAY,
     "TLS session lifetime at most, both ways; also never past the peer certificate's notAfter",
     AT(session_ms)},
    {"--crl", "DUET_SIDECAR_CRL", OPT_STR, NULL, 0, 0,
     "PEM CRL refusing revoked peers, clients inbound and upstreams outbound (reloaded with the "
     "certificates)",
     AT(crl)},
    {"--reload-poll", "DUET_SIDECAR_RELOAD_POLL", OPT_DURATION, "1s", 50, HOUR,
     "stat poll of the certificates and CRL, beside inotify (a readlink + 4 stats)", AT(poll_ms)},
    {"--log-level", "DUET_LOG_LEVEL", OPT_LEVEL, "info", 0, 0, "error, warn, info or debug",
     AT(log_level)},
};

static void print_help(void)
{
    printf(
        "usage: duet-sidecar --certs DIR [--outbound SPEC]... [--inbound SPEC]... [options]\n\n");
    for (size_t i = 0; i < DUET_ARRAY_SIZE(options); i++) {
        const struct option_def *o = &options[i];

        printf("  %-20s %s", o->flag, o->help);
        if (o->kind == OPT_DURATION) {
            char lo[32], hi[32];

            printf(" [%s-%s]", duet_duration_format(o->min, lo, sizeof(lo)),
                   duet_duration_format(o->max, hi, sizeof(hi)));
        }
        if (o->def)
            printf(" [default %s]", o->def);
        if (o->env)
            printf(" (env %s)", o->env);
        printf("\n");
    }
}

static bool is_on(const char *v, bool *out)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = false;
        return true;
    }
    return false;
}

static int copy_str(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size || len == 0)
        return DUET_E_USAGE;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

static bool key_is(const char *opt, size_t klen, const char *key)
{
    return strlen(key) == klen && memcmp(opt, key, klen) == 0;
}

static int add_allow(char list[SC_MAX_ALLOW][DUET_NET_HOST_MAX], unsigned *n, const char *val,
                     const char *what, const char *flag, const char *spec, struct duet_errbuf *eb)
{
    if (*n == SC_MAX_ALLOW)
        return duet_errf(eb, DUET_E_USAGE, "%s '%s': at most %d %s", flag, spec, SC_MAX_ALLOW,
                         what);
    snprintf(list[(*n)++], DUET_NET_HOST_MAX, "%s", val);
    return 0;
}

/* key=value options after LISTEN=UPSTREAM, comma separated. */
static int parse_option(struct sc_listen_cfg *l, const char *opt, size_t len, const char *flag,
                        const char *spec, struct duet_errbuf *eb)
{
    const char *eq = memchr(opt, '=', len);
    size_t klen = eq ? (size_t)(eq - opt) : len;
    const char *v = eq ? eq + 1 : "";
    size_t vlen = eq ? len - klen - 1 : 0;
    char val[DUET_NET_HOST_MAX];

    if (!eq || copy_str(val, sizeof(val), v, vlen) < 0)
        return duet_errf(eb, DUET_E_USAGE, "%s '%s': option '%.*s' needs a value", flag, spec,
                         (int)len, opt);
    if (l->dir == SC_OUTBOUND && key_is(opt, klen, "sni")) {
        memcpy(l->sni, val, vlen + 1);
        return 0;
    }
    if (l->dir == SC_OUTBOUND && key_is(opt, klen, "resume")) {
        if (!is_on(val, &l->resume))
            return duet_errf(eb, DUET_E_USAGE, "%s '%s': resume must be on or off", flag, spec);
        return 0;
    }
    if (l->dir == SC_INBOUND && key_is(opt, klen, "allow-cn"))
        return add_allow(l->allow_cn, &l->n_cn, val, "allow-cn", flag, spec, eb);
    if (l->dir == SC_INBOUND && key_is(opt, klen, "allow-san"))
        return add_allow(l->allow_san, &l->n_san, val, "allow-san", flag, spec, eb);
    return duet_errf(eb, DUET_E_USAGE, "%s '%s': unknown option '%.*s'", flag, spec, (int)klen,
                     opt);
}

static int literal_addr(struct sc_listen_cfg *l)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;

    memset(&l->addr, 0, sizeof(l->addr));
    if (inet_pton(AF_INET, l->host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)l->port);
        l->addrlen = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, l->host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)l->port);
        l->addrlen = sizeof(*in6);
        return 0;
    }
    return DUET_EINVAL;
}

int sc_cfg_parse_spec(struct sc_listen_cfg *l, enum sc_dir dir, const char *spec,
                      struct duet_errbuf *eb)
{
    const char *flag = dir == SC_OUTBOUND ? "--outbound" : "--inbound";
    const char *eq = strchr(spec, '=');
    const char *comma;
    char lhost[DUET_NET_HOST_MAX];
    char up[DUET_NET_HOST_MAX + 8];
    unsigned lport;

    memset(l, 0, sizeof(*l));
    l->dir = dir;
    l->resume = true;
    if (!eq)
        return duet_errf(eb, DUET_E_USAGE, "%s '%s': expected LISTEN=%s", flag, spec,
                         dir == SC_OUTBOUND ? "UPSTREAM" : "BACKEND");
    if (copy_str(l->listen, sizeof(l->listen), spec, (size_t)(eq - spec)) < 0 ||
        duet_net_split_hostport(l->listen, lhost, &lport, NULL) < 0 || lport == 0)
        return duet_errf(eb, DUET_E_USAGE, "%s '%s': LISTEN must be host:port (port 1-65535)", flag,
                         spec);
    comma = strchr(eq + 1, ',');
    if (copy_str(up, sizeof(up), eq + 1, comma ? (size_t)(comma - eq - 1) : strlen(eq + 1)) < 0 ||
        duet_net_split_hostport(up, l->host, &l->port, NULL) < 0 || l->port == 0 ||
        l->host[0] == '\0')
        return duet_errf(eb, DUET_E_USAGE, "%s '%s': %s must be host:port (port 1-65535)", flag,
                         spec, dir == SC_OUTBOUND ? "UPSTREAM" : "BACKEND");
    while (comma) {
        const char *opt = comma + 1;
        const char *next = strchr(opt, ',');
        size_t len = next ? (size_t)(next - opt) : strlen(opt);

        DUET_TRY(parse_option(l, opt, len, flag, spec, eb));
        comma = next;
    }
    l->literal = literal_addr(l) == 0;
    if (dir == SC_OUTBOUND) {
        if (l->sni[0] == '\0')
            memcpy(l->sni, l->host, sizeof(l->sni));
        l->verify_ip = duet_net_is_ip_literal(l->sni);
    }
    return 0;
}

bool sc_cfg_allowed(const struct sc_listen_cfg *l, const char *cn, const char *const *uris,
                    unsigned n_uris)
{
    if (l->n_cn == 0 && l->n_san == 0)
        return true;
    for (unsigned i = 0; cn && i < l->n_cn; i++) {
        if (strcmp(l->allow_cn[i], cn) == 0)
            return true;
    }
    for (unsigned i = 0; i < l->n_san; i++) {
        for (unsigned j = 0; j < n_uris; j++) {
            if (strcmp(l->allow_san[i], uris[j]) == 0)
                return true;
        }
    }
    return false;
}

static int parse_uint(const char *v, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    unsigned long n;

    if (v[0] < '0' || v[0] > '9')
        return DUET_E_USAGE;
    n = strtoul(v, &end, 10);
    if (*end != '\0' || n < min || n > max)
        return DUET_E_USAGE;
    *out = (unsigned)n;
    return 0;
}

/* One value for one option, into the field the table names (DUET_FLAG_FN). */
struct slot {
    const struct option_def *o;
    struct sc_cfg *cfg;
};

static int apply(void *arg, const char *flag, const char *v, struct duet_errbuf *eb)
{
    const struct slot *sl = arg;
    const struct option_def *o = sl->o;
    void *dst = (char *)sl->cfg + o->off;
    struct sc_cfg *cfg = sl->cfg;

    switch (o->kind) {
    case OPT_STR:
        if (v[0] == '\0')
            return duet_errf(eb, DUET_E_USAGE, "%s: empty value", flag);
        *(const char **)dst = v;
        return 0;
    case OPT_UINT:
        if (parse_uint(v, (unsigned)o->min, (unsigned)o->max, dst) < 0)
            return duet_errf(eb, DUET_E_USAGE, "%s '%s': expected an integer %u-%u", flag, v,
                             (unsigned)o->min, (unsigned)o->max);
        return 0;
    case OPT_DURATION: {
        int64_t ms;
        char lo[32], hi[32];

        /* Bounded: a huge value would overflow every deadline computed from
         * it (now + timeout), refusing or closing every connection. */
        if (duet_duration_parse(v, &ms) < 0 || ms < o->min || ms > o->max)
            return duet_errf(eb, DUET_E_USAGE, "%s '%s': expected a duration from %s to %s", flag,
                             v, duet_duration_format(o->min, lo, sizeof(lo)),
                             duet_duration_format(o->max, hi, sizeof(hi)));
        *(int64_t *)dst = ms;
        return 0;
    }
    case OPT_LEVEL:
        if (duet_log_parse_level(v, dst) < 0)
            return duet_errf(eb, DUET_E_USAGE, "%s '%s': expected error, warn, info or debug", flag,
                             v);
        return 0;
    case OPT_SPEC_OUT:
    case OPT_SPEC_IN:
        if (cfg->n_listeners == SC_MAX_LISTENERS)
            return duet_errf(eb, DUET_E_USAGE, "%s: at most %d listeners", flag, SC_MAX_LISTENERS);
        return sc_cfg_parse_spec(&cfg->listeners[cfg->n_listeners++],
                                 o->kind == OPT_SPEC_OUT ? SC_OUTBOUND : SC_INBOUND, v, eb);
    }
    return DUET_E_INTERNAL;
}

#define N_OPTIONS DUET_ARRAY_SIZE(options)

/* Flags first (duet_flags_parse), then the environment, then defaults (STYLE.md 7). */
static int parse_all(struct sc_cfg *cfg, int argc, char **argv, struct duet_errbuf *eb)
{
    struct slot slots[N_OPTIONS];
    struct duet_flag flags[N_OPTIONS + 2];
    bool seen[N_OPTIONS + 2] = {false};
    bool version = false;
    size_t n_pos;
    int rc;

    for (size_t i = 0; i < N_OPTIONS; i++) {
        slots[i] = (struct slot){&options[i], cfg};
        flags[i] = (struct duet_flag){options[i].flag + 2, DUET_FLAG_FN, &slots[i], apply};
    }
    flags[N_OPTIONS] = (struct duet_flag){"version", DUET_FLAG_BOOL, &version, NULL};
    flags[N_OPTIONS + 1] = (struct duet_flag){NULL, 0, NULL, NULL};
    rc = duet_flags_parse(argc, argv, flags, seen, NULL, 0, &n_pos, eb);
    if (rc == DUET_FLAGS_HELP || (rc == 0 && version)) {
        if (version)
            printf("duet-sidecar %s\n", DUET_VERSION);
        else
            print_help();
        return 1;
    }
    DUET_TRY(rc);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *v = NULL;

        if (seen[i] || options[i].kind == OPT_SPEC_IN || options[i].kind == OPT_SPEC_OUT)
            continue;
        if (options[i].env)
            v = getenv(options[i].env);
        if (!v || v[0] == '\0')
            v = options[i].def;
        if (v)
            DUET_TRY(duet_flag_set(&flags[i], v, eb));
    }
    return 0;
}

int sc_cfg_parse(struct sc_cfg *cfg, int argc, char **argv, struct duet_errbuf *eb)
{
    int rc;

    /* Only the scalars: the listener table is large and lives in the bss,
     * where untouched pages cost no memory; sc_cfg_parse_spec fills each
     * entry it uses. */
    memset(cfg, 0, offsetof(struct sc_cfg, listeners));
    rc = parse_all(cfg, argc, argv, eb);
    if (rc != 0)
        return rc;
    if (!cfg->certs)
        return duet_errf(eb, DUET_E_USAGE, "--certs is required");
    if (cfg->n_listeners == 0)
        return duet_errf(eb, DUET_E_USAGE, "--outbound or --inbound: give at least one");
    if (cfg->status) {
        char h[DUET_NET_HOST_MAX];
        unsigned p;

        if (duet_net_split_hostport(cfg->status, h, &p, NULL) < 0)
            return duet_errf(eb, DUET_E_USAGE, "--status '%s': expected host:port", cfg->status);
    }
    return 0;
}
