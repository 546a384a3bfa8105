/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared volume: kubelet's atomic writer (pkg/volume/util/atomic_writer.go)
 * in C, and the reader that goes with it. docs/internals/volume-contract.md
 * states the contract; this file is its only implementation.
 *
 * Publish, in order (every step is a numbered fault point for the tests):
 *   1. create DIR with parents, open it, take an flock so two writers (an old
 *      and a new agent pod during a rolling update) never interleave (the
 *      second gets DUET_EAGAIN rather than waiting);
 *   2. mkdirat a fresh version folder "..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN" (UTC);
 *   3. write each file with O_EXCL, fchown/fchmod before the first byte so a
 *      key never exists with a wider mode, fsync it; fsync the folder;
 *   4. symlink ..data_tmp -> version, rename it over ..data (the one atomic
 *      switch), fsync DIR;
 *   5. point each top-level name at ..data/name, again by renaming a
 *      temporary symlink so a reader never finds the name missing;
 *   6. drop top-level symlinks into ..data for names no longer published;
 *   7. fsync DIR, then remove every other ".."-entry: the previous version
 *      and whatever a crashed earlier run left behind.
 * A crash before 4 leaves the old set (plus debris step 7 of the next run
 * removes); a crash after 4 leaves the new one.
 *
 * Everything is relative to directory fds (openat, mkdirat, renameat), so a
 * concurrent rename of DIR's parents cannot redirect a write. With
 * opts->root (the agent's output_dir) DIR itself is reached from root one
 * component at a time with O_NOFOLLOW, and every folder on the way must be
 * ours and closed to others: a symlink pre-placed at output_dir/dev/productB
 * would otherwise receive the key and have its ".."-entries swept.
 * duet_vol_inspect checks a published set's owners and modes the same way.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/err.h"
#include "duet/file.h"
#include "duet/vol.h"

#define DATA_TMP "..data_tmp"
#define LINK_TMP "..link_tmp"
#define DATA_PREFIX DUET_VOL_DATA "/"
/* A publish stopped by the fault hook: the caller sees this, nothing is undone. */
#define VOL_DIED (-ECANCELED)
/* A reader racing the cleanup of an old version retries this many times. */
#define READ_RETRIES 50

static duet_vol_fault_hook *fault_hook;
static void *fault_arg;

void duet_vol_set_fault_hook(duet_vol_fault_hook *hook, void *arg)
{
    fault_hook = hook;
    fault_arg = arg;
}

/*
 * Invariants: dfd is DIR (locked) once opened; vfd the new version folder
 * while it is being filled; switched is true once ..data names `version`.
 */
struct pub {
    const char *dir;
    const struct duet_vol_opts *opts;
    struct duet_errbuf *eb;
    int dfd;
    int vfd;
    int step;
    bool switched;
    char version[64];
};

/* Non-zero: the hook asked us to die here. */
static int fault(struct pub *p)
{
    p->step++;
    return fault_hook && fault_hook(p->step, fault_arg) != 0;
}

#define STEP(p)                                                                                    \
    do {                                                                                           \
        if (fault(p))                                                                              \
            return VOL_DIED;                                                                       \
    } while (0)

static int sys_err(struct pub *p, const char *what, const char *name)
{
    int rc = -errno;

    return duet_errf(p->eb, rc, "%s/%s: %s: %s", p->dir, name, what, duet_strerror(rc));
}

static bool name_ok(const char *n)
{
    return n && *n && strchr(n, '/') == NULL && strncmp(n, "..", 2) != 0 && strcmp(n, ".") != 0 &&
           strlen(n) < 200;
}

static int check_files(const char *dir, const struct duet_vol_file *files, size_t n,
                       struct duet_errbuf *eb)
{
    if (n == 0 || n > DUET_VOL_MAX_FILES)
        return duet_errf(eb, DUET_EINVAL, "%s: a set holds 1 to %d files, not %zu", dir,
                         DUET_VOL_MAX_FILES, n);
    for (size_t i = 0; i < n; i++) {
        if (!name_ok(files[i].name))
            return duet_errf(eb, DUET_EINVAL, "%s: refusing file name \"%s\"", dir,
                             files[i].name ? files[i].name : "(null)");
        for (size_t j = 0; j < i; j++)
            if (strcmp(files[i].name, files[j].name) == 0)
                return duet_errf(eb, DUET_EINVAL, "%s: file name \"%s\" given twice", dir,
                                 files[i].name);
    }
    return 0;
}

/* mkdir -p: EEXIST on any component is fine, the final open checks it is a folder. */
static int make_parents(const char *dir, mode_t mode, bool *created, struct duet_errbuf *eb)
{
    char path[4096];
    size_t len = strlen(dir);

    *created = false;
    if (len == 0 || len >= sizeof(path))
        return duet_errf(eb, DUET_EINVAL, "bad volume path \"%s\"", dir);
    memcpy(path, dir, len + 1);
    while (len > 1 && path[len - 1] == '/') /* "dir/" is "dir": its mode and group apply */
        path[--len] = '\0';
    for (char *s = path + 1;; s++) {
        bool last = *s == '\0';

        if (*s != '/' && !last)
            continue;
        *s = '\0';
        if (mkdir(path, last ? mode : 0755) == 0) {
            *created = last;
        } else if (errno != EEXIST) {
            int rc = -errno;

            return duet_errf(eb, rc, "%s: mkdir: %s", path, duet_strerror(rc));
        }
        if (last)
            return 0;
        *s = '/';
    }
}

/*
 * A folder below the root we are about to use: ours (owner), not writable by
 * anyone else. `made`: we just created it (its mode is set by the caller).
 */
static int check_folder(int fd, const char *path, bool made, struct duet_errbuf *eb)
{
    struct stat st;

    if (fstat(fd, &st) == -1) {
        int rc = -errno;

        return duet_errf(eb, rc, "%s: stat: %s", path, duet_strerror(rc));
    }
    if (st.st_uid != geteuid())
        return duet_errf(eb, DUET_E_VOL_UNSAFE,
                         "%s: owned by uid %u, not by this process (uid %u): "
                         "refusing a folder it did not create",
                         path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (!made && (st.st_mode & 022))
        return duet_errf(eb, DUET_E_VOL_UNSAFE,
                         "%s: mode %04o is writable by group or others: "
                         "refusing it",
                         path, (unsigned)(st.st_mode & 07777));
    return 0;
}

/*
 * Open `dir` below `root` one component at a time, each relative to its
 * parent's fd with O_NOFOLLOW | O_DIRECTORY, so no symlink placed anywhere
 * below root can redirect a write. Missing components are created when
 * `create` (the last one with mode 0700, fixed by the caller, and *created
 * set). *out is the open fd of dir.
 */
static int open_below(const char *root, const char *dir, bool create, int *out, bool *created,
                      struct duet_errbuf *eb)
{
    size_t rl = strlen(root);
    char path[4096];
    const char *rest;
    int fd;

    *created = false;
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    if (strncmp(dir, root, rl) != 0 || (dir[rl] != '/' && dir[rl] != '\0') ||
        strlen(dir) >= sizeof(path))
        return duet_errf(eb, DUET_EINVAL, "%s: not below %s", dir, root);
    /* The root is the operator's path, made as given (mkdir -p). */
    if (create)
        DUET_TRY(make_parents(root, 0755, created, eb));
    *created = false;
    fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        int rc = -errno;

        return duet_errf(eb, rc, "%s: open: %s", root, duet_strerror(rc));
    }
    memcpy(path, dir, rl);
    path[rl] = '\0';
    for (rest = dir + rl; *rest == '/'; rest++)
        ;
    while (*rest) {
        size_t len = strcspn(rest, "/");
        const char *next = rest + len;
        bool made = false;
        char comp[256];
        int nfd, rc;

        while (*next == '/')
            next++;
        if (len >= sizeof(comp) || (len == 1 && rest[0] == '.') ||
            (len == 2 && rest[0] == '.' && rest[1] == '.')) {
            close(fd);
            return duet_errf(eb, DUET_EINVAL, "%s: bad path component", dir);
        }
        memcpy(comp, rest, len);
        comp[len] = '\0';
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s", comp);
        nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd == -1 && errno == ENOENT && create) {
            if (mkdirat(fd, comp, *next ? 0755 : 0700) == 0) {
                made = true;
            } else if (errno != EEXIST) {
                rc = -errno;
                close(fd);
                return duet_errf(eb, rc, "%s: mkdir: %s", path, duet_strerror(rc));
            }
            nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        rc = -errno;
        close(fd);
        if (nfd == -1 && (rc == -ELOOP || rc == -ENOTDIR))
            return duet_errf(eb, DUET_E_VOL_UNSAFE, "%s: a symlink or not a folder: refusing it",
                             path);
        if (nfd == -1)
            return duet_errf(eb, rc, "%s: %s", path, duet_strerror(rc));
        rc = check_folder(nfd, path, made, eb);
        if (rc < 0) {
            close(nfd);
            return rc;
        }
        fd = nfd;
        *created = made && !*next;
        rest = next;
    }
    *out = fd;
    return 0;
}

static int open_dir(struct pub *p)
{
    mode_t mode = p->opts->dir_mode ? p->opts->dir_mode : 0755;
    bool created;

    if (p->opts->root) {
        DUET_TRY(open_below(p->opts->root, p->dir, true, &p->dfd, &created, p->eb));
    } else {
        DUET_TRY(make_parents(p->dir, mode, &created, p->eb));
        p->dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (p->dfd == -1)
        return sys_err(p, "open", ".");
    /* Never wait: a hung writer must not hang this one (its caller retries later). */
    if (flock(p->dfd, LOCK_EX | LOCK_NB) == -1) {
        if (errno == EWOULDBLOCK)
            return duet_errf(p->eb, DUET_EAGAIN, "%s: another process is publishing here", p->dir);
        return sys_err(p, "flock", ".");
    }
    if (created && p->opts->gid != (gid_t)-1 && fchown(p->dfd, (uid_t)-1, p->opts->gid) == -1)
        return sys_err(p, "fchown", ".");
    /* chown clears nothing on folders, but chmod last keeps the rule simple. */
    if (created && fchmod(p->dfd, mode) == -1)
        return sys_err(p, "fchmod", ".");
    return 0;
}

/*
 * Make the version folder. Two publishes within one nanosecond (or a clock
 * stepped back onto an old name) get the next free nanosecond: the name only
 * has to be unique and roughly ordered.
 */
static int make_version(struct pub *p)
{
    mode_t mode = p->opts->dir_mode ? p->opts->dir_mode : 0755;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    for (int tries = 0; tries < 1000; tries++) {
        struct tm tm;

        gmtime_r(&ts.tv_sec, &tm);
        snprintf(p->version, sizeof(p->version), "..%04d_%02d_%02d_%02d_%02d_%02d.%09ld",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec);
        STEP(p);
        if (mkdirat(p->dfd, p->version, 0700) == 0)
            break;
        if (errno != EEXIST)
            return sys_err(p, "mkdir", p->version);
        if (++ts.tv_nsec == 1000000000L) {
            ts.tv_nsec = 0;
            ts.tv_sec++;
        }
        p->version[0] = '\0';
    }
    if (!p->version[0])
        return duet_errf(p->eb, DUET_EEXIST, "%s: no free version folder name", p->dir);
    p->vfd = openat(p->dfd, p->version, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p->vfd == -1)
        return sys_err(p, "open", p->version);
    STEP(p);
    if (p->opts->gid != (gid_t)-1 && fchown(p->vfd, (uid_t)-1, p->opts->gid) == -1)
        return sys_err(p, "fchown", p->version);
    if (fchmod(p->vfd, mode) == -1)
        return sys_err(p, "fchmod", p->version);
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);

        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1)
            return -errno;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

static int write_one(struct pub *p, const struct duet_vol_file *f)
{
    char where[300];
    int fd, rc;

    snprintf(where, sizeof(where), "%s/%s", p->version, f->name);
    STEP(p);
    /* 0600 until fchmod: the final mode is never wider than intended, even briefly. */
    fd = openat(p->vfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -1)
        return sys_err(p, "create", where);
    /* chown before chmod: chown may clear set-id bits, and the mode is the caller's word. */
    if (p->opts->gid != (gid_t)-1 && fchown(fd, (uid_t)-1, p->opts->gid) == -1) {
        rc = sys_err(p, "fchown", where);
        goto out;
    }
    if (fchmod(fd, f->mode) == -1) {
        rc = sys_err(p, "fchmod", where);
        goto out;
    }
    if (fault(p)) {
        rc = VOL_DIED;
        goto out;
    }
    rc = write_all(fd, f->data, f->len);
    if (rc < 0) {
        rc = duet_errf(p->eb, rc, "%s/%s: write: %s", p->dir, where, duet_strerror(rc));
        goto out;
    }
    if (fault(p)) {
        rc = VOL_DIED;
        goto out;
    }
    if (fsync(fd) == -1)
        rc = sys_err(p, "fsync", where);
out:
    close(fd);
    return rc;
}

static int fill_version(struct pub *p, const struct duet_vol_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        DUET_TRY(write_one(p, &files[i]));
    STEP(p);
    if (fsync(p->vfd) == -1)
        return sys_err(p, "fsync", p->version);
    return 0;
}

/* Atomically make `name` a symlink to `target` in DIR: symlink a temporary, rename it over. */
static int replace_symlink(struct pub *p, const char *tmp, const char *target, const char *name)
{
    STEP(p);
    /* A crashed run may have left the temporary behind. */
    if (unlinkat(p->dfd, tmp, 0) == -1 && errno != ENOENT)
        return sys_err(p, "unlink", tmp);
    if (symlinkat(target, p->dfd, tmp) == -1)
        return sys_err(p, "symlink", tmp);
    STEP(p);
    if (renameat(p->dfd, tmp, p->dfd, name) == -1)
        return sys_err(p, "rename over", name);
    return 0;
}

static int switch_data(struct pub *p)
{
    DUET_TRY(replace_symlink(p, DATA_TMP, p->version, DUET_VOL_DATA));
    p->switched = true;
    STEP(p);
    if (fsync(p->dfd) == -1)
        return sys_err(p, "fsync", ".");
    return 0;
}

static bool link_is(int dfd, const char *name, const char *want)
{
    char buf[512];
    ssize_t n = readlinkat(dfd, name, buf, sizeof(buf) - 1);

    if (n < 0)
        return false;
    buf[n] = '\0';
    return strcmp(buf, want) == 0;
}

static int link_names(struct pub *p, const struct duet_vol_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char target[256];

        snprintf(target, sizeof(target), DATA_PREFIX "%s", files[i].name);
        /* Republishing the same names (the usual case) touches nothing here. */
        if (link_is(p->dfd, files[i].name, target))
            continue;
        DUET_TRY(replace_symlink(p, LINK_TMP, target, files[i].name));
    }
    return 0;
}

