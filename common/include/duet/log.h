/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One line per event on stderr:
 *   ts=2026-11-29T10:00:00.123Z level=warn subsys=tls conn=42 msg="bad chain"
 * The caller's format supplies everything after subsys=, as key=value pairs.
 * Never pass key material, passphrases or whole certificates: certificates
 * appear as serial, SHA-256 fingerprint and notAfter only.
 */
#ifndef DUET_LOG_H
#define DUET_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "duet/compiler.h"

enum duet_log_level {
    DUET_LOG_ERROR = 0,
    DUET_LOG_WARN,
    DUET_LOG_INFO,
    DUET_LOG_DEBUG,
};

/* "error", "warn", "info", "debug". Returns 0, or DUET_E_USAGE for anything else. */
int duet_log_parse_level(const char *s, enum duet_log_level *out) DUET_MUST_CHECK;
void duet_log_set_level(enum duet_log_level lvl);
enum duet_log_level duet_log_get_level(void);
/*
 * Apply DUET_LOG_LEVEL from the environment. A --log-level flag, applied
 * after this, wins. Returns DUET_E_USAGE for a bad value (level unchanged).
 */
int duet_log_init_from_env(void) DUET_MUST_CHECK;
/* Tests redirect output; NULL restores stderr. The stream is borrowed. */
void duet_log_set_stream(FILE *f);

static inline bool duet_log_enabled(enum duet_log_level lvl)
{
    return lvl <= duet_log_get_level();
}

void duet_log_write(enum duet_log_level lvl, const char *subsys, const char *fmt, ...)
    DUET_PRINTF(3, 4);

/* The level check is inline so a disabled debug line costs a compare. */
#define duet_log(lvl, subsys, ...)                                                                 \
    do {                                                                                           \
        if (duet_log_enabled(lvl))                                                                 \
            duet_log_write((lvl), (subsys), __VA_ARGS__);                                          \
    } while (0)

/*
 * Quote a value for a key=value line: wraps in double quotes and escapes
 * '"', '\\' and control characters, truncating to fit. Returns buf.
 */
const char *duet_log_quote(char *buf, size_t size, const char *s);

#endif
