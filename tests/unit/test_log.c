/* SPDX-License-Identifier: Apache-2.0 */
/* log, err and clock: the small pieces everything else reports through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/err.h"
#include "duet/log.h"

static char *capture(enum duet_log_level set, enum duet_log_level at, const char *msg)
{
    static char out[4096];
    FILE *f = fmemopen(out, sizeof(out), "w");

    assert_non_null(f);
    memset(out, 0, sizeof(out));
    duet_log_set_level(set);
    duet_log_set_stream(f);
    duet_log(at, "test", "k=v msg=%s", msg);
    duet_log_set_stream(NULL);
    fclose(f);
    return out;
}

static void log__writes_one_key_value_line(void **state)
{
    const char *line = capture(DUET_LOG_INFO, DUET_LOG_WARN, "\"hello\"");

    assert_non_null(strstr(line, "level=warn subsys=test k=v msg=\"hello\"\n"));
    assert_int_equal(strncmp(line, "ts=", 3), 0);
    assert_non_null(strchr(line, 'Z'));
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1); /* exactly one line */
}

static void log__filters_below_level(void **state)
{
    assert_string_equal(capture(DUET_LOG_WARN, DUET_LOG_INFO, "x"), "");
    assert_string_equal(capture(DUET_LOG_ERROR, DUET_LOG_DEBUG, "x"), "");
    assert_string_not_equal(capture(DUET_LOG_DEBUG, DUET_LOG_DEBUG, "x"), "");
}

static void log_parse_level__accepts_names_refuses_garbage(void **state)
{
    enum duet_log_level l;

    assert_int_equal(duet_log_parse_level("debug", &l), 0);
    assert_int_equal(l, DUET_LOG_DEBUG);
    assert_int_equal(duet_log_parse_level("WARN", &l), 0);
    assert_int_equal(l, DUET_LOG_WARN);
    assert_int_equal(duet_log_parse_level("verbose", &l), DUET_E_USAGE);
    assert_int_equal(duet_log_parse_level("", &l), DUET_E_USAGE);
}

static void log_init_from_env__reads_duet_log_level(void **state)
{
    duet_log_set_level(DUET_LOG_INFO);
    setenv("DUET_LOG_LEVEL", "error", 1);
    assert_int_equal(duet_log_init_from_env(), 0);
    assert_int_equal(duet_log_get_level(), DUET_LOG_ERROR);
    setenv("DUET_LOG_LEVEL", "loud", 1);
    assert_int_equal(duet_log_init_from_env(), DUET_E_USAGE);
    assert_int_equal(duet_log_get_level(), DUET_LOG_ERROR);
    unsetenv("DUET_LOG_LEVEL");
    duet_log_set_level(DUET_LOG_INFO);
}

static void log_quote__escapes_and_truncates(void **state)
{
    char buf[16];

    assert_string_equal(duet_log_quote(buf, sizeof(buf), "a\"b\\c\n"), "\"a\\\"b\\\\c?\"");
    duet_log_quote(buf, sizeof(buf), "0123456789abcdefghij");
    assert_true(strlen(buf) < sizeof(buf));
    assert_int_equal(buf[strlen(buf) - 1], '"');
}

static void err__names_messages_and_classes(void **state)
{
    assert_string_equal(duet_err_name(DUET_E_PEM), "DUET_E_PEM");
    assert_string_equal(duet_err_name(DUET_ENOENT), "ENOENT");
    assert_string_equal(duet_strerror(DUET_E_PASSPHRASE), "wrong or missing passphrase");
    assert_int_equal(duet_err_class(DUET_EAGAIN), DUET_ERRC_AGAIN);
    assert_int_equal(duet_err_class(DUET_E_CFG_TYPE), DUET_ERRC_CONFIG);
    assert_int_equal(duet_err_class(DUET_EOF), DUET_ERRC_CLOSED);
    assert_int_equal(duet_err_exit_status(DUET_E_CFG_TYPE), 2);
    assert_int_equal(duet_err_exit_status(DUET_E_PEM), 1);
    assert_int_equal(duet_err_exit_status(0), 0);
}

static void errf__first_message_wins(void **state)
{
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    assert_int_equal(duet_errf(&eb, DUET_E_PEM, "inner %d", 1), DUET_E_PEM);
    assert_int_equal(duet_errf(&eb, DUET_E_INTERNAL, "outer"), DUET_E_INTERNAL);
    assert_string_equal(eb.msg, "inner 1");
    assert_int_equal(duet_errf(NULL, -5, "x"), -5);
}

static void clock__fake_advance_and_jump(void **state)
{
    duet_clock_fake(1000000);
    int64_t m0 = duet_clock_mono_ms();

    duet_clock_advance(500);
    assert_int_equal(duet_clock_real_ms(), 1000500);
    assert_int_equal(duet_clock_mono_ms() - m0, 500);
    duet_clock_jump(-100000);
    assert_int_equal(duet_clock_real_ms(), 900500);
    assert_int_equal(duet_clock_mono_ms() - m0, 500);
    assert_int_equal(duet_clock_now(), 900);
    duet_clock_unfake();
    assert_true(duet_clock_now() > 1700000000);
}

static void alloc__fails_after_n(void **state)
{
    void *a, *b;

    duet_alloc_fail_after(1);
    a = duet_malloc(8);
    b = duet_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_int_equal(duet_alloc_fail_after(-1), 2);
    DUET_FREE(a);
    assert_null(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log__writes_one_key_value_line),
        cmocka_unit_test(log__filters_below_level),
        cmocka_unit_test(log_parse_level__accepts_names_refuses_garbage),
        cmocka_unit_test(log_init_from_env__reads_duet_log_level),
        cmocka_unit_test(log_quote__escapes_and_truncates),
        cmocka_unit_test(err__names_messages_and_classes),
        cmocka_unit_test(errf__first_message_wins),
        cmocka_unit_test(clock__fake_advance_and_jump),
        cmocka_unit_test(alloc__fails_after_n),
    };

    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
