/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /healthz, /readyz and /metrics (Prometheus text format 0.0.4) for the
 * status server. Counters are summed over workers at scrape time; workers
 * write them with relaxed stores and never wait for a scrape.
 */
#include <stdio.h>
#include <string.h>

#include "duet/clock.h"
#include "duet/status_http.h"
#include "main.h"
#include "metrics.h"
#include "resolve.h"
#include "tls_set.h"

const char *const sc_fail_names[SC_FAIL_COUNT] = {
    [SC_FAIL_NO_CERT] = "no_cert",         [SC_FAIL_UNTRUSTED] = "untrusted",
    [SC_FAIL_EXPIRED] = "expired",         [SC_FAIL_REVOKED] = "revoked",
    [SC_FAIL_NOT_ALLOWED] = "not_allowed", [SC_FAIL_PROTOCOL] = "protocol",
    [SC_FAIL_TIMEOUT] = "timeout",         [SC_FAIL_CONNECT] = "connect",
    [SC_FAIL_RESOLVE] = "resolve",         [SC_FAIL_NO_CERTS_LOADED] = "no_certs_loaded",
    [SC_FAIL_CRL_STALE] = "crl_stale",     [SC_FAIL_SHED] = "shed",
};

static void sum(const struct sc_app *app, unsigned li, struct sc_lstats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned w = 0; w < app->n_workers; w++) {
        const struct sc_lstats *s = &app->workers[w]->listeners[li].stats;

        out->open += SC_STAT_GET(s->open);
        out->total += SC_STAT_GET(s->total);
        out->bytes_in += SC_STAT_GET(s->bytes_in);
        out->bytes_out += SC_STAT_GET(s->bytes_out);
        out->hs_ok += SC_STAT_GET(s->hs_ok);
        out->hs_resumed += SC_STAT_GET(s->hs_resumed);
        for (int f = 0; f < SC_FAIL_COUNT; f++)
            out->hs_fail[f] += SC_STAT_GET(s->hs_fail[f]);
        out->closed_recheck += SC_STAT_GET(s->closed_recheck);
        out->retired += SC_STAT_GET(s->retired);
        out->cut += SC_STAT_GET(s->cut);
    }
}

#define HELP(r, name, type, text)                                                                  \
    (void)duet_status_reply_printf((r), "# HELP " name " " text "\n# TYPE " name " " type "\n")

static void listener_metrics(const struct sc_app *app, struct duet_status_reply *r)
{
    static const char *const metric[] = {"duet_sidecar_connections_open",
                                         "duet_sidecar_connections_total",
                                         "duet_sidecar_bytes_client_to_upstream_total",
                                         "duet_sidecar_bytes_upstream_to_client_total",
                                         "duet_sidecar_handshakes_total",
                                         "duet_sidecar_handshakes_resumed_total",
                                         "duet_sidecar_connections_closed_recheck_total",
                                         "duet_sidecar_connections_retired_total",
                                         "duet_sidecar_connections_cut_total"};
    static const char *const help[] = {
        "Proxied connections open now.",
        "Proxied connections accepted.",
        "Bytes from the client side to the upstream side.",
        "Bytes from the upstream side to the client side.",
        "TLS handshakes completed.",
        "TLS handshakes that resumed a session.",
        "Open connections closed because their peer failed a new ca.crt or CRL.",
        "Connections closed at rest (answered, then quiet) past a lifetime or notAfter deadline.",
        "Connections closed at a hard deadline (notAfter, --max-conn-lifetime) while busy."};
    const unsigned n = app->cfg.n_listeners;
    struct sc_lstats st[SC_MAX_LISTENERS];

    for (unsigned i = 0; i < n; i++)
        sum(app, i, &st[i]);
    for (size_t m = 0; m < DUET_ARRAY_SIZE(metric); m++) {
        (void)duet_status_reply_printf(r, "# HELP %s %s\n# TYPE %s %s\n", metric[m], help[m],
                                       metric[m], m == 0 ? "gauge" : "counter");
        for (unsigned i = 0; i < n; i++) {
            const struct sc_lstats *s = &st[i];
            const uint64_t v[] = {s->open,           s->total,   s->bytes_in,
                                  s->bytes_out,      s->hs_ok,   s->hs_resumed,
                                  s->closed_recheck, s->retired, s->cut};

            (void)duet_status_reply_printf(r, "%s{listener=\"%s\",direction=\"%s\"} %llu\n",
                                           metric[m], app->cfg.listeners[i].listen,
                                           app->cfg.listeners[i].dir == SC_OUTBOUND ? "outbound"
                                                                                    : "inbound",
                                           (unsigned long long)v[m]);
        }
    }
    HELP(r, "duet_sidecar_handshake_failures_total", "counter",
         "Connections refused or failed before carrying data, by reason.");
    for (unsigned i = 0; i < n; i++) {
        for (int f = 0; f < SC_FAIL_COUNT; f++)
            (void)duet_status_reply_printf(
                r, "duet_sidecar_handshake_failures_total{listener=\"%s\",reason=\"%s\"} %llu\n",
                app->cfg.listeners[i].listen, sc_fail_names[f],
                (unsigned long long)st[i].hs_fail[f]);
    }
}

