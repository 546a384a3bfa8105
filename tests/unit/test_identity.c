/* SPDX-License-Identifier: Apache-2.0 */
/*
 * identity + local issuer: a set is issued, checked and published into a
 * temp folder from a CA on disk (encrypted key, as a Secret holds it), read
 * back and judged; damaged sets, a foreign key, a rotated CA and a wrong
 * subject are refused. Real keys, real files; the openssl CLI confirms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "identity.h"
#include "issuer.h"
#include "testlib.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/pki.h"

struct fx {
    char dir[256];
    char ca_crt[300], ca_key[300], ca_pass[300];
    struct ag_issuer *is;
    struct ag_ident *id;
    struct duet_subject subj;
    struct ag_policy pol;
};

static void write_ca(struct fx *f, const char *cn)
{
    struct duet_key *k = NULL;
    struct duet_cert *c = NULL;
    struct duet_subject s = {0};
    char *pem = NULL;
    size_t len = 0;

    s.cn = (char *)cn;
    assert_int_equal(duet_key_generate(DUET_KEY_EC_P256, &k, NULL), 0);
    assert_int_equal(duet_ca_self_sign(k, &s, duet_clock_now(), 3650LL * 86400, &c, NULL), 0);
    assert_int_equal(duet_cert_to_pem(c, &pem, &len), 0);
    tl_write_file(f->ca_crt, pem, len, 0644);
    duet_free(pem);
    assert_int_equal(duet_key_to_pem(k, "s3cret pass", &pem, &len, NULL), 0);
    tl_write_file(f->ca_key, pem, len, 0600);
    duet_secret_free(pem, len);
    tl_write_file(f->ca_pass, "s3cret pass\n", 12, 0600);
    duet_cert_free(c);
    duet_key_free(k);
}

static void make_ident(struct fx *f, const char *product, const char *o)
{
    char out[300];

    duet_subject_clear(&f->subj);
    f->subj.c = duet_strdup("LK");
    f->subj.o = duet_strdup(o);
    struct ag_ident_params p = {
        .env = "dev",
        .product = product,
        .trust_domain = "example.org",
        .output_dir = tl_path(out, sizeof(out), "%s/out", f->dir),
        .cn_template = "{env}.{product}.{env}",
        .subject = &f->subj,
        .key_type = DUET_KEY_EC_P256,
        .validity_ms = 3600 * 1000,
    };
    ag_ident_free(f->id);
    f->id = NULL;
    assert_int_equal(ag_ident_new(&p, &f->id, NULL), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    tl_tmpdir(f->dir, sizeof(f->dir));
    tl_path(f->ca_crt, sizeof(f->ca_crt), "%s/ca.crt", f->dir);
    tl_path(f->ca_key, sizeof(f->ca_key), "%s/ca.key", f->dir);
    tl_path(f->ca_pass, sizeof(f->ca_pass), "%s/ca.pass", f->dir);
    write_ca(f, "Unit Root CA");
    const struct ag_local_opts lo = {f->ca_crt, f->ca_key, f->ca_pass, NULL};
    assert_int_equal(ag_issuer_local_new(&lo, &f->is, NULL), 0);
    make_ident(f, "productA", "Example, Inc.");
    f->pol.key_group = (gid_t)-1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    ag_ident_free(f->id);
    ag_issuer_free(f->is);
    duet_subject_clear(&f->subj);
    tl_rmrf(f->dir);
    free(f);
    return 0;
}

static void issue_ok(struct fx *f)
{
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    if (ag_ident_issue(f->id, f->is, &f->pol, &eb) != 0)
        fail_msg("issue: %s", eb.msg);
}

static int check(struct fx *f, char *msg, size_t size)
{
    struct duet_errbuf eb;
    int rc;

    duet_errbuf_clear(&eb);
    f->id->sig_valid = false;
    rc = ag_ident_check_disk(f->id, f->is, &f->pol, &eb);
    if (msg)
        snprintf(msg, size, "%s", eb.msg);
    return rc;
}

static void cn_expand__templates(void **state)
{
    char buf[64];

    assert_int_equal(ag_cn_expand("{env}.{product}.{env}", "dev", "productA", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "dev.productA.dev");
    assert_int_equal(ag_cn_expand("orgsync.{env}.{product}.{env}", "prod", "b", buf, sizeof(buf)),
                     0);
    assert_string_equal(buf, "orgsync.prod.b.prod");
    assert_int_equal(ag_cn_expand("{env", "dev", "p", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "{env");
    assert_int_equal(ag_cn_expand("{product}{product}", "d", "0123456789", buf, 20), DUET_E_TOOBIG);
}

static void ident_issue__publishes_a_checked_set(void **state)
{
    struct fx *f = *state;
    char out[4096], path[400];
    struct stat st;
    int64_t now = duet_clock_real_ms();

    issue_ok(f);
    assert_true(f->id->rot.have);
    assert_int_equal(f->id->renewals, 1);
    /* notAfter is issuance + 1 h; renewal within 70-90% of it. */
    assert_true(f->id->rot.renew_at >= now + 2520 * 1000 - 2000);
    assert_true(f->id->rot.renew_at <= now + 3240 * 1000 + 2000);
    assert_int_equal(stat(tl_path(path, sizeof(path), "%s/tls.key", f->id->dir), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tl_sh(out, sizeof(out),
                           "openssl verify -CAfile %s/ca.crt -purpose sslclient %s/tls.crt",
                           f->id->dir, f->id->dir),
                     0);
    assert_int_equal(tl_sh(out, sizeof(out),
                           "openssl x509 -in %s/tls.crt -noout -subject -ext subjectAltName",
                           f->id->dir),
                     0);
    assert_non_null(strstr(out, "CN = dev.productA.dev"));
    assert_non_null(strstr(out, "URI:spiffe://example.org/dev/productA"));
    assert_int_equal(check(f, NULL, 0), 0);
}

