/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Durations as written in configuration and flags ("90s", "365d", "250ms").
 * Strict on purpose: a duration is the lifetime of a certificate or a
 * timeout, and a silently misread one ("1 d" as 1 ms, "-5m" as huge) is
 * worse than a refusal at startup. Callers attach the field name.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "duet/duration.h"
#include "duet/err.h"

struct unit {
    const char *suffix;
    int64_t ms;
};

/* Longest suffix first so "ms" is not taken for "m" followed by garbage. */
static const struct unit units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {"d", 24 * 60 * 60 * 1000},
};

int duet_duration_parse(const char *s, int64_t *out_ms)
{
    int64_t n = 0;
    const char *p = s;

    if (!s)
        return DUET_E_DURATION;
    /* Digits only: no sign, no space, no "0x"; strtoll would accept all three. */
    while (*p >= '0' && *p <= '9') {
        int d = *p - '0';

        if (n > (INT64_MAX - d) / 10)
            return DUET_E_DURATION;
        n = n * 10 + d;
        p++;
    }
    if (p == s)
        return DUET_E_DURATION;
    for (size_t i = 0; i < DUET_ARRAY_SIZE(units); i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        if (n > INT64_MAX / units[i].ms)
            return DUET_E_DURATION;
        *out_ms = n * units[i].ms;
        return 0;
    }
    return DUET_E_DURATION;
}

const char *duet_duration_format(int64_t ms, char *buf, size_t size)
{
    /* Largest unit that divides exactly, so format(parse(x)) is canonical. */
    for (size_t i = DUET_ARRAY_SIZE(units); i-- > 1;) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, size, "%lld%s", (long long)(ms / units[i].ms), units[i].suffix);
            return buf;
        }
    }
    if (ms == 0) {
        snprintf(buf, size, "0s");
        return buf;
    }
    snprintf(buf, size, "%lldms", (long long)ms);
    return buf;
}
