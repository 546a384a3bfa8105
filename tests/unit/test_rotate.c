/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rotate: renewal deadlines (70-90% rule, renew_before with jitter, CFSSL's
 * backdated notBefore), expired and not-yet-valid sets, clock jumps through
 * the settable clock, and capped exponential backoff with jitter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rotate.h"

#include "duet/clock.h"
#include "duet/compiler.h"

#define S 1000LL
#define T0 (1800000000LL * S) /* an arbitrary wall-clock time, 2027 */

static struct ag_validity life(int64_t nb, int64_t na, int64_t received)
{
    struct ag_validity v = {.not_before = nb, .not_after = na, .received = received};
    return v;
}

static void rotate_renew_at__ratio_bounds(void **state)
{
    struct ag_validity v = life(T0, T0 + 60 * S, T0);

    assert_int_equal(ag_rotate_renew_at(&v, 0, 0.0), T0 + 42 * S);
    assert_int_equal(ag_rotate_renew_at(&v, 0, 0.5), T0 + 48 * S);
    assert_int_equal(ag_rotate_renew_at(&v, 0, 0.999999), T0 + 53999);
    for (int i = 0; i < 10000; i++) {
        int64_t at = ag_rotate_renew_at(&v, 0, ag_rotate_uniform());
        assert_true(at >= T0 + 42 * S && at <= T0 + 54 * S);
    }
    /* Out-of-range u is clamped rather than trusted. */
    assert_int_equal(ag_rotate_renew_at(&v, 0, -3.0), T0 + 42 * S);
    assert_int_equal(ag_rotate_renew_at(&v, 0, 7.0), T0 + 54 * S);
}

static void rotate_renew_at__jitter_spreads(void **state)
{
    struct ag_validity v = life(T0, T0 + 365 * 86400 * S, T0);
    int64_t lo = INT64_MAX, hi = INT64_MIN;

    /* 2000 draws cover most of the 20% window: a fleet does not renew at once. */
    for (int i = 0; i < 2000; i++) {
        int64_t at = ag_rotate_renew_at(&v, 0, ag_rotate_uniform());
        lo = DUET_MIN(lo, at);
        hi = DUET_MAX(hi, at);
    }
    assert_true(hi - lo > (int64_t)(0.18 * 365 * 86400 * S));
}

static void rotate_renew_at__cfssl_backdate_uses_receipt(void **state)
{
    /* CFSSL: notBefore 5 min before receipt, expiry 10 min from notBefore:
     * 5 usable minutes, renewal at 3.5..4.5 min after receipt. */
    int64_t rx = T0 + 300 * S;
    struct ag_validity v = life(T0, T0 + 600 * S, rx);

    assert_int_equal(ag_rotate_life_start(&v), rx);
    assert_int_equal(ag_rotate_renew_at(&v, 0, 0.0), rx + 210 * S);
    assert_int_equal(ag_rotate_renew_at(&v, 0, 1.0), rx + 270 * S);
    /* Unknown receipt (read back from disk): the lifetime starts at notBefore. */
    v.received = 0;
    assert_int_equal(ag_rotate_renew_at(&v, 0, 0.0), T0 + 420 * S);
}

static void rotate_renew_at__renew_before_jitter(void **state)
{
    int64_t na = T0 + 365 * 86400 * S;
    int64_t rb = 122 * 86400 * S;
    struct ag_validity v = life(T0, na, T0);

    assert_int_equal(ag_rotate_renew_at(&v, rb, 0.0), na - rb * 9 / 10);
    assert_int_equal(ag_rotate_renew_at(&v, rb, 1.0), na - rb * 11 / 10);
    assert_int_equal(ag_rotate_renew_at(&v, rb, 0.5), na - rb);
    for (int i = 0; i < 10000; i++) {
        int64_t at = ag_rotate_renew_at(&v, rb, ag_rotate_uniform());
        assert_true(at >= na - rb * 11 / 10 && at <= na - rb * 9 / 10);
    }
}

static void rotate_renew_at__renew_before_longer_than_life(void **state)
{
    /* A 60 s certificate with the default 122d renew_before would be renewed
     * before it was issued: the ratio rule applies instead. */
    struct ag_validity v = life(T0, T0 + 60 * S, T0);
    int64_t at = ag_rotate_renew_at(&v, 122 * 86400 * S, 0.3);

    assert_int_equal(at, ag_rotate_renew_at(&v, 0, 0.3));
    /* Just fitting (1.1 x 50 s < 60 s) keeps renew_before. */
    assert_int_equal(ag_rotate_renew_at(&v, 50 * S, 0.5), T0 + 10 * S);
}

static void rotate_renew_at__nothing_left(void **state)
{
    /* Already expired on receipt (CFSSL profile too short): renew at once. */
    struct ag_validity v = life(T0, T0 + 20 * S, T0 + 300 * S);

    assert_int_equal(ag_rotate_renew_at(&v, 0, 0.5), T0 + 300 * S);
}

