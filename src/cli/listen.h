/* The socket a server is handed (teepy run --listen, --listen-fd): made or checked
 * outside the sandbox, where the host's network is. */
#ifndef TEEPY_CLI_LISTEN_H
#define TEEPY_CLI_LISTEN_H

#include <stddef.h>

/* Binds a blocking TCP socket to SPEC ("127.0.0.1:8000", "[::1]:8000", "localhost:0":
 * HOST and PORT, 0 for any free one) and listens on it (tp_listen_spec, common/net.h).
 * Returns the descriptor (close-on-exec), or -1 with one line in err (without the
 * flag's name) and nothing left open. */
int tp_listen_open(const char *spec, char *err, size_t err_size);

/* Checks that FD is a listening stream socket that teepy may take: with systemd's
 * LISTEN_FDS set (getenv), one of the descriptors it passed, to this process if
 * LISTEN_PID says which. Marks it close-on-exec. Returns 0, or -1 with one line in
 * err. */
int tp_listen_check_fd(int fd, char *err, size_t err_size);

/* Where FD listens, for people: "127.0.0.1:8000", "[::1]:8000", a socket file's path
 * or "@name" for an abstract one. Returns out. */
const char *tp_listen_describe(int fd, char *out, size_t size);

#endif
