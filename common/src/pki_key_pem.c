/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private keys to and from PEM.
 *
 * Reading looks at the PEM block name first, so that a failure can be told
 * apart: a block that is not a key or does not parse is DUET_E_PEM, an
 * encrypted key that does not decrypt is DUET_E_PASSPHRASE. Formats (all seen
 * from the OpenSSL CLI workflow, COMPAT.md 1-2): PKCS#8 "PRIVATE KEY",
 * PKCS#8 "ENCRYPTED PRIVATE KEY" (PBES2 with AES or DES-EDE3 and
 * hmacWithSHA1/SHA256, PBES1), traditional "RSA PRIVATE KEY" / "EC PRIVATE
 * KEY", plain or with a DEK-Info header.
 *
 * Writing: plain PKCS#8, or our own PBES2 encoding with PBKDF2-HMAC-SHA256,
 * a random 16-byte salt, DUET_PKI_KDF_ITERATIONS and AES-256-CBC. BoringSSL's
 * PKCS8_marshal_encrypted_private_key would leave the PRF at its default,
 * hmacWithSHA1 (measured), hence the encoder here; `openssl pkey` and
 * BoringSSL both read the result (tests/unit/test_pki.c).
 */
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <openssl/rand.h>

#include "duet/alloc.h"
#include "pki_int.h"

/* PEM_read_bio's pass callback: the given passphrase, or failure (never a prompt). */
static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pass = u;
    size_t len;

    if (!pass)
        return -1;
    len = strlen(pass);
    if (len > (size_t)size)
        return -1;
    memcpy(buf, pass, len);
    return (int)len;
}

static int key_from_pkcs8(const uint8_t *der, size_t len, const char *what, EVP_PKEY **out,
                          struct duet_errbuf *eb)
{
    CBS cbs;

    CBS_init(&cbs, der, len);
    *out = EVP_parse_private_key(&cbs);
    if (!*out || CBS_len(&cbs) != 0) {
        EVP_PKEY_free(*out);
        *out = NULL;
        duet_errf(eb, DUET_E_PEM, "%s: malformed PKCS#8 private key", what);
        duet_errbuf_add_ssl(eb);
        return DUET_E_PEM;
    }
    return 0;
}

/* True when the error queue says the encryption scheme is one BoringSSL lacks. */
static bool unsupported_scheme_in_queue(void)
{
    unsigned long e;

    while ((e = ERR_get_error()) != 0) {
        if (ERR_GET_LIB(e) != ERR_LIB_PKCS8)
            continue;
        switch (ERR_GET_REASON(e)) {
        case PKCS8_R_UNSUPPORTED_PRF:
        case PKCS8_R_UNSUPPORTED_KEY_DERIVATION_FUNCTION:
        case PKCS8_R_UNSUPPORTED_CIPHER:
        case PKCS8_R_UNSUPPORTED_KEYLENGTH:
        case PKCS8_R_UNSUPPORTED_SALT_TYPE:
        case PKCS8_R_UNSUPPORTED_PRIVATE_KEY_ALGORITHM:
        case PKCS8_R_UNKNOWN_ALGORITHM:
        case PKCS8_R_UNKNOWN_CIPHER:
        case PKCS8_R_UNKNOWN_CIPHER_ALGORITHM:
        case PKCS8_R_UNKNOWN_HASH:
            ERR_clear_error();
            return true;
        default:
            break;
        }
    }
    return false;
}

static int key_from_encrypted_pkcs8(const uint8_t *der, size_t len, const char *pass,
                                    const char *what, EVP_PKEY **out, struct duet_errbuf *eb)
{
    const uint8_t *p = der;
    X509_SIG *sig = d2i_X509_SIG(NULL, &p, (long)len);
    CBS cbs;

    /* A structure that does not even parse is a damaged file, not a wrong passphrase. */
    X509_SIG_free(sig);
    if (!sig || p != der + len) {
        ERR_clear_error();
        return duet_errf(eb, DUET_E_PEM, "%s: malformed encrypted PKCS#8 private key", what);
    }
    if (!pass)
        return duet_errf(eb, DUET_E_PASSPHRASE, "%s: key is encrypted and no passphrase was given",
                         what);
    CBS_init(&cbs, der, len);
    *out = PKCS8_parse_encrypted_private_key(&cbs, pass, strlen(pass));
    if (*out)
        return 0;
    if (unsupported_scheme_in_queue())
        return duet_errf(eb, DUET_E_PEM,
                         "%s: key encryption scheme not supported (use PBES2 with "
                         "hmacWithSHA256 or SHA1, AES or DES-EDE3)",
                         what);
    ERR_clear_error();
    return duet_errf(eb, DUET_E_PASSPHRASE, "%s: wrong passphrase (the key does not decrypt)",
                     what);
}

