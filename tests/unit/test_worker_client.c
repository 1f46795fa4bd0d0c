/* The worker client's pure parts: ids, --data-key ID=KEYFILE, the URL's form, and
 * an error answer's exit code (docs/api.md: teepy run's for the same end). */
#include "test.h"
#include "../../src/cas/client.h"
#include "../../src/cli/exit_codes.h"
#include "../../src/cli/worker_client.h"

#include <errno.h>

#define ID_UPPER "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"
#define ID_LOWER "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"

static void test_an_id_is_64_hex_digits_written_lower_case(void)
{
	char out[TP_WORKER_ID_HEX + 1];

	CHECK(tp_worker_id_parse(ID_UPPER, out) == 0);
	CHECK(strcmp(out, ID_LOWER) == 0);
	CHECK(tp_worker_id_parse(ID_LOWER "0", out) == -EINVAL);
	CHECK(tp_worker_id_parse("abcdef", out) == -EINVAL);
	CHECK(tp_worker_id_parse("", out) == -EINVAL);
	CHECK(tp_worker_id_parse("gbcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
				 out) == -EINVAL);
}

static void test_a_data_key_is_an_id_and_a_file(void)
{
	char id[TP_WORKER_ID_HEX + 1];
	const char *path = NULL;

	CHECK(tp_worker_key_spec_parse(ID_UPPER "=keys/a=b.key", id, &path) == 0);
	CHECK(strcmp(id, ID_LOWER) == 0 && strcmp(path, "keys/a=b.key") == 0);
	CHECK(tp_worker_key_spec_parse(ID_LOWER "=", id, &path) == -EINVAL);
	CHECK(tp_worker_key_spec_parse(ID_LOWER, id, &path) == -EINVAL);
	CHECK(tp_worker_key_spec_parse("abc=k.key", id, &path) == -EINVAL);
	CHECK(tp_worker_key_spec_parse("k.key", id, &path) == -EINVAL);
}

static void test_an_invocations_end_is_teepy_runs_exit_code(void)
{
	CHECK(tp_worker_exit_for("failed", true, 422) == TP_EXIT_SERVICE_FAILED);
	CHECK(tp_worker_exit_for("no_result", true, 422) == TP_EXIT_NO_RESULT);
	CHECK(tp_worker_exit_for("rule", true, 422) == TP_EXIT_RULE);
	CHECK(tp_worker_exit_for("memory", true, 422) == TP_EXIT_MEMORY);
	CHECK(tp_worker_exit_for("cpu", true, 422) == TP_EXIT_CPU);
	CHECK(tp_worker_exit_for("timeout", true, 504) == TP_EXIT_TIMEOUT);
	CHECK(tp_worker_exit_for("config", true, 400) == TP_EXIT_USAGE);
	CHECK(tp_worker_exit_for("key_missing", true, 409) == TP_EXIT_KEY_MISSING);
	CHECK(tp_worker_exit_for("refused", true, 500) == TP_EXIT_BUNDLE);
	CHECK(tp_worker_exit_for("internal", true, 500) == TP_EXIT_INTERNAL);
	CHECK(tp_worker_exit_for("a_new_kind", true, 422) == TP_EXIT_INTERNAL);
	CHECK(tp_worker_exit_for(NULL, true, 422) == TP_EXIT_INTERNAL);
}

static void test_a_refused_request_is_a_usage_error_and_a_failed_worker_internal(void)
{
	CHECK(tp_worker_exit_for("not_found", false, 404) == TP_EXIT_USAGE);
	CHECK(tp_worker_exit_for("busy", false, 503) == TP_EXIT_USAGE);
	CHECK(tp_worker_exit_for("too_large", false, 413) == TP_EXIT_USAGE);
	/* "failed" is an end only when the answer is one (it carries usage) */
	CHECK(tp_worker_exit_for("failed", false, 422) == TP_EXIT_USAGE);
	CHECK(tp_worker_exit_for("internal", false, 500) == TP_EXIT_INTERNAL);
	CHECK(tp_worker_exit_for(NULL, false, 502) == TP_EXIT_INTERNAL);
}

static void test_an_answer_with_usage_is_an_end(void)
{
	json_t *end = json_pack("{s:{s:s}, s:{s:i}, s:s}", "error", "kind", "failed", "usage",
				"cpu_ms", 3, "log", "");
	json_t *refusal = json_pack("{s:{s:s}}", "error", "kind", "not_found");

	CHECK(tp_worker_answer_is_end(end));
	CHECK(!tp_worker_answer_is_end(refusal));
	CHECK(!tp_worker_answer_is_end(NULL));
	json_decref(end);
	json_decref(refusal);
}

static void test_a_worker_url_is_http_or_https(void)
{
	char err[512];

	CHECK(tp_http_check_url("http://127.0.0.1:8080", "--worker", err, sizeof(err)) == 0);
	CHECK(tp_http_check_url("https://worker.example/", "--worker", err, sizeof(err)) == 0);
	CHECK(tp_http_check_url("127.0.0.1:8080", "--worker", err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "--worker: '127.0.0.1:8080' is not an http:// or https:// URL") != NULL);
	CHECK(tp_http_check_url("http://", "--worker", err, sizeof(err)) == -EINVAL);
	CHECK(tp_http_check_url("ftp://h", "--worker", err, sizeof(err)) == -EINVAL);
	CHECK(tp_http_check_url("http://a b", "--worker", err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "space or a control character") != NULL);
}

TESTS(worker_client_tests) = {
	{ "an_id_is_64_hex_digits_written_lower_case",
	  test_an_id_is_64_hex_digits_written_lower_case },
	{ "a_data_key_is_an_id_and_a_file", test_a_data_key_is_an_id_and_a_file },
	{ "an_invocations_end_is_teepy_runs_exit_code",
	  test_an_invocations_end_is_teepy_runs_exit_code },
	{ "a_refused_request_is_a_usage_error_and_a_failed_worker_internal",
	  test_a_refused_request_is_a_usage_error_and_a_failed_worker_internal },
	{ "an_answer_with_usage_is_an_end", test_an_answer_with_usage_is_an_end },
	{ "a_worker_url_is_http_or_https", test_a_worker_url_is_http_or_https },
	END_TESTS,
};
