/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch: folder change notification on the real event loop with real files,
 * publishing through duet_vol_publish as the agent does. Waits are bounded
 * and driven by duet_loop_run_once, never by sleeping.
 */
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "duet/clock.h"
#include "duet/err.h"
#include "duet/loop.h"
#include "duet/vol.h"
#include "duet/watch.h"
#include "testlib.h"

#define SETTLE_MS 40

struct fixture {
    char top[256];
    char dir[300];
    struct duet_loop *loop;
    struct duet_watch *w;
    int calls;
};

static void on_change(struct duet_watch *w, void *arg)
{
    struct fixture *f = arg;

    f->calls++;
}

static void publish(const char *dir, const char *tag)
{
    struct duet_vol_file files[3] = {
        {DUET_VOL_KEY, tag, strlen(tag), 0600},
        {DUET_VOL_CERT, tag, strlen(tag), 0644},
        {DUET_VOL_CA, tag, strlen(tag), 0644},
    };
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    if (duet_vol_publish(dir, files, 3, NULL, &eb) != 0)
        fail_msg("publish: %s", eb.msg);
}

/* Run the loop until f->calls reaches want or max_ms passes; returns the calls seen. */
static int run_until(struct fixture *f, int want, int64_t max_ms)
{
    int64_t end = duet_clock_mono_ms() + max_ms;

    while (f->calls < want) {
        int64_t left = end - duet_clock_mono_ms();

        if (left <= 0)
            break;
        assert_int_equal(duet_loop_run_once(f->loop, (int)left), 0);
    }
    return f->calls;
}

/* Run the loop for ms (to prove that nothing more happens). */
static void run_for(struct fixture *f, int64_t ms)
{
    run_until(f, 1 << 30, ms);
}

/* Publish and see exactly one more callback, and nothing more for quiet_ms after it. */
static void publish_expect_one(struct fixture *f, const char *tag, int64_t quiet_ms)
{
    int want = f->calls + 1;

    publish(f->dir, tag);
    assert_int_equal(run_until(f, want, 3000), want);
    run_for(f, quiet_ms);
    assert_int_equal(f->calls, want);
}

static void start(struct fixture *f, const char *sub)
{
    memset(f, 0, sizeof(*f));
    tl_tmpdir(f->top, sizeof(f->top));
    tl_path(f->dir, sizeof(f->dir), "%s/%s", f->top, sub);
    assert_int_equal(duet_loop_new(&f->loop), 0);
}

static void watch(struct fixture *f, const struct duet_watch_opts *opts)
{
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    if (duet_watch_new(f->loop, f->dir, opts, on_change, f, &f->w, &eb) != 0)
        fail_msg("watch: %s", eb.msg);
}

static void finish(struct fixture *f)
{
    duet_watch_free(f->w);
    duet_loop_free(f->loop);
    tl_rmrf(f->top);
}

static void watch__one_callback_per_publish(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = SETTLE_MS};
    struct fixture f;

    start(&f, "dev/productA");
    publish(f.dir, "A");
    watch(&f, &opts);
    assert_true(duet_watch_uses_inotify(f.w));
    run_for(&f, 3 * SETTLE_MS);
    assert_int_equal(f.calls, 0); /* watching is not a change */
    for (int i = 1; i <= 3; i++)
        publish_expect_one(&f, i % 2 ? "B" : "C", 3 * SETTLE_MS);
    finish(&f);
}

static void watch__no_callback_when_nothing_changes(void **state)
{
    static const char *const names[] = {DUET_VOL_KEY, DUET_VOL_CERT, DUET_VOL_CA};
    struct duet_watch_opts opts = {.settle_ms = SETTLE_MS, .poll_ms = 50};
    struct fixture f;
    char path[400];

    start(&f, "v");
    publish(f.dir, "A");
    watch(&f, &opts);
    for (int i = 0; i < 20; i++) { /* a reader's activity is no change */
        struct duet_vol_set set;
        struct duet_errbuf eb;

        assert_int_equal(duet_vol_read(f.dir, names, 3, 1024, &set, &eb), 0);
        duet_vol_set_clear(&set);
        free(tl_read_file(tl_path(path, sizeof(path), "%s/tls.crt", f.dir), NULL));
    }
    run_for(&f, 300); /* several polls and settle periods */
    assert_int_equal(f.calls, 0);
    finish(&f);
}

