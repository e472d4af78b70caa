/*
 * notify.c: the hook's environment (figures in, secrets out), its time
 * limit, the webhook's request (method, path, headers, JSON), and that a
 * failed notification is only a warning that leaves the run's error alone.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/notify.h"
#include "icpd/util.h"

#include "testrecv.h"

static char tmpdir[64];
static char outfile[128];
static struct config cfg;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-notify-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(outfile, sizeof(outfile), "%s/out", tmpdir);
	config_init(&cfg);
	cfg.username = xstrdup("me@example.com");
	notify_set_timeouts(0, 0);
	error_clear();
}

static void teardown(void)
{
	char cmd[128];

	config_release(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* The whole file, or NULL when it does not exist.  Caller frees. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	size_t n;

	if (!f) {
		return NULL;
	}
	text = calloc(1, 65536);
	n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void hook_env_to_file(void)
{
	free(cfg.notify_command);
	cfg.notify_command = xasprintf("env > '%s'", outfile);
}

START_TEST(test_command_env_has_figures_not_secrets)
{
	struct notify_figures f = { .downloaded = 12, .failed = 1, .bytes = 123456789012LL,
		.listed = 40, .exit_code = 4, .message = "12 new \"files\"\nsecond line",
		.trust_expires = 1893456000 /* 2030-01-01T00:00:00Z */ };
	char *env;

	setenv("ICPD_PASSWORD", "hunter2-env", 1);
	setenv("ICPD_NOTIFY_URL", "https://ntfy.example/topic?auth=tok", 1);
	setenv("SOME_OTHER", "prefix-s3cret-pw-suffix", 1);
	setenv("KEEP_ME", "visible", 1);
	cfg.password = xstrdup("s3cret-pw");
	hook_env_to_file();
	ck_assert_int_eq(notify_event(&cfg, NOTIFY_SYNC_COMPLETE, &f), 0);
	env = slurp(outfile);
	ck_assert_ptr_nonnull(env);
	ck_assert_ptr_nonnull(strstr(env, "ICPD_EVENT=sync_complete\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_ACCOUNT=me@example.com\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_DOWNLOADED=12\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_FAILED=1\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_LISTED=40\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_BYTES=123456789012\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_EXIT_CODE=4\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_MESSAGE=12 new \"files\" second line\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_TRUST_EXPIRES=2030-01-01T00:00:00Z\n"));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_TRUST_DAYS_LEFT="));
	ck_assert_ptr_nonnull(strstr(env, "ICPD_TIME=20"));
	ck_assert_ptr_nonnull(strstr(env, "KEEP_ME=visible\n"));
	ck_assert_ptr_null(strstr(env, "hunter2"));
	ck_assert_ptr_null(strstr(env, "ICPD_PASSWORD"));
	ck_assert_ptr_null(strstr(env, "ICPD_NOTIFY_URL"));
	ck_assert_ptr_null(strstr(env, "s3cret-pw"));
	unsetenv("ICPD_PASSWORD");
	unsetenv("ICPD_NOTIFY_URL");
	unsetenv("SOME_OTHER");
	unsetenv("KEEP_ME");
	free(env);
}
END_TEST

START_TEST(test_command_failure_is_a_warning_and_keeps_the_error)
{
	struct logcap l;

	cfg.notify_command = xstrdup("echo from-hook; exit 3");
	error_set(ICPD_EUNAVAIL, "apple said 503");
	error_hint("try later");
	logcap_start(&l);
	ck_assert_int_ne(notify_event(&cfg, NOTIFY_SYNC_FAILED, NULL), 0);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "warn: notification 'sync_failed' by "
						     "command failed: --notify-command exited with "
						     "status 3"));
	logcap_stop(&l);
	ck_assert_int_eq(error_code(), ICPD_EUNAVAIL);
	ck_assert_str_eq(error_message(), "apple said 503");
	ck_assert_str_eq(error_hint_text(), "try later");
}
END_TEST

