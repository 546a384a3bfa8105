/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the agent configuration: JSON parsing (cJSON), the
 * table-driven binder (common/src/cfg.c) and the cross-field rules
 * (agent/src/config.c). An accepted configuration must hold what load
 * promises: at least one identity, each with a product and a key type.
 * Deterministic: no clock, no files; everything bound is freed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct duet_errbuf eb = {{0}};
    struct ag_config *c = NULL;

    if (size > AG_CONFIG_MAX_SIZE)
        return 0;
    if (ag_config_parse((const char *)data, size, &c, &eb) == 0) {
        if (c->n_identities == 0 || !c->identities[0].product || !c->identities[0].key_type ||
            !c->issuer.ca_bundle || c->validity <= c->renew_before)
            abort();
        ag_config_free(c);
    } else if (c != NULL || eb.msg[0] == '\0') {
        abort(); /* a refusal always says why and returns nothing */
    }
    return 0;
}
