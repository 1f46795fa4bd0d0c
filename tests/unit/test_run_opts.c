/* `teepy run` options: flags, TEEPY_* settings, data order. */
#include "test.h"
#include "../../src/cli/run_opts.h"
#include "../../src/runner/runner.h"

#include <errno.h>

static const char *env_table[8][2];

static const char *fake_getenv(const char *name)
{
	for (size_t i = 0; i < 8 && env_table[i][0]; i++)
		if (strcmp(env_table[i][0], name) == 0)
			return env_table[i][1];
	return NULL;
}

static int parse(struct tp_run_opts *o, char *err, const char *const *args)
{
	char *argv[64];
	int argc = 0;

	argv[argc++] = (char *)"run";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return tp_run_opts_parse(o, argc, argv, fake_getenv, err, 256);
}

static void test_defaults_are_the_teex_limits(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "svc.py", NULL }) == 0);
	CHECK_STR(o.script, "svc.py");
	CHECK(o.limits.memory_bytes == 3ULL << 30);
	CHECK(o.limits.cpu_ms == 30ULL * 60 * 1000);
	CHECK(o.limits.scratch_bytes == 0);
	CHECK(o.limits.threads == 64);
	CHECK(o.mode == TP_MODE_SIM && o.mode_was_auto);
	CHECK(!o.print_config && !o.allow_site_packages);
	tp_run_opts_free(&o);
}

static void test_service_data_come_before_task_data(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err,
		    (const char *[]){ "--task-data", "t0", "--data", "s0", "--task-data", "t1",
				      "--data", "s1", "--data", "s2", "--task-data", "t2",
				      "--task-data=t3", "svc.py", NULL }) == 0);
	CHECK(o.data.count == 7);
	CHECK(o.service_data_count == 3);
	CHECK_STR(tp_run_opts_data_item(&o, 0), "s0");
	CHECK_STR(tp_run_opts_data_item(&o, 2), "s2");
	CHECK_STR(tp_run_opts_data_item(&o, 3), "t0");
	CHECK_STR(tp_run_opts_data_item(&o, 4), "t1"); /* the TEEX example: 3 + 4, index 4 */
	CHECK_STR(tp_run_opts_data_item(&o, 6), "t3");
	CHECK(tp_run_opts_data_item(&o, 7) == NULL);
	tp_run_opts_free(&o);
}

static void test_flags_override_environment(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	env_table[0][0] = "TEEPY_MEMORY";
	env_table[0][1] = "1G";
	env_table[1][0] = "TEEPY_CPU_TIME";
	env_table[1][1] = "5";
	env_table[2][0] = "TEEPY_VERSION";
	env_table[2][1] = "1";
	CHECK(parse(&o, err, (const char *[]){ "--memory", "256M", "svc.py", NULL }) == 0);
	CHECK(o.limits.memory_bytes == 256ULL << 20);
	CHECK(o.limits.cpu_ms == 5000);
	CHECK(o.print_config);
	tp_run_opts_free(&o);
	memset(env_table, 0, sizeof(env_table));
}

static void test_the_engine_setting_is_checked_where_it_applies(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	env_table[0][0] = "TEEPY_ENGINE";
	env_table[0][1] = "foo";
	/* a bundle runs on its own engine: the setting is checked for a script only */
	CHECK(parse(&o, err, (const char *[]){ "app.tpy", NULL }) == 0);
	CHECK(o.engine == TP_ENGINE_CPYTHON && !o.engine_given);
	CHECK(tp_run_opts_engine_check(&o, err, sizeof(err)) == -EINVAL);
	CHECK_STR(err, "TEEPY_ENGINE: unknown engine 'foo' (use cpython or pypy3)");
	tp_run_opts_free(&o);
	/* the flag wins over the setting */
	CHECK(parse(&o, err, (const char *[]){ "--engine", "cpython", "svc.py", NULL }) == 0);
	CHECK(o.engine_given && tp_run_opts_engine_check(&o, err, sizeof(err)) == 0);
	tp_run_opts_free(&o);
	/* the flag is checked as it is parsed */
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "--engine", "foo", "svc.py", NULL }) == -EINVAL);
	CHECK_STR(err, "--engine: unknown engine 'foo' (use cpython or pypy3)");
	tp_run_opts_free(&o);
}