START_TEST(test_command_is_stopped_after_the_limit)
{
	struct logcap l;
	double t0;
	char *pidtext;
	long pid;

	notify_set_timeouts(1, 0);
	/* a grandchild too: the whole process group goes */
	cfg.notify_command = xasprintf("sleep 30 & echo $! > '%s'; wait", outfile);
	logcap_start(&l);
	t0 = mono_now();
	ck_assert_int_ne(notify_event(&cfg, NOTIFY_SYNC_COMPLETE, NULL), 0);
	ck_assert(mono_now() - t0 < 5.0);
	ck_assert(mono_now() - t0 >= 0.9);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "ran longer than 1 s and was stopped"));
	logcap_stop(&l);
	pidtext = slurp(outfile);
	ck_assert_ptr_nonnull(pidtext);
	pid = atol(pidtext);
	ck_assert_int_gt(pid, 1);
	usleep(200 * 1000);
	{
		/* gone, or a zombie waiting for its reaper: not sleeping any more */
		char path[64], *stat;

		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		stat = slurp(path);
		ck_assert(!stat || strstr(stat, ") Z ") || strstr(stat, ") X "));
		free(stat);
	}
	free(pidtext);
}
END_TEST

START_TEST(test_command_gets_default_sigpipe)
{
	char *text, *line;
	unsigned long long ign;

	/* like main.c: icpd itself ignores SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	cfg.notify_command = xasprintf("grep SigIgn /proc/$$/status > '%s'", outfile);
	ck_assert_int_eq(notify_event(&cfg, NOTIFY_SYNC_COMPLETE, NULL), 0);
	signal(SIGPIPE, SIG_DFL);
	text = slurp(outfile);
	ck_assert_ptr_nonnull(text);
	line = strstr(text, "SigIgn:");
	ck_assert_ptr_nonnull(line);
	ign = strtoull(line + 7, NULL, 16);
	ck_assert_msg(!(ign & (1ULL << (SIGPIPE - 1))), "%s", text);
	free(text);
}
END_TEST

START_TEST(test_no_channel_does_nothing)
{
	ck_assert_int_eq(notify_event(&cfg, NOTIFY_SYNC_COMPLETE, NULL), 0);
}
END_TEST

START_TEST(test_url_posts_json)
{
	struct recv s;
	struct logcap l;
	struct notify_figures f = { .downloaded = 3, .bytes = 4096, .exit_code = 0,
		.message = "a \"quoted\"\\ line\nand\ttab", .trust_expires = 1893456000 };
	const char *body;

	recv_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0);
	cfg.notify_url = xasprintf("http://127.0.0.1:%d/hook/icpd?token=tok-secret-1", s.port);
	logcap_start(&l);
	ck_assert_int_eq(notify_event(&cfg, NOTIFY_SYNC_COMPLETE, &f), 0);
	recv_stop(&s);
	ck_assert_ptr_null(strstr(logcap_read(&l), "tok-secret-1"));
	logcap_stop(&l);
	ck_assert_ptr_nonnull(strstr(s.request, "POST /hook/icpd?token=tok-secret-1 HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strcasestr(s.request, "\r\nContent-Type: application/json\r\n"));
	ck_assert_ptr_null(strcasestr(s.request, "\r\nTitle:"));
	ck_assert_ptr_null(strcasestr(s.request, "\r\nTags:"));
	body = recv_body(&s);
	ck_assert_msg(str_startswith(body, "{\"event\":\"sync_complete\",\"account\":"
					   "\"me@example.com\",\"title\":\"icpd: sync_complete\","
					   "\"message\":\"a \\\"quoted\\\"\\\\ line\\nand\\ttab\","),
		"body: %s", body);
	ck_assert_ptr_nonnull(strstr(body, ",\"time\":\"20"));
	ck_assert_ptr_nonnull(strstr(body, "\"figures\":{\"listed\":0,\"downloaded\":3,"
					   "\"failed\":0,\"bytes\":4096,\"exit_code\":0,"
					   "\"trust_expires\":\"2030-01-01T00:00:00Z\","
					   "\"trust_days_left\":"));
	ck_assert(str_endswith(body, "}}"));
}
END_TEST

START_TEST(test_url_unknown_trust_is_null)
{
	struct recv s;

	recv_start(&s, "HTTP/1.1 204 No Content\r\n\r\n", 0);
	cfg.notify_url = xasprintf("http://127.0.0.1:%d/", s.port);
	ck_assert_int_eq(notify_event(&cfg, NOTIFY_AUTH_REQUIRED, NULL), 0);
	recv_stop(&s);
	ck_assert_ptr_nonnull(strstr(recv_body(&s), "\"event\":\"auth_required\""));
	ck_assert_ptr_nonnull(strstr(recv_body(&s), "\"message\":\"iCloud sign-in needed: run "
						    "'icpd auth'\""));
	ck_assert_ptr_nonnull(strstr(recv_body(&s), "\"trust_expires\":null,"
						    "\"trust_days_left\":null}}"));
}
END_TEST

START_TEST(test_url_500_is_a_warning)
{
	struct recv s;
	struct logcap l;

	recv_start(&s, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom", 0);
	cfg.notify_url = xasprintf("http://user:pw-in-url@127.0.0.1:%d/x?k=v", s.port);
	error_set(ICPD_EAUTH, "sign-in needed");
	logcap_start(&l);
	ck_assert_int_ne(notify_event(&cfg, NOTIFY_AUTH_REQUIRED, NULL), 0);
	recv_stop(&s);
	logcap_read(&l);
	ck_assert_msg(strstr(l.text, "warn: notification 'auth_required' to "), "%s", l.text);
	ck_assert_ptr_nonnull(strstr(l.text, "answered HTTP 500"));
	ck_assert_msg(!strstr(l.text, "pw-in-url"), "%s", l.text);
	logcap_stop(&l);
	ck_assert_int_eq(error_code(), ICPD_EAUTH);
	ck_assert_str_eq(error_message(), "sign-in needed");
}
END_TEST

START_TEST(test_url_refused_is_a_warning)
{
	struct logcap l;

	cfg.notify_url = xstrdup("http://127.0.0.1:1/hook");
	logcap_start(&l);
	ck_assert_int_eq(notify_event(&cfg, NOTIFY_SYNC_COMPLETE, NULL), ICPD_ENET);
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "warn: notification 'sync_complete' to "
						      "'http://127.0.0.1:1/hook' failed: cannot reach"));
	logcap_stop(&l);
	ck_assert_int_eq(error_code(), 0);
	ck_assert_str_eq(error_message(), "");
}
END_TEST

START_TEST(test_url_silent_receiver_times_out)
{
	struct recv s;
	struct logcap l;
	double t0;

	/* libcurl's speed check averages over a few seconds, so a 1 s idle
	 * limit ends a 300-byte POST after some 6 s; the receiver would hold
	 * the connection for 30 s */
	notify_set_timeouts(0, 1);
	recv_start(&s, NULL, 30000);
	cfg.notify_url = xasprintf("http://127.0.0.1:%d/slow", s.port);
	logcap_start(&l);
	t0 = mono_now();
	ck_assert_int_eq(notify_event(&cfg, NOTIFY_SYNC_COMPLETE, NULL), ICPD_ENET);
	ck_assert_msg(mono_now() - t0 < 10.0, "took %.1f s: %s", mono_now() - t0, logcap_read(&l));
	ck_assert_ptr_nonnull(strstr(logcap_read(&l), "warn: notification 'sync_complete'"));
	logcap_stop(&l);
	recv_stop(&s);
	ck_assert(s.accepted);
}
END_TEST

