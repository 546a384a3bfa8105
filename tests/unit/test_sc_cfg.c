/* SPDX-License-Identifier: Apache-2.0 */
/* duet-sidecar flags: LISTEN=UPSTREAM specs, allow lists, defaults, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"

static struct sc_listen_cfg l;
static struct duet_errbuf eb;

static void cfg_parse_spec__outbound_defaults(void **state)
{
    (void)state;
    assert_int_equal(sc_cfg_parse_spec(&l, SC_OUTBOUND, "127.0.0.1:15001=example.org:443", &eb), 0);
    assert_string_equal(l.listen, "127.0.0.1:15001");
    assert_string_equal(l.host, "example.org");
    assert_int_equal(l.port, 443);
    assert_string_equal(l.sni, "example.org");
    assert_true(l.resume);
    assert_false(l.literal);
    assert_false(l.verify_ip);
}

static void cfg_parse_spec__outbound_options(void **state)
{
    (void)state;
    assert_int_equal(sc_cfg_parse_spec(&l, SC_OUTBOUND,
                                       "127.0.0.1:1=10.0.0.5:8443,sni=api.internal,resume=off",
                                       &eb),
                     0);
    assert_true(l.literal);
    assert_string_equal(l.sni, "api.internal");
    assert_false(l.verify_ip);
    assert_false(l.resume);
    assert_int_equal(sc_cfg_parse_spec(&l, SC_OUTBOUND, "[::1]:1=[::1]:2", &eb), 0);
    assert_true(l.literal);
    assert_true(l.verify_ip);
    assert_string_equal(l.sni, "::1");
}

static void cfg_parse_spec__inbound_allow_lists(void **state)
{
    const char *uris[] = {"spiffe://example.org/dev/productB", "spiffe://example.org/dev/productA"};

    (void)state;
    assert_int_equal(sc_cfg_parse_spec(&l, SC_INBOUND,
                                       "0.0.0.0:8443=127.0.0.1:8080,allow-cn=dev.productA.dev,"
                                       "allow-san=spiffe://example.org/dev/productA",
                                       &eb),
                     0);
    assert_int_equal(l.n_cn, 1);
    assert_int_equal(l.n_san, 1);
    assert_true(sc_cfg_allowed(&l, "dev.productA.dev", NULL, 0));
    assert_false(sc_cfg_allowed(&l, "dev.productB.dev", uris, 1));
    assert_true(sc_cfg_allowed(&l, "dev.productB.dev", uris, 2));
    assert_false(sc_cfg_allowed(&l, NULL, NULL, 0));
    assert_false(sc_cfg_allowed(&l, "dev.productA.dev.evil", NULL, 0));
    assert_int_equal(sc_cfg_parse_spec(&l, SC_INBOUND, "127.0.0.1:1=127.0.0.1:2", &eb), 0);
    assert_true(sc_cfg_allowed(&l, NULL, NULL, 0)); /* no lists: chain is enough */
}

static void cfg_parse_spec__refuses_malformed(void **state)
{
    static const char *const bad_out[] = {
        "127.0.0.1:1",                  /* no = */
        "127.0.0.1:0=h:1",              /* listen port 0 */
        "127.0.0.1:1=h:0",              /* upstream port 0 */
        "127.0.0.1:1=h",                /* no port */
        "127.0.0.1:1=:443",             /* no host */
        "127.0.0.1:1=h:1,resume=maybe", /* bad bool */
        "127.0.0.1:1=h:1,sni",          /* option without value */
        "127.0.0.1:1=h:1,allow-cn=x",   /* inbound-only option */
        "127.0.0.1:1=h:1,colour=blue",  /* unknown option */
        "=h:1",                         /* empty listen */
    };

    (void)state;
    for (size_t i = 0; i < DUET_ARRAY_SIZE(bad_out); i++) {
        duet_errbuf_clear(&eb);
        assert_int_equal(sc_cfg_parse_spec(&l, SC_OUTBOUND, bad_out[i], &eb), DUET_E_USAGE);
        assert_non_null(strstr(eb.msg, "--outbound"));
    }
    assert_int_equal(sc_cfg_parse_spec(&l, SC_INBOUND, "127.0.0.1:1=h:1,sni=x", &eb), DUET_E_USAGE);
    assert_int_equal(sc_cfg_parse_spec(&l, SC_INBOUND,
                                       "127.0.0.1:1=h:1,allow-cn=a,allow-cn=b,allow-cn=c,"
                                       "allow-cn=d,allow-cn=e,allow-cn=f,allow-cn=g,allow-cn=h,"
                                       "allow-cn=i",
                                       &eb),
                     DUET_E_USAGE);
}

static int parse(struct sc_cfg *cfg, const char *const *args, int n)
{
    static char prog[] = "duet-sidecar";
    char *argv[16] = {prog};

    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    duet_errbuf_clear(&eb);
    return sc_cfg_parse(cfg, n + 1, argv, &eb);
}

