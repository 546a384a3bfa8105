/* SPDX-License-Identifier: Apache-2.0 */
/*
 * When and from what the sidecar rebuilds its TLS set (reload.c): folder
 * watch, stat poll and explicit requests (SIGHUP), all on the main loop.
 */
#ifndef SC_RELOAD_H
#define SC_RELOAD_H

#include <stdint.h>

#include "duet/err.h"
#include "duet/loop.h"
#include "cfg.h"

struct sc_reload;

/*
 * Load the set now (a failure is logged and counted, not returned: the
 * sidecar waits for certificates), then watch cfg->certs on loop. Returns
 * 0, or DUET_ENOMEM. cfg and loop are borrowed for the reloader's life.
 */
/* Called (main thread) after a set with another ca.crt or CRL was published. */
typedef void sc_reload_trust_cb(void *arg);

int sc_reload_new(struct duet_loop *loop, const struct sc_cfg *cfg, sc_reload_trust_cb *on_trust,
                  void *arg, struct sc_reload **out) DUET_MUST_CHECK;
/* Accepts NULL. */
void sc_reload_free(struct sc_reload *r);
/* Re-read the folder now, whatever its signature says (SIGHUP). */
void sc_reload_now(struct sc_reload *r, const char *why);
/* Loads and refusals so far; any thread. */
uint64_t sc_reload_ok(const struct sc_reload *r);
uint64_t sc_reload_failed(const struct sc_reload *r);

#endif
