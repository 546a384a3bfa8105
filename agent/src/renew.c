/* SPDX-License-Identifier: Apache-2.0 */
/* Renewals off the loop: see renew.h. */
#include <stdatomic.h>

#include "renew.h"

#include "duet/alloc.h"
#include "duet/clock.h"

struct renewal {
    struct ag_work w; /* first: the queue hands back &w */
    struct ag_ident *id;
    struct ag_set_expect exp; /* points into id */
    struct ag_ca_snap *snap;
    const char *issuer; /* the issuer's static name */
    struct ag_keypool *keys;
    const atomic_bool *abandon;
    struct ag_issued got;
    int rc;
    struct duet_errbuf eb;
    int64_t t0;
    ag_renew_done *done;
    void *arg;
};

/* On a worker thread: writes only the job; reads the identity, which stays. */
static void run(struct ag_work *w)
{
    struct renewal *j = (struct renewal *)w;

    j->rc =
        ag_ident_obtain(j->id, &j->exp, j->snap, j->issuer, j->keys, j->abandon, &j->got, &j->eb);
}

static void finish(struct ag_work *w, bool stopping)
{
    struct renewal *j = (struct renewal *)w;
    struct ag_ident *id = j->id;

    id->renewing = false;
    if (id->orphaned)
        ag_ident_free(id);
    else if (!stopping)
        j->done(j->arg, id, &j->got, j->rc, &j->eb, j->t0, j->issuer);
    ag_issued_clear(&j->got); /* the key is cleansed, unless published or taken */
    ag_ca_snap_put(j->snap);
    duet_free(j);
}

int ag_renew_start(struct ag_workq *q, struct ag_ident *id, struct ag_issuer *is,
                   struct ag_keypool *keys, ag_renew_done *done, void *arg, struct duet_errbuf *eb)
{
    struct renewal *j = duet_calloc(1, sizeof(*j));
    int rc;

    DUET_BUG_ON(id->renewing);
    if (!j)
        return duet_errf(eb, DUET_ENOMEM, "out of memory");
    rc = is->ops->snapshot(is, &j->snap, eb);
    if (rc < 0) {
        duet_free(j);
        return rc;
    }
    j->w.run = run;
    j->w.done = finish;
    j->id = id;
    j->exp = ag_ident_expect(id, is);
    j->issuer = is->ops->name;
    j->keys = keys;
    j->abandon = ag_workq_abandon(q);
    j->got.key = id->pending_key;
    id->pending_key = NULL;
    j->t0 = duet_clock_mono_ms();
    j->done = done;
    j->arg = arg;
    duet_errbuf_clear(&j->eb);
    id->renewing = true;
    ag_workq_submit(q, &j->w);
    return 0;
}
