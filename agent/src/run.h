/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `duet-agent run`: the node agent daemon. The state one configuration
 * gives (issuer, policy, identities) is a generation that SIGHUP replaces
 * as a whole once the new configuration has been fully validated.
 */
#ifndef AG_RUN_H
#define AG_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "issuer.h"

#include "duet/loop.h"
#include "duet/status_http.h"

struct duet_watch;
struct ag_config;
struct ag_csi;

/* Everything built from one configuration file. */
struct ag_gen {
    const struct ag_config *cfg; /* the validated configuration; owned by the generation */
    struct ag_issuer *issuer;
    struct ag_policy pol;
    struct ag_ident **ids;
    size_t n_ids;
    const char *status_listen; /* borrowed; NULL: no status listener (not reloadable) */
    const char *log_level;     /* borrowed; NULL: not set */
    char *bundle_pem;          /* the issuer's trust bundle as last seen; owned */
    size_t bundle_len;
    struct duet_watch **watches; /* one per identity folder (NULL entries: none); owned */
};

void ag_gen_free(struct ag_gen *g);

struct ag_identity_cfg;
/* The identity parameters configuration c gives product ic (borrowing from both). */
void ag_ident_params_init(struct ag_ident_params *p, const struct ag_config *c,
                          const struct ag_identity_cfg *ic);

/*
 * Wipe and remove the published folders of identities of g's environment
 * that g no longer configures (run_prune.c); logs each one. Blocking.
 */
void ag_prune_unconfigured(const struct ag_gen *g);

/*
 * Read and validate `path` completely, then build a generation. On failure
 * eb names the file and field at fault and nothing is left allocated. The
 * error class is CONFIG for anything the file says.
 */
int ag_gen_load(const char *path, struct ag_gen **out, struct duet_errbuf *eb) DUET_MUST_CHECK;

struct ag_run {
    struct duet_loop *loop;
    const char *config_path; /* borrowed from argv */
    struct ag_gen *gen;
    struct duet_timer tick; /* wake-up hint for the rotation decisions */
    struct duet_timer scan; /* disk check of every published set */
    struct duet_defer eval; /* evaluate soon (after a repair is needed) */
    struct duet_status_http *status;
    struct ag_csi *csi;           /* CSI node plugin; NULL in folder mode */
    struct ag_keypool *keys;      /* keys made ahead for CSI volumes; NULL: none */
    struct ag_workq *renewq;      /* renewals' threads (renew.h) */
    struct duet_watch *cfg_watch; /* the configuration's folder (ConfigMap updates) */
    char cfg_sig[65];             /* SHA-256 of the configuration file last loaded */
    int64_t start_time;           /* wall seconds */
    uint64_t reloads, reload_failures;
    bool stopping; /* SIGTERM seen: no new issuance */
};

/* /healthz, /readyz, /metrics (run_status.c). */
void ag_status_handle(const char *path, struct duet_status_reply *r, void *arg);

int ag_run_main(int argc, char **argv);

#endif
