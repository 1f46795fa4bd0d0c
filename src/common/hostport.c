/* A listening address as a person writes it, split into host and port (hostport.h):
 * a parser, touching no OS. */
#include "hostport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tp_split_host_port(const char *s, char *host, size_t size, unsigned *port, char *err,
		       size_t err_size)
{
	const char *colon, *h = s, *digits;
	size_t n;
	long p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			snprintf(err, err_size,
				 "'%s' is not [ADDRESS]:PORT (an IPv6 address in brackets, then "
				 ":PORT)",
				 s);
			return -EINVAL;
		}
		h = s + 1;
		n = (size_t)(close - h);
		colon = close + 1;
		if (n && !memchr(h, ':', n)) {
			snprintf(err, err_size,
				 "'%s': only an IPv6 address goes in brackets (127.0.0.1:8000)", s);
			return -EINVAL;
		}
	} else {
		if (!(colon = strrchr(s, ':'))) {
			snprintf(err, err_size,
				 "'%s' has no port (give ADDR:PORT, e.g. 127.0.0.1:8000)", s);
			return -EINVAL;
		}
		n = (size_t)(colon - s);
		if (memchr(s, ':', n)) {
			snprintf(err, err_size,
				 "'%s': put an IPv6 address in brackets ([::1]:8000)", s);
			return -EINVAL;
		}
	}
	if (n == 0) {
		snprintf(err, err_size,
			 "'%s' has no address (127.0.0.1 for this host only, 0.0.0.0 for every "
			 "interface)",
			 s);
		return -EINVAL;
	}
	if (n >= size) {
		snprintf(err, err_size, "'%.64s...': the address is too long", s);
		return -EINVAL;
	}
	digits = colon + 1;
	errno = 0;
	p = strtol(digits, NULL, 10);
	if (!*digits || digits[strspn(digits, "0123456789")] || errno || p > 65535) {
		snprintf(err, err_size, "'%s': the port must be a number from 0 to 65535", s);
		return -EINVAL;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (unsigned)p;
	return 0;
}

int tp_split_numeric_host_port(const char *s, char *host, size_t size, unsigned *port, char *err,
			       size_t err_size)
{
	unsigned char addr[sizeof(struct in6_addr)];

	if (tp_split_host_port(s, host, size, port, err, err_size) < 0)
		return -EINVAL;
	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
		return 0;
	snprintf(err, err_size, "'%s': the address must be numeric (127.0.0.1:8080, [::1]:8080)",
		 s);
	return -EINVAL;
}
