/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `duet-agent ca init`: an environment's root CA in the file names of the
 * manual OpenSSL workflow (rootCa<Env>.key|.crt|.pass). The key is written
 * as encrypted PKCS#8 with a generated 35-character passphrase unless one is
 * given (--passphrase-file) or refused (--no-passphrase). Every check runs
 * before the (slow, for RSA-4096) key generation, and nothing reaches its
 * final name until every file has been written.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/pki.h"

static const char ca_usage[] =
    "usage: duet-agent ca init --env ENV --out DIR [--key-type "
    "rsa4096|rsa3072|rsa2048|ec-p256|ec-p384]\n"
    "                          [--days 3650] [--subject "
    "\"/C=../ST=../L=../O=../OU=../CN=../emailAddress=..\"]\n"
    "                          [--passphrase-file FILE | --no-passphrase] [--force] [--log-level "
    "LEVEL]\n"
    "\n"
    "Writes DIR/rootCa<Env>.key (encrypted PKCS#8, 0600), DIR/rootCa<Env>.crt and, unless\n"
    "--passphrase-file or --no-passphrase is given, DIR/rootCa<Env>.pass (0600).\n"
    "The default subject is \"/CN=duet <env> root CA\".\n";

struct ca_opts {
    const char *env, *out, *key_type, *days, *subject, *pass_file;
    bool no_pass, force;
};

struct ca_run {
    struct ca_opts o;
    enum duet_key_type type;
    int64_t days;
    struct duet_subject subj;
    char base[80]; /* rootCa<Env> */
    char *pass;
    size_t pass_len, pass_alloc; /* pass_alloc: bytes to cleanse */
    bool pass_generated;
    struct ag_out out;
};

static int ca_check(struct ca_run *r, struct duet_errbuf *eb)
{
    char name[96];

    DUET_TRY(ag_cli_check_name("env", r->o.env, eb));
    if (!r->o.out)
        return duet_errf(eb, DUET_E_USAGE, "--out is required");
    DUET_TRY(ag_cli_key_type(r->o.key_type, "rsa4096", &r->type, eb));
    DUET_TRY(ag_cli_parse_days("days", r->o.days ? r->o.days : "3650", &r->days, eb));
    if (r->o.pass_file && r->o.no_pass)
        return duet_errf(eb, DUET_E_USAGE,
                         "--passphrase-file and --no-passphrase exclude each other");
    if (r->o.subject)
        DUET_TRY(duet_subject_parse(r->o.subject, &r->subj, eb));
    if (!r->subj.cn) {
        snprintf(name, sizeof(name), "duet %s root CA", r->o.env);
        r->subj.cn = duet_strdup(name);
        if (!r->subj.cn)
            return DUET_ENOMEM;
    }
    /* rootCa + the environment with its first letter capitalised: dev -> rootCaDev. */
    snprintf(r->base, sizeof(r->base), "rootCa%c%s", toupper((unsigned char)r->o.env[0]),
             r->o.env + 1);
    return 0;
}

static int ca_check_outputs(struct ca_run *r, struct duet_errbuf *eb)
{
    static const char *const exts[] = {".key", ".crt", ".pass"};

    /* A .pass left from an earlier CA would sit beside a key it does not
     * open: it is refused like the others, and replaced or removed by --force. */
    DUET_TRY(ag_out_init(&r->out, r->o.out, r->o.force, eb));
    return ag_out_check_names(&r->out, r->base, exts, DUET_ARRAY_SIZE(exts), eb);
}

static int ca_remove_stale_pass(const struct ca_run *r, struct duet_errbuf *eb)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/%s.pass", r->out.dir, r->base);
    if (unlink(path) == -1 && errno != ENOENT)
        return duet_errf(eb, -errno, "%s: cannot remove the old passphrase file: %s", path,
                         strerror(errno));
    return 0;
}

static int ca_passphrase(struct ca_run *r, struct duet_errbuf *eb)
{
    if (r->o.no_pass)
        return 0;
    if (r->o.pass_file) {
        DUET_TRY(ag_cli_read_pass(r->o.pass_file, &r->pass, &r->pass_len, eb));
        r->pass_alloc = r->pass_len + 1;
        return 0;
    }
    r->pass_len = 35;
    r->pass_alloc = r->pass_len + 2; /* room for the '\n' of the .pass file */
    r->pass = duet_malloc(r->pass_alloc);
    if (!r->pass)
        return DUET_ENOMEM;
    r->pass_generated = true;
    DUET_TRY(duet_passphrase_generate(r->pass, r->pass_len));
    return 0;
}

