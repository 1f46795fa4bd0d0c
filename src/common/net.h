/* A server's listening address: "HOST:PORT" split, and a TCP socket bound and listening
 * on a numeric address (the CAS's and the worker's). */
#ifndef TEEPY_COMMON_NET_H
#define TEEPY_COMMON_NET_H

#include <stddef.h>

/* "HOST:PORT" or "[V6]:PORT" into host (size bytes) and port (0 to 65535). Returns 0
 * or -EINVAL; host is not checked to be an address. */
int tp_split_listen(const char *s, char *host, size_t size, unsigned *port);

/* A non-blocking, close-on-exec TCP socket listening on host (a numeric IPv4 or IPv6
 * address) and port (0: any free one), SO_REUSEADDR set; the port bound goes to
 * *bound. Returns the fd, or -errno with one line in err (a port in use is said as
 * such). */
int tp_listen_tcp(const char *host, unsigned port, unsigned *bound, char *err, size_t err_size);

#endif
