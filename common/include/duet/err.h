/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error codes. Functions return 0 (or a count) on success and a negative code
 * on failure. System errors are negated errno values (DUET_EAGAIN == -EAGAIN),
 * so a syscall failure passes up unchanged; project codes sit below -4000 and
 * never collide with errno. Codes are never renumbered or reused: retire one
 * by leaving its line in place.
 *
 * Each module owns a block of numbers so that work on two modules never
 * touches the same line: core -40xx, pki -41xx, config -42xx, volume and
 * watch -43xx, sidecar -44xx, agent and issuers -45xx.
 *
 * Callers decide on the class (duet_err_class), not on individual codes.
 */
#ifndef DUET_ERR_H
#define DUET_ERR_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>

#include "duet/compiler.h"

enum duet_err_class {
    DUET_ERRC_NONE = 0,
    DUET_ERRC_AGAIN,    /* retry later: would block, interrupted */
    DUET_ERRC_CLOSED,   /* the peer or stream ended */
    DUET_ERRC_IO,       /* the system refused: file, socket, permission */
    DUET_ERRC_PROTO,    /* the input or the peer is malformed or refused */
    DUET_ERRC_CONFIG,   /* bad usage or configuration: exit status 2 */
    DUET_ERRC_INTERNAL, /* a bug or an exhausted resource */
};

#define DUET_EAGAIN (-EAGAIN)
#define DUET_EINTR (-EINTR)
#define DUET_ENOMEM (-ENOMEM)
#define DUET_ENOENT (-ENOENT)
#define DUET_EEXIST (-EEXIST)
#define DUET_EINVAL (-EINVAL)

/* X(name, value, class, message) */
#define DUET_ERRORS(X)                                                                             \
    /* core -40xx */                                                                               \
    X(DUET_EOF, -4001, CLOSED, "end of stream")                                                    \
    X(DUET_E_INTERNAL, -4002, INTERNAL, "internal error")                                          \
    X(DUET_E_USAGE, -4003, CONFIG, "bad usage")                                                    \
    X(DUET_E_TOOBIG, -4004, PROTO, "input exceeds its size limit")                                 \
    X(DUET_E_TIMEOUT, -4005, IO, "timed out")                                                      \
    /* pki -41xx */                                                                                \
    X(DUET_E_PEM, -4101, PROTO, "malformed or unreadable PEM")                                     \
    X(DUET_E_PASSPHRASE, -4102, PROTO, "wrong or missing passphrase")                              \
    X(DUET_E_KEY_MISMATCH, -4103, PROTO, "key does not match certificate")                         \
    X(DUET_E_NOT_CA, -4104, PROTO, "certificate is not a CA")                                      \
    X(DUET_E_VERIFY, -4105, PROTO, "certificate verification failed")                              \
    X(DUET_E_CRYPTO, -4106, INTERNAL, "crypto library failure")                                    \
    X(DUET_E_EXPIRED, -4107, PROTO, "certificate expired or not yet valid")                        \
    X(DUET_E_KEY_TYPE, -4108, CONFIG, "unknown or unsupported key type")                           \
    X(DUET_E_SUBJECT, -4109, CONFIG, "malformed subject")                                          \
    X(DUET_E_CSR, -4110, PROTO, "malformed or badly signed CSR")                                   \
    /* pki: add new codes above this line */                                                       \
    /* config -42xx */                                                                             \
    X(DUET_E_CFG_PARSE, -4201, CONFIG, "malformed JSON")                                           \
    X(DUET_E_CFG_TYPE, -4202, CONFIG, "wrong type")                                                \
    X(DUET_E_CFG_UNKNOWN, -4203, CONFIG, "unknown key")                                            \
    X(DUET_E_CFG_MISSING, -4204, CONFIG, "missing required key")                                   \
    X(DUET_E_CFG_RANGE, -4205, CONFIG, "value out of range")                                       \
    X(DUET_E_DURATION, -4206, CONFIG, "malformed duration")                                        \
    /* config: add new codes above this line */                                                    \
    /* volume and watch -43xx */                                                                   \
    X(DUET_E_VOL_LAYOUT, -4301, PROTO, "folder is not a Secret-volume layout")                     \
    X(DUET_E_VOL_UNSAFE, -4302, PROTO, "symlink, foreign owner or wrong mode in volume")           \
    /* volume: add new codes above this line */                                                    \
    /* sidecar -44xx */                                                                            \
    X(DUET_E_TLS, -4401, PROTO, "TLS failure")                                                     \
    /* sidecar: add new codes above this line */                                                   \
    /* agent and issuers -45xx */                                                                  \
    X(DUET_E_ISSUER, -4501, IO, "issuer refused or failed")                                        \
    X(DUET_E_ISSUER_FILES, -4502, CONFIG, "issuer files missing or unusable")                      \
    /* agent: add new codes above this line */

enum duet_err {
#define DUET_ERR_ENUM(name, value, cls, msg) name = (value),
    DUET_ERRORS(DUET_ERR_ENUM)
#undef DUET_ERR_ENUM
};

/* Human text for any code, errno or project; never NULL. */
const char *duet_strerror(int code);
/* Symbolic name ("DUET_E_PEM", "ENOENT"); never NULL. */
const char *duet_err_name(int code);
enum duet_err_class duet_err_class(int code);
/* Exit status for a failing command: 2 for CONFIG class, 1 otherwise. */
int duet_err_exit_status(int code);

/*
 * A message buffer that low layers fill and the layer that acts on the
 * failure logs, once. Always NUL-terminated; the first message set wins so
 * that the innermost, most precise cause survives (set it, then return).
 */
struct duet_errbuf {
    char msg[512];
};

void duet_errbuf_clear(struct duet_errbuf *eb);
/* eb may be NULL. Returns code, so callers can `return duet_errf(eb, rc, ...)`. */
int duet_errf(struct duet_errbuf *eb, int code, const char *fmt, ...) DUET_PRINTF(3, 4);
/* Append the BoringSSL error queue (and clear it) to eb's message. */
void duet_errbuf_add_ssl(struct duet_errbuf *eb);

#define DUET_TRY(expr)                                                                             \
    do {                                                                                           \
        int duet_try_rc_ = (expr);                                                                 \
        if (duet_try_rc_ < 0)                                                                      \
            return duet_try_rc_;                                                                   \
    } while (0)

#define DUET_TRY_GOTO(expr, rc, label)                                                             \
    do {                                                                                           \
        (rc) = (expr);                                                                             \
        if ((rc) < 0)                                                                              \
            goto label;                                                                            \
    } while (0)

#define DUET_ENSURE(cond, code)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return (code);                                                                         \
    } while (0)

DUET_NORETURN void duet__bug(const char *file, int line, const char *cond);
#define DUET_BUG_ON(cond)                                                                          \
    do {                                                                                           \
        if (DUET_UNLIKELY(cond))                                                                   \
            duet__bug(__FILE__, __LINE__, #cond);                                                  \
    } while (0)

#endif
