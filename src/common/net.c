/* A server's listening address and socket (net.h). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int tp_split_listen(const char *s, char *host, size_t size, unsigned *port)
{
	const char *colon = strrchr(s, ':'), *h = s;
	size_t n;
	char *end;
	unsigned long p;

	if (!colon)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (s[0] == '[') {
		if (n < 2 || s[n - 1] != ']')
			return -EINVAL;
		h = s + 1;
		n -= 2;
	}
	if (n == 0 || n >= size)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || p > 65535)
		return -EINVAL;
	*port = (unsigned)p;
	return 0;
}

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
