/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's configuration (agent/src/config.c) over the generic binder
 * (common/src/cfg.c): the DESIGN.md example, defaults, one exact message per
 * kind of mistake (path of the field included), file errors, and every
 * allocation failing in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "duet/alloc.h"
#include "duet/cfg.h"
#include "duet/err.h"
#include "testlib.h"

#define DAY (24LL * 3600 * 1000)

/* DESIGN.md "duet-agent", verbatim. */
static const char design_example[] =
    "{\n"
    "  \"env\": \"dev\",\n"
    "  \"trust_domain\": \"example.org\",\n"
    "  \"output_dir\": \"/var/lib/duet\",\n"
    "  \"subject\": {\"C\": \"LK\", \"ST\": \"WP\", \"O\": \"Example, Inc.\"},\n"
    "  \"cn_template\": \"{env}.{product}.{env}\",\n"
    "  \"key_type\": \"rsa2048\",\n"
    "  \"validity\": \"365d\",\n"
    "  \"renew_before\": \"122d\",\n"
    "  \"issuer\": {\"type\": \"local\", \"ca_cert\": \"/etc/duet/ca/ca.crt\",\n"
    "             \"ca_key\": \"/etc/duet/ca/ca.key\",\n"
    "             \"ca_key_passphrase_file\": \"/etc/duet/ca/passphrase\"},\n"
    "  \"identities\": [{\"product\": \"productA\"}, {\"product\": \"productB\", \"key_type\": "
    "\"ec-p256\"}],\n"
    "  \"key_group\": 65532,\n"
    "  \"status_listen\": \"127.0.0.1:9090\"\n"
    "}\n";

static const char *tmp_config(char *dir, size_t dsize, char *path, size_t psize, const char *text)
{
    tl_tmpdir(dir, dsize);
    tl_path(path, psize, "%s/agent.json", dir);
    tl_write_file(path, text, strlen(text), 0644);
    return path;
}

static void config_load__design_example_has_every_value(void **state)
{
    char dir[256], path[300];
    struct ag_config *c;
    struct duet_errbuf eb;

    tmp_config(dir, sizeof(dir), path, sizeof(path), design_example);
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(path, &c, &eb), 0);
    assert_string_equal(c->env, "dev");
    assert_string_equal(c->trust_domain, "example.org");
    assert_string_equal(c->output_dir, "/var/lib/duet");
    assert_string_equal(c->subject.c, "LK");
    assert_string_equal(c->subject.st, "WP");
    assert_string_equal(c->subject.o, "Example, Inc.");
    assert_null(c->subject.l);
    assert_null(c->subject.ou);
    assert_null(c->subject.email);
    assert_null(c->subject.cn);
    assert_string_equal(c->cn_template, "{env}.{product}.{env}");
    assert_int_equal(c->key_type, DUET_KEY_RSA2048);
    assert_int_equal(c->validity, 365 * DAY);
    assert_int_equal(c->renew_before, 122 * DAY);
    assert_int_equal(c->issuer.type, AG_ISSUER_LOCAL);
    assert_string_equal(c->issuer.ca_cert, "/etc/duet/ca/ca.crt");
    assert_string_equal(c->issuer.ca_key, "/etc/duet/ca/ca.key");
    assert_string_equal(c->issuer.ca_key_passphrase_file, "/etc/duet/ca/passphrase");
    assert_string_equal(c->issuer.ca_bundle, "/etc/duet/ca/ca.crt"); /* defaults to ca_cert */
    assert_null(c->issuer.url);
    assert_int_equal(c->n_identities, 2);
    assert_string_equal(c->identities[0].product, "productA");
    assert_int_equal(c->identities[0].key_type, DUET_KEY_RSA2048); /* inherited */
    assert_int_equal(c->identities[0].validity, 365 * DAY);
    assert_false(c->identities[0].server);
    assert_int_equal(c->identities[0].n_dns, 0);
    assert_string_equal(c->identities[1].product, "productB");
    assert_int_equal(c->identities[1].key_type, DUET_KEY_EC_P256);
    assert_int_equal(c->key_group, 65532);
    assert_string_equal(c->status_listen, "127.0.0.1:9090");
    assert_null(c->log_level);
    ag_config_free(c);
    tl_rmrf(dir);
}

