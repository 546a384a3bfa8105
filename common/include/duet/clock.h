/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one source of time. Wall-clock time decides certificate validity and
 * renewal; monotonic time drives timeouts. Tests replace both with a fake
 * clock they move by hand, including wall-clock jumps that the monotonic
 * clock does not see (a suspended node, an NTP step).
 */
#ifndef DUET_CLOCK_H
#define DUET_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t duet_clock_real_ms(void);
/* Milliseconds on CLOCK_MONOTONIC; only differences mean anything. */
int64_t duet_clock_mono_ms(void);
/* Seconds since the epoch, for X.509 validity. */
static inline time_t duet_clock_now(void)
{
    return (time_t)(duet_clock_real_ms() / 1000);
}

/* Test hooks: freeze both clocks at real_ms (monotonic starts at 1e9 ms). */
void duet_clock_fake(int64_t real_ms);
/* Move both clocks forward. */
void duet_clock_advance(int64_t ms);
/* Move only the wall clock (either way): a clock jump. */
void duet_clock_jump(int64_t ms);
/* Return to the system clocks. */
void duet_clock_unfake(void);

#endif
