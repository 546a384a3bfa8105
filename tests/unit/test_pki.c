/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pki: real keys, real signatures, and the openssl CLI as the independent
 * judge (verify, req -verify, pkey -passin, x509 -text). A group fixture
 * makes one temp folder with a CA from the manual OpenSSL workflow (COMPAT.md
 * 1, with RSA-2048 instead of 4096 to keep the run short) and one duet CA.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>

#include <cmocka.h>

#include "duet/alloc.h"
#include "duet/err.h"
#include "duet/pki.h"
#include "duet/pki_bssl.h"
#include "testlib.h"

#define DAY 86400

static char dir[256];
static struct duet_key *ca_key; /* duet CA, EC P-256 */
static struct duet_cert *ca_cert;
static struct duet_chain *ca_bundle;

static char out[16384];

static const char *p(const char *name)
{
    static char buf[8][512];
    static int i;

    i = (i + 1) % 8;
    return tl_path(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
}

static void write_text(const char *name, const char *text, size_t len)
{
    tl_write_file(p(name), text, len, 0600);
}

static void save_cert(const struct duet_cert *c, const char *name)
{
    char *pem;
    size_t len;

    assert_int_equal(duet_cert_to_pem(c, &pem, &len), 0);
    write_text(name, pem, len);
    duet_free(pem);
}

static void save_key(const struct duet_key *k, const char *pass, const char *name)
{
    char *pem;
    size_t len;

    assert_int_equal(duet_key_to_pem(k, pass, &pem, &len, NULL), 0);
    write_text(name, pem, len);
    duet_secret_free(pem, len);
}

static int group_setup(void **state)
{
    struct duet_subject s = {0};
    struct duet_errbuf eb = {{0}};

    tl_tmpdir(dir, sizeof(dir));
    /* The manual workflow, verbatim but for the key size. */
    if (tl_sh(out, sizeof(out),
              "cd %s && openssl genrsa -des3 -passout pass:devpass -out mca.key 2048 && "
              "openssl req -x509 -new -key mca.key -passin pass:devpass -sha256 -days 3650 "
              "-subj '/C=LK/ST=WP/O=Example, Inc./CN=Dev Root CA' -out mca.crt && "
              "openssl genrsa -out mcl.key 2048 && "
              "openssl req -new -sha256 -key mcl.key -subj '/C=LK/O=Example, "
              "Inc./CN=dev.productA.dev' "
              "-out mcl.csr && "
              "openssl x509 -req -in mcl.csr -CA mca.crt -CAkey mca.key -passin pass:devpass "
              "-CAcreateserial -out mcl.crt -days 365 -sha256",
              dir) != 0) {
        fprintf(stderr, "openssl workflow failed: %s\n", out);
        return -1;
    }
    assert_int_equal(duet_subject_parse("/C=LK/O=Example, Inc./CN=Duet Test Root", &s, &eb), 0);
    assert_int_equal(duet_key_generate(DUET_KEY_EC_P256, &ca_key, &eb), 0);
    assert_int_equal(duet_ca_self_sign(ca_key, &s, time(NULL), 3650L * DAY, &ca_cert, &eb), 0);
    duet_subject_clear(&s);
    assert_int_equal(duet_chain_new(&ca_bundle), 0);
    assert_int_equal(duet_chain_push(ca_bundle, ca_cert), 0);
    save_cert(ca_cert, "ca.crt");
    return 0;
}

static int group_teardown(void **state)
{
    duet_chain_free(ca_bundle);
    duet_cert_free(ca_cert);
    duet_key_free(ca_key);
    tl_rmrf(dir);
    return 0;
}

/* Issue a leaf from the duet CA; returns the cert, and the key through *key if asked. */
static struct duet_cert *issue(enum duet_key_type t, enum duet_profile prof, int64_t now,
                               int64_t validity, struct duet_key **key_out)
{
    const char *uris[] = {"spiffe://duet.local/dev/productA"};
    const char *dns[] = {"localhost"};
    const char *ips[] = {"127.0.0.1", "::1"};
    struct duet_sans sans = {
        uris, 1, dns, prof == DUET_PROFILE_SERVER, ips, prof == DUET_PROFILE_SERVER ? 2 : 0};
    struct duet_subject s = {0};
    struct duet_key *k;
    struct duet_csr *csr;
    struct duet_cert *c = NULL;
    struct duet_errbuf eb = {{0}};

    assert_int_equal(duet_subject_parse("/C=LK/ST=WP/O=Example, Inc./CN=dev.productA.dev", &s, &eb),
                     0);
    assert_int_equal(duet_key_generate(t, &k, &eb), 0);
    assert_int_equal(duet_csr_build(k, &s, &sans, &csr, &eb), 0);
    struct duet_sign_req r = {csr, ca_cert, ca_key, prof, now, validity, NULL, NULL};
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_cert_sign(&r, &c, &eb), 0);
    duet_csr_free(csr);
    duet_subject_clear(&s);
    if (key_out)
        *key_out = k;
    else
        duet_key_free(k);
    return c;
}

