/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duet/alloc.h"
#include "duet/clock.h"
#include "tl_pki.h"

static void ok(int rc, const char *what, const struct duet_errbuf *eb)
{
    if (rc == 0)
        return;
    fprintf(stderr, "tl_pki: %s: %s (%s)\n", what, duet_err_name(rc), eb ? eb->msg : "");
    abort();
}

static void subject(struct duet_subject *s, const char *cn)
{
    char line[300];
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    snprintf(line, sizeof(line), "/O=duet test/CN=%s", cn);
    ok(duet_subject_parse(line, s, &eb), "subject", &eb);
}

void tl_ca_new(struct tl_ca *ca, const char *cn)
{
    struct duet_subject s = {0};
    struct duet_errbuf eb;
    struct duet_chain *ch;

    duet_errbuf_clear(&eb);
    memset(ca, 0, sizeof(*ca));
    subject(&s, cn);
    ok(duet_key_generate(DUET_KEY_EC_P256, &ca->key, &eb), "CA key", &eb);
    /* Valid from 2020 on, not from now: tests that sign at a fixed instant
     * (test_issuer_cfssl's NOW) must not break the day that instant falls
     * before the wall clock, as they did on 2026-12-01. */
    int64_t from = TL_CA_NOT_BEFORE, now = (int64_t)duet_clock_now();
    ok(duet_ca_self_sign(ca->key, &s, from, now - from + 3650L * 86400, &ca->cert, &eb), "CA", &eb);
    ok(duet_chain_new(&ch), "chain", NULL);
    ok(duet_chain_push(ch, ca->cert), "chain push", NULL);
    ok(duet_chain_to_pem(ch, &ca->pem, &ca->pem_len), "CA PEM", NULL);
    duet_chain_free(ch);
    duet_subject_clear(&s);
}

void tl_ca_free(struct tl_ca *ca)
{
    duet_key_free(ca->key);
    duet_cert_free(ca->cert);
    duet_free(ca->pem);
    memset(ca, 0, sizeof(*ca));
}

void tl_pem_issue(const struct tl_ca *ca, enum duet_profile profile, const char *cn, int64_t now,
                  int64_t validity, struct tl_pem *out)
{
    const char *dns[] = {"localhost"};
    const char *ips[] = {"127.0.0.1"};
    struct duet_sans sans = {NULL, 0, dns, 1, ips, 1};
    struct duet_subject s = {0};
    struct duet_errbuf eb;
    struct duet_key *k;
    struct duet_csr *csr;
    struct duet_cert *c;

    duet_errbuf_clear(&eb);
    subject(&s, cn);
    ok(duet_key_generate(DUET_KEY_EC_P256, &k, &eb), "key", &eb);
    ok(duet_csr_build(k, &s, &sans, &csr, &eb), "CSR", &eb);
    struct duet_sign_req r = {csr, ca->cert, ca->key, profile, now, validity, NULL, NULL};
    ok(duet_cert_sign(&r, &c, &eb), "sign", &eb);
    ok(duet_cert_to_pem(c, &out->cert, &out->cert_len), "cert PEM", NULL);
    ok(duet_key_to_pem(k, NULL, &out->key, &out->key_len, &eb), "key PEM", &eb);
    out->ca = duet_strdup(ca->pem);
    if (!out->ca)
        abort();
    out->ca_len = ca->pem_len;
    duet_cert_free(c);
    duet_csr_free(csr);
    duet_key_free(k);
    duet_subject_clear(&s);
}

void tl_pem_free(struct tl_pem *p)
{
    duet_free(p->cert);
    duet_secret_free(p->key, p->key_len + 1);
    duet_free(p->ca);
    memset(p, 0, sizeof(*p));
}
