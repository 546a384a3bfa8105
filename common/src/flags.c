/* SPDX-License-Identifier: Apache-2.0 */
/* The table-driven flag parser; see duet/flags.h. */
#include <stdio.h>
#include <string.h>

#include "duet/flags.h"

static const struct duet_flag *find(const struct duet_flag *flags, const char *name, size_t len)
{
    for (const struct duet_flag *f = flags; f->name; f++) {
        if (strlen(f->name) == len && strncmp(f->name, name, len) == 0)
            return f;
    }
    return NULL;
}

int duet_flag_set(const struct duet_flag *f, const char *value, struct duet_errbuf *eb)
{
    struct duet_flag_list *list;

    switch (f->kind) {
    case DUET_FLAG_STR:
        if (*(const char **)f->dst)
            return duet_errf(eb, DUET_E_USAGE, "--%s given twice", f->name);
        *(const char **)f->dst = value;
        return 0;
    case DUET_FLAG_BOOL:
        *(bool *)f->dst = true;
        return 0;
    case DUET_FLAG_LIST:
        list = f->dst;
        if (list->n == DUET_FLAG_LIST_MAX)
            return duet_errf(eb, DUET_E_USAGE, "--%s given more than %d times", f->name,
                             DUET_FLAG_LIST_MAX);
        list->v[list->n++] = value;
        return 0;
    case DUET_FLAG_FN: {
        char flag[64];

        snprintf(flag, sizeof(flag), "--%s", f->name);
        return f->fn(f->dst, flag, value, eb);
    }
    }
    return DUET_E_INTERNAL;
}

/* One "--name[=value]" at argv[*i]; may consume argv[*i + 1]. */
static int parse_one(int argc, char **argv, int *i, const struct duet_flag *flags, bool *seen,
                     struct duet_errbuf *eb)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct duet_flag *f = find(flags, name, len);
    const char *value = eq ? eq + 1 : NULL;

    if (!f && len == 4 && strncmp(name, "help", 4) == 0)
        return DUET_FLAGS_HELP;
    if (!f)
        return duet_errf(eb, DUET_E_USAGE, "unknown option --%.*s (see --help)", (int)len, name);
    if (seen)
        seen[f - flags] = true;
    if (f->kind == DUET_FLAG_BOOL) {
        if (value)
            return duet_errf(eb, DUET_E_USAGE, "--%s takes no value", f->name);
        return duet_flag_set(f, NULL, eb);
    }
    if (!value) {
        if (*i + 1 >= argc)
            return duet_errf(eb, DUET_E_USAGE, "--%s needs a value", f->name);
        value = argv[++*i];
    }
    return duet_flag_set(f, value, eb);
}

int duet_flags_parse(int argc, char **argv, const struct duet_flag *flags, bool *seen,
                     const char **pos, size_t max_pos, size_t *n_pos, struct duet_errbuf *eb)
{
    bool only_pos = false;

    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!only_pos && strcmp(argv[i], "--") == 0) {
            only_pos = true;
        } else if (!only_pos && strcmp(argv[i], "-h") == 0) {
            return DUET_FLAGS_HELP;
        } else if (!only_pos && strncmp(argv[i], "--", 2) == 0) {
            int rc = parse_one(argc, argv, &i, flags, seen, eb);

            if (rc != 0)
                return rc;
        } else if (*n_pos < max_pos) {
            pos[(*n_pos)++] = argv[i];
        } else {
            return duet_errf(eb, DUET_E_USAGE, "unexpected argument \"%s\"", argv[i]);
        }
    }
    return 0;
}
