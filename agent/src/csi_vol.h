/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The volumes of the CSI node plugin, kept in a tmpfs the agent mounts at
 * csi.state_dir:
 *
 *   state_dir/v/<sha256 of volume_id>/meta.json   who it is for (0600)
 *   state_dir/v/<sha256 of volume_id>/data/       Secret-volume layout, the
 *                                                 bind-mount source
 *
 * Each volume is an identity of its own (identity.h): its own key, its own
 * rotation, published into data/ with the atomic writer, so a pod sees a
 * renewal through its read-only bind mount. The metadata lets a restarted
 * agent find its volumes again; the tmpfs outlives the agent's container.
 *
 * A volume's first certificate is made off the loop when the issuer can
 * (ag_csi_vol_start: the key, the CSR, the CA's signature and the check run
 * on a work queue's thread) and published on the loop when it comes back:
 * the tmpfs, the files and the mount table have one owner. Until then the
 * volume is in the store, pending (job set), with nothing on disk. The rest
 * of this file runs on the loop thread.
 */
#ifndef AG_CSI_VOL_H
#define AG_CSI_VOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "identity.h"

#include "duet/err.h"

struct ag_gen;
struct ag_workq;
struct ag_csi_job;
struct ag_csi_waiter;

/* What a volume is: the request's facts that must match on a republish. */
struct ag_csi_volspec {
    const char *volume_id, *target;
    const char *ns, *pod, *pod_uid, *sa; /* from kubelet's pod information */
    const char *product;
    bool has_group; /* the pod's fsGroup */
    gid_t group;
};

struct ag_csi_vol {
    char *volume_id, *target, *ns, *pod, *pod_uid, *sa, *product;
    bool has_group;
    gid_t group;
    char *root; /* state_dir/v/<hash> */
    char *data; /* root/data */
    char *name; /* "ns/pod/product", for logs */
    /* NULL while the configuration no longer grants the product (removed
     * from identities or bindings): the set stays, but is not renewed.
     * NULL too while pending (job set). */
    struct ag_ident *ident;
    struct ag_csi_job *job;        /* set while the first certificate is made off the loop */
    struct ag_csi_waiter *waiters; /* the caller's, while pending (csi.c: held calls) */
};

/*
 * How a pending volume ended, on the loop: rc 0, it is live (published,
 * mounted); rc < 0, it failed (eb says why, the class whether the issuer or
 * the node) or the queue was stopped (-ECANCELED): it has left the store,
 * nothing of it is on disk, and it is freed when the callback returns.
 */
typedef void ag_csi_vol_done(void *arg, struct ag_csi_vol *v, int rc, const struct duet_errbuf *eb);

struct ag_csi_store {
    char *state_dir;
    char *vdir; /* state_dir/v */
    struct ag_csi_vol **v;
    size_t n, cap;
    struct ag_gen *gen; /* borrowed: the current generation (rebind changes it) */
    unsigned gen_no;    /* counts the rebinds: a job from an older one is not published */
    /* Issuance off the loop (ag_csi_store_async); set before the first volume starts. */
    struct ag_workq *q;
    ag_csi_vol_done *done;
    void *done_arg;
    int delay_ms; /* DUET_TEST_CSI_ISSUE_DELAY_MS: tests widen the pending window */
};

/* Mount (or find) the tmpfs and its v/ folder. */
int ag_csi_store_open(struct ag_csi_store *s, const char *state_dir, unsigned size_mb,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;
/*
 * Make first certificates on q's threads, reporting to done; before any
 * ag_csi_vol_start. q is borrowed and must be freed before the store is
 * closed.
 */
void ag_csi_store_async(struct ag_csi_store *s, struct ag_workq *q, ag_csi_vol_done *done,
                        void *arg);

/* Frees the memory; the volumes stay on the tmpfs for the next start. */
void ag_csi_store_close(struct ag_csi_store *s);

struct ag_csi_vol *ag_csi_store_find(const struct ag_csi_store *s, const char *volume_id);
struct ag_csi_vol *ag_csi_store_find_target(const struct ag_csi_store *s, const char *target);

/* True when spec describes v (a republish of the same volume). */
bool ag_csi_vol_same(const struct ag_csi_vol *v, const struct ag_csi_volspec *spec);

/*
 * Start making the volume off the loop: it is in the store at once, pending
 * (*out, job set), and done() reports how it ended: folder, identity, first
 * certificate, metadata, bind mount onto spec->target, or nothing left (no
 * folder, no mount) with a code whose class says whether the issuer (IO:
 * retry) or the node (anything else) failed. A failure to start (no
 * snapshot: the CA files; memory) leaves nothing either, with eb saying why.
 */
int ag_csi_vol_start(struct ag_csi_store *s, struct ag_gen *g, const struct ag_csi_volspec *spec,
                     struct ag_csi_vol **out, struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * Unpublish a pending volume: it leaves the store now (its waiters are the
 * caller's to answer first); its job's key and certificate are dropped when
 * the job comes back, and nothing is written. done() is not called.
 */
void ag_csi_vol_cancel(struct ag_csi_store *s, struct ag_csi_vol *v);

/* Bind the volume again onto its target (republish after a lost mount). */
int ag_csi_vol_remount(struct ag_csi_vol *v, struct duet_errbuf *eb) DUET_MUST_CHECK;

/* Unmount its target, wipe and remove its folder, drop it from the store and free it. */
int ag_csi_vol_destroy(struct ag_csi_store *s, struct ag_csi_vol *v,
                       struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * (Re)build every volume's identity against generation g (start, and every
 * configuration reload, before the old generation is freed), carrying the
 * rotation state and counters over. A volume whose product g no longer
 * grants to its ServiceAccount is left without identity, and logged.
 */
void ag_csi_store_rebind(struct ag_csi_store *s, struct ag_gen *g);

/*
 * At start: read every volume's metadata; a volume whose target is no longer
 * mounted (the pod went away while the agent was down) or whose metadata is
 * unreadable is wiped. Returns the number of volumes kept.
 */
size_t ag_csi_store_restore(struct ag_csi_store *s, struct ag_gen *g);

#endif
