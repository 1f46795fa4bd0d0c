/* teepy-shell: teepy shell, the program `teepy shell` executes (programs.c), which
 * alone maps the line editor's libraries. argv[0] is "shell". */
#include "shell_help.h"

int main(int argc, char **argv)
{
	return tp_shell_main(argc, argv);
}
