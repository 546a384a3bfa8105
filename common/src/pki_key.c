/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private keys: generation, PEM reading (plain and encrypted, every format the
 * OpenSSL CLI workflow writes, COMPAT.md 1-2) and PEM writing (PKCS#8, plain
 * or PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC). Key bytes outside BoringSSL
 * objects are cleansed before they are freed. Passphrases are only ever
 * taken from the caller: nothing here prompts on a terminal.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/cipher.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "duet/alloc.h"
#include "pki_int.h"

static const struct {
    const char *name;
    enum duet_key_type type;
} key_types[] = {
    {"rsa2048", DUET_KEY_RSA2048}, {"rsa3072", DUET_KEY_RSA3072}, {"rsa4096", DUET_KEY_RSA4096},
    {"ec-p256", DUET_KEY_EC_P256}, {"ec-p384", DUET_KEY_EC_P384},
};

int duet_key_type_parse(const char *s, enum duet_key_type *out)
{
    for (size_t i = 0; s && i < DUET_ARRAY_SIZE(key_types); i++) {
        if (strcmp(s, key_types[i].name) == 0) {
            *out = key_types[i].type;
            return 0;
        }
    }
    return DUET_E_KEY_TYPE;
}

const char *duet_key_type_name(enum duet_key_type t)
{
    for (size_t i = 0; i < DUET_ARRAY_SIZE(key_types); i++) {
        if (key_types[i].type == t)
            return key_types[i].name;
    }
    return "unknown";
}

static int wrap_evp(EVP_PKEY *pkey, struct duet_key **out)
{
    struct duet_key *k = duet_calloc(1, sizeof(*k));

    if (!k) {
        EVP_PKEY_free(pkey);
        return DUET_ENOMEM;
    }
    k->pkey = pkey; /* takes over the caller's reference */
    *out = k;
    return 0;
}

int duet_key_from_evp(EVP_PKEY *pkey, struct duet_key **out)
{
    DUET_ENSURE(pkey, DUET_EINVAL);
    EVP_PKEY_up_ref(pkey);
    return wrap_evp(pkey, out);
}

EVP_PKEY *duet_key_evp(const struct duet_key *k)
{
    return k->pkey;
}

static EVP_PKEY *generate_rsa(unsigned bits)
{
    RSA *rsa = RSA_new();
    BIGNUM *e = BN_new();
    EVP_PKEY *pkey = NULL;

    /* RSA_generate_key is declared but not exported by Debian's build (COMPAT.md 2). */
    if (rsa && e && BN_set_word(e, RSA_F4) && RSA_generate_key_ex(rsa, (int)bits, e, NULL)) {
        pkey = EVP_PKEY_new();
        if (pkey && !EVP_PKEY_assign_RSA(pkey, rsa)) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        if (pkey)
            rsa = NULL; /* owned by pkey now */
    }
    RSA_free(rsa);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *generate_ec(int nid)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(nid);
    EVP_PKEY *pkey = NULL;

    if (ec && EC_KEY_generate_key(ec)) {
        pkey = EVP_PKEY_new();
        if (pkey && !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        if (pkey)
            ec = NULL;
    }
    EC_KEY_free(ec);
    return pkey;
}

int duet_key_generate(enum duet_key_type t, struct duet_key **out, struct duet_errbuf *eb)
{
    EVP_PKEY *pkey;

    switch (t) {
    case DUET_KEY_RSA2048:
        pkey = generate_rsa(2048);
        break;
    case DUET_KEY_RSA3072:
        pkey = generate_rsa(3072);
        break;
    case DUET_KEY_RSA4096:
        pkey = generate_rsa(4096);
        break;
    case DUET_KEY_EC_P256:
        pkey = generate_ec(NID_X9_62_prime256v1);
        break;
    case DUET_KEY_EC_P384:
        pkey = generate_ec(NID_secp384r1);
        break;
    default:
        return duet_errf(eb, DUET_E_KEY_TYPE, "unknown key type %d", (int)t);
    }
    if (!pkey) {
        duet_errf(eb, DUET_E_CRYPTO, "generating a %s key failed", duet_key_type_name(t));
        duet_errbuf_add_ssl(eb);
        return DUET_E_CRYPTO;
    }
    return wrap_evp(pkey, out);
}

void duet_key_free(struct duet_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    duet_free(k);
}

int duet_key_ref(const struct duet_key *k, struct duet_key **out)
{
    struct duet_key *r = duet_calloc(1, sizeof(*r));

    if (!r)
        return DUET_ENOMEM;
    EVP_PKEY_up_ref(k->pkey);
    r->pkey = k->pkey;
    *out = r;
    return 0;
}

void duet_secret_free(void *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    duet_free(p);
}

const char *duet_key_describe(const struct duet_key *k, char *buf, size_t size)
{
    return duet__pki_describe_evp(k->pkey, buf, size);
}

const char *duet__pki_describe_evp(const EVP_PKEY *pkey, char *buf, size_t size)
{
    const EC_KEY *ec;
    int nid;

    switch (EVP_PKEY_id(pkey)) {
    case EVP_PKEY_RSA:
        snprintf(buf, size, "RSA %d", EVP_PKEY_bits(pkey));
        break;
    case EVP_PKEY_EC:
        ec = EVP_PKEY_get0_EC_KEY(pkey);
        nid = ec ? EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) : NID_undef;
        snprintf(buf, size, "EC %s",
                 nid == NID_X9_62_prime256v1 ? "P-256"
                 : nid == NID_secp384r1      ? "P-384"
                 : nid == NID_secp521r1      ? "P-521"
                                             : "unknown-curve");
        break;
    case EVP_PKEY_ED25519:
        snprintf(buf, size, "Ed25519");
        break;
    default:
        snprintf(buf, size, "unknown");
        break;
    }
    return buf;
}

