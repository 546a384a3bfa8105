/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A few threads that run CPU work off the agent's loop and hand each result
 * back to it (2026-11-30, issue 14: the CA's RSA-4096 signature per CSI
 * volume, about 5 ms, serialised a burst of pods on one core).
 *
 * A job is caller storage with two callbacks: run() on a worker thread,
 * then done() on the loop thread, from the loop's I/O step (an eventfd
 * wakes it). run() must touch only what the job owns or what nothing
 * changes meanwhile; done() may do anything a loop callback does, including
 * freeing the job. Jobs run in submission order as threads free up; done()
 * calls come in completion order.
 *
 * ag_workq_free() stops the threads (each finishes the job it runs, and a
 * job that waits on the network may watch ag_workq_abandon to finish it
 * early) and calls done(job, true) for every job not yet handed back,
 * queued or finished: nothing is lost or leaked at shutdown, and nothing
 * else runs.
 */
#ifndef AG_WORKQ_H
#define AG_WORKQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "duet/err.h"
#include "duet/loop.h"

struct ag_work;
struct ag_workq;

typedef void ag_work_run(struct ag_work *w);
/* cancelled: the queue is being freed; run() may not have run. Release the job. */
typedef void ag_work_done(struct ag_work *w, bool cancelled);

struct ag_work {
    ag_work_run *run;
    ag_work_done *done;
    struct ag_work *next; /* private to workq.c */
};

/*
 * Start `threads` workers (1..8). Call after the loop has blocked its
 * signals, so the workers inherit the mask and never take one.
 */
int ag_workq_new(struct duet_loop *loop, unsigned threads, struct ag_workq **out,
                 struct duet_errbuf *eb) DUET_MUST_CHECK;

/* Queue w (its run and done set); never fails. Loop thread. */
void ag_workq_submit(struct ag_workq *q, struct ag_work *w);

/* Jobs submitted and not yet handed back (queued, running or finished). */
size_t ag_workq_pending(const struct ag_workq *q);

/* Set once ag_workq_free has begun; readable from any thread while q lives. */
const atomic_bool *ag_workq_abandon(const struct ag_workq *q);

/* See above. NULL is fine. Loop thread. */
void ag_workq_free(struct ag_workq *q);

#endif
