/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private keys made ahead of demand, in memory only. When kubelet starts a
 * hundred pods at once, each CSI volume needs a fresh key, and an RSA-2048
 * key costs about 90 ms of CPU: generated on demand, serially on the loop,
 * the last pod would wait ten seconds. Worker threads keep up to `per_type`
 * keys of each configured type ready; the loop or a signing thread takes
 * one (never the same key twice: a key taken leaves the pool for good) and
 * falls back to generating in place when the pool is empty. Keys never touch the disk;
 * the pool frees (and BoringSSL cleanses) what it still holds at exit.
 */
#ifndef AG_KEYPOOL_H
#define AG_KEYPOOL_H

#include <stddef.h>

#include "duet/err.h"
#include "duet/pki.h"

struct ag_keypool;

/*
 * Start `threads` workers (1..8) filling per_type (1..4096) keys of each of
 * the n types. Call after the loop has blocked its signals, so the workers
 * inherit the mask and never take SIGTERM or SIGHUP.
 */
int ag_keypool_new(const enum duet_key_type *types, size_t n, unsigned per_type, unsigned threads,
                   struct ag_keypool **out, struct duet_errbuf *eb) DUET_MUST_CHECK;

/* A ready key of type t (owned by the caller), or NULL when none is ready. Never blocks long. */
struct duet_key *ag_keypool_take(struct ag_keypool *p, enum duet_key_type t);

/* Keys ready now, of every type (metrics). */
size_t ag_keypool_ready(struct ag_keypool *p);

/* Stop the workers (each finishes the key it is making), free every key. NULL is fine. */
void ag_keypool_free(struct ag_keypool *p);

#endif