static struct ag_config *parse_ok(const char *json)
{
    struct ag_config *c = NULL;
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    if (ag_config_parse(json, strlen(json), &c, &eb) != 0)
        fail_msg("parse: %s", eb.msg);
    return c;
}

static void config_parse__cfssl_issuer_and_server_identity(void **state)
{
    struct ag_config *c = parse_ok(
        "{\"env\":\"prod\",\"trust_domain\":\"example.org\",\"output_dir\":\"/d\","
        "\"issuer\":{\"type\":\"cfssl\",\"url\":\"https://cfssl.duet-system.svc:8888\","
        "\"profile\":\"client\",\"auth_key_file\":\"/a\",\"ca_bundle\":\"/b\","
        "\"client_cert\":\"/cc\",\"client_key\":\"/ck\",\"timeout\":\"2500ms\"},"
        "\"identities\":[{\"product\":\"api\",\"server\":true,\"validity\":\"30d\","
        "\"dns\":[\"api.example.org\",\"*.api.example.org\"],\"ip\":[\"127.0.0.1\",\"::1\"]}],"
        "\"log_level\":\"debug\"}");

    assert_int_equal(c->issuer.type, AG_ISSUER_CFSSL);
    assert_string_equal(c->issuer.url, "https://cfssl.duet-system.svc:8888");
    assert_string_equal(c->issuer.profile, "client");
    assert_string_equal(c->issuer.auth_key_file, "/a");
    assert_string_equal(c->issuer.ca_bundle, "/b");
    assert_string_equal(c->issuer.server_ca, "/b"); /* defaults to ca_bundle */
    assert_string_equal(c->issuer.client_cert, "/cc");
    assert_int_equal(c->issuer.timeout, 2500);
    assert_true(c->identities[0].server);
    assert_int_equal(c->identities[0].validity, 30 * DAY);
    assert_int_equal(c->identities[0].n_dns, 2);
    assert_string_equal(c->identities[0].dns[1], "*.api.example.org");
    assert_int_equal(c->identities[0].n_ip, 2);
    assert_string_equal(c->identities[0].ip[1], "::1");
    assert_string_equal(c->log_level, "debug");
    ag_config_free(c);
}

static void config_parse__applies_defaults(void **state)
{
    struct ag_config *c = parse_ok(
        "{\"env\":\"dev\",\"trust_domain\":\"example.org\",\"output_dir\":\"/d\","
        "\"issuer\":{\"type\":\"cfssl\",\"url\":\"https://127.0.0.1:8888/\",\"ca_bundle\":\"/b\"},"
        "\"identities\":[{\"product\":\"a\"}]}");

    assert_string_equal(c->cn_template, "{env}.{product}.{env}");
    assert_int_equal(c->key_type, DUET_KEY_RSA2048);
    assert_int_equal(c->validity, 365 * DAY);
    assert_int_equal(c->renew_before, 0);
    assert_int_equal(c->key_group, -1);
    assert_null(c->status_listen);
    assert_null(c->subject.c);
    assert_int_equal(c->issuer.timeout, 10000);
    assert_false(c->issuer.insecure_http);
    assert_int_equal(c->issuer.max_backdate, 6 * 60 * 1000);
    assert_null(c->issuer.profile);
    assert_null(c->issuer.client_cert);
    assert_string_equal(c->issuer.server_ca, "/b");
    assert_int_equal(c->identities[0].key_type, DUET_KEY_RSA2048);
    assert_int_equal(c->identities[0].validity, 365 * DAY);
    ag_config_free(c);
}

#define HEAD "{\"env\":\"dev\",\"trust_domain\":\"example.org\",\"output_dir\":\"/d\","
#define LOCAL "\"issuer\":{\"type\":\"local\",\"ca_cert\":\"/c\",\"ca_key\":\"/k\"}"
#define CFSSL(extra) "\"issuer\":{\"type\":\"cfssl\",\"ca_bundle\":\"/b\"" extra "}"
#define IDS "\"identities\":[{\"product\":\"a\"}]"
#define GOOD(extra) HEAD extra LOCAL "," IDS "}"

struct bad_case {
    const char *json;
    int code;
    const char *msg;
};

