/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error names, messages and classes, generated from the one list in err.h,
 * and the errbuf that carries a precise message up to the layer that logs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "duet/err.h"

const char *duet_strerror(int code)
{
    switch (code) {
#define DUET_ERR_MSG(name, value, cls, msg)                                                        \
    case name:                                                                                     \
        return msg;
        DUET_ERRORS(DUET_ERR_MSG)
#undef DUET_ERR_MSG
    default:
        break;
    }
    if (code < 0 && code > -4000)
        return strerror(-code);
    return code == 0 ? "success" : "unknown error";
}

const char *duet_err_name(int code)
{
    switch (code) {
#define DUET_ERR_NAME(name, value, cls, msg)                                                       \
    case name:                                                                                     \
        return #name;
        DUET_ERRORS(DUET_ERR_NAME)
#undef DUET_ERR_NAME
    default:
        break;
    }
    if (code < 0 && code > -4000) {
        const char *n = strerrorname_np(-code);
        return n ? n : "EUNKNOWN";
    }
    return code == 0 ? "OK" : "EUNKNOWN";
}

enum duet_err_class duet_err_class(int code)
{
    switch (code) {
#define DUET_ERR_CLASS(name, value, cls, msg)                                                      \
    case name:                                                                                     \
        return DUET_ERRC_##cls;
        DUET_ERRORS(DUET_ERR_CLASS)
#undef DUET_ERR_CLASS
    case 0:
        return DUET_ERRC_NONE;
    case DUET_EAGAIN:
    case DUET_EINTR:
        return DUET_ERRC_AGAIN;
    case -EPIPE:
    case -ECONNRESET:
        return DUET_ERRC_CLOSED;
    case DUET_ENOMEM:
        return DUET_ERRC_INTERNAL;
    default:
        return code > 0 ? DUET_ERRC_NONE : DUET_ERRC_IO;
    }
}

int duet_err_exit_status(int code)
{
    if (code >= 0)
        return 0;
    return duet_err_class(code) == DUET_ERRC_CONFIG ? 2 : 1;
}

void duet_errbuf_clear(struct duet_errbuf *eb)
{
    if (eb)
        eb->msg[0] = '\0';
}

int duet_errf(struct duet_errbuf *eb, int code, const char *fmt, ...)
{
    va_list ap;

    if (!eb || eb->msg[0] != '\0')
        return code;
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
    va_end(ap);
    return code;
}

void duet_errbuf_add_ssl(struct duet_errbuf *eb)
{
    unsigned long e;
    size_t len;

    while ((e = ERR_get_error()) != 0) {
        if (!eb)
            continue;
        len = strlen(eb->msg);
        if (len + 4 >= sizeof(eb->msg))
            continue;
        snprintf(eb->msg + len, sizeof(eb->msg) - len, "%s%s", len ? ": " : "",
                 ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown");
    }
}

void duet__bug(const char *file, int line, const char *cond)
{
    fprintf(stderr, "level=error subsys=bug at=%s:%d cond=\"%s\"\n", file, line, cond);
    abort();
}
