/* SPDX-License-Identifier: Apache-2.0 */
/* The one whole-file reader and file signature (common/src/file.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "duet/err.h"
#include "duet/file.h"
#include "testlib.h"

static void file_read__whole_file_nul_terminated(void **state)
{
    char dir[256], path[300], *buf = NULL;
    size_t len = 0;

    (void)state;
    tl_tmpdir(dir, sizeof(dir));
    tl_write_file(tl_path(path, sizeof(path), "%s/a", dir), "hello\n", 6, 0600);
    assert_int_equal(duet_file_read(path, 6, &buf, &len), 0);
    assert_int_equal(len, 6);
    assert_string_equal(buf, "hello\n");
    duet_file_free(buf, len);
    /* An empty file is a valid, empty buffer. */
    tl_write_file(path, "", 0, 0600);
    assert_int_equal(duet_file_read(path, 6, &buf, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    duet_file_free(buf, len);
    duet_file_free(NULL, 0);
    tl_rmrf(dir);
}

static void file_read__refuses_oversized_missing_and_non_regular(void **state)
{
    char dir[256], path[300], *buf = NULL;
    size_t len = 0;

    (void)state;
    tl_tmpdir(dir, sizeof(dir));
    tl_write_file(tl_path(path, sizeof(path), "%s/a", dir), "1234567", 7, 0600);
    assert_int_equal(duet_file_read(path, 6, &buf, &len), DUET_E_TOOBIG);
    assert_int_equal(duet_file_read(dir, 6, &buf, &len), DUET_EINVAL);
    tl_path(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(duet_file_read(path, 6, &buf, &len), -ENOENT);
    assert_null(buf);
    tl_rmrf(dir);
}

static void file_sig__sees_rewrite_rename_and_absence(void **state)
{
    char dir[256], path[300], other[300];
    struct duet_file_sig a, b, none = {0};

    (void)state;
    tl_tmpdir(dir, sizeof(dir));
    tl_path(path, sizeof(path), "%s/a", dir);
    duet_file_sig_get(path, &a);
    assert_true(duet_file_sig_equal(&a, &none));
    duet_file_sig_get(NULL, &a);
    assert_true(duet_file_sig_equal(&a, &none));
    tl_write_file(path, "one", 3, 0600);
    duet_file_sig_get(path, &a);
    duet_file_sig_get(path, &b);
    assert_true(duet_file_sig_equal(&a, &b));
    tl_write_file(path, "two!", 4, 0600); /* another size */
    duet_file_sig_get(path, &b);
    assert_false(duet_file_sig_equal(&a, &b));
    /* Same size, replaced by rename (as a writer that swaps files does): another inode. */
    a = b;
    tl_write_file(tl_path(other, sizeof(other), "%s/b", dir), "two?", 4, 0600);
    assert_int_equal(rename(other, path), 0);
    duet_file_sig_get(path, &b);
    assert_false(duet_file_sig_equal(&a, &b));
    tl_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_read__whole_file_nul_terminated),
        cmocka_unit_test(file_read__refuses_oversized_missing_and_non_regular),
        cmocka_unit_test(file_sig__sees_rewrite_rename_and_absence),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
