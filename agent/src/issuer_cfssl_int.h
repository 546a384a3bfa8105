/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the CFSSL issuer makes of a reply, apart from the HTTP exchange that
 * fetched it (issuer_cfssl.c): the envelope, the signed certificate and the
 * /info result. Private to the agent; tests/fuzz/fuzz_cfssl.c drives these
 * with arbitrary bodies, so the fuzzer and the daemon share one parser.
 */
#ifndef AG_ISSUER_CFSSL_INT_H
#define AG_ISSUER_CFSSL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "duet/err.h"
#include "duet/pki.h"

/* Refuse a certificate with less than this much usable life left. */
#define AG_CFSSL_MIN_USABLE_S 60

/*
 * A reply to /sign or /authsign (`what` names it in messages): body is
 * NUL-terminated, status the HTTP status. On success *chain (owned by the
 * caller) holds result.certificate and *info its leaf's details. Failures:
 * DUET_E_ISSUER (a CFSSL error, with its code and message, or a reply that
 * is not a usable envelope), DUET_E_EXPIRED (the leaf has less than
 * AG_CFSSL_MIN_USABLE_S seconds left at `now`: *info is filled so the caller
 * can say more), DUET_ENOMEM. eb says why; *chain is then NULL.
 */
int ag_cfssl_sign_reply(const char *body, long status, const char *what, int64_t now,
                        struct duet_chain **chain, struct duet_cert_info *info,
                        struct duet_errbuf *eb) DUET_MUST_CHECK;

/*
 * A reply to /info: 0 when CFSSL reports success (it can sign), with the
 * profile's expiry copied into expiry ("?" when the reply has none);
 * otherwise DUET_E_ISSUER as above. expiry may be NULL.
 */
int ag_cfssl_info_reply(const char *body, long status, char *expiry, size_t size,
                        struct duet_errbuf *eb) DUET_MUST_CHECK;

#endif
