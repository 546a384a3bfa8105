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
 * Everything here runs on the loop thread.
 */
#ifndef AG_CSI_VOL_H
#define AG_CSI_VOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "identity.h"

#include "duet/err.h"

struct ag_gen;

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
     * from identities or bindings): the set stays, but is not renewed. */
    struct ag_ident *ident;
};

struct ag_csi_store {
    char *state_dir;
    char *vdir; /* state_dir/v */
    struct ag_csi_vol **v;
    size_t n, cap;
};

/* Mount (or find) the tmpfs and its v/ folder. */
int ag_csi_store_open(struct ag_csi_store *s, const char *state_dir, unsigned size_mb,
                      struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Frees the memory; the volumes stay on the tmpfs for the next start. */
void ag_csi_store_close(struct ag_csi_store *s);

struct ag_csi_vol *ag_csi_store_find(const struct ag_csi_store *s, const char *volume_id);
struct ag_csi_vol *ag_csi_store_find_target(const struct ag_csi_store *s, const char *target);

/* True when spec describes v (a republish of the same volume). */
bool ag_csi_vol_same(const struct ag_csi_vol *v, const struct ag_csi_volspec *spec);

/*
 * Make the volume: folder, identity, first certificate, metadata, bind mount
 * onto spec->target; then it is in the store. On failure nothing is left
 * (no folder, no mount) and the code's class says whether the issuer
 * (IO: retry) or the node (anything else) failed.
 */
int ag_csi_vol_create(struct ag_csi_store *s, struct ag_gen *g, const struct ag_csi_volspec *spec,
                      struct ag_csi_vol **out, struct duet_errbuf *eb) DUET_MUST_CHECK;

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