static void ident_check_disk__keeps_renewal_of_own_cert(void **state)
{
    struct fx *f = *state;
    int64_t at;

    issue_ok(f);
    at = f->id->rot.renew_at;
    assert_int_equal(check(f, NULL, 0), 0);
    assert_int_equal(f->id->rot.renew_at, at);
    /* A restart (fresh state) keeps the set but draws a new deadline from notBefore. */
    f->id->rot.have = false;
    assert_int_equal(check(f, NULL, 0), 0);
    assert_true(f->id->rot.have);
    assert_int_equal(f->id->rot.v.received, 0);
}

static void ident_check_disk__refuses_damage(void **state)
{
    struct fx *f = *state;
    char msg[512], path[400];

    assert_int_equal(check(f, msg, sizeof(msg)), -ENOENT);
    issue_ok(f);
    tl_write_file(tl_path(path, sizeof(path), "%s/..data/tls.crt", f->id->dir), "junk\n", 5, 0644);
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_PEM);
    assert_false(f->id->rot.have);

    issue_ok(f);
    assert_int_equal(unlink(tl_path(path, sizeof(path), "%s/tls.crt", f->id->dir)), 0);
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VOL_LAYOUT);
}

static void ident_check_disk__refuses_foreign_key(void **state)
{
    struct fx *f = *state;
    char msg[512], a[400], b[400];
    size_t len;
    char *key;

    issue_ok(f);
    make_ident(f, "productB", "Example, Inc.");
    issue_ok(f);
    key = tl_read_file(tl_path(b, sizeof(b), "%s/tls.key", f->id->dir), &len);
    make_ident(f, "productA", "Example, Inc.");
    tl_write_file(tl_path(a, sizeof(a), "%s/out/dev/productA/..data/tls.key", f->dir), key, len,
                  0600);
    free(key);
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_KEY_MISMATCH);
}

static void ident_check_disk__refuses_old_ca_and_wrong_subject(void **state)
{
    struct fx *f = *state;
    char msg[512];

    issue_ok(f);
    make_ident(f, "productA", "Other Org");
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VERIFY);
    assert_non_null(strstr(msg, "subject O"));

    make_ident(f, "productA", "Example, Inc.");
    assert_int_equal(check(f, NULL, 0), 0);
    write_ca(f, "Unit Root CA 2"); /* the Secret was rotated */
    assert_int_not_equal(check(f, msg, sizeof(msg)), 0);
    issue_ok(f); /* the issuer picks the new CA up without a restart */
    assert_int_equal(check(f, NULL, 0), 0);
}

