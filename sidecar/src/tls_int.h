/* SPDX-License-Identifier: Apache-2.0 */
/* Between tls_set.c and xprt_tls.c, the only files that see BoringSSL types. */
#ifndef SC_TLS_INT_H
#define SC_TLS_INT_H

#include <openssl/ssl.h>

#include "cfg.h"
#include "tls_set.h"

/* The set's context for clients (outbound) or servers (inbound); borrowed. */
SSL_CTX *sc_tls_set_ctx(struct sc_tls_set *s, bool server);
/* The set's CRLs (borrowed; NULL: none). */
const STACK_OF(X509_CRL) * sc_tls_set_crls(const struct sc_tls_set *s);
/* SSL_CTX_sess_set_new_cb for client contexts: keeps the session per listener. */
int sc_tls_on_new_session(SSL *ssl, SSL_SESSION *sess);

/* Does leaf pass l's allow lists (exact CN, SAN URI)? True without lists. */
bool sc_tls_leaf_allowed(const struct sc_listen_cfg *l, X509 *leaf);
/* The leaf's first whole SAN URI for the audit log, "-" when it has none. */
void sc_tls_first_uri(X509 *leaf, char *out, size_t size);

#endif
