/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Renewals off the loop (agent/src/renew.c), with the local issuer behind a
 * gate the test opens: the CA's answer comes on a worker thread and is
 * published on the loop; a failed attempt's key is the retry's; an identity
 * freed while its renewal runs (a reload, an unpublish) is freed when the
 * renewal ends and nothing is written; a queue freed meanwhile abandons the
 * request and answers nothing. LeakSanitizer checks that every key,
 * snapshot and identity is freed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "identity.h"
#include "issuer.h"
#include "renew.h"
#include "testlib.h"
#include "tl_pki.h"
#include "workq.h"

#include "duet/alloc.h"
#include "duet/clock.h"
#include "duet/loop.h"

/* The gate: 0 closed, 1 open (sign), 2 open (refuse). */
static atomic_int gate;
static atomic_bool signed_off_loop;
static pthread_t loop_thread;

/* An issuer that holds each request at the gate, then lets the local issuer answer. */
struct gated {
    struct ag_issuer base; /* first */
    struct ag_issuer *inner;
};

struct gated_snap {
    struct ag_ca_snap base; /* first */
    struct ag_ca_snap *inner;
};

static int gated_sign(const struct ag_ca_snap *s, const struct ag_issue_req *req,
                      struct ag_issue_result *out, struct duet_errbuf *eb)
{
    const struct gated_snap *g = (const struct gated_snap *)s;
    int64_t t0 = duet_clock_mono_ms();

    atomic_store(&signed_off_loop, !pthread_equal(pthread_self(), loop_thread));
    while (atomic_load(&gate) == 0) {
        if (req->abandon && atomic_load(req->abandon))
            return duet_errf(eb, DUET_E_ISSUER, "gated: abandoned");
        if (duet_clock_mono_ms() - t0 > 10000)
            return duet_errf(eb, DUET_E_ISSUER, "gated: never opened");
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    if (atomic_load(&gate) == 2)
        return duet_errf(eb, DUET_E_ISSUER, "gated: refused");
    return ag_ca_snap_sign(g->inner, req, out, eb);
}

static void gated_snap_destroy(struct ag_ca_snap *s)
{
    ag_ca_snap_put(((struct gated_snap *)s)->inner);
    free(s);
}

static int gated_snapshot(struct ag_issuer *is, struct ag_ca_snap **out, struct duet_errbuf *eb)
{
    struct gated_snap *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    assert_int_equal(
        ((struct gated *)is)->inner->ops->snapshot(((struct gated *)is)->inner, &s->inner, eb), 0);
    s->base.refs = 1;
    s->base.sign = gated_sign;
    s->base.destroy = gated_snap_destroy;
    *out = &s->base;
    return 0;
}

static int gated_bundle(struct ag_issuer *is, struct duet_chain **out, struct duet_errbuf *eb)
{
    struct ag_issuer *in = ((struct gated *)is)->inner;

    return in->ops->bundle(in, out, eb);
}

static void gated_free(struct ag_issuer *is)
{
}

static const struct ag_issuer_ops gated_ops = {
    .name = "gated",
    .bundle = gated_bundle,
    .snapshot = gated_snapshot,
    .free = gated_free,
};

struct fx {
    char dir[256], out[300];
    struct duet_loop *loop;
    struct ag_workq *q;
    struct gated is;
    struct ag_ident *id;
    struct ag_policy pol;
    struct duet_subject subj;
    /* What came back */
    int answers, rc;
    const struct duet_key *got_key;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char crt[300], key[300];
    struct tl_ca ca;
    char *pem = NULL;
    size_t len = 0;

    tl_tmpdir(f->dir, sizeof(f->dir));
    tl_ca_new(&ca, "Renew Test Root");
    tl_write_file(tl_path(crt, sizeof(crt), "%s/ca.crt", f->dir), ca.pem, ca.pem_len, 0644);
    assert_int_equal(duet_key_to_pem(ca.key, NULL, &pem, &len, NULL), 0);
    tl_write_file(tl_path(key, sizeof(key), "%s/ca.key", f->dir), pem, len, 0600);
    duet_secret_free(pem, len);
    tl_ca_free(&ca);
    const struct ag_local_opts lo = {crt, key, NULL, NULL};
    assert_int_equal(ag_issuer_local_new(&lo, &f->is.inner, NULL), 0);
    f->is.base.ops = &gated_ops;
    f->is.base.uri_sans = true;
    f->is.base.exact_lifetime = true;
    f->subj.o = duet_strdup("Example, Inc.");
    const struct ag_ident_params p = {
        .env = "dev",
        .product = "productA",
        .trust_domain = "example.org",
        .output_dir = tl_path(f->out, sizeof(f->out), "%s/out", f->dir),
        .cn_template = "{env}.{product}.{env}",
        .subject = &f->subj,
        .key_type = DUET_KEY_EC_P256,
        .validity_ms = 3600 * 1000,
    };
    assert_int_equal(ag_ident_new(&p, &f->id, NULL), 0);
    f->pol.key_group = (gid_t)-1;
    assert_int_equal(duet_loop_new(&f->loop), 0);
    assert_int_equal(ag_workq_new(f->loop, 2, &f->q, NULL), 0);
    loop_thread = pthread_self();
    atomic_store(&gate, 0);
    atomic_store(&signed_off_loop, false);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    atomic_store(&gate, 1);
    ag_workq_free(f->q);
    duet_loop_free(f->loop);
    ag_ident_free(f->id);
    ag_issuer_free(f->is.inner);
    duet_subject_clear(&f->subj);
    tl_rmrf(f->dir);
    free(f);
    return 0;
}

/* run.c's part: publish, or keep the key for the retry. */
static void on_done(void *arg, struct ag_ident *id, struct ag_issued *got, int rc,
                    struct duet_errbuf *eb, int64_t t0, const char *issuer)
{
    struct fx *f = arg;

