/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON to struct binding, driven by the field tables of duet/cfg.h. cJSON
 * parses; this file walks the parsed tree once per table, so every key is
 * checked against exactly one declaration. Invariant while binding: every
 * member of the target is either zero or owned, so a failure anywhere is
 * undone by duet_cfg_deinit() on the whole struct.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "duet/alloc.h"
#include "duet/cfg.h"
#include "duet/duration.h"
#include "duet/err.h"
#include "duet/file.h"

#define PATH_MAX_LEN 256

static void *member(void *obj, size_t offset)
{
    return (char *)obj + offset;
}

/*
 * path + ".key" (or just "key" at the top). Keys come from the input, so
 * control characters become '?' to keep messages on one line; long paths
 * are cut, they only have to point the reader at the right place.
 */
static void path_join(char *out, const char *path, const char *key)
{
    size_t n = (size_t)snprintf(out, PATH_MAX_LEN, "%s%s", path, *path ? "." : "");

    for (const char *k = key; *k && n + 1 < PATH_MAX_LEN; k++)
        out[n++] = (unsigned char)*k < 0x20 || *k == 0x7f ? '?' : *k;
    out[DUET_MIN(n, PATH_MAX_LEN - 1)] = '\0';
}

static const char *where(const char *path)
{
    return *path ? path : "configuration";
}

static int type_err(struct duet_errbuf *eb, const char *path, const char *what)
{
    return duet_errf(eb, DUET_E_CFG_TYPE, "%s: expected %s", where(path), what);
}

static int bind_object(const cJSON *json, const struct duet_cfg_table *t, void *obj,
                       const char *path, struct duet_errbuf *eb);

/* min/max bound the length when max > 0 (array items: unbounded, min/max count items). */
static int bind_string(const cJSON *v, int64_t min, int64_t max, char **dst, const char *path,
                       struct duet_errbuf *eb)
{
    size_t len;

    if (!cJSON_IsString(v) || !v->valuestring)
        return type_err(eb, path, "a string");
    len = strlen(v->valuestring);
    if (max > 0 && (len < (size_t)min || len > (size_t)max)) {
        if (len == 0)
            return duet_errf(eb, DUET_E_CFG_RANGE, "%s: must not be empty", path);
        return duet_errf(eb, DUET_E_CFG_RANGE, "%s: length %zu not in [%lld, %lld]", path, len,
                         (long long)min, (long long)max);
    }
    *dst = duet_strdup(v->valuestring);
    return *dst ? 0 : duet_errf(eb, DUET_ENOMEM, "%s: out of memory", path);
}

static bool bounded(const struct duet_cfg_field *f)
{
    return f->min < f->max;
}

static int bind_int(const struct duet_cfg_field *f, const cJSON *v, int64_t *dst, const char *path,
                    struct duet_errbuf *eb)
{
    double d;

    if (!cJSON_IsNumber(v))
        return type_err(eb, path, "an integer");
    d = v->valuedouble;
    /* 2^63 itself is not an int64; doubles beyond 2^53 are still whole numbers. */
    if (!isfinite(d) || d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return type_err(eb, path, "an integer");
    if (bounded(f) && (d < (double)f->min || d > (double)f->max))
        return duet_errf(eb, DUET_E_CFG_RANGE, "%s: %.0f not in [%lld, %lld]", path, d,
                         (long long)f->min, (long long)f->max);
    *dst = (int64_t)d;
    return 0;
}

static int check_duration(const struct duet_cfg_field *f, int64_t ms, const char *path,
                          struct duet_errbuf *eb)
{
    char a[32], b[32], c[32];

