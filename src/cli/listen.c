/* The socket a server is handed: bound here, on the host's network, or taken from
 * systemd; the service inside only accepts on it (docs/cli.md, "Serving on a
 * socket"). */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* SPEC as HOST and PORT: "[v6]:port", or the last colon's split of "host:port".
 * Returns 0 or -1 with the line in err. */
static int split(const char *spec, char *host, size_t host_size, char *port, size_t port_size,
		 char *err, size_t err_size)
{
	const char *colon, *host_start = spec;
	size_t host_len;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':') {
			snprintf(err, err_size,
				 "'%s' is not [ADDRESS]:PORT (an IPv6 address in brackets, then "
				 ":PORT)",
				 spec);
			return -1;
		}
		host_start = spec + 1;
		host_len = (size_t)(close - host_start);
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon) {
			snprintf(err, err_size,
				 "'%s' has no port (give ADDR:PORT, e.g. 127.0.0.1:8000)", spec);
			return -1;
		}
		if (memchr(spec, ':', (size_t)(colon - spec))) {
			snprintf(err, err_size,
				 "'%s': put an IPv6 address in brackets ([::1]:8000)", spec);
			return -1;
		}
		host_len = (size_t)(colon - spec);
	}
	if (host_len == 0) {
		snprintf(err, err_size,
			 "'%s' has no address (127.0.0.1 for this host only, 0.0.0.0 for every "
			 "interface)",
			 spec);
		return -1;
	}
	if (host_len >= host_size) {
		snprintf(err, err_size, "'%.64s...': the address is too long", spec);
		return -1;
	}
	const char *digits = colon + 1;
	char *end;
	errno = 0;
	long n = strtol(digits, &end, 10);
	if (!*digits || *end || errno || n < 0 || n > 65535 || digits[0] == '-' ||
	    digits[0] == '+' || digits[0] == ' ') {
		snprintf(err, err_size, "'%s': the port must be a number from 0 to 65535", spec);
		return -1;
	}
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';
	snprintf(port, port_size, "%ld", n);
	return 0;
}

static const char *bind_failure(int e)
{
	switch (e) {
	case EADDRINUSE:
		return "the address is in use (another program listens there)";
	case EACCES:
		return "permission denied (ports below 1024 need root, or "
		       "net.ipv4.ip_unprivileged_port_start)";
	case EADDRNOTAVAIL:
		return "not an address of this host";
	default:
		return strerror(e);
	}
}

int tp_listen_open(const char *spec, char *err, size_t err_size)
{
	char host[256], port[8];
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG },
			*list, *a;
	int fd = -1, e = 0, r;

	if (split(spec, host, sizeof(host), port, sizeof(port), err, err_size) < 0)
		return -1;
	/* a literal address is taken whatever interfaces are configured */
	struct in6_addr probe;
	if (inet_pton(AF_INET, host, &probe) == 1 || inet_pton(AF_INET6, host, &probe) == 1)
		hints.ai_flags = (hints.ai_flags & ~AI_ADDRCONFIG) | AI_NUMERICHOST;
	if ((r = getaddrinfo(host, port, &hints, &list)) != 0) {
		snprintf(err, err_size, "'%s': cannot find the address of %s: %s", spec, host,
			 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	for (a = list; a; a = a->ai_next) {
		int one = 1;
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		/* a server restarted at once binds while the last one's connections wait */
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(list);
	if (fd < 0)
		snprintf(err, err_size, "'%s': %s", spec, bind_failure(e ? e : EADDRNOTAVAIL));
	return fd;
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
