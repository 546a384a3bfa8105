/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent/src/cli.c: the flag parser, name/day checks, passphrase files and
 * the all-or-nothing output writer, on real files in a temp folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "duet/alloc.h"
#include "duet/log.h"
#include "testlib.h"

static char dir[256];

static int setup(void **state)
{
    tl_tmpdir(dir, sizeof(dir));
    return 0;
}

static int teardown(void **state)
{
    tl_rmrf(dir);
    return 0;
}

static int entries(const char *d)
{
    char out[64];

    tl_sh(out, sizeof(out), "ls -A '%s' | wc -l", d);
    return (int)strtol(out, NULL, 10);
}

/* A writable argv (the parser takes char **, as main gets it). */
static char **args(int n, const char *const *src)
{
    static char store[16][64];
    static char *av[17];

    for (int i = 0; i < n; i++) {
        snprintf(store[i], sizeof(store[i]), "%s", src[i]);
        av[i] = store[i];
    }
    av[n] = NULL;
    return av;
}

static void cli_parse__values_lists_bools_and_positionals(void **state)
{
    const char *env = NULL, *pos[2];
    bool force = false;
    struct duet_flag_list dns = {0};
    const struct duet_flag flags[] = {{"env", DUET_FLAG_STR, &env, NULL},
                                      {"force", DUET_FLAG_BOOL, &force, NULL},
                                      {"dns", DUET_FLAG_LIST, &dns, NULL},
                                      {NULL, 0, NULL, NULL}};
    const char *const argv[] = {"cmd",   "--env=dev", "p1",          "--dns", "a",  "--force",
                                "--dns", "b",         "--log-level", "debug", "--", "--p2"};
    struct duet_errbuf eb = {{0}};
    size_t n;

    assert_int_equal(ag_cli_parse(12, args(12, argv), flags, "", pos, 2, &n, &eb), 0);
    assert_string_equal(env, "dev");
    assert_true(force);
    assert_int_equal(dns.n, 2);
    assert_string_equal(dns.v[1], "b");
    assert_int_equal(n, 2);
    assert_string_equal(pos[1], "--p2");
    assert_int_equal(duet_log_get_level(), DUET_LOG_DEBUG);
    duet_log_set_level(DUET_LOG_INFO);
}

static void cli_parse__refuses_unknown_missing_twice_and_bad_level(void **state)
{
    const char *env = NULL;
    bool force = false;
    const struct duet_flag flags[] = {{"env", DUET_FLAG_STR, &env, NULL},
                                      {"force", DUET_FLAG_BOOL, &force, NULL},
                                      {NULL, 0, NULL, NULL}};
    struct {
        int argc;
        const char *argv[4];
        const char *word;
    } cases[] = {
        {2, {"cmd", "--nope"}, "--nope"},
        {2, {"cmd", "--env"}, "needs a value"},
        {3, {"cmd", "--env=a", "--env=b"}, "twice"},
        {2, {"cmd", "--force=yes"}, "no value"},
        {3, {"cmd", "--log-level", "loud"}, "loud"},
        {2, {"cmd", "extra"}, "extra"},
    };

    for (size_t i = 0; i < DUET_ARRAY_SIZE(cases); i++) {
        struct duet_errbuf eb = {{0}};
        size_t n;

        env = NULL;
        assert_int_equal(ag_cli_parse(cases[i].argc, args(cases[i].argc, cases[i].argv), flags, "",
                                      NULL, 0, &n, &eb),
                         DUET_E_USAGE);
        assert_non_null(strstr(eb.msg, cases[i].word));
    }
}

static void cli_check_name_and_days__bounds(void **state)
{
    struct duet_errbuf eb = {{0}};
    int64_t d;

    assert_int_equal(ag_cli_check_name("env", "dev-1", &eb), 0);
    assert_int_equal(ag_cli_check_name("env", "dev_1", &eb), DUET_E_USAGE);
    assert_int_equal(ag_cli_check_name("env", "", NULL), DUET_E_USAGE);
    assert_int_equal(ag_cli_check_name("env", NULL, NULL), DUET_E_USAGE);
    assert_int_equal(ag_cli_parse_days("days", "365", &d, NULL), 0);
    assert_int_equal(d, 365);
    assert_int_equal(ag_cli_parse_days("days", "0", &d, NULL), DUET_E_USAGE);
    assert_int_equal(ag_cli_parse_days("days", "12x", &d, NULL), DUET_E_USAGE);
    assert_int_equal(ag_cli_parse_days("days", "36501", &d, NULL), DUET_E_USAGE);
}

