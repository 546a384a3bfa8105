/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flag parsing, input checks and the all-or-nothing output writer for the
 * one-shot commands. The daemon (`run`) has its own configuration path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#include "duet/alloc.h"
#include "duet/log.h"
#include "duet/pki.h"

static int apply_log_level(void *dst, const char *flag, const char *v, struct duet_errbuf *eb)
{
    enum duet_log_level lvl;

    (void)dst;
    if (duet_log_parse_level(v, &lvl) < 0)
        return duet_errf(eb, DUET_E_USAGE, "%s \"%s\": use error, warn, info or debug", flag, v);
    duet_log_set_level(lvl);
    return 0;
}

int ag_cli_parse(int argc, char **argv, const struct duet_flag *flags, const char *usage,
                 const char **pos, size_t max_pos, size_t *n_pos, struct duet_errbuf *eb)
{
    struct duet_flag all[AG_CLI_MAX_FLAGS + 2];
    size_t n = 0;
    int rc;

    *n_pos = 0;
    /* DUET_LOG_LEVEL first, so that --log-level (parsed below) wins. */
    if (duet_log_init_from_env() < 0)
        return duet_errf(eb, DUET_E_USAGE, "DUET_LOG_LEVEL: use error, warn, info or debug");
    for (; flags[n].name; n++) {
        DUET_BUG_ON(n == AG_CLI_MAX_FLAGS);
        all[n] = flags[n];
    }
    all[n++] = (struct duet_flag){"log-level", DUET_FLAG_FN, NULL, apply_log_level};
    all[n] = (struct duet_flag){NULL, 0, NULL, NULL};
    rc = duet_flags_parse(argc, argv, all, NULL, pos, max_pos, n_pos, eb);
    if (rc == DUET_FLAGS_HELP)
        fputs(usage, stdout);
    return rc;
}

int ag_cli_fail(const char *cmd, int rc, const struct duet_errbuf *eb)
{
    fprintf(stderr, "duet-agent %s: %s\n", cmd, eb && eb->msg[0] ? eb->msg : duet_strerror(rc));
    return duet_err_exit_status(rc);
}

int ag_cli_check_name(const char *what, const char *v, struct duet_errbuf *eb)
{
    size_t n = v ? strlen(v) : 0;

    if (n == 0)
        return duet_errf(eb, DUET_E_USAGE, "--%s is required", what);
    if (n > 63 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") != n)
        return duet_errf(eb, DUET_E_USAGE,
                         "--%s \"%s\": use only letters, digits and '-' (at most 63)", what, v);
    return 0;
}

int ag_cli_key_type(const char *v, const char *def, enum duet_key_type *out, struct duet_errbuf *eb)
{
    if (duet_key_type_parse(v ? v : def, out) < 0)
        return duet_errf(eb, DUET_E_KEY_TYPE,
                         "--key-type \"%s\": use rsa2048, rsa3072, "
                         "rsa4096, ec-p256 or ec-p384",
                         v);
    return 0;
}

int ag_cli_parse_days(const char *flag, const char *v, int64_t *days, struct duet_errbuf *eb)
{
    char *end = NULL;
    long long d;

    errno = 0;
    d = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end != '\0' || errno != 0 || d < 1 || d > 36500)
        return duet_errf(eb, DUET_E_USAGE, "--%s \"%s\": a whole number of days from 1 to 36500",
                         flag, v ? v : "");
    *days = d;
    return 0;
}

int ag_cli_read_pass(const char *path, char **pass, size_t *len, struct duet_errbuf *eb)
{
    char buf[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    size_t line;

    if (fd == -1)
        return duet_errf(eb, -errno, "passphrase file %s: %s", path, strerror(errno));
    do {
        n = read(fd, buf, sizeof(buf) - 1);
    } while (n == -1 && errno == EINTR);
    close(fd);
    if (n == -1)
        return duet_errf(eb, -errno, "passphrase file %s: %s", path, strerror(errno));
    buf[n] = '\0';
    line = strcspn(buf, "\r\n");
    buf[line] = '\0';
    if (line == 0) {
        explicit_bzero(buf, sizeof(buf));
        return duet_errf(eb, DUET_E_PASSPHRASE, "passphrase file %s is empty", path);
    }
    *pass = duet_strndup(buf, line);
    explicit_bzero(buf, sizeof(buf));
    if (!*pass)
        return DUET_ENOMEM;
    *len = line;
    return 0;
}

const char *ag_cli_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
    return buf;
}

/* ---- all-or-nothing output ---- */

static int mkdir_p(char *path, struct duet_errbuf *eb)
{
    for (char *s = path + 1;; s++) {
        char c = *s;

        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        if (mkdir(path, 0755) == -1 && errno != EEXIST) {
            int e = errno;

            *s = c;
            return duet_errf(eb, -e, "--out %s: cannot create: %s", path, strerror(e));
        }
        *s = c;
        if (c == '\0')
            return 0;
    }
}

