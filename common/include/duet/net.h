/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Socket boilerplate shared by the daemons (redis src/anet.c): parsing
 * "host:port" (IPv6 in brackets), non-blocking listeners and the few socket
 * options both need. Blocking name resolution is allowed here only for
 * listen addresses at startup; the data path resolves elsewhere.
 */
#ifndef DUET_NET_H
#define DUET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "duet/compiler.h"
#include "duet/err.h"

#define DUET_NET_HOST_MAX 256

/*
 * Split "host:port", "[v6]:port" or ":port" (host "") into host and port
 * (0-65535: 0 asks a listener for any free port; callers that connect refuse
 * it). Refuses a missing or out-of-range port and an oversized host with
 * DUET_E_USAGE naming the input in eb.
 */
int duet_net_split_hostport(const char *s, char host[DUET_NET_HOST_MAX], unsigned *port,
                            struct duet_errbuf *eb) DUET_MUST_CHECK;

/* True if host is an IPv4 or IPv6 literal (no brackets). */
bool duet_net_is_ip_literal(const char *host);

/*
 * Bind and listen on `spec` ("host:port"; an empty host means all IPv4
 * addresses). The socket is non-blocking and close-on-exec, with
 * SO_REUSEADDR, and SO_REUSEPORT when reuseport is true. Returns the fd or a
 * negative code (eb names the address).
 */
int duet_net_listen(const char *spec, bool reuseport, int backlog,
                    struct duet_errbuf *eb) DUET_MUST_CHECK;

/* Format a socket address as "ip:port" ("[v6]:port"). Returns buf. */
const char *duet_net_addr_str(const struct sockaddr *sa, char *buf, size_t size);

#endif
