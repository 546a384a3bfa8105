/* SPDX-License-Identifier: Apache-2.0 */
/* Counting allocator wrappers with fault injection; see alloc.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duet/alloc.h"

/* Per thread: each sidecar worker runs its own loop, and a test arms the
 * counter for the thread it drives. */
static _Thread_local long fail_after = -1;
static _Thread_local long count;

static int should_fail(void)
{
    count++;
    if (fail_after < 0)
        return 0;
    if (fail_after == 0)
        return 1;
    fail_after--;
    return 0;
}

long duet_alloc_fail_after(long n)
{
    long c = count;

    fail_after = n;
    count = 0;
    return c;
}

void *duet_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *duet_calloc(size_t nmemb, size_t size)
{
    return should_fail() ? NULL : calloc(nmemb, size);
}

void *duet_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

char *duet_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = duet_malloc(len + 1);

    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *duet_strdup(const char *s)
{
    return duet_strndup(s, strlen(s));
}

char *duet_strdupf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (s = duet_malloc((size_t)n + 1)) == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void duet_free(void *p)
{
    free(p);
}