START_TEST(test_both_channels_and_one_fails)
{
	struct recv s;
	char *env;

	recv_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
	cfg.notify_url = xasprintf("http://127.0.0.1:%d/ok", s.port);
	cfg.notify_command = xasprintf("echo \"$ICPD_EVENT\" > '%s'; exit 1", outfile);
	ck_assert_int_ne(notify_event(&cfg, NOTIFY_SYNC_FAILED, NULL), 0);
	recv_stop(&s);
	env = slurp(outfile);
	ck_assert_str_eq(env, "sync_failed\n");
	ck_assert_ptr_nonnull(strstr(recv_body(&s), "\"event\":\"sync_failed\""));
	free(env);
}
END_TEST

static char *event_of_result(int rc, const struct notify_figures *f)
{
	free(cfg.notify_command);
	cfg.notify_command = xasprintf("printf '%%s|%%s|%%s' \"$ICPD_EVENT\" \"$ICPD_EXIT_CODE\" "
				       "\"$ICPD_MESSAGE\" > '%s'", outfile);
	unlink(outfile);
	notify_sync_result(&cfg, rc, f);
	return slurp(outfile);
}

START_TEST(test_sync_result_picks_the_event)
{
	struct notify_figures f = { .downloaded = 5, .bytes = 10, .failed = 2 };
	char *r;

	r = event_of_result(0, &f);
	ck_assert_str_eq(r, "sync_complete|0|5 new files (10 bytes), 2 failed");
	free(r);
	r = event_of_result(ICPD_EPARTIAL, &f);
	ck_assert_str_eq(r, "sync_complete|4|5 new files (10 bytes), 2 failed");
	free(r);
	error_set(ICPD_EAUTH, "the trusted session expired");
	error_hint("run 'icpd auth'");
	r = event_of_result(ICPD_EAUTH, NULL);
	ck_assert_str_eq(r, "auth_required|3|the trusted session expired; run 'icpd auth'");
	free(r);
	error_set(ICPD_ESTORAGE, "no space left on '/photos'");
	r = event_of_result(ICPD_ESTORAGE, NULL);
	ck_assert_str_eq(r, "sync_failed|6|no space left on '/photos'");
	free(r);
	ck_assert_str_eq(error_message(), "no space left on '/photos'");
}
END_TEST

