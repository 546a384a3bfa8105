/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The few mount-table operations the CSI node plugin needs, on the kernel
 * directly (mount(2), umount2(2), /proc/self/mountinfo): the agent's tmpfs
 * of volumes, a read-only bind mount per volume onto the pod's target path,
 * and the questions "is this a mount point" and "wipe this folder". Root
 * (CAP_SYS_ADMIN in the mount namespace kubelet shares) is required.
 */
#ifndef AG_CSI_MOUNT_H
#define AG_CSI_MOUNT_H

#include <stdbool.h>

#include "duet/err.h"

/*
 * Make `dir` (created 0700 with parents when missing) a tmpfs of size_mb,
 * mode 0700, nosuid, nodev, noexec, unless it already is one (an agent that
 * restarts finds the tmpfs of its previous run, with the volumes in it).
 */
int ag_mount_state_tmpfs(const char *dir, unsigned size_mb, struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * Bind `src` onto `target` read-only (nosuid, nodev, noexec), creating
 * `target` (one level, 0750) when missing. On failure nothing stays mounted.
 */
int ag_mount_bind_ro(const char *src, const char *target, struct duet_errbuf *eb) DUET_MUST_CHECK;

/* Unmount everything stacked on `target`, then remove the folder. Absent or not mounted: 0. */
int ag_mount_release(const char *target, struct duet_errbuf *eb) DUET_MUST_CHECK;

/* 1 when `path` is a mount point in this mount namespace, 0 when not, negative on error. */
int ag_mount_is_mountpoint(const char *path) DUET_MUST_CHECK;

/*
 * Remove the folder `dir` and everything below it without following links;
 * files named tls.key are overwritten with zeros before they are unlinked.
 */
int ag_wipe_tree(const char *dir, struct duet_errbuf *eb) DUET_MUST_CHECK;

#endif