static bool published(const char *name, const struct duet_vol_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, files[i].name) == 0)
            return true;
    return false;
}

/* Remove a folder with its content; version folders are flat but debris may not be. */
static int remove_tree(int dfd, const char *name, int depth)
{
    int fd, rc = 0;
    DIR *d;
    struct dirent *e;

    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if ((errno != EISDIR && errno != EPERM) || depth > 8)
        return -errno;
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    d = fdopendir(fd);
    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            rc = remove_tree(dirfd(d), e->d_name, depth + 1);
    }
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
        rc = -errno;
    return rc;
}

/* A top-level name the new set no longer has: drop it if it is our link into ..data. */
static int drop_stale_link(struct pub *p, const char *nm)
{
    char target[512];
    ssize_t len = readlinkat(p->dfd, nm, target, sizeof(target) - 1);

    if (len < 0)
        return 0; /* not a symlink: a user's own file, left alone */
    target[len] = '\0';
    if (strncmp(target, DATA_PREFIX, strlen(DATA_PREFIX)) != 0)
        return 0;
    STEP(p);
    if (unlinkat(p->dfd, nm, 0) == -1 && errno != ENOENT)
        return sys_err(p, "unlink", nm);
    return 0;
}

static int sweep_entry(struct pub *p, const char *nm, const struct duet_vol_file *files, size_t n)
{
    int rc;

    if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || strcmp(nm, DUET_VOL_DATA) == 0 ||
        strcmp(nm, p->version) == 0)
        return 0;
    if (strncmp(nm, "..", 2) != 0)
        return published(nm, files, n) ? 0 : drop_stale_link(p, nm);
    /* The previous version, or debris of a crashed run. */
    STEP(p);
    rc = remove_tree(p->dfd, nm, 0);
    if (rc < 0)
        return duet_errf(p->eb, rc, "%s/%s: remove: %s", p->dir, nm, duet_strerror(rc));
    return 0;
}