    assert_ptr_equal(id, f->id);
    assert_false(id->renewing);
    f->got_key = got->key;
    if (rc == 0)
        rc = ag_ident_install(id, got, issuer, &f->pol, t0, eb);
    if (rc < 0) {
        id->pending_key = got->key;
        got->key = NULL;
    }
    f->rc = rc;
    f->answers++;
}

static void start(struct fx *f)
{
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    if (ag_renew_start(f->q, f->id, &f->is.base, NULL, on_done, f, &eb) < 0)
        fail_msg("ag_renew_start: %s", eb.msg);
}

/* Turn the loop until the queue has handed every job back (10 s at most). */
static void drain(struct fx *f)
{
    int64_t t0 = duet_clock_mono_ms();

    while (ag_workq_pending(f->q) > 0 && duet_clock_mono_ms() - t0 < 10000)
        assert_true(duet_loop_run_once(f->loop, 50) >= 0);
    assert_int_equal(ag_workq_pending(f->q), 0);
}

static bool published(const struct fx *f)
{
    char p[400];
    struct stat st;

    return stat(tl_path(p, sizeof(p), "%s/dev/productA/tls.crt", f->out), &st) == 0;
}

static void renew__answer_on_a_thread_set_on_the_loop(void **state)
{
    struct fx *f = *state;
    struct duet_errbuf eb;

    start(f);
    assert_true(f->id->renewing);
    /* The loop is free while the CA has not answered. */
    for (int i = 0; i < 5; i++)
        assert_true(duet_loop_run_once(f->loop, 20) >= 0);
    assert_int_equal(f->answers, 0);
    assert_false(published(f));
    atomic_store(&gate, 1);
    drain(f);
    assert_true(atomic_load(&signed_off_loop));
    assert_int_equal(f->answers, 1);
    assert_int_equal(f->rc, 0);
    assert_false(f->id->renewing);
    assert_int_equal(f->id->renewals, 1);
    duet_errbuf_clear(&eb);
    f->id->sig_valid = false;
    if (ag_ident_check_disk(f->id, &f->is.base, &f->pol, &eb) != 0)
        fail_msg("the renewed set does not check: %s", eb.msg);
}

static void renew__refused_attempt_keeps_its_key_for_the_retry(void **state)
{
    struct fx *f = *state;
    const struct duet_key *first;

    atomic_store(&gate, 2);
    start(f);
    drain(f);
    assert_int_equal(f->answers, 1);
    assert_int_equal(f->rc, DUET_E_ISSUER);
    first = f->id->pending_key;
    assert_non_null(first);
    assert_false(published(f));
    atomic_store(&gate, 1);
    start(f);
    assert_null(f->id->pending_key); /* the renewal holds it now */
    drain(f);
    assert_int_equal(f->answers, 2);
    assert_int_equal(f->rc, 0);
    assert_ptr_equal(f->got_key, first); /* the same key, certified this time */
    assert_true(published(f));
}

static void renew__freed_identity_waits_for_its_renewal(void **state)
{
    struct fx *f = *state;

    start(f);
    /* A reload or an unpublish frees the identity: the thread still reads it. */
    ag_ident_free(f->id);
    assert_true(f->id->orphaned);
    f->id = NULL;
    atomic_store(&gate, 1);
    drain(f); /* the renewal ends: the identity is freed (LeakSanitizer), nothing answered */
    assert_int_equal(f->answers, 0);
    assert_false(published(f));
}

static void renew__freed_queue_abandons_and_answers_nothing(void **state)
{
    struct fx *f = *state;
    int64_t t0;

    start(f);
    nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL); /* at the gate */
    t0 = duet_clock_mono_ms();
    ag_workq_free(f->q); /* the agent stops */
    f->q = NULL;
    assert_true(duet_clock_mono_ms() - t0 < 1000);
    assert_int_equal(f->answers, 0);
    assert_false(f->id->renewing);
    assert_false(published(f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(renew__answer_on_a_thread_set_on_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(renew__refused_attempt_keeps_its_key_for_the_retry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(renew__freed_identity_waits_for_its_renewal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(renew__freed_queue_abandons_and_answers_nothing, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
