/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole-file reads with a size cap and cleansing, and file signatures; see
 * duet/file.h. Callers word their own messages: the codes say what failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/err.h"
#include "duet/file.h"

void duet_file_free(char *buf, size_t len)
{
    if (!buf)
        return;
    explicit_bzero(buf, len + 1);
    duet_free(buf);
}

/* A bigger buffer for a file that grew: copy and cleanse, never realloc (secrets). */
static int grow(char **buf, size_t len, size_t *cap, size_t max)
{
    size_t ncap = DUET_MIN(*cap * 2, max + 2);
    char *nb = duet_malloc(ncap);

    if (!nb)
        return DUET_ENOMEM;
    memcpy(nb, *buf, len);
    duet_file_free(*buf, *cap - 1);
    *buf = nb;
    *cap = ncap;
    return 0;
}

int duet_file_read_fd(int fd, size_t max, char **out, size_t *out_len)
{
    struct stat st;
    size_t cap, len = 0;
    char *buf;
    int rc = 0;

    if (fstat(fd, &st) == -1)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return DUET_EINVAL;
    if ((uint64_t)st.st_size > max)
        return DUET_E_TOOBIG;
    /* One byte more than the file, so that EOF is seen without a second buffer. */
    cap = (size_t)st.st_size + 2;
    buf = duet_malloc(cap);
    if (!buf)
        return DUET_ENOMEM;
    for (;;) {
        ssize_t r;

        if (len + 1 == cap) {
            if (len > max)
                break;
            rc = grow(&buf, len, &cap, max);
            if (rc < 0)
                break;
        }
        r = read(fd, buf + len, cap - 1 - len);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            rc = -errno;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    if (rc == 0 && len > max)
        rc = DUET_E_TOOBIG;
    if (rc < 0) {
        duet_file_free(buf, cap - 1);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

int duet_file_read(const char *path, size_t max, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    int rc;

    if (fd == -1)
        return -errno;
    rc = duet_file_read_fd(fd, max, buf, len);
    close(fd);
    return rc;
}

void duet_file_sig_from_stat(const struct stat *st, struct duet_file_sig *out)
{
    memset(out, 0, sizeof(*out));
    out->dev = (uint64_t)st->st_dev;
    out->ino = (uint64_t)st->st_ino;
    out->size = (uint64_t)st->st_size;
    out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    out->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

void duet_file_sig_get(const char *path, struct duet_file_sig *out)
{
    struct stat st;

    if (!path || stat(path, &st) == -1) {
        memset(out, 0, sizeof(*out));
        return;
    }
    duet_file_sig_from_stat(&st, out);
}

bool duet_file_sig_equal(const struct duet_file_sig *a, const struct duet_file_sig *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}