static const struct bad_case bad_cases[] = {
    /* types, with the full path */
    {HEAD "\"issuer\":{\"type\":\"local\",\"ca_cert\":\"/c\",\"ca_key\":5}," IDS "}",
     DUET_E_CFG_TYPE, "issuer.ca_key: expected a string"},
    {HEAD LOCAL
     ",\"identities\":[{\"product\":\"a\"},{\"product\":\"b\",\"key_type\":\"rsa999\"}]}",
     DUET_E_KEY_TYPE, "identities[1].key_type: unknown key type \"rsa999\""},
    {GOOD("\"validity\":\"12x\","), DUET_E_DURATION, "validity: malformed duration \"12x\""},
    {GOOD("\"validity\":365,"), DUET_E_CFG_TYPE,
     "validity: expected a duration string such as \"90s\" or \"365d\""},
    {GOOD("\"validity\":\"30s\","), DUET_E_CFG_RANGE, "validity: 30s not in [1m, 36600d]"},
    {GOOD("\"key_group\":4294967296,"), DUET_E_CFG_RANGE,
     "key_group: 4294967296 not in [0, 2147483647]"},
    {GOOD("\"key_group\":1.5,"), DUET_E_CFG_TYPE, "key_group: expected an integer"},
    {GOOD("\"key_group\":\"65532\","), DUET_E_CFG_TYPE, "key_group: expected an integer"},
    {HEAD LOCAL ",\"identities\":[{\"product\":\"a\",\"server\":\"yes\"}]}", DUET_E_CFG_TYPE,
     "identities[0].server: expected true or false"},
    {HEAD LOCAL ",\"identities\":{\"product\":\"a\"}}", DUET_E_CFG_TYPE,
     "identities: expected an array"},
    {HEAD LOCAL ",\"identities\":[\"a\"]}", DUET_E_CFG_TYPE, "identities[0]: expected an object"},
    {GOOD("\"subject\":\"/C=LK\","), DUET_E_CFG_TYPE, "subject: expected an object"},
    {"[1]", DUET_E_CFG_TYPE, "configuration: expected an object"},
    /* unknown, duplicate, missing */
    {GOOD("\"colour\":1,"), DUET_E_CFG_UNKNOWN, "colour: unknown key"},
    {GOOD("\"subject\":{\"C\":\"LK\",\"CN\":\"x\"},"), DUET_E_CFG_UNKNOWN,
     "subject.CN: unknown key"},
    {HEAD "\"issuer\":{\"type\":\"local\",\"ca_cert\":\"/c\",\"ca_key\":\"/k\",\"foo\":1}," IDS "}",
     DUET_E_CFG_UNKNOWN, "issuer.foo: unknown key"},
    {HEAD LOCAL ",\"identities\":[{\"product\":\"a\"},{\"prod\":\"b\"}]}", DUET_E_CFG_UNKNOWN,
     "identities[1].prod: unknown key"},
    {GOOD("\"env\":\"prod\","), DUET_E_CFG_PARSE, "env: duplicate key"},
    {"{\"trust_domain\":\"t\",\"output_dir\":\"/d\"," LOCAL "," IDS "}", DUET_E_CFG_MISSING,
     "env: missing required key"},
    {HEAD IDS "}", DUET_E_CFG_MISSING, "issuer: missing required key"},
    {HEAD LOCAL "}", DUET_E_CFG_MISSING, "identities: missing required key"},
    {HEAD LOCAL ",\"identities\":[]}", DUET_E_CFG_RANGE, "identities: needs at least 1 item"},
    {HEAD LOCAL ",\"identities\":[{\"key_type\":\"ec-p256\"}]}", DUET_E_CFG_MISSING,
     "identities[0].product: missing required key"},
    {HEAD "\"issuer\":{\"ca_cert\":\"/c\"}," IDS "}", DUET_E_CFG_MISSING,
     "issuer.type: missing required key"},
    /* values and cross-field rules */
    {HEAD "\"issuer\":{\"type\":\"acme\"}," IDS "}", DUET_E_CFG_RANGE,
     "issuer.type: unknown issuer type \"acme\" (local or cfssl)"},
    {HEAD "\"issuer\":{\"type\":\"local\",\"ca_cert\":\"/c\"}," IDS "}", DUET_E_CFG_MISSING,
     "issuer.ca_key: missing required key (issuer type \"local\")"},
    {HEAD "\"issuer\":{\"type\":\"local\",\"ca_cert\":\"/c\",\"ca_key\":\"/k\",\"url\":\"http://"
          "x\"}," IDS "}",
     DUET_E_CFG_UNKNOWN, "issuer.url: not used by issuer type \"local\""},
    {HEAD CFSSL("") "," IDS "}", DUET_E_CFG_MISSING,
     "issuer.url: missing required key (issuer type \"cfssl\")"},
    {HEAD CFSSL(",\"url\":\"http://x\",\"ca_key\":\"/k\"") "," IDS "}", DUET_E_CFG_UNKNOWN,
     "issuer.ca_key: not used by issuer type \"cfssl\""},
    {HEAD CFSSL(",\"url\":\"ftp://x\"") "," IDS "}", DUET_E_CFG_RANGE,
     "issuer.url: \"ftp://x\" must start with https:// or http://"},
    {HEAD CFSSL(",\"url\":\"http://127.0.0.1:8888\"") "," IDS "}", DUET_E_CFG_RANGE,
     "issuer.url: \"http://127.0.0.1:8888\" is not HTTPS (set issuer.insecure_http to true to "
     "allow it)"},
    {HEAD CFSSL(",\"url\":\"https://x\",\"max_backdate\":\"2h\"") "," IDS "}", DUET_E_CFG_RANGE,
     "issuer.max_backdate: 2h not in [1s, 1h]"},
    {HEAD CFSSL(",\"url\":\"https://x:8888/api/v1\"") "," IDS "}", DUET_E_CFG_RANGE,
     "issuer.url: \"https://x:8888/api/v1\" must be http(s)://host[:port] without a path"},
    {HEAD CFSSL(",\"url\":\"https://x\",\"client_cert\":\"/cc\"") "," IDS "}", DUET_E_CFG_MISSING,
     "issuer.client_key: needed with issuer.client_cert"},
    {HEAD CFSSL(",\"url\":\"https://x\",\"timeout\":\"0s\"") "," IDS "}", DUET_E_CFG_RANGE,
     "issuer.timeout: 0s not in [100ms, 1h]"},
    {GOOD("\"renew_before\":\"400d\","), DUET_E_CFG_RANGE,
     "renew_before: 400d must be shorter than validity 365d"},
    {HEAD "\"renew_before\":\"30d\"," LOCAL
          ",\"identities\":[{\"product\":\"a\"},{\"product\":\"b\",\"validity\":\"7d\"}]}",
     DUET_E_CFG_RANGE, "renew_before: 30d must be shorter than identities[1] validity 7d"},
    {GOOD("\"cn_template\":\"{env}.app\","), DUET_E_CFG_RANGE,
     "cn_template: must contain {product}"},
    {GOOD("\"cn_template\":\"{env}.{prodcut}.{product}\","), DUET_E_CFG_RANGE,
     "cn_template: only {env} and {product} may be used"},
    {HEAD LOCAL ",\"identities\":[{\"product\":\"a\"},{\"product\":\"a\"}]}", DUET_E_CFG_RANGE,
     "identities[1].product: \"a\" already used by identities[0]"},
    {HEAD LOCAL ",\"identities\":[{\"product\":\"a b\"}]}", DUET_E_CFG_RANGE,
     "identities[0].product: \"a b\" may hold only letters, digits and '-'"},
    {"{\"env\":\"dev/x\",\"trust_domain\":\"t\",\"output_dir\":\"/d\"," LOCAL "," IDS "}",
     DUET_E_CFG_RANGE, "env: \"dev/x\" may hold only letters, digits and '-'"},
    {"{\"env\":\"\",\"trust_domain\":\"t\",\"output_dir\":\"/d\"," LOCAL "," IDS "}",
     DUET_E_CFG_RANGE, "env: must not be empty"},
    {"{\"env\":\"dev\",\"trust_domain\":\"Example.org\",\"output_dir\":\"/d\"," LOCAL "," IDS "}",
     DUET_E_CFG_RANGE, "trust_domain: may hold only a-z, 0-9, '.', '_' and '-'"},
    {"{\"env\":\"dev\",\"trust_domain\":\"t\",\"output_dir\":\"var/lib\"," LOCAL "," IDS "}",
     DUET_E_CFG_RANGE, "output_dir: must be an absolute path"},
    {GOOD("\"subject\":{\"C\":\"LKA\"},"), DUET_E_CFG_RANGE, "subject.C: length 3 not in [2, 2]"},
    {HEAD LOCAL ",\"identities\":[{\"product\":\"a\",\"dns\":[\"a.example\"]}]}", DUET_E_CFG_RANGE,
     "identities[0].dns: DNS and IP names need \"server\": true"},
    {HEAD LOCAL ",\"identities\":[{\"product\":\"a\",\"server\":true,\"ip\":[\"10.0.0.300\"]}]}",
     DUET_E_CFG_RANGE, "identities[0].ip[0]: bad IP address \"10.0.0.300\""},
    {HEAD LOCAL ",\"identities\":[{\"product\":\"a\",\"server\":true,\"dns\":[\"a..b\"]}]}",
     DUET_E_CFG_RANGE, "identities[0].dns[0]: bad DNS name \"a..b\""},
    {HEAD LOCAL ",\"identities\":[{\"product\":\"a\",\"server\":true,\"dns\":[7]}]}",
     DUET_E_CFG_TYPE, "identities[0].dns[0]: expected a string"},
    {GOOD("\"status_listen\":\"9090\","), DUET_E_CFG_RANGE,
     "status_listen: \"9090\" is not host:port"},
    {GOOD("\"status_listen\":\"127.0.0.1:70000\","), DUET_E_CFG_RANGE,
     "status_listen: \"127.0.0.1:70000\" is not host:port"},
    {GOOD("\"log_level\":\"loud\","), DUET_E_CFG_RANGE,
     "log_level: \"loud\" is not error, warn, info or debug"},
    /* JSON itself */
    {"{\"env\": \"dev\",\n \"x\": }", DUET_E_CFG_PARSE, "line 2 column 7: malformed JSON"},
    {"{} {}", DUET_E_CFG_PARSE, "line 1 column 4: unexpected data after the JSON value"},
    {"", DUET_E_CFG_PARSE, "line 1 column 1: malformed JSON"},
};

