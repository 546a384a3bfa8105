/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the status server (status_http.c): the step from an accepted
 * socket to a served client, shared by the listener and by
 * tests/fuzz/fuzz_status_http.c, which hands the server one end of a
 * socketpair so arbitrary request bytes go through the same reads, request
 * parsing and replies as a probe's.
 */
#ifndef DUET_STATUS_HTTP_INT_H
#define DUET_STATUS_HTTP_INT_H

#include "duet/status_http.h"

/*
 * Serve a connected, non-blocking stream socket as a new client; the server
 * owns fd from the call on (it is closed on failure too). When max_conns
 * clients are open, the oldest one still sending its request is dropped
 * first; with none such, DUET_EAGAIN and fd is closed. 0, DUET_EAGAIN,
 * DUET_ENOMEM or the loop's error. Loop thread only; no callback runs
 * during the call.
 */
int duet__status_http_adopt(struct duet_status_http *s, int fd) DUET_MUST_CHECK;

#endif