/* ---- keys ---- */

static void key_type_parse__names_roundtrip_and_unknown_refused(void **state)
{
    const char *names[] = {"rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384"};
    enum duet_key_type t;

    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(duet_key_type_parse(names[i], &t), 0);
        assert_string_equal(duet_key_type_name(t), names[i]);
    }
    assert_int_equal(duet_key_type_parse("rsa1024", &t), DUET_E_KEY_TYPE);
    assert_int_equal(duet_key_type_parse("", &t), DUET_E_KEY_TYPE);
    assert_int_equal(duet_key_type_parse(NULL, &t), DUET_E_KEY_TYPE);
}

static void key_generate__describes_each_type(void **state)
{
    static const struct {
        enum duet_key_type t;
        const char *desc;
    } cases[] = {{DUET_KEY_RSA2048, "RSA 2048"},
                 {DUET_KEY_EC_P256, "EC P-256"},
                 {DUET_KEY_EC_P384, "EC P-384"}};
    char buf[32];

    for (size_t i = 0; i < DUET_ARRAY_SIZE(cases); i++) {
        struct duet_key *k;

        assert_int_equal(duet_key_generate(cases[i].t, &k, NULL), 0);
        assert_string_equal(duet_key_describe(k, buf, sizeof(buf)), cases[i].desc);
        duet_key_free(k);
    }
    assert_int_equal(duet_key_generate((enum duet_key_type)99, &(struct duet_key *){0}, NULL),
                     DUET_E_KEY_TYPE);
}

static void key_to_pem__plain_roundtrip_and_openssl_reads(void **state)
{
    struct duet_key *k, *back;
    char *pem;
    size_t len;

    assert_int_equal(duet_key_generate(DUET_KEY_EC_P256, &k, NULL), 0);
    assert_int_equal(duet_key_to_pem(k, NULL, &pem, &len, NULL), 0);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(duet_key_from_pem(pem, len, NULL, "mem", &back, NULL), 0);
    write_text("plain.key", pem, len);
    duet_secret_free(pem, len);
    assert_int_equal(tl_sh(out, sizeof(out), "openssl pkey -in %s -noout", p("plain.key")), 0);
    duet_key_free(back);
    duet_key_free(k);
}

static void key_to_pem__encrypted_opens_with_openssl_pkey(void **state)
{
    struct duet_key *k, *back;
    struct duet_errbuf eb = {{0}};
    char pass[36];

    assert_int_equal(duet_passphrase_generate(pass, 35), 0);
    tl_write_file(p("enc.pass"), pass, 35, 0600);
    assert_int_equal(duet_key_generate(DUET_KEY_EC_P256, &k, NULL), 0);
    save_key(k, pass, "enc.key");
    assert_int_equal(tl_sh(out, sizeof(out), "openssl pkey -in %s -passin file:%s -noout",
                           p("enc.key"), p("enc.pass")),
                     0);
    /* The PRF is hmacWithSHA256, not BoringSSL's SHA-1 default. */
    assert_int_equal(tl_sh(out, sizeof(out), "openssl asn1parse -in %s", p("enc.key")), 0);
    assert_non_null(strstr(out, "hmacWithSHA256"));
    assert_non_null(strstr(out, "aes-256-cbc"));
    assert_int_equal(duet_key_load(p("enc.key"), pass, &back, &eb), 0);
    assert_int_equal(duet_key_matches_cert(back, ca_cert), DUET_E_KEY_MISMATCH);
    duet_key_free(back);
    assert_int_equal(duet_key_load(p("enc.key"), "wrong", &back, &eb), DUET_E_PASSPHRASE);
    assert_non_null(strstr(eb.msg, "enc.key"));
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_key_load(p("enc.key"), NULL, &back, &eb), DUET_E_PASSPHRASE);
    assert_non_null(strstr(eb.msg, "no passphrase"));
    duet_key_free(k);
}

static void expect_openssl_key(const char *cmd_args, const char *name)
{
    struct duet_key *k;
    struct duet_errbuf eb = {{0}};

    if (tl_sh(out, sizeof(out), "cd %s && openssl %s", dir, cmd_args) != 0)
        fail_msg("openssl %s: %s", cmd_args, out);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_key_load(p(name), "devpass", &k, &eb), 0);
    duet_key_free(k);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_key_load(p(name), "devpasS", &k, &eb), DUET_E_PASSPHRASE);
    assert_non_null(strstr(eb.msg, name));
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_key_load(p(name), NULL, &k, &eb), DUET_E_PASSPHRASE);
    assert_non_null(strstr(eb.msg, name));
}

