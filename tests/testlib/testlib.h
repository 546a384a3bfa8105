/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only helpers: throwaway folders, whole-file I/O, and running real
 * peers (the openssl CLI) through the shell. Failures abort the test with a
 * message: a helper that fails means the test environment is broken.
 */
#ifndef DUET_TESTLIB_H
#define DUET_TESTLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* mkdtemp under $TMPDIR (or /tmp); path is written to buf. */
void tl_tmpdir(char *buf, size_t size);
/* rm -rf, for teardown. */
void tl_rmrf(const char *path);
/* Read a whole file (NUL-terminated, caller frees with free()); NULL if missing. */
char *tl_read_file(const char *path, size_t *len);
void tl_write_file(const char *path, const void *data, size_t len, int mode);
/* snprintf into a static-free caller buffer; aborts on truncation. */
const char *tl_path(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Run a shell command (stdout+stderr captured into `out` when non-NULL,
 * NUL-terminated and truncated to out_size). Returns the exit status, or
 * 128+signal.
 */
int tl_sh(char *out, size_t out_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
