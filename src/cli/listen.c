/* The socket a server is handed: bound here, on the host's network, or taken from
 * systemd; the service inside only accepts on it (docs/cli.md, "Serving on a
 * socket"). */
#include "listen.h"

#include "../common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int tp_listen_open(const char *spec, char *err, size_t err_size)
{
	/* blocking: the service inside takes the socket as it is, and Python's accept()
	 * on a non-blocking one fails at once (BlockingIOError) instead of waiting */
	int fd = tp_listen_spec(spec, TP_LISTEN_BLOCKING, err, err_size);

	return fd < 0 ? -1 : fd;
}

/* systemd's LISTEN_FDS: FD must be one it passed (3 ...), and to this process. */
static int check_systemd(int fd, char *err, size_t err_size)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	char *end;
	long count, owner;

	if (!fds)
		return 0;
	errno = 0;
	count = strtol(fds, &end, 10);
	if (errno || *end || end == fds || count < 0 || count > INT_MAX - 3) {
		snprintf(err, err_size, "fd %d: LISTEN_FDS is '%.32s', not a count", fd, fds);
		return -1;
	}
	if (pid) {
		errno = 0;
		owner = strtol(pid, &end, 10);
		if (errno || *end || end == pid || owner != (long)getpid()) {
			snprintf(err, err_size,
				 "fd %d: LISTEN_PID is '%.32s', not teepy's pid %ld: the passed "
				 "descriptors are another process's",
				 fd, pid, (long)getpid());
			return -1;
		}
	}
	if (fd < 3 || fd >= 3 + count) {
		snprintf(err, err_size,
			 "fd %d is not one of the %ld descriptors systemd passed (LISTEN_FDS: fd 3 "
			 "to %ld)",
			 fd, count, 3 + count - 1);
		return -1;
	}
	return 0;
}

int tp_listen_check_fd(int fd, char *err, size_t err_size)
{
	struct stat st;
	int value = 0;
	socklen_t len = sizeof(value);

	if (check_systemd(fd, err, err_size) < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		snprintf(err, err_size, "fd %d: %s", fd,
			 errno == EBADF ? "not open in teepy" : strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, err_size, "fd %d is not a socket", fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) < 0 || value != SOCK_STREAM) {
		snprintf(err, err_size, "fd %d is not a stream socket (SOCK_STREAM)", fd);
		return -1;
	}
	/* TCP or a Unix socket: what the sandbox's rules are written for (SCTP or TIPC
	 * would set up a connection from a send with an address) */
	int domain = 0, protocol = 0;
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX)) {
		snprintf(err, err_size, "fd %d is not an IPv4, IPv6 or Unix socket", fd);
		return -1;
	}
	len = sizeof(protocol);
	if (domain != AF_UNIX && (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) < 0 ||
				  protocol != IPPROTO_TCP)) {
		snprintf(err, err_size, "fd %d is not a TCP socket (protocol %d)", fd, protocol);
		return -1;
	}
	len = sizeof(value);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) < 0 || !value) {
		snprintf(err, err_size,
			 "fd %d is a socket that does not listen (listen(2) it first)", fd);
		return -1;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		snprintf(err, err_size, "fd %d: %s", fd, strerror(errno));
		return -1;
	}
	return 0;
}

const char *tp_listen_describe(int fd, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char text[INET6_ADDRSTRLEN];

	snprintf(out, size, "fd %d", fd);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return out;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
		snprintf(out, size, "%s:%u", text, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
		snprintf(out, size, "[%s]:%u", text, ntohs(in6->sin6_port));
	} else if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
		size_t path_len = len > offsetof(struct sockaddr_un, sun_path) ?
				      len - offsetof(struct sockaddr_un, sun_path) :
				      0;
		if (path_len && un->sun_path[0] == '\0')
			snprintf(out, size, "@%.*s", (int)(path_len - 1), un->sun_path + 1);
		else if (path_len)
			snprintf(out, size, "%.*s", (int)strnlen(un->sun_path, path_len),
				 un->sun_path);
	}
	return out;
}
