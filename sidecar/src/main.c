/* SPDX-License-Identifier: Apache-2.0 */
/* duet-sidecar: entry point. */
#include <stdio.h>
#include <string.h>

#include "duet/compiler.h"

static const char usage[] =
    "usage: duet-sidecar --certs DIR [--outbound LISTEN=UPSTREAM[,sni=NAME][,resume=on|off]]...\n"
    "                    [--inbound LISTEN=BACKEND[,allow-cn=CN][,allow-san=URI]]...\n"
    "                    [--status LISTEN] [--workers N] [--drain-timeout 20s]\n";

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("duet-sidecar %s\n", DUET_VERSION);
            return 0;
        }
        fprintf(stderr, "duet-sidecar: unknown argument '%s' (see --help)\n", argv[i]);
        return 2;
    }
    fputs(usage, stderr);
    return 2;
}
