/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `duet-agent issue`: one product's key, CSR and certificate, signed by a
 * local CA (duet's own or one made by the manual OpenSSL workflow, -des3 key
 * included), in the workflow's file names: <cn>.key|.csr|.crt where <cn>
 * comes from the CN template (dev.productA.dev). Client profile by default;
 * --server makes a serverAuth certificate with DNS/IP SANs for the resource
 * side. The SAN URI is spiffe://<trust-domain>/<env>/<product>; the default
 * trust domain is "duet.local".
 *
 * A validity that would outlast the CA is refused (exit 1), not clamped: a
 * certificate silently shorter than asked would surprise the rotation
 * schedule, and the operator can choose --days knowingly.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "cli.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/pki.h"

#define AG_DEFAULT_TRUST_DOMAIN "duet.local"

static const char issue_usage[] =
    "usage: duet-agent issue --env ENV --product NAME --ca-cert FILE --ca-key FILE\n"
    "                        [--ca-passphrase-file FILE] --out DIR [--key-type "
    "rsa2048|rsa3072|rsa4096|ec-p256|ec-p384]\n"
    "                        [--days 365] [--subject \"/C=LK/ST=WP/O=Example, Inc.\"]\n"
    "                        [--cn-template \"{env}.{product}.{env}\"] [--trust-domain "
    "duet.local]\n"
    "                        [--server [--dns NAME]... [--ip ADDR]...] [--force] [--log-level "
    "LEVEL]\n"
    "\n"
    "Writes DIR/<cn>.key (0600), DIR/<cn>.csr and DIR/<cn>.crt, <cn> from the CN template.\n";

struct issue_opts {
    const char *env, *product, *ca_cert, *ca_key, *ca_pass, *out, *key_type, *days, *subject;
    const char *cn_template, *trust_domain;
    bool server, force;
    struct duet_flag_list dns, ip;
};

struct issue_run {
    struct issue_opts o;
    enum duet_key_type type;
    int64_t days;
    struct duet_subject subj;
    char cn[256];
    char uri[512];
    struct ag_out out;
    struct duet_chain *ca_chain;
    struct duet_key *ca_key;
};

/* Expand {env} and {product}; any other {...} is a usage error. */
static int expand_cn(const char *t, const char *env, const char *product, char *out, size_t size,
                     struct duet_errbuf *eb)
{
    size_t n = 0;

