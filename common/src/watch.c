/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "The set in this folder may have changed", for the sidecar's reload.
 *
 * inotify watches the folder itself (never the files: the ..data switch
 * replaces what a file watch points at, docs/internals/volume-contract.md).
 * Every event restarts a settle timer; when it fires, a cheap signature of
 * the folder is compared with the one last reported and the callback runs
 * only if it differs, so one publish (a dozen events) gives one callback and
 * a reader's activity gives none. An inotify queue overflow forces a
 * callback, since events were lost.
 *
 * The folder may be missing (not mounted yet, deleted by an operator) or not
 * open to us yet (the agent creates it 0700, then gives it its group and
 * mode; an operator's chmod 000): then the nearest ancestor we can watch is
 * watched for creations and attribute changes, and the watch moves down as
 * the path appears and opens up. A slow signature poll runs alongside as a safety
 * net (file systems where inotify does not fire, such as some network
 * mounts), and is the only mechanism when inotify is unavailable.
 *
 * The signature is the ..data target plus (name, dev, ino, size, mtime ns,
 * mode) of each file in the resolved folder, and the folder's own
 * (dev, ino), so a delete + re-create with equal files is still seen.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/err.h"
#include "duet/file.h"
#include "duet/log.h"
#include "duet/loop.h"
#include "duet/watch.h"

#define DIR_MASK                                                                                   \
    (IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_ATTRIB |            \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/*
 * On an ancestor we only wait for the next path component to appear or to
 * open up to us (IN_ATTRIB: a chmod or chown of an entry), or the ancestor to go.
 */
#define PARENT_MASK                                                                                \
    (IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* A signature looks at this many entries at most: a volume holds a handful. */
#define SIG_MAX_ENTRIES 1024

struct sig {
    bool exists;
    uint64_t dev, ino; /* of the folder */
    char data[256];    /* ..data target, "" for a plain folder */
    uint64_t h;        /* order-independent sum of per-file hashes */
    uint32_t n;
};

/*
 * Invariants: ifd >= 0 iff inotify is in use, and then wd is the one live
 * watch, on dir itself (!on_parent) or on its nearest existing ancestor.
 * `reported` is what the last callback (or creation) saw.
 */
struct duet_watch {
    struct duet_loop *loop;
    char *dir;
    duet_watch_cb *cb;
    void *arg;
    int64_t settle_ms;
    int64_t poll_ms;
    int64_t opt_poll_ms;
    int ifd;
    int wd;
    bool on_parent;
    bool force; /* events were lost: report even if the signature looks equal */
    struct duet_timer settle;
    struct duet_timer poll;
    struct sig reported;
};

/* ---- signature ---------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* A chmod shows through ctime, as a rewrite does through mtime and size. */
static uint64_t entry_hash(const char *name, const struct stat *st)
{
    struct duet_file_sig fs;

    duet_file_sig_from_stat(st, &fs);
    return fnv(fnv(14695981039346656037ULL, name, strlen(name) + 1), &fs, sizeof(fs));
}

/* Hash every regular file (symlinks followed) of folder fd; ".."-entries are the writer's. */
static void hash_files(int fd, struct sig *s)
{
    int dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dup_fd == -1 ? NULL : fdopendir(dup_fd);
    struct dirent *e;

    if (!d) {
        if (dup_fd != -1)
            close(dup_fd);
        return;
    }
    while (s->n < SIG_MAX_ENTRIES && (e = readdir(d)) != NULL) {
        struct stat st;

        if (e->d_name[0] == '.' && (e->d_name[1] == '.' || e->d_name[1] == '\0'))
            continue;
        if (fstatat(fd, e->d_name, &st, 0) == -1 || !S_ISREG(st.st_mode))
            continue;
        s->h += entry_hash(e->d_name, &st);
        s->n++;
    }
    closedir(d);
}

static void sig_read(const char *dir, struct sig *s)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    ssize_t n;

    memset(s, 0, sizeof(*s));
    if (dfd == -1)
        return;
    if (fstat(dfd, &st) == 0) {
        s->exists = true;
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    n = readlinkat(dfd, "..data", s->data, sizeof(s->data) - 1);
    if (n > 0) {
        int vfd;

        s->data[n] = '\0';
        vfd = openat(dfd, s->data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (vfd != -1) {
            hash_files(vfd, s);
            close(vfd);
        }
    } else {
        hash_files(dfd, s);
    }
    close(dfd);
}

static bool sig_eq(const struct sig *a, const struct sig *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->h == b->h &&
           a->n == b->n && strcmp(a->data, b->data) == 0;
}

/* ---- inotify ------------------------------------------------------------------ */

static void set_wd(struct duet_watch *w, int wd, bool on_parent)
{
    /* The old inode may be gone (EINVAL then): its watch died with it. */
    if (w->wd >= 0 && w->wd != wd)
        (void)inotify_rm_watch(w->ifd, w->wd);
    w->wd = wd;
    w->on_parent = on_parent;
}

/* Cut the last component: "/a/b/" -> "/a", "a" -> ".", "/a" -> "/". */
static void parent_of(char *path)
{
    size_t n = strlen(path);
    char *slash;

    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    slash = strrchr(path, '/');
    if (!slash)
        snprintf(path, 2, ".");
    else if (slash == path)
        path[1] = '\0';
    else
        *slash = '\0';
}

/*
 * inotify_add_watch failed on a path that may still come: it is missing, or
 * not a folder yet, or not readable by us yet. EACCES is passing too: taken
 * as final, it would leave us polling for the rest of the process's life.
 */
static bool may_come(int err)
{
    return err == ENOENT || err == ENOTDIR || err == EACCES;
}

/* Watch dir, or its nearest ancestor we can watch until dir appears and opens up. */
static int arm(struct duet_watch *w)
{
    char path[PATH_MAX];
    int wd = inotify_add_watch(w->ifd, w->dir, DIR_MASK);

    if (wd >= 0) {
        set_wd(w, wd, false);
        return 0;
    }
    if (!may_come(errno))
        return -errno;
    snprintf(path, sizeof(path), "%s", w->dir);
    do {
        if (strcmp(path, "/") == 0 || strcmp(path, ".") == 0)
            return DUET_ENOENT; /* nothing left to watch: let the poll carry on */
        parent_of(path);
        wd = inotify_add_watch(w->ifd, path, PARENT_MASK);
        if (wd == -1 && !may_come(errno))
            return -errno;
    } while (wd == -1);
    set_wd(w, wd, true);
    /* dir may have been created or opened up between the two calls, with no event left
     * to tell us. */
    wd = inotify_add_watch(w->ifd, w->dir, DIR_MASK);
    if (wd >= 0)
        set_wd(w, wd, false);
    return 0;
}

static void stop_inotify(struct duet_watch *w)
{
    if (w->ifd < 0)
        return;
    duet_loop_del_fd(w->loop, w->ifd);
    close(w->ifd);
    w->ifd = -1;
    w->wd = -1;
    w->on_parent = false;
}

/* Out of watches or a read error: keep going on the poll alone, at the faster period. */
static void fall_back_to_polling(struct duet_watch *w, int rc)
{
    duet_log(DUET_LOG_WARN, "watch", "dir=%s err=%s msg=\"inotify lost, polling instead\"", w->dir,
             duet_err_name(rc));
    stop_inotify(w);
    w->poll_ms = w->opt_poll_ms ? w->opt_poll_ms : 1000;
    duet_timer_start(w->loop, &w->poll, w->poll_ms);
}

static void changed(struct duet_watch *w)
{
    /* Restarted on every event: fires settle_ms after the last one. */
    duet_timer_start(w->loop, &w->settle, w->settle_ms);
}

/* What one batch of events asks for. */
struct verdict {
    bool changed, rearm, force;
};

static void judge(struct duet_watch *w, const struct inotify_event *ev, struct verdict *v)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        /* Events were dropped: the watch may be stale and a change may be hidden. */
        v->force = v->rearm = true;
        return;
    }
    if (ev->wd != w->wd)
        return; /* a watch we already replaced */
    if (w->on_parent) {
        v->rearm = true; /* a path component appeared, or the ancestor went */
        return;
    }
    if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
        v->rearm = true;
    v->changed = true;
}

static int drain(struct duet_watch *w, struct verdict *v)
{
    char buf[4096];

    for (;;) {
        ssize_t n = read(w->ifd, buf, sizeof(buf));

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return 0;
        if (n <= 0)
            return n == 0 ? DUET_EOF : -errno;
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            struct inotify_event ev;

            /* memcpy: buf has no alignment guarantee for the struct. */
            memcpy(&ev, buf + off, sizeof(ev));
            judge(w, &ev, v);
            off += (ssize_t)(sizeof(ev) + ev.len);
        }
    }
}

static void on_inotify(struct duet_loop *loop, int fd, uint32_t events, void *arg)
{
    struct duet_watch *w = arg;
    struct verdict v = {0};
    int rc = drain(w, &v);

    if (rc < 0) {
        fall_back_to_polling(w, rc);
        changed(w);
        return;
    }
    if (v.rearm) {
        bool was_parent = w->on_parent;

        rc = arm(w);
        if (rc < 0) {
            fall_back_to_polling(w, rc);
            v.changed = true;
        } else if (was_parent && !w->on_parent) {
            v.changed = true; /* the folder appeared */
        }
    }
    w->force |= v.force;
    if (v.changed || v.force)
        changed(w);
}

/* ---- timers ------------------------------------------------------------------- */

static void on_settle(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct duet_watch *w = arg;
    struct sig cur;
    bool fire;

    sig_read(w->dir, &cur);
    fire = w->force || !sig_eq(&cur, &w->reported);
    w->force = false;
    w->reported = cur;
    if (fire)
        w->cb(w, w->arg); /* last: the callback may free w */
}

static void on_poll(struct duet_loop *loop, struct duet_timer *t, void *arg)
{
    struct duet_watch *w = arg;
    struct sig cur;

    duet_timer_start(loop, &w->poll, w->poll_ms);
    sig_read(w->dir, &cur);
    if (!sig_eq(&cur, &w->reported) && !duet_timer_active(&w->settle))
        changed(w);
}

/* ---- API ---------------------------------------------------------------------- */

static int start_inotify(struct duet_watch *w, struct duet_errbuf *eb)
{
    int rc;

    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd == -1) {
        rc = -errno;
        /* EMFILE: the per-user instance limit (128 by default) is shared by every pod. */
        duet_log(DUET_LOG_WARN, "watch", "dir=%s err=%s msg=\"no inotify, polling\"", w->dir,
                 duet_err_name(rc));
        return 0;
    }
    rc = duet_loop_add_fd(w->loop, w->ifd, DUET_EV_READ, on_inotify, w);
    if (rc < 0) {
        close(w->ifd);
        w->ifd = -1;
        return duet_errf(eb, rc, "%s: watching: %s", w->dir, duet_strerror(rc));
    }
    rc = arm(w);
    if (rc < 0) {
        duet_log(DUET_LOG_WARN, "watch", "dir=%s err=%s msg=\"inotify watch failed, polling\"",
                 w->dir, duet_err_name(rc));
        stop_inotify(w);
    }
    return 0;
}