static void key_load__openssl_encrypted_formats(void **state)
{
    /* genrsa -des3 writes PBES2/DES-EDE3/hmacWithSHA256 PKCS#8 (COMPAT.md 1). */
    expect_openssl_key("genrsa -des3 -passout pass:devpass -out des3.key 2048", "des3.key");
    assert_int_equal(tl_sh(out, sizeof(out), "head -1 %s", p("des3.key")), 0);
    assert_non_null(strstr(out, "ENCRYPTED PRIVATE KEY"));
    expect_openssl_key("genrsa -aes256 -passout pass:devpass -out aes.key 2048", "aes.key");
    expect_openssl_key(
        "ecparam -name prime256v1 -genkey | openssl ec -aes256 -passout pass:devpass "
        "-out ec-trad.key",
        "ec-trad.key");
    expect_openssl_key("rsa -in mca.key -passin pass:devpass -traditional -des3 "
                       "-passout pass:devpass -out trad.key",
                       "trad.key");
    assert_int_equal(tl_sh(out, sizeof(out), "grep -c DEK-Info %s", p("trad.key")), 0);
    /* The manual CA key itself. */
    {
        struct duet_key *k;
        struct duet_chain *ch;

        assert_int_equal(duet_key_load(p("mca.key"), "devpass", &k, NULL), 0);
        assert_int_equal(duet_chain_load(p("mca.crt"), &ch, NULL), 0);
        assert_int_equal(duet_key_matches_cert(k, duet_chain_at(ch, 0)), 0);
        duet_chain_free(ch);
        duet_key_free(k);
    }
}

static void key_load__unsupported_scheme_is_pem_error(void **state)
{
    struct duet_key *k;
    struct duet_errbuf eb = {{0}};

    assert_int_equal(tl_sh(out, sizeof(out),
                           "openssl pkcs8 -topk8 -in %s -v2 aes-256-cbc -v2prf hmacWithSHA512 "
                           "-passout pass:devpass -out %s",
                           p("plain.key"), p("sha512.key")),
                     0);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_key_load(p("sha512.key"), "devpass", &k, &eb), DUET_E_PEM);
    assert_non_null(strstr(eb.msg, "not supported"));
}

static void key_from_pem__refuses_garbage_truncated_empty(void **state)
{
    static const char garbage[] = "-----BEGIN PRIVATE KEY-----\nnot base64 at all!!\n"
                                  "-----END PRIVATE KEY-----\n";
    static const char junk_der[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    static const char enc_junk[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n"
                                   "-----END ENCRYPTED PRIVATE KEY-----\n";
    struct duet_key *k = NULL;
    struct duet_errbuf eb = {{0}};
    size_t len;
    char *pem = tl_read_file(p("plain.key"), &len);

    assert_non_null(pem);
    assert_int_equal(duet_key_from_pem(garbage, sizeof(garbage) - 1, NULL, "g", &k, NULL),
                     DUET_E_PEM);
    assert_int_equal(duet_key_from_pem(junk_der, sizeof(junk_der) - 1, NULL, "j", &k, NULL),
                     DUET_E_PEM);
    /* A damaged encrypted key is a PEM problem, not a passphrase problem. */
    assert_int_equal(duet_key_from_pem(enc_junk, sizeof(enc_junk) - 1, "x", "e", &k, NULL),
                     DUET_E_PEM);
    assert_int_equal(duet_key_from_pem(pem, len / 2, NULL, "half", &k, NULL), DUET_E_PEM);
    assert_int_equal(duet_key_from_pem("", 0, NULL, "empty", &k, &eb), DUET_E_PEM);
    assert_non_null(strstr(eb.msg, "empty"));
    /* A certificate is not a key. */
    duet_errbuf_clear(&eb);
    free(pem);
    pem = tl_read_file(p("ca.crt"), &len);
    assert_int_equal(duet_key_from_pem(pem, len, NULL, "ca.crt", &k, &eb), DUET_E_PEM);
    assert_non_null(strstr(eb.msg, "ca.crt"));
    assert_null(k);
    free(pem);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_key_load(p("missing.key"), NULL, &k, &eb), -ENOENT);
    assert_non_null(strstr(eb.msg, "missing.key"));
}

static void passphrase_generate__classes_present_forbidden_absent(void **state)
{
    char pass[36], prev[36] = "";

    for (int round = 0; round < 300; round++) {
        int u = 0, l = 0, d = 0, s = 0;

        assert_int_equal(duet_passphrase_generate(pass, 35), 0);
        assert_int_equal(strlen(pass), 35);
        assert_null(strpbrk(pass, "\"'\\`<> "));
        for (int i = 0; i < 35; i++) {
            unsigned char c = (unsigned char)pass[i];

            assert_true(c > 0x20 && c < 0x7f);
            u += c >= 'A' && c <= 'Z';
            l += c >= 'a' && c <= 'z';
            d += c >= '0' && c <= '9';
            s += !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
        }
        assert_true(u && l && d && s);
        assert_string_not_equal(pass, prev);
        memcpy(prev, pass, sizeof(prev));
    }
    assert_int_equal(duet_passphrase_generate(pass, 3), DUET_EINVAL);
}

/* ---- names ---- */

static void subject_parse__fields_escapes_and_copy(void **state)
{
    struct duet_subject s, c = {0};

    assert_int_equal(duet_subject_parse("/C=LK/ST=WP/L=Colombo/O=Example, Inc./OU=R\\/D/"
                                        "CN=dev.productA.dev/emailAddress=ca@example.com",
                                        &s, NULL),
                     0);
    assert_string_equal(s.c, "LK");
    assert_string_equal(s.st, "WP");
    assert_string_equal(s.l, "Colombo");
    assert_string_equal(s.o, "Example, Inc.");
    assert_string_equal(s.ou, "R/D");
    assert_string_equal(s.cn, "dev.productA.dev");
    assert_string_equal(s.email, "ca@example.com");
    assert_int_equal(duet_subject_copy(&c, &s), 0);
    assert_string_equal(c.ou, "R/D");
    duet_subject_clear(&s);
    assert_null(s.cn);
    duet_subject_clear(&c);
}

static void subject_parse__refuses_bad_input(void **state)
{
    static const char *bad[] = {"CN=x", "/CN=",        "/CN",   "/XX=y",  "/CN=a/CN=b",
                                "",     "/C=LK//CN=x", "/cn=x", "/CN=x/O"};
    struct duet_subject s;
    struct duet_errbuf eb = {{0}};

    for (size_t i = 0; i < DUET_ARRAY_SIZE(bad); i++) {
        duet_errbuf_clear(&eb);
        assert_int_equal(duet_subject_parse(bad[i], &s, &eb), DUET_E_SUBJECT);
        assert_true(strlen(eb.msg) > 0);
        assert_null(s.cn);
    }
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_subject_parse("/XX=y", &s, &eb), DUET_E_SUBJECT);
    assert_non_null(strstr(eb.msg, "XX"));
}

