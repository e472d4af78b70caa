#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "icpd/config.h"
#include "icpd/error.h"

static const char *const opts[] = { "config", "username", "directory", "size", "threads",
	"domain", "dry-run", "log-level", "file-mode", "password", "ca-file", "auth-endpoint",
	"folder-structure", NULL };

static char tmpdir[64];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *write_file(const char *name, const char *text)
{
	char *path = malloc(256);
	FILE *f;

	snprintf(path, 256, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int resolve(struct config *c, char **argv, char **env)
{
	int argc = 0;

	while (argv && argv[argc]) {
		argc++;
	}
	config_init(c);
	return config_resolve(c, opts, argc, argv, env);
}

START_TEST(test_defaults)
{
	struct config c;
	char *env[] = { "HOME=/home/x", NULL };
	char *argv[] = { NULL };

	ck_assert_int_eq(resolve(&c, argv, env), 0);
	ck_assert_int_eq(c.threads, 8);
	ck_assert_str_eq(c.cookie_directory, "/home/x/.config/icpd");
	ck_assert_str_eq(c.folder_structure, "{:%Y/%m/%d}");
	ck_assert_uint_eq(c.sizes.n, 1);
	ck_assert_str_eq(c.sizes.items[0], "original");
	ck_assert_str_eq(c.auth_endpoint, "https://idmsa.apple.com/appleauth/auth");
	ck_assert_str_eq(c.setup_endpoint, "https://setup.icloud.com/setup/ws/1");
	ck_assert_int_eq(c.file_mode, 0644);
	ck_assert_ptr_null(c.config_file);
	free(c.args);
	config_release(&c);
}
END_TEST

START_TEST(test_precedence_flag_env_file)
{
	struct config c;
	char *file = write_file("cfg", "# comment\nthreads = 3\nusername = File@Example.com\n"
				       "directory = /file\nsize = thumb\n");
	char *cfgenv = NULL;
	char *env[4];
	char *argv[] = { "--directory", "/flag", NULL };

	cfgenv = malloc(300);
	snprintf(cfgenv, 300, "ICPD_CONFIG=%s", file);
	env[0] = cfgenv;
	env[1] = "ICPD_THREADS=5";
	env[2] = "ICPD_DIRECTORY=/env";
	env[3] = NULL;
	ck_assert_int_eq(resolve(&c, argv, env), 0);
	ck_assert_int_eq(c.threads, 5);                      /* env over file */
	ck_assert_str_eq(c.directory, "/flag");              /* flag over env and file */
	ck_assert_str_eq(c.username, "file@example.com");    /* file over default, lower-cased */
	ck_assert_uint_eq(c.sizes.n, 1);
	ck_assert_str_eq(c.sizes.items[0], "thumb");
	ck_assert_str_eq(c.config_file, file);
	free(c.args);
	config_release(&c);
	free(file);
	free(cfgenv);
}
END_TEST

START_TEST(test_config_flag_and_lists_replaced)
{
	struct config c;
	char *file = write_file("cfg2", "size = medium\nsize = thumb\n");
	char *argv[] = { "--config", file, "--size", "original", "--size=adjusted", "-u", "A@B.C",
		NULL };
	char *env[] = { "ICPD_SIZE=alternative", NULL };

	ck_assert_int_eq(resolve(&c, argv, env), 0);
	ck_assert_uint_eq(c.sizes.n, 2);
	ck_assert_str_eq(c.sizes.items[0], "original");
	ck_assert_str_eq(c.sizes.items[1], "adjusted");
	ck_assert_str_eq(c.username, "a@b.c");
	free(c.args);
	config_release(&c);
	free(file);
}
END_TEST

START_TEST(test_bad_lines_name_file_and_line)
{
	struct config c;
	char *file = write_file("bad", "threads = 3\n\nthreadz = 4\n");
	char *argv[] = { "--config", file, NULL };
	char *env[] = { NULL };
	char expect[300];

	ck_assert_int_eq(resolve(&c, argv, env), ICPD_EUSAGE);
	snprintf(expect, sizeof(expect), "%s:3: unknown key 'threadz'", file);
	ck_assert_str_eq(error_message(), expect);
	free(c.args);
	config_release(&c);
	free(file);

	file = write_file("bad2", "threads = many\n");
	argv[1] = file;
	ck_assert_int_eq(resolve(&c, argv, env), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), ":1: threads"));
	ck_assert_ptr_nonnull(strstr(error_message(), "'many' is not a number"));
	free(c.args);
	config_release(&c);
	free(file);

	file = write_file("bad3", "no equals sign here\n");
	argv[1] = file;
	ck_assert_int_eq(resolve(&c, argv, env), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), ":1: expected 'key = value'"));
	free(c.args);
	config_release(&c);
	free(file);

	file = write_file("bad4", "password = hunter22\n");
	argv[1] = file;
	ck_assert_int_eq(resolve(&c, argv, env), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "not allowed in a config file"));
	ck_assert_ptr_null(strstr(error_message(), "hunter22"));
	free(c.args);
	config_release(&c);
	free(file);

	file = write_file("bad5", "domain = de\n");
	argv[1] = file;
	ck_assert_int_eq(resolve(&c, argv, env), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "'de' is not one of com, cn"));
	free(c.args);
	config_release(&c);
	free(file);
}
END_TEST

