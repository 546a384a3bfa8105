/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Distinguished names and subject alternative names: the OpenSSL CLI subject
 * syntax ("/C=LK/O=Example, Inc./CN=x"), its X509_NAME encoding (C as
 * PrintableString, emailAddress as IA5String, the rest UTF8String, as
 * `openssl req` writes them), and SAN lists to and from GENERAL_NAMES.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/nid.h>

#include "duet/alloc.h"
#include "pki_int.h"

/* The keys duet accepts, their field in struct duet_subject, and their NID. */
static const struct {
    const char *key;
    size_t off;
    int nid;
} subject_keys[] = {
    {"C", offsetof(struct duet_subject, c), NID_countryName},
    {"ST", offsetof(struct duet_subject, st), NID_stateOrProvinceName},
    {"L", offsetof(struct duet_subject, l), NID_localityName},
    {"O", offsetof(struct duet_subject, o), NID_organizationName},
    {"OU", offsetof(struct duet_subject, ou), NID_organizationalUnitName},
    {"CN", offsetof(struct duet_subject, cn), NID_commonName},
    {"emailAddress", offsetof(struct duet_subject, email), NID_pkcs9_emailAddress},
};

static char **subject_field(struct duet_subject *s, size_t i)
{
    return (char **)(void *)((char *)s + subject_keys[i].off);
}

static const char *subject_value(const struct duet_subject *s, size_t i)
{
    return *(char *const *)(const void *)((const char *)s + subject_keys[i].off);
}

void duet_subject_clear(struct duet_subject *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < DUET_ARRAY_SIZE(subject_keys); i++)
        DUET_FREE(*subject_field(s, i));
}

int duet_subject_copy(struct duet_subject *dst, const struct duet_subject *src)
{
    for (size_t i = 0; i < DUET_ARRAY_SIZE(subject_keys); i++) {
        const char *v = subject_value(src, i);

        if (!v)
            continue;
        *subject_field(dst, i) = duet_strdup(v);
        if (!*subject_field(dst, i)) {
            duet_subject_clear(dst);
            return DUET_ENOMEM;
        }
    }
    return 0;
}

/*
 * Copy one "KEY=value" component starting at *p (just after a '/') into a
 * fresh string with "\/" unescaped; *p ends on the next unescaped '/' or NUL.
 */
static int next_component(const char **p, char **out)
{
    const char *s = *p;
    size_t n = 0;
    char *buf = duet_malloc(strlen(s) + 1);

    if (!buf)
        return DUET_ENOMEM;
    while (*s && *s != '/') {
        if (s[0] == '\\' && s[1] != '\0')
            s++;
        buf[n++] = *s++;
    }
    buf[n] = '\0';
    *p = s;
    *out = buf;
    return 0;
}

static int subject_set(struct duet_subject *out, char *comp, const char *input,
                       struct duet_errbuf *eb)
{
    char *eq = strchr(comp, '=');

    if (!eq)
        return duet_errf(eb, DUET_E_SUBJECT, "subject \"%s\": component \"%s\" has no '='", input,
                         comp);
    *eq = '\0';
    if (eq[1] == '\0')
        return duet_errf(eb, DUET_E_SUBJECT, "subject \"%s\": %s has an empty value", input, comp);
    for (size_t i = 0; i < DUET_ARRAY_SIZE(subject_keys); i++) {
        char **field = subject_field(out, i);

        if (strcmp(comp, subject_keys[i].key) != 0)
            continue;
        if (*field)
            return duet_errf(eb, DUET_E_SUBJECT, "subject \"%s\": %s given twice", input, comp);
        *field = duet_strdup(eq + 1);
        return *field ? 0 : DUET_ENOMEM;
    }
    return duet_errf(eb, DUET_E_SUBJECT,
                     "subject \"%s\": unknown key \"%s\" (use C, ST, L, O, OU, CN, emailAddress)",
                     input, comp);
}

int duet_subject_parse(const char *s, struct duet_subject *out, struct duet_errbuf *eb)
{
    const char *p = s;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!s || s[0] != '/')
        return duet_errf(eb, DUET_E_SUBJECT, "subject \"%s\": must start with '/'", s ? s : "");
    while (rc == 0 && *p == '/') {
        char *comp;

        p++;
        DUET_TRY_GOTO(next_component(&p, &comp), rc, fail);
        if (comp[0] == '\0' && *p == '\0') { /* a trailing '/' is harmless */
            duet_free(comp);
            break;
        }
        rc = subject_set(out, comp, s, eb);
        duet_free(comp);
    }
    if (rc == 0)
        return 0;
fail:
    duet_subject_clear(out);
    return rc;
}

