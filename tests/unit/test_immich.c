/*
 * immich.c: the scan request (method, path, x-api-key from a trimmed file),
 * the key kept out of the log, a world-readable key file warned about, and
 * every failure (401, 500, refused, silent, missing settings) a warning that
 * leaves the run's error alone.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/immich.h"
#include "icpd/log.h"
#include "icpd/util.h"

#include "testrecv.h"

#define KEY "imm1ch-K3Y-abcdef0123456789"

static char tmpdir[64];
static char keyfile[128];
static struct config cfg;

static void write_key(const char *text, mode_t mode)
{
	FILE *f = fopen(keyfile, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(keyfile, mode), 0);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-immich-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(keyfile, sizeof(keyfile), "%s/key", tmpdir);
	write_key("  " KEY "\n\n", 0600);
	config_init(&cfg);
	cfg.immich_api_key_file = xstrdup(keyfile);
	cfg.immich_library_id = xstrdup("0f3c5c3e-1d2b-4c4e-9a55-2f0c7c2d9b11");
	immich_set_timeout(0);
	error_clear();
}

static void teardown(void)
{
	char cmd[128];

	config_release(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_scan_request)
{
	struct recv s;
	struct logcap l;

	recv_start(&s, "HTTP/1.1 204 No Content\r\n\r\n", 0);
	/* a trailing slash on the base URL must not double */
	cfg.immich_url = xasprintf("http://127.0.0.1:%d/", s.port);
	logcap_start(&l);
	ck_assert(immich_configured(&cfg));
	ck_assert_int_eq(immich_scan(&cfg), 0);
	recv_stop(&s);
	logcap_read(&l);
	ck_assert_msg(strstr(l.text, "asked Immich to scan library "
				     "0f3c5c3e-1d2b-4c4e-9a55-2f0c7c2d9b11 (HTTP 204)"), "%s", l.text);
	/* the request was traced at debug level, the key was not */
	ck_assert_ptr_nonnull(strstr(l.text, "x-api-key"));
	ck_assert_ptr_null(strstr(l.text, KEY));
	ck_assert_ptr_null(strstr(l.text, "warn:"));
	logcap_stop(&l);
	ck_assert_msg(str_startswith(s.request, "POST /api/libraries/"
						"0f3c5c3e-1d2b-4c4e-9a55-2f0c7c2d9b11/scan HTTP/1.1\r\n"),
		"%s", s.request);
	ck_assert_ptr_nonnull(strcasestr(s.request, "\r\nx-api-key: " KEY "\r\n"));
	ck_assert_ptr_nonnull(strcasestr(s.request, "\r\nContent-Type: application/json\r\n"));
	ck_assert_str_eq(recv_body(&s), "{}");
}
END_TEST

START_TEST(test_world_readable_key_warns_but_scans)
{
	struct recv s;
	struct logcap l;

	write_key(KEY, 0644);
	recv_start(&s, "HTTP/1.1 204 No Content\r\n\r\n", 0);
	cfg.immich_url = xasprintf("http://127.0.0.1:%d", s.port);
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), 0);
	recv_stop(&s);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "warn: --immich-api-key-file '"));
	ck_assert_ptr_nonnull(strstr(l.text, "is readable by every user (mode 0644)"));
	logcap_stop(&l);
	ck_assert_ptr_nonnull(strstr(s.request, "POST /api/libraries/"));
}
END_TEST

START_TEST(test_401_is_a_warning_and_keeps_the_error)
{
	struct recv s;
	struct logcap l;

	recv_start(&s, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 25\r\n\r\n"
		       "{\"message\":\"Invalid key\"}", 0);
	cfg.immich_url = xasprintf("http://127.0.0.1:%d", s.port);
	error_set(ICPD_EPARTIAL, "2 files failed");
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), ICPD_EPROTO);
	recv_stop(&s);
	logcap_read(&l);
	ck_assert_msg(strstr(l.text, "warn: Immich scan not requested: Immich refused the API key "
				     "at '"), "%s", l.text);
	ck_assert_ptr_nonnull(strstr(l.text, "(HTTP 401); check --immich-api-key-file"));
	ck_assert_ptr_null(strstr(l.text, KEY));
	logcap_stop(&l);
	ck_assert_int_eq(error_code(), ICPD_EPARTIAL);
	ck_assert_str_eq(error_message(), "2 files failed");
}
END_TEST

START_TEST(test_500_and_404)
{
	struct recv s;
	struct logcap l;

	recv_start(&s, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", 0);
	cfg.immich_url = xasprintf("http://127.0.0.1:%d", s.port);
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), ICPD_EPROTO);
	recv_stop(&s);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "Immich answered HTTP 500 to 'http://"));
	logcap_stop(&l);

	recv_start(&s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0);
	free(cfg.immich_url);
	cfg.immich_url = xasprintf("http://127.0.0.1:%d", s.port);
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), ICPD_EPROTO);
	recv_stop(&s);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "Immich knows no library "
						      "'0f3c5c3e-1d2b-4c4e-9a55-2f0c7c2d9b11'"));
	logcap_stop(&l);
	ck_assert_int_eq(error_code(), 0);
}
END_TEST

START_TEST(test_refused_and_silent)
{
	struct recv s;
	struct logcap l;
	double t0;

	cfg.immich_url = xstrdup("http://127.0.0.1:1");
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), ICPD_ENET);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "warn: Immich scan not requested: cannot "
						      "reach 'http://127.0.0.1:1/api/libraries/"));
	logcap_stop(&l);

	immich_set_timeout(1);
	recv_start(&s, NULL, 30000);
	free(cfg.immich_url);
	cfg.immich_url = xasprintf("http://127.0.0.1:%d", s.port);
	t0 = mono_now();
	ck_assert_int_eq(immich_scan(&cfg), ICPD_ENET);
	ck_assert(mono_now() - t0 < 10.0);
	recv_stop(&s);
	ck_assert(s.accepted);
}
END_TEST

START_TEST(test_settings_missing_or_bad)
{
	struct logcap l;

	/* not configured: nothing, no warning */
	logcap_start(&l);
	ck_assert(!immich_configured(&cfg));
	ck_assert_int_eq(immich_scan(&cfg), 0);
	ck_assert_str_eq(logcap_read(&l), "");
	logcap_stop(&l);

	cfg.immich_url = xstrdup("http://127.0.0.1:1");
	free(cfg.immich_library_id);
	cfg.immich_library_id = NULL;
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "--immich-library-id is not"));
	logcap_stop(&l);

	cfg.immich_library_id = xstrdup("lib");
	write_key(" \n\t\n", 0600);
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "is empty"));
	logcap_stop(&l);

	unlink(keyfile);
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "cannot open --immich-api-key-file"));
	logcap_stop(&l);

	free(cfg.immich_api_key_file);
	cfg.immich_api_key_file = NULL;
	logcap_start(&l);
	ck_assert_int_eq(immich_scan(&cfg), ICPD_EUSAGE);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "--immich-api-key-file is not"));
	logcap_stop(&l);
	ck_assert_int_eq(error_code(), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("immich");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_scan_request);
	tcase_add_test(tc, test_world_readable_key_warns_but_scans);
	tcase_add_test(tc, test_401_is_a_warning_and_keeps_the_error);
	tcase_add_test(tc, test_500_and_404);
	tcase_add_test(tc, test_refused_and_silent);
	tcase_add_test(tc, test_settings_missing_or_bad);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_VERBOSE);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
