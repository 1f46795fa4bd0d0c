/* The commands of teepy: each takes argv from its own name on and returns an exit code. */
#ifndef TEEPY_CLI_COMMANDS_H
#define TEEPY_CLI_COMMANDS_H

int tp_cmd_run(int argc, char **argv);
int tp_cmd_keygen(int argc, char **argv);
int tp_cmd_inspect(int argc, char **argv);
int tp_cmd_build(int argc, char **argv);

#endif