static void csr_build__country_must_be_two_letters(void **state)
{
    struct duet_subject s = {0};
    struct duet_csr *csr = NULL;
    struct duet_errbuf eb = {{0}};

    assert_int_equal(duet_subject_parse("/C=Lanka/CN=x", &s, NULL), 0);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_csr_build(ca_key, &s, NULL, &csr, &eb), DUET_E_SUBJECT);
    assert_non_null(strstr(eb.msg, "C="));
    duet_subject_clear(&s);
}

/* ---- CSRs ---- */

static void csr_build__openssl_req_verifies_and_encoding_matches(void **state)
{
    const char *uris[] = {"spiffe://duet.local/dev/productA"};
    struct duet_sans sans = {uris, 1, NULL, 0, NULL, 0};
    struct duet_subject s = {0};
    struct duet_csr *csr, *back;
    struct duet_cert_info info;
    char *pem;
    size_t len;

    assert_int_equal(duet_subject_parse("/C=LK/O=Example, Inc./CN=dev.productA.dev/"
                                        "emailAddress=a@b.c",
                                        &s, NULL),
                     0);
    assert_int_equal(duet_csr_build(ca_key, &s, &sans, &csr, NULL), 0);
    assert_int_equal(duet_csr_to_pem(csr, &pem, &len), 0);
    write_text("duet.csr", pem, len);
    assert_int_equal(tl_sh(out, sizeof(out), "openssl req -in %s -verify -noout", p("duet.csr")),
                     0);
    assert_int_equal(tl_sh(out, sizeof(out), "openssl asn1parse -in %s", p("duet.csr")), 0);
    assert_non_null(strstr(out, "PRINTABLESTRING   :LK"));
    assert_non_null(strstr(out, "UTF8STRING        :Example, Inc."));
    assert_non_null(strstr(out, "IA5STRING         :a@b.c"));
    assert_int_equal(duet_csr_from_pem(pem, len, "duet.csr", &back, NULL), 0);
    assert_int_equal(duet_csr_info(back, &info), 0);
    assert_string_equal(info.cn, "dev.productA.dev");
    assert_int_equal(info.n_uris, 1);
    assert_string_equal(info.uris[0], uris[0]);
    assert_int_equal(duet_key_matches_csr(ca_key, back), 0);
    duet_csr_free(back);
    duet_free(pem);
    duet_csr_free(csr);
    duet_subject_clear(&s);
}

