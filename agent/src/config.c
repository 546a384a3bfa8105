/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `duet-agent run` configuration: the field tables that bind the JSON of
 * DESIGN.md "duet-agent" onto struct ag_config (common/src/cfg.c does the
 * walking), then the rules one field cannot check alone: issuer keys per
 * type, renew_before against every validity, unique products, SANs only on
 * server identities. Everything is refused at load with the field's path, so
 * a bad ConfigMap fails the pod at start instead of at the first renewal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "duet/alloc.h"
#include "duet/cfg.h"
#include "duet/duration.h"
#include "duet/err.h"
#include "duet/log.h"
#include "duet/pki.h"

#include "config.h"

#define DAY_MS (24LL * 3600 * 1000)
#define MAX_LIFETIME_MS (100 * 366 * DAY_MS)

/* ---- custom members ------------------------------------------------------------ */

/* At most 64 bytes of an input value in a message. */
static const char *shown(const char *s, char *buf, size_t size)
{
    snprintf(buf, size, "%s", s);
    return buf;
}

static int parse_key_type(const cJSON *v, void *field, const char *path, struct duet_errbuf *eb)
{
    char b[64];

    if (!cJSON_IsString(v) || !v->valuestring)
        return duet_errf(eb, DUET_E_CFG_TYPE, "%s: expected a string", path);
    if (duet_key_type_parse(v->valuestring, field) < 0)
        return duet_errf(eb, DUET_E_KEY_TYPE, "%s: unknown key type \"%s\"", path,
                         shown(v->valuestring, b, sizeof(b)));
    return 0;
}

static int parse_issuer_type(const cJSON *v, void *field, const char *path, struct duet_errbuf *eb)
{
    enum ag_issuer_type *t = field;
    char b[64];

    if (!cJSON_IsString(v) || !v->valuestring)
        return duet_errf(eb, DUET_E_CFG_TYPE, "%s: expected a string", path);
    if (strcmp(v->valuestring, "local") == 0)
        *t = AG_ISSUER_LOCAL;
    else if (strcmp(v->valuestring, "cfssl") == 0)
        *t = AG_ISSUER_CFSSL;
    else
        return duet_errf(eb, DUET_E_CFG_RANGE, "%s: unknown issuer type \"%s\" (local or cfssl)",
                         path, shown(v->valuestring, b, sizeof(b)));
    return 0;
}

static int parse_csi(const cJSON *v, void *field, const char *path, struct duet_errbuf *eb);
static void release_csi(void *field);

/* ---- tables -------------------------------------------------------------------- */

#define F_STR(st, key, fl, lo, hi, dflt)                                                           \
    {                                                                                              \
        .name = #key, .type = DUET_CFG_STRING, .offset = offsetof(st, key), .flags = (fl),         \
        .min = (lo), .max = (hi), .def = (dflt)                                                    \
    }
#define F_DUR(st, key, fl, lo, hi, dflt)                                                           \
    {                                                                                              \
        .name = #key, .type = DUET_CFG_DURATION, .offset = offsetof(st, key), .flags = (fl),       \
        .min = (lo), .max = (hi), .def = (dflt)                                                    \
    }
#define F_KEY_TYPE(st, dflt)                                                                       \
    {                                                                                              \
        .name = "key_type", .type = DUET_CFG_CUSTOM, .offset = offsetof(st, key_type),             \
        .def = (dflt), .parse = parse_key_type                                                     \
    }
#define F_SUBJ(json, key, lo, hi)                                                                  \
    {                                                                                              \
        .name = (json), .type = DUET_CFG_STRING, .offset = offsetof(struct duet_subject, key),     \
        .min = (lo), .max = (hi)                                                                   \
    }

#define REQ DUET_CFG_REQUIRED
#define PATH_LEN 4096

/* Upper bounds of X.520 (RFC 5280 appendix A): C is two letters, the rest 64 or 128. */
static const struct duet_cfg_field subject_fields[] = {
    F_SUBJ("C", c, 2, 2),  F_SUBJ("ST", st, 1, 128), F_SUBJ("L", l, 1, 128),
    F_SUBJ("O", o, 1, 64), F_SUBJ("OU", ou, 1, 64),  F_SUBJ("emailAddress", email, 1, 128),
};
static const struct duet_cfg_table subject_table =
    DUET_CFG_TABLE(struct duet_subject, subject_fields);

