/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's status endpoints, served by duet_status_http on the loop:
 *   /healthz  200 while the loop runs;
 *   /readyz   200 when every identity holds a valid set, else 503 naming
 *             those that do not;
 *   /metrics  Prometheus text format 0.0.4, one series per identity.
 * Values come straight from the identity state; nothing here blocks.
 */
#include <string.h>

#include "csi.h"
#include "keypool.h"
#include "run.h"

#include "duet/clock.h"

static bool ident_ready(const struct ag_ident *id, int64_t now_ms)
{
    return id->rot.have && !ag_rotate_invalid_at(&id->rot.v, now_ms);
}

static void readyz(const struct ag_run *r, struct duet_status_reply *rep)
{
    int64_t now = duet_clock_real_ms();
    bool ok = true;

    for (size_t i = 0; i < r->gen->n_ids; i++) {
        const struct ag_ident *id = r->gen->ids[i];
        if (!ident_ready(id, now)) {
            ok = false;
            duet_status_reply_printf(rep, "not ready: %s\n", id->name);
        }
    }
    if (r->csi && !ag_csi_readyz(r->csi, rep))
        ok = false;
    rep->status = ok ? 200 : 503;
    if (ok)
        duet_status_reply_printf(rep, "ready\n");
}

struct series {
    const char *name, *type, *help;
};

static const struct series per_ident[] = {
    {"duet_agent_cert_not_after_seconds", "gauge",
     "notAfter of the published certificate, Unix time (0: none)"},
    {"duet_agent_cert_valid", "gauge", "1 when the published set is valid now"},
    {"duet_agent_renewal_in_seconds", "gauge",
     "seconds until the planned renewal (negative: overdue, retrying)"},
    {"duet_agent_renewals_total", "counter", "certificates issued and published"},
    {"duet_agent_failures_total", "counter", "failed issuance attempts"},
    {"duet_agent_last_success_timestamp_seconds", "gauge",
     "Unix time of the last successful issuance (0: none by this process)"},
    {"duet_agent_unsafe_sets_total", "counter",
     "published sets found with a wrong mode or owner, or a symlink, and re-issued"},
};

static double ident_value(const struct ag_ident *id, size_t which, int64_t now_ms)
{
    switch (which) {
    case 0:
        return id->rot.have ? (double)(id->rot.v.not_after / 1000) : 0;
    case 1:
        return ident_ready(id, now_ms) ? 1 : 0;
    case 2:
        return id->rot.have ? (double)(id->rot.renew_at - now_ms) / 1000.0 : 0;
    case 3:
        return (double)id->renewals;
    case 4:
        return (double)id->failures;
    case 5:
        return (double)id->last_success;
    default:
        return (double)id->unsafe_sets;
    }
}

static void metrics(const struct ag_run *r, struct duet_status_reply *rep)
{
    int64_t now = duet_clock_real_ms();

    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
    for (size_t s = 0; s < sizeof(per_ident) / sizeof(per_ident[0]); s++) {
        duet_status_reply_printf(rep, "# HELP %s %s\n# TYPE %s %s\n", per_ident[s].name,
                                 per_ident[s].help, per_ident[s].name, per_ident[s].type);
        for (size_t i = 0; i < r->gen->n_ids; i++) {
            const struct ag_ident *id = r->gen->ids[i];
            /* Label values are env/product names from the configuration,
             * which the validator restricts to [A-Za-z0-9._-]. */
            duet_status_reply_printf(rep, "%s{identity=\"%s\",product=\"%s\"} %.17g\n",
                                     per_ident[s].name, id->name, id->product,
                                     ident_value(id, s, now));
        }
    }
    duet_status_reply_printf(
        rep,
        "# HELP duet_agent_start_time_seconds Unix time the process started\n"
        "# TYPE duet_agent_start_time_seconds gauge\n"
        "duet_agent_start_time_seconds %lld\n"
        "# HELP duet_agent_identities identities in the configuration\n"
        "# TYPE duet_agent_identities gauge\n"
        "duet_agent_identities %zu\n"
        "# HELP duet_agent_reloads_total configuration reloads applied\n"
        "# TYPE duet_agent_reloads_total counter\n"
        "duet_agent_reloads_total %llu\n"
        "# HELP duet_agent_reload_failures_total configuration reloads refused\n"
        "# TYPE duet_agent_reload_failures_total counter\n"
        "duet_agent_reload_failures_total %llu\n",
        (long long)r->start_time, r->gen->n_ids, (unsigned long long)r->reloads,
        (unsigned long long)r->reload_failures);
    if (r->csi)
        ag_csi_metrics(r->csi, rep);
    if (r->keys)
        duet_status_reply_printf(rep,
                                 "# HELP duet_agent_keys_ready private keys made ahead for "
                                 "new volumes\n# TYPE duet_agent_keys_ready gauge\n"
                                 "duet_agent_keys_ready %zu\n",
                                 ag_keypool_ready(r->keys));
}

void ag_status_handle(const char *path, struct duet_status_reply *rep, void *arg)
{
    const struct ag_run *r = arg;

    if (strcmp(path, "/healthz") == 0) {
        duet_status_reply_printf(rep, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        readyz(r, rep);
    } else if (strcmp(path, "/metrics") == 0) {
        metrics(r, rep);
    } else {
        rep->status = 404;
        duet_status_reply_printf(rep, "not found\n");
    }
}
