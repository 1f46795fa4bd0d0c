/* teepy-worker: the worker, the program `teepy serve` executes (programs.c). argv[0]
 * is "serve". */
#include "serve_help.h"

int main(int argc, char **argv)
{
	return tp_serve_main(argc, argv);
}