static void csr_from_pem__refuses_tampered_and_garbage(void **state)
{
    struct duet_csr *csr = NULL;
    struct duet_errbuf eb = {{0}};

    /* Flip one byte of the signature (the DER's last byte) and re-encode. */
    assert_int_equal(tl_sh(out, sizeof(out),
                           "cd %s && openssl req -in mcl.csr -outform DER -out t.der && "
                           "python3 -c \"import sys;d=bytearray(open('t.der','rb').read());"
                           "d[-1]^=1;open('t.der','wb').write(d)\" && "
                           "openssl req -inform DER -in t.der -out tampered.csr",
                           dir),
                     0);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_csr_load(p("tampered.csr"), &csr, &eb), DUET_E_CSR);
    assert_non_null(strstr(eb.msg, "tampered.csr"));
    assert_int_equal(duet_csr_load(p("mcl.csr"), &csr, NULL), 0); /* the original is fine */
    duet_csr_free(csr);
    assert_int_equal(duet_csr_from_pem("garbage", 7, "g", &csr, NULL), DUET_E_PEM);
    assert_int_equal(duet_csr_from_pem("", 0, "g", &csr, NULL), DUET_E_PEM);
    assert_int_equal(duet_csr_load(p("ca.crt"), &csr, NULL), DUET_E_PEM);
}

/* ---- issuing ---- */

/* openssl verify accepts crt for `good` and refuses it for `bad`; `out` then holds x509 -text. */
static void openssl_purposes(const char *crt, const char *good, const char *bad)
{
    assert_int_equal(tl_sh(out, sizeof(out), "openssl verify -CAfile %s -purpose %s %s",
                           p("ca.crt"), good, p(crt)),
                     0);
    assert_int_equal(tl_sh(out, sizeof(out), "openssl verify -CAfile %s -purpose %s %s",
                           p("ca.crt"), bad, p(crt)),
                     2);
    assert_int_equal(tl_sh(out, sizeof(out), "openssl x509 -in %s -noout -text", p(crt)), 0);
}

static void cert_sign__client_profile_verifies_with_openssl(void **state)
{
    int64_t now = time(NULL);
    struct duet_key *k;
    struct duet_cert *c = issue(DUET_KEY_RSA2048, DUET_PROFILE_CLIENT, now, 365L * DAY, &k);
    struct duet_cert_info info;

    save_cert(c, "client.crt");
    openssl_purposes("client.crt", "sslclient", "sslserver");
    assert_non_null(strstr(out, "Version: 3"));
    assert_non_null(strstr(out, "ecdsa-with-SHA256"));
    assert_non_null(strstr(out, "X509v3 Basic Constraints: critical\n                CA:FALSE"));
    assert_non_null(strstr(
        out, "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment"));
    assert_non_null(strstr(out, "TLS Web Client Authentication"));
    assert_null(strstr(out, "TLS Web Server Authentication"));
    assert_non_null(strstr(out, "X509v3 Subject Key Identifier"));
    assert_non_null(strstr(out, "X509v3 Authority Key Identifier"));
    assert_non_null(strstr(out, "URI:spiffe://duet.local/dev/productA"));
    assert_int_equal(duet_cert_info(c, &info), 0);
    assert_int_equal(info.not_after, now + 365L * DAY);
    assert_int_equal(info.not_before, now - 300);
    assert_int_equal(info.version, 3);
    assert_true(info.client_auth);
    assert_false(info.server_auth);
    assert_false(info.is_ca);
    assert_string_equal(info.key, "RSA 2048");
    assert_string_equal(info.cn, "dev.productA.dev");
    assert_non_null(strstr(info.subject, "CN=dev.productA.dev"));
    assert_non_null(strstr(info.subject, "O=Example\\, Inc."));
    assert_non_null(strstr(info.issuer, "CN=Duet Test Root"));
    assert_true(strlen(info.serial) >= 28 && strlen(info.serial) <= 32);
    assert_int_equal(strlen(info.sha256), 64);
    assert_int_equal(duet_key_matches_cert(k, c), 0);
    assert_int_equal(duet_chain_verify(NULL, ca_bundle, now, DUET_PURPOSE_CLIENT, NULL),
                     DUET_E_VERIFY);
    duet_key_free(k);
    duet_cert_free(c);
}