int duet__pki_name_from_subject(X509_NAME *name, const struct duet_subject *s,
                                struct duet_errbuf *eb)
{
    for (size_t i = 0; i < DUET_ARRAY_SIZE(subject_keys); i++) {
        const char *v = subject_value(s, i);

        if (!v)
            continue;
        /*
         * MBSTRING_UTF8 lets BoringSSL pick the type from its string table:
         * PrintableString for C (2 characters exactly), IA5String for
         * emailAddress, UTF8String for the others, as `openssl req` does.
         */
        if (!X509_NAME_add_entry_by_NID(name, subject_keys[i].nid, MBSTRING_UTF8,
                                        (const uint8_t *)v, -1, -1, 0)) {
            ERR_clear_error();
            return duet_errf(
                eb, DUET_E_SUBJECT, "subject %s=\"%s\" cannot be encoded%s", subject_keys[i].key, v,
                subject_keys[i].nid == NID_countryName ? " (C must be a two-letter country code)"
                                                       : "");
        }
    }
    return 0;
}

/* ---- subject alternative names ---- */

/* Append a name of `type` owning `value` (freed here on failure). */
static int push_value(GENERAL_NAMES *gens, int type, void *value)
{
    GENERAL_NAME *gen = GENERAL_NAME_new();

    if (!gen) {
        ASN1_STRING_free(value);
        return DUET_ENOMEM;
    }
    GENERAL_NAME_set0_value(gen, type, value);
    if (!sk_GENERAL_NAME_push(gens, gen)) {
        GENERAL_NAME_free(gen);
        return DUET_ENOMEM;
    }
    return 0;
}

static int push_gen(GENERAL_NAMES *gens, int type, const char *value)
{
    ASN1_IA5STRING *str = ASN1_IA5STRING_new();

    if (!str || !ASN1_STRING_set(str, value, (int)strlen(value))) {
        ASN1_IA5STRING_free(str);
        return DUET_ENOMEM;
    }
    return push_value(gens, type, str);
}

static int push_ip(GENERAL_NAMES *gens, const char *text, struct duet_errbuf *eb)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(text);

    if (!ip) {
        ERR_clear_error();
        return duet_errf(eb, DUET_E_SUBJECT, "\"%s\" is not an IPv4 or IPv6 address", text);
    }
    return push_value(gens, GEN_IPADD, ip);
}

static int check_ia5(const char *v, const char *kind, struct duet_errbuf *eb)
{
    if (!v || !*v)
        return duet_errf(eb, DUET_E_SUBJECT, "empty %s subject alternative name", kind);
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return duet_errf(eb, DUET_E_SUBJECT,
                             "%s SAN \"%s\": only printable ASCII without "
                             "spaces is allowed",
                             kind, v);
    }
    return 0;
}

static int fill_gens(GENERAL_NAMES *gens, const struct duet_sans *sans, struct duet_errbuf *eb)
{
    for (size_t i = 0; i < sans->n_uris; i++) {
        DUET_TRY(check_ia5(sans->uris[i], "URI", eb));
        DUET_TRY(push_gen(gens, GEN_URI, sans->uris[i]));
    }
    for (size_t i = 0; i < sans->n_dns; i++) {
        DUET_TRY(check_ia5(sans->dns[i], "DNS", eb));
        DUET_TRY(push_gen(gens, GEN_DNS, sans->dns[i]));
    }
    for (size_t i = 0; i < sans->n_ips; i++)
        DUET_TRY(push_ip(gens, sans->ips[i], eb));
    return 0;
}

int duet__pki_gens_from_sans(const struct duet_sans *sans, GENERAL_NAMES **out,
                             struct duet_errbuf *eb)
{
    GENERAL_NAMES *gens;
    int rc;

    *out = NULL;
    if (!sans || sans->n_uris + sans->n_dns + sans->n_ips == 0)
        return 0;
    gens = GENERAL_NAMES_new();
    if (!gens)
        return DUET_ENOMEM;
    rc = fill_gens(gens, sans, eb);
    if (rc < 0) {
        GENERAL_NAMES_free(gens);
        return rc;
    }
    *out = gens;
    return 0;
}

/* ---- extensions ---- */

int duet__pki_add_ext_conf(X509 *x, X509 *issuer, int nid, const char *value,
                           struct duet_errbuf *eb)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;

    /* X509V3_EXT_conf_nid is declared but not exported here (COMPAT.md 2). */
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ok) {
        duet_errf(eb, DUET_E_CRYPTO, "cannot add extension %s=%s", OBJ_nid2sn(nid), value);
        duet_errbuf_add_ssl(eb);
        return DUET_E_CRYPTO;
    }
    return 0;
}