static void config_parse__refuses_with_exact_path_message(void **state)
{
    for (size_t i = 0; i < DUET_ARRAY_SIZE(bad_cases); i++) {
        const struct bad_case *b = &bad_cases[i];
        struct ag_config *c = (struct ag_config *)1;
        struct duet_errbuf eb;
        int rc;

        duet_errbuf_clear(&eb);
        rc = ag_config_parse(b->json, strlen(b->json), &c, &eb);
        if (rc != b->code || strcmp(eb.msg, b->msg) != 0)
            fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, eb.msg, b->code, b->msg);
        assert_null(c);
        assert_int_equal(duet_err_exit_status(rc), 2); /* every one is a usage error */
    }
}

static void config_parse__accepts_good_variants(void **state)
{
    static const char *const good[] = {
        GOOD("\"status_listen\":\"[::1]:9090\","),
        GOOD("\"status_listen\":\"localhost:1\","),
        GOOD("\"cn_template\":\"orgsync.{env}.{product}.{env}\","),
        GOOD("\"key_group\":0,\"log_level\":\"WARN\","),
        GOOD("\"subject\":{\"C\":\"LK\",\"ST\":\"WP\",\"L\":\"Colombo\",\"O\":\"Example, Inc.\","
             "\"OU\":\"Dev\",\"emailAddress\":\"ca@example.com\"},"),
        HEAD CFSSL(",\"url\":\"http://127.0.0.1:8888\",\"insecure_http\":true") "," IDS "}",
        HEAD CFSSL(",\"url\":\"https://x\",\"max_backdate\":\"1h\"") "," IDS "}",
    };

    for (size_t i = 0; i < DUET_ARRAY_SIZE(good); i++)
        ag_config_free(parse_ok(good[i]));
    ag_config_free(NULL);
}

