/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `duet-agent inspect PATH`: what a certificate, key, CSR, combined PEM file
 * or published folder (tls.crt, tls.key, ca.crt; read from one version
 * through ..data with duet_vol_read) holds, and three verdicts: the
 * certificate is within its validity, the key matches it, and it chains to
 * --ca (or the folder's ca.crt). Exit 0 when every verdict that applies is
 * good, 1 when one is bad or the input cannot be read, 2 for bad usage.
 * Key material is never printed: a key shows as its type and size.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "cli.h"

#include "duet/alloc.h"
#include "duet/file.h"
#include "duet/clock.h"
#include "duet/pki.h"
#include "duet/vol.h"

static const char inspect_usage[] =
    "usage: duet-agent inspect PATH [--ca FILE] [--passphrase-file FILE] [--json] [--log-level "
    "LEVEL]\n"
    "\n"
    "PATH is a PEM certificate (chain), private key, CSR, or a published folder\n"
    "(tls.crt, tls.key, ca.crt). Exit status 0: everything checked is fine;\n"
    "1: a verdict is bad (expired, key mismatch, chain does not verify) or PATH is unreadable.\n";

#define INSPECT_MAX_FILE (1024 * 1024)

struct inspect {
    const char *path;
    const char *ca_path, *pass_file;
    bool json;
    int64_t now;
    struct duet_chain *chain; /* the certificates found, leaf first */
    struct duet_key *key;
    struct duet_csr *csr;
    struct duet_chain *bundle; /* trust anchors for the chain verdict */
    const char *bundle_src;
    /* verdicts: 1 good, 0 bad, -1 not applicable */
    int time_ok, key_ok, chain_ok;
    struct duet_errbuf chain_why;
};

/* ---- reading ---- */

static bool has_block(const char *pem, const char *label)
{
    char begin[64];

    snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
    return strstr(pem, begin) != NULL;
}

static bool has_key_block(const char *pem)
{
    return has_block(pem, "PRIVATE KEY") || has_block(pem, "ENCRYPTED PRIVATE KEY") ||
           has_block(pem, "RSA PRIVATE KEY") || has_block(pem, "EC PRIVATE KEY");
}

static int load_key(struct inspect *in, const char *pem, size_t len, const char *what,
                    struct duet_errbuf *eb)
{
    char *pass = NULL;
    size_t pass_len = 0;
    int rc;

    if (in->pass_file)
        DUET_TRY(ag_cli_read_pass(in->pass_file, &pass, &pass_len, eb));
    rc = duet_key_from_pem(pem, len, pass, what, &in->key, eb);
    if (rc == DUET_E_PASSPHRASE && !pass) {
        duet_errbuf_clear(eb);
        rc = duet_errf(eb, rc, "%s: the key is encrypted: give --passphrase-file", what);
    }
    duet_secret_free(pass, pass_len + 1);
    return rc;
}

/* One PEM text that may hold certificates, a key and a CSR, in any mix. */
static int load_pem(struct inspect *in, const char *pem, size_t len, const char *what,
                    struct duet_errbuf *eb)
{
    bool any = false;

    if (has_block(pem, "CERTIFICATE")) {
        DUET_TRY(duet_chain_from_mixed_pem(pem, len, what, &in->chain, eb));
        any = true;
    }
    if (has_key_block(pem)) {
        DUET_TRY(load_key(in, pem, len, what, eb));
        any = true;
    }
    if (has_block(pem, "CERTIFICATE REQUEST") || has_block(pem, "NEW CERTIFICATE REQUEST")) {
        DUET_TRY(duet_csr_from_pem(pem, len, what, &in->csr, eb));
        any = true;
    }
    if (!any)
        return duet_errf(eb, DUET_E_PEM, "%s: no PEM certificate, private key or CSR found", what);
    return 0;
}

static int load_file(struct inspect *in, struct duet_errbuf *eb)
{
    char *buf = NULL;
    size_t len = 0;
    int rc;

    rc = duet_file_read(in->path, INSPECT_MAX_FILE, &buf, &len);
    if (rc == DUET_E_TOOBIG)
        return duet_errf(eb, rc, "%s: larger than %d bytes", in->path, INSPECT_MAX_FILE);
    if (rc < 0)
        return duet_errf(eb, rc, "%s: cannot read: %s", in->path, duet_strerror(rc));
    rc = load_pem(in, buf, len, in->path, eb);
    duet_file_free(buf, len); /* cleansed: it may hold a key */
    return rc;
}

/* A published folder: the three files of one version, never a mix of two. */
static int load_folder(struct inspect *in, struct duet_errbuf *eb)
{
    const struct duet_vol_blob *b;
    struct duet_vol_set set;
    char what[DUET_VOL_SET_N][4200];
    int rc;

    DUET_TRY(duet_vol_read_set(in->path, INSPECT_MAX_FILE, &set, eb));
    b = set.blobs;
    for (size_t i = 0; i < DUET_VOL_SET_N; i++)
        snprintf(what[i], sizeof(what[i]), "%s/%s", in->path, duet_vol_set_names[i]);
    rc = duet_chain_from_pem(b[DUET_VOL_SET_CERT].data, b[DUET_VOL_SET_CERT].len,
                             what[DUET_VOL_SET_CERT], &in->chain, eb);
    if (rc == 0)
        rc = load_key(in, b[DUET_VOL_SET_KEY].data, b[DUET_VOL_SET_KEY].len, what[DUET_VOL_SET_KEY],
                      eb);
    if (rc == 0 && !in->ca_path) {
        rc = duet_chain_from_pem(b[DUET_VOL_SET_CA].data, b[DUET_VOL_SET_CA].len,
                                 what[DUET_VOL_SET_CA], &in->bundle, eb);
        in->bundle_src = DUET_VOL_CA;
    }
    duet_vol_set_clear(&set);
    return rc;
}

static int inspect_load(struct inspect *in, struct duet_errbuf *eb)
{
    struct stat st;

    if (stat(in->path, &st) == -1)
        return duet_errf(eb, -errno, "%s: %s", in->path, strerror(errno));
    DUET_TRY(S_ISDIR(st.st_mode) ? load_folder(in, eb) : load_file(in, eb));
    if (in->ca_path) {
        DUET_TRY(duet_chain_load(in->ca_path, &in->bundle, eb));
        in->bundle_src = in->ca_path;
    }
    return 0;
}

/* ---- verdicts ---- */

static void inspect_judge(struct inspect *in)
{
    const struct duet_cert *leaf = duet_chain_at(in->chain, 0);
    struct duet_cert_info info;

    in->time_ok = in->key_ok = in->chain_ok = -1;
    if (leaf && duet_cert_info(leaf, &info) == 0)
        in->time_ok = in->now >= info.not_before && in->now < info.not_after;
    if (in->key && leaf)
        in->key_ok = duet_key_matches_cert(in->key, leaf) == 0;
    else if (in->key && in->csr)
        in->key_ok = duet_key_matches_csr(in->key, in->csr) == 0;
    if (leaf && in->bundle)
        in->chain_ok = duet_chain_verify(in->chain, in->bundle, in->now, DUET_PURPOSE_ANY,
                                         &in->chain_why) == 0;
}

static bool inspect_ok(const struct inspect *in)
{
    return in->time_ok != 0 && in->key_ok != 0 && in->chain_ok != 0;
}

/* ---- text ---- */

static void print_names(const struct duet_cert_info *i)
{
    for (size_t k = 0; k < i->n_uris; k++)
        printf("  san: URI:%s\n", i->uris[k]);
    for (size_t k = 0; k < i->n_dns; k++)
        printf("  san: DNS:%s\n", i->dns[k]);
    for (size_t k = 0; k < i->n_ips; k++)
        printf("  san: IP:%s\n", i->ips[k]);
}

static void print_cert(const struct inspect *in, const struct duet_cert_info *i, const char *title)
{
    char nb[32], na[32];
    int64_t left = i->not_after - in->now;

    printf("%s:\n  subject: %s\n  issuer: %s\n  serial: %s\n  sha256: %s\n", title, i->subject,
           i->issuer, i->serial, i->sha256);
    printf("  version: %d\n  ca: %s\n  key: %s\n", i->version, i->is_ca ? "yes" : "no", i->key);
    printf("  purposes:%s%s\n", i->client_auth ? " clientAuth" : "",
           i->server_auth ? " serverAuth" : "");
    printf("  not before: %s\n  not after: %s (%s%lld days %s)\n",
           ag_cli_time(i->not_before, nb, sizeof(nb)), ag_cli_time(i->not_after, na, sizeof(na)),
           left < 0 ? "expired " : "", (long long)((left < 0 ? -left : left) / 86400),
           left < 0 ? "ago" : "left");
    print_names(i);
}

static const char *yes_no(int v)
{
    return v ? "yes" : "no";
}

static void print_text(const struct inspect *in)
{
    struct duet_cert_info info;
    char kd[32];

    printf("path: %s\n", in->path);
    for (size_t k = 0; k < duet_chain_len(in->chain); k++) {
        if (duet_cert_info(duet_chain_at(in->chain, k), &info) == 0)
            print_cert(in, &info, k == 0 ? "certificate" : "chain certificate");
    }
    if (in->csr && duet_csr_info(in->csr, &info) == 0) {
        printf("csr:\n  subject: %s\n  key: %s\n  signature: ok\n", info.subject, info.key);
        print_names(&info);
    }
    if (in->key)
        printf("private key: %s\n", duet_key_describe(in->key, kd, sizeof(kd)));
    if (in->time_ok >= 0)
        printf("within validity: %s\n", yes_no(in->time_ok));
    if (in->key_ok >= 0)
        printf("key matches %s: %s\n", duet_chain_len(in->chain) ? "certificate" : "csr",
               yes_no(in->key_ok));
    if (in->chain_ok >= 0)
        printf("chain against %s: %s%s%s\n", in->bundle_src, in->chain_ok ? "ok" : "FAILED",
               in->chain_ok ? "" : ": ", in->chain_ok ? "" : in->chain_why.msg);
    printf("verdict: %s\n", inspect_ok(in) ? "ok" : "BAD");
}

/* ---- JSON ---- */

static cJSON *json_names(const struct duet_cert_info *i)
{
    cJSON *sans = cJSON_CreateObject();
    cJSON *u = cJSON_AddArrayToObject(sans, "uri");
    cJSON *d = cJSON_AddArrayToObject(sans, "dns");
    cJSON *p = cJSON_AddArrayToObject(sans, "ip");

    for (size_t k = 0; u && k < i->n_uris; k++)
        cJSON_AddItemToArray(u, cJSON_CreateString(i->uris[k]));
    for (size_t k = 0; d && k < i->n_dns; k++)
        cJSON_AddItemToArray(d, cJSON_CreateString(i->dns[k]));
    for (size_t k = 0; p && k < i->n_ips; k++)
        cJSON_AddItemToArray(p, cJSON_CreateString(i->ips[k]));
    return sans;
}

static cJSON *json_cert(const struct inspect *in, const struct duet_cert_info *i)
{
    cJSON *o = cJSON_CreateObject();
    char t[32];

    cJSON_AddStringToObject(o, "subject", i->subject);
    cJSON_AddStringToObject(o, "issuer", i->issuer);
    cJSON_AddStringToObject(o, "cn", i->cn);
    cJSON_AddStringToObject(o, "serial", i->serial);
    cJSON_AddStringToObject(o, "sha256", i->sha256);
    cJSON_AddNumberToObject(o, "version", i->version);
    cJSON_AddBoolToObject(o, "is_ca", i->is_ca);
    cJSON_AddStringToObject(o, "key", i->key);
    cJSON_AddBoolToObject(o, "client_auth", i->client_auth);
    cJSON_AddBoolToObject(o, "server_auth", i->server_auth);
    cJSON_AddStringToObject(o, "not_before", ag_cli_time(i->not_before, t, sizeof(t)));
    cJSON_AddStringToObject(o, "not_after", ag_cli_time(i->not_after, t, sizeof(t)));
    cJSON_AddNumberToObject(o, "not_after_unix", (double)i->not_after);
    cJSON_AddNumberToObject(o, "days_left", (double)((i->not_after - in->now) / 86400));
    cJSON_AddItemToObject(o, "sans", json_names(i));
    return o;
}

static void json_verdict(cJSON *root, const char *name, int v)
{
    if (v >= 0)
        cJSON_AddBoolToObject(root, name, v);
}

static cJSON *json_build(const struct inspect *in)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *certs = cJSON_AddArrayToObject(root, "certificates");
    struct duet_cert_info info;
    char kd[32];

    cJSON_AddStringToObject(root, "path", in->path);
    for (size_t k = 0; certs && k < duet_chain_len(in->chain); k++) {
        if (duet_cert_info(duet_chain_at(in->chain, k), &info) == 0)
            cJSON_AddItemToArray(certs, json_cert(in, &info));
    }
    if (in->csr && duet_csr_info(in->csr, &info) == 0) {
        cJSON *c = cJSON_AddObjectToObject(root, "csr");

        cJSON_AddStringToObject(c, "subject", info.subject);
        cJSON_AddStringToObject(c, "key", info.key);
        cJSON_AddItemToObject(c, "sans", json_names(&info));
    }
    if (in->key)
        cJSON_AddStringToObject(root, "private_key", duet_key_describe(in->key, kd, sizeof(kd)));
    json_verdict(root, "within_validity", in->time_ok);
    json_verdict(root, "key_matches", in->key_ok);
    if (in->chain_ok >= 0) {
        cJSON_AddStringToObject(root, "chain_against", in->bundle_src);
        cJSON_AddBoolToObject(root, "chain_ok", in->chain_ok);
        if (!in->chain_ok)
            cJSON_AddStringToObject(root, "chain_error", in->chain_why.msg);
    }
    cJSON_AddBoolToObject(root, "ok", inspect_ok(in));
    return root;
}