/* Traditional RSA/EC blocks, possibly with Proc-Type/DEK-Info: BoringSSL's PEM reader. */
static int key_from_traditional(const char *pem, size_t len, bool encrypted, const char *pass,
                                const char *what, EVP_PKEY **out, struct duet_errbuf *eb)
{
    BIO *bio;

    if (encrypted && !pass)
        return duet_errf(eb, DUET_E_PASSPHRASE, "%s: key is encrypted and no passphrase was given",
                         what);
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return DUET_ENOMEM;
    *out = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, (void *)(uintptr_t)pass);
    BIO_free(bio);
    if (*out)
        return 0;
    ERR_clear_error();
    if (encrypted)
        return duet_errf(eb, DUET_E_PASSPHRASE, "%s: wrong passphrase (the key does not decrypt)",
                         what);
    return duet_errf(eb, DUET_E_PEM, "%s: malformed private key", what);
}

int duet_key_from_pem(const char *pem, size_t len, const char *pass, const char *what,
                      struct duet_key **out, struct duet_errbuf *eb)
{
    char *name = NULL, *header = NULL;
    uint8_t *der = NULL;
    long der_len = 0;
    EVP_PKEY *pkey = NULL;
    BIO *bio;
    int rc;

    what = what ? what : "key";
    DUET_TRY(duet__pki_mem_bio(pem, len, what, "private key", &bio, eb));
    /* The first key block wins; certificates beside it (a combined file) are skipped. */
    for (;;) {
        if (!PEM_read_bio(bio, &name, &header, &der, &der_len)) {
            ERR_clear_error();
            BIO_free(bio);
            return duet_errf(eb, DUET_E_PEM, "%s: no PEM private key found", what);
        }
        if (strcmp(name, "PRIVATE KEY") == 0 || strcmp(name, "ENCRYPTED PRIVATE KEY") == 0 ||
            strcmp(name, "RSA PRIVATE KEY") == 0 || strcmp(name, "EC PRIVATE KEY") == 0)
            break;
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        name = header = NULL;
        der = NULL;
    }
    BIO_free(bio);
    if (strcmp(name, "PRIVATE KEY") == 0)
        rc = key_from_pkcs8(der, (size_t)der_len, what, &pkey, eb);
    else if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0)
        rc = key_from_encrypted_pkcs8(der, (size_t)der_len, pass, what, &pkey, eb);
    else
        rc = key_from_traditional(pem, len, strstr(header, "ENCRYPTED") != NULL, pass, what, &pkey,
                                  eb);
    OPENSSL_free(name);
    OPENSSL_free(header);
    /* der holds the key itself for an unencrypted block. */
    OPENSSL_cleanse(der, (size_t)der_len);
    OPENSSL_free(der);
    if (rc < 0)
        return rc;
    rc = duet_key_from_evp(pkey, out);
    EVP_PKEY_free(pkey);
    return rc;
}

int duet_key_load(const char *path, const char *pass, struct duet_key **out, struct duet_errbuf *eb)
{
    char *buf;
    size_t len;
    int rc;

    DUET_TRY(duet__pki_read_file(path, &buf, &len, eb));
    rc = duet_key_from_pem(buf, len, pass, path, out, eb);
    duet_secret_free(buf, len);
    return rc;
}

/* ---- writing ---- */

/*
 * EncryptedPrivateKeyInfo (RFC 5958) with PBES2 (RFC 8018 A.4):
 *   SEQ { SEQ { pbes2, SEQ { SEQ { pbkdf2, SEQ { salt, iterations, SEQ { hmacWithSHA256, NULL } }
 * }, SEQ { aes-256-cbc, iv } } }, OCTET STRING ciphertext }
 */
static int add_alg(CBB *parent, CBB *alg, int nid)
{
    return CBB_add_asn1(parent, alg, CBS_ASN1_SEQUENCE) && OBJ_nid2cbb(alg, nid);
}

static int marshal_pbes2(CBB *out, const uint8_t *salt, size_t salt_len, const uint8_t *iv,
                         const uint8_t *ct, size_t ct_len)
{
    CBB top, alg, params, kdf, kdf_params, prf, enc, null, octets;

    return CBB_add_asn1(out, &top, CBS_ASN1_SEQUENCE) && add_alg(&top, &alg, NID_pbes2) &&
           CBB_add_asn1(&alg, &params, CBS_ASN1_SEQUENCE) &&
           add_alg(&params, &kdf, NID_id_pbkdf2) &&
           CBB_add_asn1(&kdf, &kdf_params, CBS_ASN1_SEQUENCE) &&
           CBB_add_asn1_octet_string(&kdf_params, salt, salt_len) &&
           CBB_add_asn1_uint64(&kdf_params, DUET_PKI_KDF_ITERATIONS) &&
           add_alg(&kdf_params, &prf, NID_hmacWithSHA256) &&
           CBB_add_asn1(&prf, &null, CBS_ASN1_NULL) && add_alg(&params, &enc, NID_aes_256_cbc) &&
           CBB_add_asn1_octet_string(&enc, iv, 16) &&
           CBB_add_asn1(&top, &octets, CBS_ASN1_OCTETSTRING) &&
           CBB_add_bytes(&octets, ct, ct_len) && CBB_flush(out);
}

