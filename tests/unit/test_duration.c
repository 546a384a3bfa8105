/* SPDX-License-Identifier: Apache-2.0 */
/* duration: the strict "<digits><unit>" parser and its canonical formatter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "duet/duration.h"
#include "duet/err.h"

static int64_t parse_ok(const char *s)
{
    int64_t ms = -1;

    assert_int_equal(duet_duration_parse(s, &ms), 0);
    return ms;
}

static void duration_parse__accepts_every_unit(void **state)
{
    assert_int_equal(parse_ok("250ms"), 250);
    assert_int_equal(parse_ok("90s"), 90000);
    assert_int_equal(parse_ok("30m"), 1800000);
    assert_int_equal(parse_ok("12h"), 43200000);
    assert_int_equal(parse_ok("365d"), 365LL * 86400000);
    assert_int_equal(parse_ok("0s"), 0);
    assert_int_equal(parse_ok("007s"), 7000);
}

static void duration_parse__refuses_garbage(void **state)
{
    static const char *const bad[] = {
        "",     "s",   "12",    "12x",   "12 s", " 12s",  "12s ", "-5m",  "+5m", "1.5h",
        "1d2h", "12S", "12sec", "0x10s", "ms",   "12mss", "d365", "\t1s", "1\n",
    };
    int64_t ms = 42;

    for (size_t i = 0; i < DUET_ARRAY_SIZE(bad); i++) {
        assert_int_equal(duet_duration_parse(bad[i], &ms), DUET_E_DURATION);
        assert_int_equal(ms, 42); /* untouched on failure */
    }
    assert_int_equal(duet_duration_parse(NULL, &ms), DUET_E_DURATION);
}

static void duration_parse__refuses_overflow(void **state)
{
    int64_t ms;

    /* INT64_MAX ms parses; one more digit or a unit that multiplies past it does not. */
    assert_int_equal(parse_ok("9223372036854775807ms"), INT64_MAX);
    assert_int_equal(duet_duration_parse("9223372036854775808ms", &ms), DUET_E_DURATION);
    assert_int_equal(duet_duration_parse("99999999999999999999999s", &ms), DUET_E_DURATION);
    assert_int_equal(duet_duration_parse("9223372036854776s", &ms), DUET_E_DURATION);
    assert_int_equal(duet_duration_parse("106751991168d", &ms), DUET_E_DURATION);
    assert_int_equal(parse_ok("106751991167d"), 106751991167LL * 86400000);
}

static void duration_format__shortest_exact_unit(void **state)
{
    char buf[32];

    assert_string_equal(duet_duration_format(365LL * 86400000, buf, sizeof(buf)), "365d");
    assert_string_equal(duet_duration_format(90000, buf, sizeof(buf)), "90s");
    assert_string_equal(duet_duration_format(1500, buf, sizeof(buf)), "1500ms");
    assert_string_equal(duet_duration_format(7200000, buf, sizeof(buf)), "2h");
    assert_string_equal(duet_duration_format(0, buf, sizeof(buf)), "0s");
    assert_int_equal(parse_ok(duet_duration_format(123456789, buf, sizeof(buf))), 123456789);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duration_parse__accepts_every_unit),
        cmocka_unit_test(duration_parse__refuses_garbage),
        cmocka_unit_test(duration_parse__refuses_overflow),
        cmocka_unit_test(duration_format__shortest_exact_unit),
    };

    return cmocka_run_group_tests_name("duration", tests, NULL, NULL);
}