static const struct duet_cfg_field issuer_fields[] = {
    {.name = "type",
     .type = DUET_CFG_CUSTOM,
     .offset = offsetof(struct ag_issuer_cfg, type),
     .flags = REQ,
     .parse = parse_issuer_type},
    F_STR(struct ag_issuer_cfg, ca_cert, 0, 1, PATH_LEN, NULL),
    F_STR(struct ag_issuer_cfg, ca_key, 0, 1, PATH_LEN, NULL),
    F_STR(struct ag_issuer_cfg, ca_key_passphrase_file, 0, 1, PATH_LEN, NULL),
    F_STR(struct ag_issuer_cfg, url, 0, 1, 2048, NULL),
    F_STR(struct ag_issuer_cfg, profile, 0, 1, 128, NULL),
    F_STR(struct ag_issuer_cfg, server_profile, 0, 1, 128, NULL),
    F_STR(struct ag_issuer_cfg, auth_key_file, 0, 1, PATH_LEN, NULL),
    F_STR(struct ag_issuer_cfg, ca_bundle, 0, 1, PATH_LEN, NULL),
    F_STR(struct ag_issuer_cfg, server_ca, 0, 1, PATH_LEN, NULL),
    F_STR(struct ag_issuer_cfg, client_cert, 0, 1, PATH_LEN, NULL),
    F_STR(struct ag_issuer_cfg, client_key, 0, 1, PATH_LEN, NULL),
    F_DUR(struct ag_issuer_cfg, timeout, 0, 100, 3600 * 1000, "10s"),
    {.name = "insecure_http",
     .type = DUET_CFG_BOOL,
     .offset = offsetof(struct ag_issuer_cfg, insecure_http)},
    F_DUR(struct ag_issuer_cfg, max_backdate, 0, 1000, 3600 * 1000, "6m"),
};
static const struct duet_cfg_table issuer_table =
    DUET_CFG_TABLE(struct ag_issuer_cfg, issuer_fields);

static const struct duet_cfg_field identity_fields[] = {
    F_STR(struct ag_identity_cfg, product, REQ, 1, 63, NULL),
    F_KEY_TYPE(struct ag_identity_cfg, NULL),
    F_DUR(struct ag_identity_cfg, validity, 0, 60 * 1000, MAX_LIFETIME_MS, NULL),
    {.name = "server", .type = DUET_CFG_BOOL, .offset = offsetof(struct ag_identity_cfg, server)},
    {.name = "dns",
     .type = DUET_CFG_STRINGS,
     .offset = offsetof(struct ag_identity_cfg, dns),
     .count_offset = offsetof(struct ag_identity_cfg, n_dns),
     .max = 100},
    {.name = "ip",
     .type = DUET_CFG_STRINGS,
     .offset = offsetof(struct ag_identity_cfg, ip),
     .count_offset = offsetof(struct ag_identity_cfg, n_ip),
     .max = 100},
};
static const struct duet_cfg_table identity_table =
    DUET_CFG_TABLE(struct ag_identity_cfg, identity_fields);

static const struct duet_cfg_field binding_fields[] = {
    F_STR(struct ag_csi_binding, namespace, REQ, 1, 63, NULL),
    F_STR(struct ag_csi_binding, service_account, REQ, 1, 253, NULL),
    {.name = "products",
     .type = DUET_CFG_STRINGS,
     .offset = offsetof(struct ag_csi_binding, products),
     .count_offset = offsetof(struct ag_csi_binding, n_products),
     .flags = REQ,
     .min = 1,
     .max = 64},
};
static const struct duet_cfg_table binding_table =
    DUET_CFG_TABLE(struct ag_csi_binding, binding_fields);

