/* SPDX-License-Identifier: Apache-2.0 */
/* The table-driven flag parser (common/src/flags.c) that all three commands use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "duet/err.h"
#include "duet/flags.h"

struct fx {
    const char *name;
    bool quiet;
    struct duet_flag_list tags;
    int level;
};

static int level_fn(void *dst, const char *flag, const char *v, struct duet_errbuf *eb)
{
    if (strcmp(v, "1") != 0 && strcmp(v, "2") != 0)
        return duet_errf(eb, DUET_E_USAGE, "%s '%s': 1 or 2", flag, v);
    *(int *)dst = v[0] - '0';
    return 0;
}

/* Parse src (NULL-terminated, argv[0] included) into f; pos gets 2 at most.
 * Values point into a static copy, valid until the next call. */
static int parse(struct fx *f, bool *seen, const char **pos, size_t *n_pos, struct duet_errbuf *eb,
                 const char *const *src)
{
    static char store[16][32];
    static char *argv[17];
    const struct duet_flag flags[] = {
        {"name", DUET_FLAG_STR, &f->name, NULL},
        {"quiet", DUET_FLAG_BOOL, &f->quiet, NULL},
        {"tag", DUET_FLAG_LIST, &f->tags, NULL},
        {"level", DUET_FLAG_FN, &f->level, level_fn},
        {NULL, 0, NULL, NULL},
    };
    int argc = 0;

    for (; src[argc]; argc++) {
        snprintf(store[argc], sizeof(store[argc]), "%s", src[argc]);
        argv[argc] = store[argc];
    }
    argv[argc] = NULL;
    memset(f, 0, sizeof(*f));
    duet_errbuf_clear(eb);
    return duet_flags_parse(argc, argv, flags, seen, pos, 2, n_pos, eb);
}

static void flags_parse__routes_every_kind_by_the_table(void **state)
{
    static const char *const argv[] = {"cmd",     "--name=a", "p1", "--tag", "x",    "--quiet",
                                       "--tag=y", "--level",  "2",  "--",    "--p2", NULL};
    bool seen[5] = {false};
    const char *pos[2];
    struct duet_errbuf eb;
    struct fx f;
    size_t n;

    (void)state;
    assert_int_equal(parse(&f, seen, pos, &n, &eb, argv), 0);
    assert_string_equal(f.name, "a");
    assert_true(f.quiet);
    assert_int_equal(f.tags.n, 2);
    assert_string_equal(f.tags.v[1], "y");
    assert_int_equal(f.level, 2);
    assert_int_equal(n, 2);
    assert_string_equal(pos[0], "p1");
    assert_string_equal(pos[1], "--p2"); /* after "--", flags are arguments */
    assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
}

static void flags_parse__refuses_and_names_the_flag(void **state)
{
    static const char *const twice[] = {"cmd", "--name", "a", "--name", "b", NULL};
    static const char *const bool_value[] = {"cmd", "--quiet=yes", NULL};
    static const char *const no_value[] = {"cmd", "--name", NULL};
    static const char *const unknown[] = {"cmd", "--frobnicate", NULL};
    static const char *const bad_fn[] = {"cmd", "--level", "3", NULL};
    static const char *const extra[] = {"cmd", "a", "b", "c", NULL};
    static const char *const *const cases[] = {twice, bool_value, no_value, unknown, bad_fn, extra};
    static const char *words[] = {"--name", "--quiet", "--name", "--frobnicate", "--level", "c"};
    const char *pos[2];
    struct duet_errbuf eb;
    struct fx f;
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(parse(&f, NULL, pos, &n, &eb, cases[i]), DUET_E_USAGE);
        assert_non_null(strstr(eb.msg, words[i]));
    }
}

static void flags_parse__help_and_set(void **state)
{
    static const char *const help[] = {"cmd", "--name", "a", "--help", NULL};
    static const char *const h[] = {"cmd", "-h", NULL};
    const struct duet_flag level = {"level", DUET_FLAG_FN, NULL, level_fn};
    const char *pos[2];
    struct duet_errbuf eb;
    struct fx f;
    size_t n;
    int v = 0;

    (void)state;
    assert_int_equal(parse(&f, NULL, pos, &n, &eb, help), DUET_FLAGS_HELP);
    assert_int_equal(parse(&f, NULL, pos, &n, &eb, h), DUET_FLAGS_HELP);
    /* duet_flag_set stores a value as the parser would: environment and defaults. */
    struct duet_flag with_dst = level;
    with_dst.dst = &v;
    assert_int_equal(duet_flag_set(&with_dst, "1", &eb), 0);
    assert_int_equal(v, 1);
    assert_int_equal(duet_flag_set(&with_dst, "9", &eb), DUET_E_USAGE);
    assert_non_null(strstr(eb.msg, "--level"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flags_parse__routes_every_kind_by_the_table),
        cmocka_unit_test(flags_parse__refuses_and_names_the_flag),
        cmocka_unit_test(flags_parse__help_and_set),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
