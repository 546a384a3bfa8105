/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The binding decision of csi_policy.h. Names are compared whole and
 * exactly; a namespace or ServiceAccount is never matched by prefix or
 * pattern, so a binding grants exactly what it lists.
 */
#include <stdio.h>
#include <string.h>

#include "csi_policy.h"
#include "grpc_server.h"

static const struct ag_csi_binding *find_binding(const struct ag_csi_cfg *k, const char *ns,
                                                 const char *sa)
{
    for (size_t i = 0; i < k->n_bindings; i++)
        if (strcmp(k->bindings[i].namespace, ns) == 0 &&
            strcmp(k->bindings[i].service_account, sa) == 0)
            return &k->bindings[i];
    return NULL;
}

int ag_csi_decide(const struct ag_config *c, const char *ns, const char *sa, const char *want,
                  const char **product, char *why, size_t why_size)
{
    const struct ag_csi_binding *b = c->csi ? find_binding(c->csi, ns, sa) : NULL;

    *product = NULL;
    if (want && !*want)
        want = NULL;
    if (!b) {
        snprintf(why, why_size, "ServiceAccount %s/%s is not bound to %s%s", ns, sa,
                 want ? "product " : "any product", want ? want : "");
        return AG_GRPC_PERMISSION_DENIED;
    }
    if (!want) {
        if (b->n_products == 1) {
            *product = b->products[0];
            return 0;
        }
        snprintf(why, why_size,
                 "ServiceAccount %s/%s may hold %zu products: name one in the "
                 "volume attribute \"product\"",
                 ns, sa, b->n_products);
        return AG_GRPC_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < b->n_products; i++) {
        if (strcmp(b->products[i], want) == 0) {
            *product = b->products[i];
            return 0;
        }
    }
    snprintf(why, why_size, "ServiceAccount %s/%s may not hold product %s", ns, sa, want);
    return AG_GRPC_PERMISSION_DENIED;
}
