/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vol_reader DIR SECONDS: read the published set in DIR as fast as possible
 * for SECONDS (or until SIGTERM), the way a sidecar does (duet_vol_read: resolve ..data once,
 * read every file from that version), and check every read: all three files
 * present, the key matching the certificate. Prints
 *   reads=N versions=M bad=B
 * and exits 1 if any read was incomplete or mismatched (the first failure
 * is printed), 0 otherwise. Used by test_agent_rotation.sh.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duet/clock.h"
#include "duet/pki.h"
#include "duet/vol.h"

static const char *const names[] = {DUET_VOL_KEY, DUET_VOL_CERT, DUET_VOL_CA};
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    stop = 1;
}

/* 0 when the set is complete and consistent; else eb says why. */
static int check_once(const char *dir, char *version, size_t vsize, struct duet_errbuf *eb)
{
    struct duet_vol_set set;
    struct duet_key *key = NULL;
    struct duet_chain *chain = NULL, *bundle = NULL;
    int rc;

    memset(&set, 0, sizeof(set));
    rc = duet_vol_read(dir, names, 3, 1 << 20, &set, eb);
    if (rc == 0)
        rc = duet_key_from_pem(set.blobs[0].data, set.blobs[0].len, NULL, "tls.key", &key, eb);
    if (rc == 0)
        rc = duet_chain_from_pem(set.blobs[1].data, set.blobs[1].len, "tls.crt", &chain, eb);
    if (rc == 0)
        rc = duet_chain_from_pem(set.blobs[2].data, set.blobs[2].len, "ca.crt", &bundle, eb);
    if (rc == 0 && duet_key_matches_cert(key, duet_chain_at(chain, 0)) < 0)
        rc =
            duet_errf(eb, DUET_E_KEY_MISMATCH, "tls.key does not match tls.crt in %s", set.version);
    if (rc == 0)
        snprintf(version, vsize, "%s", set.version);
    duet_chain_free(bundle);
    duet_chain_free(chain);
    duet_key_free(key);
    duet_vol_set_clear(&set);
    return rc;
}

int main(int argc, char **argv)
{
    char last[256] = "", cur[256];
    long reads = 0, versions = 0, bad = 0;
    int64_t end;

    if (argc != 3) {
        fprintf(stderr, "usage: vol_reader DIR SECONDS\n");
        return 2;
    }
    end = duet_clock_mono_ms() + strtol(argv[2], NULL, 10) * 1000;
    signal(SIGTERM, on_term); /* scripts/soak ends a read run when its kills are done */
    while (!stop && duet_clock_mono_ms() < end) {
        struct duet_errbuf eb;

        duet_errbuf_clear(&eb);
        reads++;
        if (check_once(argv[1], cur, sizeof(cur), &eb) < 0) {
            if (bad++ == 0)
                fprintf(stderr, "vol_reader: read %ld: %s\n", reads, eb.msg);
            continue;
        }
        if (strcmp(cur, last) != 0) {
            versions++;
            memcpy(last, cur, sizeof(last));
        }
    }
    printf("reads=%ld versions=%ld bad=%ld\n", reads, versions, bad);
    return bad ? 1 : 0;
}