    if (!bounded(f) || (ms >= f->min && ms <= f->max))
        return 0;
    return duet_errf(eb, DUET_E_CFG_RANGE, "%s: %s not in [%s, %s]", path,
                     duet_duration_format(ms, a, sizeof(a)),
                     duet_duration_format(f->min, b, sizeof(b)),
                     duet_duration_format(f->max, c, sizeof(c)));
}

static int bind_duration(const struct duet_cfg_field *f, const cJSON *v, int64_t *dst,
                         const char *path, struct duet_errbuf *eb)
{
    int64_t ms;

    if (!cJSON_IsString(v) || !v->valuestring)
        return type_err(eb, path, "a duration string such as \"90s\" or \"365d\"");
    if (duet_duration_parse(v->valuestring, &ms) < 0) {
        char shown[64];

        /* Quote at most a prefix: the value is input and may be huge. */
        snprintf(shown, sizeof(shown), "%s", v->valuestring);
        return duet_errf(eb, DUET_E_DURATION, "%s: malformed duration \"%s\"", path, shown);
    }
    DUET_TRY(check_duration(f, ms, path, eb));
    *dst = ms;
    return 0;
}

static int check_count(const struct duet_cfg_field *f, size_t n, const char *path,
                       struct duet_errbuf *eb)
{
    if (n < (size_t)f->min)
        return duet_errf(eb, DUET_E_CFG_RANGE, "%s: needs at least %lld item%s", path,
                         (long long)f->min, f->min == 1 ? "" : "s");
    if (f->max > 0 && n > (size_t)f->max)
        return duet_errf(eb, DUET_E_CFG_RANGE, "%s: at most %lld items", path, (long long)f->max);
    return 0;
}

/*
 * Arrays: the storage and its count are set before the items are bound, so
 * that a failure on item i leaves items 0..i-1 (and i, partly) owned by the
 * struct and released by duet_cfg_deinit().
 */
static int bind_array(const struct duet_cfg_field *f, const cJSON *v, void *obj, const char *path,
                      struct duet_errbuf *eb)
{
    size_t n = 0, elem = f->type == DUET_CFG_OBJECTS ? f->sub->size : sizeof(char *);
    size_t i = 0;
    char ipath[PATH_MAX_LEN + 24];
    const cJSON *it;
    void *items;

    if (!cJSON_IsArray(v))
        return type_err(eb, path, "an array");
    cJSON_ArrayForEach(it, v) n++;
    DUET_TRY(check_count(f, n, path, eb));
    if (n == 0)
        return 0;
    items = duet_calloc(n, elem);
    if (!items)
        return duet_errf(eb, DUET_ENOMEM, "%s: out of memory", path);
    *(void **)member(obj, f->offset) = items;
    *(size_t *)member(obj, f->count_offset) = n;
    cJSON_ArrayForEach(it, v)
    {
        void *dst = (char *)items + i * elem;

        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (f->type == DUET_CFG_OBJECTS)
            DUET_TRY(bind_object(it, f->sub, dst, ipath, eb));
        else
            DUET_TRY(bind_string(it, 0, 0, dst, ipath, eb));
        i++;
    }
    return 0;
}

static int bind_value(const struct duet_cfg_field *f, const cJSON *v, void *obj, const char *path,
                      struct duet_errbuf *eb)
{
    void *dst = member(obj, f->offset);

    switch (f->type) {
    case DUET_CFG_STRING:
        return bind_string(v, f->min, f->max, dst, path, eb);
    case DUET_CFG_INT:
        return bind_int(f, v, dst, path, eb);
    case DUET_CFG_BOOL:
        if (!cJSON_IsBool(v))
            return type_err(eb, path, "true or false");
        *(bool *)dst = cJSON_IsTrue(v);
        return 0;
    case DUET_CFG_DURATION:
        return bind_duration(f, v, dst, path, eb);
    case DUET_CFG_OBJECT:
        return bind_object(v, f->sub, dst, path, eb);
    case DUET_CFG_OBJECTS:
    case DUET_CFG_STRINGS:
        return bind_array(f, v, obj, path, eb);
    case DUET_CFG_CUSTOM:
        return f->parse(v, dst, path, eb);
    }
    DUET_BUG_ON("unknown field type");
    return DUET_E_INTERNAL;
}

/* A JSON string holding `s` that lives on the stack: defaults go through the same code. */
static cJSON fake_string(const char *s)
{
    cJSON c;

    memset(&c, 0, sizeof(c));
    c.type = cJSON_String;
    c.valuestring = (char *)s; /* cJSON's field is not const; nobody writes through it */
    return c;
}

static int bind_default(const struct duet_cfg_field *f, void *obj, const char *path,
                        struct duet_errbuf *eb)
{
    void *dst = member(obj, f->offset);
    cJSON s = fake_string(f->def ? f->def : "");
    cJSON empty;

