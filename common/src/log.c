/* SPDX-License-Identifier: Apache-2.0 */
/*
 * key=value logging to stderr. Each line is formatted into one buffer and
 * written with a single write(2), so lines from several threads or processes
 * sharing stderr do not interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "duet/err.h"
#include "duet/log.h"

static enum duet_log_level level = DUET_LOG_INFO;
static FILE *stream;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int duet_log_parse_level(const char *s, enum duet_log_level *out)
{
    for (size_t i = 0; i < DUET_ARRAY_SIZE(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum duet_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = DUET_LOG_WARN;
        return 0;
    }
    return DUET_E_USAGE;
}

void duet_log_set_level(enum duet_log_level lvl)
{
    level = lvl;
}

enum duet_log_level duet_log_get_level(void)
{
    return level;
}

int duet_log_init_from_env(void)
{
    const char *v = getenv("DUET_LOG_LEVEL");
    enum duet_log_level lvl;

    if (!v || !*v)
        return 0;
    if (duet_log_parse_level(v, &lvl) < 0)
        return DUET_E_USAGE;
    level = lvl;
    return 0;
}

void duet_log_set_stream(FILE *f)
{
    stream = f;
}

void duet_log_write(enum duet_log_level lvl, const char *subsys, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int w;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    w = snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s subsys=%s ", ts.tv_nsec / 1000000,
                 level_names[lvl], subsys);
    n += (size_t)w;
    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (w < 0)
        w = 0;
    n += DUET_MIN((size_t)w, sizeof(line) - n - 2);
    line[n++] = '\n';
    if (stream) {
        fwrite(line, 1, n, stream);
        fflush(stream);
        return;
    }
    /* A short write to stderr loses the tail of one line; nothing to retry for. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

const char *duet_log_quote(char *buf, size_t size, const char *s)
{
    size_t o = 0;

    if (size < 3) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; s && *s && o + 3 < size; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            if (o + 4 >= size)
                break;
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[o++] = '?';
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
