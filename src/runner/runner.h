/* One invocation as a library: a config in, a structured outcome out. The runner
 * plans the root, fills a sealed one, spawns, serves the control channel, watches
 * the limits and the wall clock, and judges how the run ended. It prints nothing,
 * chooses no exit code and keeps no process-global state: one process may run many
 * invocations, one after another, or from several threads through one spawning
 * thread (see tp_invoke). */
#ifndef TEEPY_RUNNER_RUNNER_H
#define TEEPY_RUNNER_RUNNER_H

#include "fill.h"
#include "../common/limits.h"
#include "../manifest/bundle_file.h"
#include "../manifest/engine.h"
#include "../manifest/manifest.h"
#include "../sandbox/limits.h"
#include "../sandbox/root.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

struct tp_trace_log;
struct tp_invocation;
struct tp_volume_index;
struct tp_volume_entry;
struct tp_pfs_reader;

/* how long a zygote's run may last (its worker stops it long before) */
#define TP_ZYGOTE_LIFETIME_MS (30ULL * 24 * 3600 * 1000)

/* the output volume's directory inside the root (tp_run_config.output_volume) */
#define TP_OUT_DIR "/out"
/* teepy build's sample run has a /out of a quarter of its memory, at most this */
#define TP_SAMPLE_OUT_MAX (64ULL << 20)

/* Where the service's result goes. open is called once, on the first result frame,
 * and returns an fd to write it to, or -errno (the result is then dropped and the
 * run ends as an internal error); NULL: the runner keeps the result in memory
 * (tp_outcome.result). */
struct tp_result_sink {
	int (*open)(void *ctx);
	void *ctx;
	const char *name; /* for messages: "stdout", the file's name */
	bool is_file;	  /* a result cut short is not written (the sink removes it) */
};

/* Where the service's stdout and stderr (merged, as it writes them) go: write sees
 * every piece as it streams, up to limits.log_max_bytes in all. NULL: the runner
 * keeps that much of it (tp_outcome.log). */
struct tp_log_sink {
	void (*write)(void *ctx, const char *bytes, size_t size);
	void *ctx;
};

/* A shell's prompt, as the runner hands it to read_line (tp_run_config.shell). */
struct tp_shell_prompt {
	const char *prompt; /* the service's bytes, not NUL-terminated */
	size_t prompt_size;
	/* readable once the run has ended (a timeout, a cancel, a kill): read_line then
	 * returns -EPIPE at once */
	int ended_fd;
	/* readable when the service has written more while the person types (a thread
	 * of its): relay(p) shows some of it through the log sink now, and returns its
	 * last byte, or -1 if none (at the output's end it sets output_fd to -1) */
	int output_fd;
	int (*relay)(struct tp_shell_prompt *p);
	/* Tab: the console's completions of word (size bytes), each ended by a newline,
	 * in *list (malloc'd, the caller frees it): the service's bytes, unchecked. A
	 * Ctrl-C meanwhile interrupts the console's completer. Returns 0, or -errno when
	 * no answer will come (the run has ended, the channel broke): read_line then
	 * returns that. */
	int (*complete)(struct tp_shell_prompt *p, const char *word, size_t size, char **list,
			size_t *list_size);
	void *runner; /* relay's and complete's */
};

struct tp_run_config {
	/* what runs: a script on this host, or a bundle (.tpy) */
	const char *script;	 /* path as the person gave it; messages name it */
	bool is_bundle;		 /* decided by the caller (tp_bundle_path_is_bundle) */
	const char *const *args; /* sys.argv[1:] after the bundle's own, NULL-terminated */
	const char *home; /* the person's home directory (a script there is refused), or NULL */

	/* the request */
	const char *input;
	size_t input_size;
	const char *input_name; /* "--input", "--input-file F": for messages */
	const int *data_fds;	/* regular files, read from offset 0; the caller owns them */
	size_t data_count;
	size_t service_data_count; /* the first ones; the rest are task data */

	/* the limits: for a script these hold; for a bundle its signed limits hold,
	 * tightened by the ones in limits_given (enum tp_limit_bit) */
	struct tp_limits limits;
	unsigned limits_given;

	/* host paths the person allows, NULL-terminated: visible read-only in an
	 * unsealed run; a sealed bundle may take system files from under them too */
	const char *const *allow;

