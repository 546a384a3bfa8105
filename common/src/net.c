/* SPDX-License-Identifier: Apache-2.0 */
/* Address parsing and listeners; see duet/net.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "duet/net.h"

int duet_net_split_hostport(const char *s, char host[DUET_NET_HOST_MAX], unsigned *port,
                            struct duet_errbuf *eb)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    char *end;
    unsigned long p;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');

        if (!rb || rb[1] != ':')
            return duet_errf(eb, DUET_E_USAGE, "'%s': expected [ipv6]:port", s);
        h = s + 1;
        hlen = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return duet_errf(eb, DUET_E_USAGE, "'%s': expected host:port", s);
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen))
            return duet_errf(eb, DUET_E_USAGE, "'%s': put an IPv6 address in brackets", s);
    }
    if (hlen >= DUET_NET_HOST_MAX)
        return duet_errf(eb, DUET_E_USAGE, "'%s': host name too long", s);
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || p > 65535 || colon[1] == '-' ||
        colon[1] == '+')
        return duet_errf(eb, DUET_E_USAGE, "'%s': port must be 0-65535", s);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (unsigned)p;
    return 0;
}

bool duet_net_is_ip_literal(const char *host)
{
    unsigned char b[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1;
}

static int listen_one(const struct addrinfo *ai, bool reuseport, int backlog)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    int rc;

    if (fd == -1)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, backlog) == -1) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int duet_net_listen(const char *spec, bool reuseport, int backlog, struct duet_errbuf *eb)
{
    char host[DUET_NET_HOST_MAX];
    char port[8];
    unsigned p;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc;

    DUET_TRY(duet_net_split_hostport(spec, host, &p, eb));
    snprintf(port, sizeof(port), "%u", p);
    if (host[0] == '\0')
        hints.ai_family = AF_INET;
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0)
        return duet_errf(eb, DUET_E_USAGE, "'%s': %s", spec, gai_strerror(rc));
    rc = listen_one(res, reuseport, backlog);
    freeaddrinfo(res);
    if (rc < 0)
        return duet_errf(eb, rc, "listen on '%s': %s", spec, duet_strerror(rc));
    return rc;
}

const char *duet_net_addr_str(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in; /* copied: sa may be a less aligned buffer */

        memcpy(&in, sa, sizeof(in));
        inet_ntop(AF_INET, &in.sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(in.sin_port));
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;

        memcpy(&in6, sa, sizeof(in6));
        inet_ntop(AF_INET6, &in6.sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(in6.sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}
