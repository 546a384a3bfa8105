/* SPDX-License-Identifier: Apache-2.0 */
/*
 * duet-sidecar --outbound/--inbound specs: any bytes, parsed as both kinds.
 * A parse either fails with DUET_E_USAGE and a message, or yields a
 * listener whose strings are NUL-terminated within their arrays.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct sc_listen_cfg *l)
{
    const char *uris[1] = {"spiffe://example.org/dev/productA"};

    if (!memchr(l->listen, 0, sizeof(l->listen)) || !memchr(l->host, 0, sizeof(l->host)) ||
        !memchr(l->sni, 0, sizeof(l->sni)) || l->port == 0 || l->port > 65535 ||
        l->n_cn > SC_MAX_ALLOW || l->n_san > SC_MAX_ALLOW)
        abort();
    (void)sc_cfg_allowed(l, "dev.productA.dev", uris, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sc_listen_cfg l;
    struct duet_errbuf eb;
    char *s = malloc(size + 1);

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (int dir = SC_OUTBOUND; dir <= SC_INBOUND; dir++) {
        int rc;

        duet_errbuf_clear(&eb);
        rc = sc_cfg_parse_spec(&l, (enum sc_dir)dir, s, &eb);
        if (rc == 0)
            check(&l);
        else if (rc != DUET_E_USAGE || eb.msg[0] == '\0')
            abort();
    }
    free(s);
    return 0;
}