static void local_sign__wrong_passphrase_costs_no_key(void **state)
{
    struct fx *f = *state;
    struct duet_errbuf eb;

    tl_write_file(f->ca_pass, "nope\n", 5, 0600);
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_ident_issue(f->id, f->is, &f->pol, &eb), DUET_E_PASSPHRASE);
    assert_false(f->id->rot.have);
    assert_int_equal(f->id->renewals, 0);
    /* The CA is read before a key is made: an unusable CA costs none. */
    assert_null(f->id->pending_key);
    tl_write_file(f->ca_pass, "s3cret pass\n", 12, 0600);
    issue_ok(f);
    assert_null(f->id->pending_key);
}

static void local_sign__intermediate_follows_leaf(void **state)
{
    struct fx *f = *state;
    struct ag_issuer *is = NULL;
    char out[4096], path[400];
    char *crt;
    size_t len;
    int n = 0;

    /* A root and an intermediate CA from the openssl CLI; the agent signs
     * with the intermediate and trusts only the root. */
    assert_int_equal(
        tl_sh(out, sizeof(out),
              "cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "
              "root.key &&"
              " openssl req -x509 -new -key root.key -subj /CN=Root -days 30 -out root.crt"
              " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&"
              " openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out int.key &&"
              " openssl req -new -key int.key -subj /CN=Intermediate -out int.csr &&"
              " printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign\\n' "
              ">int.ext &&"
              " openssl x509 -req -in int.csr -CA root.crt -CAkey root.key -CAcreateserial -days 20"
              " -extfile int.ext -out int.crt",
              f->dir),
        0);
    char c[300], k[300], b[300];
    const struct ag_local_opts lo = {tl_path(c, sizeof(c), "%s/int.crt", f->dir),
                                     tl_path(k, sizeof(k), "%s/int.key", f->dir), NULL,
                                     tl_path(b, sizeof(b), "%s/root.crt", f->dir)};
    assert_int_equal(ag_issuer_local_new(&lo, &is, NULL), 0);
    ag_issuer_free(f->is);
    f->is = is;
    f->id->validity_ms = 86400 * 1000;
    issue_ok(f);
    crt = tl_read_file(tl_path(path, sizeof(path), "%s/tls.crt", f->id->dir), &len);
    for (const char *p = crt; (p = strstr(p, "BEGIN CERTIFICATE")) != NULL; p++)
        n++;
    free(crt);
    assert_int_equal(n, 2);
    assert_int_equal(check(f, NULL, 0), 0);
    assert_int_equal(tl_sh(out, sizeof(out),
                           "openssl verify -CAfile %s/root.crt -untrusted %s/tls.crt -purpose "
                           "sslclient %s/tls.crt",
                           f->dir, f->id->dir, f->id->dir),
                     0);
}

/* ---- a CA that returns whatever it is told to (item 13) ----------------------- */

/* What the fake issuer's next certificate carries: openssl x509 -extfile lines,
 * a subject (NULL: the CSR's), a lifetime in days. */
struct fake_ca {
    struct ag_issuer base; /* first */
    struct fx *f;
    const char *ext;
    const char *subj;
    int days;
    int signed_n; /* requests answered */
};

/* Its snapshot only points back at it: the test keeps both alive. */
struct fake_snap {
    struct ag_ca_snap base; /* first */
    struct fake_ca *fc;
};

static int fake_sign(struct fake_ca *fc, const struct ag_issue_req *req,
                     struct ag_issue_result *out, struct duet_errbuf *eb)
{
    struct fx *f = fc->f;
    char path[400], out_s[4096];
    char *pem = NULL;
    size_t len = 0;

    /* Our CSR's key, with the subject the test wants (-subj overrides the CSR's). */
    fc->signed_n++;
    assert_int_equal(duet_csr_to_pem(req->csr, &pem, &len), 0);
    tl_write_file(tl_path(path, sizeof(path), "%s/leaf.csr", f->dir), pem, len, 0644);
    duet_free(pem);
    tl_write_file(tl_path(path, sizeof(path), "%s/leaf.ext", f->dir), fc->ext, strlen(fc->ext),
                  0644);
    if (tl_sh(
            out_s, sizeof(out_s),
            "cd %s && openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -passin file:ca.pass"
            " -days %d -set_serial 7 -extfile leaf.ext %s%s%s -out leaf.crt",
            f->dir, fc->days, fc->subj ? "-subj '" : "", fc->subj ? fc->subj : "",
            fc->subj ? "'" : "") != 0)
        fail_msg("openssl x509: %s", out_s);
    assert_int_equal(
        duet_chain_load(tl_path(path, sizeof(path), "%s/leaf.crt", f->dir), &out->chain, eb), 0);
    return duet_chain_load(f->ca_crt, &out->bundle, eb);
}

