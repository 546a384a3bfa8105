/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issuing: a leaf certificate from a CSR signed by a CA key, and a
 * self-signed root. The profile is fixed here (DESIGN.md "Identities and
 * files"), not taken from the CSR: only the requester's public key, and its
 * subject and SAN unless the caller overrides them, come from the request.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "duet/alloc.h"
#include "pki_int.h"

/* 128 random bits, top bit cleared so that the INTEGER is positive (RFC 5280 4.1.2.2). */
static int set_random_serial(X509 *x)
{
    uint8_t b[16];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *sn = NULL;
    int ok;

    do {
        if (!RAND_bytes(b, sizeof(b)))
            return DUET_E_CRYPTO;
        b[0] &= 0x7f;
    } while (b[0] == 0 && b[1] == 0); /* keep it long and never zero */
    bn = BN_bin2bn(b, sizeof(b), NULL);
    sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    ok = sn && X509_set_serialNumber(x, sn);
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    return ok ? 0 : DUET_ENOMEM;
}

/* notBefore backdated by min(5 min, validity/10) for clock skew; notAfter exact. */
static int set_validity(X509 *x, int64_t now, int64_t validity)
{
    int64_t back = DUET_MIN((int64_t)300, validity / 10);
    ASN1_TIME *nb = ASN1_TIME_set(NULL, (time_t)(now - back));
    ASN1_TIME *na = ASN1_TIME_set(NULL, (time_t)(now + validity));
    int ok = nb && na && X509_set1_notBefore(x, nb) && X509_set1_notAfter(x, na);

    ASN1_TIME_free(nb);
    ASN1_TIME_free(na);
    return ok ? 0 : DUET_E_CRYPTO;
}

/* Version, serial, names, key and validity: everything but extensions. */
static int fill_base(X509 *x, X509_NAME *subject, X509_NAME *issuer, EVP_PKEY *pub, int64_t now,
                     int64_t validity)
{
    if (!X509_set_version(x, X509_VERSION_3) || !X509_set_subject_name(x, subject) ||
        !X509_set_issuer_name(x, issuer) || !X509_set_pubkey(x, pub))
        return DUET_E_CRYPTO;
    DUET_TRY(set_random_serial(x));
    return set_validity(x, now, validity);
}

static int finish_sign(X509 *x, EVP_PKEY *signer, struct duet_errbuf *eb)
{
    if (!X509_sign(x, signer, duet__pki_digest_for(signer))) {
        duet_errf(eb, DUET_E_CRYPTO, "signing the certificate failed");
        duet_errbuf_add_ssl(eb);
        return DUET_E_CRYPTO;
    }
    return 0;
}

static int wrap_x509(X509 *x, struct duet_cert **out)
{
    int rc = duet_cert_from_x509(x, out);

    X509_free(x); /* the duet_cert holds its own reference */
    return rc;
}

static int name_for(const struct duet_subject *s, X509_NAME **out, struct duet_errbuf *eb)
{
    int rc;

    *out = X509_NAME_new();
    if (!*out)
        return DUET_ENOMEM;
    rc = duet__pki_name_from_subject(*out, s, eb);
    if (rc < 0) {
        X509_NAME_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- root CA ---- */

static int fill_root(X509 *x, const struct duet_key *k, X509_NAME *name, int64_t now,
                     int64_t validity, struct duet_errbuf *eb)
{
    DUET_TRY(fill_base(x, name, name, k->pkey, now, validity));
    DUET_TRY(duet__pki_add_ext_conf(x, x, NID_basic_constraints, "critical,CA:TRUE", eb));
    DUET_TRY(duet__pki_add_ext_conf(x, x, NID_key_usage, "critical,keyCertSign,cRLSign", eb));
    DUET_TRY(duet__pki_add_ext_conf(x, x, NID_subject_key_identifier, "hash", eb));
    /* Self-signed: the AKI repeats our own SKI (added just above), as `openssl req -x509` does. */
    DUET_TRY(duet__pki_add_ext_conf(x, x, NID_authority_key_identifier, "keyid:always", eb));
    return finish_sign(x, k->pkey, eb);
}

int duet_ca_self_sign(const struct duet_key *k, const struct duet_subject *subject, int64_t now,
                      int64_t validity, struct duet_cert **out, struct duet_errbuf *eb)
{
    X509_NAME *name;
    X509 *x;
    int rc;

    if (validity <= 0)
        return duet_errf(eb, DUET_EINVAL, "validity must be positive");
    if (!subject || !subject->cn)
        return duet_errf(eb, DUET_E_SUBJECT, "a root CA subject needs a CN");
    DUET_TRY(name_for(subject, &name, eb));
    x = X509_new();
    rc = x ? fill_root(x, k, name, now, validity, eb) : DUET_ENOMEM;
    X509_NAME_free(name);
    if (rc < 0) {
        X509_free(x);
        return rc;
    }
    return wrap_x509(x, out);
}

/* ---- leaf ---- */

/* A CA is a certificate with basicConstraints CA:TRUE; anything else cannot issue. */
static int check_issuer(const struct duet_sign_req *r, struct duet_errbuf *eb)
{
    X509 *ca = r->ca_cert->x;
    int64_t ca_nb = duet_asn1_time_to_unix(X509_get0_notBefore(ca));
    int64_t ca_na = duet_asn1_time_to_unix(X509_get0_notAfter(ca));
    char cn[256] = "";

    X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, cn, sizeof(cn));
    if (!(X509_get_extension_flags(ca) & EXFLAG_CA) || X509_check_ca(ca) != 1)
        return duet_errf(eb, DUET_E_NOT_CA,
                         "CA certificate \"%s\" is not a CA (no basicConstraints CA:TRUE)", cn);
    if (duet_key_matches_cert(r->ca_key, r->ca_cert) < 0)
        return duet_errf(eb, DUET_E_KEY_MISMATCH, "CA key does not match CA certificate \"%s\"",
                         cn);
    if (r->validity <= 0)
        return duet_errf(eb, DUET_EINVAL, "validity must be positive");
    if (r->now < ca_nb || r->now >= ca_na)
        return duet_errf(eb, DUET_E_EXPIRED, "CA certificate \"%s\" is expired or not yet valid",
                         cn);
    if (r->now + r->validity > ca_na)
        return duet_errf(eb, DUET_E_EXPIRED,
                         "requested validity (%lld days) ends after the CA certificate \"%s\" "
                         "expires (%lld days left)",
                         (long long)(r->validity / 86400), cn,
                         (long long)((ca_na - r->now) / 86400));
    return 0;
}

/* SANs: the caller's override, else the request's own subjectAltName, else none. */
static int add_sans(X509 *x, const struct duet_sign_req *r, struct duet_errbuf *eb)
{
    GENERAL_NAMES *gens = NULL;
    int ok = 1;

    if (r->sans) {
        DUET_TRY(duet__pki_gens_from_sans(r->sans, &gens, eb));
    } else {
        STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(r->csr->req);

        gens = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        ERR_clear_error();
    }
    if (gens)
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
    GENERAL_NAMES_free(gens);
    return ok ? 0 : DUET_E_CRYPTO;
}

static int add_leaf_exts(X509 *x, X509 *ca, EVP_PKEY *pub, enum duet_profile profile,
                         struct duet_errbuf *eb)
{
    /* keyEncipherment only means something for RSA key transport (RFC 5280 4.2.1.3). */
    const char *ku = EVP_PKEY_id(pub) == EVP_PKEY_RSA ? "critical,digitalSignature,keyEncipherment"
                                                      : "critical,digitalSignature";
    const char *eku = profile == DUET_PROFILE_SERVER ? "serverAuth" : "clientAuth";
    /* A CA without SKI (rare, but legal) gets an AKI by issuer and serial instead. */
    const char *aki = X509_get_ext_by_NID(ca, NID_subject_key_identifier, -1) >= 0
                          ? "keyid:always"
                          : "keyid,issuer:always";

    DUET_TRY(duet__pki_add_ext_conf(x, ca, NID_basic_constraints, "critical,CA:FALSE", eb));
    DUET_TRY(duet__pki_add_ext_conf(x, ca, NID_key_usage, ku, eb));
    DUET_TRY(duet__pki_add_ext_conf(x, ca, NID_ext_key_usage, eku, eb));
    DUET_TRY(duet__pki_add_ext_conf(x, ca, NID_subject_key_identifier, "hash", eb));
    return duet__pki_add_ext_conf(x, ca, NID_authority_key_identifier, aki, eb);
}

static int fill_leaf(X509 *x, const struct duet_sign_req *r, EVP_PKEY *pub, struct duet_errbuf *eb)
{
    X509 *ca = r->ca_cert->x;
    X509_NAME *subject = NULL;
    int rc;

    if (r->subject)
        DUET_TRY(name_for(r->subject, &subject, eb));
    rc = fill_base(x, subject ? subject : X509_REQ_get_subject_name(r->csr->req),
                   X509_get_subject_name(ca), pub, r->now, r->validity);
    X509_NAME_free(subject);
    DUET_TRY(rc);
    DUET_TRY(add_leaf_exts(x, ca, pub, r->profile, eb));
    DUET_TRY(add_sans(x, r, eb));
    return finish_sign(x, r->ca_key->pkey, eb);
}

int duet_cert_sign(const struct duet_sign_req *r, struct duet_cert **out, struct duet_errbuf *eb)
{
    EVP_PKEY *pub;
    X509 *x;
    int rc;

    if (r->profile != DUET_PROFILE_CLIENT && r->profile != DUET_PROFILE_SERVER)
        return duet_errf(eb, DUET_EINVAL, "unknown certificate profile %d", (int)r->profile);
    DUET_TRY(check_issuer(r, eb));
    pub = X509_REQ_get_pubkey(r->csr->req);
    if (!pub)
        return duet_errf(eb, DUET_E_CSR, "CSR public key cannot be read");
    x = X509_new();
    rc = x ? fill_leaf(x, r, pub, eb) : DUET_ENOMEM;
    EVP_PKEY_free(pub);
    if (rc < 0) {
        X509_free(x);
        return rc;
    }
    return wrap_x509(x, out);
}