int ag_out_init(struct ag_out *o, const char *dir, bool force, struct duet_errbuf *eb)
{
    struct stat st;
    int n;

    memset(o, 0, sizeof(*o));
    n = snprintf(o->dir, sizeof(o->dir), "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof(o->dir))
        return duet_errf(eb, DUET_E_USAGE, "--out: path too long");
    o->force = force;
    DUET_TRY(mkdir_p(o->dir, eb));
    if (stat(o->dir, &st) == -1 || !S_ISDIR(st.st_mode))
        return duet_errf(eb, DUET_E_USAGE, "--out %s is not a folder", o->dir);
    return 0;
}

int ag_out_check(const struct ag_out *o, const char *name, struct duet_errbuf *eb)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/%s", o->dir, name);
    if (!o->force && access(path, F_OK) == 0)
        return duet_errf(eb, DUET_E_USAGE, "%s already exists (use --force to replace it)", path);
    return 0;
}

int ag_out_check_names(const struct ag_out *o, const char *base, const char *const *exts, size_t n,
                       struct duet_errbuf *eb)
{
    char name[512];

    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s%s", base, exts[i]);
        DUET_TRY(ag_out_check(o, name, eb));
    }
    return 0;
}

int ag_out_add_ext(struct ag_out *o, const char *base, const char *ext, const void *data,
                   size_t len, mode_t mode, struct duet_errbuf *eb)
{
    char name[512];

    snprintf(name, sizeof(name), "%s%s", base, ext);
    return ag_out_add(o, name, data, len, mode, eb);
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1)
            return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int ag_out_add(struct ag_out *o, const char *name, const void *data, size_t len, mode_t mode,
               struct duet_errbuf *eb)
{
    int fd, rc = 0;

    char path[sizeof(o->f[0].final)];

    DUET_BUG_ON(o->n == AG_OUT_MAX);
    DUET_TRY(ag_out_check(o, name, eb));
    /* Through a local buffer: o->dir and o->f[] are one object to the compiler. */
    snprintf(path, sizeof(path), "%s/%s", o->dir, name);
    memcpy(o->f[o->n].final, path, sizeof(path));
    snprintf(path, sizeof(path), "%s/.%s.tmp.XXXXXX", o->dir, name);
    memcpy(o->f[o->n].tmp, path, sizeof(path));
    fd = mkostemp(o->f[o->n].tmp, O_CLOEXEC);
    if (fd == -1)
        return duet_errf(eb, -errno, "%s: cannot create: %s", o->f[o->n].tmp, strerror(errno));
    o->n++; /* from here on abort removes it */
    if (fchmod(fd, mode) == -1 || (rc = write_all(fd, data, len)) < 0 || fsync(fd) == -1)
        rc = rc < 0 ? rc : -errno;
    if (close(fd) == -1 && rc == 0)
        rc = -errno;
    if (rc < 0)
        return duet_errf(eb, rc, "%s: cannot write: %s", o->f[o->n - 1].final, strerror(-rc));
    return 0;
}

/* Never replace a file that appeared meanwhile, unless --force: RENAME_NOREPLACE. */
static int place(const struct ag_out *o, size_t i)
{
    if (o->force)
        return rename(o->f[i].tmp, o->f[i].final) == -1 ? -errno : 0;
    if (renameat2(AT_FDCWD, o->f[i].tmp, AT_FDCWD, o->f[i].final, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* A file system without RENAME_NOREPLACE: link() refuses to replace, too. */
    if (link(o->f[i].tmp, o->f[i].final) == -1)
        return -errno;
    unlink(o->f[i].tmp);
    return 0;
}

int ag_out_commit(struct ag_out *o, struct duet_errbuf *eb)
{
    int fd, rc;

    for (size_t i = 0; i < o->n; i++) {
        rc = place(o, i);
        if (rc < 0) {
            duet_errf(eb, rc, "%s: %s", o->f[i].final,
                      rc == -EEXIST ? "already exists (use --force to replace it)" : strerror(-rc));
            ag_out_abort(o);
            return rc == -EEXIST ? DUET_E_USAGE : rc;
        }
        o->f[i].placed = true;
    }
    /* The renames are durable only once the folder itself is synced. */
    fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd != -1) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

void ag_out_abort(struct ag_out *o)
{
    for (size_t i = 0; i < o->n; i++) {
        /* A file this set renamed into place is ours to take back; others are untouched. */
        unlink(o->f[i].placed ? o->f[i].final : o->f[i].tmp);
    }
    o->n = 0;
}

const char *ag_out_path(const struct ag_out *o, size_t i)
{
    return o->f[i].final;
}