int duet_watch_new(struct duet_loop *loop, const char *dir, const struct duet_watch_opts *opts,
                   duet_watch_cb *cb, void *arg, struct duet_watch **out, struct duet_errbuf *eb)
{
    static const struct duet_watch_opts defaults;
    struct duet_watch *w;
    int rc;

    if (!opts)
        opts = &defaults;
    if (!dir || !*dir || strlen(dir) >= PATH_MAX)
        return duet_errf(eb, DUET_EINVAL, "bad folder to watch");
    w = duet_calloc(1, sizeof(*w));
    if (!w)
        return duet_errf(eb, DUET_ENOMEM, "%s: watching: out of memory", dir);
    w->dir = duet_strdup(dir);
    if (!w->dir) {
        duet_free(w);
        return duet_errf(eb, DUET_ENOMEM, "%s: watching: out of memory", dir);
    }
    w->loop = loop;
    w->cb = cb;
    w->arg = arg;
    w->ifd = w->wd = -1;
    w->settle_ms = opts->settle_ms > 0 ? opts->settle_ms : 100;
    w->opt_poll_ms = opts->poll_ms > 0 ? opts->poll_ms : 0;
    duet_timer_init(&w->settle, on_settle, w);
    duet_timer_init(&w->poll, on_poll, w);
    sig_read(dir, &w->reported);
    if (!opts->no_inotify) {
        rc = start_inotify(w, eb);
        if (rc < 0) {
            duet_watch_free(w);
            return rc;
        }
    }
    w->poll_ms = w->opt_poll_ms ? w->opt_poll_ms : w->ifd >= 0 ? 10000 : 1000;
    duet_timer_start(loop, &w->poll, w->poll_ms);
    *out = w;
    return 0;
}

void duet_watch_free(struct duet_watch *w)
{
    if (!w)
        return;
    duet_timer_stop(w->loop, &w->settle);
    duet_timer_stop(w->loop, &w->poll);
    stop_inotify(w);
    duet_free(w->dir);
    duet_free(w);
}

bool duet_watch_uses_inotify(const struct duet_watch *w)
{
    return w->ifd >= 0;
}