static int ca_write(struct ca_run *r, const struct duet_key *k, const struct duet_cert *c,
                    struct duet_errbuf *eb)
{
    char *kpem = NULL, *cpem = NULL;
    size_t klen = 0, clen = 0;
    int rc;

    DUET_TRY_GOTO(duet_key_to_pem(k, r->pass, &kpem, &klen, eb), rc, out);
    DUET_TRY_GOTO(duet_cert_to_pem(c, &cpem, &clen), rc, out);
    DUET_TRY_GOTO(ag_out_add_ext(&r->out, r->base, ".key", kpem, klen, 0600, eb), rc, out);
    DUET_TRY_GOTO(ag_out_add_ext(&r->out, r->base, ".crt", cpem, clen, 0644, eb), rc, out);
    if (r->pass_generated) {
        r->pass[r->pass_len] = '\n'; /* one line, as `openssl -passin file:` reads it */
        rc = ag_out_add_ext(&r->out, r->base, ".pass", r->pass, r->pass_len + 1, 0600, eb);
        r->pass[r->pass_len] = '\0';
        DUET_TRY_GOTO(rc, rc, out);
    }
    rc = ag_out_commit(&r->out, eb);
    if (rc == 0 && !r->pass_generated)
        rc = ca_remove_stale_pass(r, eb);
out:
    duet_secret_free(kpem, klen);
    duet_free(cpem);
    return rc;
}

static int ca_make(struct ca_run *r, struct duet_errbuf *eb)
{
    struct duet_key *k = NULL;
    struct duet_cert *c = NULL;
    int rc;

    DUET_TRY(ca_check(r, eb));
    DUET_TRY(ca_passphrase(r, eb));
    DUET_TRY(ca_check_outputs(r, eb));
    DUET_TRY_GOTO(duet_key_generate(r->type, &k, eb), rc, out);
    DUET_TRY_GOTO(
        duet_ca_self_sign(k, &r->subj, (int64_t)duet_clock_now(), r->days * 86400, &c, eb), rc,
        out);
    rc = ca_write(r, k, c, eb);
out:
    duet_cert_free(c);
    duet_key_free(k);
    return rc;
}

static void ca_report(const struct ca_run *r)
{
    printf("wrote %s (%s, %s)\n", ag_out_path(&r->out, 0), duet_key_type_name(r->type),
           r->pass ? "encrypted PKCS#8" : "unencrypted PKCS#8");
    printf("wrote %s (self-signed, %lld days)\n", ag_out_path(&r->out, 1), (long long)r->days);
    if (r->pass_generated)
        printf("wrote %s (the key's passphrase; keep it apart from the key)\n",
               ag_out_path(&r->out, 2));
}

int ag_ca_init_main(int argc, char **argv)
{
    struct ca_run r;
    const struct duet_flag flags[] = {
        {"env", DUET_FLAG_STR, &r.o.env, NULL},
        {"out", DUET_FLAG_STR, &r.o.out, NULL},
        {"key-type", DUET_FLAG_STR, &r.o.key_type, NULL},
        {"days", DUET_FLAG_STR, &r.o.days, NULL},
        {"subject", DUET_FLAG_STR, &r.o.subject, NULL},
        {"passphrase-file", DUET_FLAG_STR, &r.o.pass_file, NULL},
        {"no-passphrase", DUET_FLAG_BOOL, &r.o.no_pass, NULL},
        {"force", DUET_FLAG_BOOL, &r.o.force, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct duet_errbuf eb = {{0}};
    size_t n_pos;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = ag_cli_parse(argc, argv, flags, ca_usage, NULL, 0, &n_pos, &eb);
    if (rc == 1)
        return 0; /* --help */
    if (rc == 0)
        rc = ca_make(&r, &eb);
    if (rc == 0)
        ca_report(&r);
    else
        ag_out_abort(&r.out);
    duet_secret_free(r.pass, r.pass_alloc);
    duet_subject_clear(&r.subj);
    return rc == 0 ? 0 : ag_cli_fail("ca init", rc, &eb);
}