static void config_load__names_the_file(void **state)
{
    char dir[256], path[300], big[300], *blob;
    struct ag_config *c;
    struct duet_errbuf eb;
    char want[600];

    tmp_config(dir, sizeof(dir), path, sizeof(path), GOOD("\"validity\":\"1y\","));
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(path, &c, &eb), DUET_E_DURATION);
    assert_null(c);
    snprintf(want, sizeof(want), "%s: validity: malformed duration \"1y\"", path);
    assert_string_equal(eb.msg, want);

    tl_write_file(path, "{\n\n  \"env\": dev}", 16, 0644);
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(path, &c, &eb), DUET_E_CFG_PARSE);
    snprintf(want, sizeof(want), "%s: line 3 column 10: malformed JSON", path);
    assert_string_equal(eb.msg, want);

    tl_write_file(path, GOOD("\"env\":\"x y\","), strlen(GOOD("\"env\":\"x y\",")), 0644);
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(path, &c, &eb), DUET_E_CFG_PARSE); /* duplicate env */
    assert_int_equal(strncmp(eb.msg, path, strlen(path)), 0);

    tl_write_file(
        path, "{\"env\":\"a b\",\"trust_domain\":\"t\",\"output_dir\":\"/d\"," LOCAL "," IDS "}",
        strlen("{\"env\":\"a b\",\"trust_domain\":\"t\","
               "\"output_dir\":\"/d\"," LOCAL "," IDS "}"),
        0644);
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(path, &c, &eb), DUET_E_CFG_RANGE);
    snprintf(want, sizeof(want), "%s: env: \"a b\" may hold only letters, digits and '-'", path);
    assert_string_equal(eb.msg, want);

    duet_errbuf_clear(&eb);
    tl_path(big, sizeof(big), "%s/missing.json", dir);
    assert_int_equal(ag_config_load(big, &c, &eb), DUET_ENOENT);
    assert_non_null(strstr(eb.msg, "missing.json: No such file"));
    assert_int_equal(duet_err_exit_status(DUET_ENOENT), 1);

    blob = calloc(1, AG_CONFIG_MAX_SIZE + 2);
    assert_non_null(blob);
    memset(blob, ' ', AG_CONFIG_MAX_SIZE + 1);
    tl_path(big, sizeof(big), "%s/big.json", dir);
    tl_write_file(big, blob, AG_CONFIG_MAX_SIZE + 1, 0644);
    free(blob);
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(big, &c, &eb), DUET_E_TOOBIG);
    assert_non_null(strstr(eb.msg, "big.json: larger than"));

    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(dir, &c, &eb), DUET_EINVAL);
    assert_non_null(strstr(eb.msg, "not a regular file"));

    tl_write_file(path, "{\"env\":\"d\0v\"}", 13, 0644);
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(path, &c, &eb), DUET_E_CFG_PARSE);
    assert_non_null(strstr(eb.msg, "NUL byte"));

    /* The escaped form too: "a\u0000b" must not become "a" (issue 10, item 19). */
    {
        static const char nul[] = HEAD LOCAL ",\"identities\":[{\"product\":\"a\\u0000b\"}]}";
        tl_write_file(path, nul, strlen(nul), 0644);
    }
    duet_errbuf_clear(&eb);
    assert_int_equal(ag_config_load(path, &c, &eb), DUET_E_CFG_PARSE);
    assert_null(c);
    assert_non_null(strstr(eb.msg, "\\u0000 (NUL) in a string is not allowed"));
    /* An escaped backslash before "u0000" is an ordinary string. */
    c = parse_ok(GOOD("\"cn_template\":\"{product}\\\\u0000\","));
    assert_string_equal(c->cn_template, "{product}\\u0000");
    ag_config_free(c);
    tl_rmrf(dir);
}