static void cli_read_pass__first_line_and_empty_refused(void **state)
{
    char path[512];
    char *pass;
    size_t len;
    struct duet_errbuf eb = {{0}};

    tl_write_file(tl_path(path, sizeof(path), "%s/p", dir), "s3cr3t\r\nsecond\n", 15, 0600);
    assert_int_equal(ag_cli_read_pass(path, &pass, &len, &eb), 0);
    assert_string_equal(pass, "s3cr3t");
    assert_int_equal(len, 6);
    duet_secret_free(pass, len + 1);
    tl_write_file(path, "\n", 1, 0600);
    assert_int_equal(ag_cli_read_pass(path, &pass, &len, &eb), DUET_E_PASSPHRASE);
    assert_non_null(strstr(eb.msg, "empty"));
}

static void out_commit__all_files_placed_with_modes(void **state)
{
    struct ag_out o;
    char sub[512];
    struct stat st;

    tl_path(sub, sizeof(sub), "%s/a/b", dir);
    assert_int_equal(ag_out_init(&o, sub, false, NULL), 0);
    assert_int_equal(ag_out_add(&o, "k", "key", 3, 0600, NULL), 0);
    assert_int_equal(ag_out_add(&o, "c", "crt", 3, 0644, NULL), 0);
    assert_int_equal(entries(sub), 2); /* hidden temporaries only */
    assert_int_equal(ag_out_commit(&o, NULL), 0);
    assert_int_equal(stat(ag_out_path(&o, 0), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(ag_out_path(&o, 1), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(entries(sub), 2);
}

static void out_commit__file_appearing_meanwhile_rolls_everything_back(void **state)
{
    struct ag_out o;
    char path[600];
    struct duet_errbuf eb = {{0}};
    size_t len;
    char *kept;

    assert_int_equal(ag_out_init(&o, dir, false, NULL), 0);
    assert_int_equal(ag_out_add(&o, "first", "1", 1, 0600, NULL), 0);
    assert_int_equal(ag_out_add(&o, "second", "2", 1, 0600, NULL), 0);
    /* Someone else creates "second" between the check and the commit. */
    tl_write_file(tl_path(path, sizeof(path), "%s/second", dir), "theirs", 6, 0644);
    assert_int_equal(ag_out_commit(&o, &eb), DUET_E_USAGE);
    assert_non_null(strstr(eb.msg, "already exists"));
    assert_int_equal(entries(dir), 1); /* only theirs: "first" taken back, temporaries gone */
    kept = tl_read_file(path, &len);
    assert_string_equal(kept, "theirs");
    free(kept);
    /* An existing name is refused up front, and --force replaces it. */
    assert_int_equal(ag_out_add(&o, "second", "2", 1, 0600, NULL), DUET_E_USAGE);
    assert_int_equal(ag_out_init(&o, dir, true, NULL), 0);
    assert_int_equal(ag_out_add(&o, "second", "2", 1, 0600, NULL), 0);
    assert_int_equal(ag_out_commit(&o, NULL), 0);
    kept = tl_read_file(path, &len);
    assert_string_equal(kept, "2");
    free(kept);
}

static void out_abort__removes_temporaries(void **state)
{
    struct ag_out o;

    assert_int_equal(ag_out_init(&o, dir, false, NULL), 0);
    assert_int_equal(ag_out_add(&o, "x", "1", 1, 0600, NULL), 0);
    ag_out_abort(&o);
    assert_int_equal(entries(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cli_parse__values_lists_bools_and_positionals),
        cmocka_unit_test(cli_parse__refuses_unknown_missing_twice_and_bad_level),
        cmocka_unit_test(cli_check_name_and_days__bounds),
        cmocka_unit_test_setup_teardown(cli_read_pass__first_line_and_empty_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(out_commit__all_files_placed_with_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(out_commit__file_appearing_meanwhile_rolls_everything_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(out_abort__removes_temporaries, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
