/* SPDX-License-Identifier: Apache-2.0 */
/*
 * duet-agent as a CSI node plugin (the "csi" section of its configuration):
 * kubelet's plugin registration, the CSI Identity and Node services, and
 * the volumes they create (csi_vol.h), each an identity bound to one pod.
 * Runs on the agent's loop; run.c drives the volumes' rotation through
 * ag_csi_count()/ag_csi_ident() exactly as it drives folder identities.
 */
#ifndef AG_CSI_H
#define AG_CSI_H

#include <stdbool.h>
#include <stddef.h>

#include "duet/err.h"
#include "duet/loop.h"
#include "duet/status_http.h"

struct ag_csi;
struct ag_gen;
struct ag_ident;

/*
 * Mount (or find) the state tmpfs, find the volumes of an earlier run, and
 * listen on the CSI endpoint and the registration socket. g is borrowed
 * until the next ag_csi_reload(). `changed` (borrowed) is queued on the loop
 * whenever a volume comes or goes, so the rotation schedule is looked at
 * again.
 */
int ag_csi_start(struct duet_loop *loop, struct ag_gen *g, struct duet_defer *changed,
                 struct ag_csi **out, struct duet_errbuf *eb) DUET_MUST_CHECK;

/* Stop serving and remove both sockets; the volumes stay in the tmpfs for the next start. */
void ag_csi_stop(struct ag_csi *k);

/*
 * Switch to generation g (a configuration reload): bindings and products
 * apply to new publishes at once, and every volume's identity is rebuilt.
 * Returns DUET_E_CFG_RANGE (eb says which key) when g changes what only a
 * restart can change (driver, endpoint, folders); then nothing changed.
 */
int ag_csi_reload(struct ag_csi *k, struct ag_gen *g, struct duet_errbuf *eb) DUET_MUST_CHECK;

size_t ag_csi_count(const struct ag_csi *k);
/* The identity of volume i, or NULL when it is no longer granted (not renewed). */
struct ag_ident *ag_csi_ident(struct ag_csi *k, size_t i);

/* Lines for /metrics (per namespace and product, never per pod) and /readyz. */
void ag_csi_metrics(const struct ag_csi *k, struct duet_status_reply *rep);
bool ag_csi_readyz(const struct ag_csi *k, struct duet_status_reply *rep);

#endif
