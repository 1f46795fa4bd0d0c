/* The socket a server is handed (src/cli/listen.c) and the CAS's and the worker's
 * (src/common/net.c): addresses, refusals, systemd's descriptors. Real sockets on
 * loopback. */
#include "test.h"
#include "../../src/cli/listen.h"
#include "../../src/common/hostport.h"
#include "../../src/common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 256; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static unsigned short port_of(int fd)
{
	struct sockaddr_in in;
	socklen_t len = sizeof(in);
	return getsockname(fd, (struct sockaddr *)&in, &len) == 0 ? ntohs(in.sin_port) : 0;
}

static void test_a_listen_address_is_bound_or_refused_in_one_line(void)
{
	char err[256], where[64], spec[64];
	int before = open_fds();
	int fd = tp_listen_open("127.0.0.1:0", err, sizeof(err));
	int value = 0;
	socklen_t len = sizeof(value);

	CHECK(fd >= 0);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) == 0 && value == 1);
	CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port_of(fd));
	CHECK_STR(tp_listen_describe(fd, where, sizeof(where)), spec);
	/* the same port again: in use */
	CHECK(tp_listen_open(spec, err, sizeof(err)) == -1);
	CHECK(strstr(err, "the address is in use") != NULL);
	close(fd);

	static const char *const bad[][2] = {
		{ "8000", "has no port" },
		{ ":8000", "has no address" },
		{ "127.0.0.1:", "the port must be a number from 0 to 65535" },
		{ "127.0.0.1:70000", "the port must be a number from 0 to 65535" },
		{ "127.0.0.1:-1", "the port must be a number from 0 to 65535" },
		{ "127.0.0.1:http", "the port must be a number from 0 to 65535" },
		{ "::1:8000", "put an IPv6 address in brackets" },
		{ "[::1]8000", "is not [ADDRESS]:PORT" },
		{ "192.0.2.1:8000", "not an address of this host" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(tp_listen_open(bad[i][0], err, sizeof(err)) == -1);
		if (!strstr(err, bad[i][1]))
			fprintf(stderr, "  %s: %s\n", bad[i][0], err);
		CHECK(strstr(err, bad[i][1]) != NULL && !strchr(err, '\n'));
	}
	CHECK(open_fds() == before); /* nothing left open */
}

static void test_a_handed_descriptor_must_listen(void)
{
	char err[256], env[32];
	int sv[2], file = open("/dev/null", O_RDONLY);
	int listening = tp_listen_open("127.0.0.1:0", err, sizeof(err));

	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	CHECK(tp_listen_check_fd(listening, err, sizeof(err)) == 0);
	CHECK(tp_listen_check_fd(1000, err, sizeof(err)) == -1 && strstr(err, "not open"));
	CHECK(tp_listen_check_fd(file, err, sizeof(err)) == -1 && strstr(err, "is not a socket"));
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(tp_listen_check_fd(sv[0], err, sizeof(err)) == -1 && strstr(err, "does not listen"));
	close(sv[0]);
	close(sv[1]);
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
	CHECK(tp_listen_check_fd(sv[0], err, sizeof(err)) == -1 && strstr(err, "not a stream"));
	close(sv[0]);
	close(sv[1]);

	/* a listening stream socket of another protocol than TCP (MPTCP here, where the
	 * kernel has it; SCTP and TIPC alike): the sandbox's rules are written for TCP */
	int mptcp = socket(AF_INET, SOCK_STREAM, 262 /* IPPROTO_MPTCP */);
	struct sockaddr_in any = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (mptcp >= 0 && bind(mptcp, (struct sockaddr *)&any, sizeof(any)) == 0 &&
	    listen(mptcp, 1) == 0)
		CHECK(tp_listen_check_fd(mptcp, err, sizeof(err)) == -1 &&
		      strstr(err, "is not a TCP socket"));
	if (mptcp >= 0)
		close(mptcp);

	/* systemd's: fd 3 onward, LISTEN_FDS of them, to LISTEN_PID */
	setenv("LISTEN_FDS", "1", 1);
	CHECK(tp_listen_check_fd(listening, err, sizeof(err)) == (listening == 3 ? 0 : -1));
	if (listening != 3)
		CHECK(strstr(err, "not one of the 1 descriptors systemd passed") != NULL);
	snprintf(env, sizeof(env), "%d", listening - 2);
	setenv("LISTEN_FDS", env, 1);
	CHECK(tp_listen_check_fd(listening, err, sizeof(err)) == 0);
	snprintf(env, sizeof(env), "%ld", (long)getpid() + 1);
	setenv("LISTEN_PID", env, 1);
	CHECK(tp_listen_check_fd(listening, err, sizeof(err)) == -1 &&
	      strstr(err, "not teepy's pid"));
	snprintf(env, sizeof(env), "%ld", (long)getpid());
	setenv("LISTEN_PID", env, 1);
	CHECK(tp_listen_check_fd(listening, err, sizeof(err)) == 0);
	setenv("LISTEN_FDS", "x", 1);
	CHECK(tp_listen_check_fd(listening, err, sizeof(err)) == -1 && strstr(err, "not a count"));
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	close(listening);
	close(file);
}