	/* policy of an unsealed run (a bundle's manifest sets its own) */
	const char *const *pythonpath; /* allowed, and on sys.path after the script's dir */
	bool allow_site_packages;
	/* a virtual environment (runner/venv.h): its site-packages on sys.path after the
	 * stdlib, its .pth files read; visible at its path, or at /venv in a traced
	 * build (whose bundle carries the files the sample run used). NULL: none */
	const char *venv;
	bool allow_processes;
	const char *const *env; /* NAME=VALUE added (a bundle's signed ones cannot change) */
	/* the interpreter of an unsealed run (0: CPython); a bundle runs on its
	 * manifest's, and is refused if engine_given names another */
	enum tp_engine engine;
	bool engine_given;

	/* sealed bundles: public-key files of the signers whose bundles may run,
	 * NULL-terminated; trust_source names where they came from in messages
	 * ("--trust", "TEEPY_TRUSTED_SIGNERS entry") */
	const char *const *trust_paths;
	const char *trust_source;
	bool insecure_any_signer;
	/* the key an encrypted bundle's files are sealed with (TP_SYMKEY_SIZE bytes, in
	 * the caller's locked memory), or NULL; not read after on_filled */
	const uint8_t *bundle_key;

	/* an output volume (docs/protected-files.md, "Output volumes"): the service gets
	 * a writable tmpfs at /out of limits.output_bytes (0: a quarter of the memory
	 * limit); when it ends normally (status 0, with a result or without) every file
	 * there is sealed under volume_key (TP_SYMKEY_SIZE bytes, in the caller's locked
	 * memory) into the directory output_volume as the volume's next version, which
	 * replaces the last one at once; after any other end the directory is as it was.
	 * NULL: none. With expect_version the volume must be at that version before the
	 * run (0: none yet), else the run is refused (TP_END_VOLUME_REFUSED). */
	const char *output_volume;
	const uint8_t *volume_key;
	bool expect_version_given;
	uint64_t expect_version;

	/* the cache of verified sealed roots (runner/cache.c): no_cache names why it is
	 * not used ("--no-cache"), NULL: it is; cache_dir is the one to use (tests), NULL:
	 * /run/teepy for root, runtime_dir/teepy for a user (runtime_dir: the caller's
	 * XDG_RUNTIME_DIR, NULL: none, and no cache) */
	const char *no_cache;
	uint64_t cache_max_bytes; /* the most its entries hold together */
	const char *cache_dir;
	const char *runtime_dir;

	/* descriptors the service gets at fd 4, 5, ... (a listening socket, a terminal) */
	const int *handed_fds;
	size_t handed_count;
	/* handed_fds[0] is a listening stream socket the service serves on (policy
	 * network "listen", docs/cli.md): it may accept on it, and make, bind and connect
	 * no socket still. A sealed bundle must have that policy, and this set to run */
	bool listen;
	/* with listen, an unsealed run: serve the script's WSGI callable of this name
	 * with the stdlib's wsgiref instead of running it as __main__ (NULL: run it) */
	const char *wsgi;

	/* teepy build: trace the run into trace_log (the app is seen at /app, as the
	 * bundle will have it) and import preload (may be NULL) before the entry */
	struct tp_trace_log *trace_log;
	const char *const *preload;

	struct tp_result_sink result;
	struct tp_log_sink log;

	/* a byte readable here stops the run (a signal handler writes it); -1: none */
	int cancel_fd;

	/* teepy shell: no script runs, but an interactive console whose every line
	 * read_line gives (struct tp_shell_prompt), on the thread serving the channel,
	 * once the service's output so far is relayed (so a statement's output comes
	 * before the next prompt). It returns TP_REPLY_OK with *line (malloc'd, the runner
	 * frees it) of *line_size bytes, TP_REPLY_EOF (the person left) or
	 * TP_REPLY_INTERRUPT (Ctrl-C at the prompt), or -errno when no line will come.
	 * PROMPT is refused on any other run. A byte readable at interrupt_fd (-1: none)
	 * while a statement runs interrupts it: SIGINT to the service, whose Python
	 * raises KeyboardInterrupt (not the sandbox's end). A bundle's shell runs in
	 * its sealed root as its service would (its sys.path, limits and policy), but
	 * with sys.argv [''] and no entry run: a debug run, whose caller marks its
	 * evidence so. */
	struct {
		int (*read_line)(void *ctx, struct tp_shell_prompt *p, char **line,
				 size_t *line_size);
		void *ctx;
		int interrupt_fd;
	} shell;