/* Socket paths: sockaddr_un holds 107 bytes and a NUL. */
static const struct duet_cfg_field csi_fields[] = {
    F_STR(struct ag_csi_cfg, driver, 0, 1, 63, "duet.example.org"),
    F_STR(struct ag_csi_cfg, endpoint, 0, 1, 107, NULL),
    F_STR(struct ag_csi_cfg, registration_dir, 0, 1, 80, "/var/lib/kubelet/plugins_registry"),
    F_STR(struct ag_csi_cfg, state_dir, 0, 1, 1024, "/var/lib/duet/csi"),
    F_STR(struct ag_csi_cfg, pods_dir, 0, 1, 1024, "/var/lib/kubelet/pods"),
    F_STR(struct ag_csi_cfg, node_id, 0, 1, 253, NULL),
    {.name = "max_volumes",
     .type = DUET_CFG_INT,
     .offset = offsetof(struct ag_csi_cfg, max_volumes),
     .min = 1,
     .max = 100000,
     .def_int = 512},
    {.name = "tmpfs_size_mb",
     .type = DUET_CFG_INT,
     .offset = offsetof(struct ag_csi_cfg, tmpfs_size_mb),
     .min = 1,
     .max = 4096,
     .def_int = 64},
    {.name = "key_pool",
     .type = DUET_CFG_INT,
     .offset = offsetof(struct ag_csi_cfg, key_pool),
     .min = 0,
     .max = 4096,
     .def_int = 110},
    {.name = "bindings",
     .type = DUET_CFG_OBJECTS,
     .offset = offsetof(struct ag_csi_cfg, bindings),
     .count_offset = offsetof(struct ag_csi_cfg, n_bindings),
     .max = 100000,
     .sub = &binding_table},
};
static const struct duet_cfg_table csi_table = DUET_CFG_TABLE(struct ag_csi_cfg, csi_fields);

static const struct duet_cfg_field config_fields[] = {
    F_STR(struct ag_config, env, REQ, 1, 63, NULL),
    F_STR(struct ag_config, trust_domain, REQ, 1, 255, NULL),
    F_STR(struct ag_config, output_dir, 0, 1, PATH_LEN, NULL),
    {.name = "subject",
     .type = DUET_CFG_OBJECT,
     .offset = offsetof(struct ag_config, subject),
     .sub = &subject_table},
    F_STR(struct ag_config, cn_template, 0, 1, 128, "{env}.{product}.{env}"),
    F_KEY_TYPE(struct ag_config, "rsa2048"),
    F_DUR(struct ag_config, validity, 0, 60 * 1000, MAX_LIFETIME_MS, "365d"),
    F_DUR(struct ag_config, renew_before, 0, 1000, MAX_LIFETIME_MS, NULL),
    {.name = "issuer",
     .type = DUET_CFG_OBJECT,
     .offset = offsetof(struct ag_config, issuer),
     .flags = REQ,
     .sub = &issuer_table},
    {.name = "identities",
     .type = DUET_CFG_OBJECTS,
     .offset = offsetof(struct ag_config, identities),
     .count_offset = offsetof(struct ag_config, n_identities),
     .flags = REQ,
     .min = 1,
     .max = 4096,
     .sub = &identity_table},
    /* gid_t is 32 bits but Kubernetes (and -1 as "none") keep group ids below 2^31. */
    {.name = "key_group",
     .type = DUET_CFG_INT,
     .offset = offsetof(struct ag_config, key_group),
     .min = 0,
     .max = 2147483647,
     .def_int = -1},
    F_STR(struct ag_config, status_listen, 0, 1, 300, NULL),
    F_STR(struct ag_config, log_level, 0, 1, 16, NULL),
    {.name = "csi",
     .type = DUET_CFG_CUSTOM,
     .offset = offsetof(struct ag_config, csi),
     .parse = parse_csi,
     .release = release_csi},
};
static const struct duet_cfg_table config_table = DUET_CFG_TABLE(struct ag_config, config_fields);

/* An optional object: NULL when absent, so its required keys bind only when it is there. */
static int parse_csi(const cJSON *v, void *field, const char *path, struct duet_errbuf *eb)
{
    struct ag_csi_cfg **out = field;
    struct ag_csi_cfg *c;
    struct duet_errbuf inner;
    int rc;

    if (!cJSON_IsObject(v))
        return duet_errf(eb, DUET_E_CFG_TYPE, "%s: expected an object", path);
    c = duet_calloc(1, sizeof(*c));
    if (!c)
        return duet_errf(eb, DUET_ENOMEM, "%s: out of memory", path);
    duet_errbuf_clear(&inner);
    rc = duet_cfg_bind(v, &csi_table, c, &inner);
    if (rc < 0) {
        duet_free(c);
        return duet_errf(eb, rc, "%s.%s", path, inner.msg);
    }
    *out = c;
    return 0;
}

static void release_csi(void *field)
{
    struct ag_csi_cfg **c = field;

    if (!*c)
        return;
    duet_cfg_deinit(&csi_table, *c);
    DUET_FREE(*c);
}

/* ---- cross-field rules ------------------------------------------------------------ */

