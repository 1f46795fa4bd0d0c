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
int tp_cmd_platform(int argc, char **argv);
int tp_cmd_cas(int argc, char **argv);
int tp_cmd_policy(int argc, char **argv);
int tp_cmd_serve(int argc, char **argv);
int tp_cmd_deploy(int argc, char **argv);
int tp_cmd_invoke(int argc, char **argv);
int tp_cmd_services(int argc, char **argv);
int tp_cmd_shell(int argc, char **argv);

/* Their --help, which `teepy help COMMAND` and `teepy help flags` print too. */
extern const struct tp_command_help tp_run_help, tp_build_help, tp_inspect_help, tp_keygen_help,
    tp_cache_help, tp_data_help, tp_volume_help, tp_attest_help, tp_platform_help, tp_cas_help,
    tp_policy_help, tp_serve_help, tp_deploy_help, tp_invoke_help, tp_services_help, tp_shell_help;

/* The public key's path beside a private key's: KEY with .key replaced by .pub, else
 * KEY.pub (keygen.c). */
void tp_keygen_pub_path(const char *key, char *out, size_t size);

/* The platform key's path (platform.c): given if set, else root's
 * /var/lib/teepy/platform.key, else $XDG_DATA_HOME/teepy/platform.key, else
 * $HOME/.local/share/teepy/platform.key. Returns 0, or -errno with one line in err. */
int tp_platform_key_path(const char *given, char *out, size_t size, char *err, size_t err_size);

#endif