static void cert_sign__server_profile_has_ip_dns_and_refuses_client_purpose(void **state)
{
    int64_t now = time(NULL);
    struct duet_cert *c = issue(DUET_KEY_EC_P256, DUET_PROFILE_SERVER, now, 600, NULL);
    struct duet_cert_info info;

    save_cert(c, "server.crt");
    openssl_purposes("server.crt", "sslserver", "sslclient");
    assert_non_null(strstr(out, "X509v3 Key Usage: critical\n                Digital Signature\n"));
    assert_non_null(strstr(out, "DNS:localhost"));
    assert_non_null(strstr(out, "IP Address:127.0.0.1"));
    assert_int_equal(duet_cert_info(c, &info), 0);
    assert_int_equal(info.not_before, now - 60); /* a tenth of 600 s is less than 5 min */
    assert_true(info.server_auth);
    assert_int_equal(info.n_ips, 2);
    assert_string_equal(info.ips[0], "127.0.0.1");
    assert_string_equal(info.ips[1], "0:0:0:0:0:0:0:1");
    assert_string_equal(info.dns[0], "localhost");
    duet_cert_free(c);
}

static void ca_self_sign__root_profile(void **state)
{
    struct duet_cert_info info;

    assert_int_equal(tl_sh(out, sizeof(out), "openssl x509 -in %s -noout -text", p("ca.crt")), 0);
    assert_non_null(strstr(out, "X509v3 Basic Constraints: critical\n                CA:TRUE"));
    assert_non_null(
        strstr(out, "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"));
    assert_non_null(strstr(out, "X509v3 Subject Key Identifier"));
    assert_int_equal(tl_sh(out, sizeof(out), "openssl verify -x509_strict -CAfile %s %s",
                           p("ca.crt"), p("ca.crt")),
                     0);
    assert_int_equal(duet_cert_info(ca_cert, &info), 0);
    assert_true(info.is_ca);
    assert_int_equal(info.not_after - info.not_before, 3650L * DAY + 300);
}

static void cert_sign__refuses_non_ca_mismatch_and_overlong(void **state)
{
    int64_t now = time(NULL);
    struct duet_key *leaf_key, *other;
    struct duet_cert *leaf = issue(DUET_KEY_EC_P256, DUET_PROFILE_CLIENT, now, DAY, &leaf_key);
    struct duet_cert *c = NULL;
    struct duet_csr *csr;
    struct duet_subject s = {0};
    struct duet_errbuf eb = {{0}};

    assert_int_equal(duet_subject_parse("/CN=x", &s, NULL), 0);
    assert_int_equal(duet_key_generate(DUET_KEY_EC_P256, &other, NULL), 0);
    assert_int_equal(duet_csr_build(other, &s, NULL, &csr, NULL), 0);
    struct duet_sign_req r = {csr, leaf, leaf_key, DUET_PROFILE_CLIENT, now, DAY, NULL, NULL};
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_cert_sign(&r, &c, &eb), DUET_E_NOT_CA);
    assert_non_null(strstr(eb.msg, "not a CA"));
    r.ca_cert = ca_cert;
    r.ca_key = other;
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_cert_sign(&r, &c, &eb), DUET_E_KEY_MISMATCH);
    r.ca_key = ca_key;
    r.validity = 3651L * DAY;
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_cert_sign(&r, &c, &eb), DUET_E_EXPIRED);
    assert_non_null(strstr(eb.msg, "expires"));
    r.validity = 0;
    assert_int_equal(duet_cert_sign(&r, &c, NULL), DUET_EINVAL);
    assert_null(c);
    /* Subject override: the CA decides the name. */
    struct duet_subject forced = {0};
    struct duet_cert_info info;
    assert_int_equal(duet_subject_parse("/O=Forced/CN=forced", &forced, NULL), 0);
    r.validity = DAY;
    r.subject = &forced;
    assert_int_equal(duet_cert_sign(&r, &c, NULL), 0);
    assert_int_equal(duet_cert_info(c, &info), 0);
    assert_string_equal(info.cn, "forced");
    assert_int_equal(info.n_uris, 0);
    duet_cert_free(c);
    duet_subject_clear(&forced);
    duet_subject_clear(&s);
    duet_csr_free(csr);
    duet_key_free(other);
    duet_key_free(leaf_key);
    duet_cert_free(leaf);
}

/* ---- verification ---- */