static int print_json(const struct inspect *in)
{
    cJSON *root = json_build(in);
    char *text = root ? cJSON_Print(root) : NULL;

    cJSON_Delete(root);
    if (!text)
        return DUET_ENOMEM;
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

/* ---- entry ---- */

static void inspect_clear(struct inspect *in)
{
    duet_chain_free(in->chain);
    duet_chain_free(in->bundle);
    duet_key_free(in->key);
    duet_csr_free(in->csr);
}

static int inspect_run(struct inspect *in, struct duet_errbuf *eb)
{
    DUET_TRY(inspect_load(in, eb));
    inspect_judge(in);
    if (in->json)
        DUET_TRY(print_json(in));
    else
        print_text(in);
    return 0;
}

int ag_inspect_main(int argc, char **argv)
{
    struct inspect in;
    const struct duet_flag flags[] = {
        {"ca", DUET_FLAG_STR, &in.ca_path, NULL},
        {"passphrase-file", DUET_FLAG_STR, &in.pass_file, NULL},
        {"json", DUET_FLAG_BOOL, &in.json, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct duet_errbuf eb = {{0}};
    const char *pos[1];
    size_t n_pos = 0;
    int rc;

    memset(&in, 0, sizeof(in));
    in.now = (int64_t)duet_clock_now();
    rc = ag_cli_parse(argc, argv, flags, inspect_usage, pos, 1, &n_pos, &eb);
    if (rc == 1)
        return 0; /* --help */
    if (rc == 0 && n_pos != 1)
        rc = duet_errf(&eb, DUET_E_USAGE, "give one PATH to inspect (see --help)");
    if (rc == 0) {
        in.path = pos[0];
        rc = inspect_run(&in, &eb);
    }
    if (rc == 0 && !inspect_ok(&in))
        rc = 1;
    inspect_clear(&in);
    if (rc < 0)
        return ag_cli_fail("inspect", rc, &eb);
    return rc;
}
