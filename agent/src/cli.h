/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the one-shot commands (ca init, issue, inspect): a small
 * table-driven flag parser, name and number checks, passphrase files, the
 * one-line failure report, and an all-or-nothing output writer.
 */
#ifndef AG_CLI_H
#define AG_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "duet/compiler.h"
#include "duet/err.h"
#include "duet/flags.h"
#include "duet/pki.h"

/* Flags a command may take, in addition to --log-level and --help. */
#define AG_CLI_MAX_FLAGS 31

/*
 * Parse argv[1..] with duet_flags_parse against flags (terminated by a
 * {NULL} entry, at most AG_CLI_MAX_FLAGS). Values point into argv.
 * Positional arguments go to pos (at most max_pos). Every command also
 * accepts --log-level LEVEL (applied here) and --help (prints `usage` on
 * stdout and returns 1: the caller exits 0). Returns 0, 1 for --help, or
 * DUET_E_USAGE with eb naming the flag.
 */
int ag_cli_parse(int argc, char **argv, const struct duet_flag *flags, const char *usage,
                 const char **pos, size_t max_pos, size_t *n_pos,
                 struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * Report a failure: one line "duet-agent CMD: MESSAGE" on stderr (the errbuf
 * text, else the code's text). Returns the exit status for rc (2 for usage
 * and configuration, 1 otherwise).
 */
int ag_cli_fail(const char *cmd, int rc, const struct duet_errbuf *eb);

/* A product or environment name: [A-Za-z0-9-]+, at most 63 characters. */
int ag_cli_check_name(const char *what, const char *v, struct duet_errbuf *eb) DUET_MUST_CHECK;
/* --key-type: v, or def when v is NULL. DUET_E_KEY_TYPE naming the value. */
int ag_cli_key_type(const char *v, const char *def, enum duet_key_type *out,
                    struct duet_errbuf *eb) DUET_MUST_CHECK;
/* A positive whole number of days, at most 36500. */
int ag_cli_parse_days(const char *flag, const char *v, int64_t *days,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;
/*
 * Read a passphrase file: its first line without the line ending (as
 * `openssl -passin file:` does). Empty is refused. *pass is cleansed and
 * freed by the caller with duet_secret_free(*pass, *len + 1).
 */
int ag_cli_read_pass(const char *path, char **pass, size_t *len,
                     struct duet_errbuf *eb) DUET_MUST_CHECK;
/* "2026-11-29T10:00:00Z" */
const char *ag_cli_time(int64_t t, char *buf, size_t size);

/*
 * All-or-nothing output into one folder. Files are written to hidden
 * temporary names beside their final name and fsynced; commit renames them
 * into place (refusing to replace an existing file unless force) and fsyncs
 * the folder; abort (or a failed commit) removes every temporary and every
 * file this set already renamed, so a failure leaves nothing behind.
 */
#define AG_OUT_MAX 4

struct ag_out {
    char dir[4096];
    bool force;
    size_t n;
    struct {
        char final[4200];
        char tmp[4200];
        bool placed;
    } f[AG_OUT_MAX];
};

/* Create dir (with parents, 0755) when missing. */
int ag_out_init(struct ag_out *o, const char *dir, bool force,
                struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Refuse (DUET_E_USAGE, naming the path) when dir/name exists and !force. */
int ag_out_check(const struct ag_out *o, const char *name, struct duet_errbuf *eb) DUET_MUST_CHECK;
int ag_out_add(struct ag_out *o, const char *name, const void *data, size_t len, mode_t mode,
               struct duet_errbuf *eb) DUET_MUST_CHECK;
int ag_out_commit(struct ag_out *o, struct duet_errbuf *eb) DUET_MUST_CHECK;
void ag_out_abort(struct ag_out *o);
/* ag_out_check for each "<base><ext>". */
int ag_out_check_names(const struct ag_out *o, const char *base, const char *const *exts, size_t n,
                       struct duet_errbuf *eb) DUET_MUST_CHECK;
/* ag_out_add under the name "<base><ext>". */
int ag_out_add_ext(struct ag_out *o, const char *base, const char *ext, const void *data,
                   size_t len, mode_t mode, struct duet_errbuf *eb) DUET_MUST_CHECK;
/* The final path of entry i, for messages. */
const char *ag_out_path(const struct ag_out *o, size_t i);

#endif
