/* What the load generators share (teepy-cas-load, teepy-worker-load): one-line
 * errors, a monotonic clock, latency samples and their figures, count options. */
#ifndef TEEPY_BENCH_LOADLIB_H
#define TEEPY_BENCH_LOADLIB_H

#include <stddef.h>

/* The program's name, first on each error line: each program defines it. */
extern const char load_prog[];

/* "PROG: MESSAGE" on stderr, then exit 2 (a usage error, or out of memory). */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* CLOCK_MONOTONIC in milliseconds. */
double now_ms(void);

struct samples {
	double *v; /* ms */
	size_t n, cap;
};

/* Returns 0 or -ENOMEM. */
int add_sample(struct samples *s, double v);
/* Every value of from added to to (dies when out of memory). */
void merge_samples(struct samples *to, const struct samples *from);
void sort_samples(struct samples *s);
/* Linear-interpolated percentile p (0 to 100) of sorted values, as bench/benchlib.py's;
 * NaN without values. */
double percentile(const struct samples *s, double p);
/* NaN without values. */
double mean(const struct samples *s);

/* --NAME TEXT as a whole number up to max, or die. */
unsigned long count_option(const char *name, const char *text, unsigned long max);

#endif
