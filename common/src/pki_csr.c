/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PKCS#10 requests: building one from a key, a subject and SANs (carried in
 * an extensionRequest attribute, which `openssl req -verify` and CFSSL read),
 * and reading one back with its self-signature checked. A duet_csr always
 * holds a request whose signature verified.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/pem.h>

#include "duet/alloc.h"
#include "pki_int.h"

X509_REQ *duet_csr_req(const struct duet_csr *r)
{
    return r->req;
}

void duet_csr_free(struct duet_csr *r)
{
    if (!r)
        return;
    X509_REQ_free(r->req);
    duet_free(r);
}

static int wrap_req(X509_REQ *req, struct duet_csr **out)
{
    struct duet_csr *r = duet_calloc(1, sizeof(*r));

    if (!r) {
        X509_REQ_free(req);
        return DUET_ENOMEM;
    }
    r->req = req; /* takes the caller's reference */
    *out = r;
    return 0;
}

static int add_san_request(X509_REQ *req, const struct duet_sans *sans, struct duet_errbuf *eb)
{
    GENERAL_NAMES *gens;
    STACK_OF(X509_EXTENSION) * exts;
    X509_EXTENSION *ext;
    int ok;

    DUET_TRY(duet__pki_gens_from_sans(sans, &gens, eb));
    if (!gens)
        return 0; /* no SAN: the attributes stay empty, like `openssl req -new` */
    ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
    GENERAL_NAMES_free(gens);
    exts = sk_X509_EXTENSION_new_null();
    ok = ext && exts && sk_X509_EXTENSION_push(exts, ext);
    if (ok)
        ext = NULL; /* owned by exts */
    ok = ok && X509_REQ_add_extensions(req, exts);
    X509_EXTENSION_free(ext);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return ok ? 0 : DUET_ENOMEM;
}

static int fill_req(X509_REQ *req, const struct duet_key *k, const struct duet_subject *subject,
                    const struct duet_sans *sans, struct duet_errbuf *eb)
{
    X509_NAME *name = X509_NAME_new();
    int rc;

    if (!name)
        return DUET_ENOMEM;
    rc = duet__pki_name_from_subject(name, subject, eb);
    if (rc == 0 && !X509_REQ_set_subject_name(req, name))
        rc = DUET_ENOMEM;
    X509_NAME_free(name);
    DUET_TRY(rc);
    DUET_TRY(add_san_request(req, sans, eb));
    if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_pubkey(req, k->pkey) ||
        !X509_REQ_sign(req, k->pkey, duet__pki_digest_for(k->pkey))) {
        duet_errf(eb, DUET_E_CRYPTO, "cannot sign the CSR");
        duet_errbuf_add_ssl(eb);
        return DUET_E_CRYPTO;
    }
    return 0;
}

int duet_csr_build(const struct duet_key *k, const struct duet_subject *subject,
                   const struct duet_sans *sans, struct duet_csr **out, struct duet_errbuf *eb)
{
    X509_REQ *req = X509_REQ_new();
    int rc;

    if (!req)
        return DUET_ENOMEM;
    rc = fill_req(req, k, subject, sans, eb);
    if (rc < 0) {
        X509_REQ_free(req);
        return rc;
    }
    return wrap_req(req, out);
}

static int check_self_signature(X509_REQ *req, const char *what, struct duet_errbuf *eb)
{
    EVP_PKEY *pub = X509_REQ_get_pubkey(req);
    int ok = pub && X509_REQ_verify(req, pub) == 1;

    EVP_PKEY_free(pub);
    ERR_clear_error();
    if (!ok)
        return duet_errf(eb, DUET_E_CSR, "%s: CSR signature does not verify", what);
    return 0;
}

int duet_csr_from_pem(const char *pem, size_t len, const char *what, struct duet_csr **out,
                      struct duet_errbuf *eb)
{
    X509_REQ *req;
    BIO *bio;
    int rc;

    what = what ? what : "CSR";
    DUET_TRY(duet__pki_mem_bio(pem, len, what, "CSR", &bio, eb));
    req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!req) {
        ERR_clear_error();
        return duet_errf(eb, DUET_E_PEM, "%s: no readable PEM CERTIFICATE REQUEST", what);
    }
    rc = check_self_signature(req, what, eb);
    if (rc < 0) {
        X509_REQ_free(req);
        return rc;
    }
    return wrap_req(req, out);
}

int duet_csr_load(const char *path, struct duet_csr **out, struct duet_errbuf *eb)
{
    char *buf;
    size_t len;
    int rc;

    DUET_TRY(duet__pki_read_file(path, &buf, &len, eb));
    rc = duet_csr_from_pem(buf, len, path, out, eb);
    duet_free(buf);
    return rc;
}

int duet_csr_to_pem(const struct duet_csr *r, char **pem, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc;

    if (!bio)
        return DUET_ENOMEM;
    rc = PEM_write_bio_X509_REQ(bio, r->req) ? duet__pki_bio_to_string(bio, pem, len)
                                             : DUET_E_CRYPTO;
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}
