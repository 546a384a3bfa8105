/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sidecar's counters and their exposition (/healthz, /readyz,
 * /metrics). Each worker writes the counters of its own listeners with
 * relaxed atomic stores; the status server on the main thread sums them at
 * scrape time (metrics.c).
 */
#ifndef SC_METRICS_H
#define SC_METRICS_H

#include <stdint.h>

#include "duet/status_http.h"

/* Why a connection was refused or failed before carrying data. */
enum sc_fail {
    SC_FAIL_NO_CERT = 0,
    SC_FAIL_UNTRUSTED,
    SC_FAIL_EXPIRED,
    SC_FAIL_REVOKED,
    SC_FAIL_NOT_ALLOWED,
    SC_FAIL_PROTOCOL,
    SC_FAIL_TIMEOUT,
    SC_FAIL_CONNECT,
    SC_FAIL_RESOLVE,
    SC_FAIL_NO_CERTS_LOADED,
    SC_FAIL_CRL_STALE, /* our CRL is past its nextUpdate: nobody can be checked */
    SC_FAIL_SHED,      /* closed mid-handshake to make room (--max-pending-handshakes) */
    SC_FAIL_COUNT,
};

/* "no_cert", "untrusted", ...: the reason= of logs and metric labels. */
extern const char *const sc_fail_names[SC_FAIL_COUNT];

/* Written by one worker, read by main: relaxed atomics, no lock prefix on write. */
struct sc_lstats {
    uint64_t open;
    uint64_t total;
    uint64_t bytes_in;  /* from the client (down) to the upstream (up) */
    uint64_t bytes_out; /* from up to down */
    uint64_t hs_ok;
    uint64_t hs_resumed;
    uint64_t hs_fail[SC_FAIL_COUNT];
    uint64_t refused_limit;
    uint64_t closed_recheck; /* open connections closed: the peer failed a new ca.crt or CRL */
    uint64_t retired;        /* closed at rest after a lifetime or certificate deadline */
    uint64_t cut;            /* closed at a hard deadline, possibly mid-exchange */
};

#define SC_STAT_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define SC_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* The status server's handler; arg is the struct sc_app (main.h), borrowed. */
void sc_metrics_handler(const char *path, struct duet_status_reply *r, void *arg);

#endif
