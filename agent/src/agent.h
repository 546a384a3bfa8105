/* SPDX-License-Identifier: Apache-2.0 */
/*
 * duet-agent subcommand entry points, dispatched by main.c. Each takes the
 * arguments after the command words (argv[0] is the command name) and
 * returns the process exit status: 0 success, 1 runtime failure, 2 bad
 * usage or configuration (DESIGN.md "duet-agent").
 */
#ifndef AG_AGENT_H
#define AG_AGENT_H

int ag_ca_init_main(int argc, char **argv); /* cmd_ca.c */
int ag_issue_main(int argc, char **argv);   /* cmd_issue.c */
int ag_inspect_main(int argc, char **argv); /* cmd_inspect.c */
int ag_run_main(int argc, char **argv);     /* run.c */

#endif
