/* Debian's /etc/alternatives in an unsealed run's root, decided from facts about
 * the host kept between runs in the cache directory (alternatives.c says which). */
#ifndef TEEPY_RUNNER_ALTERNATIVES_H
#define TEEPY_RUNNER_ALTERNATIVES_H

#include "../sandbox/root.h"

#include <stddef.h>

/* The file in the cache directory that holds those facts */
#define TP_ALTERNATIVES_FACTS "alternatives"

/* Adds to plan the links of /etc/alternatives whose targets it shows (and the
 * links they pass through). cache_fd: a cache directory already checked
 * (tp_cache_dir_open), where the facts are read and kept; -1: taken afresh and not
 * kept. Returns 0 or -ENOMEM. */
int tp_alternatives_plan(struct tp_root_plan *plan, int cache_fd);

/* Parses the facts file's bytes as a run would, without asking the host whether
 * they still hold: the number of links, or -1 when they are not a facts file (for
 * the fuzz target). */
int tp_alternatives_parse(const char *bytes, size_t size);

#endif
