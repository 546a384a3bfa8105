/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rotation and retry arithmetic, as pure functions of wall-clock times (ms
 * since the epoch) and a uniform random number u in [0, 1) supplied by the
 * caller, so tests can pin both. The daemon (run.c) stores every deadline as
 * a wall-clock time and calls ag_rotate_decide() on every wake; the loop
 * timer is only a hint of when to wake (docs/internals/rotation.md).
 */
#ifndef AG_ROTATE_H
#define AG_ROTATE_H

#include <stdbool.h>
#include <stdint.h>

/* Longest sleep between two evaluations: a suspended node re-checks soon. */
#define AG_ROTATE_MAX_SLEEP_MS 60000
/* Retry after a failed issuance: full jitter between base and the capped double. */
#define AG_BACKOFF_BASE_MS 1000
#define AG_BACKOFF_CAP_MS 300000

/* What is known of the certificate currently published. All times are ms. */
struct ag_validity {
    int64_t not_before;
    int64_t not_after;
    int64_t received; /* when we obtained it; 0 when unknown (read from disk) */
};

/* A uniform number in [0, 1) from getrandom(2) (not for secrets). */
double ag_rotate_uniform(void);

/*
 * Start of the usable lifetime: max(notBefore, received). CFSSL backdates
 * notBefore by about five minutes and counts notAfter from there, so the
 * lifetime the agent can use starts when it received the certificate.
 */
int64_t ag_rotate_life_start(const struct ag_validity *v);

/*
 * The wall-clock time to renew at. renew_before_ms == 0: a point between
 * 70% and 90% of the usable lifetime, placed by u. renew_before_ms > 0:
 * notAfter - renew_before * (0.9 + 0.2 u). When renew_before (with its
 * jitter) does not fit in the lifetime, the 70-90% rule applies instead,
 * so a short-lived certificate is not renewed in a tight loop. The result
 * is never before the start of the lifetime nor after notAfter.
 */
int64_t ag_rotate_renew_at(const struct ag_validity *v, int64_t renew_before_ms, double u);

/* True when the certificate is unusable at `now` (expired or not yet valid). */
bool ag_rotate_invalid_at(const struct ag_validity *v, int64_t now);

/*
 * Delay before retry number `attempt` (0 for the first retry after one
 * failure): uniform in [base, min(cap, base * 2^attempt)], placed by u. The
 * floor of `base` keeps a broken issuer from seeing a tight loop even when
 * the jitter draws near zero.
 */
int64_t ag_backoff_delay(unsigned attempt, int64_t base_ms, int64_t cap_ms, double u);

/*
 * How long the loop may sleep before the next evaluation, given the
 * earliest wall-clock deadline: clamped to [0, AG_ROTATE_MAX_SLEEP_MS]. A
 * deadline in the past gives 0.
 */
int64_t ag_rotate_sleep_ms(int64_t now, int64_t deadline);

/*
 * The scheduling state of one identity. Renewal is a wall-clock deadline
 * (certificate validity is wall-clock); a retry after failure is a
 * monotonic deadline (backoff is about elapsed time, and a wall-clock jump
 * backwards must not postpone it by the size of the jump).
 */
struct ag_rotate_state {
    bool have;            /* a verified set is published */
    struct ag_validity v; /* of that set, when have */
    int64_t renew_at;     /* wall ms, when have */
    int64_t retry_mono;   /* monotonic ms before which no attempt is made; 0: none */
};

enum ag_rotate_action {
    AG_ROTATE_WAIT = 0,
    AG_ROTATE_RENEW,  /* renewal time reached */
    AG_ROTATE_URGENT, /* no set, or the set is expired or not yet valid */
};

/*
 * A retry delay shortened so that a working set does not expire while its
 * issuer is back: the wait is at most half of what is left of the set's
 * life (so several attempts fall before notAfter), never below base_ms (a
 * broken issuer still sees at most one attempt per base_ms). Without a
 * usable set, `delay` stands.
 */
int64_t ag_retry_delay(const struct ag_rotate_state *s, int64_t now_real, int64_t delay,
                       int64_t base_ms);

/*
 * Decide, from the current clocks, what to do now; *sleep_ms receives how
 * long to sleep before the next evaluation when waiting (already capped by
 * AG_ROTATE_MAX_SLEEP_MS). A pending retry delays both kinds of renewal.
 */
enum ag_rotate_action ag_rotate_decide(const struct ag_rotate_state *s, int64_t now_real,
                                       int64_t now_mono, int64_t *sleep_ms);

#endif
