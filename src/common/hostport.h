/* A server's listening address as a person writes it ("127.0.0.1:8000",
 * "[::1]:8000", "localhost:0") split into host and port: a parser of its own,
 * touching no OS (net.h binds what it gives). */
#ifndef TEEPY_COMMON_HOSTPORT_H
#define TEEPY_COMMON_HOSTPORT_H

#include <stddef.h>

/* s as host and port: "[V6]:PORT", or "HOST:PORT" with no other colon in HOST (an
 * unbracketed "::1:8080" is refused: it could be an address without a port). PORT is
 * digits alone, 0 to 65535 (no sign, no space). Host goes into host (size bytes),
 * unchecked as an address. Returns 0, or -EINVAL with one line in err naming the
 * problem. Every --listen reads it: teepy run's, serve's and the CAS's. */
int tp_split_host_port(const char *s, char *host, size_t size, unsigned *port, char *err,
		       size_t err_size);

/* The same, HOST a numeric IPv4 or IPv6 address (the worker's and the CAS's --listen,
 * which resolve no names). */
int tp_split_numeric_host_port(const char *s, char *host, size_t size, unsigned *port, char *err,
			       size_t err_size);

#endif