START_TEST(test_trust_expiring)
{
	time_t now = 1800000000;
	char *r;

	cfg.notify_command = xasprintf("printf '%%s|%%s|%%s' \"$ICPD_EVENT\" "
				       "\"$ICPD_TRUST_EXPIRES\" \"$ICPD_TRUST_DAYS_LEFT\" > '%s'",
		outfile);
	/* 10 days away, default window of 7: nothing */
	ck_assert(!notify_check_trust(&cfg, now + 10 * 86400, now));
	ck_assert_int_ne(access(outfile, F_OK), 0);
	ck_assert(!notify_check_trust(&cfg, 0, now));
	ck_assert_int_ne(access(outfile, F_OK), 0);
	/* 3 days and an hour away: warn */
	ck_assert(notify_check_trust(&cfg, now + 3 * 86400 + 3600, now));
	r = slurp(outfile);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r, "auth_expiring|2027-01-18T09:00:00Z|3");
	free(r);
	/* a wider window catches the 10 days */
	cfg.auth_expiring_days = 14;
	unlink(outfile);
	ck_assert(notify_check_trust(&cfg, now + 10 * 86400, now));
	ck_assert_int_eq(access(outfile, F_OK), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_command_env_has_figures_not_secrets);
	tcase_add_test(tc, test_command_failure_is_a_warning_and_keeps_the_error);
	tcase_add_test(tc, test_command_is_stopped_after_the_limit);
	tcase_add_test(tc, test_command_gets_default_sigpipe);
	tcase_add_test(tc, test_no_channel_does_nothing);
	tcase_add_test(tc, test_url_posts_json);
	tcase_add_test(tc, test_url_unknown_trust_is_null);
	tcase_add_test(tc, test_url_500_is_a_warning);
	tcase_add_test(tc, test_url_refused_is_a_warning);
	tcase_add_test(tc, test_url_silent_receiver_times_out);
	tcase_add_test(tc, test_both_channels_and_one_fails);
	tcase_add_test(tc, test_sync_result_picks_the_event);
	tcase_add_test(tc, test_trust_expiring);
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
