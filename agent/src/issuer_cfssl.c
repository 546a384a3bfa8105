/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CFSSL issuer: POST the CSR to a CloudFlare CFSSL server
 * (`cfssl serve`) and take the certificate from its JSON envelope.
 *
 * - With auth_key_file: /api/v1/cfssl/authsign with
 *   {"token": base64(HMAC-SHA256(hex-decoded key, request)),
 *    "request": base64(request)}, where request is the exact inner sign JSON.
 *   Without: /api/v1/cfssl/sign with the inner JSON itself.
 * - Every reply is {"success", "result", "errors": [{"code", "message"}]},
 *   HTTP 400 for every request error: both are reported.
 * - libcurl (GnuTLS flavour) beside BoringSSL: every handle is restricted to
 *   http and https (CURLOPT_PROTOCOLS_STR, CURLOPT_REDIR_PROTOCOLS_STR) so
 *   libssh2, whose OpenSSL references bind to BoringSSL, is never reached
 *   (COMPAT.md 4). curl reads the client certificate and key files itself;
 *   no BoringSSL object crosses to it.
 * - CFSSL backdates notBefore by about five minutes and counts the profile's
 *   expiry from there (COMPAT.md 5): a certificate that is already expired
 *   or about to be is refused here with the profile's expiry in the message.
 * - Signing requests run on the agent's threads (renewals, a CSI volume's
 *   first certificate), several at once: the configuration is a snapshot
 *   that each request reads and never changes, every request has a curl
 *   handle of its own, and the files (bundle, auth key) are read per
 *   request. Only the readiness probe (/info) runs on the loop.
 * Checking the certificate against our key, the bundle and the identity is
 * the caller's (the same check for every issuer).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/base64.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>

#include <cJSON.h>

#include "issuer.h"
#include "issuer_cfssl_int.h"

#include "duet/alloc.h"
#include "duet/file.h"
#include "duet/clock.h"
#include "duet/err.h"
#include "duet/pki.h"

/* A sign reply is a few KB; /info carries the CA certificate. */
#define REPLY_MAX (256 * 1024)
#define AUTH_KEY_MAX 256
/*
 * The readiness probe at start and reload only logs, on the loop, before
 * the CSI sockets exist: a CFSSL that hangs must not hold them back for the
 * whole issuer.timeout.
 */
#define READY_TIMEOUT_MS 2000L

/* The configuration, immutable once made; the issuer's snapshot. */
struct cfssl_conf {
    struct ag_ca_snap base; /* first: ag_ca_snap_sign receives &base */
    char *url, *profile, *server_profile, *auth_key_file, *ca_bundle, *server_ca, *client_cert,
        *client_key;
    long timeout_ms;
};

struct cfssl_issuer {
    struct ag_issuer base;   /* first: the ops receive &base */
    struct cfssl_conf *conf; /* one reference */
};

/* What one request may take: its time, and (off the loop) when to give up. */
struct req_limits {
    long timeout_ms;
    const atomic_bool *abandon; /* NULL on the loop: a pending SIGTERM says it */
};

struct reply {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct reply *r = arg;
    size_t n = size * nmemb;
    char *p;

    if (r->len + n > REPLY_MAX) {
        r->too_big = true;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    p = duet_realloc(r->data, r->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + r->len, ptr, n);
    r->data = p;
    r->len += n;
    r->data[r->len] = '\0';
    return n;
}

/*
 * libcurl calls this at least once a second: aborting here makes stopping
 * prompt even against a CFSSL that accepts the connection and never
 * answers. On a signing thread the request's abandon flag (arg) says the
 * agent stops. On the loop (the readiness probe; a unit test's signing),
 * which takes SIGTERM through a signalfd, the signal stays pending while a
 * request blocks the loop.
 */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const atomic_bool *abandon = arg;
    sigset_t pending;

