/* SPDX-License-Identifier: Apache-2.0 */
/*
 * From a validated configuration (config.c) to a generation the daemon
 * runs: the issuer, the policy and one ag_ident per identity. The
 * generation keeps the configuration alive because identities borrow its
 * DNS/IP lists.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "run.h"

#include "duet/alloc.h"
#include "duet/log.h"
#include "duet/watch.h"

struct gen_priv {
    struct ag_gen pub; /* first */
    struct ag_config *cfg;
};

void ag_gen_free(struct ag_gen *g)
{
    struct gen_priv *gp = (struct gen_priv *)g;

    if (!g)
        return;
    for (size_t i = 0; i < g->n_ids; i++) {
        if (g->watches)
            duet_watch_free(g->watches[i]);
        ag_ident_free(g->ids[i]);
    }
    duet_free(g->watches);
    duet_free(g->ids);
    duet_free(g->bundle_pem);
    ag_issuer_free(g->issuer);
    ag_config_free(gp->cfg);
    duet_free(gp);
}

static int make_issuer_type(const struct ag_issuer_cfg *ic, struct ag_issuer **out,
                            struct duet_errbuf *eb)
{
    if (ic->type == AG_ISSUER_LOCAL) {
        const struct ag_local_opts lo = {
            .ca_cert = ic->ca_cert,
            .ca_key = ic->ca_key,
            .ca_key_passphrase_file = ic->ca_key_passphrase_file,
            .ca_bundle = ic->ca_bundle,
        };
        return ag_issuer_local_new(&lo, out, eb);
    }
    const struct ag_cfssl_opts co = {
        .url = ic->url,
        .profile = ic->profile,
        .server_profile = ic->server_profile,
        .auth_key_file = ic->auth_key_file,
        .ca_bundle = ic->ca_bundle,
        .server_ca = ic->server_ca,
        .client_cert = ic->client_cert,
        .client_key = ic->client_key,
        .timeout_ms = ic->timeout,
    };
    return ag_issuer_cfssl_new(&co, out, eb);
}

void ag_ident_params_init(struct ag_ident_params *p, const struct ag_config *c,
                          const struct ag_identity_cfg *ic)
{
    *p = (struct ag_ident_params){
        .env = c->env,
        .product = ic->product,
        .trust_domain = c->trust_domain,
        .output_dir = c->output_dir,
        .cn_template = c->cn_template,
        .subject = &c->subject,
        .key_type = ic->key_type,
        .validity_ms = ic->validity,
        .server = ic->server,
        .dns = (const char *const *)ic->dns,
        .n_dns = ic->n_dns,
        .ips = (const char *const *)ic->ip,
        .n_ips = ic->n_ip,
    };
}

static int make_issuer(const struct ag_issuer_cfg *ic, struct ag_issuer **out,
                       struct duet_errbuf *eb)
{
    DUET_TRY(make_issuer_type(ic, out, eb));
    (*out)->max_backdate_ms = ic->max_backdate;
    /* Every start and every reload: an operator reading any log sees it. */
    if (ic->type == AG_ISSUER_CFSSL && ic->insecure_http && strncmp(ic->url, "http://", 7) == 0)
        duet_log(DUET_LOG_WARN, "agent",
                 "issuer=cfssl url=%s insecure_http=true "
                 "msg=\"plain HTTP to the CA: requests and certificates travel unprotected\"",
                 ic->url);
    return 0;
}

static int make_idents(const struct ag_config *c, struct ag_gen *g, struct duet_errbuf *eb)
{
    g->ids = duet_calloc(c->n_identities, sizeof(*g->ids));
    if (!g->ids)
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->n_identities; i++) {
        struct ag_ident_params p;

        ag_ident_params_init(&p, c, &c->identities[i]);
        DUET_TRY(ag_ident_new(&p, &g->ids[i], eb));
        g->n_ids++;
    }
    return 0;
}

int ag_gen_load(const char *path, struct ag_gen **out, struct duet_errbuf *eb)
{
    struct gen_priv *gp = duet_calloc(1, sizeof(*gp));
    struct ag_gen *g = &gp->pub;
    int rc;

    if (!gp)
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    DUET_TRY_GOTO(ag_config_load(path, &gp->cfg, eb), rc, fail);
    DUET_TRY_GOTO(make_issuer(&gp->cfg->issuer, &g->issuer, eb), rc, fail);
    /* Validated completely at start (and on SIGHUP): the files the
     * configuration names are part of it. */
    rc = g->issuer->ops->validate(g->issuer, eb);
    if (rc < 0) {
        ag_err_prefix(eb, rc, path);
        goto fail;
    }
    g->cfg = gp->cfg;
    /* With "csi", identities are the products pods may be granted, not folders. */
    if (!gp->cfg->csi)
        DUET_TRY_GOTO(make_idents(gp->cfg, g, eb), rc, fail);
    g->pol.renew_before_ms = gp->cfg->renew_before;
    g->pol.key_group = gp->cfg->key_group < 0 ? (gid_t)-1 : (gid_t)gp->cfg->key_group;
    g->status_listen = gp->cfg->status_listen;
    g->log_level = gp->cfg->log_level;
    *out = g;
    return 0;
fail:
    ag_gen_free(g);
    return rc;
}