static void test_bad_values_name_the_flag(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "--memory", "3Q", "svc.py", NULL }) == -EINVAL);
	CHECK(strstr(err, "--memory") && strstr(err, "3Q"));
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--cpu-time", "abc", "svc.py", NULL }) == -EINVAL);
	CHECK(strstr(err, "--cpu-time") != NULL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--bogus", "svc.py", NULL }) == -EINVAL);
	CHECK(strstr(err, "--bogus") != NULL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err,
		    (const char *[]){ "--input", "a", "--input-file", "b", "svc.py", NULL }) ==
	      -EINVAL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--threads", "0", "svc.py", NULL }) == -EINVAL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--env", "1X=2", "svc.py", NULL }) == -EINVAL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--data", NULL }) == -EINVAL);
	CHECK(strstr(err, "needs a value") != NULL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--mode", "tdx", "svc.py", NULL }) == -EINVAL);
	tp_run_opts_free(&o);
	env_table[0][0] = "TEEPY_TIMEOUT";
	env_table[0][1] = "soon";
	CHECK(parse(&o, err, (const char *[]){ "svc.py", NULL }) == -EINVAL);
	CHECK(strstr(err, "TEEPY_TIMEOUT") != NULL);
	tp_run_opts_free(&o);
	memset(env_table, 0, sizeof(env_table));
}

static void test_missing_script_is_a_usage_error(void)
{
	struct tp_run_opts o;
	char err[256];
	CHECK(parse(&o, err, (const char *[]){ "--input", "x", NULL }) == -EINVAL);
	CHECK(strstr(err, "SCRIPT") != NULL);
	tp_run_opts_free(&o);
}

/* teepy shell takes run's flags and runs a console: no script is missing there. */
static void test_shell_takes_the_flags_without_a_script(void)
{
	char *argv[] = { (char *)"shell",     (char *)"--input", (char *)"x",
			 (char *)"--timeout", (char *)"5s",	 NULL };
	struct tp_run_opts o;
	char err[256] = "";

	CHECK(tp_run_opts_parse(&o, 5, argv, fake_getenv, err, sizeof(err)) == 0);
	CHECK(!o.script && o.input && strcmp(o.input, "x") == 0);
	CHECK(o.limits.timeout_ms == 5000 && (o.limits_given & TP_LIMIT_TIMEOUT));
	tp_run_opts_free(&o);
}

static void test_arguments_after_double_dash_belong_to_the_script(void)
{
	struct tp_run_opts o;
	char err[256];
	CHECK(parse(&o, err, (const char *[]){ "svc.py", "--", "--memory", "x", NULL }) == 0);
	CHECK(o.script_args.count == 2);
	CHECK_STR(o.script_args.items[0], "--memory");
	CHECK(o.limits.memory_bytes == 3ULL << 30);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--", "svc.py", "a", NULL }) == 0);
	CHECK_STR(o.script, "svc.py");
	CHECK(o.script_args.count == 1);
	tp_run_opts_free(&o);
}

static void test_options_after_the_script_are_teepys(void)
{
	struct tp_run_opts o;
	char err[256];
	CHECK(parse(&o, err,
		    (const char *[]){ "svc.py", "--input", "world", "--data", "g.txt", NULL }) ==
	      0);
	CHECK_STR(o.input, "world");
	CHECK(o.data.count == 1);
	CHECK(o.script_args.count == 0);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "svc.py", "stray", NULL }) == -EINVAL);
	CHECK(strstr(err, "stray") && strstr(err, "--"));
	tp_run_opts_free(&o);
}

static void test_hw_mode_is_parsed_auto_is_sim(void)
{
	struct tp_run_opts o;
	char err[256];
	CHECK(parse(&o, err, (const char *[]){ "--mode=hw", "svc.py", NULL }) == 0);
	CHECK(o.mode == TP_MODE_HW);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--mode", "auto", "svc.py", NULL }) == 0);
	CHECK(o.mode == TP_MODE_SIM && o.mode_was_auto);
	tp_run_opts_free(&o);
}

