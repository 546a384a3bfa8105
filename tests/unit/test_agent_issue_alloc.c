/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's issue path under allocation failure (label alloc-fail, curl's
 * torture mode): load a local CA, make an identity, issue and publish one
 * set, with the Nth project allocation failing, for every N the path makes.
 * Each run must fail cleanly (a negative code, no crash, no leak under
 * LeakSanitizer) and leave the output folder either without a set or with a
 * whole one. Runs only with DUET_TEST_ALLOC_FAIL=1; the unit label runs the
 * clean path once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "identity.h"
#include "issuer.h"
#include "testlib.h"
#include "tl_pki.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/pki.h"
#include "duet/vol.h"

struct rig {
    char dir[256], crt[300], key[300], out[300];
};

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    struct tl_ca ca;
    char *pem;
    size_t len;

    tl_tmpdir(r->dir, sizeof(r->dir));
    tl_ca_new(&ca, "Alloc Root CA");
    tl_write_file(tl_path(r->crt, sizeof(r->crt), "%s/ca.crt", r->dir), ca.pem, ca.pem_len, 0644);
    assert_int_equal(duet_key_to_pem(ca.key, NULL, &pem, &len, NULL), 0);
    tl_write_file(tl_path(r->key, sizeof(r->key), "%s/ca.key", r->dir), pem, len, 0600);
    duet_secret_free(pem, len + 1);
    tl_ca_free(&ca);
    tl_path(r->out, sizeof(r->out), "%s/out", r->dir);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;

    tl_rmrf(r->dir);
    free(r);
    return 0;
}

/* The whole path once; the first failing step's code, or 0. */
static int issue_once(const struct rig *r)
{
    struct duet_subject subj = {.o = (char *)"Example, Inc."};
    const struct ag_local_opts lo = {r->crt, r->key, NULL, NULL};
    struct ag_ident_params p = {
        .env = "dev",
        .product = "productA",
        .trust_domain = "example.org",
        .output_dir = r->out,
        .cn_template = "{env}.{product}.{env}",
        .subject = &subj,
        .key_type = DUET_KEY_EC_P256,
        .validity_ms = 3600 * 1000,
    };
    struct ag_policy pol = {.key_group = (gid_t)-1};
    struct ag_issuer *is = NULL;
    struct ag_ident *id = NULL;
    int rc;

    rc = ag_issuer_local_new(&lo, &is, NULL);
    if (rc == 0)
        rc = ag_ident_new(&p, &id, NULL);
    if (rc == 0)
        rc = ag_ident_issue(id, is, &pol, NULL);
    ag_ident_free(id);
    ag_issuer_free(is);
    return rc;
}

/* Either no set was published, or a whole one that reads back. */
static void assert_no_half_set(const struct rig *r)
{
    static const char *const names[] = {DUET_VOL_CERT, DUET_VOL_KEY, DUET_VOL_CA};
    struct duet_vol_set vs;
    char dir[400], data[420];
    int rc;

    tl_path(dir, sizeof(dir), "%s/dev/productA", r->out);
    if (access(tl_path(data, sizeof(data), "%s/..data", dir), F_OK) != 0)
        return;
    memset(&vs, 0, sizeof(vs));
    rc = duet_vol_read(dir, names, 3, 1 << 20, &vs, NULL);
    duet_vol_set_clear(&vs);
    assert_int_equal(rc, 0);
}

static void issue__clean_path_publishes(void **state)
{
    struct rig *r = *state;

    assert_int_equal(issue_once(r), 0);
    assert_no_half_set(r);
}

static void issue__alloc_fail_each_allocation(void **state)
{
    struct rig *r = *state;
    long n;

    (void)duet_alloc_fail_after(-1);
    assert_int_equal(issue_once(r), 0);
    n = duet_alloc_fail_after(-1);
    print_message("the issue path makes %ld allocations\n", n);
    assert_true(n > 10);
    for (long i = 0; i < n; i++) {
        int rc;

        tl_rmrf(r->out);
        (void)duet_alloc_fail_after(i);
        rc = issue_once(r);
        (void)duet_alloc_fail_after(-1);
        assert_true(rc <= 0);
        assert_no_half_set(r);
    }
}

int main(void)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test_setup_teardown(issue__clean_path_publishes, setup, teardown),
    };
    const struct CMUnitTest alloc_fail[] = {
        cmocka_unit_test_setup_teardown(issue__alloc_fail_each_allocation, setup, teardown),
    };

    if (getenv("DUET_TEST_ALLOC_FAIL"))
        return cmocka_run_group_tests(alloc_fail, NULL, NULL);
    return cmocka_run_group_tests(unit, NULL, NULL);
}
