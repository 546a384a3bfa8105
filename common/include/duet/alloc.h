/* SPDX-License-Identifier: Apache-2.0 */
/*
 * All project allocation goes through these, so tests can make the Nth call
 * fail (curl's torture mode). BoringSSL, cJSON and libcurl allocate on their
 * own and are not counted.
 */
#ifndef DUET_ALLOC_H
#define DUET_ALLOC_H

#include <stddef.h>

#include "duet/compiler.h"

void *duet_malloc(size_t n) DUET_MUST_CHECK;
void *duet_calloc(size_t nmemb, size_t size) DUET_MUST_CHECK;
void *duet_realloc(void *p, size_t n) DUET_MUST_CHECK;
char *duet_strdup(const char *s) DUET_MUST_CHECK;
char *duet_strndup(const char *s, size_t n) DUET_MUST_CHECK;
/* A new string formatted like printf; NULL when out of memory. */
char *duet_strdupf(const char *fmt, ...) DUET_PRINTF(1, 2) DUET_MUST_CHECK;
void duet_free(void *p);

/* Free and reset the pointer, so no reachable pointer points at freed memory. */
#define DUET_FREE(p)                                                                               \
    do {                                                                                           \
        duet_free(p);                                                                              \
        (p) = NULL;                                                                                \
    } while (0)

/*
 * Fault injection: after `n` more successful allocations every allocation
 * fails (n < 0 disables). Returns the number of allocations made since the
 * last call, so a test can first count, then fail each one in turn.
 */
long duet_alloc_fail_after(long n);

#endif