    for (const char *p = t; *p;) {
        const char *v = NULL;
        size_t vl = 1;

        if (strncmp(p, "{env}", 5) == 0)
            v = env, vl = strlen(env), p += 5;
        else if (strncmp(p, "{product}", 9) == 0)
            v = product, vl = strlen(product), p += 9;
        else if (*p == '{' || *p == '}')
            return duet_errf(eb, DUET_E_USAGE,
                             "--cn-template \"%s\": only {env} and {product} "
                             "may appear in braces",
                             t);
        else
            v = p++;
        if (n + vl >= size)
            return duet_errf(eb, DUET_E_USAGE, "--cn-template \"%s\": too long", t);
        memcpy(out + n, v, vl);
        n += vl;
    }
    out[n] = '\0';
    /* The CN is also the file name base: keep it to a safe character set. */
    if (n == 0 || out[0] == '.' || n > 64 ||
        strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") != n)
        return duet_errf(eb, DUET_E_USAGE,
                         "--cn-template \"%s\" gives \"%s\": use letters, "
                         "digits, '.', '-', '_', not starting with '.', at most 64",
                         t, out);
    return 0;
}

static int issue_check_names(struct issue_run *r, struct duet_errbuf *eb)
{
    const char *td = r->o.trust_domain ? r->o.trust_domain : AG_DEFAULT_TRUST_DOMAIN;
    size_t tdl = strlen(td);

    DUET_TRY(ag_cli_check_name("env", r->o.env, eb));
    DUET_TRY(ag_cli_check_name("product", r->o.product, eb));
    /* SPIFFE trust domains: lower-case letters, digits, '.', '-', '_'. */
    if (tdl == 0 || tdl > 255 || strspn(td, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != tdl)
        return duet_errf(eb, DUET_E_USAGE,
                         "--trust-domain \"%s\": use lower-case letters, "
                         "digits, '.', '-' and '_'",
                         td);
    snprintf(r->uri, sizeof(r->uri), "spiffe://%s/%s/%s", td, r->o.env, r->o.product);
    return expand_cn(r->o.cn_template ? r->o.cn_template : "{env}.{product}.{env}", r->o.env,
                     r->o.product, r->cn, sizeof(r->cn), eb);
}

static int issue_check(struct issue_run *r, struct duet_errbuf *eb)
{
    DUET_TRY(issue_check_names(r, eb));
    if (!r->o.ca_cert || !r->o.ca_key)
        return duet_errf(eb, DUET_E_USAGE, "--ca-cert and --ca-key are required");
    if (!r->o.out)
        return duet_errf(eb, DUET_E_USAGE, "--out is required");
    DUET_TRY(ag_cli_key_type(r->o.key_type, "rsa2048", &r->type, eb));
    DUET_TRY(ag_cli_parse_days("days", r->o.days ? r->o.days : "365", &r->days, eb));
    if (!r->o.server && (r->o.dns.n || r->o.ip.n))
        return duet_errf(eb, DUET_E_USAGE, "--dns and --ip need --server");
    if (r->o.subject) {
        DUET_TRY(duet_subject_parse(r->o.subject, &r->subj, eb));
        if (r->subj.cn)
            return duet_errf(eb, DUET_E_USAGE,
                             "--subject \"%s\": leave CN out, it comes from "
                             "--cn-template",
                             r->o.subject);
    }
    r->subj.cn = duet_strdup(r->cn);
    return r->subj.cn ? 0 : DUET_ENOMEM;
}

static int issue_check_outputs(struct issue_run *r, struct duet_errbuf *eb)
{
    static const char *const exts[] = {".key", ".csr", ".crt"};

    DUET_TRY(ag_out_init(&r->out, r->o.out, r->o.force, eb));
    return ag_out_check_names(&r->out, r->cn, exts, 3, eb);
}

static int issue_load_ca(struct issue_run *r, struct duet_errbuf *eb)
{
    char *pass = NULL;
    size_t pass_len = 0;
    int rc;

    DUET_TRY(duet_chain_load(r->o.ca_cert, &r->ca_chain, eb));
    if (r->o.ca_pass)
        DUET_TRY(ag_cli_read_pass(r->o.ca_pass, &pass, &pass_len, eb));
    rc = duet_key_load(r->o.ca_key, pass, &r->ca_key, eb);
    if (rc == DUET_E_PASSPHRASE && !pass) {
        duet_errbuf_clear(eb); /* replace pki's message with one naming the flag */
        rc = duet_errf(eb, rc, "%s: the CA key is encrypted: give --ca-passphrase-file",
                       r->o.ca_key);
    }
    duet_secret_free(pass, pass_len + 1);
    return rc;
}

static int issue_write(struct issue_run *r, const struct duet_key *k, const struct duet_csr *csr,
                       const struct duet_cert *c, struct duet_errbuf *eb)
{
    char *kpem = NULL, *rpem = NULL, *cpem = NULL;
    size_t klen = 0, rlen = 0, clen = 0;
    int rc;

    /* Unencrypted PKCS#8, like `openssl genrsa` in the workflow: the sidecar reads it as is. */
    DUET_TRY_GOTO(duet_key_to_pem(k, NULL, &kpem, &klen, eb), rc, out);
    DUET_TRY_GOTO(duet_csr_to_pem(csr, &rpem, &rlen), rc, out);
    DUET_TRY_GOTO(duet_cert_to_pem(c, &cpem, &clen), rc, out);
    DUET_TRY_GOTO(ag_out_add_ext(&r->out, r->cn, ".key", kpem, klen, 0600, eb), rc, out);
    DUET_TRY_GOTO(ag_out_add_ext(&r->out, r->cn, ".csr", rpem, rlen, 0644, eb), rc, out);
    DUET_TRY_GOTO(ag_out_add_ext(&r->out, r->cn, ".crt", cpem, clen, 0644, eb), rc, out);
    rc = ag_out_commit(&r->out, eb);
out:
    duet_secret_free(kpem, klen);
    duet_free(rpem);
    duet_free(cpem);
    return rc;
}

static int issue_sign(struct issue_run *r, struct duet_errbuf *eb)
{
    const char *uris[1] = {r->uri};
    struct duet_sans sans = {uris, 1, r->o.dns.v, r->o.dns.n, r->o.ip.v, r->o.ip.n};
    struct duet_key *k = NULL;
    struct duet_csr *csr = NULL;
    struct duet_cert *c = NULL;
    struct duet_chain *leaf = NULL;
    int64_t now = (int64_t)duet_clock_now();
    int rc;

    DUET_TRY_GOTO(duet_key_generate(r->type, &k, eb), rc, out);
    DUET_TRY_GOTO(duet_csr_build(k, &r->subj, &sans, &csr, eb), rc, out);
    struct duet_sign_req req = {
        .csr = csr,
        .ca_cert = duet_chain_at(r->ca_chain, 0),
        .ca_key = r->ca_key,
        .profile = r->o.server ? DUET_PROFILE_SERVER : DUET_PROFILE_CLIENT,
        .now = now,
        .validity = r->days * 86400,
    };
    DUET_TRY_GOTO(duet_cert_sign(&req, &c, eb), rc, out);
    /* Check what we made the way a peer will, before anything is written. */
    DUET_TRY_GOTO(duet_chain_new(&leaf), rc, out);
    DUET_TRY_GOTO(duet_chain_push(leaf, c), rc, out);
    DUET_TRY_GOTO(duet_chain_verify(leaf, r->ca_chain, now,
                                    r->o.server ? DUET_PURPOSE_SERVER : DUET_PURPOSE_CLIENT, eb),
                  rc, out);
    rc = issue_write(r, k, csr, c, eb);
out:
    duet_chain_free(leaf);
    duet_cert_free(c);
    duet_csr_free(csr);
    duet_key_free(k);
    return rc;
}

static int issue_make(struct issue_run *r, struct duet_errbuf *eb)
{
    DUET_TRY(issue_check(r, eb));
    DUET_TRY(issue_check_outputs(r, eb));
    DUET_TRY(issue_load_ca(r, eb));
    return issue_sign(r, eb);
}

int ag_issue_main(int argc, char **argv)
{
    struct issue_run r;
    const struct duet_flag flags[] = {
        {"env", DUET_FLAG_STR, &r.o.env, NULL},
        {"product", DUET_FLAG_STR, &r.o.product, NULL},
        {"ca-cert", DUET_FLAG_STR, &r.o.ca_cert, NULL},
        {"ca-key", DUET_FLAG_STR, &r.o.ca_key, NULL},
        {"ca-passphrase-file", DUET_FLAG_STR, &r.o.ca_pass, NULL},
        {"out", DUET_FLAG_STR, &r.o.out, NULL},
        {"key-type", DUET_FLAG_STR, &r.o.key_type, NULL},
        {"days", DUET_FLAG_STR, &r.o.days, NULL},
        {"subject", DUET_FLAG_STR, &r.o.subject, NULL},
        {"cn-template", DUET_FLAG_STR, &r.o.cn_template, NULL},
        {"trust-domain", DUET_FLAG_STR, &r.o.trust_domain, NULL},
        {"server", DUET_FLAG_BOOL, &r.o.server, NULL},
        {"dns", DUET_FLAG_LIST, &r.o.dns, NULL},
        {"ip", DUET_FLAG_LIST, &r.o.ip, NULL},
        {"force", DUET_FLAG_BOOL, &r.o.force, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct duet_errbuf eb = {{0}};
    size_t n_pos;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = ag_cli_parse(argc, argv, flags, issue_usage, NULL, 0, &n_pos, &eb);
    if (rc == 1)
        return 0; /* --help */
    if (rc == 0)
        rc = issue_make(&r, &eb);
    if (rc == 0) {
        for (size_t i = 0; i < 3; i++)
            printf("wrote %s\n", ag_out_path(&r.out, i));
    } else {
        ag_out_abort(&r.out);
    }
    duet_key_free(r.ca_key);
    duet_chain_free(r.ca_chain);
    duet_subject_clear(&r.subj);
    return rc == 0 ? 0 : ag_cli_fail("issue", rc, &eb);
}
