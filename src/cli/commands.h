/* The commands of teepy: each takes argv from its own name on and returns an exit code. */
#ifndef TEEPY_CLI_COMMANDS_H
#define TEEPY_CLI_COMMANDS_H

#include "flags.h"

int tp_cmd_run(int argc, char **argv);
int tp_cmd_keygen(int argc, char **argv);
int tp_cmd_inspect(int argc, char **argv);
int tp_cmd_build(int argc, char **argv);
int tp_cmd_cache(int argc, char **argv);
int tp_cmd_data(int argc, char **argv);
int tp_cmd_volume(int argc, char **argv);
int tp_cmd_attest(int argc, char **argv);

/* Their --help, which `teepy help COMMAND` and `teepy help flags` print too. */
extern const struct tp_command_help tp_run_help, tp_build_help, tp_inspect_help, tp_keygen_help,
    tp_cache_help, tp_data_help, tp_volume_help, tp_attest_help;

#endif