static void cfg_parse__defaults_and_flags(void **state)
{
    static struct sc_cfg cfg;
    const char *ok[] = {
        "--certs",   "/c", "--outbound",         "127.0.0.1:1=h:2",     "--inbound=127.0.0.1:3=h:4",
        "--workers", "3",  "--drain-timeout=5s", "--max-conn-lifetime", "1h"};

    (void)state;
    unsetenv("DUET_SIDECAR_WORKERS");
    assert_int_equal(parse(&cfg, ok, 10), 0);
    assert_string_equal(cfg.certs, "/c");
    assert_int_equal(cfg.n_listeners, 2);
    assert_int_equal(cfg.listeners[1].dir, SC_INBOUND);
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(cfg.drain_ms, 5000);
    assert_int_equal(cfg.lifetime_ms, 3600000);
    assert_int_equal(cfg.idle_ms, 300000);
    assert_int_equal(cfg.handshake_ms, 10000);
    assert_int_equal(cfg.max_conns, 2000);
    assert_null(cfg.crl);
    setenv("DUET_SIDECAR_WORKERS", "2", 1);
    assert_int_equal(parse(&cfg, ok, 4), 0);
    assert_int_equal(cfg.workers, 2); /* environment below flags, above defaults */
    unsetenv("DUET_SIDECAR_WORKERS");
}

static void cfg_parse__usage_errors_name_the_flag(void **state)
{
    static struct sc_cfg cfg;
    const char *no_certs[] = {"--outbound", "127.0.0.1:1=h:2"};
    const char *no_listener[] = {"--certs", "/c"};
    const char *workers0[] = {"--certs", "/c", "--outbound", "127.0.0.1:1=h:2", "--workers", "0"};
    const char *bad_dur[] = {"--certs",        "/c",  "--outbound", "127.0.0.1:1=h:2",
                             "--idle-timeout", "soon"};
    const char *unknown[] = {"--certs", "/c", "--frobnicate"};
    const char *missing[] = {"--certs"};

    (void)state;
    assert_int_equal(parse(&cfg, no_certs, 2), DUET_E_USAGE);
    assert_non_null(strstr(eb.msg, "--certs"));
    assert_int_equal(parse(&cfg, no_listener, 2), DUET_E_USAGE);
    assert_non_null(strstr(eb.msg, "--outbound"));
    assert_int_equal(parse(&cfg, workers0, 6), DUET_E_USAGE);
    assert_non_null(strstr(eb.msg, "--workers"));
    assert_int_equal(parse(&cfg, bad_dur, 6), DUET_E_USAGE);
    assert_non_null(strstr(eb.msg, "--idle-timeout"));
    assert_int_equal(parse(&cfg, unknown, 3), DUET_E_USAGE);
    assert_non_null(strstr(eb.msg, "--frobnicate"));
    assert_int_equal(parse(&cfg, missing, 1), DUET_E_USAGE);
    assert_non_null(strstr(eb.msg, "--certs"));
}

/* Every duration flag refuses values past its bound, naming the flag; the
 * bounds themselves are accepted. */
static void cfg_parse__durations_are_bounded(void **state)
{
    static struct sc_cfg cfg;
    static const struct {
        const char *flag, *lo_ok, *hi_ok, *too_low, *too_high;
    } d[] = {
        {"--handshake-timeout", "100ms", "5m", "99ms", "301s"},
        {"--idle-timeout", "1s", "1d", "999ms", "25h"},
        {"--max-conn-lifetime", "0s", "30d", "", "31d"},
        {"--drain-timeout", "0s", "1h", "", "61m"},
        {"--reload-poll", "50ms", "1h", "49ms", "2h"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        const char *vals[] = {d[i].lo_ok, d[i].hi_ok, d[i].too_low, d[i].too_high,
                              "9223372036854775000ms"};

        for (size_t j = 0; j < 5; j++) {
            const char *argv[] = {"--certs",         "/c",      "--outbound",
                                  "127.0.0.1:1=h:2", d[i].flag, vals[j]};

            if (vals[j][0] == '\0')
                continue;
            if (j < 2) {
                assert_int_equal(parse(&cfg, argv, 6), 0);
                continue;
            }
            assert_int_equal(parse(&cfg, argv, 6), DUET_E_USAGE);
            assert_non_null(strstr(eb.msg, d[i].flag));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cfg_parse__durations_are_bounded),
        cmocka_unit_test(cfg_parse_spec__outbound_defaults),
        cmocka_unit_test(cfg_parse_spec__outbound_options),
        cmocka_unit_test(cfg_parse_spec__inbound_allow_lists),
        cmocka_unit_test(cfg_parse_spec__refuses_malformed),
        cmocka_unit_test(cfg_parse__defaults_and_flags),
        cmocka_unit_test(cfg_parse__usage_errors_name_the_flag),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
