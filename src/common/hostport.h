/* A server's listening address as a person writes it ("127.0.0.1:8000",
 * "[::1]:8000", "localhost:0") split into host and port: a parser of its own,
 * touching no OS (net.h binds what it gives). */
#ifndef TEEPY_COMMON_HOSTPORT_H
#define TEEPY_COMMON_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

/* s as host and port: "[V6]:PORT", or the last colon's split of "HOST:PORT". Loose, as
 * the CAS and serve have always read it: "::1:8080" is [::1]:8080 and PORT is what strtol
 * reads (" 80", "+80"). Strict, teepy run --listen's: "::1:8080" is refused (it could be
 * an address without a port) and PORT may not start with a sign or a space. Host goes
 * into host (size bytes), unchecked as an address; port is 0 to 65535. Returns 0, or
 * -EINVAL with one line in err (NULL with err_size 0 for none). */
int tp_split_host_port(const char *s, bool loose, char *host, size_t size, unsigned *port,
		       char *err, size_t err_size);

/* The loose reading, without a line: the CAS's and serve's --listen, whose callers
 * say their own. */
int tp_split_listen(const char *s, char *host, size_t size, unsigned *port);

#endif
