/* SPDX-License-Identifier: Apache-2.0 */
/* System clocks, or a fake pair that tests move; see clock.h. */
#include <stdbool.h>
#include <time.h>

#include "duet/clock.h"

static bool fake;
static int64_t fake_real;
static int64_t fake_mono;

static int64_t read_clock(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t duet_clock_real_ms(void)
{
    return fake ? fake_real : read_clock(CLOCK_REALTIME);
}

int64_t duet_clock_mono_ms(void)
{
    return fake ? fake_mono : read_clock(CLOCK_MONOTONIC);
}

void duet_clock_fake(int64_t real_ms)
{
    fake = true;
    fake_real = real_ms;
    fake_mono = 1000000000;
}

void duet_clock_advance(int64_t ms)
{
    fake_real += ms;
    fake_mono += ms;
}

void duet_clock_jump(int64_t ms)
{
    fake_real += ms;
}

void duet_clock_unfake(void)
{
    fake = false;
}
