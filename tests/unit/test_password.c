#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/password.h"
#include "icpd/secret.h"

static char tmpdir[64];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-password-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_int_eq(secret_init(), 0);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *write_file(const char *name, const char *text, mode_t mode)
{
	char *path = malloc(256);
	FILE *f;

	snprintf(path, 256, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

static int get(struct config *c, char **pw)
{
	return password_get(c, false, stdin, stderr, pw);
}

START_TEST(test_file_first_line_crlf)
{
	struct config c;
	char *pw = NULL;

	config_init(&c);
	c.password_file = write_file("pw", "p\xc3\xa4ss w\xc3\xb6rd\r\nsecond\n", 0600);
	ck_assert_int_eq(get(&c, &pw), 0);
	ck_assert_str_eq(pw, "p\xc3\xa4ss w\xc3\xb6rd");
	password_free(pw);
	config_release(&c);
}
END_TEST

START_TEST(test_file_without_newline_and_errors)
{
	struct config c;
	char *pw = NULL;

	config_init(&c);
	c.password_file = write_file("pw", "secret", 0644);
	ck_assert_int_eq(get(&c, &pw), 0);
	ck_assert_str_eq(pw, "secret");
	password_free(pw);
	free(c.password_file);
	c.password_file = write_file("empty", "\n", 0600);
	ck_assert_int_eq(get(&c, &pw), ICPD_EUSAGE);
	ck_assert_ptr_null(pw);
	ck_assert_ptr_nonnull(strstr(error_message(), "empty"));
	free(c.password_file);
	c.password_file = strdup("/nonexistent/icpd/pw");
	ck_assert_int_eq(get(&c, &pw), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "/nonexistent/icpd/pw"));
	config_release(&c);
}
END_TEST

START_TEST(test_order_file_command_env_argv)
{
	struct config c;
	char *pw = NULL;

	config_init(&c);
	c.password = strdup("from-argv");
	ck_assert_int_eq(get(&c, &pw), 0);
	ck_assert_str_eq(pw, "from-argv");
	password_free(pw);
	c.env_password = strdup("from-env");
	ck_assert_int_eq(get(&c, &pw), 0);
	ck_assert_str_eq(pw, "from-env");
	password_free(pw);
	c.password_command = strdup("echo from-command; echo more");
	ck_assert_msg(get(&c, &pw) == 0, "%s", error_message());
	ck_assert_str_eq(pw, "from-command");
	password_free(pw);
	c.password_file = write_file("pw", "from-file\n", 0600);
	ck_assert_int_eq(get(&c, &pw), 0);
	ck_assert_str_eq(pw, "from-file");
	password_free(pw);
	config_release(&c);
}
END_TEST

START_TEST(test_command_failure)
{
	struct config c;
	char *pw = NULL;

	config_init(&c);
	c.password_command = strdup("echo half; exit 3");
	ck_assert_int_eq(get(&c, &pw), ICPD_EUSAGE);
	ck_assert_ptr_null(pw);
	ck_assert_ptr_nonnull(strstr(error_message(), "exit status 3"));
	free(c.password_command);
	c.password_command = strdup("true");
	ck_assert_int_eq(get(&c, &pw), ICPD_EUSAGE);
	config_release(&c);
}
END_TEST

START_TEST(test_no_source)
{
	struct config c;
	char *pw = (char *)"x";

	config_init(&c);
	ck_assert_int_eq(get(&c, &pw), ICPD_ENOTFOUND);
	ck_assert_ptr_null(pw);
	config_release(&c);
}
END_TEST

START_TEST(test_prompt_from_pipe_reprints_on_empty_line)
{
	struct config c;
	char *pw = NULL, *out_text = NULL;
	size_t out_len = 0;
	FILE *in = fmemopen((void *)"\n\nhunter2\n", 10, "r");
	FILE *out = open_memstream(&out_text, &out_len);

	config_init(&c);
	c.username = strdup("me@example.com");
	ck_assert_int_eq(password_get(&c, true, in, out, &pw), 0);
	ck_assert_str_eq(pw, "hunter2");
	password_free(pw);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(out_text, "iCloud password for me@example.com: "));
	ck_assert_ptr_null(strstr(out_text, "hunter2"));
	{
		int n = 0;

		for (const char *p = out_text; (p = strstr(p, "iCloud password")) != NULL; p++) {
			n++;
		}
		ck_assert_int_eq(n, 3);
	}
	free(out_text);
	fclose(in);
	/* end of input: an auth error, not a hang */
	in = fmemopen((void *)"\n", 1, "r");
	ck_assert_int_eq(password_get(&c, true, in, stderr, &pw), ICPD_EAUTH);
	fclose(in);
	config_release(&c);
}
END_TEST

START_TEST(test_secret_mounts)
{
	ck_assert(password_in_secret_mount("/run/secrets/icloud"));
	ck_assert(password_in_secret_mount("/var/run/secrets/x/y"));
	ck_assert(!password_in_secret_mount("/run/secretsX/y"));
	ck_assert(!password_in_secret_mount("/home/me/pw"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("password");
	TCase *tc = tcase_create("sources");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_file_first_line_crlf);
	tcase_add_test(tc, test_file_without_newline_and_errors);
	tcase_add_test(tc, test_order_file_command_env_argv);
	tcase_add_test(tc, test_command_failure);
	tcase_add_test(tc, test_no_source);
	tcase_add_test(tc, test_prompt_from_pipe_reprints_on_empty_line);
	tcase_add_test(tc, test_secret_mounts);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