int duet_key_matches_cert(const struct duet_key *k, const struct duet_cert *c)
{
    EVP_PKEY *pub = X509_get_pubkey(c->x);
    int same = pub && EVP_PKEY_cmp(pub, k->pkey) == 1;

    EVP_PKEY_free(pub);
    ERR_clear_error();
    return same ? 0 : DUET_E_KEY_MISMATCH;
}

int duet_key_matches_csr(const struct duet_key *k, const struct duet_csr *r)
{
    EVP_PKEY *pub = X509_REQ_get_pubkey(duet_csr_req(r));
    int same = pub && EVP_PKEY_cmp(pub, k->pkey) == 1;

    EVP_PKEY_free(pub);
    ERR_clear_error();
    return same ? 0 : DUET_E_KEY_MISMATCH;
}

/* ---- passphrases ---- */

/*
 * Printable ASCII without space and without the six characters that break
 * shells and config files: " ' \ ` < >.
 */
static const char pass_upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static const char pass_lower[] = "abcdefghijklmnopqrstuvwxyz";
static const char pass_digit[] = "0123456789";
static const char pass_symbol[] = "!#$%&()*+,-./:;=?@[]^_{|}~";

static int pass_classes_present(const char *s, size_t len)
{
    int seen = 0;

    for (size_t i = 0; i < len; i++) {
        if (strchr(pass_upper, s[i]))
            seen |= 1;
        else if (strchr(pass_lower, s[i]))
            seen |= 2;
        else if (strchr(pass_digit, s[i]))
            seen |= 4;
        else
            seen |= 8;
    }
    return seen == 15;
}

/*
 * Uniform over the alphabet: a random byte is used only below the largest
 * multiple of the alphabet size that fits in 256, so `b % n` has no bias.
 */
static int pass_fill(char *out, size_t len, const char *alphabet, size_t n)
{
    const unsigned limit = 256 - (256 % (unsigned)n);
    uint8_t rnd[64];
    size_t got = 0;

    while (got < len) {
        if (!RAND_bytes(rnd, sizeof(rnd)))
            return DUET_E_CRYPTO;
        for (size_t i = 0; i < sizeof(rnd) && got < len; i++) {
            if (rnd[i] < limit)
                out[got++] = alphabet[rnd[i] % n];
        }
    }
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return 0;
}

int duet_passphrase_generate(char *out, size_t len)
{
    char alphabet[128];
    size_t n;

    DUET_ENSURE(out && len >= 4, DUET_EINVAL);
    n = (size_t)snprintf(alphabet, sizeof(alphabet), "%s%s%s%s", pass_upper, pass_lower, pass_digit,
                         pass_symbol);
    /*
     * Rejection sampling again at the string level: redraw until every class
     * appears. For 35 characters a redraw is needed about 1 time in 30, so
     * the bound is never reached with a working RNG.
     */
    for (int attempt = 0; attempt < 1000; attempt++) {
        DUET_TRY(pass_fill(out, len, alphabet, n));
        out[len] = '\0';
        if (pass_classes_present(out, len))
            return 0;
    }
    OPENSSL_cleanse(out, len);
    return DUET_E_CRYPTO;
}