static void rotate_invalid_at__edges(void **state)
{
    struct ag_validity v = life(T0, T0 + 60 * S, T0);

    assert_true(ag_rotate_invalid_at(&v, T0 - 1));
    assert_false(ag_rotate_invalid_at(&v, T0));
    assert_false(ag_rotate_invalid_at(&v, T0 + 60 * S - 1));
    assert_true(ag_rotate_invalid_at(&v, T0 + 60 * S));
}

static void backoff_delay__bounds_and_cap(void **state)
{
    const int64_t base = AG_BACKOFF_BASE_MS, cap = AG_BACKOFF_CAP_MS;

    assert_int_equal(ag_backoff_delay(0, base, cap, 0.7), base);
    assert_int_equal(ag_backoff_delay(1, base, cap, 0.0), base);
    assert_int_equal(ag_backoff_delay(1, base, cap, 1.0), 2 * base);
    assert_int_equal(ag_backoff_delay(3, base, cap, 1.0), 8 * base);
    for (unsigned a = 0; a < 40; a++) {
        int64_t top = a >= 30 ? cap : DUET_MIN(cap, base << a);
        for (int i = 0; i < 500; i++) {
            int64_t d = ag_backoff_delay(a, base, cap, ag_rotate_uniform());
            assert_true(d >= base && d <= top);
        }
    }
    /* Huge attempt counts neither overflow nor exceed the cap. */
    assert_int_equal(ag_backoff_delay(4000000000u, base, cap, 1.0), cap);
    assert_int_equal(ag_backoff_delay(4000000000u, base, cap, 0.0), base);
}

static void backoff_delay__grows_on_average(void **state)
{
    double sum3 = 0, sum8 = 0;

    for (int i = 0; i < 2000; i++) {
        sum3 += (double)ag_backoff_delay(3, 1000, 300000, ag_rotate_uniform());
        sum8 += (double)ag_backoff_delay(8, 1000, 300000, ag_rotate_uniform());
    }
    /* Means: (1 + 8) / 2 = 4.5 s and (1 + 256) / 2 = 128.5 s. */
    assert_true(sum3 / 2000 > 3500 && sum3 / 2000 < 5500);
    assert_true(sum8 / 2000 > 110000 && sum8 / 2000 < 145000);
}

static struct ag_rotate_state fresh_state(int64_t now)
{
    struct ag_rotate_state s = {.have = true, .v = life(now, now + 60 * S, now)};

    s.renew_at = ag_rotate_renew_at(&s.v, 0, 0.5); /* now + 48 s */
    return s;
}

