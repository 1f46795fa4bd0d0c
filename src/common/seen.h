/* A bounded set of the last keys seen (32 bytes each, random: their bytes are their
 * hash), for refusing what comes twice: a ring of the last `cap` keys, looked up by
 * open addressing. Pure. */
#ifndef TEEPY_COMMON_SEEN_H
#define TEEPY_COMMON_SEEN_H

#include <stddef.h>
#include <stdint.h>

#define TP_SEEN_KEY 32

struct tp_seen {
	uint8_t (*keys)[TP_SEEN_KEY]; /* the ring */
	uint32_t *slots;	      /* 1 + an index into keys, or 0: empty */
	size_t cap, slot_count;	      /* slot_count: a power of two, at least 2 * cap */
	size_t next, count;
};

/* An empty set of at most cap keys (1 to 2^30). Returns 0, -EINVAL or -ENOMEM. */
int tp_seen_init(struct tp_seen *s, size_t cap);
void tp_seen_free(struct tp_seen *s);

/* Whether key is among the last cap keys added; if not, it is added (the oldest
 * forgotten when full). Returns 1 (seen) or 0 (added). */
int tp_seen_add(struct tp_seen *s, const uint8_t key[TP_SEEN_KEY]);

#endif
