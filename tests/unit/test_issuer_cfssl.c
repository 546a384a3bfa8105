/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the CFSSL issuer makes of a reply (agent/src/issuer_cfssl_int.h):
 * the certificate of a successful envelope, CFSSL's error code and message
 * with the HTTP status, a plain-text 404, a success without certificate, a
 * certificate too close to its end, and /info's expiry. The HTTP side is
 * covered by tests/integration/test_agent_cfssl.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "issuer_cfssl_int.h"
#include "tl_pki.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/pki.h"

#define NOW 1796083200

/* {"success":true,"result":{"certificate":PEM},"errors":[],"messages":[]}, owned by the caller. */
static char *envelope_with(const char *pem)
{
    cJSON *j = cJSON_CreateObject(), *res = cJSON_AddObjectToObject(j, "result");
    char *out;

    cJSON_AddTrueToObject(j, "success");
    cJSON_AddStringToObject(res, "certificate", pem);
    cJSON_AddArrayToObject(j, "errors");
    cJSON_AddArrayToObject(j, "messages");
    out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    assert_non_null(out);
    return out;
}

static struct tl_ca ca;

static int make_ca(void **state)
{
    (void)state;
    tl_ca_new(&ca, "Unit CFSSL CA");
    return 0;
}

static int free_ca(void **state)
{
    (void)state;
    tl_ca_free(&ca);
    return 0;
}

/*
 * The reply to a sign request for a leaf valid from not_before (NOW minus
 * CFSSL's backdating, say) for `validity` seconds: its code, with *info and
 * the message in *eb; the chain is checked and freed here.
 */
static int reply_for(int64_t not_before, int64_t validity, struct duet_cert_info *info,
                     struct duet_errbuf *eb)
{
    struct duet_chain *chain = NULL;
    struct tl_pem p;
    char *body;
    int rc;

    tl_pem_issue(&ca, DUET_PROFILE_CLIENT, "dev.productA.dev", not_before, validity, &p);
    body = envelope_with(p.cert);
    rc = ag_cfssl_sign_reply(body, 200, "sign", NOW, &chain, info, eb);
    /* A chain exactly when the reply is accepted. */
    assert_int_equal(duet_chain_len(chain), rc == 0 ? 1 : 0);
    duet_chain_free(chain);
    cJSON_free(body);
    tl_pem_free(&p);
    return rc;
}

static void cfssl_sign_reply__takes_the_certificate(void **state)
{
    struct duet_cert_info info;
    struct duet_errbuf eb = {{0}};

    (void)state;
    assert_int_equal(reply_for(NOW - 300, 86400, &info, &eb), 0);
    assert_string_equal(info.cn, "dev.productA.dev");
    assert_int_equal(info.not_after, NOW - 300 + 86400);
}

static void cfssl_sign_reply__refuses_a_nearly_expired_certificate(void **state)
{
    struct duet_cert_info info;
    struct duet_errbuf eb = {{0}};

    (void)state;
    /* CFSSL's 20 s profile: notAfter counted from a notBefore 5 min back. */
    assert_int_equal(reply_for(NOW - 300, 20, &info, &eb), DUET_E_EXPIRED);
    assert_int_equal(info.not_after, NOW - 280);
    assert_non_null(strstr(eb.msg, info.serial));
    assert_int_equal(reply_for(NOW - 300, 300 + AG_CFSSL_MIN_USABLE_S - 1, &info, &eb),
                     DUET_E_EXPIRED);
    assert_int_equal(reply_for(NOW - 300, 300 + AG_CFSSL_MIN_USABLE_S, &info, &eb), 0);
}

static void cfssl_sign_reply__reports_what_cfssl_said(void **state)
{
    static const struct {
        long status;
        const char *body, *want[3];
    } cases[] = {
        {400,
         "{\"success\":false,\"result\":null,\"errors\":[{\"code\":9002,\"message\":\"CSR "
         "Decode failed\"}],\"messages\":[]}",
         {"HTTP 400", "error code 9002", "CSR Decode failed"}},
        {404, "404 page not found\n", {"HTTP 404", "endpoint missing", "authsign"}},
        {200, "<html>surprise</html>", {"HTTP 200", "not a CFSSL JSON envelope", "authsign"}},
        {200,
         "{\"success\":true,\"result\":{},\"errors\":[]}",
         {"HTTP 200", "without result.certificate", "authsign"}},
        {200,
         "{\"success\":true,\"result\":{\"certificate\":\"no PEM here\"}}",
         {"cfssl reply", "", ""}},
        /* success without a 200 is not a success */
        {502,
         "{\"success\":true,\"result\":{\"certificate\":\"x\"}}",
         {"HTTP 502", "(no message)", ""}},
        {400,
         "{\"success\":false,\"errors\":[{\"code\":\"9002\",\"message\":7}]}",
         {"error code 0", "(no message)", ""}},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct duet_cert_info info;
        struct duet_chain *chain = NULL;
        struct duet_errbuf eb = {{0}};

        assert_int_equal(ag_cfssl_sign_reply(cases[i].body, cases[i].status, "authsign", NOW,
                                             &chain, &info, &eb),
                         DUET_E_ISSUER);
        assert_null(chain);
        for (size_t w = 0; w < 3; w++) {
            if (!strstr(eb.msg, cases[i].want[w]))
                fail_msg("case %zu: \"%s\" lacks \"%s\"", i, eb.msg, cases[i].want[w]);
        }
    }
}

static void cfssl_info_reply__reads_the_expiry(void **state)
{
    struct duet_errbuf eb = {{0}};
    char expiry[16];

    (void)state;
    assert_int_equal(ag_cfssl_info_reply("{\"success\":true,\"result\":{\"certificate\":\"\","
                                         "\"usages\":[\"signing\"],\"expiry\":\"8760h\"}}",
                                         200, expiry, sizeof(expiry), &eb),
                     0);
    assert_string_equal(expiry, "8760h");
    /* No expiry, or too long for the buffer: "?", or cut, never overrun. */
    assert_int_equal(
        ag_cfssl_info_reply("{\"success\":true,\"result\":null}", 200, expiry, sizeof(expiry), &eb),
        0);
    assert_string_equal(expiry, "?");
    assert_int_equal(ag_cfssl_info_reply("{\"success\":true,\"result\":{\"expiry\":"
                                         "\"0123456789abcdefghij\"}}",
                                         200, expiry, sizeof(expiry), &eb),
                     0);
    assert_string_equal(expiry, "0123456789abcde");
    assert_int_equal(ag_cfssl_info_reply("{\"success\":false,\"errors\":[{\"code\":400,"
                                         "\"message\":\"unexpected end of JSON input\"}]}",
                                         400, expiry, sizeof(expiry), &eb),
                     DUET_E_ISSUER);
    assert_string_equal(expiry, "?");
    assert_non_null(strstr(eb.msg, "cfssl info: HTTP 400, error code 400"));
    /* cfssl_ready asks without wanting the expiry. */
    assert_int_equal(ag_cfssl_info_reply("{\"success\":true}", 200, NULL, 0, &eb), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cfssl_sign_reply__takes_the_certificate),
        cmocka_unit_test(cfssl_sign_reply__refuses_a_nearly_expired_certificate),
        cmocka_unit_test(cfssl_sign_reply__reports_what_cfssl_said),
        cmocka_unit_test(cfssl_info_reply__reads_the_expiry),
    };
    return cmocka_run_group_tests(tests, make_ca, free_ca);
}
