/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which product a pod may hold: the binding policy of the CSI mode, default
 * deny. A pure function of the configuration and what kubelet says about
 * the pod, so it is tested on its own (tests/unit/test_csi_policy.c).
 */
#ifndef AG_CSI_POLICY_H
#define AG_CSI_POLICY_H

#include <stddef.h>

#include "config.h"

/*
 * The pod (namespace ns, ServiceAccount sa) asks for `want` (the volume's
 * `product` attribute; NULL or "" when it names none). Returns 0 with
 * *product pointing into c, or a gRPC status code with `why` (one line for
 * the pod's events):
 *   PERMISSION_DENIED  no binding for ns/sa, or the binding lacks `want`;
 *   INVALID_ARGUMENT   `want` missing while the binding holds several products.
 */
int ag_csi_decide(const struct ag_config *c, const char *ns, const char *sa, const char *want,
                  const char **product, char *why, size_t why_size);

#endif