	/* the worker's zygote (docs/zygote.md): the interpreter imports the preload and
	 * then forks children on requests at handed_fds[0] (fd TP_ZYGOTE_FD inside)
	 * instead of running; it may make processes, and no wall clock ends it */
	bool zygote;

	/* optional observers, called on the invoking thread */
	void *observer;					/* their first argument */
	void (*warn)(void *observer, const char *line); /* one line, no prefix */
	/* the run is planned and its limits are in place; nothing has started yet */
	void (*on_planned)(void *observer, const struct tp_invocation *inv);
	/* the sealed root is filled and verified */
	void (*on_filled)(void *observer, const struct tp_invocation *inv);
	/* TEEPY_TIMING: a phase has ended (also called in the child until its exec) */
	void (*mark)(const char *phase);
};

/* How a run ended: the runner's verdict, which a command turns into an exit code
 * and the worker into an HTTP answer. */
enum tp_end {
	TP_END_RESULT,	    /* the service returned a result and ended normally */
	TP_END_FAILED,	    /* exception, syntax error, non-zero exit, crash, result cut short */
	TP_END_CONFIG,	    /* the config cannot run: a script, path, limit or input is wrong */
	TP_END_NO_RESULT,   /* the service ended without returning a result */
	TP_END_RULE,	    /* killed for a rule (tp_outcome.rule says which) */
	TP_END_MEMORY,	    /* memory limit exceeded */
	TP_END_CPU,	    /* CPU-time limit exceeded */
	TP_END_TIMEOUT,	    /* wall-clock timeout */
	TP_END_REFUSED,	    /* the bundle was refused: malformed, signer, a file changed */
	TP_END_KEY_MISSING, /* an encrypted bundle, and no key for it (cfg.bundle_key) */
	/* the output volume was refused before the run: another key, changed, or not at
	 * the version expected (cfg.expect_version) */
	TP_END_VOLUME_REFUSED,
	TP_END_INTERNAL,  /* the runner could not do its part */
	TP_END_CANCELLED, /* stopped through cancel_fd */
};

enum tp_rule {
	TP_RULE_NONE,
	TP_RULE_SYSCALL,     /* a system call the policy answers by ending the service */
	TP_RULE_CHANNEL,     /* malformed frames on the control channel */
	TP_RULE_RESULT_SIZE, /* a result larger than the memory limit */
};

struct tp_usage {
	uint64_t cpu_ms;	    /* every thread and process of the service */
	uint64_t peak_memory_bytes; /* the cgroup's peak, else the peak resident set */
	uint64_t wall_ms;	    /* from spawn to reaping */
};

struct tp_outcome {
	enum tp_end end;
	enum tp_rule rule;
	/* one line saying why, when end is not TP_END_RESULT ("" when the service
	 * already said it, as for a syntax error) */
	char message[1024];
	int wait_status; /* of the service process; -1 if it never started */

	bool have_result;
	uint64_t result_size;	/* bytes of the result */
	bool result_incomplete; /* the service ended while sending it: cut short */
	int result_error;	/* -errno writing it to the sink, 0 if none */
	char *result;		/* without a result sink: the bytes (malloc'd) */
	int result_fd;		/* with one: what open returned (-1 if never called) */

	int status_kind;       /* what the service said of its end (TP_STATUS_*, -1 none) */
	char status_name[128]; /* the exception's type, or the syntax/preload marker */
	bool preload_failed;   /* a preload module could not be imported */

	char *log; /* without a log sink: the first log_max_bytes of the output */
	size_t log_size;
	uint64_t log_relayed; /* bytes given to the sink or kept */
	uint64_t log_dropped; /* bytes past limits.log_max_bytes (or that memory refused) */

	struct tp_usage usage;
	struct rusage rusage;

	/* the output volume (cfg.output_volume): published as version, with files files
	 * of bytes plaintext bytes together */
	struct {
		bool published;
		uint64_t version;
		size_t files;
		uint64_t bytes;
	} volume;
};

enum tp_cache_state {
	TP_CACHE_OFF,  /* no cache: why says why */
	TP_CACHE_HIT,  /* the root is bound from a verified entry */
	TP_CACHE_MISS, /* the root is filled into a new entry, then bound from it */
};

