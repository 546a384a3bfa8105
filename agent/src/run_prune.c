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
 * Only identities published as <output_dir>/<env>/<product> take part;
 * one published elsewhere (a per-volume folder) is managed by its owner.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "run.h"

#include "duet/log.h"
#include "duet/vol.h"

/*
 * Is id published in the folder layout, <root>/<env>/<product>? Then
 * *env_len is the length of "<root>/<env>". Identities published elsewhere
 * (a per-volume folder) are neither configured nor pruned here.
 */
static bool in_layout(const struct ag_ident *id, size_t *env_len)
{
    size_t rl = strlen(id->root), dl = strlen(id->dir), pl = strlen(id->product);
    const char *env;

    if (dl < rl + 3 + pl || strncmp(id->dir, id->root, rl) != 0 || id->dir[rl] != '/' ||
        id->dir[dl - pl - 1] != '/' || strcmp(id->dir + dl - pl, id->product) != 0)
        return false;
    env = id->dir + rl + 1;
    if (env == id->dir + dl - pl - 1 || memchr(env, '/', (size_t)(id->dir + dl - pl - 1 - env)))
        return false;
    *env_len = dl - pl - 1;
    return true;
}

static bool configured(const struct ag_gen *g, const char *envdir, const char *name)
{
    for (size_t i = 0; i < g->n_ids; i++) {
        size_t el;

        if (in_layout(g->ids[i], &el) && strlen(envdir) == el &&
            strncmp(g->ids[i]->dir, envdir, el) == 0 && strcmp(g->ids[i]->product, name) == 0)
            return true;
    }
    return false;
}

static void remove_one(const char *root, const char *env, const char *path, const char *name)
{
    const struct duet_vol_opts vo = {.gid = (gid_t)-1, .root = root};
    struct duet_errbuf eb;
    char q[600], d[600];
    int rc;

    duet_errbuf_clear(&eb);
    rc = duet_vol_remove(path, &vo, &eb);
    if (rc == 0)
        duet_log(DUET_LOG_INFO, "agent",
                 "identity=%s/%s dir=%s msg=\"no longer configured: key "
                 "wiped, published set removed\"",
                 env, name, duet_log_quote(d, sizeof(d), path));
    else
        duet_log(DUET_LOG_WARN, "agent", "identity=%s/%s err=%s msg=%s action=\"left in place\"",
                 env, name, duet_err_name(rc), duet_log_quote(q, sizeof(q), eb.msg));
}

void ag_prune_unconfigured(const struct ag_gen *g)
{
    char envdir[4096], path[4096], link[4200];
    const struct ag_ident *first = NULL;
    const char *env;
    struct dirent *e;
    size_t el = 0;
    DIR *d;

    /* Every folder identity shares output_dir and env: the first one says. */
    for (size_t i = 0; !first && i < g->n_ids; i++)
        if (in_layout(g->ids[i], &el))
            first = g->ids[i];
    if (!first || el >= sizeof(envdir))
        return;
    memcpy(envdir, first->dir, el);
    envdir[el] = '\0';
    env = strrchr(envdir, '/') + 1;
    d = opendir(envdir);
    if (!d)
        return; /* nothing published yet */
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (e->d_name[0] == '.' || configured(g, envdir, e->d_name))
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", envdir, e->d_name) >= sizeof(path))
            continue;
        snprintf(link, sizeof(link), "%s/" DUET_VOL_DATA, path);
        /* A folder (not a symlink to one) holding a published set. */
        if (lstat(path, &st) == -1 || !S_ISDIR(st.st_mode) || lstat(link, &st) == -1 ||
            !S_ISLNK(st.st_mode))
            continue;
        remove_one(first->root, env, path, e->d_name);
    }
    closedir(d);
}
