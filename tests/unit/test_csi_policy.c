/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSI mode's configuration ("csi" section, agent/src/config.c) and its
 * binding policy (agent/src/csi_policy.c): defaults, exact refusals naming
 * the field, and the decision for every kind of pod, default deny.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "csi_policy.h"
#include "grpc_server.h"
#include "duet/alloc.h"
#include "duet/err.h"

#define HEAD                                                                                       \
    "{\"env\":\"dev\",\"trust_domain\":\"example.org\","                                           \
    "\"issuer\":{\"type\":\"local\",\"ca_cert\":\"/c\",\"ca_key\":\"/k\"},"                        \
    "\"identities\":[{\"product\":\"productA\"},{\"product\":\"productB\"},"                       \
    "{\"product\":\"productC\"}],"

static const char good[] = HEAD
    "\"csi\":{\"node_id\":\"n1\",\"bindings\":["
    "{\"namespace\":\"duet-demo\",\"service_account\":\"client-a\",\"products\":[\"productA\"]},"
    "{\"namespace\":\"duet-demo\",\"service_account\":\"ops\","
    "\"products\":[\"productA\",\"productB\"]}]}}";

static struct ag_config *parse(const char *text, int want_rc, const char *want_msg)
{
    struct ag_config *c = NULL;
    struct duet_errbuf eb;
    int rc;

    duet_errbuf_clear(&eb);
    rc = ag_config_parse(text, strlen(text), &c, &eb);
    if (rc != want_rc)
        fail_msg("rc %d (%s), want %d", rc, eb.msg, want_rc);
    if (want_msg && !strstr(eb.msg, want_msg))
        fail_msg("message \"%s\" lacks \"%s\"", eb.msg, want_msg);
    return c;
}

static void csi_config__defaults(void **state)
{
    struct ag_config *c = parse(good, 0, NULL);

    assert_non_null(c->csi);
    assert_null(c->output_dir); /* not needed in CSI mode */
    assert_string_equal(c->csi->driver, "duet.example.org");
    assert_string_equal(c->csi->endpoint, "/var/lib/kubelet/plugins/duet.example.org/csi.sock");
    assert_string_equal(c->csi->registration_dir, "/var/lib/kubelet/plugins_registry");
    assert_string_equal(c->csi->state_dir, "/var/lib/duet/csi");
    assert_string_equal(c->csi->pods_dir, "/var/lib/kubelet/pods");
    assert_string_equal(c->csi->node_id, "n1");
    assert_int_equal(c->csi->max_volumes, 512);
    assert_int_equal(c->csi->key_pool, 110);
    assert_int_equal(c->csi->n_bindings, 2);
    ag_config_free(c);
}