/* An output volume's directory before and after a run (runner/volume.c). */
struct tp_out_volume {
	int parent_fd;	 /* the directory's parent, or -1 */
	char name[256];	 /* the directory's name in it */
	char stage[256]; /* the sibling the next version is written into */
	int stage_fd;	 /* that sibling, or -1 */
	bool exists;	 /* the directory was there (a volume, or empty) */
	bool give_owner; /* root publishing a user's: its files stay the user's */
	unsigned owner_uid, owner_gid;
	uint64_t version;      /* its version: 0 for none yet */
	uint8_t volume_id[32]; /* its id, or the new volume's */
	int out_fd;	       /* the service's /out, once reached, or -1 */
};

struct tp_cache {
	enum tp_cache_state state;
	char why[PATH_MAX + 160]; /* off: the reason; else the entry's path */
	char path[PATH_MAX];	  /* the cache directory */
	char key[65];		  /* the entry's name */
	int dir_fd;		  /* the checked cache directory, or -1 */
	int entry_fd;		  /* the entry the root is bound from, or -1 */
	bool warned;		  /* a warning said why the cache is off */
	/* the cache's index holds this bundle file's bytes as a verified run read
	 * them (cache.c's tp_cache_foresee): the signature is checked as the
	 * interpreter starts */
	bool indexed;
	/* key is the index's, not yet made from the verified manifest (check_hit) */
	bool foreseen;
};

/* One invocation's working state, visible to observers (read only). */
struct tp_invocation {
	const struct tp_run_config *cfg;
	struct tp_limits limits;   /* final: a bundle's tightened by the given ones */
	char script[PATH_MAX];	   /* unsealed: the real path; sealed: the bundle's */
	char script_dir[PATH_MAX]; /* unsealed: its directory */
	char entry[PATH_MAX];	   /* inside the root */
	char cwd[PATH_MAX];	   /* inside the root */
	/* the interpreter (from tp_plan_open on), and the _teepy built for it */
	const struct tp_engine_build *engine;
	char runtime_so[PATH_MAX];
	char reaper[PATH_MAX];	       /* teepy-reaper, which the sandbox's pid 1 executes */
	struct tp_strlist python_path; /* inside the root */
	struct tp_strlist site_dirs;   /* inside the root: a venv's site-packages */
	bool site_packages;	       /* dist-packages shown: allowed, or the venv's wish */
	char venv_dir[PATH_MAX];       /* unsealed: cfg.venv's real path; "" for none */
	struct tp_root_plan plan;
	struct tp_limits_state enforce; /* how each limit is held */
	char **envp;
	size_t env_count;
	unsigned blas_threads;
	bool processes;
	bool listen; /* the policy network "listen": cfg.listen, checked against a bundle's */
	const char *exec_files[4];
	struct tp_strlist read_trees; /* Landlock: what the service may read, inside the root */
	char exec_buf[2][PATH_MAX];
	bool sealed;
	struct tp_bundle_file bundle;
	struct tp_strlist allowed; /* sealed: the --allow paths, as given and resolved */
	struct tp_fill_stats fill;
	struct tp_cache cache; /* sealed */
	/* sealed: the manifest is byte for byte one a verified run recorded in the
	 * cache's index (cache.c's tp_cache_foresee); its signature is checked, and its
	 * signer settled (tp_plan_settle), once the interpreter is starting, before
	 * the service is told what to run */
	bool pending;
	struct tp_strlist held_warnings; /* said while pending: kept until settled */
	struct tp_out_volume volume;	 /* cfg.output_volume's */
	bool has_out;			 /* the root has /out (a volume's, or a build's sample) */
};

/* A zygote's child (docs/zygote.md): forked, restricted and placed in its own cgroups
 * by the worker's spawner, waiting for its GO. */
struct tp_zygote_child {
	pid_t pid;			/* on the host */
	int pidfd;			/* its pidfd */
	int channel_fd;			/* its control channel */
	int out_fd;			/* its stdout and stderr */
	int status_fd;			/* where its zygote writes its struct tp_zygote_status */
	struct tp_limits_state enforce; /* its cgroups, prepared with the service's limits */
};

/* Serves one invocation by a zygote's child: cfg's input, data, sinks and cancel as
 * for tp_invoke (nothing about what runs: the zygote decided that), limits the
 * service's (the zygote's run's). Sends GO, serves the channel and the output, holds
 * CPU time and the wall clock, and judges from the status the zygote reports. Closes
 * the child's descriptors; its cgroups are the caller's to remove (after it has
 * answered). Returns 0 when judged, -ENOMEM before anything could be said. */
int tp_zygote_child_run(struct tp_zygote_child *child, const struct tp_run_config *cfg,
			const struct tp_limits *limits, struct tp_outcome *out);