    if (f->flags & DUET_CFG_REQUIRED)
        return duet_errf(eb, DUET_E_CFG_MISSING, "%s: missing required key", path);
    switch (f->type) {
    case DUET_CFG_INT:
        *(int64_t *)dst = f->def_int;
        return 0;
    case DUET_CFG_BOOL:
        *(bool *)dst = f->def_int != 0;
        return 0;
    case DUET_CFG_OBJECT:
        /* An absent object is an empty one: its own defaults and required keys apply. */
        memset(&empty, 0, sizeof(empty));
        empty.type = cJSON_Object;
        return bind_object(&empty, f->sub, dst, path, eb);
    case DUET_CFG_OBJECTS:
    case DUET_CFG_STRINGS:
        return 0;
    case DUET_CFG_STRING:
    case DUET_CFG_DURATION:
    case DUET_CFG_CUSTOM:
        if (!f->def)
            return 0;
        return bind_value(f, &s, obj, path, eb);
    }
    DUET_BUG_ON("unknown field type");
    return DUET_E_INTERNAL;
}

static const struct duet_cfg_field *find_field(const struct duet_cfg_table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->fields[i].name, key) == 0)
            return &t->fields[i];
    return NULL;
}

/* Unknown keys first, in document order, so the message points at the first stray. */
static int check_keys(const cJSON *json, const struct duet_cfg_table *t, const char *path,
                      struct duet_errbuf *eb)
{
    char kpath[PATH_MAX_LEN];

    for (const cJSON *c = json->child; c; c = c->next) {
        if (find_field(t, c->string))
            continue;
        path_join(kpath, path, c->string);
        return duet_errf(eb, DUET_E_CFG_UNKNOWN, "%s: unknown key", kpath);
    }
    return 0;
}

/* The one child named f->name; a second one is refused rather than silently ignored. */
static int lookup(const cJSON *json, const struct duet_cfg_field *f, const char *path,
                  const cJSON **out, struct duet_errbuf *eb)
{
    *out = NULL;
    for (const cJSON *c = json->child; c; c = c->next) {
        if (strcmp(c->string, f->name) != 0)
            continue;
        if (*out)
            return duet_errf(eb, DUET_E_CFG_PARSE, "%s: duplicate key", path);
        *out = c;
    }
    return 0;
}

static int bind_object(const cJSON *json, const struct duet_cfg_table *t, void *obj,
                       const char *path, struct duet_errbuf *eb)
{
    if (!cJSON_IsObject(json))
        return type_err(eb, path, "an object");
    DUET_TRY(check_keys(json, t, path, eb));
    for (size_t i = 0; i < t->n; i++) {
        const struct duet_cfg_field *f = &t->fields[i];
        char fpath[PATH_MAX_LEN];
        const cJSON *v;

        path_join(fpath, path, f->name);
        DUET_TRY(lookup(json, f, fpath, &v, eb));
        if (v)
            DUET_TRY(bind_value(f, v, obj, fpath, eb));
        else
            DUET_TRY(bind_default(f, obj, fpath, eb));
    }
    return 0;
}

int duet_cfg_bind(const cJSON *json, const struct duet_cfg_table *t, void *obj,
                  struct duet_errbuf *eb)
{
    int rc;

    memset(obj, 0, t->size);
    rc = bind_object(json, t, obj, "", eb);
    if (rc < 0)
        duet_cfg_deinit(t, obj);
    return rc;
}

static void release_array(const struct duet_cfg_field *f, void *obj)
{
    void **items = member(obj, f->offset);
    size_t n = *(size_t *)member(obj, f->count_offset);

    for (size_t i = 0; *items && i < n; i++) {
        if (f->type == DUET_CFG_OBJECTS)
            duet_cfg_deinit(f->sub, (char *)*items + i * f->sub->size);
        else
            duet_free(((char **)*items)[i]);
    }
    DUET_FREE(*items);
    *(size_t *)member(obj, f->count_offset) = 0;
}

