/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The work queue (agent/src/workq.c): every job runs on a worker thread and
 * comes back once on the loop thread, jobs run in parallel, and freeing the
 * queue with jobs queued, running and finished hands each back exactly once,
 * cancelled (LeakSanitizer checks the jobs' memory).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "workq.h"
#include "duet/alloc.h"
#include "duet/loop.h"

struct job {
    struct ag_work w;
    pthread_t ran_on;
    int sleep_ms;
    int done_calls;
    bool cancelled;
    int *returned; /* counts the jobs handed back */
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void job_run(struct ag_work *w)
{
    struct job *j = (struct job *)w;

    j->ran_on = pthread_self();
    sleep_ms(j->sleep_ms);
}

static void job_done(struct ag_work *w, bool cancelled)
{
    struct job *j = (struct job *)w;

    j->done_calls++;
    j->cancelled = cancelled;
    (*j->returned)++;
}

static void init_job(struct job *j, int ms, int *returned)
{
    *j =
        (struct job){.w = {.run = job_run, .done = job_done}, .sleep_ms = ms, .returned = returned};
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void workq__runs_off_the_loop_and_in_parallel(void **state)
{
    struct duet_loop *loop = NULL;
    struct ag_workq *q = NULL;
    struct duet_errbuf eb;
    struct job jobs[4];
    int returned = 0;
    int64_t t0;

    duet_errbuf_clear(&eb);
    assert_int_equal(duet_loop_new(&loop), 0);
    assert_int_equal(ag_workq_new(loop, 2, &q, &eb), 0);
    t0 = mono_ms();
    for (int i = 0; i < 4; i++) {
        init_job(&jobs[i], 200, &returned);
        ag_workq_submit(q, &jobs[i].w);
    }
    assert_int_equal(ag_workq_pending(q), 4);
    while (returned < 4 && mono_ms() - t0 < 10000)
        assert_true(duet_loop_run_once(loop, 100) >= 0);
    assert_int_equal(returned, 4);
    assert_int_equal(ag_workq_pending(q), 0);
    /* 4 x 200 ms on two threads: about 400 ms, well under the serial 800. */
    assert_true(mono_ms() - t0 < 750);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].done_calls, 1);
        assert_false(jobs[i].cancelled);
        assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
    }
    ag_workq_free(q);
    duet_loop_free(loop);
}

/* Jobs the loop never collected, one running, some never started: each handed back once. */
static void workq__free_hands_back_everything_once(void **state)
{
    struct duet_loop *loop = NULL;
    struct ag_workq *q = NULL;
    struct duet_errbuf eb;
    struct job *jobs[6];
    int returned = 0;

    duet_errbuf_clear(&eb);
    assert_int_equal(duet_loop_new(&loop), 0);
    assert_int_equal(ag_workq_new(loop, 1, &q, &eb), 0);
    for (int i = 0; i < 6; i++) {
        jobs[i] = duet_malloc(sizeof(*jobs[i]));
        assert_non_null(jobs[i]);
        init_job(jobs[i], i == 1 ? 300 : 0, &returned);
        ag_workq_submit(q, &jobs[i]->w);
    }
    sleep_ms(100); /* job 0 finished (not collected), job 1 running, 2-5 queued */
    ag_workq_free(q);
    assert_int_equal(returned, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(jobs[i]->done_calls, 1);
        assert_true(jobs[i]->cancelled);
        duet_free(jobs[i]);
    }
    duet_loop_free(loop);
}

/* A done() that submits again (a retry) is fine. */
static int resubmits;
static struct ag_workq *resubmit_q;

static void resubmit_done(struct ag_work *w, bool cancelled)
{
    struct job *j = (struct job *)w;

    (*j->returned)++;
    if (!cancelled && resubmits++ < 3)
        ag_workq_submit(resubmit_q, w);
}

static void workq__done_may_submit(void **state)
{
    struct duet_loop *loop = NULL;
    struct duet_errbuf eb;
    struct job j;
    int returned = 0;
    int64_t t0 = mono_ms();

    duet_errbuf_clear(&eb);
    assert_int_equal(duet_loop_new(&loop), 0);
    assert_int_equal(ag_workq_new(loop, 2, &resubmit_q, &eb), 0);
    init_job(&j, 0, &returned);
    j.w.done = resubmit_done;
    ag_workq_submit(resubmit_q, &j.w);
    while (returned < 4 && mono_ms() - t0 < 10000)
        assert_true(duet_loop_run_once(loop, 100) >= 0);
    assert_int_equal(returned, 4);
    assert_int_equal(ag_workq_pending(resubmit_q), 0);
    ag_workq_free(resubmit_q);
    duet_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(workq__runs_off_the_loop_and_in_parallel),
        cmocka_unit_test(workq__free_hands_back_everything_once),
        cmocka_unit_test(workq__done_may_submit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