static void chain_verify__manual_workflow_v1_cert_is_a_client(void **state)
{
    struct duet_chain *leaf, *bundle;
    struct duet_cert_info info;
    struct duet_key *k;
    struct duet_errbuf eb = {{0}};

    assert_int_equal(duet_chain_load(p("mcl.crt"), &leaf, NULL), 0);
    assert_int_equal(duet_chain_load(p("mca.crt"), &bundle, NULL), 0);
    assert_int_equal(duet_chain_verify(leaf, bundle, time(NULL), DUET_PURPOSE_CLIENT, NULL), 0);
    assert_int_equal(duet_cert_info(duet_chain_at(leaf, 0), &info), 0);
    assert_int_equal(info.version, 1);
    assert_true(info.client_auth && info.server_auth); /* no EKU: any purpose */
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_chain_verify(leaf, ca_bundle, time(NULL), DUET_PURPOSE_CLIENT, &eb),
                     DUET_E_VERIFY);
    assert_non_null(strstr(eb.msg, "issuer"));
    assert_int_equal(duet_key_load(p("mcl.key"), NULL, &k, NULL), 0);
    assert_int_equal(duet_key_matches_cert(k, duet_chain_at(leaf, 0)), 0);
    assert_int_equal(duet_key_matches_cert(k, duet_chain_at(bundle, 0)), DUET_E_KEY_MISMATCH);
    /* duet signs with the manual CA and its -des3 key. */
    {
        struct duet_key *mca_key;
        struct duet_csr *csr;
        struct duet_cert *c;
        struct duet_chain *ch;

        assert_int_equal(duet_key_load(p("mca.key"), "devpass", &mca_key, NULL), 0);
        assert_int_equal(duet_csr_load(p("mcl.csr"), &csr, NULL), 0);
        struct duet_sign_req r = {csr,        duet_chain_at(bundle, 0),
                                  mca_key,    DUET_PROFILE_CLIENT,
                                  time(NULL), 365L * DAY,
                                  NULL,       NULL};
        assert_int_equal(duet_cert_sign(&r, &c, NULL), 0);
        save_cert(c, "mcl-duet.crt");
        assert_int_equal(tl_sh(out, sizeof(out), "openssl verify -CAfile %s -purpose sslclient %s",
                               p("mca.crt"), p("mcl-duet.crt")),
                         0);
        assert_int_equal(
            tl_sh(out, sizeof(out), "openssl x509 -in %s -noout -text", p("mcl-duet.crt")), 0);
        assert_non_null(strstr(out, "sha256WithRSAEncryption"));
        assert_int_equal(duet_chain_new(&ch), 0);
        assert_int_equal(duet_chain_push(ch, c), 0);
        assert_int_equal(duet_chain_verify(ch, bundle, time(NULL), DUET_PURPOSE_CLIENT, NULL), 0);
        assert_int_equal(duet_chain_verify(ch, bundle, time(NULL), DUET_PURPOSE_SERVER, NULL),
                         DUET_E_VERIFY);
        duet_chain_free(ch);
        duet_cert_free(c);
        duet_csr_free(csr);
        duet_key_free(mca_key);
    }
    duet_key_free(k);
    duet_chain_free(bundle);
    duet_chain_free(leaf);
}

static void chain_verify__time_only_failure_is_expired(void **state)
{
    int64_t now = time(NULL);
    struct duet_cert *c = issue(DUET_KEY_EC_P256, DUET_PROFILE_CLIENT, now, DAY, NULL);
    struct duet_chain *ch;
    struct duet_errbuf eb = {{0}};

    assert_int_equal(duet_chain_new(&ch), 0);
    assert_int_equal(duet_chain_push(ch, c), 0);
    assert_int_equal(duet_chain_len(ch), 1);
    assert_int_equal(duet_chain_verify(ch, ca_bundle, now, DUET_PURPOSE_CLIENT, NULL), 0);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_chain_verify(ch, ca_bundle, now + DAY + 1, DUET_PURPOSE_CLIENT, &eb),
                     DUET_E_EXPIRED);
    assert_non_null(strstr(eb.msg, "expired"));
    assert_int_equal(duet_chain_verify(ch, ca_bundle, now - 3600, DUET_PURPOSE_ANY, NULL),
                     DUET_E_EXPIRED);
    /* Expired AND wrong purpose: the purpose wins, renewal would not fix it. */
    assert_int_equal(duet_chain_verify(ch, ca_bundle, now + 2 * DAY, DUET_PURPOSE_SERVER, NULL),
                     DUET_E_VERIFY);
    duet_chain_free(ch);
    duet_cert_free(c);
}

