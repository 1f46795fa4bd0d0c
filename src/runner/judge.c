/* How a run ended, from what was observed of it: pure, so every path is unit-tested. */
#include "plan.h"
#include "runner.h"

#include "../common/term.h"

#include "../common/units.h"
#include "../channel/protocol.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

/* "memory limit exceeded (3 GiB, killed by the cgroup, peak 3.0 GiB)" */
static void memory_exceeded(const struct tp_observed *o, struct tp_outcome *out)
{
	char limit[32], peak_text[32], root_text[32], how[128];

	if (o->peak_bytes)
		snprintf(how, sizeof(how), "peak %s%s%s%s",
			 tp_format_size(o->peak_bytes + o->root_bytes, peak_text, 32),
			 o->root_bytes ? " with the sealed root's files (" : "",
			 o->root_bytes ?
			     tp_format_size(o->root_bytes, root_text, sizeof(root_text)) :
			     "",
			 o->root_bytes ? ")" : "");
	else /* RLIMIT_AS: no memory counter, what the kernel kept resident at most */
		snprintf(how, sizeof(how), "peak resident %s",
			 tp_format_size(o->max_resident_bytes, peak_text, 32));
	tp_runner_fail(out, TP_END_MEMORY, "memory limit exceeded (%s, %s, %s)",
		       tp_format_size(o->memory_limit_bytes, limit, sizeof(limit)),
		       o->oom_killed ? "killed by the cgroup" : "MemoryError", how);
}

void tp_judge(const struct tp_observed *o, struct tp_outcome *out)
{
	int status = o->wait_status;
	char text[64];

	out->rule = TP_RULE_NONE;
	out->message[0] = '\0';
	if (o->cancelled) {
		tp_runner_fail(out, TP_END_CANCELLED, "the run was stopped; so was the service");
		return;
	}
	if (o->result_too_large) {
		out->rule = TP_RULE_RESULT_SIZE;
		tp_runner_fail(
		    out, TP_END_RULE,
		    "killed for a rule: the service sent a result larger than its memory limit "
		    "(%s)",
		    tp_format_size(o->memory_limit_bytes, text, sizeof(text)));
		return;
	}
	if (o->protocol_violation) {
		out->rule = TP_RULE_CHANNEL;
		tp_runner_fail(
		    out, TP_END_RULE,
		    "killed for a rule: the service wrote malformed frames to its control channel");
		return;
	}
	if (o->result_error) {
		tp_runner_fail(out, TP_END_INTERNAL, "cannot write the result to %s: %s",
			       o->result_where ? o->result_where : "its destination",
			       strerror(-o->result_error));
		return;
	}
	if (o->timed_out) {
		tp_runner_fail(out, TP_END_TIMEOUT,
			       "wall-clock timeout (%s) exceeded; the service was killed",
			       tp_format_duration(o->timeout_ms, text, sizeof(text)));
		return;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
		/* the kernel ended it (SECCOMP_RET_KILL_PROCESS): which call, it does not say */
		out->rule = TP_RULE_SYSCALL;
		tp_runner_fail(
		    out, TP_END_RULE,
		    "killed for a rule: a forbidden system call that ends the service (reboot, "
		    "kexec, kernel modules, iopl/ioperm, swap, acct) or another architecture's "
		    "system call");
		return;
	}
	/* Under RLIMIT_AS the limit shows as an allocation that fails: MemoryError. A
	 * cgroup never fails an allocation, it kills: there a MemoryError is the
	 * service's own (an impossible size, as natively), not the limit. */
	if (o->oom_killed || (o->rlimit_memory && o->status_kind == TP_STATUS_EXCEPTION &&
			      o->status_name && strcmp(o->status_name, "MemoryError") == 0)) {
		memory_exceeded(o, out);
		return;
	}
	/* killed by teepy's watch at the limit, or by the RLIMIT_CPU backstop past it */
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	    (o->cpu_killed || o->cpu_seconds * 1000 >= (double)o->cpu_limit_ms)) {
		tp_runner_fail(
		    out, TP_END_CPU, "CPU time limit exceeded (%s used of %s)",
		    tp_format_duration((uint64_t)(o->cpu_seconds * 1000), text, sizeof(text)),
		    tp_format_duration(o->cpu_limit_ms, text + 32, 32));
		return;
	}
	if (WIFSIGNALED(status)) {
		tp_runner_fail(out, TP_END_FAILED, "the service crashed: %s",
			       strsignal(WTERMSIG(status)));
		return;
	}
	if (o->result_incomplete) {
		tp_runner_fail(
		    out, TP_END_FAILED,
		    "the service ended while sending its result: the result is cut short%s",
		    o->result_to_file ? " and was not written" : "");
		return;
	}
	if (WEXITSTATUS(status) != 0) {
		out->end = TP_END_FAILED;
		if (o->status_kind == TP_STATUS_EXCEPTION) {
			/* the name is the service's to choose: shown as text, whoever reads
			 * the line (a terminal, a log, a remote client) */
			char name[sizeof(out->status_name) * 4];
			tp_term_escape_line(o->status_name ? o->status_name : "", false, name,
					    sizeof(name));
			tp_runner_fail(out, TP_END_FAILED,
				       "the service raised %s (traceback above)", name);
		} else if (o->status_kind != TP_STATUS_SYNTAX)
			tp_runner_fail(out, TP_END_FAILED, "the service exited with status %d",
				       WEXITSTATUS(status));
		return;
	}
	if (!o->have_result) {
		tp_runner_fail(
		    out, TP_END_NO_RESULT,
		    "the service ended without returning a result (call teex.TEEX_return)");
		return;
	}
	out->end = TP_END_RESULT;
}
