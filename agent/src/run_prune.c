/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Identities removed from the configuration leave their published folders
 * (a key and a long-lived certificate) under <output_dir>/<env>/. At start
 * and after every SIGHUP the agent removes them: each sibling folder of the
 * configured identities that holds a published set (a ..data link) and
 * whose name is not a configured product is wiped and unlinked through
 * duet_vol_remove, which reaches it below output_dir without following
 * symlinks. Folders of other environments, folders without ..data and
 * anything that is not a folder are left alone: they are not ours to judge.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "run.h"

#include "duet/log.h"
#include "duet/vol.h"

static bool configured(const struct ag_gen *g, const char *name)
{
    for (size_t i = 0; i < g->n_ids; i++) {
        const char *base = strrchr(g->ids[i]->dir, '/');

        if (base && strcmp(base + 1, name) == 0)
            return true;
    }
    return false;
}

static void remove_one(const struct ag_gen *g, const char *env, const char *path,
                       const char *name)
{
    const struct duet_vol_opts vo = {.gid = (gid_t)-1, .root = g->ids[0]->root};
    struct duet_errbuf eb;
    char q[600], d[600];
    int rc;

    duet_errbuf_clear(&eb);
    rc = duet_vol_remove(path, &vo, &eb);
    if (rc == 0)
        duet_log(DUET_LOG_INFO, "agent", "identity=%s/%s dir=%s msg=\"no longer configured: key "
                 "wiped, published set removed\"", env, name, duet_log_quote(d, sizeof(d), path));
    else
        duet_log(DUET_LOG_WARN, "agent", "identity=%s/%s err=%s msg=%s action=\"left in place\"",
                 env, name, duet_err_name(rc), duet_log_quote(q, sizeof(q), eb.msg));
}

void ag_prune_unconfigured(const struct ag_gen *g)
{
    char envdir[4096], path[4096], link[4200];
    const char *env;
    struct dirent *e;
    DIR *d;

    if (g->n_ids == 0)
        return;
    snprintf(envdir, sizeof(envdir), "%s", g->ids[0]->dir);
    if (!strrchr(envdir, '/'))
        return;
    *strrchr(envdir, '/') = '\0';
    env = strrchr(envdir, '/') ? strrchr(envdir, '/') + 1 : envdir;
    d = opendir(envdir);
    if (!d)
        return; /* nothing published yet */
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (e->d_name[0] == '.' || configured(g, e->d_name))
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", envdir, e->d_name) >= sizeof(path))
            continue;
        snprintf(link, sizeof(link), "%s/" DUET_VOL_DATA, path);
        /* A folder (not a symlink to one) holding a published set. */
        if (lstat(path, &st) == -1 || !S_ISDIR(st.st_mode) || lstat(link, &st) == -1 ||
            !S_ISLNK(st.st_mode))
            continue;
        remove_one(g, env, path, e->d_name);
    }
    closedir(d);
}