static void test_a_handed_socket_blocks_and_a_servers_does_not(void)
{
	char err[256];
	unsigned bound;
	int handed = tp_listen_open("127.0.0.1:0", err, sizeof(err));
	int server = tp_listen_tcp("127.0.0.1", 0, 0, &bound, err, sizeof(err));

	/* the service's accept() waits; libmicrohttpd's event loop must not */
	CHECK(handed >= 0 && (fcntl(handed, F_GETFL) & O_NONBLOCK) == 0);
	CHECK(server >= 0 && (fcntl(server, F_GETFL) & O_NONBLOCK) != 0);
	CHECK(bound == port_of(server) && bound != 0);
	close(handed);
	close(server);
}

static void test_serve_and_cas_read_a_listen_address_as_run_does(void)
{
	static const char *const bad[][2] = {
		{ "::1:8080", "put an IPv6 address in brackets" },
		{ "127.0.0.1:+80", "the port must be a number from 0 to 65535" },
		{ "127.0.0.1: 80", "the port must be a number from 0 to 65535" },
		{ "127.0.0.1:\t80", "the port must be a number from 0 to 65535" },
		{ "127.0.0.1:80 ", "the port must be a number from 0 to 65535" },
		{ "[127.0.0.1]:80", "only an IPv6 address goes in brackets" },
		{ "127.0.0.1:70000", "the port must be a number from 0 to 65535" },
		{ "[::1]8000", "is not [ADDRESS]:PORT" },
		{ "localhost:8080", "the address must be numeric" },
	};
	char host[128], err[256];
	unsigned port = 0;

	CHECK(tp_split_numeric_host_port("[::1]:8443", host, sizeof(host), &port, err,
					 sizeof(err)) == 0);
	CHECK_STR(host, "::1");
	CHECK(port == 8443);
	CHECK(tp_split_numeric_host_port("127.0.0.1:0", host, sizeof(host), &port, err,
					 sizeof(err)) == 0);
	CHECK_STR(host, "127.0.0.1");
	CHECK(port == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(tp_split_numeric_host_port(bad[i][0], host, sizeof(host), &port, err,
						 sizeof(err)) == -EINVAL);
		if (!strstr(err, bad[i][1]))
			fprintf(stderr, "  %s: %s\n", bad[i][0], err);
		CHECK(strstr(err, bad[i][1]) != NULL && !strchr(err, '\n'));
	}
	/* teepy run --listen refuses the same, in the same words (it resolves names) */
	CHECK(tp_listen_open("::1:8080", err, sizeof(err)) == -1 &&
	      strstr(err, "put an IPv6 address in brackets"));
	CHECK(tp_listen_open("127.0.0.1:+80", err, sizeof(err)) == -1 &&
	      strstr(err, "the port must be a number from 0 to 65535"));
}

TESTS(listen_tests) = {
	{ "a_listen_address_is_bound_or_refused_in_one_line",
	  test_a_listen_address_is_bound_or_refused_in_one_line },
	{ "a_handed_descriptor_must_listen", test_a_handed_descriptor_must_listen },
	{ "a_handed_socket_blocks_and_a_servers_does_not",
	  test_a_handed_socket_blocks_and_a_servers_does_not },
	{ "serve_and_cas_read_a_listen_address_as_run_does",
	  test_serve_and_cas_read_a_listen_address_as_run_does },
	END_TESTS,
};