    if (abandon)
        return atomic_load(abandon);
    if (sigpending(&pending) == -1)
        return 0;
    return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

/* Options every handle gets; see the file comment for the protocol list. */
static int setup_handle(const struct cfssl_conf *ci, CURL *h, const char *url, const char *body,
                        struct curl_slist *hdrs, struct reply *r, const struct req_limits *lim)
{
    CURLcode c = CURLE_OK;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (c == CURLE_OK)                                                                         \
            c = curl_easy_setopt(h, (opt), (val));                                                 \
    } while (0)
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, body);
    SET(CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_TIMEOUT_MS, lim->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, lim->timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, (void *)lim->abandon);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_CAINFO, ci->server_ca);
    /* Only the given roots: no system store, no capath. */
    SET(CURLOPT_CAPATH, (char *)NULL);
    if (ci->client_cert) {
        SET(CURLOPT_SSLCERT, ci->client_cert);
        SET(CURLOPT_SSLCERTTYPE, "PEM");
        SET(CURLOPT_SSLKEY, ci->client_key);
        SET(CURLOPT_SSLKEYTYPE, "PEM");
    }
#undef SET
    return c == CURLE_OK ? 0 : DUET_E_INTERNAL;
}

/*
 * POST body to url + path. On return *status holds the HTTP status (0 when
 * no reply came) and *out the body (owned by the caller, NUL-terminated).
 */
static int post(const struct cfssl_conf *ci, const char *path, const char *body,
                const struct req_limits *lim, long *status, char **out, struct duet_errbuf *eb)
{
    char url[1024];
    char cerr[CURL_ERROR_SIZE] = "";
    struct reply r = {0};
    struct curl_slist *hdrs = NULL;
    CURL *h;
    CURLcode c;
    int rc = 0;

    *status = 0;
    if ((size_t)snprintf(url, sizeof(url), "%s%s", ci->url, path) >= sizeof(url))
        return duet_errf(eb, DUET_E_TOOBIG, "cfssl url too long");
    h = curl_easy_init();
    hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (!h || !hdrs) {
        rc = duet_errf(eb, DUET_ENOMEM, "cfssl: out of memory");
        goto out;
    }
    if (setup_handle(ci, h, url, body, hdrs, &r, lim) < 0 ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr) != CURLE_OK) {
        rc = duet_errf(eb, DUET_E_INTERNAL, "cfssl: libcurl refused an option");
        goto out;
    }
    c = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (c != CURLE_OK) {
        rc = duet_errf(eb, c == CURLE_OPERATION_TIMEDOUT ? DUET_E_TIMEOUT : DUET_E_ISSUER,
                       "cfssl %s: %s%s%s", url,
                       r.too_big                        ? "reply too large"
                       : c == CURLE_ABORTED_BY_CALLBACK ? "abandoned: the agent is stopping"
                                                        : curl_easy_strerror(c),
                       cerr[0] ? ": " : "", cerr);
        goto out;
    }
    *out = r.data ? r.data : duet_strdup("");
    r.data = NULL;
    if (!*out)
        rc = duet_errf(eb, DUET_ENOMEM, "cfssl: out of memory");
out:
    duet_free(r.data);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

/*
 * Parse a CFSSL envelope. On success *result is the "result" member
 * (borrowed from *root, which the caller frees). A failed request gives
 * DUET_E_ISSUER with CFSSL's first error code and message and the status.
 */
static int parse_envelope(const char *body, long status, const char *what, cJSON **root,
                          const cJSON **result, struct duet_errbuf *eb)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *ok, *errs, *e0, *code, *msg;

    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        /* A CFSSL whose signer failed to load (an unreadable CA key)
         * still listens, without the signing endpoints: plain-text 404. */
        if (status == 404)
            return duet_errf(eb, DUET_E_ISSUER,
                             "cfssl %s: HTTP 404, endpoint missing: CFSSL runs without a signer "
                             "(unreadable CA key?) or the url is wrong",
                             what);
        return duet_errf(eb, DUET_E_ISSUER,
                         "cfssl %s: HTTP %ld, reply is not a CFSSL JSON envelope", what, status);
    }
    ok = cJSON_GetObjectItemCaseSensitive(j, "success");
    if (cJSON_IsTrue(ok) && status == 200) {
        *root = j;
        *result = cJSON_GetObjectItemCaseSensitive(j, "result");
        return 0;
    }
    errs = cJSON_GetObjectItemCaseSensitive(j, "errors");
    e0 = cJSON_IsArray(errs) ? cJSON_GetArrayItem(errs, 0) : NULL;
    code = e0 ? cJSON_GetObjectItemCaseSensitive(e0, "code") : NULL;
    msg = e0 ? cJSON_GetObjectItemCaseSensitive(e0, "message") : NULL;
    duet_errf(eb, DUET_E_ISSUER, "cfssl %s: HTTP %ld, error code %d: %s", what, status,
              cJSON_IsNumber(code) ? code->valueint : 0,
              cJSON_IsString(msg) ? msg->valuestring : "(no message)");
    cJSON_Delete(j);
    return DUET_E_ISSUER;
}