static void test_escape_is_auto_always_or_never(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "svc.py", NULL }) == 0);
	CHECK(o.escape == TP_ESCAPE_AUTO);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--escape=always", "svc.py", NULL }) == 0);
	CHECK(o.escape == TP_ESCAPE_ALWAYS);
	tp_run_opts_free(&o);
	env_table[0][0] = "TEEPY_ESCAPE";
	env_table[0][1] = "never";
	CHECK(parse(&o, err, (const char *[]){ "svc.py", NULL }) == 0);
	CHECK(o.escape == TP_ESCAPE_NEVER);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--escape", "auto", "svc.py", NULL }) == 0);
	CHECK(o.escape == TP_ESCAPE_AUTO); /* the flag wins */
	tp_run_opts_free(&o);
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "--escape", "yes", "svc.py", NULL }) == -EINVAL);
	CHECK_STR(err, "--escape: 'yes' is not auto, always or never");
	tp_run_opts_free(&o);
}

static void test_shared_script_directories_are_named(void)
{
	static const char *const shared[] = { "/",     "/tmp",	"/var/tmp",    "/dev/shm",
					      "/root", "/home", "/home/alice", "/srv/users/bob" };
	static const char *const own[] = { "/tmp/app",	  "/home/alice/app", "/root/svc",
					   "/srv/app",	  "/srv/users",	     "/homes",
					   "/home2/alice" };

	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		CHECK(tp_run_shared_dir(shared[i], "/srv/users/bob") != NULL);
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		CHECK(tp_run_shared_dir(own[i], "/srv/users/bob") == NULL);
	CHECK(tp_run_shared_dir("/srv/users/bob", NULL) == NULL);
	CHECK_STR(tp_run_shared_dir("/home/alice", NULL), "a home directory");
	CHECK_STR(tp_run_shared_dir("/root", ""), "a home directory");
	CHECK_STR(tp_run_shared_dir("/var/tmp", NULL), "shared by every user");
}

static void test_pythonpath_and_allow_are_kept_apart(void)
{
	struct tp_run_opts o;
	char err[256];
	CHECK(parse(&o, err,
		    (const char *[]){ "--allow", "/a", "--pythonpath", "/p", "svc.py", NULL }) ==
	      0);
	CHECK(o.allow.count == 1 && o.pythonpath.count == 1);
	CHECK_STR(o.allow.items[0], "/a");
	CHECK_STR(o.pythonpath.items[0], "/p");
	tp_run_opts_free(&o);
}

static void test_one_input_and_one_output(void)
{
	/* the second flag is named in the error */
	static const char *const twice[][6] = {
		{ "--input", "a", "--input", "b", "svc.py", NULL },
		{ "--input-file", "a", "--input-file", "b", "svc.py", NULL },
		{ "--input-file", "a", "--input", "b", "svc.py", NULL },
		{ "--output", "a", "--output", "b", "svc.py", NULL },
		{ "--output=-", "svc.py", "--output", "-", NULL },
	};
	static const char *const named[] = { "--input", "--input-file", "--input", "--output",
					     "--output" };
	struct tp_run_opts o;
	char err[256];

	for (size_t i = 0; i < sizeof(twice) / sizeof(twice[0]); i++) {
		CHECK(parse(&o, err, twice[i]) == -EINVAL);
		CHECK(strncmp(err, named[i], strlen(named[i])) == 0 &&
		      err[strlen(named[i])] == ':');
		tp_run_opts_free(&o);
	}
	CHECK(parse(&o, err, (const char *[]){ "--output", "-", "svc.py", NULL }) == 0);
	CHECK(o.output_file == NULL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--output", "./-", "svc.py", NULL }) == 0);
	CHECK_STR(o.output_file, "./-");
	tp_run_opts_free(&o);
}

static void test_given_limits_are_a_set_of_bits(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "svc.py", NULL }) == 0);
	CHECK(o.limits_given == 0);
	tp_run_opts_free(&o);
	env_table[0][0] = "TEEPY_TIMEOUT";
	env_table[0][1] = "5s";
	CHECK(parse(&o, err,
		    (const char *[]){ "--memory", "1G", "--scratch=16M", "--threads", "8", "svc.py",
				      NULL }) == 0);
	CHECK(o.limits_given ==
	      (TP_LIMIT_MEMORY | TP_LIMIT_SCRATCH | TP_LIMIT_THREADS | TP_LIMIT_TIMEOUT));
	CHECK(o.limits.memory_bytes == 1ULL << 30 && o.limits.scratch_bytes == 16ULL << 20);
	CHECK(o.limits.threads == 8 && o.limits.timeout_ms == 5000);
	CHECK(o.limits.cpu_ms == TP_DEFAULT_CPU_MS);
	tp_run_opts_free(&o);
	memset(env_table, 0, sizeof(env_table));
}