static int fake_bundle(struct ag_issuer *is, struct duet_chain **out, struct duet_errbuf *eb)
{
    return duet_chain_load(((struct fake_ca *)is)->f->ca_crt, out, eb);
}

static void fake_free(struct ag_issuer *is)
{
}

static int fake_snap_sign(const struct ag_ca_snap *s, const struct ag_issue_req *req,
                          struct ag_issue_result *out, struct duet_errbuf *eb)
{
    return fake_sign(((const struct fake_snap *)s)->fc, req, out, eb);
}

static void fake_snap_destroy(struct ag_ca_snap *s)
{
    free(s);
}

static int fake_snapshot(struct ag_issuer *is, struct ag_ca_snap **out, struct duet_errbuf *eb)
{
    struct fake_snap *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    s->base.refs = 1;
    s->base.sign = fake_snap_sign;
    s->base.destroy = fake_snap_destroy;
    s->fc = (struct fake_ca *)is;
    *out = &s->base;
    return 0;
}

static const struct ag_issuer_ops fake_ops = {
    .name = "fake",
    .bundle = fake_bundle,
    .snapshot = fake_snapshot,
    .free = fake_free,
};

#define GOOD_EXT                                                                                   \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"                     \
    "extendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://example.org/dev/productA\n"

static int fake_issue(struct fx *f, struct fake_ca *fc, char *msg, size_t size)
{
    struct duet_errbuf eb;
    int rc;

    duet_errbuf_clear(&eb);
    rc = ag_ident_issue(f->id, &fc->base, &f->pol, &eb);
    snprintf(msg, size, "%s", eb.msg);
    return rc;
}

static void ident_issue__refuses_what_was_not_asked(void **state)
{
    struct fx *f = *state;
    struct fake_ca fc = {.base = {.ops = &fake_ops, .uri_sans = true}, .f = f, .days = 1};
    static const struct {
        const char *ext, *subj, *field;
        int days;
    } bad[] = {
        /* The report: a CA certificate with serverAuth and an extra DNS name. */
        {"basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\n"
         "extendedKeyUsage=clientAuth,serverAuth\n"
         "subjectAltName=URI:spiffe://example.org/dev/productA,DNS:dev.productB.dev\n",
         NULL, "CA:TRUE", 1},
        {"keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
         "subjectAltName=URI:spiffe://example.org/dev/productA\n",
         NULL, "basicConstraints", 1},
        {"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyCertSign\n"
         "extendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://example.org/dev/productA\n",
         NULL, "keyCertSign", 1},
        {"basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n"
         "subjectAltName=URI:spiffe://example.org/dev/productA\n",
         NULL, "keyUsage", 1},
        {"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
         "extendedKeyUsage=clientAuth,serverAuth\n"
         "subjectAltName=URI:spiffe://example.org/dev/productA\n",
         NULL, "extendedKeyUsage", 1},
        {"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
         "subjectAltName=URI:spiffe://example.org/dev/productA\n",
         NULL, "extendedKeyUsage", 1},
        {"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
         "extendedKeyUsage=clientAuth\n"
         "subjectAltName=URI:spiffe://example.org/dev/productA,DNS:dev.productB.dev\n",
         NULL, "DNS", 1},
        {"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
         "extendedKeyUsage=clientAuth\n"
         "subjectAltName=URI:spiffe://example.org/dev/productA,URI:spiffe://example.org/dev/"
         "productB\n",
         NULL, "URI", 1},
        {"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
         "extendedKeyUsage=clientAuth\n"
         "subjectAltName=URI:spiffe://example.org/dev/productA,email:a@example.org\n",
         NULL, "kind", 1},
        {GOOD_EXT, "/C=LK/O=Example, Inc./CN=dev.productA.dev/O=Evil", "attributes", 1},
        {GOOD_EXT, "/C=LK/O=Example, Inc./CN=dev.productB.dev", "subject CN", 1},
        {GOOD_EXT, NULL, "lifetime", 400},
    };
    char msg[512], before[96];
    const struct duet_key *first_key = NULL;

    f->id->validity_ms = 86400 * 1000;
    fc.ext = GOOD_EXT;
    assert_int_equal(fake_issue(f, &fc, msg, sizeof(msg)), 0);
    snprintf(before, sizeof(before), "%s", f->id->serial);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fc.ext = bad[i].ext;
        fc.subj = bad[i].subj;
        fc.days = bad[i].days;
        assert_int_equal(fake_issue(f, &fc, msg, sizeof(msg)), DUET_E_VERIFY);
        if (!strstr(msg, bad[i].field) || !strstr(msg, "refused the certificate from fake"))
            fail_msg("case %zu: \"%s\" does not name %s", i, msg, bad[i].field);
        /* The current set stays. */
        assert_int_equal(check(f, NULL, 0), 0);
        assert_string_equal(f->id->serial, before);
        /* Every retry reuses the key of the first refused attempt. */
        assert_non_null(f->id->pending_key);
        if (i == 0)
            first_key = f->id->pending_key;
        assert_ptr_equal(f->id->pending_key, first_key);
    }
    fc.ext = GOOD_EXT;
    fc.subj = NULL;
    fc.days = 1;
    assert_int_equal(fake_issue(f, &fc, msg, sizeof(msg)), 0);
    assert_null(f->id->pending_key); /* published: the next renewal gets a fresh key */
    assert_int_equal(fc.signed_n, (int)(sizeof(bad) / sizeof(bad[0])) + 2);
}

