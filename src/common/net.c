/* A server's listening address and socket (net.h). */
#include "net.h"

#include "hostport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A close-on-exec TCP socket bound to addr and listening with room for backlog waiting
 * connections, non-blocking unless flags has TP_LISTEN_BLOCKING; SO_REUSEADDR, as a
 * server restarted at once binds while the last one's connections wait. Returns the fd,
 * or -errno with *made false if socket(2) itself failed; nothing is left open. */
static int listen_on(const struct sockaddr *addr, socklen_t len, int flags, int backlog, bool *made)
{
	int type = SOCK_STREAM | SOCK_CLOEXEC | (flags & TP_LISTEN_BLOCKING ? 0 : SOCK_NONBLOCK);
	int fd, r, one = 1;

	*made = false;
	if ((fd = socket(addr->sa_family, type, 0)) < 0)
		return -errno;
	*made = true;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, addr, len) < 0 || listen(fd, backlog) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int tp_listen_tcp(const char *host, unsigned port, int flags, unsigned *bound, char *err,
		  size_t err_size)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	bool made;
	int fd;

	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		len = sizeof(*in6);
	} else {
		snprintf(err, err_size, "%s: not a numeric IPv4 or IPv6 address", host);
		return -EINVAL;
	}
	if ((fd = listen_on((struct sockaddr *)&ss, len, flags, 1024, &made)) < 0) {
		if (made)
			snprintf(err, err_size, "cannot listen on %s port %u: %s", host, port,
				 strerror(-fd));
		else
			snprintf(err, err_size, "socket: %s", strerror(-fd));
		return fd;
	}
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*bound = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
	return fd;
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

int tp_listen_spec(const char *spec, int flags, char *err, size_t err_size)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG },
			*list;
	struct in6_addr probe;
	char host[256], service[8];
	unsigned port;
	bool made;
	int fd = -EADDRNOTAVAIL, r;

	if ((r = tp_split_host_port(spec, host, sizeof(host), &port, err, err_size)) < 0)
		return r;
	snprintf(service, sizeof(service), "%u", port);
	/* a literal address is taken whatever interfaces are configured */
	if (inet_pton(AF_INET, host, &probe) == 1 || inet_pton(AF_INET6, host, &probe) == 1)
		hints.ai_flags = (hints.ai_flags & ~AI_ADDRCONFIG) | AI_NUMERICHOST;
	if ((r = getaddrinfo(host, service, &hints, &list)) != 0) {
		int sys = r == EAI_SYSTEM ? errno : 0;
		snprintf(err, err_size, "'%s': cannot find the address of %s: %s", spec, host,
			 sys ? strerror(sys) : gai_strerror(r));
		return sys ? -sys : -EADDRNOTAVAIL; /* never 0: a caller would take it for fd 0 */
	}
	/* a name's addresses in getaddrinfo's order, the first that binds */
	for (const struct addrinfo *a = list; a && fd < 0; a = a->ai_next)
		fd = listen_on(a->ai_addr, a->ai_addrlen, flags, SOMAXCONN, &made);
	freeaddrinfo(list);
	if (fd < 0)
		snprintf(err, err_size, "'%s': %s", spec, bind_failure(-fd));
	return fd;
}
