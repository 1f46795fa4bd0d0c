/* The load generators' shared pieces (loadlib.h). */
#include "loadlib.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", load_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int add_sample(struct samples *s, double v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4096;
		double *grown = realloc(s->v, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		s->v = grown;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

void merge_samples(struct samples *to, const struct samples *from)
{
	for (size_t i = 0; i < from->n; i++)
		if (add_sample(to, from->v[i]) < 0)
			die("out of memory");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void sort_samples(struct samples *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(double), cmp_double);
}

double percentile(const struct samples *s, double p)
{
	double k, frac;
	size_t lo, hi;

	if (!s->n)
		return NAN;
	k = (double)(s->n - 1) * p / 100.0;
	lo = (size_t)k;
	hi = lo + 1 < s->n ? lo + 1 : lo;
	frac = k - (double)lo;
	return s->v[lo] + (s->v[hi] - s->v[lo]) * frac;
}

double mean(const struct samples *s)
{
	double sum = 0;

	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	return s->n ? sum / (double)s->n : NAN;
}

unsigned long count_option(const char *name, const char *text, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || v > max)
		die("--%s %.40s: not a whole number up to %lu", name, text, max);
	return v;
}