/* Every allocation of a load fails in turn: an error each time, never a crash or a leak. */
static void config_load__survives_every_allocation_failure(void **state)
{
    char dir[256], path[300];
    struct ag_config *c = NULL;
    long n;

    tmp_config(dir, sizeof(dir), path, sizeof(path), design_example);
    for (n = 0; n < 10000; n++) {
        struct duet_errbuf eb;
        int rc;

        duet_errbuf_clear(&eb);
        duet_alloc_fail_after(n);
        rc = ag_config_load(path, &c, &eb);
        duet_alloc_fail_after(-1);
        if (rc == 0)
            break;
        if (rc != DUET_ENOMEM)
            fail_msg("allocation %ld: %d %s", n, rc, eb.msg);
        assert_null(c);
    }
    print_message("config torture: succeeded after %ld allocations\n", n);
    assert_true(n > 10 && n < 10000);
    assert_string_equal(c->identities[1].product, "productB");
    ag_config_free(c);
    tl_rmrf(dir);
}

/* The binder on its own: a table with every type, bound and released. */
struct inner {
    char *name;
};

struct all_types {
    char *s;
    int64_t i;
    bool b;
    int64_t d;
    struct inner o;
    struct inner *arr;
    size_t n_arr;
    char **strs;
    size_t n_strs;
};