/* ---- a set that no longer matches the configuration (item 14) -------------------- */

static void ident_check_disk__reissues_on_changed_configuration(void **state)
{
    struct fx *f = *state;
    char msg[512], b[300];

    issue_ok(f);
    assert_int_equal(check(f, NULL, 0), 0);
    /* Key type. */
    f->id->key_type = DUET_KEY_RSA2048;
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VERIFY);
    assert_non_null(strstr(msg, "key type is ec-p256, configured rsa2048"));
    f->id->key_type = DUET_KEY_EC_P256;
    /* Lifetime: longer and shorter validity (the local issuer honours it). */
    f->id->validity_ms = 1800 * 1000;
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VERIFY);
    assert_non_null(strstr(msg, "lifetime"));
    f->id->validity_ms = 365LL * 86400 * 1000;
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VERIFY);
    assert_non_null(strstr(msg, "shorter than validity"));
    f->id->validity_ms = 3600 * 1000;
    assert_int_equal(check(f, NULL, 0), 0);
    /* Issuer: a new CA, with the bundle still trusting the old one. */
    tl_sh(msg, sizeof(msg), "cp %s %s/old-ca.crt", f->ca_crt, f->dir);
    write_ca(f, "Unit Root CA 2");
    tl_sh(msg, sizeof(msg), "cat %s %s/old-ca.crt > %s/bundle.crt", f->ca_crt, f->dir, f->dir);
    struct ag_issuer *is = NULL;
    const struct ag_local_opts lo = {f->ca_crt, f->ca_key, f->ca_pass,
                                     tl_path(b, sizeof(b), "%s/bundle.crt", f->dir)};
    assert_int_equal(ag_issuer_local_new(&lo, &is, NULL), 0);
    ag_issuer_free(f->is);
    f->is = is;
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VERIFY);
    assert_non_null(strstr(msg, "issuer is not the configured CA"));
    issue_ok(f); /* the new bundle published, signed by the new CA */
    assert_int_equal(check(f, NULL, 0), 0);
    /* The bundle unchanged, but the configured CA is now the old one again. */
    tl_sh(msg, sizeof(msg), "cp %s/old-ca.crt %s", f->dir, f->ca_crt);
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VERIFY);
    assert_non_null(strstr(msg, "issuer is not the configured CA"));
}

/* ---- modes and symlinks (items 16, 17) -------------------------------------------- */

