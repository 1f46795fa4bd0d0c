/* The limits of one invocation: one record, used by the options, the manifest,
 * the runner and the sandbox's enforcement. Pure: no OS calls. */
#ifndef TEEPY_COMMON_LIMITS_H
#define TEEPY_COMMON_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_DEFAULT_MEMORY     (3ULL << 30)
#define TP_DEFAULT_CPU_MS     (30ULL * 60 * 1000)
#define TP_DEFAULT_TIMEOUT_MS (60ULL * 60 * 1000)
#define TP_DEFAULT_THREADS    64u
#define TP_DEFAULT_LOG_MAX    (16ULL << 20)
#define TP_MAX_THREADS	      4096u
/* A CPU-time or wall-clock limit that is off (a server's, teepy run --listen): the
 * most a manifest may sign, 136 years */
#define TP_LIMIT_OFF_MS (UINT32_MAX * 1000ULL)

struct tp_limits {
	uint64_t memory_bytes;	/* everything the service holds, a sealed root's files included */
	uint64_t cpu_ms;	/* CPU time of all its threads and processes */
	uint64_t timeout_ms;	/* wall clock, from spawn to the end */
	uint64_t scratch_bytes; /* a private tmpfs at /tmp; 0 = none */
	/* the output volume's tmpfs at /out; 0 = none; a setting of whoever runs it
	 * (--output-max), never a bundle's */
	uint64_t output_bytes;
	unsigned threads; /* threads (and processes) at once */
	/* the service's stdout and stderr relayed at most this much (the rest is
	 * counted and dropped); a setting of whoever runs it, never a bundle's */
	uint64_t log_max_bytes;
};

/* Which limits a person set (a flag or TEEPY_*): a bundle's signed limits are only
 * tightened by those. */
enum tp_limit_bit {
	TP_LIMIT_MEMORY = 1u << 0,
	TP_LIMIT_CPU = 1u << 1,
	TP_LIMIT_TIMEOUT = 1u << 2,
	TP_LIMIT_SCRATCH = 1u << 3,
	TP_LIMIT_THREADS = 1u << 4,
	TP_LIMIT_LOG = 1u << 5,
};

/* The defaults of `teepy run`: 3 GiB, 30 min CPU, 60 min wall clock, 64 threads, no
 * scratch, 16 MiB of output relayed. */
struct tp_limits tp_limits_default(void);

/* A CPU-time or wall-clock limit in words: "off" (TP_LIMIT_OFF_MS and above), else as
 * tp_format_duration writes it. Returns buf. */
const char *tp_limit_format_ms(uint64_t ms, char *buf, size_t size);

/* The signed limits of a bundle, tightened by the ones a person gave (GIVEN, a set of
 * enum tp_limit_bit): a given limit replaces the signed one only when it is smaller.
 * Scratch is the bundle's policy and is kept; the output cap and the output volume's
 * size are the person's. */
struct tp_limits tp_limits_tighten(const struct tp_limits *signed_limits,
				   const struct tp_limits *given_limits, unsigned given);

#endif
