/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small files, read whole, and "has this file changed" signatures: the one
 * way every duet module reads a configuration, PEM, CRL or key file and
 * decides whether to read it again (STYLE.md 2, socket and file
 * boilerplate in small common helpers, as redis src/anet.c does for
 * sockets). Blocking: not for the sidecar's data path.
 */
#ifndef DUET_FILE_H
#define DUET_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "duet/compiler.h"

/*
 * Read all of a regular file, at most `max` bytes (st_size is only a hint:
 * a file that grows past max while it is read is refused too). *buf is a
 * NUL-terminated duet_malloc buffer (*len excludes the NUL), owned by the
 * caller, who releases it with duet_file_free: every buffer may hold a key,
 * so it is cleansed on every path that frees it. Returns 0, -errno,
 * DUET_EINVAL (not a regular file), DUET_E_TOOBIG or DUET_ENOMEM; on
 * failure nothing is left to free.
 */
int duet_file_read(const char *path, size_t max, char **buf, size_t *len) DUET_MUST_CHECK;
/* The same for an open descriptor (borrowed, not closed). */
int duet_file_read_fd(int fd, size_t max, char **buf, size_t *len) DUET_MUST_CHECK;
/* Cleanse and free what duet_file_read returned. Accepts NULL. */
void duet_file_free(char *buf, size_t len);

/*
 * What identifies one version of a file without reading it: device,
 * inode, size, mtime and ctime (a rename, a rewrite, a chmod all show). A
 * missing file is all zeros, a state like any other.
 */
struct duet_file_sig {
    uint64_t dev, ino, size;
    int64_t mtime_ns, ctime_ns;
};

/* stat(2) path, following symlinks; path NULL gives the missing-file signature. */
void duet_file_sig_get(const char *path, struct duet_file_sig *out);
void duet_file_sig_from_stat(const struct stat *st, struct duet_file_sig *out);
bool duet_file_sig_equal(const struct duet_file_sig *a, const struct duet_file_sig *b);

#endif
