#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/log.h"

static char *capture(enum log_format fmt, const char *secret, const char *msg)
{
	FILE *f = tmpfile();
	char *out = calloc(1, 4096);

	log_setup(LOG_DEBUG, fmt, f);
	if (secret) {
		log_add_secret(secret);
	}
	log_info("%s", msg);
	if (secret) {
		log_forget_secret(secret);
	}
	rewind(f);
	ck_assert_uint_gt(fread(out, 1, 4095, f), 0);
	fclose(f);
	log_setup(LOG_INFO, LOG_FORMAT_AUTO, NULL);
	return out;
}

START_TEST(test_header_redaction)
{
	char *r;

	r = log_redact_header("Cookie: X-APPLE-WEBAUTH-TOKEN=abc\r\n", 35);
	ck_assert_str_eq(r, "Cookie: [redacted]");
	free(r);
	r = log_redact_header("x-apple-session-token: ZZZ", 26);
	ck_assert_str_eq(r, "x-apple-session-token: [redacted]");
	free(r);
	r = log_redact_header("scnt: 1234", 10);
	ck_assert_str_eq(r, "scnt: [redacted]");
	free(r);
	r = log_redact_header("Content-Type: text/plain", 24);
	ck_assert_str_eq(r, "Content-Type: text/plain");
	free(r);
}
END_TEST

START_TEST(test_body_redaction)
{
	const char *body = "{\"accountName\":\"a@b.c\",\"m1\":\"SECRET1\",\"rememberMe\":true,"
			   "\"trustTokens\":[\"TT1\",\"TT2\"],\"nested\":{\"password\":\"pw\"},"
			   "\"securityCode\":{\"code\":123456}}";
	char *r = log_redact_body(body, strlen(body));

	ck_assert_ptr_null(strstr(r, "SECRET1"));
	ck_assert_ptr_null(strstr(r, "TT1"));
	ck_assert_ptr_null(strstr(r, "TT2"));
	ck_assert_ptr_null(strstr(r, "\"pw\""));
	ck_assert_ptr_null(strstr(r, "123456"));
	ck_assert_ptr_nonnull(strstr(r, "\"accountName\":\"a@b.c\""));
	ck_assert_ptr_nonnull(strstr(r, "\"rememberMe\":true"));
	free(r);
	r = log_redact_body("<html>secret</html>", 19);
	ck_assert_str_eq(r, "[19 bytes, not JSON]");
	free(r);
}
END_TEST

START_TEST(test_secret_masked_in_every_format)
{
	char *out;

	out = capture(LOG_FORMAT_TEXT, "hunter2-password", "sending hunter2-password now");
	ck_assert_ptr_null(strstr(out, "hunter2-password"));
	ck_assert_ptr_nonnull(strstr(out, "sending "));
	free(out);
	out = capture(LOG_FORMAT_JSON, "tok-abcdef", "token tok-abcdef");
	ck_assert_ptr_null(strstr(out, "tok-abcdef"));
	ck_assert_ptr_nonnull(strstr(out, "\"level\":\"info\""));
	free(out);
	out = capture(LOG_FORMAT_AUTO, NULL, "plain \"quoted\"");
	ck_assert_ptr_nonnull(strstr(out, "level=info msg=\"plain \\\"quoted\\\"\""));
	free(out);
}
END_TEST

START_TEST(test_url_redaction)
{
	char *r = log_redact_url("https://cvws.icloud-content.com/B/abc/${f}?o=sig&e=1");

	ck_assert_str_eq(r, "https://cvws.icloud-content.com/B/abc/${f}?[query redacted]");
	free(r);
	r = log_redact_url("https://user:s3cret@ntfy.example/topic?auth=tok@x");
	ck_assert_str_eq(r, "https://ntfy.example/topic?[query redacted]");
	free(r);
	r = log_redact_url("http://immich:2283/api/libraries/a@b/scan");
	ck_assert_str_eq(r, "http://immich:2283/api/libraries/a@b/scan");
	free(r);
}
END_TEST

START_TEST(test_levels)
{
	enum log_level l;

	ck_assert_int_eq(log_parse_level("DEBUG", &l), 0);
	ck_assert_int_eq(l, LOG_DEBUG);
	ck_assert_int_eq(log_parse_level("loud", &l), -1);
	log_setup(LOG_WARN, LOG_FORMAT_TEXT, NULL);
	ck_assert(!log_enabled(LOG_INFO));
	ck_assert(log_enabled(LOG_ERROR));
	log_setup(LOG_INFO, LOG_FORMAT_AUTO, NULL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_header_redaction);
	tcase_add_test(tc, test_body_redaction);
	tcase_add_test(tc, test_secret_masked_in_every_format);
	tcase_add_test(tc, test_url_redaction);
	tcase_add_test(tc, test_levels);
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