static void watch__folder_that_appears_later(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = SETTLE_MS};
    struct fixture f;

    start(&f, "a/b/c");
    watch(&f, &opts); /* top exists, a/b/c does not */
    assert_true(duet_watch_uses_inotify(f.w));
    run_for(&f, 2 * SETTLE_MS);
    assert_int_equal(f.calls, 0);
    publish_expect_one(&f, "A", 3 * SETTLE_MS); /* creates a, b and c at once */
    publish(f.dir, "B");                        /* and the watch is now on the folder itself */
    assert_int_equal(run_until(&f, 2, 3000), 2);
    finish(&f);
}

static void watch__folder_deleted_and_recreated(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = SETTLE_MS};
    struct fixture f;
    int n;

    start(&f, "vol");
    publish(f.dir, "A");
    watch(&f, &opts);
    tl_rmrf(f.dir);
    assert_int_equal(run_until(&f, 1, 3000), 1); /* gone is a change too */
    publish(f.dir, "B");
    assert_int_equal(run_until(&f, 2, 3000), 2);
    run_for(&f, 3 * SETTLE_MS);
    n = f.calls;
    publish(f.dir, "C"); /* re-armed on the new folder */
    assert_int_equal(run_until(&f, n + 1, 3000), n + 1);
    /* Deleted and re-created within one settle period: still noticed (new inode). */
    n = f.calls;
    tl_rmrf(f.dir);
    publish(f.dir, "C");
    assert_int_equal(run_until(&f, n + 1, 3000), n + 1);
    finish(&f);
}

static void watch__polling_mode_detects_change(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = 20, .poll_ms = 50, .no_inotify = true};
    struct fixture f;

    start(&f, "vol");
    publish(f.dir, "A");
    watch(&f, &opts);
    assert_false(duet_watch_uses_inotify(f.w));
    run_for(&f, 200);
    assert_int_equal(f.calls, 0);
    publish_expect_one(&f, "B", 200);
    finish(&f);
}

/* No inotify instance to be had (EMFILE, as when a node's pods use them all up): poll. */
static void watch__falls_back_to_polling_without_inotify(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = 20, .poll_ms = 50};
    struct rlimit old, low;
    struct fixture f;
    int lowest;

    start(&f, "vol");
    publish(f.dir, "A");
    lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)lowest; /* the next new fd is refused */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    watch(&f, &opts);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_false(duet_watch_uses_inotify(f.w));
    /* The starting signature was taken without fds too: one callback may correct it. */
    run_for(&f, 200);
    assert_true(f.calls <= 1);
    publish_expect_one(&f, "B", 200);
    finish(&f);
}

static void watch__plain_folder_rewritten_in_place(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = SETTLE_MS};
    struct fixture f;
    char path[400];

    start(&f, "plain");
    assert_int_equal(mkdir(f.dir, 0755), 0);
    tl_write_file(tl_path(path, sizeof(path), "%s/tls.crt", f.dir), "one", 3, 0644);
    watch(&f, &opts);
    tl_write_file(path, "two!", 4, 0644);
    assert_int_equal(run_until(&f, 1, 3000), 1);
    run_for(&f, 3 * SETTLE_MS);
    assert_int_equal(f.calls, 1);
    finish(&f);
}

/*
 * An edit inside the version folder makes no event on the watched folder:
 * only the safety-net poll can see it (as on file systems without inotify).
 */
static void watch__safety_poll_sees_what_inotify_missed(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = SETTLE_MS, .poll_ms = 100};
    struct fixture f;
    char ver[256], path[700];
    ssize_t n;

    start(&f, "vol");
    publish(f.dir, "A");
    n = readlink(tl_path(path, sizeof(path), "%s/..data", f.dir), ver, sizeof(ver) - 1);
    assert_true(n > 0);
    ver[n] = '\0';
    watch(&f, &opts);
    assert_true(duet_watch_uses_inotify(f.w));
    tl_write_file(tl_path(path, sizeof(path), "%s/%s/ca.crt", f.dir, ver), "AA", 2, 0644);
    assert_int_equal(run_until(&f, 1, 3000), 1);
    finish(&f);
}