void duet_cfg_deinit(const struct duet_cfg_table *t, void *obj)
{
    if (!obj)
        return;
    for (size_t i = 0; i < t->n; i++) {
        const struct duet_cfg_field *f = &t->fields[i];
        void *dst = member(obj, f->offset);

        switch (f->type) {
        case DUET_CFG_STRING:
            DUET_FREE(*(char **)dst);
            break;
        case DUET_CFG_OBJECT:
            duet_cfg_deinit(f->sub, dst);
            break;
        case DUET_CFG_OBJECTS:
        case DUET_CFG_STRINGS:
            release_array(f, obj);
            break;
        case DUET_CFG_CUSTOM:
            if (f->release)
                f->release(dst);
            break;
        case DUET_CFG_INT:
        case DUET_CFG_BOOL:
        case DUET_CFG_DURATION:
            break;
        }
    }
    memset(obj, 0, t->size);
}

/* 1-based line and column of `at` in text, for parse errors a person can find. */
static void position(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int parse_err(const char *text, size_t len, const char *at, const char *what,
                     struct duet_errbuf *eb)
{
    int line, col;

    if (!at || at < text || at > text + len)
        at = text + len;
    position(text, at, &line, &col);
    return duet_errf(eb, DUET_E_CFG_PARSE, "line %d column %d: %s", line, col, what);
}

/*
 * The escape \u0000 inside a JSON string: cJSON decodes it to a NUL and
 * every C consumer then sees the value cut there ("a\u0000b" became "a").
 * Returns where it starts, or NULL. Strings are tracked so that an escaped
 * backslash followed by "u0000" is not taken for one.
 */
static const char *find_nul_escape(const char *text, size_t len)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        if (text[i] == '"') {
            in_string = !in_string;
        } else if (in_string && text[i] == '\\' && i + 1 < len) {
            if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0)
                return text + i;
            i++; /* the escaped character, whatever it is */
        }
    }
    return NULL;
}

int duet_cfg_load_string(const char *text, size_t len, const struct duet_cfg_table *t, void *obj,
                         struct duet_errbuf *eb)
{
    const char *end = NULL;
    cJSON *json;
    int rc;

    memset(obj, 0, t->size);
    /* cJSON stops at a NUL inside strings: refuse it instead of binding a cut value. */
    end = memchr(text, '\0', len);
    if (end)
        return parse_err(text, len, end, "NUL byte in configuration", eb);
    end = find_nul_escape(text, len);
    if (end)
        return parse_err(text, len, end, "\\u0000 (NUL) in a string is not allowed", eb);
    json = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!json)
        return parse_err(text, len, end, "malformed JSON", eb);
    while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end < text + len) {
        cJSON_Delete(json);
        return parse_err(text, len, end, "unexpected data after the JSON value", eb);
    }
    rc = duet_cfg_bind(json, t, obj, eb);
    cJSON_Delete(json);
    return rc;
}

int duet_cfg_load_file(const char *path, size_t max_size, const struct duet_cfg_table *t, void *obj,
                       struct duet_errbuf *eb)
{
    struct duet_errbuf inner;
    char *text = NULL;
    size_t len = 0;
    int rc;

    memset(obj, 0, t->size);
    rc = duet_file_read(path, max_size, &text, &len);
    if (rc == DUET_E_TOOBIG)
        return duet_errf(eb, rc, "%s: larger than %zu bytes", path, max_size);
    if (rc == DUET_EINVAL)
        return duet_errf(eb, rc, "%s: not a regular file", path);
    if (rc < 0)
        return duet_errf(eb, rc, "%s: %s", path, duet_strerror(rc));
    duet_errbuf_clear(&inner);
    rc = duet_cfg_load_string(text, len, t, obj, &inner);
    duet_file_free(text, len);
    if (rc < 0)
        return duet_errf(eb, rc, "%s: %s", path, inner.msg);
    return 0;
}
