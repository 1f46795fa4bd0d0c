/* Runs every unit test group and prints "N passed, N failed". */
#include "test.h"

int tp_test_failures;

extern const struct tp_test units_tests[];
extern const struct tp_test run_opts_tests[];
extern const struct tp_test flags_tests[];
extern const struct tp_test root_plan_tests[];
extern const struct tp_test manifest_tests[];
extern const struct tp_test trace_tests[];
extern const struct tp_test elf_tests[];
extern const struct tp_test cgroup_plan_tests[];
extern const struct tp_test judge_tests[];
extern const struct tp_test plan_tests[];
extern const struct tp_test channel_tests[];
extern const struct tp_test trust_tests[];
extern const struct tp_test term_tests[];
extern const struct tp_test crypto_pfs_tests[];
extern const struct tp_test volume_tests[];
extern const struct tp_test attest_tests[];
extern const struct tp_test snp_certs_tests[];
extern const struct tp_test evidence_tests[];
extern const struct tp_test cas_tests[];
extern const struct tp_test cas_client_tests[];
extern const struct tp_test worker_client_tests[];
extern const struct tp_test zygote_filter_tests[];
extern const struct tp_test seen_tests[];
extern const struct tp_test listen_tests[];

int main(void)
{
	const struct tp_test *groups[] = {
		units_tests,	     run_opts_tests,	  root_plan_tests,   manifest_tests,
		trace_tests,	     elf_tests,		  cgroup_plan_tests, judge_tests,
		plan_tests,	     channel_tests,	  trust_tests,	     flags_tests,
		term_tests,	     crypto_pfs_tests,	  volume_tests,	     attest_tests,
		snp_certs_tests,     evidence_tests,	  cas_tests,	     cas_client_tests,
		worker_client_tests, zygote_filter_tests, seen_tests,	     listen_tests
	};
	int passed = 0, failed = 0;

	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		for (const struct tp_test *t = groups[g]; t->name; t++) {
			int before = tp_test_failures;
			t->fn();
			if (tp_test_failures == before) {
				passed++;
				printf("ok   %s\n", t->name);
			} else {
				failed++;
				printf("FAIL %s\n", t->name);
			}
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
