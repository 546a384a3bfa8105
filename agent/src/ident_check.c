/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Does a certificate match what the configuration asks for? One comparison,
 * used on the issuer's answer before it is published (an issuer that returns
 * more than was asked, a CA:TRUE certificate say, is refused) and on a set
 * found on disk at start, on SIGHUP and on every scan (a set made under
 * another configuration is re-issued). Each refusal names the field.
 *
 * Checked: basicConstraints present with CA:FALSE; keyUsage present with
 * digitalSignature and nothing beyond keyEncipherment; extendedKeyUsage
 * exactly clientAuth (serverAuth for a server identity); the subject holds
 * exactly the configured attributes; the SANs are exactly the configured
 * ones (the URI may be missing for an issuer that cannot add it); the public
 * key has the configured type; the lifetime is within the configured
 * validity plus the CA's backdating (and, for an issuer that honours the
 * validity we ask for, not shorter than it); the leaf was signed by the
 * configured CA certificate when the issuer can say which that is. Whether
 * the key matches and the chain verifies is ag_set_check's part (issuer.c).
 *
 * BoringSSL appears here because this is certificate parsing (STYLE.md 2).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "identity.h"

#include "duet/duration.h"
#include "duet/pki_bssl.h"

static int mismatch(struct duet_errbuf *eb, const char *fmt, ...) DUET_PRINTF(2, 3);
static int mismatch(struct duet_errbuf *eb, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return duet_errf(eb, DUET_E_VERIFY, "%s", msg);
}

static int check_ca_false(X509 *x, struct duet_errbuf *eb)
{
    uint32_t fl = X509_get_extension_flags(x);

    if (fl & EXFLAG_INVALID)
        return mismatch(eb, "certificate has an invalid extension");
    if (!(fl & EXFLAG_BCONS))
        return mismatch(eb, "basicConstraints is missing (want CA:FALSE)");
    if (fl & EXFLAG_CA)
        return mismatch(eb, "basicConstraints is CA:TRUE (want CA:FALSE)");
    return 0;
}

/* digitalSignature required; keyEncipherment allowed (RSA key transport,
 * and CFSSL profiles add it to EC keys too); anything else refused. */
static int check_key_usage(X509 *x, struct duet_errbuf *eb)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } extra[] = {
        {KU_NON_REPUDIATION, "nonRepudiation"},
        {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
        {KU_KEY_AGREEMENT, "keyAgreement"},
        {KU_KEY_CERT_SIGN, "keyCertSign"},
        {KU_CRL_SIGN, "cRLSign"},
        {KU_ENCIPHER_ONLY, "encipherOnly"},
        {KU_DECIPHER_ONLY, "decipherOnly"},
    };
    uint32_t ku;

    if (!(X509_get_extension_flags(x) & EXFLAG_KUSAGE))
        return mismatch(eb, "keyUsage is missing (want digitalSignature)");
    ku = X509_get_key_usage(x);
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
        if (ku & extra[i].bit)
            return mismatch(eb, "keyUsage has %s (want digitalSignature only)", extra[i].name);
    if (!(ku & KU_DIGITAL_SIGNATURE))
        return mismatch(eb, "keyUsage lacks digitalSignature");
    return 0;
}

static int check_eku(X509 *x, bool server, struct duet_errbuf *eb)
{
    const char *want = server ? "serverAuth" : "clientAuth";
    int want_nid = server ? NID_server_auth : NID_client_auth;
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    int rc = 0;

    if (!eku)
        return mismatch(eb, "extendedKeyUsage is missing (want %s only)", want);
    for (size_t i = 0; rc == 0 && i < sk_ASN1_OBJECT_num(eku); i++) {
        int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));

        if (nid != want_nid)
            rc = mismatch(eb, "extendedKeyUsage has %s (want %s only)",
                          nid != NID_undef ? OBJ_nid2sn(nid) : "an unknown purpose", want);
    }
    if (rc == 0 && sk_ASN1_OBJECT_num(eku) != 1)
        rc = mismatch(eb, "extendedKeyUsage is not exactly %s", want);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return rc;
}

/* The subject carries no attribute beyond the configured ones (issuer.c
 * has compared their values, email excepted). */
static int check_subject_exact(X509 *x, const struct duet_subject *s, struct duet_errbuf *eb)
{
    X509_NAME *name = X509_get_subject_name(x);
    const char *fields[] = {s->c, s->st, s->l, s->o, s->ou, s->cn, s->email};
    int want = 0, idx;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        want += fields[i] != NULL;
    idx = X509_NAME_get_index_by_NID(name, NID_pkcs9_emailAddress, -1);
    if ((idx >= 0) != (s->email != NULL))
        return mismatch(eb, "subject emailAddress is not \"%s\"", s->email ? s->email : "(absent)");
    if (idx >= 0) {
        unsigned char *utf8 = NULL;
        int len =
            ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
        bool same =
            len >= 0 && (size_t)len == strlen(s->email) && memcmp(utf8, s->email, (size_t)len) == 0;

        OPENSSL_free(utf8);
        if (!same)
            return mismatch(eb, "subject emailAddress is not \"%s\"", s->email);
    }
    if (X509_NAME_entry_count(name) != want)
        return mismatch(eb, "subject has %d attributes, %d configured", X509_NAME_entry_count(name),
                        want);
    return 0;
}

static bool in_list(const char *v, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && memcmp(list[i], v, len) == 0)
            return true;
    return false;
}

static bool ip_in_list(const ASN1_OCTET_STRING *ip, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char a[16];
        int alen = 0;

        if (inet_pton(AF_INET, list[i], a) == 1)
            alen = 4;
        else if (inet_pton(AF_INET6, list[i], a) == 1)
            alen = 16;
        if (alen && ASN1_STRING_length(ip) == alen &&
            memcmp(ASN1_STRING_get0_data(ip), a, (size_t)alen) == 0)
            return true;
    }
    return false;
}

