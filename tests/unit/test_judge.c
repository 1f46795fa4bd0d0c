/* The runner's verdict from what it observed, and the exit code teepy run gives it. */
#include "test.h"
#include "../../src/cli/exit_codes.h"
#include "../../src/cli/run.h"
#include "../../src/channel/protocol.h"
#include "../../src/runner/runner.h"

#include <signal.h>

#define EXITED(code) ((code) << 8)
#define KILLED(sig)  (sig)

static struct tp_observed base(void)
{
	return (struct tp_observed){
		.wait_status = EXITED(0),
		.have_result = true,
		.cpu_limit_ms = 60000,
		.timeout_ms = 1000,
		.memory_limit_bytes = 64ull << 20,
		.status_kind = -1,
		.status_name = "",
		.result_where = "stdout",
	};
}

static enum tp_end judged(const struct tp_observed *o, struct tp_outcome *out)
{
	*out = (struct tp_outcome){ 0 };
	tp_judge(o, out);
	return out->end;
}

static void test_result_and_clean_exit_is_result(void)
{
	struct tp_observed o = base();
	struct tp_outcome out;

	CHECK(judged(&o, &out) == TP_END_RESULT);
	CHECK_STR(out.message, "");
	o.have_result = false;
	CHECK(judged(&o, &out) == TP_END_NO_RESULT);
	CHECK(strstr(out.message, "TEEX_return") != NULL);
}

static void test_timeout_wins_over_the_kill_it_caused(void)
{
	struct tp_observed o = base();
	struct tp_outcome out;

	o.wait_status = KILLED(SIGKILL);
	o.timed_out = true;
	CHECK(judged(&o, &out) == TP_END_TIMEOUT);
	CHECK_STR(out.message, "wall-clock timeout (1 s) exceeded; the service was killed");
}

static void test_cancel_comes_first(void)
{
	struct tp_observed o = base();
	struct tp_outcome out;

	o.cancelled = true;
	o.timed_out = true;
	o.result_too_large = true;
	CHECK(judged(&o, &out) == TP_END_CANCELLED);
}

static void test_rules_name_which(void)
{
	struct tp_observed o = base();
	struct tp_outcome out;

	o.wait_status = KILLED(SIGSYS);
	CHECK(judged(&o, &out) == TP_END_RULE && out.rule == TP_RULE_SYSCALL);
	o = base();
	o.protocol_violation = true;
	CHECK(judged(&o, &out) == TP_END_RULE && out.rule == TP_RULE_CHANNEL);
	o = base();
	o.result_too_large = true;
	CHECK(judged(&o, &out) == TP_END_RULE && out.rule == TP_RULE_RESULT_SIZE);
	CHECK(strstr(out.message, "64 MiB") != NULL);
}

static void test_memory_error_is_the_limit_only_under_rlimit(void)
{
	struct tp_observed o = base();
	struct tp_outcome out;

	o.wait_status = EXITED(1);
	o.status_kind = TP_STATUS_EXCEPTION;
	o.status_name = "MemoryError";
	CHECK(judged(&o, &out) == TP_END_FAILED); /* a cgroup's service raised it itself */
	o.rlimit_memory = true;
	o.max_resident_bytes = 10 << 20;
	CHECK(judged(&o, &out) == TP_END_MEMORY);
	CHECK(strstr(out.message, "MemoryError, peak resident 10 MiB") != NULL);
	o = base();
	o.wait_status = KILLED(SIGKILL);
	o.oom_killed = true;
	o.peak_bytes = 60ull << 20;
	o.root_bytes = 4ull << 20;
	CHECK(judged(&o, &out) == TP_END_MEMORY);
	CHECK(strstr(out.message, "killed by the cgroup, peak 64 MiB with the sealed root's files "
				  "(4 MiB)") != NULL);
}

static void test_cpu_kill_needs_the_limit_reached(void)
{
	struct tp_observed o = base();
	struct tp_outcome out;

	o.wait_status = KILLED(SIGKILL);
	o.cpu_seconds = 1.0;
	CHECK(judged(&o, &out) == TP_END_FAILED); /* killed by someone else: a crash */
	o.cpu_killed = true;
	CHECK(judged(&o, &out) == TP_END_CPU);
	o.cpu_killed = false;
	o.cpu_seconds = 61.0;
	CHECK(judged(&o, &out) == TP_END_CPU); /* the RLIMIT_CPU backstop */
}

