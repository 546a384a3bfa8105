/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the agent's judgement of a set found on disk
 * (ag_ident_check_disk in agent/src/identity.c): modes and links of the
 * published folder, duet_vol_read_set, the PEM of tls.key, tls.crt and
 * ca.crt, then ag_set_check and ag_cert_conforms against a local issuer
 * whose CA is tests/fuzz/data/setcheck/ca.crt. Each input is published
 * with duet_vol_publish, in the layout the agent writes, into a folder on
 * /dev/shm (or /tmp), then checked exactly as on every scan.
 *
 * Input: a flags byte, the lengths of tls.key and tls.crt (16-bit
 * big-endian), tls.key, tls.crt, and ca.crt (the rest). Flags: bit 0 checks
 * it as a server identity (serverAuth, DNS and IP SANs); bit 1 re-signs the
 * first certificate of tls.crt with the test CA before publishing, so that
 * mutations inside a certificate get past the signature check and reach
 * the comparisons behind it; bit 2 configures an emailAddress in the
 * subject. ECDSA signatures differ from run to run, but only their validity
 * is ever looked at, so every input takes one path.
 *
 * The clock is frozen at 2026-12-01 (the seeds' dates, make_seeds.py).
 * DUET_FUZZ_VERBOSE=1 prints each verdict, for triage of single inputs.
 */
#include <ftw.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "identity.h"
#include "issuer.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/vol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW_MS 1796083200000LL
#define F_SERVER 1
#define F_RESIGN 2
#define F_EMAIL 4
/* Far above a real set, far below SET_MAX_FILE: keeps inputs quick. */
#define INPUT_MAX (64 * 1024)

static char root[64];
static struct ag_issuer *issuer;
static EVP_PKEY *ca_key;
static struct duet_subject subject, subject_email;

static const char *const dns[] = {"fz.example.org"};
static const char *const ips[] = {"127.0.0.1"};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Depth first, links not followed: the folder is ours, from mkdtemp. */
static void rm_tree(const char *path)
{
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "fuzz_setcheck: could not remove %s\n", path);
}

static void at_exit(void)
{
    ag_issuer_free(issuer);
    EVP_PKEY_free(ca_key);
    duet_subject_clear(&subject);
    duet_subject_clear(&subject_email);
    rm_tree(root);
}

/* On tmpfs where there is one: the writer's fsyncs cost nothing there. */
static bool make_root(void)
{
    static const char *const bases[] = {"/dev/shm", "/tmp"};

    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        snprintf(root, sizeof(root), "%s/duet-fuzz-setcheck.XXXXXX", bases[i]);
        if (mkdtemp(root))
            return true;
    }
    return false;
}

static void init(void)
{
    const struct ag_local_opts lo = {DUET_FUZZ_DATA "/ca.crt", DUET_FUZZ_DATA "/ca.key", NULL,
                                     NULL};
    BIO *b = BIO_new_file(DUET_FUZZ_DATA "/ca.key", "r");

    ca_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    subject.c = duet_strdup("LK");
    subject.o = duet_strdup("Example, Inc.");
    if (duet_subject_copy(&subject_email, &subject) < 0)
        abort();
    subject_email.email = duet_strdup("ops@example.org");
    if (!ca_key || !make_root() || !subject.c || !subject.o || !subject_email.email ||
        ag_issuer_local_new(&lo, &issuer, NULL) < 0)
        abort();
    duet_clock_fake(FUZZ_NOW_MS);
    atexit(at_exit);
}

/* The first certificate of crt signed again by the test CA, followed by
 * whatever came after it; NULL when there is none to re-sign. */
static char *resign(const uint8_t *crt, size_t len, size_t *out_len)
{
    BIO *in = BIO_new_mem_buf(crt, len), *out = BIO_new(BIO_s_mem());
    X509 *x = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
    const uint8_t *pem, *rest;
    size_t pem_len, rest_len;
    char *res = NULL;

    if (x && out && X509_sign(x, ca_key, EVP_sha256()) > 0 && PEM_write_bio_X509(out, x) &&
        BIO_mem_contents(out, &pem, &pem_len) && BIO_mem_contents(in, &rest, &rest_len)) {
        res = malloc(pem_len + rest_len + 1);
        if (!res)
            abort();
        memcpy(res, pem, pem_len);
        memcpy(res + pem_len, rest, rest_len);
        *out_len = pem_len + rest_len;
    }
    X509_free(x);
    BIO_free(out);
    BIO_free(in);
    return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ag_policy pol = {.key_group = (gid_t)-1};
    struct duet_vol_opts vo = {.gid = (gid_t)-1, .dir_mode = 0755};
    struct duet_vol_file files[3];
    struct duet_errbuf eb = {{0}};
    struct ag_ident *id = NULL;
    size_t key_len, crt_len, crt2_len = 0;
    const uint8_t *key, *crt, *ca;
    char *crt2 = NULL;
    int rc;

    if (!issuer)
        init();
    if (size < 5 || size > INPUT_MAX)
        return 0;
    key_len = (size_t)data[1] << 8 | data[2];
    crt_len = (size_t)data[3] << 8 | data[4];
    if (key_len + crt_len > size - 5)
        return 0;
    key = data + 5;
    crt = key + key_len;
    ca = crt + crt_len;

    bool server = data[0] & F_SERVER;
    const struct ag_ident_params p = {
        .env = "dev",
        .product = "fz",
        .trust_domain = "example.org",
        .output_dir = root,
        .cn_template = "{env}.{product}",
        .subject = data[0] & F_EMAIL ? &subject_email : &subject,
        .key_type = DUET_KEY_EC_P256,
        .validity_ms = 3600 * 1000,
        .server = server,
        .dns = server ? dns : NULL,
        .n_dns = server ? 1 : 0,
        .ips = server ? ips : NULL,
        .n_ips = server ? 1 : 0,
    };
    if (ag_ident_new(&p, &id, &eb) < 0)
        abort();
    if (data[0] & F_RESIGN)
        crt2 = resign(crt, crt_len, &crt2_len);
    /* The layout the agent publishes without a key group (identity.c set_layout). */
    files[0] = (struct duet_vol_file){DUET_VOL_KEY, key, key_len, 0600};
    files[1] = (struct duet_vol_file){DUET_VOL_CERT, crt2 ? (const uint8_t *)crt2 : crt,
                                      crt2 ? crt2_len : crt_len, 0644};
    files[2] = (struct duet_vol_file){DUET_VOL_CA, ca, size - 5 - key_len - crt_len, 0644};
    vo.root = id->root;
    if (duet_vol_publish(id->dir, files, 3, &vo, &eb) < 0) {
        fprintf(stderr, "fuzz_setcheck: publish: %s\n", eb.msg);
        abort();
    }
    rc = ag_ident_check_disk(id, issuer, &pol, &eb);
    /* For triage: what the agent would log about this set. */
    if (getenv("DUET_FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz_setcheck: rc=%s %s\n", duet_err_name(rc), eb.msg);
    /* A set judged good is remembered as such, unchanged on disk. */
    if (rc == 0 && (!id->rot.have || !id->sig_valid || ag_ident_disk_changed(id)))
        abort();
    if (rc < 0 && (id->rot.have || eb.msg[0] == '\0'))
        abort();
    ag_ident_free(id);
    free(crt2);
    return 0;
}
