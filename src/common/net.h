/* A server's listening socket: TCP, bound and listening on a numeric address (the
 * CAS's and the worker's) or on a name's (teepy run --listen's). Its address is
 * split by hostport.h. */
#ifndef TEEPY_COMMON_NET_H
#define TEEPY_COMMON_NET_H

#include <stddef.h>

/* How tp_listen_tcp and tp_listen_spec make their socket. */
enum tp_listen_flags {
	/* accept(2) waits for a connection: for a program that takes the socket as it is;
	 * without it the socket is non-blocking, for an event loop (libmicrohttpd's) */
	TP_LISTEN_BLOCKING = 1 << 0,
};

/* A close-on-exec TCP socket listening on host (a numeric IPv4 or IPv6 address) and
 * port (0: any free one), SO_REUSEADDR set, non-blocking unless flags (enum
 * tp_listen_flags) say otherwise; the port bound goes to *bound. Returns the fd, or
 * -errno with one line in err (a port in use is said as such). */
int tp_listen_tcp(const char *host, unsigned port, int flags, unsigned *bound, char *err,
		  size_t err_size);

/* The same, on SPEC as a person writes it: "127.0.0.1:8000", "[::1]:8000",
 * "localhost:0", HOST a numeric address or a name (each of its addresses tried in turn),
 * PORT digits. Backlog SOMAXCONN. Returns the fd, or -errno with one line in err that
 * quotes SPEC and says the fix (without the flag's name); nothing is left open. */
int tp_listen_spec(const char *spec, int flags, char *err, size_t err_size);

#endif
