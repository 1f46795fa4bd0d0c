/* The set of the last keys seen (seen.h): linear probing, deletion by moving the
 * entries after a freed slot back (no tombstones), so a lookup never walks more than
 * the keys that share its neighbourhood. */
#include "seen.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int tp_seen_init(struct tp_seen *s, size_t cap)
{
	memset(s, 0, sizeof(*s));
	if (cap < 1 || cap > (1u << 30))
		return -EINVAL;
	s->cap = cap;
	for (s->slot_count = 2; s->slot_count < 2 * cap;)
		s->slot_count *= 2;
	s->keys = calloc(cap, TP_SEEN_KEY);
	s->slots = calloc(s->slot_count, sizeof(*s->slots));
	if (!s->keys || !s->slots) {
		tp_seen_free(s);
		return -ENOMEM;
	}
	return 0;
}

void tp_seen_free(struct tp_seen *s)
{
	free(s->keys);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

static size_t home(const struct tp_seen *s, const uint8_t *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (size_t)h & (s->slot_count - 1);
}

/* key's slot, or the empty one where it would go (*found false). */
static size_t slot_of(const struct tp_seen *s, const uint8_t *key, bool *found)
{
	size_t i;

	for (i = home(s, key); s->slots[i]; i = (i + 1) & (s->slot_count - 1))
		if (memcmp(s->keys[s->slots[i] - 1], key, TP_SEEN_KEY) == 0) {
			*found = true;
			return i;
		}
	*found = false;
	return i;
}

/* Slot i emptied; the entries after it in its run move back where their home allows
 * (an entry at j may move to i unless its home lies cyclically in (i, j]). */
static void remove_slot(struct tp_seen *s, size_t i)
{
	size_t j = i, mask = s->slot_count - 1;

	s->slots[i] = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (!s->slots[j])
			return;
		size_t k = home(s, s->keys[s->slots[j] - 1]);
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stays) {
			s->slots[i] = s->slots[j];
			s->slots[j] = 0;
			i = j;
		}
	}
}

int tp_seen_add(struct tp_seen *s, const uint8_t key[TP_SEEN_KEY])
{
	bool found;
	size_t i;

	slot_of(s, key, &found);
	if (found)
		return 1;
	if (s->count == s->cap) { /* the ring's next is the oldest */
		i = slot_of(s, s->keys[s->next], &found);
		if (found)
			remove_slot(s, i);
		s->count--;
	}
	memcpy(s->keys[s->next], key, TP_SEEN_KEY);
	i = slot_of(s, key, &found);
	s->slots[i] = (uint32_t)s->next + 1;
	s->next = (s->next + 1) % s->cap;
	s->count++;
	return 0;
}
