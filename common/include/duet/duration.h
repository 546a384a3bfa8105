/* SPDX-License-Identifier: Apache-2.0 */
/* Durations as written in configuration and flags: 90s, 30m, 12h, 365d, 250ms. */
#ifndef DUET_DURATION_H
#define DUET_DURATION_H

#include <stddef.h>
#include <stdint.h>

#include "duet/compiler.h"

/*
 * Parse "<digits><unit>" with unit ms, s, m, h or d into milliseconds.
 * Refuses (DUET_E_DURATION) empty input, a missing or unknown unit, signs,
 * spaces, fractions, trailing garbage and anything that overflows int64 ms.
 */
int duet_duration_parse(const char *s, int64_t *out_ms) DUET_MUST_CHECK;
/* Shortest exact form ("365d", "90s", "1500ms"). Returns buf. */
const char *duet_duration_format(int64_t ms, char *buf, size_t size);

#endif
