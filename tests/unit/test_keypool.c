/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key pool (agent/src/keypool.c): it fills up with keys of each type,
 * never hands out the same key twice, refills after a take, tells types
 * apart, frees what it holds (LeakSanitizer checks) while its workers are
 * busy, and its workers run at a lower priority than the rest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <dirent.h>
#include <sys/resource.h>

#include "keypool.h"
#include "duet/alloc.h"
#include "duet/pki.h"

static void wait_ready(struct ag_keypool *p, size_t want)
{
    for (int i = 0; i < 1000 && ag_keypool_ready(p) < want; i++) {
        struct timespec ms10 = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ms10, NULL);
    }
    assert_true(ag_keypool_ready(p) >= want);
}

/* Public key PEM: two keys are the same key exactly when these are equal. */
static char *pub_of(const struct duet_key *k)
{
    char *pem = NULL;
    size_t len = 0;
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    assert_int_equal(duet_key_to_pem(k, NULL, &pem, &len, &eb), 0);
    return pem;
}

static void keypool__fills_and_never_repeats(void **state)
{
    const enum duet_key_type types[] = {DUET_KEY_EC_P256};
    struct ag_keypool *p = NULL;
    struct duet_errbuf eb;
    char *seen[12];

    duet_errbuf_clear(&eb);
    assert_int_equal(ag_keypool_new(types, 1, 4, 2, &p, &eb), 0);
    wait_ready(p, 4);
    assert_int_equal(ag_keypool_ready(p), 4); /* never more than asked */
    for (int i = 0; i < 12; i++) {
        struct duet_key *k = NULL;

        wait_ready(p, 1);
        k = ag_keypool_take(p, DUET_KEY_EC_P256);
        assert_non_null(k);
        seen[i] = pub_of(k);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
        duet_key_free(k);
    }
    /* A type the pool does not make: the caller generates in place. */
    assert_null(ag_keypool_take(p, DUET_KEY_RSA2048));
    ag_keypool_free(p);
    for (int i = 0; i < 12; i++)
        duet_secret_free(seen[i], strlen(seen[i]));
}

static void keypool__free_while_busy_and_null(void **state)
{
    const enum duet_key_type types[] = {DUET_KEY_EC_P256, DUET_KEY_EC_P384, DUET_KEY_EC_P256};
    struct ag_keypool *p = NULL;
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    assert_int_equal(ag_keypool_new(types, 3, 64, 2, &p, &eb), 0);
    ag_keypool_free(p); /* workers mid-generation: joined, keys freed */
    ag_keypool_free(NULL);
    assert_null(ag_keypool_take(NULL, DUET_KEY_EC_P256));
}

/* Threads of this process whose nice value is nice (from /proc: the kernel's view). */
static int threads_at_nice(long nice)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char path[300], buf[1024], *rp;
        FILE *f;
        long v = 0;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue; /* gone meanwhile */
        if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
            sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %ld",
                   &v) == 1 &&
            v == nice)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Refills yield to the threads a starting pod waits for. */
static void keypool__workers_run_niced(void **state)
{
    enum duet_key_type types[] = {DUET_KEY_EC_P256};
    struct ag_keypool *p = NULL;
    struct duet_errbuf eb;
    long mine = getpriority(PRIO_PROCESS, 0);

    (void)state;
    if (mine + 10 > 19)
        skip(); /* already niced so far that the workers cannot go 10 lower */
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_keypool_new(types, 1, 2, 3, &p, &eb), 0);
    wait_ready(p, 2); /* every worker has started by now, or soon */
    for (int i = 0; i < 100 && threads_at_nice(mine + 10) < 3; i++) {
        struct timespec ms10 = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ms10, NULL);
    }
    assert_int_equal(threads_at_nice(mine + 10), 3);
    assert_int_equal(getpriority(PRIO_PROCESS, 0), mine); /* the caller's thread unchanged */
    ag_keypool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keypool__fills_and_never_repeats),
        cmocka_unit_test(keypool__free_while_busy_and_null),
        cmocka_unit_test(keypool__workers_run_niced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
