/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mount-table helpers of csi_mount.h. Mount points are matched against the
 * fifth field of /proc/self/mountinfo, decoded (the kernel writes space,
 * tab, newline and backslash as \ooo escapes).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "csi_mount.h"

#include "duet/alloc.h"
#include "duet/vol.h"

#define TMPFS_MAGIC_ 0x01021994
#define MNT_FLAGS (MS_NOSUID | MS_NODEV | MS_NOEXEC)

static int mkdirs(const char *path, mode_t mode, struct duet_errbuf *eb)
{
    char buf[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return duet_errf(eb, DUET_EINVAL, "%s: path too long", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, mode) == -1 && errno != EEXIST)
            return duet_errf(eb, -errno, "%s: cannot create folder: %s", buf, strerror(errno));
        *p = c;
        if (c == '\0')
            return 0;
    }
}

/* Decode a mountinfo path field in place. */
static void unescape(char *s)
{
    char *w = s;

    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

int ag_mount_is_mountpoint(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL, real[4096];
    size_t cap = 0;
    int found = 0;

    if (!f)
        return -errno;
    /* kubelet passes canonical paths; resolve anyway so a test's symlinked
     * temporary folder compares equal. */
    if (!realpath(path, real))
        snprintf(real, sizeof(real), "%s", path);
    while (!found && getline(&line, &cap, f) > 0) {
        char *save = NULL, *field = strtok_r(line, " ", &save);

        for (int i = 1; field && i < 5; i++)
            field = strtok_r(NULL, " ", &save);
        if (!field)
            continue;
        unescape(field);
        found = strcmp(field, real) == 0 || strcmp(field, path) == 0;
    }
    free(line); /* getline's buffer */
    fclose(f);
    return found;
}

int ag_mount_state_tmpfs(const char *dir, unsigned size_mb, struct duet_errbuf *eb)
{
    struct statfs sf;
    char opts[64];
    int mp;

    DUET_TRY(mkdirs(dir, 0700, eb));
    mp = ag_mount_is_mountpoint(dir);
    if (mp < 0)
        return duet_errf(eb, mp, "/proc/self/mountinfo: %s", duet_strerror(mp));
    if (mp == 1 && statfs(dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC_)
        return 0;
    snprintf(opts, sizeof(opts), "mode=0700,size=%um", size_mb);
    if (mount("duet-csi", dir, "tmpfs", MNT_FLAGS, opts) == -1)
        return duet_errf(eb, -errno, "%s: cannot mount a tmpfs: %s", dir, strerror(errno));
    return 0;
}

int ag_mount_bind_ro(const char *src, const char *target, struct duet_errbuf *eb)
{
    int err;

    if (mkdir(target, 0750) == -1 && errno != EEXIST)
        return duet_errf(eb, -errno, "%s: cannot create the target folder: %s", target,
                         strerror(errno));
    if (mount(src, target, NULL, MS_BIND, NULL) == -1)
        return duet_errf(eb, -errno, "%s: bind mount failed: %s", target, strerror(errno));
    /* A bind mount takes its flags only on a remount (mount(2), "Creating a bind mount"). */
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MNT_FLAGS, NULL) == -1) {
        err = errno;
        umount2(target, MNT_DETACH);
        return duet_errf(eb, -err, "%s: read-only remount failed: %s", target, strerror(err));
    }
    return 0;
}

/* One umount of target: 1 when something was unmounted, 0 when target is
 * not a mount point, or an error. umount2 tells "not a mount point" itself
 * (EINVAL), which spares a scan of mountinfo per call: O(mounts) each, so
 * O(n^2) for a node's worth of unpublishes. */
static int umount_once(const char *target)
{
    if (umount2(target, UMOUNT_NOFOLLOW) == 0)
        return 1;
    if (errno == EBUSY && umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
        return 1;
    if (errno == EINVAL || errno == ENOENT)
        return 0;
    if (errno == EPERM) /* unprivileged: said before looking at target */
        return ag_mount_is_mountpoint(target) == 0 ? 0 : -EPERM;
    return -errno;
}

int ag_mount_release(const char *target, struct duet_errbuf *eb)
{
    int rc = 1;

    /* Bounded: a target with more than a few mounts stacked is not ours to peel. */
    for (int i = 0; i < 8 && rc == 1; i++) {
        rc = umount_once(target);
        if (rc < 0)
            return duet_errf(eb, rc, "%s: cannot unmount: %s", target, duet_strerror(rc));
    }
    if (rmdir(target) == -1 && errno != ENOENT)
        return duet_errf(eb, -errno, "%s: cannot remove the target folder: %s", target,
                         strerror(errno));
    return 0;
}

/* Overwrite a key file's bytes before its pages are freed. */
static void wipe_file(const char *path)
{
    static const char zeros[4096];
    int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;

    if (fd == -1)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        for (off_t done = 0; done < st.st_size;) {
            ssize_t n = write(fd, zeros, (size_t)DUET_MIN((off_t)sizeof(zeros), st.st_size - done));
            if (n <= 0)
                break;
            done += n;
        }
        fdatasync(fd);
    }
    close(fd);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    const char *base = path + ftw->base;

    if (type == FTW_F && strcmp(base, DUET_VOL_KEY) == 0)
        wipe_file(path);
    return remove(path) == -1 && errno != ENOENT ? -1 : 0;
}

int ag_wipe_tree(const char *dir, struct duet_errbuf *eb)
{
    if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == -1 && errno != ENOENT)
        return duet_errf(eb, -errno, "%s: cannot remove: %s", dir, strerror(errno));
    return 0;
}
