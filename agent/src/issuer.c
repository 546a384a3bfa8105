/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The check every certificate passes before it is published, and every set
 * read back from disk passes before it is trusted, whatever issuer made it:
 * the key matches, the chain verifies against the current trust bundle for
 * client authentication at the current time, and the subject and URI SAN
 * are the ones configured. Subject fields are compared as UTF-8 strings so
 * that CFSSL's re-encoding as PrintableString does not count as a change.
 * Also the small error-message helpers the issuers share.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/mem.h>
#include <openssl/obj.h>
#include <openssl/x509.h>

#include "issuer.h"
#include "identity.h"

#include "duet/pki_bssl.h"

int ag_err_prefix(struct duet_errbuf *eb, int code, const char *prefix)
{
    struct duet_errbuf why;

    if (!eb)
        return code;
    why = *eb;
    duet_errbuf_clear(eb);
    return duet_errf(eb, code, "%s: %s", prefix, why.msg);
}

int ag_issuer_field_err(struct duet_errbuf *eb, const char *field)
{
    char prefix[64];

    snprintf(prefix, sizeof(prefix), "issuer.%s", field);
    return ag_err_prefix(eb, DUET_E_ISSUER_FILES, prefix);
}

/* 0 when the certificate's subject holds exactly `want` for nid (NULL: absent). */
static int field_is(X509_NAME *name, int nid, const char *want)
{
    int idx = X509_NAME_get_index_by_NID(name, nid, -1);
    unsigned char *utf8 = NULL;
    int len, rc;

    if (!want)
        return idx < 0 ? 0 : -1;
    if (idx < 0)
        return -1;
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
    if (len < 0)
        return -1;
    rc = ((size_t)len == strlen(want) && memcmp(utf8, want, (size_t)len) == 0) ? 0 : -1;
    OPENSSL_free(utf8);
    return rc;
}

static int check_subject(const struct duet_cert *leaf, const struct duet_subject *want,
                         struct duet_errbuf *eb)
{
    X509_NAME *name = X509_get_subject_name(duet_cert_x509(leaf));
    const struct {
        int nid;
        const char *key, *want;
    } f[] = {
        {NID_countryName, "C", want->c},
        {NID_stateOrProvinceName, "ST", want->st},
        {NID_localityName, "L", want->l},
        {NID_organizationName, "O", want->o},
        {NID_organizationalUnitName, "OU", want->ou},
        {NID_commonName, "CN", want->cn},
    };

    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        if (field_is(name, f[i].nid, f[i].want) < 0)
            return duet_errf(eb, DUET_E_VERIFY, "subject %s is not \"%s\"", f[i].key,
                             f[i].want ? f[i].want : "(absent)");
    }
    return 0;
}

int ag_set_check(const struct ag_set_expect *exp, const struct duet_key *key,
                 const struct duet_chain *chain, const struct duet_chain *bundle, int64_t now,
                 struct duet_cert_info *info, struct duet_errbuf *eb)
{
    const struct duet_cert *leaf;
    bool uri_ok = false;

    if (duet_chain_len(chain) == 0)
        return duet_errf(eb, DUET_E_PEM, "no certificate");
    leaf = duet_chain_at(chain, 0);
    if (duet_key_matches_cert(key, leaf) < 0)
        return duet_errf(eb, DUET_E_KEY_MISMATCH, "the key does not match the certificate");
    DUET_TRY(duet_chain_verify(chain, bundle, now,
                               exp->server ? DUET_PURPOSE_SERVER : DUET_PURPOSE_CLIENT, eb));
    if (duet_cert_info(leaf, info) < 0)
        return duet_errf(eb, DUET_E_PEM, "unreadable certificate");
    if (exp->server ? !info->server_auth : !info->client_auth)
        return duet_errf(eb, DUET_E_VERIFY, "certificate lacks %s",
                         exp->server ? "serverAuth" : "clientAuth");
    for (size_t i = 0; exp->sans && i < exp->sans->n_dns; i++) {
        bool found = false;
        for (size_t j = 0; j < info->n_dns; j++)
            found |= strcmp(info->dns[j], exp->sans->dns[i]) == 0;
        if (!found)
            return duet_errf(eb, DUET_E_VERIFY, "certificate lacks SAN DNS %s", exp->sans->dns[i]);
    }
    DUET_TRY(check_subject(leaf, exp->subject, eb));
    for (size_t i = 0; i < info->n_uris; i++)
        uri_ok |= strcmp(info->uris[i], exp->uri) == 0;
    if (!uri_ok && exp->require_uri)
        return duet_errf(eb, DUET_E_VERIFY, "certificate lacks SAN URI %s", exp->uri);
    return ag_cert_conforms(exp, leaf, info, now, eb);
}