static void test_flags_are_named_whole_and_switches_take_no_value(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "--mem", "1G", "svc.py", NULL }) == -EINVAL);
	CHECK_STR(err, "unknown option '--mem' (see teepy run --help)");
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--print-config=1", "svc.py", NULL }) == -EINVAL);
	CHECK_STR(err, "--print-config takes no value");
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "svc.py", "-xyz", NULL }) == -EINVAL);
	CHECK_STR(err, "unknown option '-xyz' (see teepy run --help)");
	tp_run_opts_free(&o);
	/* --help wins over what follows it, not over an error before it */
	CHECK(parse(&o, err, (const char *[]){ "--help", "--bogus", NULL }) == 0 && o.help);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--bogus", "--help", NULL }) == -EINVAL);
	tp_run_opts_free(&o);
}

#define CAS_FP "sha256//LSBV0fVbhLi3AkvK0Ty1YEO0X1vACeg0/ygdmP+ZrtM="

static void test_cas_flags_come_together_and_not_with_key_flags(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err,
		    (const char *[]){ "a.tpy", "--cas", "https://h:1", "--cas-fingerprint", CAS_FP,
				      "--config-id", "mysvc/main", NULL }) == 0);
	CHECK_STR(o.cas, "https://h:1");
	CHECK(!o.cas_from_env);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "a.tpy", "--cas", "https://h:1", NULL }) == -EINVAL);
	CHECK(strstr(err, "--cas-fingerprint") != NULL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "a.tpy", "--config-id", "mysvc/main", NULL }) ==
	      -EINVAL);
	CHECK_STR(err, "--config-id: applies to --cas URL: give it too");
	tp_run_opts_free(&o);
	CHECK(parse(&o, err,
		    (const char *[]){ "a.tpy", "--cas", "https://h:1", "--cas-fingerprint", CAS_FP,
				      "--config-id", "mysvc/main", "--bundle-key", "k", NULL }) ==
	      -EINVAL);
	CHECK(strncmp(err, "--bundle-key: with --cas", 24) == 0);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "a.tpy", "--config-id", "My/main", NULL }) ==
	      -EINVAL);
	CHECK(strstr(err, "is not POLICY/SERVICE") != NULL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err,
		    (const char *[]){ "a.tpy", "--cas", "http://h:1", "--cas-fingerprint", CAS_FP,
				      "--config-id", "a/b", NULL }) == -EINVAL);
	CHECK(strstr(err, "not an https:// URL") != NULL);
	tp_run_opts_free(&o);
}

static void test_cas_settings_yield_to_key_flags(void)
{
	struct tp_run_opts o;
	char err[256];
	memset(env_table, 0, sizeof(env_table));
	env_table[0][0] = "TEEPY_CAS_ADDR";
	env_table[0][1] = "https://127.0.0.1:8443";
	env_table[1][0] = "TEEPY_CAS_FINGERPRINT";
	env_table[1][1] = CAS_FP;
	env_table[2][0] = "TEEPY_CONFIG_ID";
	env_table[2][1] = "mysvc/main";
	CHECK(parse(&o, err, (const char *[]){ "a.tpy", NULL }) == 0);
	CHECK(o.cas && o.cas_from_env);
	CHECK_STR(o.config_id, "mysvc/main");
	tp_run_opts_free(&o);
	/* a key flag wins over the deployment's setting */
	CHECK(parse(&o, err, (const char *[]){ "a.tpy", "--bundle-key", "k", NULL }) == 0);
	CHECK(o.cas == NULL);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "a.tpy", "--config-id", "other/svc", NULL }) == 0);
	CHECK_STR(o.config_id, "other/svc");
	tp_run_opts_free(&o);
	memset(env_table, 0, sizeof(env_table));
}

