/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small table-driven binder from JSON (cJSON) to typed C structs. A table
 * lists the keys an object may have: the member they land in (offset), the
 * type, bounds, default and whether they are required. Binding refuses
 * unknown and duplicate keys and wrong types, and every message starts with
 * the full path of the field: `issuer.ca_key: expected a string`,
 * `identities[1].key_type: unknown key type "rsa999"`,
 * `validity: malformed duration "12x"`.
 *
 * Ownership: strings and arrays are allocated with duet_malloc and owned by
 * the bound struct; duet_cfg_deinit() walks the same table and frees them.
 * Cross-field rules (this key only with that one) are the caller's, after
 * binding: the table only knows one field at a time.
 */
#ifndef DUET_CFG_H
#define DUET_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet/compiler.h"
#include "duet/err.h"

struct cJSON;

enum duet_cfg_type {
    DUET_CFG_STRING = 1, /* char *, owned; min/max bound the length when max > 0 */
    DUET_CFG_INT,        /* int64_t; whole JSON numbers only; bounds when min < max */
    DUET_CFG_BOOL,       /* bool */
    DUET_CFG_DURATION,   /* int64_t ms from "90s"/"365d" (duet/duration.h); bounds as INT */
    DUET_CFG_OBJECT,     /* a struct embedded at offset, bound with `sub` */
    DUET_CFG_OBJECTS,    /* array of `sub` structs: pointer at offset, size_t at count_offset */
    DUET_CFG_STRINGS,    /* array of char *: char ** at offset, size_t at count_offset */
    DUET_CFG_CUSTOM,     /* parse/release callbacks own the member */
};

#define DUET_CFG_REQUIRED 0x1u

/*
 * A custom member parser. v is the JSON value (for a default, a cJSON string
 * holding `def`); field points at the member. It writes its own message,
 * starting with `path`, into eb. It must leave the member releasable by
 * `release` even on failure.
 */
typedef int duet_cfg_parse_cb(const struct cJSON *v, void *field, const char *path,
                              struct duet_errbuf *eb);
typedef void duet_cfg_release_cb(void *field);

struct duet_cfg_table;

struct duet_cfg_field {
    const char *name; /* the JSON key */
    enum duet_cfg_type type;
    size_t offset;
    unsigned flags;
    int64_t min, max; /* see the types; arrays: item count when max > 0 */
    const char *def;  /* STRING, DURATION, CUSTOM default (NULL: none) */
    int64_t def_int;  /* INT and BOOL default; not range-checked (may be a sentinel) */
    const struct duet_cfg_table *sub; /* OBJECT, OBJECTS */
    size_t count_offset;              /* OBJECTS, STRINGS */
    duet_cfg_parse_cb *parse;         /* CUSTOM */
    duet_cfg_release_cb *release;     /* CUSTOM; NULL if nothing to free */
};

struct duet_cfg_table {
    const struct duet_cfg_field *fields;
    size_t n;
    size_t size; /* sizeof the struct this table binds */
};

#define DUET_CFG_TABLE(type, fields)                                                               \
    {                                                                                              \
        (fields), DUET_ARRAY_SIZE(fields), sizeof(type)                                            \
    }

/*
 * Bind JSON object `json` into `obj` (sizeof == t->size), which is zeroed
 * first. Absent keys take their defaults. On failure everything allocated is
 * released again (obj is left zeroed) and eb holds one message naming the
 * field; codes DUET_E_CFG_TYPE, _UNKNOWN, _MISSING, _RANGE, DUET_E_DURATION,
 * DUET_ENOMEM, or what a custom parser returned.
 */
int duet_cfg_bind(const struct cJSON *json, const struct duet_cfg_table *t, void *obj,
                  struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Parse JSON text (len bytes, NUL not required) and bind it. DUET_E_CFG_PARSE gives line:column. */
int duet_cfg_load_string(const char *text, size_t len, const struct duet_cfg_table *t, void *obj,
                         struct duet_errbuf *eb) DUET_MUST_CHECK;
/*
 * Read `path` (at most max_size bytes, else DUET_E_TOOBIG) and bind it.
 * Every message starts with the file name: "/etc/duet/agent.json:3:7:
 * malformed JSON" or "/etc/duet/agent.json: issuer.ca_key: expected a string".
 */
int duet_cfg_load_file(const char *path, size_t max_size, const struct duet_cfg_table *t, void *obj,
                       struct duet_errbuf *eb) DUET_MUST_CHECK;
/* Free what binding allocated in obj and zero it. Safe on a zeroed or failed obj. */
void duet_cfg_deinit(const struct duet_cfg_table *t, void *obj);

#endif