/* Runs one invocation start to end and fills *out (free it with tp_outcome_free).
 * Returns 0 when the run was judged (out->end says how), or -ENOMEM before
 * anything could be said. tp_invoke spawns from the calling thread, which must be
 * the only thread while it spawns (tp_sandbox_spawn) and must live until the
 * invocation ends: the service's parent-death signal follows that thread. */
int tp_invoke(const struct tp_run_config *cfg, struct tp_outcome *out);

/* The same, keeping the invocation (its plan, paths and bundle) for the caller,
 * which frees it with tp_invocation_free: teepy build reads what was visible. */
int tp_invoke_keep(const struct tp_run_config *cfg, struct tp_outcome *out,
		   struct tp_invocation *inv);

/* Who signed the bundle bf (opened with tp_bundle_file_open), judged as a run of it
 * under cfg judges it (cfg's trust_paths, trust_source, insecure_any_signer; cfg's
 * warn says an --insecure-any-signer run): 0, or -1 with out's end and message the
 * run's own. For a caller that must know before the run (run --cas, before the CAS
 * is asked for the bundle's keys). */
int tp_runner_judge_signer(const struct tp_run_config *cfg, const struct tp_bundle_file *bf,
			   struct tp_outcome *out);

/* tp_invoke_keep in two steps, for a caller that checks its own inputs between
 * them (teepy run reads a script's input after the script is found, a bundle's
 * before it is opened): open finds the runtime and opens the script or the bundle
 * (signer trusted, manifest parsed; a bundle whose bytes the cache's index holds
 * leaves the signer to run, which settles it before the service is told what to
 * run: inv->pending); it returns 0, or -1 with out said (inv is then still freed
 * with tp_invocation_free). run plans the root, checks the memory
 * limit against the input (cfg's input may be set between the two) and runs; it
 * returns 0 with out said. */
int tp_invocation_open(const struct tp_run_config *cfg, struct tp_invocation *inv,
		       struct tp_outcome *out);
int tp_invocation_run(struct tp_invocation *inv, struct tp_outcome *out);

void tp_invocation_free(struct tp_invocation *inv);
void tp_outcome_free(struct tp_outcome *out);

/* A script directly in a directory other users or programs share (/tmp, /dev/shm),
 * or in a home directory (/root, /home/USER, HOME), would make all of it visible
 * inside: says what DIR is ("shared by every user", "a home directory", "the
 * host's root"), or NULL for a directory of its own. DIR and HOME are canonical
 * paths; HOME may be NULL. No OS calls. */
const char *tp_run_shared_dir(const char *dir, const char *home);

/* Whether a sealed bundle may take the host file PATH (normal and absolute) as a
 * system file without the person running it allowing it: PATH lies under one of
 * the host's system trees of a run on that engine (plan.c lists them: its
 * interpreter, its loader, its prefix, the library directories, dist-packages,
 * /etc/alternatives, time-zone data, and with the processes policy /usr/bin and
 * /bin). They are also what an unsealed run (a build's sample run) shows of the
 * host. No OS calls. */
bool tp_system_tree_covers(const char *path, bool processes, enum tp_engine engine);

/* Calls fn with each directory the program loader searches for a library when it
 * has no ld.so.cache (a sealed root has none), in its order, until fn returns
 * non-zero; returns that, or 0. */
int tp_system_library_dirs_each(int (*fn)(const char *dir, void *ctx), void *ctx);

/* The cache of verified sealed roots, for teepy cache. tp_cache_dir_open opens the
 * directory a run would use (cache_dir, else /run/teepy for root, runtime_dir/teepy
 * for a user), creating it only if create (and its parent is a tmpfs), checked as a
 * run checks it; returns its fd, or -ENOENT when there is none, -EPERM when it fails
 * the checks, with one line in why. path gets its name either way ("" if none). */
int tp_cache_dir_open(const char *cache_dir, const char *runtime_dir, bool create, char *path,
		      size_t path_size, char *why, size_t why_size);

/* 1 GiB: 25 roots of numpy's size (41 MiB), a hundred of hello's (10 MiB); a
 * root's tmpfs (/run) is a tenth to a fifth of RAM by default, and the cache is
 * not all that lives there */
#define TP_CACHE_MAX_DEFAULT (1ULL << 30)