static bool only_chars(const char *s, const char *extra, bool upper)
{
    for (; *s; s++) {
        char c = *s;

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (upper && c >= 'A' && c <= 'Z') ||
            (c && strchr(extra, c)))
            continue;
        return false;
    }
    return true;
}

/* env and product become folder names, CN parts and SPIFFE path segments. */
static int check_name(const char *path, const char *v, struct duet_errbuf *eb)
{
    char b[64];

    if (only_chars(v, "-", true))
        return 0;
    return duet_errf(eb, DUET_E_CFG_RANGE, "%s: \"%s\" may hold only letters, digits and '-'", path,
                     shown(v, b, sizeof(b)));
}

static int check_cn_template(const char *t, struct duet_errbuf *eb)
{
    if (!strstr(t, "{product}"))
        return duet_errf(eb, DUET_E_CFG_RANGE, "cn_template: must contain {product}");
    /* Any other brace is a typo ({prodcut}) that would end up in every certificate. */
    for (const char *p = t; *p; p++) {
        if (strncmp(p, "{env}", 5) == 0)
            p += 4;
        else if (strncmp(p, "{product}", 9) == 0)
            p += 8;
        else if (*p == '{' || *p == '}')
            return duet_errf(eb, DUET_E_CFG_RANGE,
                             "cn_template: only {env} and {product} may be used");
    }
    return 0;
}

/* "host:port" or "[v6]:port" with a port in 1..65535. */
static int check_listen(const char *s, struct duet_errbuf *eb)
{
    const char *colon = strrchr(s, ':');
    long port = 0;
    char b[64];

    if (colon && colon != s && colon[1]) {
        const char *p = colon + 1;

        while (*p >= '0' && *p <= '9' && port <= 65535)
            port = port * 10 + (*p++ - '0');
        if (*p == '\0' && port >= 1 && port <= 65535 && (s[0] != '[' || colon[-1] == ']') &&
            !strpbrk(s, " \t/"))
            return 0;
    }
    return duet_errf(eb, DUET_E_CFG_RANGE, "status_listen: \"%s\" is not host:port",
                     shown(s, b, sizeof(b)));
}

/*
 * http(s)://host[:port] with an optional trailing '/', nothing else. Plain
 * HTTP carries the CSR, the auth token's HMAC and the certificate in clear
 * and lets anyone on the path answer for the CA: only with insecure_http.
 */
static int check_url(const char *u, bool insecure_http, struct duet_errbuf *eb)
{
    const char *host = NULL, *slash;
    char b[64];

    if (strncmp(u, "https://", 8) == 0)
        host = u + 8;
    else if (strncmp(u, "http://", 7) == 0)
        host = u + 7;
    if (!host)
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "issuer.url: \"%s\" must start with https:// "
                         "or http://",
                         shown(u, b, sizeof(b)));
    if (host == u + 7 && !insecure_http)
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "issuer.url: \"%s\" is not HTTPS (set "
                         "issuer.insecure_http to true to allow it)",
                         shown(u, b, sizeof(b)));
    slash = strchr(host, '/');
    if (*host == '\0' || *host == '/' || *host == ':' || strpbrk(host, " \t?#@") ||
        (slash && slash[1] != '\0'))
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "issuer.url: \"%s\" must be http(s)://host[:port] without a path",
                         shown(u, b, sizeof(b)));
    return 0;
}

struct issuer_key {
    const char *name;
    size_t offset;
};

#define IK(key)                                                                                    \
    {                                                                                              \
#key, offsetof(struct ag_issuer_cfg, key)                                                  \
    }

static const char *istr(const struct ag_issuer_cfg *is, size_t offset)
{
    const void *member = (const char *)is + offset;

    return *(char *const *)member;
}

static int check_issuer_keys(const struct ag_issuer_cfg *is, const struct issuer_key *need,
                             size_t n_need, const struct issuer_key *refuse, size_t n_refuse,
                             const char *type, struct duet_errbuf *eb)
{
    for (size_t i = 0; i < n_need; i++)
        if (!istr(is, need[i].offset))
            return duet_errf(eb, DUET_E_CFG_MISSING,
                             "issuer.%s: missing required key (issuer type \"%s\")", need[i].name,
                             type);
    for (size_t i = 0; i < n_refuse; i++)
        if (istr(is, refuse[i].offset))
            return duet_errf(eb, DUET_E_CFG_UNKNOWN, "issuer.%s: not used by issuer type \"%s\"",
                             refuse[i].name, type);
    return 0;
}

