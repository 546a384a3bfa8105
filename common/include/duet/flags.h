/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Command-line flags, table driven, for every duet command: each flag is
 * declared once with where its value goes (STYLE.md 7), and the parser
 * routes by the table, never by comparing names in code. "--name VALUE"
 * and "--name=VALUE" are the same; "--" ends the flags; "--help" (and
 * "-h") return DUET_FLAGS_HELP for the caller to print its usage.
 */
#ifndef DUET_FLAGS_H
#define DUET_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "duet/compiler.h"
#include "duet/err.h"

enum duet_flag_kind {
    DUET_FLAG_STR = 1, /* a value; given twice is an error. dst: const char ** */
    DUET_FLAG_BOOL,    /* no value. dst: bool * */
    DUET_FLAG_LIST,    /* a value, repeatable, kept in order. dst: struct duet_flag_list * */
    DUET_FLAG_FN,      /* a value handed to fn(dst, ...); repeatable if fn allows it */
};

#define DUET_FLAG_LIST_MAX 16

struct duet_flag_list {
    const char *v[DUET_FLAG_LIST_MAX];
    size_t n;
};

/* Convert and store one value (borrowed from argv or the environment). flag is "--name". */
typedef int duet_flag_fn(void *dst, const char *flag, const char *value, struct duet_errbuf *eb);

struct duet_flag {
    const char *name; /* without the leading "--"; NULL ends a table */
    enum duet_flag_kind kind;
    void *dst;
    duet_flag_fn *fn; /* DUET_FLAG_FN only */
};

#define DUET_FLAGS_HELP 1

/*
 * Parse argv[1..argc) against the NULL-terminated table `flags`. Values
 * are borrowed from argv. Arguments that are not flags go to pos (at most
 * max_pos; more is an error). seen (may be NULL) has one entry per table
 * row, set for the flags given. Returns 0, DUET_FLAGS_HELP, or a negative
 * code (DUET_E_USAGE, or what a fn returned) with eb naming the flag.
 */
int duet_flags_parse(int argc, char **argv, const struct duet_flag *flags, bool *seen,
                     const char **pos, size_t max_pos, size_t *n_pos,
                     struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Store one value into flag f as the parser would (for environment and defaults). */
int duet_flag_set(const struct duet_flag *f, const char *value,
                  struct duet_errbuf *eb) DUET_MUST_CHECK;

#endif
