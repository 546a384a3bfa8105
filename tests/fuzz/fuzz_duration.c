/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for duration parsing ("90s", "365d"), used by every
 * configuration field and sidecar flag that takes a time: no input may
 * crash it or overflow, and what it accepts must format and parse back to
 * the same value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duet/duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[64], out[64];
    int64_t ms, back;

    if (size >= sizeof(in))
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    if (duet_duration_parse(in, &ms) < 0)
        return 0;
    if (ms < 0)
        abort();
    duet_duration_format(ms, out, sizeof(out));
    if (duet_duration_parse(out, &back) < 0 || back != ms)
        abort();
    return 0;
}