/* AES-256-CBC of `plain` under a PBKDF2-HMAC-SHA256 key; *ct has room for len + 16. */
static int encrypt_pbes2(const char *pass, const uint8_t *salt, const uint8_t *iv,
                         const uint8_t *plain, size_t len, uint8_t *ct, size_t *ct_len)
{
    uint8_t key[32];
    EVP_CIPHER_CTX cctx;
    int n1 = 0, n2 = 0, ok;

    EVP_CIPHER_CTX_init(&cctx);
    ok = PKCS5_PBKDF2_HMAC(pass, strlen(pass), salt, 16, DUET_PKI_KDF_ITERATIONS, EVP_sha256(),
                           sizeof(key), key) &&
         EVP_EncryptInit_ex(&cctx, EVP_aes_256_cbc(), NULL, key, iv) &&
         EVP_EncryptUpdate(&cctx, ct, &n1, plain, (int)len) &&
         EVP_EncryptFinal_ex(&cctx, ct + n1, &n2);
    EVP_CIPHER_CTX_cleanup(&cctx);
    OPENSSL_cleanse(key, sizeof(key));
    *ct_len = (size_t)n1 + (size_t)n2;
    return ok ? 0 : DUET_E_CRYPTO;
}

static int encrypt_der(const uint8_t *plain, size_t len, const char *pass, CBB *out)
{
    uint8_t salt[16], iv[16];
    uint8_t *ct = duet_malloc(len + 16);
    size_t ct_len = 0;
    int rc;

    if (!ct)
        return DUET_ENOMEM;
    rc = RAND_bytes(salt, sizeof(salt)) && RAND_bytes(iv, sizeof(iv)) ? 0 : DUET_E_CRYPTO;
    if (rc == 0)
        rc = encrypt_pbes2(pass, salt, iv, plain, len, ct, &ct_len);
    if (rc == 0 && !marshal_pbes2(out, salt, sizeof(salt), iv, ct, ct_len))
        rc = DUET_E_CRYPTO;
    duet_free(ct); /* ciphertext: not secret */
    return rc;
}

static int pem_encode(const char *label, const uint8_t *der, size_t len, char **pem,
                      size_t *pem_len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc;

    if (!bio)
        return DUET_ENOMEM;
    rc = PEM_write_bio(bio, label, "", der, (long)len) > 0 ? 0 : DUET_E_CRYPTO;
    if (rc == 0)
        rc = duet__pki_bio_to_string(bio, pem, pem_len);
    /* The BIO's buffer held the PEM text of a key: wipe it too. */
    {
        const uint8_t *contents;
        size_t clen;

        if (BIO_mem_contents(bio, &contents, &clen))
            OPENSSL_cleanse((void *)(uintptr_t)contents, clen);
    }
    BIO_free(bio);
    return rc;
}

int duet_key_to_pem(const struct duet_key *k, const char *pass, char **pem, size_t *len,
                    struct duet_errbuf *eb)
{
    CBB plain, enc;
    uint8_t *der = NULL, *edr = NULL;
    size_t der_len = 0, edr_len = 0;
    int rc = DUET_E_CRYPTO;

    if (!CBB_init(&plain, 0))
        return DUET_ENOMEM;
    if (!EVP_marshal_private_key(&plain, k->pkey) || !CBB_finish(&plain, &der, &der_len)) {
        CBB_cleanup(&plain);
        duet_errf(eb, DUET_E_CRYPTO, "cannot encode the private key");
        duet_errbuf_add_ssl(eb);
        return DUET_E_CRYPTO;
    }
    if (!pass) {
        rc = pem_encode("PRIVATE KEY", der, der_len, pem, len);
    } else if (CBB_init(&enc, 0)) {
        rc = encrypt_der(der, der_len, pass, &enc);
        if (rc == 0 && !CBB_finish(&enc, &edr, &edr_len))
            rc = DUET_E_CRYPTO;
        CBB_cleanup(&enc);
        if (rc == 0)
            rc = pem_encode("ENCRYPTED PRIVATE KEY", edr, edr_len, pem, len);
        OPENSSL_free(edr);
    }
    OPENSSL_cleanse(der, der_len);
    OPENSSL_free(der);
    if (rc < 0)
        duet_errf(eb, rc, "cannot write the private key as PEM");
    return rc;
}