int ag_cfssl_sign_reply(const char *body, long status, const char *what, int64_t now,
                        struct duet_chain **chain, struct duet_cert_info *info,
                        struct duet_errbuf *eb)
{
    cJSON *root = NULL;
    const cJSON *result = NULL, *pem;
    int rc;

    *chain = NULL;
    DUET_TRY(parse_envelope(body, status, what, &root, &result, eb));
    pem = result ? cJSON_GetObjectItemCaseSensitive(result, "certificate") : NULL;
    if (!cJSON_IsString(pem)) {
        rc = duet_errf(eb, DUET_E_ISSUER, "cfssl %s: HTTP %ld, success without result.certificate",
                       what, status);
        goto out;
    }
    if (duet_chain_from_pem(pem->valuestring, strlen(pem->valuestring), "cfssl reply", chain, eb) <
        0) {
        rc = DUET_E_ISSUER;
        goto out;
    }
    if (duet_cert_info(duet_chain_at(*chain, 0), info) < 0) {
        rc = duet_errf(eb, DUET_E_ISSUER, "cfssl: unreadable certificate in reply");
        goto out;
    }
    /* CFSSL counts the expiry from a backdated notBefore: refuse what is
     * (nearly) dead. The caller adds the profile's expiry to the message. */
    rc = info->not_after - now < AG_CFSSL_MIN_USABLE_S
             ? duet_errf(eb, DUET_E_EXPIRED, "cfssl: certificate serial=%s expires within %d s",
                         info->serial, AG_CFSSL_MIN_USABLE_S)
             : 0;
out:
    if (rc < 0) {
        duet_chain_free(*chain);
        *chain = NULL;
    }
    cJSON_Delete(root);
    return rc;
}

int ag_cfssl_info_reply(const char *body, long status, char *expiry, size_t size,
                        struct duet_errbuf *eb)
{
    cJSON *root = NULL;
    const cJSON *res = NULL, *exp;