static void free_in_callback(struct duet_watch *w, void *arg)
{
    struct fixture *f = arg;

    f->calls++;
    duet_watch_free(w);
    f->w = NULL;
}

static void watch__callback_may_free_the_watch(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = SETTLE_MS};
    struct fixture f;
    struct duet_errbuf eb;

    start(&f, "vol");
    publish(f.dir, "A");
    assert_int_equal(duet_watch_new(f.loop, f.dir, &opts, free_in_callback, &f, &f.w, &eb), 0);
    publish(f.dir, "B");
    assert_int_equal(run_until(&f, 1, 3000), 1);
    assert_null(f.w);
    run_for(&f, 2 * SETTLE_MS);
    finish(&f);
}

/*
 * Root reads every folder whatever its mode: switch off (or back on) the two
 * capabilities that let it, in the effective set only, so that a mode
 * refuses this process as it refuses a sidecar running as uid 65532.
 * Without them (not root) there is nothing to switch.
 */
static void dac_override(bool on)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    const uint32_t bits = 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH;

    assert_int_equal(syscall(SYS_capget, &h, d), 0);
    if (on)
        d[0].effective |= bits & d[0].permitted;
    else
        d[0].effective &= ~bits;
    assert_int_equal(syscall(SYS_capset, &h, d), 0);
}

static int dac_back_on(void **state)
{
    dac_override(true);
    return 0;
}

/*
 * The folder appears but does not let us in yet: the agent creates it 0700
 * and only then gives it its group and 0750; an operator may chmod it 000.
 * inotify_add_watch says EACCES then. Found by scripts/soak (folder faults):
 * the sidecar re-armed in that window and polled for the rest of its life.
 * The watch must stay on inotify, on the parent, and move down when the
 * folder opens up (an IN_ATTRIB on the parent). The hour-long poll makes
 * inotify the only way the callback can come.
 */
static void watch__folder_not_readable_yet(void **state)
{
    struct duet_watch_opts opts = {.settle_ms = SETTLE_MS, .poll_ms = 3600 * 1000};
    struct fixture f;

    start(&f, "vol");
    dac_override(false);
    watch(&f, &opts); /* vol does not exist: the watch is on top */
    assert_true(duet_watch_uses_inotify(f.w));
    assert_int_equal(mkdir(f.dir, 0), 0);
    run_for(&f, 3 * SETTLE_MS);
    assert_true(duet_watch_uses_inotify(f.w));
    assert_int_equal(f.calls, 0); /* nothing readable has changed */
    assert_int_equal(chmod(f.dir, 0700), 0);
    assert_int_equal(run_until(&f, 1, 3000), 1); /* it opened up */
    run_for(&f, 3 * SETTLE_MS);
    publish_expect_one(&f, "A", 3 * SETTLE_MS); /* and the watch is on the folder itself */
    /* Deleted, then back unreadable: the same again. */
    tl_rmrf(f.dir);
    assert_int_equal(run_until(&f, 2, 3000), 2);
    assert_int_equal(mkdir(f.dir, 0), 0);
    run_for(&f, 3 * SETTLE_MS);
    assert_true(duet_watch_uses_inotify(f.w));
    assert_int_equal(chmod(f.dir, 0700), 0);
    publish(f.dir, "B");
    assert_int_equal(run_until(&f, 3, 3000), 3);
    dac_override(true);
    finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(watch__one_callback_per_publish),
        cmocka_unit_test(watch__no_callback_when_nothing_changes),
        cmocka_unit_test(watch__folder_that_appears_later),
        cmocka_unit_test(watch__folder_deleted_and_recreated),
        cmocka_unit_test(watch__polling_mode_detects_change),
        cmocka_unit_test(watch__falls_back_to_polling_without_inotify),
        cmocka_unit_test(watch__plain_folder_rewritten_in_place),
        cmocka_unit_test(watch__safety_poll_sees_what_inotify_missed),
        cmocka_unit_test(watch__callback_may_free_the_watch),
        cmocka_unit_test_teardown(watch__folder_not_readable_yet, dac_back_on),
    };

    return cmocka_run_group_tests_name("watch", tests, NULL, NULL);
}
