/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared-volume contract between agent and sidecar: the Kubernetes
 * Secret-volume layout (docs/internals/volume-contract.md).
 *
 *   DIR/..2026_11_29_10_00_00.123456789/{tls.key,tls.crt,ca.crt}
 *   DIR/..data -> ..2026_11_29_10_00_00.123456789
 *   DIR/tls.key -> ..data/tls.key  (and tls.crt, ca.crt)
 *
 * The writer fills a fresh version folder (files and folder fsynced), swaps
 * ..data with one rename(2) of a temporary symlink, fsyncs DIR, then removes
 * older version folders. A reader that resolves ..data once and reads every
 * file from that folder always gets one complete set. A crash at any point
 * leaves the old set or the new set; stray temporary entries are cleaned up
 * by the next publish.
 */
#ifndef DUET_VOL_H
#define DUET_VOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "duet/compiler.h"
#include "duet/err.h"

#define DUET_VOL_KEY "tls.key"
#define DUET_VOL_CERT "tls.crt"
#define DUET_VOL_CA "ca.crt"
#define DUET_VOL_DATA "..data"

struct duet_vol_file {
    const char *name; /* a plain file name: no '/', not starting with ".." */
    const void *data;
    size_t len;
    mode_t mode; /* e.g. 0600 for keys, 0644 for certificates */
};

struct duet_vol_opts {
    gid_t gid;       /* group applied to files and folders; (gid_t)-1 keeps the default */
    mode_t dir_mode; /* for the version folder, and DIR when publish creates it; 0: 0755 */
    /*
     * NULL: DIR is opened as given (CLI output folders). Otherwise DIR must
     * lie below `root` (the agent's output_dir, itself trusted as given):
     * every component below root is opened relative to its parent's fd with
     * O_NOFOLLOW | O_DIRECTORY, created when missing, and must belong to
     * this process's user and not be writable by group or others; a
     * symlink or a foreign or too open folder is refused with
     * DUET_E_VOL_UNSAFE naming the path.
     */
    const char *root;
};

/*
 * Publish `files` as the new set in `dir` (created with parents if missing).
 * Top-level symlinks are made for every name; names of the previous set that
 * are not in the new one lose their symlink. Names must be plain (no '/', not
 * "." and not starting with ".."), unique, 1 to DUET_VOL_MAX_FILES of them
 * (DUET_EINVAL otherwise). Each file gets exactly f->mode (and opts->gid).
 * Returns 0 or a negative errno / DUET_E* code with eb naming the path at
 * fault. A failure before the ..data switch leaves the previous set
 * untouched; one after it (top-level symlinks, sweeping old versions) leaves
 * the new set published and the message says what was not finished.
 * Publishes into one dir are serialised with flock(2) on the folder, across
 * processes: while another process publishes there, DUET_EAGAIN (retry
 * later). Blocking (fsync): not for an event-loop callback of the sidecar.
 */
int duet_vol_publish(const char *dir, const struct duet_vol_file *files, size_t n,
                     const struct duet_vol_opts *opts, struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * Check, without reading any content, that the published set in `dir` is
 * what duet_vol_publish(dir, files, n, opts) leaves: DIR reached below
 * opts->root as publish does; ..data a symlink to a "..<version>" folder
 * of DIR owned by this user with mode opts->dir_mode (and group opts->gid);
 * each file a regular file there (not a symlink) owned by this user with
 * exactly files[i].mode (and group opts->gid). files[i].data is not used.
 * 0, -ENOENT when DIR or ..data is missing, DUET_E_VOL_UNSAFE (eb names
 * the path and what is wrong), or another negative errno.
 */
int duet_vol_inspect(const char *dir, const struct duet_vol_file *files, size_t n,
                     const struct duet_vol_opts *opts, struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * Remove a published set and its folder DIR for good: take the publish
 * lock, overwrite every regular file in the ".." folders with zeros and
 * fsync it (the key must not survive in the file's blocks), unlink it,
 * remove the folders, ..data and the top-level links into it, then DIR
 * itself. DIR is reached as publish reaches it (opts->root). A folder
 * without ..data is not a set and is left alone (DUET_E_VOL_LAYOUT); other
 * entries of DIR (a user's own file) stay, and so does DIR then
 * (-ENOTEMPTY, the message names DIR). 0 when everything is gone.
 */
int duet_vol_remove(const char *dir, const struct duet_vol_opts *opts,
                    struct duet_errbuf *eb) DUET_MUST_CHECK;

/* One file read back from a set. data is NUL-terminated and owned by the set. */
struct duet_vol_blob {
    char *data;
    size_t len;
};

#define DUET_VOL_MAX_FILES 8

struct duet_vol_set {
    char version[256]; /* the folder ..data named, or "" for a plain folder */
    size_t n;
    struct duet_vol_blob blobs[DUET_VOL_MAX_FILES]; /* in the order of `names` */
};

/*
 * Read `names` from one consistent version of `dir`: resolve ..data once and
 * read everything from the folder it names, so a concurrent publish can never
 * mix two sets. A folder without ..data (a plain directory, or files put
 * there by hand) is read directly. Missing files give -ENOENT naming the
 * file. Files larger than max_len give DUET_E_TOOBIG.
 */
int duet_vol_read(const char *dir, const char *const *names, size_t n, size_t max_len,
                  struct duet_vol_set *out, struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Cleanses (key material) and frees the blobs; the struct is reset. */
void duet_vol_set_clear(struct duet_vol_set *s);

/* The three files of a TLS set, in the one order every reader indexes them. */
enum duet_vol_set_file {
    DUET_VOL_SET_CERT = 0, /* tls.crt */
    DUET_VOL_SET_KEY,      /* tls.key */
    DUET_VOL_SET_CA,       /* ca.crt */
    DUET_VOL_SET_N,
};

/* Their names, indexed by enum duet_vol_set_file. */
extern const char *const duet_vol_set_names[DUET_VOL_SET_N];

/* duet_vol_read of the three: out->blobs[DUET_VOL_SET_CERT] is tls.crt, and so on. */
int duet_vol_read_set(const char *dir, size_t max_len, struct duet_vol_set *out,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * Test hook: called at each step of a publish with a step number; a hook
 * that returns non-zero makes publish stop right there as if the process had
 * died (no cleanup). NULL removes it.
 */
typedef int duet_vol_fault_hook(int step, void *arg);
void duet_vol_set_fault_hook(duet_vol_fault_hook *hook, void *arg);

#endif