    if (expiry && size)
        snprintf(expiry, size, "?");
    DUET_TRY(parse_envelope(body, status, "info", &root, &res, eb));
    exp = res ? cJSON_GetObjectItemCaseSensitive(res, "expiry") : NULL;
    if (expiry && size && cJSON_IsString(exp))
        snprintf(expiry, size, "%s", exp->valuestring);
    cJSON_Delete(root);
    return 0;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The hex key of CFSSL's auth_keys, decoded; whitespace around it ignored. */
static int read_auth_key(const char *path, uint8_t *key, size_t *len, struct duet_errbuf *eb)
{
    char *hex = NULL;
    size_t n = 0, size = 0, i, start = 0;
    int rc = duet_file_read(path, 2 * AUTH_KEY_MAX + 64, &hex, &size);

    if (rc < 0)
        return duet_errf(eb, rc == DUET_E_TOOBIG ? DUET_E_CFG_RANGE : rc, "auth_key_file %s: %s",
                         path, duet_strerror(rc));
    n = size;
    while (n > 0 && strchr(" \t\r\n", hex[n - 1]))
        n--;
    while (start < n && strchr(" \t\r\n", hex[start]))
        start++;
    n -= start;
    if (n == 0 || n % 2 != 0 || n / 2 > AUTH_KEY_MAX) {
        rc = duet_errf(eb, DUET_E_CFG_RANGE,
                       "auth_key_file %s: expected an even number of hex digits", path);
        goto out;
    }
    for (i = 0; i < n / 2; i++) {
        int hi = hexval(hex[start + 2 * i]), lo = hexval(hex[start + 2 * i + 1]);
        if (hi < 0 || lo < 0) {
            rc = duet_errf(eb, DUET_E_CFG_RANGE, "auth_key_file %s: not hex", path);
            goto out;
        }
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
out:
    duet_file_free(hex, size); /* cleansed: it is the HMAC key */
    return rc;
}

/* base64 of len bytes, owned by the caller. */
static char *b64(const uint8_t *in, size_t len)
{
    size_t out_len;
    char *out;

    if (!EVP_EncodedLength(&out_len, len))
        return NULL;
    out = duet_malloc(out_len);
    if (out)
        EVP_EncodeBlock((uint8_t *)out, in, len);
    return out;
}

/* {"token": ..., "request": ...} around the inner JSON; owned by the caller. */
static int wrap_authsign(const struct cfssl_conf *ci, const char *inner, char **out,
                         struct duet_errbuf *eb)
{
    uint8_t key[AUTH_KEY_MAX], mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    size_t key_len = 0;
    char *tok = NULL, *req = NULL;
    cJSON *j = NULL;
    int rc;

    DUET_TRY_GOTO(read_auth_key(ci->auth_key_file, key, &key_len, eb), rc, out);
    rc = DUET_E_CRYPTO;
    if (!HMAC(EVP_sha256(), key, key_len, (const uint8_t *)inner, strlen(inner), mac, &mac_len))
        goto out;
    tok = b64(mac, mac_len);
    req = b64((const uint8_t *)inner, strlen(inner));
    j = cJSON_CreateObject();
    rc = DUET_ENOMEM;
    if (!tok || !req || !j || !cJSON_AddStringToObject(j, "token", tok) ||
        !cJSON_AddStringToObject(j, "request", req))
        goto out;
    *out = cJSON_PrintUnformatted(j);
    rc = *out ? 0 : DUET_ENOMEM;
out:
    OPENSSL_cleanse(key, sizeof(key));
    cJSON_Delete(j);
    duet_free(tok);
    duet_free(req);
    if (rc < 0)
        duet_errf(eb, rc, "cfssl authsign: cannot build the request");
    return rc;
}

/* Server identities may use a profile of their own (serverAuth, not clientAuth). */
static const char *profile_for(const struct cfssl_conf *ci, bool server)
{
    return server && ci->server_profile ? ci->server_profile : ci->profile;
}

static int sign_body(const struct cfssl_conf *ci, const struct ag_issue_req *req, char **out,
                     struct duet_errbuf *eb)
{
    const char *profile = profile_for(ci, req->server);
    char *csr_pem = NULL;
    size_t csr_len;
    cJSON *j = cJSON_CreateObject();
    char *inner = NULL;
    int rc = DUET_ENOMEM;

    /* No "hosts": CFSSL 1.2 would make a URI a DNS name. No "subject": the
     * CSR already carries the one we expect and CFSSL keeps it. */
    if (!j || duet_csr_to_pem(req->csr, &csr_pem, &csr_len) < 0 ||
        !cJSON_AddStringToObject(j, "certificate_request", csr_pem) ||
        (profile && !cJSON_AddStringToObject(j, "profile", profile)))
        goto out;
    inner = cJSON_PrintUnformatted(j);
    if (!inner)
        goto out;
    if (!ci->auth_key_file) {
        *out = inner;
        inner = NULL;
        rc = 0;
        goto out;
    }
    rc = wrap_authsign(ci, inner, out, eb);
out:
    if (inner)
        cJSON_free(inner);
    cJSON_Delete(j);
    duet_free(csr_pem);
    if (rc == DUET_ENOMEM)
        duet_errf(eb, rc, "cfssl: out of memory building the request");
    return rc;
}

/*
 * POST /info for our profile; 0 when CFSSL can sign, with the profile's
 * expiry in expiry (may be NULL). The profile name goes through cJSON, so
 * any string the configuration allows is sent correctly escaped.
 */
static int info(const struct cfssl_conf *ci, const char *profile, char *expiry, size_t size,
                const struct req_limits *lim, struct duet_errbuf *eb)
{
    cJSON *j = cJSON_CreateObject();
    char *body = NULL, *reply = NULL;
    long status;
    int rc = DUET_ENOMEM;

    if (j && cJSON_AddStringToObject(j, "profile", profile ? profile : ""))
        body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!body)
        return duet_errf(eb, rc, "cfssl: out of memory");
    rc = post(ci, "/api/v1/cfssl/info", body, lim, &status, &reply, eb);
    if (rc == 0)
        rc = ag_cfssl_info_reply(reply, status, expiry, size, eb);
    cJSON_free(body);
    duet_free(reply);
    return rc;
}

static int cfssl_bundle(struct ag_issuer *is, struct duet_chain **out, struct duet_errbuf *eb)
{
    struct cfssl_issuer *ci = (struct cfssl_issuer *)is;

    return duet_chain_load(ci->conf->ca_bundle, out, eb);
}

/* The snapshot's sign: on a signing thread, or on the caller's (ag_ident_issue). */
static int conf_sign(const struct ag_ca_snap *base, const struct ag_issue_req *req,
                     struct ag_issue_result *out, struct duet_errbuf *eb)
{
    const struct cfssl_conf *ci = (const struct cfssl_conf *)base;
    const struct req_limits lim = {ci->timeout_ms, req->abandon};
    const char *path = ci->auth_key_file ? "/api/v1/cfssl/authsign" : "/api/v1/cfssl/sign";
    const char *what = ci->auth_key_file ? "authsign" : "sign";
    const char *profile = profile_for(ci, req->server);
    struct duet_cert_info *cinfo = duet_malloc(sizeof(*cinfo));
    struct ag_issue_result res = {0};
    char *body = NULL, *reply = NULL;
    struct duet_errbuf ignored;
    char expiry[64];
    int64_t now;
    long status;
    int rc;

