/* teepy-cas: the CAS server and its audit log, the program `teepy cas` executes
 * (programs.c). argv[0] is "cas". */
#include "cas_help.h"

int main(int argc, char **argv)
{
	return tp_cas_main(argc, argv);
}
