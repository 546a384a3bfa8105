/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static void die(const char *what)
{
    perror(what);
    abort();
}

void tl_tmpdir(char *buf, size_t size)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(buf, size, "%s/duet-test.XXXXXX", base && *base ? base : "/tmp");

    if (n < 0 || (size_t)n >= size || !mkdtemp(buf))
        die("mkdtemp");
}

void tl_rmrf(const char *path)
{
    if (tl_sh(NULL, 0, "rm -rf -- '%s'", path) != 0)
        die("rm -rf");
}

char *tl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0, n = 0, r;

    if (!f)
        return NULL;
    do {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            data = realloc(data, cap);
            if (!data)
                die("realloc");
        }
        r = fread(data + n, 1, cap - n - 1, f);
        n += r;
    } while (r > 0);
    fclose(f);
    data[n] = '\0';
    if (len)
        *len = n;
    return data;
}

void tl_write_file(const char *path, const void *data, size_t len, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    if (fd == -1 || write(fd, data, len) != (ssize_t)len || close(fd) == -1)
        die(path);
}

const char *tl_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        die("tl_path: truncated");
    return buf;
}

int tl_sh(char *out, size_t out_size, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    FILE *p;
    size_t n = 0;
    int st, c;

    va_start(ap, fmt);
    c = vsnprintf(cmd, sizeof(cmd) - 8, fmt, ap);
    va_end(ap);
    if (c < 0 || (size_t)c >= sizeof(cmd) - 8)
        die("tl_sh: command too long");
    memcpy(cmd + c, " 2>&1", 6);
    p = popen(cmd, "r");
    if (!p)
        die("popen");
    while ((c = fgetc(p)) != EOF) {
        if (out && n + 1 < out_size)
            out[n++] = (char)c;
    }
    if (out && out_size)
        out[n] = '\0';
    st = pclose(p);
    if (st == -1)
        die("pclose");
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}