    if (!cinfo)
        return duet_errf(eb, DUET_ENOMEM, "cfssl: out of memory");
    DUET_TRY_GOTO(duet_chain_load(ci->ca_bundle, &res.bundle, eb), rc, out);
    DUET_TRY_GOTO(sign_body(ci, req, &body, eb), rc, out);
    DUET_TRY_GOTO(post(ci, path, body, &lim, &status, &reply, eb), rc, out);
    now = duet_clock_now();
    rc = ag_cfssl_sign_reply(reply, status, what, now, &res.chain, cinfo, eb);
    if (rc == DUET_E_EXPIRED) {
        /* /info tells the profile's expiry: the usual cause is one too short. */
        if (info(ci, profile, expiry, sizeof(expiry), &lim, &ignored) < 0)
            snprintf(expiry, sizeof(expiry), "?");
        duet_errf(eb, DUET_E_EXPIRED,
                  "cfssl: certificate serial=%s is expired or expires within %d s "
                  "(notBefore %lld, notAfter %lld, now %lld): profile '%s' has expiry %s, "
                  "counted by CFSSL from a notBefore backdated ~5 min; use more than 6m",
                  cinfo->serial, AG_CFSSL_MIN_USABLE_S, (long long)cinfo->not_before,
                  (long long)cinfo->not_after, (long long)now, profile ? profile : "default",
                  expiry);
    }
    if (rc < 0)
        goto out;
    *out = res;
    res.chain = NULL;
    res.bundle = NULL;
out:
    ag_issue_result_clear(&res);
    duet_free(cinfo);
    duet_free(reply);
    if (body) {
        /* The body holds no secret (the HMAC key never leaves read_auth_key),
         * but it may be large; plain free. */
        cJSON_free(body);
    }
    return rc;
}

/* The configuration never changes: every snapshot is the same one. */
static int cfssl_snapshot(struct ag_issuer *is, struct ag_ca_snap **out, struct duet_errbuf *eb)
{
    *out = ag_ca_snap_get(&((struct cfssl_issuer *)is)->conf->base);
    return 0;
}

/* Files libcurl will read itself: present and readable now. */
static int readable(const char *path, const char *field, struct duet_errbuf *eb)
{
    FILE *f = path ? fopen(path, "re") : NULL;

    if (!path)
        return 0;
    if (!f)
        return duet_errf(eb, DUET_E_ISSUER_FILES, "issuer.%s: %s: %s", field, path,
                         strerror(errno));
    fclose(f);
    return 0;
}

static int cfssl_validate(struct ag_issuer *is, struct duet_errbuf *eb)
{
    const struct cfssl_conf *ci = ((struct cfssl_issuer *)is)->conf;
    struct duet_chain *c = NULL;
    uint8_t key[AUTH_KEY_MAX];
    size_t key_len;
    int rc = 0;

    if (duet_chain_load(ci->ca_bundle, &c, eb) < 0)
        rc = ag_issuer_field_err(eb, "ca_bundle");
    duet_chain_free(c);
    c = NULL;
    if (rc == 0 && duet_chain_load(ci->server_ca, &c, eb) < 0)
        rc = ag_issuer_field_err(eb, "server_ca");
    duet_chain_free(c);
    if (rc == 0 && ci->auth_key_file && read_auth_key(ci->auth_key_file, key, &key_len, eb) < 0)
        rc = ag_issuer_field_err(eb, "auth_key_file");
    OPENSSL_cleanse(key, sizeof(key));
    if (rc == 0)
        rc = readable(ci->client_cert, "client_cert", eb);
    if (rc == 0)
        rc = readable(ci->client_key, "client_key", eb);
    return rc;
}

/* CFSSL starts listening even when its signer failed: ask /info. */
static int cfssl_ready(struct ag_issuer *is, struct duet_errbuf *eb)
{
    const struct cfssl_conf *ci = ((struct cfssl_issuer *)is)->conf;
    const struct req_limits lim = {DUET_MIN(ci->timeout_ms, READY_TIMEOUT_MS), NULL};

    return info(ci, ci->profile, NULL, 0, &lim, eb);
}

static void conf_destroy(struct ag_ca_snap *base)
{
    struct cfssl_conf *ci = (struct cfssl_conf *)base;

    duet_free(ci->url);
    duet_free(ci->profile);
    duet_free(ci->server_profile);
    duet_free(ci->auth_key_file);
    duet_free(ci->ca_bundle);
    duet_free(ci->server_ca);
    duet_free(ci->client_cert);
    duet_free(ci->client_key);
    duet_free(ci);
}

static void cfssl_free(struct ag_issuer *is)
{
    struct cfssl_issuer *ci = (struct cfssl_issuer *)is;

    if (!ci)
        return;
    if (ci->conf)
        ag_ca_snap_put(&ci->conf->base);
    duet_free(ci);
}

static const struct ag_issuer_ops cfssl_ops = {
    .name = "cfssl",
    .bundle = cfssl_bundle,
    .validate = cfssl_validate,
    .ready = cfssl_ready,
    .snapshot = cfssl_snapshot,
    .free = cfssl_free,
};

/* duet_strdup that keeps NULL (and "") as NULL; *ok turns false on ENOMEM. */
static char *dup_opt(const char *s, bool *ok)
{
    char *d;

    if (!s || !*s)
        return NULL;
    d = duet_strdup(s);
    if (!d)
        *ok = false;
    return d;
}

int ag_issuer_cfssl_new(const struct ag_cfssl_opts *o, struct ag_issuer **out,
                        struct duet_errbuf *eb)
{
    struct cfssl_issuer *is = duet_calloc(1, sizeof(*is));
    struct cfssl_conf *ci = duet_calloc(1, sizeof(*ci));
    bool ok = true;
    size_t n;