static const struct duet_cfg_field inner_fields[] = {
    {.name = "name",
     .type = DUET_CFG_STRING,
     .offset = offsetof(struct inner, name),
     .def = "anon"},
};
static const struct duet_cfg_table inner_table = DUET_CFG_TABLE(struct inner, inner_fields);

static const struct duet_cfg_field all_fields[] = {
    {.name = "s", .type = DUET_CFG_STRING, .offset = offsetof(struct all_types, s)},
    {.name = "i", .type = DUET_CFG_INT, .offset = offsetof(struct all_types, i), .def_int = 7},
    {.name = "b", .type = DUET_CFG_BOOL, .offset = offsetof(struct all_types, b), .def_int = 1},
    {.name = "d", .type = DUET_CFG_DURATION, .offset = offsetof(struct all_types, d), .def = "90s"},
    {.name = "o",
     .type = DUET_CFG_OBJECT,
     .offset = offsetof(struct all_types, o),
     .sub = &inner_table},
    {.name = "arr",
     .type = DUET_CFG_OBJECTS,
     .offset = offsetof(struct all_types, arr),
     .count_offset = offsetof(struct all_types, n_arr),
     .sub = &inner_table,
     .max = 3},
    {.name = "strs",
     .type = DUET_CFG_STRINGS,
     .offset = offsetof(struct all_types, strs),
     .count_offset = offsetof(struct all_types, n_strs)},
};
static const struct duet_cfg_table all_table = DUET_CFG_TABLE(struct all_types, all_fields);

static int load(struct all_types *v, const char *json, struct duet_errbuf *eb)
{
    return duet_cfg_load_string(json, strlen(json), &all_table, v, eb);
}

static void cfg_load_string__binds_every_type_and_defaults(void **state)
{
    static const char full[] = "{\"s\":\"x\",\"i\":-9007199254740993,\"b\":false,\"d\":\"2h\","
                               "\"o\":{\"name\":\"n\"},\"arr\":[{},{\"name\":\"z\"}],"
                               "\"strs\":[\"p\",\"q\"]}";
    struct all_types v;
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    assert_int_equal(load(&v, "{}", &eb), 0);
    assert_null(v.s);
    assert_int_equal(v.i, 7);
    assert_true(v.b);
    assert_int_equal(v.d, 90000);
    assert_string_equal(v.o.name, "anon"); /* absent object: its own defaults */
    assert_null(v.arr);
    assert_int_equal(v.n_strs, 0);
    duet_cfg_deinit(&all_table, &v);
    assert_null(v.o.name);

    assert_int_equal(load(&v, full, &eb), 0);
    assert_string_equal(v.s, "x");
    assert_int_equal(v.i, -9007199254740992LL); /* the double cJSON kept */
    assert_false(v.b);
    assert_int_equal(v.d, 2 * 3600 * 1000);
    assert_string_equal(v.o.name, "n");
    assert_int_equal(v.n_arr, 2);
    assert_string_equal(v.arr[0].name, "anon");
    assert_string_equal(v.arr[1].name, "z");
    assert_string_equal(v.strs[1], "q");
    duet_cfg_deinit(&all_table, &v);
    duet_cfg_deinit(&all_table, &v); /* twice is harmless */

    assert_int_equal(load(&v, "{\"arr\":[{},{},{},{}]}", &eb), DUET_E_CFG_RANGE);
    assert_string_equal(eb.msg, "arr: at most 3 items");
    duet_errbuf_clear(&eb);
    /* A failure deep inside an array releases what was bound before it. */
    assert_int_equal(load(&v, "{\"s\":\"x\",\"strs\":[\"a\",1]}", &eb), DUET_E_CFG_TYPE);
    assert_string_equal(eb.msg, "strs[1]: expected a string");
    assert_null(v.s);
    assert_null(v.strs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_load__design_example_has_every_value),
        cmocka_unit_test(config_parse__cfssl_issuer_and_server_identity),
        cmocka_unit_test(config_parse__applies_defaults),
        cmocka_unit_test(config_parse__refuses_with_exact_path_message),
        cmocka_unit_test(config_parse__accepts_good_variants),
        cmocka_unit_test(config_load__names_the_file),
        cmocka_unit_test(config_load__survives_every_allocation_failure),
        cmocka_unit_test(cfg_load_string__binds_every_type_and_defaults),
    };

    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
