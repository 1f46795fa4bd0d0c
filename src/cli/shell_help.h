/* teepy shell's help: in teepy, which lists it, and in teepy-shell, which runs the
 * shell (without the line editor's library in teepy). */
#ifndef TEEPY_CLI_SHELL_HELP_H
#define TEEPY_CLI_SHELL_HELP_H

#include "flags.h"

/* the program `teepy shell` executes, beside teepy or in the install directory */
#define TP_SHELL_PROGRAM "teepy-shell"

/* teepy-shell's main: what `teepy shell ARGS` runs, argv[0] "shell" (cli/shell.c) */
int tp_shell_main(int argc, char **argv);

#endif
