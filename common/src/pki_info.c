/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a certificate says, flattened into struct duet_cert_info for display
 * (duet-agent inspect), logs and metrics: names, serial, fingerprint, key,
 * validity, SANs, version, CA flag and purposes.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/mem.h>

#include "pki_int.h"

int64_t duet_asn1_time_to_unix(const ASN1_TIME *t)
{
    /* The epoch as a UTCTime of our own, not ASN1_TIME_set(NULL, 0): that
     * one allocates and formats (gmtime, snprintf) on every call, and the
     * sidecar converts several times per connection (a resumption's expiry
     * check). ASN1_TIME_diff only reads it. ASN1_TIME_to_posix would do it
     * all but arrived after API 17. */
    static const unsigned char epoch_str[] = "700101000000Z";
    const ASN1_TIME epoch = {.length = (int)sizeof(epoch_str) - 1,
                             .type = V_ASN1_UTCTIME,
                             .data = (unsigned char *)epoch_str};
    int days = 0, secs = 0;

    if (!t || !ASN1_TIME_diff(&days, &secs, &epoch, t)) {
        ERR_clear_error();
        return 0;
    }
    return (int64_t)days * 86400 + secs;
}

static void hex_upper(const uint8_t *b, size_t n, char *out, size_t size)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < n && o + 2 < size; i++) {
        out[o++] = digits[b[i] >> 4];
        out[o++] = digits[b[i] & 15];
    }
    out[o] = '\0';
}

/* RFC 2253 order and escaping, but UTF-8 kept as is rather than \XX-escaped. */
static void name_line(const X509_NAME *name, char *out, size_t size)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const uint8_t *data;
    size_t n = 0;

    out[0] = '\0';
    if (!bio)
        return;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
        BIO_mem_contents(bio, &data, &n)) {
        n = DUET_MIN(n, size - 1);
        memcpy(out, data, n);
        out[n] = '\0';
    }
    BIO_free(bio);
}

static void serial_hex(const X509 *x, char *out, size_t size)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    uint8_t b[64];
    size_t n = bn ? BN_num_bytes(bn) : 0;

    out[0] = '\0';
    if (bn && n <= sizeof(b)) {
        BN_bn2bin(bn, b);
        hex_upper(b, n, out, size);
    }
    BN_free(bn);
}

static void fingerprint(const X509 *x, char *out, size_t size)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    out[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &n))
        hex_upper(md, n, out, size);
}

static void copy_ia5(char dst[][256], size_t *n, const ASN1_STRING *s)
{
    size_t len = (size_t)ASN1_STRING_length(s);

    if (*n >= DUET_CERT_MAX_SANS)
        return;
    len = DUET_MIN(len, (size_t)255);
    memcpy(dst[*n], ASN1_STRING_get0_data(s), len);
    dst[*n][len] = '\0';
    (*n)++;
}

static void copy_ip(struct duet_cert_info *out, const ASN1_OCTET_STRING *ip)
{
    const uint8_t *b = ASN1_STRING_get0_data(ip);
    int len = ASN1_STRING_length(ip);
    char *dst;

    if (out->n_ips >= DUET_CERT_MAX_SANS)
        return;
    dst = out->ips[out->n_ips];
    if (len == 4) {
        snprintf(dst, 64, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    } else if (len == 16) {
        size_t o = 0;

        for (int i = 0; i < 16; i += 2)
            o += (size_t)snprintf(dst + o, 64 - o, "%s%x", i ? ":" : "", (b[i] << 8) | b[i + 1]);
    } else {
        return;
    }
    out->n_ips++;
}

static void fill_sans(GENERAL_NAMES *gens, struct duet_cert_info *out)
{
    for (size_t i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

        if (g->type == GEN_URI)
            copy_ia5(out->uris, &out->n_uris, g->d.uniformResourceIdentifier);
        else if (g->type == GEN_DNS)
            copy_ia5(out->dns, &out->n_dns, g->d.dNSName);
        else if (g->type == GEN_IPADD)
            copy_ip(out, g->d.iPAddress);
    }
}

static void fill_key(EVP_PKEY *pub, struct duet_cert_info *out)
{
    if (pub)
        duet__pki_describe_evp(pub, out->key, sizeof(out->key));
    else
        snprintf(out->key, sizeof(out->key), "unknown");
    EVP_PKEY_free(pub);
}

int duet_cert_info(const struct duet_cert *c, struct duet_cert_info *out)
{
    X509 *x = c->x;
    GENERAL_NAMES *gens;
    uint32_t xku;

    memset(out, 0, sizeof(*out));
    name_line(X509_get_subject_name(x), out->subject, sizeof(out->subject));
    name_line(X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out->cn, sizeof(out->cn));
    serial_hex(x, out->serial, sizeof(out->serial));
    fingerprint(x, out->sha256, sizeof(out->sha256));
    fill_key(X509_get_pubkey(x), out);
    out->not_before = duet_asn1_time_to_unix(X509_get0_notBefore(x));
    out->not_after = duet_asn1_time_to_unix(X509_get0_notAfter(x));
    out->version = (int)X509_get_version(x) + 1;
    /* X509_get_extension_flags also caches the parsed extensions the calls below use. */
    out->is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
    xku = X509_get_extended_key_usage(x); /* UINT32_MAX when there is no EKU: any purpose */
    out->client_auth = (xku & XKU_SSL_CLIENT) != 0;
    out->server_auth = (xku & XKU_SSL_SERVER) != 0;
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    fill_sans(gens, out);
    GENERAL_NAMES_free(gens);
    ERR_clear_error();
    return 0;
}

int duet_csr_info(const struct duet_csr *r, struct duet_cert_info *out)
{
    X509_NAME *name = X509_REQ_get_subject_name(r->req);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(r->req);
    GENERAL_NAMES *gens = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;

    memset(out, 0, sizeof(*out));
    name_line(name, out->subject, sizeof(out->subject));
    X509_NAME_get_text_by_NID(name, NID_commonName, out->cn, sizeof(out->cn));
    fill_key(X509_REQ_get_pubkey(r->req), out);
    out->version = 1;
    fill_sans(gens, out);
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ERR_clear_error();
    return 0;
}

const char *duet_cert_log_fields(char *buf, size_t size, const char *serial, int64_t not_after,
                                 const char *sha256)
{
    snprintf(buf, size, "serial=%s not_after=%lld sha256=%s", serial[0] ? serial : "-",
             (long long)not_after, sha256[0] ? sha256 : "-");
    return buf;
}
