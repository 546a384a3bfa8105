/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compiler helpers and the banned-function list. Include this after every
 * system header: the poison pragma rejects any later use of the names, which
 * is the point, but would also trip on a system header that mentions them.
 */
#ifndef DUET_COMPILER_H
#define DUET_COMPILER_H

#define DUET_MUST_CHECK __attribute__((warn_unused_result))
#define DUET_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define DUET_NORETURN __attribute__((noreturn))
#define DUET_UNUSED __attribute__((unused))
#define DUET_LIKELY(x) __builtin_expect(!!(x), 1)
#define DUET_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define DUET_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DUET_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DUET_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Unbounded or non-reentrant: use snprintf, memcpy with a length, strtol. */
#pragma GCC poison strcpy strcat vsprintf gets strtok atoi
/* glibc's _FORTIFY_SOURCE makes sprintf a macro under clang, and clang
 * refuses to poison a macro; the fortified one at least checks the size. */
#ifndef sprintf
#pragma GCC poison sprintf
#endif

#endif
