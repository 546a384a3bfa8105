/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "The set in this folder may have changed." Watches the folder itself with
 * inotify, never the files: the ..data switch replaces what a file watch
 * points at. Events are debounced so one publish gives one callback. The
 * watch re-arms when the folder is deleted and re-created or the inotify
 * queue overflows, tolerates a folder that does not exist yet (it watches the
 * nearest existing parent until it appears), and falls back to polling a
 * stat/content signature when inotify is unavailable (no instances left).
 * A slow poll also runs alongside inotify as a safety net.
 */
#ifndef DUET_WATCH_H
#define DUET_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "duet/compiler.h"
#include "duet/err.h"

struct duet_loop;
struct duet_watch;

typedef void duet_watch_cb(struct duet_watch *w, void *arg);

struct duet_watch_opts {
    int64_t settle_ms; /* debounce after the last event; 0 means 100 ms */
    int64_t poll_ms;   /* signature poll period; 0 means 10 s (1 s without inotify) */
    bool no_inotify;   /* force polling (tests, exotic file systems) */
};

/*
 * Start watching `dir` on `loop`. cb runs from the loop after changes have
 * settled; it is never called from inside duet_watch_new. The path is copied.
 */
int duet_watch_new(struct duet_loop *loop, const char *dir, const struct duet_watch_opts *opts,
                   duet_watch_cb *cb, void *arg, struct duet_watch **out,
                   struct duet_errbuf *eb) DUET_MUST_CHECK;
void duet_watch_free(struct duet_watch *w);
/* True while inotify is in use (false: polling only). */
bool duet_watch_uses_inotify(const struct duet_watch *w);

#endif