/* Every SAN is one we asked for, each at most once; the caller checked that
 * the DNS names and URI we require are present. */
static int check_sans_exact(X509 *x, const struct ag_set_expect *exp, struct duet_errbuf *eb)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    const struct duet_sans *s = exp->sans;
    size_t n_uri = 0, n_dns = 0, n_ip = 0;
    int rc = 0;

    for (size_t i = 0; gens && rc == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_STRING *v = NULL;

        switch (g->type) {
        case GEN_URI:
            v = g->d.uniformResourceIdentifier;
            n_uri++;
            if (!exp->uri || (size_t)ASN1_STRING_length(v) != strlen(exp->uri) ||
                memcmp(ASN1_STRING_get0_data(v), exp->uri, strlen(exp->uri)) != 0)
                rc = mismatch(eb, "SAN has a URI other than %s", exp->uri ? exp->uri : "(none)");
            break;
        case GEN_DNS:
            v = g->d.dNSName;
            n_dns++;
            if (!s || !in_list((const char *)ASN1_STRING_get0_data(v),
                               (size_t)ASN1_STRING_length(v), s->dns, s->n_dns))
                rc = mismatch(eb, "SAN has a DNS name that was not requested");
            break;
        case GEN_IPADD:
            n_ip++;
            if (!s || !ip_in_list(g->d.iPAddress, s->ips, s->n_ips))
                rc = mismatch(eb, "SAN has an IP address that was not requested");
            break;
        default:
            rc = mismatch(eb, "SAN has a name of a kind that was not requested (type %d)", g->type);
            break;
        }
    }
    GENERAL_NAMES_free(gens);
    if (rc < 0)
        return rc;
    if (n_uri > 1 || n_dns > (s ? s->n_dns : 0) || n_ip > (s ? s->n_ips : 0))
        return mismatch(eb, "SAN repeats a name");
    if (s && n_ip != s->n_ips)
        return mismatch(eb, "SAN lacks a requested IP address");
    return 0;
}

static int check_key_type(X509 *x, enum duet_key_type want, struct duet_errbuf *eb)
{
    EVP_PKEY *pk = X509_get_pubkey(x);
    enum duet_key_type got = 0;

    if (pk && EVP_PKEY_id(pk) == EVP_PKEY_RSA) {
        unsigned bits = EVP_PKEY_bits(pk);

        got = bits == 2048   ? DUET_KEY_RSA2048
              : bits == 3072 ? DUET_KEY_RSA3072
              : bits == 4096 ? DUET_KEY_RSA4096
                             : 0;
    } else if (pk && EVP_PKEY_id(pk) == EVP_PKEY_EC) {
        int curve = EC_GROUP_get_curve_name(EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(pk)));

        got = curve == NID_X9_62_prime256v1 ? DUET_KEY_EC_P256
              : curve == NID_secp384r1      ? DUET_KEY_EC_P384
                                            : 0;
    }
    EVP_PKEY_free(pk);
    if (got != want)
        return mismatch(eb, "key type is %s, configured %s",
                        got ? duet_key_type_name(got) : "other", duet_key_type_name(want));
    return 0;
}

static int check_lifetime(const struct ag_set_expect *exp, const struct duet_cert_info *info,
                          int64_t now, struct duet_errbuf *eb)
{
    int64_t backdate = (exp->max_backdate_ms ? exp->max_backdate_ms : AG_MAX_BACKDATE_MS) / 1000;
    int64_t validity = exp->validity_ms / 1000;
    int64_t life = info->not_after - info->not_before;
    char a[32], b[32];

    duet_duration_format(life * 1000, a, sizeof(a));
    duet_duration_format(exp->validity_ms, b, sizeof(b));
    if (life > validity + backdate)
        return mismatch(eb, "lifetime %s is longer than validity %s (plus backdating)", a, b);
    /* A CA whose clock runs ahead may backdate less; it may not extend. */
    if (info->not_after > now + validity + backdate)
        return mismatch(eb, "notAfter is more than validity %s from now", b);
    if (exp->exact_lifetime && life < validity)
        return mismatch(eb, "lifetime %s is shorter than validity %s", a, b);
    return 0;
}

static int check_signer(X509 *x, const struct duet_cert *ca, struct duet_errbuf *eb)
{
    X509 *cx = duet_cert_x509(ca);
    EVP_PKEY *pk;
    int ok;

    if (X509_check_issued(cx, x) != X509_V_OK)
        return mismatch(eb, "issuer is not the configured CA certificate");
    pk = X509_get_pubkey(cx);
    ok = pk && X509_verify(x, pk) == 1;
    EVP_PKEY_free(pk);
    if (!ok)
        return mismatch(eb, "issuer is not the configured CA certificate (signature)");
    return 0;
}

int ag_cert_conforms(const struct ag_set_expect *exp, const struct duet_cert *leaf,
                     const struct duet_cert_info *info, int64_t now, struct duet_errbuf *eb)
{
    X509 *x = duet_cert_x509(leaf);

    DUET_TRY(check_ca_false(x, eb));
    DUET_TRY(check_key_usage(x, eb));
    DUET_TRY(check_eku(x, exp->server, eb));
    DUET_TRY(check_subject_exact(x, exp->subject, eb));
    DUET_TRY(check_sans_exact(x, exp, eb));
    if (exp->key_type)
        DUET_TRY(check_key_type(x, exp->key_type, eb));
    if (exp->validity_ms)
        DUET_TRY(check_lifetime(exp, info, now, eb));
    if (exp->signer)
        DUET_TRY(check_signer(x, exp->signer, eb));
    return 0;
}