static void rotate_decide__waits_then_renews(void **state)
{
    int64_t sleep_ms = -1;
    struct ag_rotate_state s;

    duet_clock_fake(T0);
    s = fresh_state(duet_clock_real_ms());
    assert_int_equal(ag_rotate_decide(&s, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_WAIT);
    assert_int_equal(sleep_ms, 48 * S);
    duet_clock_advance(47 * S);
    assert_int_equal(ag_rotate_decide(&s, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_WAIT);
    assert_int_equal(sleep_ms, 1 * S);
    duet_clock_advance(1 * S);
    assert_int_equal(ag_rotate_decide(&s, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_RENEW);
    assert_int_equal(sleep_ms, 0);
    duet_clock_unfake();
}

static void rotate_decide__sleep_capped(void **state)
{
    int64_t sleep_ms = -1;
    struct ag_rotate_state s = {.have = true, .v = life(T0, T0 + 365 * 86400 * S, T0)};

    s.renew_at = ag_rotate_renew_at(&s.v, 0, 0.0);
    assert_int_equal(ag_rotate_decide(&s, T0, 5 * S, &sleep_ms), AG_ROTATE_WAIT);
    assert_int_equal(sleep_ms, AG_ROTATE_MAX_SLEEP_MS);
}

static void rotate_decide__missing_or_expired_is_urgent(void **state)
{
    int64_t sleep_ms = -1;
    struct ag_rotate_state none = {.have = false};
    struct ag_rotate_state s = fresh_state(T0);

    assert_int_equal(ag_rotate_decide(&none, T0, 1, &sleep_ms), AG_ROTATE_URGENT);
    assert_int_equal(ag_rotate_decide(&s, T0 + 60 * S, 1, &sleep_ms), AG_ROTATE_URGENT);
    assert_int_equal(ag_rotate_decide(&s, T0 - 1, 1, &sleep_ms), AG_ROTATE_URGENT);
}

static void rotate_decide__clock_jump_forward(void **state)
{
    int64_t sleep_ms = -1;
    struct ag_rotate_state s;

    /* The node sleeps (or NTP steps) past the renewal time: the next wake
     * renews at once, whatever the monotonic clock says. */
    duet_clock_fake(T0);
    s = fresh_state(duet_clock_real_ms());
    duet_clock_jump(50 * S);
    assert_int_equal(ag_rotate_decide(&s, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_RENEW);
    /* Past notAfter: urgent. */
    duet_clock_jump(3600 * S);
    assert_int_equal(ag_rotate_decide(&s, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_URGENT);
    duet_clock_unfake();
}

static void rotate_decide__clock_jump_backward(void **state)
{
    int64_t sleep_ms = -1;
    struct ag_rotate_state s;

    duet_clock_fake(T0);
    s = fresh_state(duet_clock_real_ms());
    duet_clock_advance(40 * S);
    /* A small step back: the set is still valid by the wall clock, so the
     * renewal waits for the wall-clock deadline (no early renewal) ... */
    duet_clock_jump(-10 * S);
    assert_int_equal(ag_rotate_decide(&s, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_WAIT);
    assert_int_equal(sleep_ms, 18 * S);
    /* ... but a step back before notBefore makes the set not yet valid:
     * peers with this clock would refuse it, so it is replaced at once. */
    duet_clock_jump(-3600 * S);
    assert_int_equal(ag_rotate_decide(&s, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_URGENT);
    duet_clock_unfake();
}

static void rotate_decide__retry_is_monotonic(void **state)
{
    int64_t sleep_ms = -1;
    struct ag_rotate_state none = {.have = false};

    duet_clock_fake(T0);
    none.retry_mono = duet_clock_mono_ms() + 4 * S;
    assert_int_equal(ag_rotate_decide(&none, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_WAIT);
    assert_int_equal(sleep_ms, 4 * S);
    /* A wall-clock jump back by an hour does not stretch the backoff. */
    duet_clock_jump(-3600 * S);
    duet_clock_advance(4 * S);
    assert_int_equal(ag_rotate_decide(&none, duet_clock_real_ms(), duet_clock_mono_ms(), &sleep_ms),
                     AG_ROTATE_URGENT);
    duet_clock_unfake();
}

static void rotate_decide__retry_delays_renewal(void **state)
{
    int64_t sleep_ms = -1;
    struct ag_rotate_state s = fresh_state(T0);

    s.retry_mono = 10 * S;
    assert_int_equal(ag_rotate_decide(&s, T0 + 50 * S, 2 * S, &sleep_ms), AG_ROTATE_WAIT);
    assert_int_equal(sleep_ms, 8 * S);
    assert_int_equal(ag_rotate_decide(&s, T0 + 58 * S, 10 * S, &sleep_ms), AG_ROTATE_RENEW);
}

/* The SCALE 1.0 soak drew a 240 s backoff for a set with 200 s left: the
 * certificate expired though CFSSL was back. */
static void retry_delay__never_past_half_the_life_left(void **state)
{
    struct ag_rotate_state s = fresh_state(T0); /* notAfter T0 + 60 s */
    struct ag_rotate_state none = {.have = false};

    assert_int_equal(ag_retry_delay(&s, T0, 240 * S, S), 30 * S);
    assert_int_equal(ag_retry_delay(&s, T0, 10 * S, S), 10 * S);
    assert_int_equal(ag_retry_delay(&s, T0 + 59 * S, 240 * S, S), S);       /* floor: 1/s */
    assert_int_equal(ag_retry_delay(&s, T0 + 59 * S, S / 2, S), S / 2);     /* never longer */
    assert_int_equal(ag_retry_delay(&s, T0 + 60 * S, 240 * S, S), 240 * S); /* expired */
    assert_int_equal(ag_retry_delay(&none, T0, 240 * S, S), 240 * S);
    /* Repeated failures reach notAfter in steps, each at least the floor. */
    int64_t now = T0, n = 0;
    while (!ag_rotate_invalid_at(&s.v, now) && n < 100) {
        int64_t d = ag_retry_delay(&s, now, 300 * S, S);

        assert_true(d >= S && now + d <= s.v.not_after + S);
        now += d;
        n++;
    }
    assert_true(n >= 6 && n < 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rotate_renew_at__ratio_bounds),
        cmocka_unit_test(rotate_renew_at__jitter_spreads),
        cmocka_unit_test(rotate_renew_at__cfssl_backdate_uses_receipt),
        cmocka_unit_test(rotate_renew_at__renew_before_jitter),
        cmocka_unit_test(rotate_renew_at__renew_before_longer_than_life),
        cmocka_unit_test(rotate_renew_at__nothing_left),
        cmocka_unit_test(rotate_invalid_at__edges),
        cmocka_unit_test(backoff_delay__bounds_and_cap),
        cmocka_unit_test(backoff_delay__grows_on_average),
        cmocka_unit_test(retry_delay__never_past_half_the_life_left),
        cmocka_unit_test(rotate_decide__waits_then_renews),
        cmocka_unit_test(rotate_decide__sleep_capped),
        cmocka_unit_test(rotate_decide__missing_or_expired_is_urgent),
        cmocka_unit_test(rotate_decide__clock_jump_forward),
        cmocka_unit_test(rotate_decide__clock_jump_backward),
        cmocka_unit_test(rotate_decide__retry_is_monotonic),
        cmocka_unit_test(rotate_decide__retry_delays_renewal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