    if (!is || !ci) {
        duet_free(is);
        duet_free(ci);
        return duet_errf(eb, DUET_ENOMEM, "cfssl issuer: out of memory");
    }
    is->base.ops = &cfssl_ops;
    is->base.uri_sans = false;
    is->conf = ci;
    ci->base.refs = 1;
    ci->base.sign = conf_sign;
    ci->base.destroy = conf_destroy;
    ci->url = dup_opt(o->url, &ok);
    ci->profile = dup_opt(o->profile, &ok);
    ci->server_profile = dup_opt(o->server_profile, &ok);
    ci->auth_key_file = dup_opt(o->auth_key_file, &ok);
    ci->ca_bundle = dup_opt(o->ca_bundle, &ok);
    ci->server_ca = dup_opt(o->server_ca ? o->server_ca : o->ca_bundle, &ok);
    ci->client_cert = dup_opt(o->client_cert, &ok);
    ci->client_key = dup_opt(o->client_key ? o->client_key : o->client_cert, &ok);
    ci->timeout_ms = o->timeout_ms > 0 ? (long)o->timeout_ms : 10000;
    if (!ok) {
        cfssl_free(&is->base);
        return duet_errf(eb, DUET_ENOMEM, "cfssl issuer: out of memory");
    }
    if (!ci->url || !ci->ca_bundle) {
        cfssl_free(&is->base);
        return duet_errf(eb, DUET_E_CFG_MISSING, "issuer.%s: required for type cfssl",
                         o->url ? "ca_bundle" : "url");
    }
    /* Paths are appended to the base URL: drop a trailing slash. */
    n = strlen(ci->url);
    while (n > 0 && ci->url[n - 1] == '/')
        ci->url[--n] = '\0';
    *out = &is->base;
    return 0;
}
