/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rotation deadlines and retry backoff (see rotate.h). Nothing here reads a
 * clock: callers pass wall-clock times, which is what makes clock jumps
 * testable and harmless (the caller re-evaluates from the current wall
 * clock on every wake).
 */
#include <sys/random.h>

#include "rotate.h"

#include "duet/compiler.h"

double ag_rotate_uniform(void)
{
    uint64_t r = 0;

    /* getrandom of 8 bytes never blocks once the pool is up and is not
     * interrupted for requests of up to 256 bytes. A failure leaves r at 0,
     * which still gives a valid (if unjittered) deadline. */
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = 0;
    return (double)(r >> 11) / (double)(UINT64_C(1) << 53);
}

int64_t ag_rotate_life_start(const struct ag_validity *v)
{
    return DUET_MAX(v->not_before, v->received);
}

static double clamp_unit(double u)
{
    if (!(u >= 0.0)) /* also catches NaN */
        return 0.0;
    return u < 1.0 ? u : 1.0;
}

/* x * (lo + span * u), with the fraction in parts per million so that round
 * values stay exact (60 s x 0.8 is 48000 ms, not 47999). */
static int64_t scale(int64_t x, int64_t lo_ppm, int64_t span_ppm, double u)
{
    int64_t ppm = lo_ppm + (int64_t)((double)span_ppm * clamp_unit(u));

    return (int64_t)((__int128)x * ppm / 1000000);
}

int64_t ag_rotate_renew_at(const struct ag_validity *v, int64_t renew_before_ms, double u)
{
    int64_t start = ag_rotate_life_start(v);
    int64_t life = v->not_after - start;

    if (life <= 0)
        return start; /* nothing usable left: renew at once */
    /* The largest jittered renew_before is 1.1 x; it must leave a positive
     * part of the lifetime, else the ratio rule applies. */
    if (renew_before_ms > 0 && scale(renew_before_ms, 1100000, 0, 0) < life)
        return v->not_after - scale(renew_before_ms, 900000, 200000, u);
    return start + scale(life, 700000, 200000, u);
}

bool ag_rotate_invalid_at(const struct ag_validity *v, int64_t now)
{
    return now < v->not_before || now >= v->not_after;
}

int64_t ag_backoff_delay(unsigned attempt, int64_t base_ms, int64_t cap_ms, double u)
{
    int64_t top = base_ms;

    if (base_ms <= 0)
        return 0;
    /* Double without overflow: stop as soon as the cap is reached. */
    for (unsigned i = 0; i < attempt && top < cap_ms; i++)
        top = top > cap_ms / 2 ? cap_ms : top * 2;
    if (top > cap_ms)
        top = cap_ms;
    if (top <= base_ms)
        return top;
    return base_ms + (int64_t)((double)(top - base_ms) * clamp_unit(u));
}

int64_t ag_retry_delay(const struct ag_rotate_state *s, int64_t now_real, int64_t delay,
                       int64_t base_ms)
{
    int64_t half;

    if (!s->have || ag_rotate_invalid_at(&s->v, now_real))
        return delay;
    half = (s->v.not_after - now_real) / 2;
    return DUET_MAX(DUET_MIN(delay, half), DUET_MIN(delay, base_ms));
}

int64_t ag_rotate_sleep_ms(int64_t now, int64_t deadline)
{
    int64_t d = deadline - now;

    if (d <= 0)
        return 0;
    return d < AG_ROTATE_MAX_SLEEP_MS ? d : AG_ROTATE_MAX_SLEEP_MS;
}

enum ag_rotate_action ag_rotate_decide(const struct ag_rotate_state *s, int64_t now_real,
                                       int64_t now_mono, int64_t *sleep_ms)
{
    enum ag_rotate_action want = AG_ROTATE_WAIT;

    if (!s->have || ag_rotate_invalid_at(&s->v, now_real))
        want = AG_ROTATE_URGENT;
    else if (now_real >= s->renew_at)
        want = AG_ROTATE_RENEW;

    if (s->retry_mono > now_mono) {
        int64_t d = ag_rotate_sleep_ms(now_mono, s->retry_mono);
        /* Waiting on a retry: also wake for the renewal time when it is the
         * nearer one, though nothing happens before the retry time. */
        if (want == AG_ROTATE_WAIT)
            d = DUET_MIN(d, ag_rotate_sleep_ms(now_real, s->renew_at));
        *sleep_ms = d;
        return AG_ROTATE_WAIT;
    }
    if (want != AG_ROTATE_WAIT) {
        *sleep_ms = 0;
        return want;
    }
    *sleep_ms = ag_rotate_sleep_ms(now_real, s->renew_at);
    return AG_ROTATE_WAIT;
}
