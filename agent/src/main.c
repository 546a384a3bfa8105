/* SPDX-License-Identifier: Apache-2.0 */
/*
 * duet-agent: entry point. Dispatches to the subcommands declared in
 * agent.h; each subcommand owns its own flags (and --help, --log-level).
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"

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
    "  --help     this text (COMMAND --help: the command's options)\n"
    "  --version  print the version\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad usage or configuration.\n";

typedef int ag_cmd_main(int argc, char **argv);

/* argv[1] (and argv[2] for two-word commands) name the command. */
static const struct {
    const char *word1, *word2;
    ag_cmd_main *fn;
} commands[] = {
    {"ca", "init", ag_ca_init_main},
    {"issue", NULL, ag_issue_main},
    {"inspect", NULL, ag_inspect_main},
    /* run: dispatched to ag_run_main (run.c) */
    {"run", NULL, ag_run_main},
};

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
    for (size_t i = 0; i < DUET_ARRAY_SIZE(commands); i++) {
        if (strcmp(argv[1], commands[i].word1) != 0)
            continue;
        if (!commands[i].word2)
            return commands[i].fn(argc - 1, argv + 1);
        if (argc > 2 && strcmp(argv[2], commands[i].word2) == 0)
            return commands[i].fn(argc - 2, argv + 2);
        fprintf(stderr, "duet-agent: '%s' needs a subcommand: %s %s (see --help)\n", argv[1],
                commands[i].word1, commands[i].word2);
        return 2;
    }
    fprintf(stderr, "duet-agent: unknown command '%s' (see --help)\n", argv[1]);
    return 2;
}