static int check_issuer(struct ag_issuer_cfg *is, struct duet_errbuf *eb)
{
    static const struct issuer_key local_need[] = {IK(ca_cert), IK(ca_key)};
    static const struct issuer_key cfssl_need[] = {IK(url), IK(ca_bundle)};
    static const struct issuer_key cfssl_only[] = {
        IK(url),       IK(profile),     IK(server_profile), IK(auth_key_file),
        IK(server_ca), IK(client_cert), IK(client_key)};
    static const struct issuer_key local_only[] = {IK(ca_cert), IK(ca_key),
                                                   IK(ca_key_passphrase_file)};

    if (is->type == AG_ISSUER_LOCAL)
        return check_issuer_keys(is, local_need, DUET_ARRAY_SIZE(local_need), cfssl_only,
                                 DUET_ARRAY_SIZE(cfssl_only), "local", eb);
    DUET_TRY(check_issuer_keys(is, cfssl_need, DUET_ARRAY_SIZE(cfssl_need), local_only,
                               DUET_ARRAY_SIZE(local_only), "cfssl", eb));
    DUET_TRY(check_url(is->url, is->insecure_http, eb));
    if (!is->client_cert != !is->client_key)
        return duet_errf(eb, DUET_E_CFG_MISSING, "issuer.%s: needed with issuer.%s",
                         is->client_cert ? "client_key" : "client_cert",
                         is->client_cert ? "client_cert" : "client_key");
    return 0;
}

/* A DNS name for a SAN: labels of letters, digits and '-', an optional leading "*.". */
static bool dns_ok(const char *s)
{
    size_t len = strlen(s);

    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    return len > 0 && len <= 253 && *s && *s != '.' && s[strlen(s) - 1] != '.' &&
           !strstr(s, "..") && only_chars(s, "-.", true);
}

static int check_sans(const struct ag_identity_cfg *id, size_t i, struct duet_errbuf *eb)
{
    char b[64];

    if ((id->n_dns || id->n_ip) && !id->server)
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "identities[%zu].%s: DNS and IP names need \"server\": true", i,
                         id->n_dns ? "dns" : "ip");
    for (size_t j = 0; j < id->n_dns; j++)
        if (!dns_ok(id->dns[j]))
            return duet_errf(eb, DUET_E_CFG_RANGE,
                             "identities[%zu].dns[%zu]: bad DNS name "
                             "\"%s\"",
                             i, j, shown(id->dns[j], b, sizeof(b)));
    for (size_t j = 0; j < id->n_ip; j++) {
        unsigned char addr[16];

        if (inet_pton(AF_INET, id->ip[j], addr) != 1 && inet_pton(AF_INET6, id->ip[j], addr) != 1)
            return duet_errf(eb, DUET_E_CFG_RANGE,
                             "identities[%zu].ip[%zu]: bad IP address "
                             "\"%s\"",
                             i, j, shown(id->ip[j], b, sizeof(b)));
    }
    return 0;
}

static int check_identity(struct ag_config *c, size_t i, struct duet_errbuf *eb)
{
    struct ag_identity_cfg *id = &c->identities[i];
    char path[64], a[32], b[32];

    snprintf(path, sizeof(path), "identities[%zu].product", i);
    DUET_TRY(check_name(path, id->product, eb));
    for (size_t j = 0; j < i; j++)
        if (strcmp(c->identities[j].product, id->product) == 0)
            return duet_errf(eb, DUET_E_CFG_RANGE, "%s: \"%s\" already used by identities[%zu]",
                             path, id->product, j);
    if (!id->key_type)
        id->key_type = c->key_type;
    if (!id->validity)
        id->validity = c->validity;
    if (c->renew_before && c->renew_before >= id->validity)
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "renew_before: %s must be shorter than identities[%zu] validity %s",
                         duet_duration_format(c->renew_before, a, sizeof(a)), i,
                         duet_duration_format(id->validity, b, sizeof(b)));
    return check_sans(id, i, eb);
}

/* Kubernetes object names: lower-case alphanumerics, '-' (and '.' for subdomains). */
static bool k8s_name_ok(const char *s, bool dots)
{
    size_t n = strlen(s);

    return n > 0 && only_chars(s, dots ? "-." : "-", false) && s[0] != '-' && s[0] != '.' &&
           s[n - 1] != '-' && s[n - 1] != '.';
}

