/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Renewals off the agent's loop (2026-12-01). A renewal used to run on the
 * loop: a CFSSL that took requests and never answered held /healthz, every
 * CSI call and SIGHUP for issuer.timeout per identity due, and a node's
 * volumes renewing through it kept the loop blocked back to back (kubelet
 * could mount nothing, the liveness probe failed). Now the key, the CSR and
 * the issuer's request run on a work-queue thread (ag_ident_obtain) and the
 * set is published on the loop.
 *
 * While a renewal runs, id->renewing is set and the thread reads the
 * identity: an ag_ident_free() meanwhile (reload, unpublish) orphans it,
 * and the renewal frees it when it ends, without writing anything.
 */
#ifndef AG_RENEW_H
#define AG_RENEW_H

#include <stdint.h>

#include "identity.h"
#include "issuer.h"
#include "workq.h"

#include "duet/err.h"

/*
 * The answer, on the loop, for an identity still in use (not for an
 * orphaned one, nor when the queue is freed): rc 0 and got holds a checked
 * certificate and its key, to publish (ag_ident_install); rc < 0 and eb
 * says why. The callback may take got->key; the rest is freed after it.
 * t0 (monotonic ms) is when the renewal started, issuer the issuer's name.
 */
typedef void ag_renew_done(void *arg, struct ag_ident *id, struct ag_issued *got, int rc,
                           struct duet_errbuf *eb, int64_t t0, const char *issuer);

/*
 * Queue a renewal of id by issuer is (a snapshot of it), with a key from
 * keys (or id->pending_key, a failed attempt's). On failure nothing was
 * queued and eb says why.
 */
int ag_renew_start(struct ag_workq *q, struct ag_ident *id, struct ag_issuer *is,
                   struct ag_keypool *keys, ag_renew_done *done, void *arg,
                   struct duet_errbuf *eb) DUET_MUST_CHECK;

#endif
