/* SPDX-License-Identifier: Apache-2.0 */
/*
 * duet-agent: entry point. Dispatches to the subcommands; each subcommand
 * owns its own flags.
 */
#include <stdio.h>
#include <string.h>

#include "run.h"

#include "duet/compiler.h"

static const char usage[] =
    "usage: duet-agent <command> [options]\n"
    "\n"
    "commands:\n"
    "  ca init   create an environment's root CA\n"
    "  issue     issue a client (or server) certificate for one product\n"
    "  inspect   show a certificate, key, CSR or published folder\n"
    "  run       obtain, rotate and publish certificates (the node agent)\n"
    "\n"
    "  --help     this text\n"
    "  --version  print the version\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("duet-agent %s\n", DUET_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        return ag_run_main(argc - 1, argv + 1);
    fprintf(stderr, "duet-agent: unknown command '%s' (see --help)\n", argv[1]);
    return 2;
}