/* NULL when ready, else why not. */
static const char *ready(const struct sc_app *app)
{
    struct sc_tls_set *s;
    const char *why = NULL;

    if (!app->ready_listeners)
        return "listeners not bound";
    if (!sc_tls_ready())
        return "no valid certificate set";
    s = sc_tls_acquire();
    if (s && sc_tls_crl_stale(sc_tls_set_info(s), duet_clock_now()))
        why = "CRL past its nextUpdate";
    sc_tls_set_unref(s);
    return why;
}

static void cert_metrics(const struct sc_app *app, struct duet_status_reply *r)
{
    struct sc_tls_set *s = sc_tls_acquire();
    const struct sc_tls_info *i = s ? sc_tls_set_info(s) : NULL;

    HELP(r, "duet_sidecar_reloads_total", "counter", "Certificate set reloads by result.");
    (void)duet_status_reply_printf(r, "duet_sidecar_reloads_total{result=\"ok\"} %llu\n",
                                   (unsigned long long)sc_reload_ok(app->reload));
    (void)duet_status_reply_printf(r, "duet_sidecar_reloads_total{result=\"failed\"} %llu\n",
                                   (unsigned long long)sc_reload_failed(app->reload));
    HELP(r, "duet_sidecar_cert_not_after_seconds", "gauge",
         "notAfter of the certificate in use, Unix time (0: none loaded).");
    (void)duet_status_reply_printf(r, "duet_sidecar_cert_not_after_seconds %lld\n",
                                   i ? (long long)i->not_after : 0LL);
    HELP(r, "duet_sidecar_cert_generation", "gauge",
         "Generation of the certificate set in use (1 for the first load).");
    (void)duet_status_reply_printf(r, "duet_sidecar_cert_generation %llu\n",
                                   i ? (unsigned long long)i->generation : 0ULL);
    HELP(r, "duet_sidecar_crl_next_update_seconds", "gauge",
         "Earliest nextUpdate of the loaded CRL, Unix time (0: no CRL or none given).");
    (void)duet_status_reply_printf(r, "duet_sidecar_crl_next_update_seconds %lld\n",
                                   i ? (long long)i->crl_next_update : 0LL);
    HELP(r, "duet_sidecar_crl_stale", "gauge",
         "1 when the loaded CRL is past its nextUpdate (every peer is refused).");
    (void)duet_status_reply_printf(r, "duet_sidecar_crl_stale %d\n",
                                   i && sc_tls_crl_stale(i, duet_clock_now()));
    HELP(r, "duet_sidecar_ready", "gauge",
         "1 when listeners are bound, certificates valid and the CRL (if any) current.");
    (void)duet_status_reply_printf(r, "duet_sidecar_ready %d\n", ready(app) == NULL);
    sc_tls_set_unref(s);
}

static void resolve_metrics(struct duet_status_reply *r)
{
    struct sc_resolve_stats s;

    sc_resolve_get_stats(&s);
    HELP(r, "duet_sidecar_resolve_lookups_total", "counter",
         "getaddrinfo lookups of upstream names, by result.");
    (void)duet_status_reply_printf(r, "duet_sidecar_resolve_lookups_total{result=\"ok\"} %llu\n",
                                   (unsigned long long)(s.lookups - s.failures));
    (void)duet_status_reply_printf(r, "duet_sidecar_resolve_lookups_total{result=\"fail\"} %llu\n",
                                   (unsigned long long)s.failures);
    HELP(r, "duet_sidecar_resolve_lookup_seconds_total", "counter",
         "Time spent in those lookups (divide by the lookups for the mean).");
    (void)duet_status_reply_printf(r, "duet_sidecar_resolve_lookup_seconds_total %.3f\n",
                                   (double)s.lookup_ms_sum / 1000.0);
    HELP(r, "duet_sidecar_resolve_requests_total", "counter",
         "Connections' name requests answered from the cache, by joining a lookup in flight, "
         "refused (queue full), or dropped with their lookup (all requesters gone).");
    (void)duet_status_reply_printf(
        r,
        "duet_sidecar_resolve_requests_total{outcome=\"cache\"} %llu\n"
        "duet_sidecar_resolve_requests_total{outcome=\"coalesced\"} %llu\n"
        "duet_sidecar_resolve_requests_total{outcome=\"refused\"} %llu\n"
        "duet_sidecar_resolve_requests_total{outcome=\"dropped\"} %llu\n",
        (unsigned long long)s.cache_hits, (unsigned long long)s.coalesced,
        (unsigned long long)s.refused, (unsigned long long)s.dropped);
}

void sc_metrics_handler(const char *path, struct duet_status_reply *r, void *arg)
{
    const struct sc_app *app = arg;

    if (strcmp(path, "/healthz") == 0) {
        (void)duet_status_reply_printf(r, "ok\n");
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        const char *why = ready(app);

        r->status = why ? 503 : 200;
        (void)duet_status_reply_printf(r, "%s\n", why ? why : "ready");
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        r->content_type = "text/plain; version=0.0.4; charset=utf-8";
        listener_metrics(app, r);
        cert_metrics(app, r);
        resolve_metrics(r);
        return;
    }
    r->status = 404;
    (void)duet_status_reply_printf(r, "not found\n");
}