static void csi_config__refuses_with_the_field(void **state)
{
    static const struct {
        const char *text;
        int rc;
        const char *msg;
    } bad[] = {
        {HEAD "\"csi\":{\"bindings\":[{\"namespace\":\"duet-demo\",\"service_account\":\"a\","
              "\"products\":[\"productZ\"]}]}}",
         DUET_E_CFG_RANGE, "csi.bindings[0].products[0]: \"productZ\" is not a product"},
        {HEAD "\"csi\":{\"bindings\":[{\"namespace\":\"Duet\",\"service_account\":\"a\","
              "\"products\":[\"productA\"]}]}}",
         DUET_E_CFG_RANGE, "csi.bindings[0].namespace"},
        {HEAD "\"csi\":{\"bindings\":[{\"namespace\":\"d\",\"service_account\":\"a\","
              "\"products\":[\"productA\"]},{\"namespace\":\"d\",\"service_account\":\"a\","
              "\"products\":[\"productB\"]}]}}",
         DUET_E_CFG_RANGE, "csi.bindings[1]: d/a is already bound"},
        {HEAD "\"csi\":{\"bindings\":[{\"namespace\":\"d\",\"service_account\":\"a\","
              "\"products\":[]}]}}",
         DUET_E_CFG_RANGE, "csi.bindings[0].products"},
        {HEAD "\"csi\":{\"state_dir\":\"relative\"}}", DUET_E_CFG_RANGE, "csi.state_dir"},
        {HEAD "\"csi\":{\"bogus\":1}}", DUET_E_CFG_UNKNOWN, "csi.bogus"},
        {HEAD "\"csi\":[]}", DUET_E_CFG_TYPE, "csi: expected an object"},
        {HEAD "\"csi\":{\"max_volumes\":0}}", DUET_E_CFG_RANGE, "csi.max_volumes"},
        {HEAD "\"status_listen\":\"127.0.0.1:1\"}", DUET_E_CFG_MISSING, "output_dir"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(parse(bad[i].text, bad[i].rc, bad[i].msg));
}

static void csi_decide__default_deny_and_exact_names(void **state)
{
    struct ag_config *c = parse(good, 0, NULL);
    const char *p;
    char why[256];

    assert_int_equal(ag_csi_decide(c, "duet-demo", "client-a", NULL, &p, why, sizeof(why)), 0);
    assert_string_equal(p, "productA");
    assert_int_equal(ag_csi_decide(c, "duet-demo", "client-a", "productA", &p, why, sizeof(why)),
                     0);
    /* C's pod asking for A's identity. */
    assert_int_equal(ag_csi_decide(c, "duet-demo", "client-c", "productA", &p, why, sizeof(why)),
                     AG_GRPC_PERMISSION_DENIED);
    assert_null(p);
    assert_non_null(strstr(why, "duet-demo/client-c"));
    assert_non_null(strstr(why, "productA"));
    /* A bound ServiceAccount asking for a product it does not hold. */
    assert_int_equal(ag_csi_decide(c, "duet-demo", "client-a", "productB", &p, why, sizeof(why)),
                     AG_GRPC_PERMISSION_DENIED);
    /* The same name in another namespace is another ServiceAccount; no prefix matches. */
    assert_int_equal(ag_csi_decide(c, "other", "client-a", NULL, &p, why, sizeof(why)),
                     AG_GRPC_PERMISSION_DENIED);
    assert_int_equal(ag_csi_decide(c, "duet-demo", "client-a2", NULL, &p, why, sizeof(why)),
                     AG_GRPC_PERMISSION_DENIED);
    assert_int_equal(ag_csi_decide(c, "duet-demo", "client", NULL, &p, why, sizeof(why)),
                     AG_GRPC_PERMISSION_DENIED);
    /* Several products: the volume must name one. */
    assert_int_equal(ag_csi_decide(c, "duet-demo", "ops", NULL, &p, why, sizeof(why)),
                     AG_GRPC_INVALID_ARGUMENT);
    assert_int_equal(ag_csi_decide(c, "duet-demo", "ops", "productB", &p, why, sizeof(why)), 0);
    assert_string_equal(p, "productB");
    assert_int_equal(ag_csi_decide(c, "duet-demo", "ops", "productC", &p, why, sizeof(why)),
                     AG_GRPC_PERMISSION_DENIED);
    ag_config_free(c);
}

static void csi_decide__no_bindings_refuses_everyone(void **state)
{
    struct ag_config *c = parse(HEAD "\"csi\":{\"node_id\":\"n\"}}", 0, NULL);
    const char *p;
    char why[256];

    assert_int_equal(ag_csi_decide(c, "duet-demo", "client-a", NULL, &p, why, sizeof(why)),
                     AG_GRPC_PERMISSION_DENIED);
    ag_config_free(c);
}

static void csi_config__survives_every_allocation_failure(void **state)
{
    long n;

    duet_alloc_fail_after(-1);
    ag_config_free(parse(good, 0, NULL));
    n = duet_alloc_fail_after(-1);
    for (long i = 0; i < n; i++) {
        struct ag_config *c = NULL;
        struct duet_errbuf eb;
        int rc;

        duet_errbuf_clear(&eb);
        duet_alloc_fail_after(i);
        rc = ag_config_parse(good, strlen(good), &c, &eb);
        duet_alloc_fail_after(-1);
        assert_true(rc == 0 || rc == DUET_ENOMEM);
        ag_config_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csi_config__defaults),
        cmocka_unit_test(csi_config__refuses_with_the_field),
        cmocka_unit_test(csi_decide__default_deny_and_exact_names),
        cmocka_unit_test(csi_decide__no_bindings_refuses_everyone),
        cmocka_unit_test(csi_config__survives_every_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