static bool has_product(const struct ag_config *c, const char *product)
{
    for (size_t i = 0; i < c->n_identities; i++)
        if (strcmp(c->identities[i].product, product) == 0)
            return true;
    return false;
}

static int check_binding(const struct ag_config *c, size_t i, struct duet_errbuf *eb)
{
    const struct ag_csi_binding *b = &c->csi->bindings[i];
    char v[64];

    if (!k8s_name_ok(b->namespace, false))
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "csi.bindings[%zu].namespace: \"%s\" is not a "
                         "namespace name",
                         i, shown(b->namespace, v, sizeof(v)));
    if (!k8s_name_ok(b->service_account, true))
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "csi.bindings[%zu].service_account: \"%s\" is "
                         "not a ServiceAccount name",
                         i, shown(b->service_account, v, sizeof(v)));
    for (size_t j = 0; j < i; j++) {
        const struct ag_csi_binding *o = &c->csi->bindings[j];
        if (strcmp(o->namespace, b->namespace) == 0 &&
            strcmp(o->service_account, b->service_account) == 0)
            return duet_errf(eb, DUET_E_CFG_RANGE,
                             "csi.bindings[%zu]: %s/%s is already bound by "
                             "csi.bindings[%zu]; list all its products there",
                             i, b->namespace, b->service_account, j);
    }
    for (size_t j = 0; j < b->n_products; j++)
        if (!has_product(c, b->products[j]))
            return duet_errf(eb, DUET_E_CFG_RANGE,
                             "csi.bindings[%zu].products[%zu]: \"%s\" is "
                             "not a product of identities",
                             i, j, shown(b->products[j], v, sizeof(v)));
    return 0;
}

static int check_csi(const struct ag_config *c, struct duet_errbuf *eb)
{
    const struct ag_csi_cfg *k = c->csi;
    static const char reg_suffix[] = "-reg.sock";
    char v[64];

    if (!k8s_name_ok(k->driver, true))
        return duet_errf(eb, DUET_E_CFG_RANGE, "csi.driver: \"%s\" is not a DNS-like name",
                         shown(k->driver, v, sizeof(v)));
    if (k->endpoint && k->endpoint[0] != '/')
        return duet_errf(eb, DUET_E_CFG_RANGE, "csi.endpoint: must be an absolute path");
    if (k->registration_dir[0] != '/')
        return duet_errf(eb, DUET_E_CFG_RANGE, "csi.registration_dir: must be an absolute path");
    if (k->state_dir[0] != '/')
        return duet_errf(eb, DUET_E_CFG_RANGE, "csi.state_dir: must be an absolute path");
    if (k->pods_dir[0] != '/')
        return duet_errf(eb, DUET_E_CFG_RANGE, "csi.pods_dir: must be an absolute path");
    if (strlen(k->registration_dir) + 1 + strlen(k->driver) + sizeof(reg_suffix) > 108)
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "csi.registration_dir: the registration socket "
                         "path would exceed the 107 bytes of a Unix socket address");
    for (size_t i = 0; i < k->n_bindings; i++)
        DUET_TRY(check_binding(c, i, eb));
    return 0;
}

static int validate(struct ag_config *c, struct duet_errbuf *eb)
{
    enum duet_log_level lvl;
    char a[32], b[32];

    DUET_TRY(check_name("env", c->env, eb));
    if (!only_chars(c->trust_domain, "._-", false))
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "trust_domain: may hold only a-z, 0-9, '.', '_' and '-'");
    if (!c->csi && !c->output_dir)
        return duet_errf(eb, DUET_E_CFG_MISSING,
                         "output_dir: missing required key (needed without \"csi\")");
    if (c->output_dir && c->output_dir[0] != '/')
        return duet_errf(eb, DUET_E_CFG_RANGE, "output_dir: must be an absolute path");
    DUET_TRY(check_cn_template(c->cn_template, eb));
    if (c->renew_before && c->renew_before >= c->validity)
        return duet_errf(eb, DUET_E_CFG_RANGE, "renew_before: %s must be shorter than validity %s",
                         duet_duration_format(c->renew_before, a, sizeof(a)),
                         duet_duration_format(c->validity, b, sizeof(b)));
    DUET_TRY(check_issuer(&c->issuer, eb));
    for (size_t i = 0; i < c->n_identities; i++)
        DUET_TRY(check_identity(c, i, eb));
    if (c->status_listen)
        DUET_TRY(check_listen(c->status_listen, eb));
    if (c->csi)
        DUET_TRY(check_csi(c, eb));
    if (c->log_level && duet_log_parse_level(c->log_level, &lvl) < 0)
        return duet_errf(eb, DUET_E_CFG_RANGE,
                         "log_level: \"%s\" is not error, warn, info or debug",
                         shown(c->log_level, a, sizeof(a)));
    return 0;
}

