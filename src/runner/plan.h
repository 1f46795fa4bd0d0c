/* The runner's planning: from a config to an invocation ready to spawn (its root,
 * sys.path, environment and boot payload). Internal to the runner. */
#ifndef TEEPY_RUNNER_PLAN_H
#define TEEPY_RUNNER_PLAN_H

#include "runner.h"

/* Sets out->end and out->message; returns -1, for `return fail(...)`. */
int tp_runner_fail(struct tp_outcome *out, enum tp_end end, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Finds the runtime and opens the script, or the bundle (its signer trusted, or
 * pending: tp_plan_settle; its manifest parsed). Returns 0, or -1 with out->end
 * and out->message set. */
int tp_plan_open(struct tp_invocation *inv, struct tp_outcome *out);

/* A sealed invocation whose signer is pending (inv->pending: plan.c's open_sealed):
 * libcrypto loaded, the signature checked and the signer settled as the open
 * would have, and the warnings held meanwhile said. Returns 0 (also when nothing
 * was pending) or -1 with out said. */
int tp_plan_settle(struct tp_invocation *inv, struct tp_outcome *out);

/* After a failure said in out while the signer was pending: the refusals a run
 * without the cache's index says first (the signer's, a changed blob's) take its
 * place. Returns -1. */
int tp_plan_settle_first(struct tp_invocation *inv, struct tp_outcome *out);

/* A warning about the invocation (cfg->warn), held while its signer is pending. */
void tp_plan_warn(struct tp_invocation *inv, const char *line);

/* Plans the root, sys.path and the final limits, and checks that the memory limit
 * holds the input and what the root takes of it. Returns 0 or -1 as above. */
int tp_plan_root(struct tp_invocation *inv, struct tp_outcome *out);

/* Whether a sealed invocation may take the host file PATH (normal, absolute: as
 * the manifest names it, or where it leads) as a system file: it lies under a
 * system tree (tp_system_tree_covers) or an --allow path. No OS calls. */
bool tp_plan_may_take(const struct tp_invocation *inv, const char *path);
/* Landlock's read rights, granted on what the root shows and on nothing above it:
 * each bind, device, runtime file (with its directory, which import lists),
 * sys.path directory and file teepy writes, and for a sealed root (m, else NULL)
 * the directories its files are written into (a file directly in / alone). The
 * directories between them and / can be walked through, not listed or read.
 * Scratch has a rule of its own; a symbolic link leads into one of these or
 * nowhere. None lies beneath another. Pure. Returns 0 or -ENOMEM. */
int tp_plan_read_trees(const struct tp_root_plan *plan, const struct tp_manifest *m,
		       struct tp_strlist *trees);

/* Where a sealed invocation's files come from: the bundle's blobs and the host's
 * system files it may take (contexts filled in by the call, kept by the caller). */
void tp_plan_sources(const struct tp_invocation *inv, struct tp_blob_source_ctx *blob_ctx,
		     struct tp_host_source_ctx *host_ctx, struct tp_file_source *blobs,
		     struct tp_file_source *host);

/* The service's whole environment: no host variable, a fixed locale, BLAS/OpenMP
 * thread caps, the manifest's variables, then the config's. Returns 0 or -ENOMEM. */
int tp_plan_env(struct tp_invocation *inv);

/* The boot payload (channel/channel.h): the stage-2 filter, the entry, sys.argv,
 * sys.path, the data count and the preload modules. Returns 0, -EMSGSIZE when it
 * would be larger than the channel carries, or -ENOMEM. */
int tp_plan_boot(const struct tp_invocation *inv, uint8_t **data, size_t *size);

/* The seccomp policy of the run (TP_SECCOMP_* bits): what its policy adds */
unsigned tp_seccomp_policy(const struct tp_invocation *inv);

/* The output volume (volume.c). prepare checks its directory before the run (the
 * key, the index, cfg->expect_version) and makes the hidden sibling the next
 * version is written into; 0, or -1 with out said. reach opens the service's /out
 * through the root of pid (the reaper) while the service runs, and keeps it; 0 or
 * -errno with the reason in err. publish, after a normal end (out->end a result or
 * none), seals every file of /out into the sibling and switches it in for the
 * directory; a failure is said in out. close frees what is left: a sibling not
 * switched in is removed. */
int tp_out_volume_prepare(struct tp_invocation *inv, struct tp_outcome *out);
int tp_out_volume_reach(struct tp_out_volume *v, pid_t pid, char *err, size_t err_size);
void tp_out_volume_publish(struct tp_invocation *inv, struct tp_outcome *out);
void tp_out_volume_close(struct tp_out_volume *v);

#endif