struct tp_cache_entry {
	char key[65];
	uint64_t bytes; /* held in memory: the tmpfs blocks of its files and directories */
	size_t files;
	struct timespec last_use; /* made, or last bound by a run */
};

/* The entries of the cache dir_fd (a malloc'd array). Returns 0 or -errno. */
int tp_cache_list(int dir_fd, struct tp_cache_entry **entries, size_t *count);

/* Removes every entry no run is using (in_use counts those left), the temporary
 * entries of fills that died and the facts kept about /etc/alternatives
 * (alternatives.c). Returns 0 or -errno. */
int tp_cache_clear(int dir_fd, size_t *removed, size_t *in_use);

/* ---- sealed data items (teepy data seal; docs/protected-files.md) ---- */

/* Whether the file at fd starts as a protected file does (read with pread). */
bool tp_data_is_sealed(int fd);

/* The plaintext of the sealed data item of size bytes at fd, opened with key, in
 * a new memfd sealed against any change, which the run serves to TEEX_getdata as
 * it serves a plain data file. Every chunk has authenticated when it returns; the
 * plaintext is in memory only (teepy's, outside the service's cgroup). Returns the
 * memfd, or -errno with the reason in err: -EKEYREJECTED (another key, or a changed
 * header), -EBADMSG (changed, truncated or extended), -EINVAL, -EPROTONOSUPPORT or
 * -EMEDIUMTYPE (not a sealed data item), -ENOMEM, or a read's error. The caller
 * has loaded libcrypto (tp_crypto_load). */
int tp_data_unseal(int fd, uint64_t size, const uint8_t key[32], char *err, size_t err_size);

/* The same for any protected file opened with rd (tp_pfs_reader_open): its
 * plaintext, every chunk authenticated, in a sealed memfd (from offset 0). Returns
 * the memfd, or -errno with the reason in err (tp_pfs_open_all's). */
int tp_pfs_unseal_memfd(struct tp_pfs_reader *rd, char *err, size_t err_size);

/* ---- output volumes (runner/volume.c; docs/protected-files.md) ---- */

/* A volume's directory holds its index under this name, and each file as the 64 hex
 * digits of its id and ".tpf" (tp_volume_file_name: 69 bytes with the NUL). */
#define TP_VOLUME_INDEX_FILE "index.tpv"
void tp_volume_file_name(const uint8_t id[32], char name[69]);

/* The index of the volume in directory dir_fd, its MAC checked under key first.
 * Returns 0 with *ix filled (tp_volume_index_free), -ENOENT when dir_fd holds no
 * index, or -errno with the reason in err: -EKEYREJECTED (another key, or a changed
 * byte), -EINVAL (not an index), -EPROTONOSUPPORT (a later version), or the read's
 * error. The caller has loaded libcrypto. */
int tp_volume_read_index(int dir_fd, const uint8_t key[32], struct tp_volume_index *ix, char *err,
			 size_t err_size);

/* The file of entry e in the volume dir_fd, opened (*fd) with a reader under key
 * (*rd), whose header is the entry's: its id and size. Returns 0, or -errno with the
 * reason in err: -ENOENT (missing), -EBADMSG (another file of the volume, or its
 * size changed), or tp_pfs_reader_open's errors. */
int tp_volume_open_file(int dir_fd, const uint8_t key[32], const struct tp_volume_entry *e, int *fd,
			struct tp_pfs_reader **rd, char *err, size_t err_size);

/* What was observed of a finished run, for tp_judge. */
struct tp_observed {
	int wait_status;
	bool cancelled;
	bool timed_out;
	bool cpu_killed; /* the CPU watch killed it at the limit */
	bool oom_killed;
	bool rlimit_memory; /* memory held by RLIMIT_AS: a MemoryError is the limit */
	double cpu_seconds;
	uint64_t cpu_limit_ms, timeout_ms, memory_limit_bytes;
	uint64_t peak_bytes;	     /* the cgroup's peak, 0 if unknown */
	uint64_t root_bytes;	     /* a sealed root's files, held in the limit */
	uint64_t max_resident_bytes; /* the rusage peak */
	bool result_too_large, protocol_violation, result_incomplete, have_result;
	int result_error;	  /* -errno writing the result */
	const char *result_where; /* "stdout", a file: for the message */
	bool result_to_file;	  /* a cut-short result was not written */
	int status_kind;
	const char *status_name;
};

/* The verdict: out->end, out->rule and out->message. Pure. */
void tp_judge(const struct tp_observed *o, struct tp_outcome *out);

#endif