/* The CSI socket follows the driver name; the node id comes from the downward API. */
static int csi_defaults(struct ag_csi_cfg *k, struct duet_errbuf *eb)
{
    char buf[256];

    if (!k->endpoint) {
        int n = snprintf(buf, sizeof(buf), "/var/lib/kubelet/plugins/%s/csi.sock", k->driver);

        if (n < 0 || n > 107)
            return duet_errf(eb, DUET_E_CFG_RANGE,
                             "csi.driver: too long for the default "
                             "endpoint; set csi.endpoint");
        if (!(k->endpoint = duet_strdup(buf)))
            return duet_errf(eb, DUET_ENOMEM, "out of memory");
    }
    if (!k->node_id) {
        const char *env = getenv("NODE_NAME");

        if (env && *env && strlen(env) <= 253)
            snprintf(buf, sizeof(buf), "%s", env);
        else if (gethostname(buf, sizeof(buf)) == -1)
            return duet_errf(eb, -errno, "csi.node_id: not set, and no NODE_NAME or host name");
        buf[sizeof(buf) - 1] = '\0';
        if (!(k->node_id = duet_strdup(buf)))
            return duet_errf(eb, DUET_ENOMEM, "out of memory");
    }
    return 0;
}

/* Defaults that depend on another key. */
static int fill_defaults(struct ag_config *c, struct duet_errbuf *eb)
{
    struct ag_issuer_cfg *is = &c->issuer;
    const char *from = is->type == AG_ISSUER_LOCAL ? is->ca_cert : is->ca_bundle;

    if (!is->ca_bundle) {
        is->ca_bundle = duet_strdup(from);
        if (!is->ca_bundle)
            return duet_errf(eb, DUET_ENOMEM, "out of memory");
    }
    if (is->type == AG_ISSUER_CFSSL && !is->server_ca) {
        is->server_ca = duet_strdup(is->ca_bundle);
        if (!is->server_ca)
            return duet_errf(eb, DUET_ENOMEM, "out of memory");
    }
    return c->csi ? csi_defaults(c->csi, eb) : 0;
}

/* ---- entry points ---------------------------------------------------------------- */

/* After binding (rc): validate and fill in; c is freed on failure, else it becomes *out. */
static int finish(struct ag_config *c, int rc, struct ag_config **out, struct duet_errbuf *eb)
{
    if (rc == 0)
        rc = validate(c, eb);
    if (rc == 0)
        rc = fill_defaults(c, eb);
    if (rc < 0) {
        ag_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int ag_config_parse(const char *text, size_t len, struct ag_config **out, struct duet_errbuf *eb)
{
    struct ag_config *c = duet_calloc(1, sizeof(*c));

    *out = NULL;
    if (!c)
        return duet_errf(eb, DUET_ENOMEM, "configuration: out of memory");
    return finish(c, duet_cfg_load_string(text, len, &config_table, c, eb), out, eb);
}

int ag_config_load(const char *path, struct ag_config **out, struct duet_errbuf *eb)
{
    struct ag_config *c = duet_calloc(1, sizeof(*c));
    struct duet_errbuf inner;
    int rc;

    *out = NULL;
    if (!c)
        return duet_errf(eb, DUET_ENOMEM, "%s: out of memory", path);
    rc = duet_cfg_load_file(path, AG_CONFIG_MAX_SIZE, &config_table, c, eb);
    if (rc < 0) { /* the message already names the file */
        ag_config_free(c);
        return rc;
    }
    duet_errbuf_clear(&inner);
    rc = finish(c, 0, out, &inner);
    if (rc < 0)
        return duet_errf(eb, rc, "%s: %s", path, inner.msg);
    return 0;
}

void ag_config_free(struct ag_config *c)
{
    if (!c)
        return;
    duet_cfg_deinit(&config_table, c);
    duet_free(c);
}