static void test_failures_of_the_service(void)
{
	struct tp_observed o = base();
	struct tp_outcome out;

	o.wait_status = EXITED(1);
	o.status_kind = TP_STATUS_EXCEPTION;
	o.status_name = "ValueError";
	CHECK(judged(&o, &out) == TP_END_FAILED);
	CHECK_STR(out.message, "the service raised ValueError (traceback above)");
	o.status_kind = TP_STATUS_SYNTAX;
	CHECK(judged(&o, &out) == TP_END_FAILED);
	CHECK_STR(out.message, ""); /* the runtime said it */
	o = base();
	o.result_incomplete = true;
	o.result_to_file = true;
	CHECK(judged(&o, &out) == TP_END_FAILED);
	CHECK(strstr(out.message, "cut short and was not written") != NULL);
	o = base();
	o.result_error = -28;
	CHECK(judged(&o, &out) == TP_END_INTERNAL);
	CHECK(strstr(out.message, "stdout") != NULL);
}

static void test_every_end_has_its_exit_code(void)
{
	CHECK(tp_exit_code_for(TP_END_RESULT) == TP_EXIT_OK);
	CHECK(tp_exit_code_for(TP_END_FAILED) == TP_EXIT_SERVICE_FAILED);
	CHECK(tp_exit_code_for(TP_END_CONFIG) == TP_EXIT_USAGE);
	CHECK(tp_exit_code_for(TP_END_NO_RESULT) == TP_EXIT_NO_RESULT);
	CHECK(tp_exit_code_for(TP_END_RULE) == TP_EXIT_RULE);
	CHECK(tp_exit_code_for(TP_END_MEMORY) == TP_EXIT_MEMORY);
	CHECK(tp_exit_code_for(TP_END_CPU) == TP_EXIT_CPU);
	CHECK(tp_exit_code_for(TP_END_TIMEOUT) == TP_EXIT_TIMEOUT);
	CHECK(tp_exit_code_for(TP_END_REFUSED) == TP_EXIT_BUNDLE);
	CHECK(tp_exit_code_for(TP_END_INTERNAL) == TP_EXIT_INTERNAL);
	CHECK(tp_exit_code_for(TP_END_CANCELLED) == TP_EXIT_INTERRUPTED);
}

static void test_limits_tighten_never_loosen(void)
{
	struct tp_limits signed_limits = tp_limits_default();
	struct tp_limits given = { .memory_bytes = 1ull << 40,
				   .log_max_bytes = 4096,
				   .cpu_ms = 1000,
				   .timeout_ms = 5000,
				   .scratch_bytes = 1 << 20,
				   .threads = 8 };

	signed_limits.scratch_bytes = 4 << 20;
	struct tp_limits l = tp_limits_tighten(&signed_limits, &given,
					       TP_LIMIT_MEMORY | TP_LIMIT_CPU | TP_LIMIT_SCRATCH);
	CHECK(l.memory_bytes == TP_DEFAULT_MEMORY); /* larger: the signed one holds */
	CHECK(l.cpu_ms == 1000);
	CHECK(l.timeout_ms == TP_DEFAULT_TIMEOUT_MS); /* not given */
	CHECK(l.threads == TP_DEFAULT_THREADS);
	CHECK(l.scratch_bytes == 4 << 20);	       /* the bundle's policy */
	CHECK(l.log_max_bytes == given.log_max_bytes); /* whoever runs it sets the output cap */
}

TESTS(judge_tests) = {
	{ "judge: a result and a clean exit", test_result_and_clean_exit_is_result },
	{ "judge: the timeout, not the kill it caused", test_timeout_wins_over_the_kill_it_caused },
	{ "judge: a cancel comes first", test_cancel_comes_first },
	{ "judge: rules say which", test_rules_name_which },
	{ "judge: MemoryError is the limit only under RLIMIT_AS",
	  test_memory_error_is_the_limit_only_under_rlimit },
	{ "judge: a kill is the CPU limit only once it is reached",
	  test_cpu_kill_needs_the_limit_reached },
	{ "judge: the service's own failures", test_failures_of_the_service },
	{ "outcome: every end has its exit code", test_every_end_has_its_exit_code },
	{ "limits: a bundle's are tightened, never loosened", test_limits_tighten_never_loosen },
	END_TESTS
};