/*
 * One pass over DIR: drop top-level symlinks into ..data that the new set no
 * longer has, and every ".."-entry that is neither ..data nor the new version.
 */
static int sweep(struct pub *p, const struct duet_vol_file *files, size_t n)
{
    int fd = openat(p->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    DIR *d;
    struct dirent *e;

    if (fd == -1)
        return sys_err(p, "open", ".");
    d = fdopendir(fd);
    if (!d) {
        rc = sys_err(p, "opendir", ".");
        close(fd);
        return rc;
    }
    /* Removing entries while reading is safe on Linux; at worst one is seen twice (ENOENT). */
    while (rc == 0 && (e = readdir(d)) != NULL)
        rc = sweep_entry(p, e->d_name, files, n);
    closedir(d);
    return rc;
}

/* Undo a publish that failed before the switch: the previous set stays as it was. */
static void abandon(struct pub *p)
{
    if (p->switched || !p->version[0] || p->dfd < 0)
        return;
    /* Best effort: whatever stays is debris the next publish's sweep removes. */
    (void)remove_tree(p->dfd, p->version, 0);
}

static int publish(struct pub *p, const struct duet_vol_file *files, size_t n)
{
    STEP(p);
    DUET_TRY(open_dir(p));
    DUET_TRY(make_version(p));
    DUET_TRY(fill_version(p, files, n));
    DUET_TRY(switch_data(p));
    DUET_TRY(link_names(p, files, n));
    DUET_TRY(sweep(p, files, n));
    STEP(p);
    if (fsync(p->dfd) == -1)
        return sys_err(p, "fsync", ".");
    return 0;
}

int duet_vol_publish(const char *dir, const struct duet_vol_file *files, size_t n,
                     const struct duet_vol_opts *opts, struct duet_errbuf *eb)
{
    static const struct duet_vol_opts defaults = {.gid = (gid_t)-1};
    struct pub p = {.dir = dir, .opts = opts ? opts : &defaults, .eb = eb, .dfd = -1, .vfd = -1};
    int rc;

    DUET_TRY(check_files(dir, files, n, eb));
    rc = publish(&p, files, n);
    if (rc < 0 && rc != VOL_DIED)
        abandon(&p);
    if (p.vfd >= 0)
        close(p.vfd);
    if (p.dfd >= 0)
        close(p.dfd); /* releases the flock */
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

void duet_vol_set_clear(struct duet_vol_set *s)
{
    for (size_t i = 0; i < DUET_VOL_MAX_FILES; i++) {
        if (s->blobs[i].data) {
            explicit_bzero(s->blobs[i].data, s->blobs[i].len);
            DUET_FREE(s->blobs[i].data);
        }
        s->blobs[i].len = 0;
    }
    s->n = 0;
    s->version[0] = '\0';
}

/* Read all of fd, refusing more than max_len bytes (st_size is only a hint). */
static int slurp(int fd, size_t max_len, struct duet_vol_blob *out)
{
    int rc = duet_file_read_fd(fd, max_len, &out->data, &out->len);

    return rc == DUET_EINVAL ? DUET_E_VOL_LAYOUT : rc;
}

/* Where a reader found ..data: >0 its length, 0 none (plain folder), <0 an error. */
static int resolve_data(int dfd, char *buf, size_t size)
{
    ssize_t n = readlinkat(dfd, DUET_VOL_DATA, buf, size);

    if (n == -1 && errno == ENOENT)
        return 0;
    if (n == -1)
        return errno == EINVAL ? DUET_E_VOL_LAYOUT : -errno;
    if ((size_t)n >= size || n == 0)
        return DUET_E_VOL_LAYOUT;
    buf[n] = '\0';
    return (int)n;
}

/*
 * Read every name from folder fd `vfd`. -EAGAIN means "the version vanished
 * under us" (an old version being swept): the caller resolves ..data again.
 */
static int read_names(int dfd, int vfd, const char *version, const char *dir,
                      const char *const *names, size_t n, size_t max_len, struct duet_vol_set *out,
                      struct duet_errbuf *eb)
{
    for (size_t i = 0; i < n; i++) {
        int fd = openat(vfd, names[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
        int rc;

        if (fd == -1) {
            char now[256];

            rc = -errno;
            /* Missing because a publish swept this version? Then it is not missing. */
            if (rc == -ENOENT && version[0] && resolve_data(dfd, now, sizeof(now)) > 0 &&
                strcmp(now, version) != 0)
                return DUET_EAGAIN;
            return duet_errf(eb, rc, "%s/%s: %s", dir, names[i], duet_strerror(rc));
        }
        rc = slurp(fd, max_len, &out->blobs[i]);
        close(fd);
        if (rc == DUET_E_TOOBIG)
            return duet_errf(eb, rc, "%s/%s: larger than %zu bytes", dir, names[i], max_len);
        if (rc == DUET_E_VOL_LAYOUT)
            return duet_errf(eb, rc, "%s/%s: not a regular file", dir, names[i]);
        if (rc < 0)
            return duet_errf(eb, rc, "%s/%s: read: %s", dir, names[i], duet_strerror(rc));
        out->n = i + 1;
    }
    return 0;
}

static int read_once(int dfd, const char *dir, const char *const *names, size_t n, size_t max_len,
                     struct duet_vol_set *out, struct duet_errbuf *eb)
{
    int rc = resolve_data(dfd, out->version, sizeof(out->version));
    int vfd;

    if (rc < 0)
        return duet_errf(eb, rc, "%s/%s: %s", dir, DUET_VOL_DATA, duet_strerror(rc));
    if (rc == 0) /* a plain folder: its files are the set */
        return read_names(dfd, dfd, "", dir, names, n, max_len, out, eb);
    vfd = openat(dfd, out->version, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (vfd == -1) {
        char now[256];

        rc = -errno;
        if (rc == -ENOENT && resolve_data(dfd, now, sizeof(now)) > 0 &&
            strcmp(now, out->version) != 0)
            return DUET_EAGAIN;
        return duet_errf(eb, rc, "%s/%s: %s", dir, out->version, duet_strerror(rc));
    }
    rc = read_names(dfd, vfd, out->version, dir, names, n, max_len, out, eb);
    close(vfd);
    return rc;
}

int duet_vol_read(const char *dir, const char *const *names, size_t n, size_t max_len,
                  struct duet_vol_set *out, struct duet_errbuf *eb)
{
    int dfd, rc = DUET_EAGAIN;

    memset(out, 0, sizeof(*out));
    if (n == 0 || n > DUET_VOL_MAX_FILES)
        return duet_errf(eb, DUET_EINVAL, "%s: reading %zu files", dir, n);
    for (size_t i = 0; i < n; i++)
        if (!name_ok(names[i]))
            return duet_errf(eb, DUET_EINVAL, "%s: refusing file name \"%s\"", dir,
                             names[i] ? names[i] : "(null)");
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd == -1) {
        rc = -errno;
        return duet_errf(eb, rc, "%s: %s", dir, duet_strerror(rc));
    }
    for (int i = 0; i < READ_RETRIES && rc == DUET_EAGAIN; i++) {
        duet_vol_set_clear(out);
        rc = read_once(dfd, dir, names, n, max_len, out, eb);
    }
    close(dfd);
    if (rc == DUET_EAGAIN)
        rc = duet_errf(eb, DUET_E_VOL_LAYOUT, "%s: ..data kept changing while reading", dir);
    if (rc < 0)
        duet_vol_set_clear(out);
    return rc;
}

const char *const duet_vol_set_names[DUET_VOL_SET_N] = {
    [DUET_VOL_SET_CERT] = DUET_VOL_CERT,
    [DUET_VOL_SET_KEY] = DUET_VOL_KEY,
    [DUET_VOL_SET_CA] = DUET_VOL_CA,
};

int duet_vol_read_set(const char *dir, size_t max_len, struct duet_vol_set *out,
                      struct duet_errbuf *eb)
{
    return duet_vol_read(dir, duet_vol_set_names, DUET_VOL_SET_N, max_len, out, eb);
}

/* ---- inspecting ------------------------------------------------------------- */

/* One entry of a published set: ours, the mode and group publish gives it. */
static int check_entry(int fd, const char *dir, const char *name, mode_t mode, gid_t gid,
                       bool folder, struct duet_errbuf *eb)
{
    struct stat st;

    if (fstat(fd, &st) == -1) {
        int rc = -errno;

        return duet_errf(eb, rc, "%s/%s: stat: %s", dir, name, duet_strerror(rc));
    }
    if (folder ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return duet_errf(eb, DUET_E_VOL_UNSAFE, "%s/%s: not a %s", dir, name,
                         folder ? "folder" : "regular file");
    if (st.st_uid != geteuid())
        return duet_errf(eb, DUET_E_VOL_UNSAFE, "%s/%s: owner uid %u, want %u", dir, name,
                         (unsigned)st.st_uid, (unsigned)geteuid());
    if (gid != (gid_t)-1 && st.st_gid != gid)
        return duet_errf(eb, DUET_E_VOL_UNSAFE, "%s/%s: group %u, want %u", dir, name,
                         (unsigned)st.st_gid, (unsigned)gid);
    if ((st.st_mode & 07777) != mode)
        return duet_errf(eb, DUET_E_VOL_UNSAFE, "%s/%s: mode %04o, want %04o", dir, name,
                         (unsigned)(st.st_mode & 07777), (unsigned)mode);
    return 0;
}

static int inspect_version(int dfd, const char *dir, const struct duet_vol_file *files, size_t n,
                           const struct duet_vol_opts *o, struct duet_errbuf *eb)
{
    mode_t dir_mode = o->dir_mode ? o->dir_mode : 0755;
    char version[256], where[600];
    int vfd, rc;

    rc = resolve_data(dfd, version, sizeof(version));
    if (rc == 0)
        return duet_errf(eb, -ENOENT, "%s/%s: missing", dir, DUET_VOL_DATA);
    if (rc < 0 || strncmp(version, "..", 2) != 0 || strchr(version, '/'))
        return duet_errf(eb, DUET_E_VOL_UNSAFE, "%s/%s: not a link to a version folder", dir,
                         DUET_VOL_DATA);
    vfd = openat(dfd, version, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (vfd == -1) {
        rc = -errno;
        return duet_errf(eb, rc == -ELOOP || rc == -ENOTDIR ? DUET_E_VOL_UNSAFE : rc, "%s/%s: %s",
                         dir, version, duet_strerror(rc));
    }
    rc = check_entry(vfd, dir, version, dir_mode, o->gid, true, eb);
    snprintf(where, sizeof(where), "%s/%s", dir, version);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int fd =
            openat(vfd, files[i].name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

        if (fd == -1) {
            rc = -errno;
            rc = duet_errf(eb, rc == -ELOOP ? DUET_E_VOL_UNSAFE : rc, "%s/%s: %s", where,
                           files[i].name, duet_strerror(rc));
            break;
        }
        rc = check_entry(fd, where, files[i].name, files[i].mode, o->gid, false, eb);
        close(fd);
    }
    close(vfd);
    return rc;
}

int duet_vol_inspect(const char *dir, const struct duet_vol_file *files, size_t n,
                     const struct duet_vol_opts *opts, struct duet_errbuf *eb)
{
    static const struct duet_vol_opts defaults = {.gid = (gid_t)-1};
    const struct duet_vol_opts *o = opts ? opts : &defaults;
    bool created;
    int dfd, rc;

    DUET_TRY(check_files(dir, files, n, eb));
    if (o->root) {
        DUET_TRY(open_below(o->root, dir, false, &dfd, &created, eb));
    } else {
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd == -1) {
            rc = -errno;
            return duet_errf(eb, rc, "%s: %s", dir, duet_strerror(rc));
        }
    }
    rc = inspect_version(dfd, dir, files, n, o, eb);
    close(dfd);
    return rc;
}

/* ---- removing --------------------------------------------------------------- */

/* Zero a file's content and sync it before it is unlinked. */
static int wipe_file(int dfd, const char *name)
{
    static const char zeros[4096];
    struct stat st;
    int fd = openat(dfd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    int rc = 0;

    if (fd == -1)
        return errno == ELOOP ? 0 : -errno; /* a symlink has no content of ours */
    if (fstat(fd, &st) == -1) {
        rc = -errno;
    } else if (S_ISREG(st.st_mode)) {
        for (off_t left = st.st_size; rc == 0 && left > 0;) {
            size_t n = (size_t)DUET_MIN(left, (off_t)sizeof(zeros));

            rc = write_all(fd, zeros, n);
            left -= (off_t)n;
        }
        if (rc == 0 && fsync(fd) == -1)
            rc = -errno;
    }
    close(fd);
    return rc;
}

/* Wipe and remove a version folder (flat; deeper debris goes with remove_tree). */
static int wipe_version(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = 0;
    DIR *d;
    struct dirent *e;

    if (fd == -1)
        return errno == ENOTDIR || errno == ELOOP ? remove_tree(dfd, name, 0) : -errno;
    d = fdopendir(fd);
    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    while (rc == 0 && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            rc = wipe_file(dirfd(d), e->d_name);
    closedir(d);
    return rc == 0 ? remove_tree(dfd, name, 0) : rc;
}

/* rmdir DIR, its parent reached the way publish reaches it; a user's own file keeps it. */
static int remove_empty_dir(const char *dir, const struct duet_vol_opts *o, struct duet_errbuf *eb)
{
    const char *base = strrchr(dir, '/');
    char parent[4096];
    bool created;
    int pfd, rc = 0;

    if (!base || base == dir || (size_t)(base - dir) >= sizeof(parent))
        return 0;
    memcpy(parent, dir, (size_t)(base - dir));
    parent[base - dir] = '\0';
    if (o->root) {
        DUET_TRY(open_below(o->root, parent, false, &pfd, &created, eb));
    } else if ((pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
        rc = -errno;
        return duet_errf(eb, rc, "%s: %s", parent, duet_strerror(rc));
    }
    if (unlinkat(pfd, base + 1, AT_REMOVEDIR) == -1) {
        rc = -errno;
        rc = duet_errf(eb, rc, "%s: set removed, folder kept: %s", dir, duet_strerror(rc));
    }
    close(pfd);
    return rc;
}

int duet_vol_remove(const char *dir, const struct duet_vol_opts *opts, struct duet_errbuf *eb)
{
    static const struct duet_vol_opts defaults = {.gid = (gid_t)-1};
    const struct duet_vol_opts *o = opts ? opts : &defaults;
    char target[256];
    bool created;
    int dfd = -1, rc;
    DIR *d = NULL;
    struct dirent *e;

    if (o->root) {
        DUET_TRY(open_below(o->root, dir, false, &dfd, &created, eb));
    } else if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
        rc = -errno;
        return duet_errf(eb, rc, "%s: %s", dir, duet_strerror(rc));
    }
    if (flock(dfd, LOCK_EX | LOCK_NB) == -1) {
        rc = errno == EWOULDBLOCK ? DUET_EAGAIN : -errno;
        close(dfd);
        return duet_errf(eb, rc, "%s: another process is publishing here", dir);
    }
    if (resolve_data(dfd, target, sizeof(target)) <= 0) {
        close(dfd);
        return duet_errf(eb, DUET_E_VOL_LAYOUT, "%s: no %s, not a published set: left alone", dir,
                         DUET_VOL_DATA);
    }
    /* One pass: top-level links and ..data go, version folders are wiped. */
    rc = dup(dfd);
    d = rc == -1 ? NULL : fdopendir(rc);
    if (!d) {
        int err = -errno;

        if (rc != -1)
            close(rc);
        close(dfd);
        return duet_errf(eb, err, "%s: opendir: %s", dir, duet_strerror(err));
    }
    rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        const char *nm = e->d_name;

        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
            continue;
        if (strncmp(nm, "..", 2) != 0) {
            char t[512];
            ssize_t n = readlinkat(dfd, nm, t, sizeof(t) - 1);

            if (n > 0 && (t[n] = '\0', strncmp(t, DATA_PREFIX, strlen(DATA_PREFIX)) == 0) &&
                unlinkat(dfd, nm, 0) == -1 && errno != ENOENT)
                rc = -errno;
        } else if (strcmp(nm, DUET_VOL_DATA) == 0 || strcmp(nm, DATA_TMP) == 0 ||
                   strcmp(nm, LINK_TMP) == 0) {
            if (unlinkat(dfd, nm, 0) == -1 && errno != ENOENT)
                rc = -errno;
        } else {
            rc = wipe_version(dfd, nm);
        }
    }
    closedir(d);
    if (rc == 0 && fsync(dfd) == -1)
        rc = -errno;
    close(dfd);
    if (rc < 0)
        return duet_errf(eb, rc, "%s: remove: %s", dir, duet_strerror(rc));
    return remove_empty_dir(dir, o, eb);
}
