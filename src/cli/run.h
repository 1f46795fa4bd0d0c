/* Running a service for another command: `teepy build` traces a sample run. */
#ifndef TEEPY_CLI_RUN_H
#define TEEPY_CLI_RUN_H

#include "run_opts.h"
#include "../runner/runner.h"
#include "../sandbox/root.h"

#include <limits.h>
#include <stdbool.h>

struct tp_trace_log;
struct tp_strlist;

struct tp_traced_run {
	char script[PATH_MAX]; /* real path of the script */
	char script_dir[PATH_MAX];
	char venv_dir[PATH_MAX];       /* --venv's real path (seen at /venv), or "" */
	struct tp_root_plan plan;      /* what was visible in the run (caller frees) */
	struct tp_strlist python_path; /* the run's sys.path, inside its root (caller frees) */
	struct tp_strlist site_dirs;   /* of those, the venv's site directories (caller frees) */
	bool had_result;
	uint64_t result_size; /* bytes; the result itself is dropped (or --output) */
	bool preload_failed;  /* a preload module could not be imported (said so) */
};

/* Runs the service described by opts (borrowed: the caller frees it) in the
 * unsealed sandbox while tracing every file opened and program executed into log
 * (added to what it holds: several sample runs make one log), after importing the
 * preload modules. The result goes to --output if given, else nowhere: the caller's
 * stdout stays its own. Returns teepy run's exit code for the run. */
int tp_run_traced(const struct tp_run_opts *opts, const struct tp_strlist *preload,
		  struct tp_trace_log *log, struct tp_traced_run *out);

/* teepy shell's side of a shell run (shell.c): the line editor (struct
 * tp_run_config's shell.read_line) and the descriptor its SIGINT handler writes a
 * byte to. */
struct tp_run_shell_io {
	int (*read_line)(void *ctx, struct tp_shell_prompt *p, char **line, size_t *line_size);
	void *ctx;
	int interrupt_fd;
};

/* What SIGTERM does to a run, from a signal handler (async-signal-safe): the run is
 * stopped and ends as interrupted by SIG. teepy shell's Ctrl-C before its console is
 * up (a slow fill, a CAS), when there is no statement to interrupt. */
void tp_run_cancel_from_signal(int sig);

/* Runs an interactive console in the sandbox opts describe (borrowed: the caller
 * frees it; no script), each line read by io, as teepy run runs a script: the same
 * input, data, limits and paths. SIGTERM and SIGHUP stop it, SIGINT is io's. A result
 * goes to --output, else is shown after the session. Returns the exit code: 0 for a
 * session that ends without a result, else teepy run's. */
int tp_run_shell(const struct tp_run_opts *opts, const struct tp_run_shell_io *io);

/* --escape settled: whether the service's output is shown escaped (auto: when stderr
 * is a terminal). teepy's own lines are marked (tp_log_mark_own) from then on. */
bool tp_run_escapes_output(const struct tp_run_opts *opts);

/* The exit code of a run that ended so (exit_codes.h). */
int tp_exit_code_for(enum tp_end end);

#endif
