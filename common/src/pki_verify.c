/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chain verification against a trust bundle at a chosen time and for a
 * purpose. A verify callback records every error and lets the check continue,
 * so that "expired, and nothing else wrong" (DUET_E_EXPIRED: renew it) can be
 * told from "wrong CA, bad signature, wrong purpose" (DUET_E_VERIFY).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "pki_int.h"

/* What the callback saw; reached through the ctx's ex_data slot 0 of the app. */
struct verify_seen {
    int first_other; /* first error that is not about time, or X509_V_OK */
    int first_time;  /* first time error, or X509_V_OK */
    int depth;       /* depth of first_other */
};

static int seen_idx = -1;

static bool is_time_error(int err)
{
    return err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID ||
           err == X509_V_ERR_CRL_HAS_EXPIRED || err == X509_V_ERR_CRL_NOT_YET_VALID;
}

static int record_cb(int ok, X509_STORE_CTX *ctx)
{
    struct verify_seen *seen = X509_STORE_CTX_get_ex_data(ctx, seen_idx);
    int err = X509_STORE_CTX_get_error(ctx);

    if (ok || !seen)
        return ok;
    if (is_time_error(err)) {
        if (seen->first_time == X509_V_OK)
            seen->first_time = err;
        return 1; /* keep going: is anything else wrong? */
    }
    if (seen->first_other == X509_V_OK) {
        seen->first_other = err;
        seen->depth = X509_STORE_CTX_get_error_depth(ctx);
    }
    /* Stop at the first real failure: later errors would only repeat it. */
    return 0;
}

static int purpose_id(enum duet_purpose p)
{
    switch (p) {
    case DUET_PURPOSE_CLIENT:
        return X509_PURPOSE_SSL_CLIENT;
    case DUET_PURPOSE_SERVER:
        return X509_PURPOSE_SSL_SERVER;
    default:
        return 0;
    }
}

static int run_verify(X509_STORE *st, const struct duet_chain *chain, int64_t at,
                      enum duet_purpose purpose, struct verify_seen *seen)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_dup(chain->sk);
    int ok = 0;

    if (!ctx || !untrusted)
        goto out;
    (void)sk_X509_shift(untrusted); /* drop the leaf: the rest are intermediates */
    if (!X509_STORE_CTX_init(ctx, st, chain->certs[0]->x, untrusted))
        goto out;
    X509_STORE_CTX_set_time(ctx, 0, (time_t)at);
    if (purpose_id(purpose) && !X509_STORE_CTX_set_purpose(ctx, purpose_id(purpose)))
        goto out;
    X509_STORE_CTX_set_ex_data(ctx, seen_idx, seen);
    X509_STORE_CTX_set_verify_cb(ctx, record_cb);
    ok = X509_verify_cert(ctx) == 1;
    if (!ok && seen->first_other == X509_V_OK)
        seen->first_other = X509_STORE_CTX_get_error(ctx);
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted); /* a shallow copy: the chain keeps its references */
    ERR_clear_error();
    return ok ? 0 : -1;
}

int duet_chain_verify(const struct duet_chain *chain, const struct duet_chain *bundle, int64_t at,
                      enum duet_purpose purpose, struct duet_errbuf *eb)
{
    struct verify_seen seen = {X509_V_OK, X509_V_OK, 0};
    X509_STORE *st;
    char cn[256] = "";
    int vr;

    if (!chain || chain->n == 0)
        return duet_errf(eb, DUET_E_VERIFY, "no certificate to verify");
    if (!bundle || bundle->n == 0)
        return duet_errf(eb, DUET_E_VERIFY, "empty trust bundle");
    if (seen_idx < 0) {
        /* Racing initialisers get two indexes; either works, one slot is wasted. */
        seen_idx = X509_STORE_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        if (seen_idx < 0)
            return DUET_E_CRYPTO;
    }
    st = duet_chain_to_store(bundle);
    if (!st)
        return DUET_ENOMEM;
    vr = run_verify(st, chain, at, purpose, &seen);
    X509_STORE_free(st);
    X509_NAME_get_text_by_NID(X509_get_subject_name(chain->certs[0]->x), NID_commonName, cn,
                              sizeof(cn));
    if (seen.first_other != X509_V_OK)
        return duet_errf(eb, DUET_E_VERIFY, "certificate \"%s\" does not verify: %s (depth %d)", cn,
                         X509_verify_cert_error_string(seen.first_other), seen.depth);
    if (seen.first_time != X509_V_OK)
        return duet_errf(eb, DUET_E_EXPIRED, "certificate \"%s\": %s", cn,
                         X509_verify_cert_error_string(seen.first_time));
    return vr == 0 ? 0 : duet_errf(eb, DUET_E_VERIFY, "certificate \"%s\" does not verify", cn);
}