/* --snp-vcek and --snp-chain go with the evidence sent to a CAS: a flag without
 * --cas is a usage error, a setting without one is left alone, a flag replaces the
 * setting, and each says where it came from. */
static void test_snp_certificates_go_with_cas(void)
{
	struct tp_run_opts o;
	char err[256] = "";

	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "a.tpy", "--snp-vcek", "v.der", NULL }) < 0);
	CHECK_STR(err, "--snp-vcek: applies to --cas URL (the certificates go with the evidence "
		       "sent to the CAS): give it too");
	tp_run_opts_free(&o);
	env_table[0][0] = "TEEPY_SNP_VCEK";
	env_table[0][1] = "/etc/snp/vcek.der";
	env_table[1][0] = "TEEPY_SNP_CHAIN";
	env_table[1][1] = "/etc/snp/chain.pem";
	CHECK(parse(&o, err, (const char *[]){ "a.tpy", NULL }) == 0);
	CHECK_STR(o.snp_vcek_from, "TEEPY_SNP_VCEK");
	tp_run_opts_free(&o);
	CHECK(parse(&o, err,
		    (const char *[]){ "a.tpy", "--cas", "https://127.0.0.1:8443",
				      "--cas-fingerprint", CAS_FP, "--config-id", "mysvc/main",
				      "--snp-vcek", "mine.pem", NULL }) == 0);
	CHECK_STR(o.snp_vcek, "mine.pem");
	CHECK_STR(o.snp_vcek_from, "--snp-vcek");
	CHECK_STR(o.snp_chain, "/etc/snp/chain.pem");
	CHECK_STR(o.snp_chain_from, "TEEPY_SNP_CHAIN");
	tp_run_opts_free(&o);
	memset(env_table, 0, sizeof(env_table));
}

/* --listen, --listen-fd, --wsgi: one socket; --wsgi names the script and a callable;
 * a server has no CPU-time or wall-clock limit unless one is given. */