static void chain_from_pem__order_roundtrip_and_bad_blocks(void **state)
{
    struct duet_chain *ch;
    struct duet_errbuf eb = {{0}};
    char *pem, *two, *back;
    size_t len, blen;

    assert_int_equal(duet_cert_to_pem(ca_cert, &pem, &len), 0);
    two = tl_read_file(p("client.crt"), NULL);
    assert_non_null(two);
    {
        char both[16384];
        int n = snprintf(both, sizeof(both), "junk before\n%s%s", two, pem);

        assert_int_equal(duet_chain_from_pem(both, (size_t)n, "both", &ch, NULL), 0);
        assert_int_equal(duet_chain_len(ch), 2);
        assert_true(duet_chain_at(ch, 1) != NULL && duet_chain_at(ch, 2) == NULL);
        assert_int_equal(duet_chain_to_pem(ch, &back, &blen), 0);
        assert_int_equal(strncmp(back, two, strlen(two)), 0);
        duet_free(back);
        duet_chain_free(ch);
        /* A certificate block cut in the middle is refused, not skipped. */
        duet_errbuf_clear(&eb);
        assert_true(duet_chain_from_pem(both, (size_t)n - 100, "cut", &ch, &eb) < 0);
        assert_non_null(strstr(eb.msg, "cut"));
    }
    static const char bad_b64[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_chain_from_pem(bad_b64, sizeof(bad_b64) - 1, "bad", &ch, &eb),
                     DUET_E_PEM);
    assert_non_null(strstr(eb.msg, "malformed"));
    assert_int_equal(duet_chain_from_pem("", 0, "e", &ch, NULL), DUET_E_PEM);
    assert_int_equal(duet_chain_from_pem("hello", 5, "h", &ch, NULL), DUET_E_PEM);
    assert_int_equal(duet_chain_load(p("plain.key"), &ch, NULL), DUET_E_PEM);
    {
        /* A key beside the certificate: refused by the strict reader (it
         * would be published world-readable), skipped by inspect's. */
        char *key = tl_read_file(p("plain.key"), NULL), mix[16384];
        int n;

        assert_non_null(key);
        n = snprintf(mix, sizeof(mix), "%s%s", two, key);
        duet_errbuf_clear(&eb);
        assert_int_equal(duet_chain_from_pem(mix, (size_t)n, "tls.crt", &ch, &eb), DUET_E_PEM);
        assert_non_null(strstr(eb.msg, "tls.crt: PEM block 2 is a private key"));
        assert_int_equal(duet_chain_from_mixed_pem(mix, (size_t)n, "mix", &ch, NULL), 0);
        assert_int_equal(duet_chain_len(ch), 1);
        duet_chain_free(ch);
        free(key);
    }
    assert_int_equal(duet_chain_load(dir, &ch, NULL), DUET_EINVAL);
    free(two);
    duet_free(pem);
}

/* Either ASN.1 time type, either century of UTCTime, and what cannot be read. */
static void asn1_time_to_unix__both_types_and_unreadable(void **state)
{
    static const struct {
        const char *s;
        int64_t want;
    } cases[] = {
        {"700101000000Z", 0},
        {"491231235959Z", 2524607999},   /* UTCTime 49: 2049 */
        {"500101000000Z", -631152000},   /* UTCTime 50: 1950 */
        {"20500101000000Z", 2524608000}, /* GeneralizedTime past UTCTime's range */
        {"20261130123456Z", 1796042096},
    };
    static unsigned char junk[] = "not a time";
    ASN1_TIME bad = {.length = (int)sizeof(junk) - 1, .type = V_ASN1_UTCTIME, .data = junk};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ASN1_TIME *t = ASN1_TIME_new();

        assert_non_null(t);
        assert_int_equal(ASN1_TIME_set_string(t, cases[i].s), 1);
        assert_true(duet_asn1_time_to_unix(t) == cases[i].want);
        ASN1_TIME_free(t);
    }
    assert_true(duet_asn1_time_to_unix(&bad) == 0);
    assert_true(duet_asn1_time_to_unix(NULL) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_type_parse__names_roundtrip_and_unknown_refused),
        cmocka_unit_test(key_generate__describes_each_type),
        cmocka_unit_test(key_to_pem__plain_roundtrip_and_openssl_reads),
        cmocka_unit_test(key_to_pem__encrypted_opens_with_openssl_pkey),
        cmocka_unit_test(key_load__openssl_encrypted_formats),
        cmocka_unit_test(key_load__unsupported_scheme_is_pem_error),
        cmocka_unit_test(key_from_pem__refuses_garbage_truncated_empty),
        cmocka_unit_test(passphrase_generate__classes_present_forbidden_absent),
        cmocka_unit_test(subject_parse__fields_escapes_and_copy),
        cmocka_unit_test(subject_parse__refuses_bad_input),
        cmocka_unit_test(csr_build__country_must_be_two_letters),
        cmocka_unit_test(csr_build__openssl_req_verifies_and_encoding_matches),
        cmocka_unit_test(csr_from_pem__refuses_tampered_and_garbage),
        cmocka_unit_test(cert_sign__client_profile_verifies_with_openssl),
        cmocka_unit_test(cert_sign__server_profile_has_ip_dns_and_refuses_client_purpose),
        cmocka_unit_test(ca_self_sign__root_profile),
        cmocka_unit_test(cert_sign__refuses_non_ca_mismatch_and_overlong),
        cmocka_unit_test(chain_verify__manual_workflow_v1_cert_is_a_client),
        cmocka_unit_test(chain_verify__time_only_failure_is_expired),
        cmocka_unit_test(chain_from_pem__order_roundtrip_and_bad_blocks),
        cmocka_unit_test(asn1_time_to_unix__both_types_and_unreadable),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
