/* The cache of verified sealed roots: a directory per (manifest, teepy) holding the
 * files a fill verified, which later runs of a bundle with the same manifest bind
 * read-only into their root instead of reading and hashing the host's files again.
 * Internal to the runner; the state an invocation holds is in runner.h. */
#ifndef TEEPY_RUNNER_CACHE_H
#define TEEPY_RUNNER_CACHE_H

#include "runner.h"

/* Decides whether a sealed invocation uses a cache and finds its entry: sets
 * inv->cache (state, why, descriptors). A cache directory that fails the checks
 * (not a tmpfs, another owner, a mode other than 0700, a symbolic link) is said in
 * one warning and the run goes on without it. Never fails the run. */
void tp_cache_open(struct tp_invocation *inv);

/* Before the spawn, for a cache hit or miss: a miss fills a new entry (each file
 * verified over the bytes written, then renamed into place), a hit checks the
 * bundle's own blobs against the manifest (with a pending signer: later, in
 * tp_cache_settle); a verified entry joins the index; then the entry's trees join
 * the plan as read-only binds. Returns 0, or -1 with out said (a refusal, as a
 * fill's). */
int tp_cache_root(struct tp_invocation *inv, struct tp_outcome *out);

/* Before a sealed bundle is verified (its file read, tp_bundle_file_read): whether
 * the cache's index names an entry for this bundle file and this teepy. If so, the
 * key is set (inv->cache.foreseen) and the cache directory kept open, and the run
 * may check the signature on another thread (plan.c's open_sealed); the key made
 * from the verified manifest must then be the same (tp_cache_settle). */
bool tp_cache_foresee(struct tp_invocation *inv);

/* A hit whose signer was pending, once it is settled: the foreseen key checked
 * against the verified manifest's, and the bundle's blobs against the manifest, as
 * tp_cache_root does on a hit otherwise. Returns 0, or -1 with out said. */
int tp_cache_settle(struct tp_invocation *inv, struct tp_outcome *out);

/* Closes what tp_cache_open opened. */
void tp_cache_close(struct tp_cache *cache);

#endif