static void test_a_server_takes_one_socket_and_no_clock(void)
{
	struct tp_run_opts o;
	char err[256];

	memset(env_table, 0, sizeof(env_table));
	CHECK(parse(&o, err, (const char *[]){ "--listen", "127.0.0.1:0", "srv.py", NULL }) == 0);
	CHECK_STR(o.listen, "127.0.0.1:0");
	CHECK(o.limits.cpu_ms == TP_LIMIT_OFF_MS && o.limits.timeout_ms == TP_LIMIT_OFF_MS);
	CHECK(o.limits.memory_bytes == TP_DEFAULT_MEMORY && o.limits.threads == TP_DEFAULT_THREADS);
	CHECK(o.limits.log_max_bytes == UINT64_MAX);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err,
		    (const char *[]){ "--listen-fd", "3", "--timeout", "5s", "srv.py", NULL }) ==
	      0);
	CHECK(o.listen_fd_given && o.listen_fd == 3 && !o.listen);
	CHECK(o.limits.timeout_ms == 5000 && o.limits.cpu_ms == TP_LIMIT_OFF_MS);
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "srv.py", NULL }) == 0);
	CHECK(o.limits.cpu_ms == TP_DEFAULT_CPU_MS && o.limits.timeout_ms == TP_DEFAULT_TIMEOUT_MS);
	tp_run_opts_free(&o);

	CHECK(parse(&o, err,
		    (const char *[]){ "--listen", ":1", "--listen-fd", "3", "srv.py", NULL }) ==
	      -EINVAL);
	CHECK(strstr(err, "--listen-fd") && strstr(err, "already given"));
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--listen-fd", "three", "srv.py", NULL }) ==
	      -EINVAL);
	CHECK(strstr(err, "'three' is not a descriptor number"));
	tp_run_opts_free(&o);

	CHECK(parse(&o, err,
		    (const char *[]){ "--listen", "127.0.0.1:0", "--wsgi", "dir/app.py:api",
				      NULL }) == 0);
	CHECK_STR(o.script, "dir/app.py");
	CHECK_STR(o.wsgi, "api");
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--listen-fd", "3", "--wsgi", "app.py", NULL }) ==
	      0);
	CHECK_STR(o.script, "app.py");
	CHECK_STR(o.wsgi, "application");
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--wsgi", "app.py", NULL }) == -EINVAL);
	CHECK(strstr(err, "--wsgi") && strstr(err, "--listen ADDR:PORT or --listen-fd N"));
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--listen-fd", "3", "--wsgi", "app.py:9x", NULL }) ==
	      -EINVAL);
	CHECK(strstr(err, "'9x' is not a Python name"));
	tp_run_opts_free(&o);
	CHECK(parse(&o, err,
		    (const char *[]){ "--listen-fd", "3", "x.py", "--wsgi", "app.py", NULL }) ==
	      -EINVAL);
	CHECK(strstr(err, "takes its place"));
	tp_run_opts_free(&o);
	CHECK(parse(&o, err,
		    (const char *[]){ "--listen-fd", "3", "--wsgi", "app.py", "x.py", NULL }) ==
	      -EINVAL);
	CHECK(strstr(err, "unexpected argument 'x.py'"));
	tp_run_opts_free(&o);
	CHECK(parse(&o, err,
		    (const char *[]){ "--listen", "127.0.0.1:0", "--output-volume", "out", "s.py",
				      NULL }) == -EINVAL);
	CHECK(strstr(err, "--output-volume: a server ends when it is stopped"));
	tp_run_opts_free(&o);
	CHECK(parse(&o, err, (const char *[]){ "--env", "PYPYLOG=jit-log-opt:-", "s.py", NULL }) ==
	      -EINVAL);
	CHECK(strstr(err, "not LD_* or PYPY*"));
	tp_run_opts_free(&o);
}

TESTS(run_opts_tests) = {
	{ "defaults_are_the_teex_limits", test_defaults_are_the_teex_limits },
	{ "service_data_come_before_task_data", test_service_data_come_before_task_data },
	{ "flags_override_environment", test_flags_override_environment },
	{ "bad_values_name_the_flag", test_bad_values_name_the_flag },
	{ "the_engine_setting_is_checked_where_it_applies",
	  test_the_engine_setting_is_checked_where_it_applies },
	{ "missing_script_is_a_usage_error", test_missing_script_is_a_usage_error },
	{ "shell_takes_the_flags_without_a_script", test_shell_takes_the_flags_without_a_script },
	{ "arguments_after_double_dash_belong_to_the_script",
	  test_arguments_after_double_dash_belong_to_the_script },
	{ "options_after_the_script_are_teepys", test_options_after_the_script_are_teepys },
	{ "hw_mode_is_parsed_auto_is_sim", test_hw_mode_is_parsed_auto_is_sim },
	{ "escape_is_auto_always_or_never", test_escape_is_auto_always_or_never },
	{ "shared_script_directories_are_named", test_shared_script_directories_are_named },
	{ "pythonpath_and_allow_are_kept_apart", test_pythonpath_and_allow_are_kept_apart },
	{ "one_input_and_one_output", test_one_input_and_one_output },
	{ "given_limits_are_a_set_of_bits", test_given_limits_are_a_set_of_bits },
	{ "flags_are_named_whole_and_switches_take_no_value",
	  test_flags_are_named_whole_and_switches_take_no_value },
	{ "cas_flags_come_together_and_not_with_key_flags",
	  test_cas_flags_come_together_and_not_with_key_flags },
	{ "cas_settings_yield_to_key_flags", test_cas_settings_yield_to_key_flags },
	{ "snp_certificates_go_with_cas", test_snp_certificates_go_with_cas },
	{ "a_server_takes_one_socket_and_no_clock", test_a_server_takes_one_socket_and_no_clock },
	END_TESTS,
};