static void ident_check_disk__counts_and_refuses_mode_drift(void **state)
{
    struct fx *f = *state;
    char msg[512], path[400];
    struct stat st;

    issue_ok(f);
    assert_int_equal(chmod(tl_path(path, sizeof(path), "%s/tls.key", f->id->dir), 0644), 0);
    assert_true(ag_ident_disk_changed(f->id)); /* the scan notices the chmod */
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(msg, "tls.key: mode 0644, want 0600"));
    assert_false(f->id->rot.have);
    assert_int_equal(f->id->unsafe_sets, 1);
    issue_ok(f); /* the re-issue publishes with the right mode */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(check(f, NULL, 0), 0);
    /* The version folder opened up is noticed too. */
    assert_int_equal(chmod(tl_path(path, sizeof(path), "%s/..data/", f->id->dir), 0777), 0);
    assert_true(ag_ident_disk_changed(f->id));
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VOL_UNSAFE);
    assert_int_equal(f->id->unsafe_sets, 2);
}

static void ident_issue__refuses_symlinked_folder(void **state)
{
    struct fx *f = *state;
    char victim[300], path[400], out[4096];
    struct duet_errbuf eb;

    tl_path(victim, sizeof(victim), "%s/victim", f->dir);
    assert_int_equal(mkdir(victim, 0700), 0);
    assert_int_equal(tl_sh(out, sizeof(out), "mkdir -p %s/out/dev", f->dir), 0);
    assert_int_equal(symlink(victim, f->id->dir), 0);
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_ident_issue(f->id, f->is, &f->pol, &eb), DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(eb.msg, "/out/dev/productA: a symlink"));
    assert_null(tl_read_file(tl_path(path, sizeof(path), "%s/tls.key", victim), NULL));
    assert_int_equal(check(f, NULL, 0), DUET_E_VOL_UNSAFE);
}

static void ident_issue__server_identity_matches_exactly(void **state)
{
    struct fx *f = *state;
    static const char *const dns[] = {"resource.example.org", "*.api.example.org"};
    static const char *const ips[] = {"127.0.0.1", "::1"};
    char out[300], msg[512];
    struct ag_ident_params p = {
        .env = "dev",
        .product = "resource",
        .trust_domain = "example.org",
        .output_dir = tl_path(out, sizeof(out), "%s/out", f->dir),
        .cn_template = "{env}.{product}.{env}",
        .subject = &f->subj,
        .key_type = DUET_KEY_RSA2048,
        .validity_ms = 86400 * 1000,
        .server = true,
        .dns = dns,
        .n_dns = 2,
        .ips = ips,
        .n_ips = 2,
    };

    ag_ident_free(f->id);
    f->id = NULL;
    assert_int_equal(ag_ident_new(&p, &f->id, NULL), 0);
    issue_ok(f); /* serverAuth, keyEncipherment for RSA, DNS and IP SANs: all as asked */
    assert_int_equal(check(f, NULL, 0), 0);
    /* One DNS name fewer in the configuration: the set no longer matches. */
    f->id->sans.n_dns = 1;
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VERIFY);
    assert_non_null(strstr(msg, "DNS name that was not requested"));
    f->id->sans.n_dns = 2;
    f->id->sans.n_ips = 1;
    assert_int_equal(check(f, msg, sizeof(msg)), DUET_E_VERIFY);
    assert_non_null(strstr(msg, "IP address that was not requested"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cn_expand__templates),
        cmocka_unit_test_setup_teardown(ident_issue__publishes_a_checked_set, setup, teardown),
        cmocka_unit_test_setup_teardown(ident_check_disk__keeps_renewal_of_own_cert, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ident_check_disk__refuses_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(ident_check_disk__refuses_foreign_key, setup, teardown),
        cmocka_unit_test_setup_teardown(ident_check_disk__refuses_old_ca_and_wrong_subject, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(local_sign__wrong_passphrase_costs_no_key, setup, teardown),
        cmocka_unit_test_setup_teardown(local_sign__intermediate_follows_leaf, setup, teardown),
        cmocka_unit_test_setup_teardown(ident_issue__refuses_what_was_not_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(ident_check_disk__reissues_on_changed_configuration, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ident_check_disk__counts_and_refuses_mode_drift, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ident_issue__refuses_symlinked_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(ident_issue__server_identity_matches_exactly, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