START_TEST(test_missing_config_file)
{
	struct config c;
	char *argv[] = { "--config", "/nonexistent/icpd.conf", NULL };
	char *env[] = { NULL };

	ck_assert_int_eq(resolve(&c, argv, env), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "/nonexistent/icpd.conf"));
	free(c.args);
	config_release(&c);
}
END_TEST

START_TEST(test_option_parsing_errors)
{
	struct config c;
	char *env[] = { NULL };
	char *a1[] = { "--bogus", NULL };
	char *a2[] = { "--threads", NULL };
	char *a3[] = { "--threads", "0", NULL };
	char *a4[] = { "--dry-run=yes", NULL };
	char *a5[] = { "--recent", "5", NULL }; /* a real option this command does not take */
	char *a6[] = { "--file-mode", "0999", NULL };
	char *a7[] = { "-z", NULL };

	ck_assert_int_eq(resolve(&c, a1, env), ICPD_EUSAGE);
	ck_assert_str_eq(error_message(), "unknown option '--bogus'");
	free(c.args);
	config_release(&c);
	ck_assert_int_eq(resolve(&c, a2, env), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "needs a value"));
	free(c.args);
	config_release(&c);
	ck_assert_int_eq(resolve(&c, a3, env), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "from 1 to 64"));
	free(c.args);
	config_release(&c);
	ck_assert_int_eq(resolve(&c, a4, env), ICPD_EUSAGE);
	free(c.args);
	config_release(&c);
	ck_assert_int_eq(resolve(&c, a5, env), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "does not apply"));
	free(c.args);
	config_release(&c);
	ck_assert_int_eq(resolve(&c, a6, env), ICPD_EUSAGE);
	free(c.args);
	config_release(&c);
	ck_assert_int_eq(resolve(&c, a7, env), ICPD_EUSAGE);
	free(c.args);
	config_release(&c);
}
END_TEST

START_TEST(test_flags_modes_positionals)
{
	struct config c;
	char *env[] = { "ICPD_DRY_RUN=false", NULL };
	char *argv[] = { "albums", "--dry-run", "--file-mode", "0640", "--domain", "cn", "--",
		"--not-an-option", NULL };

	ck_assert_int_eq(resolve(&c, argv, env), 0);
	ck_assert(c.dry_run);
	ck_assert_int_eq(c.file_mode, 0640);
	ck_assert_int_eq(c.nargs, 2);
	ck_assert_str_eq(c.args[0], "albums");
	ck_assert_str_eq(c.args[1], "--not-an-option");
	ck_assert_str_eq(c.auth_endpoint, "https://idmsa.apple.com.cn/appleauth/auth");
	ck_assert_str_eq(c.home_endpoint, "https://www.icloud.com.cn");
	free(c.args);
	config_release(&c);
}
END_TEST

START_TEST(test_env_bool_and_endpoint_override)
{
	struct config c;
	char *env[] = { "ICPD_DRY_RUN=yes", "ICPD_AUTH_ENDPOINT=https://idmsa.localhost:8443/appleauth/auth",
		"ICPD_PASSWORD=s3cret-pass", NULL };
	char *argv[] = { NULL };

	ck_assert_int_eq(resolve(&c, argv, env), 0);
	ck_assert(c.dry_run);
	ck_assert_str_eq(c.auth_endpoint, "https://idmsa.localhost:8443/appleauth/auth");
	ck_assert_str_eq(c.env_password, "s3cret-pass");
	ck_assert_ptr_null(c.password); /* ICPD_PASSWORD is not -p */
	free(c.args);
	config_release(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_precedence_flag_env_file);
	tcase_add_test(tc, test_config_flag_and_lists_replaced);
	tcase_add_test(tc, test_bad_lines_name_file_and_line);
	tcase_add_test(tc, test_missing_config_file);
	tcase_add_test(tc, test_option_parsing_errors);
	tcase_add_test(tc, test_flags_modes_positionals);
	tcase_add_test(tc, test_env_bool_and_endpoint_override);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
