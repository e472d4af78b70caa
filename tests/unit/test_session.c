/*
 * session: the sealed per-account file (0600, atomic, no token in clear),
 * the key file, the lock between two processes, cookie expiries, and the
 * import of icloudpd's LWP cookie jar and .session JSON, hostile jars
 * included.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "icpd/buf.h"
#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/secret.h"
#include "icpd/session.h"

static char tmpdir[64];
static char dir[128];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-session-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dir, sizeof(dir), "%s/cfg/icpd", tmpdir);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = malloc(1 << 20);

	ck_assert_ptr_nonnull(f);
	*len = fread(data, 1, (1 << 20) - 1, f);
	data[*len] = '\0';
	fclose(f);
	return data;
}

/* The entries of dir, sorted, joined by spaces. */
static void list_dir(const char *d, char *out, size_t cap)
{
	struct dirent **names;
	int n = scandir(d, &names, NULL, alphasort);

	ck_assert_int_ge(n, 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
			strncat(out, names[i]->d_name, cap - strlen(out) - 2);
			strncat(out, " ", cap - strlen(out) - 1);
		}
		free(names[i]);
	}
	free(names);
}

/* Values that must never be found unsealed on disk. */
static const char *const secrets[] = { "SESSION-TOKEN-0123456789abcdef", "TRUST-TOKEN-fedcba9876",
	"SCNT-VALUE-55555", "SESSION-ID-77777", "COOKIE-VALUE-WEBAUTH-USER-1111",
	"COOKIE-VALUE-HSA-TRUST-2222" };

#define COOKIES                                                                                    \
	"#HttpOnly_.icloud.com\tTRUE\t/\tTRUE\t1700000000\tX-APPLE-WEBAUTH-USER\t"              \
	"\"v=1:s=0:d=COOKIE-VALUE-WEBAUTH-USER-1111\"\n"                                        \
	".icloud.com\tTRUE\t/\tTRUE\t1690000000\tX-APPLE-DS-WEB-SESSION-TOKEN\tdsweb-abc\n"     \
	"#HttpOnly_.icloud.com\tTRUE\t/\tTRUE\t1702592000\tX-APPLE-WEBAUTH-HSA-TRUST\t"         \
	"\"COOKIE-VALUE-HSA-TRUST-2222\"\n"                                                     \
	".icloud.com\tTRUE\t/\tTRUE\t0\tX-APPLE-WEBAUTH-LOGIN\tlogin-xyz\n"                     \
	".apple.com\tTRUE\t/\tTRUE\t1705000000\tX_APPLE_WEB_KB-ABCDEF\tkb-value\n"

START_TEST(test_file_name)
{
	char *n = session_file_name("jdoe@gmail.com");

	ck_assert_str_eq(n, "jdoegmailcom");
	free(n);
	n = session_file_name("J.Doe+tag-x@Example.CO.uk");
	ck_assert_str_eq(n, "jdoetagxexamplecouk");
	free(n);
	n = session_file_name("under_score@x.y");
	ck_assert_str_eq(n, "under_scorexy");
	free(n);
}
END_TEST

START_TEST(test_new_session_and_round_trip)
{
	struct session s, t;
	char path[300], listing[1024], key[300];
	struct stat st;
	size_t len;
	char *data;

	ck_assert_int_eq(session_open(&s, dir, "JDoe@Gmail.com", NULL, 0), 0);
	/* directory made 0700, key file made 0600 beside the session */
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	snprintf(key, sizeof(key), "%s/.icpd-key", dir);
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_str_eq(s.account, "jdoe@gmail.com");
	ck_assert_ptr_null(s.session_token);
	ck_assert_ptr_null(s.cookies);
	/* client id: auth- + lowercase UUID v4 */
	ck_assert_ptr_nonnull(s.client_id);
	ck_assert_uint_eq(strlen(s.client_id), 5 + 36);
	ck_assert(strncmp(s.client_id, "auth-", 5) == 0);
	ck_assert_int_eq(s.client_id[5 + 14], '4');
	ck_assert_ptr_nonnull(strchr("89ab", s.client_id[5 + 19]));
	for (const char *p = s.client_id + 5; *p; p++) {
		ck_assert_msg(strchr("0123456789abcdef-", *p), "client id '%s'", s.client_id);
	}

	session_set(&s.session_token, secrets[0]);
	session_set(&s.trust_token, secrets[1]);
	session_set(&s.scnt, secrets[2]);
	session_set(&s.session_id, secrets[3]);
	session_set(&s.account_country, "USA");
	session_set(&s.dsid, "1234567890");
	session_set(&s.ckdatabasews_url, "https://p42-ckdatabasews.icloud.com:443");
	session_set(&s.cookies, COOKIES);
	s.hsa_trusted = true;
	session_update_expiry(&s);
	ck_assert_int_eq(s.trust_expires, 1702592000);
	ck_assert_int_eq(s.session_expires, 1690000000);
	ck_assert_int_eq(session_save(&s), 0);

	snprintf(path, sizeof(path), "%s/jdoegmailcom.icpd-session", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	list_dir(dir, listing, sizeof(listing));
	ck_assert_str_eq(listing, ".icpd-key jdoegmailcom.icpd-lock jdoegmailcom.icpd-session ");
	data = read_all(path, &len);
	ck_assert(memcmp(data, "ICPD1", 5) == 0);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		ck_assert_msg(memmem(data, len, secrets[i], strlen(secrets[i])) == NULL,
			"'%s' in clear on disk", secrets[i]);
	}
	ck_assert_ptr_null(memmem(data, len, "dsweb-abc", 9));
	ck_assert_ptr_null(memmem(data, len, s.client_id, strlen(s.client_id)));
	free(data);

	/* save again (replaces the file, still no temp file) */
	ck_assert_int_eq(session_save(&s), 0);
	list_dir(dir, listing, sizeof(listing));
	ck_assert_str_eq(listing, ".icpd-key jdoegmailcom.icpd-lock jdoegmailcom.icpd-session ");
	{
		char *cid = strdup(s.client_id);

		session_close(&s);
		session_close(&s); /* twice is fine */
		ck_assert_int_eq(session_open(&t, dir, "jdoe@gmail.com", NULL, 0), 0);
		ck_assert_str_eq(t.client_id, cid);
		free(cid);
	}
	ck_assert_str_eq(t.session_token, secrets[0]);
	ck_assert_str_eq(t.trust_token, secrets[1]);
	ck_assert_str_eq(t.scnt, secrets[2]);
	ck_assert_str_eq(t.session_id, secrets[3]);
	ck_assert_str_eq(t.account_country, "USA");
	ck_assert_str_eq(t.dsid, "1234567890");
	ck_assert_str_eq(t.ckdatabasews_url, "https://p42-ckdatabasews.icloud.com:443");
	ck_assert_str_eq(t.cookies, COOKIES);
	ck_assert(t.hsa_trusted);
	ck_assert_int_eq(t.trust_expires, 1702592000);
	ck_assert_int_eq(t.session_expires, 1690000000);

	/* forget the login: only client id, trust token and trust cookies stay */
	session_forget_login(&t);
	ck_assert_ptr_null(t.session_token);
	ck_assert_ptr_null(t.scnt);
	ck_assert_ptr_null(t.session_id);
	ck_assert_ptr_null(t.dsid);
	ck_assert_ptr_null(t.ckdatabasews_url);
	ck_assert(!t.hsa_trusted);
	ck_assert_str_eq(t.trust_token, secrets[1]);
	ck_assert_ptr_nonnull(t.client_id);
	ck_assert_ptr_nonnull(strstr(t.cookies, "X-APPLE-WEBAUTH-HSA-TRUST"));
	ck_assert_ptr_nonnull(strstr(t.cookies, "X_APPLE_WEB_KB-ABCDEF"));
	ck_assert_ptr_null(strstr(t.cookies, "X-APPLE-WEBAUTH-USER"));
	ck_assert_ptr_null(strstr(t.cookies, "LOGIN"));
	ck_assert_int_eq(t.trust_expires, 1702592000);
	ck_assert_int_eq(t.session_expires, 0);
	session_close(&t);
}
END_TEST

START_TEST(test_expiry_rules)
{
	struct session s;

	ck_assert_int_eq(session_open(&s, dir, "a@b.c", NULL, 0), 0);
	/* no trust cookie: trust follows the session cookies */
	session_set(&s.cookies,
		".icloud.com\tTRUE\t/\tTRUE\t1800000000\tX-APPLE-WEBAUTH-USER\tu\n"
		"# a comment\n"
		"garbage line without tabs\n"
		".icloud.com\tTRUE\t/\tTRUE\tnotanumber\tX-APPLE-WEBAUTH-HSA-TRUST\tz\n");
	session_update_expiry(&s);
	ck_assert_int_eq(s.session_expires, 1800000000);
	ck_assert_int_eq(s.trust_expires, 1800000000);
	/* two trust cookies (two domains): the later one counts */
	session_set(&s.cookies,
		"#HttpOnly_.icloud.com\tTRUE\t/\tTRUE\t1750000000\tX-APPLE-WEBAUTH-HSA-TRUST\tz\n"
		"#HttpOnly_.apple.com\tTRUE\t/\tTRUE\t1760000000\tX-APPLE-WEBAUTH-HSA-TRUST\tz\n"
		".icloud.com\tTRUE\t/\tTRUE\t1740000000\tX-APPLE-DS-WEB-SESSION-TOKEN\tw");
	session_update_expiry(&s);
	ck_assert_int_eq(s.trust_expires, 1760000000);
	ck_assert_int_eq(s.session_expires, 1740000000);
	/* a name that only starts like the wanted one does not count */
	session_set(&s.cookies,
		".icloud.com\tTRUE\t/\tTRUE\t1750000000\tX-APPLE-WEBAUTH-HSA-TRUSTX\tz\n");
	session_update_expiry(&s);
	ck_assert_int_eq(s.trust_expires, 0);
	session_set(&s.cookies, NULL);
	session_update_expiry(&s);
	ck_assert_int_eq(s.trust_expires, 0);
	ck_assert_int_eq(s.session_expires, 0);
	session_close(&s);
}
END_TEST

START_TEST(test_explicit_key_file)
{
	struct session s;
	char k1[300], k2[300], local[300];
	struct stat st;

	snprintf(k1, sizeof(k1), "%s/k1", tmpdir);
	snprintf(k2, sizeof(k2), "%s/k2", tmpdir);
	write_text(k1, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
	write_text(k2, "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
	chmod(k1, 0600);
	chmod(k2, 0600);
	ck_assert_int_eq(session_open(&s, dir, "a@b.c", k1, 0), 0);
	session_set(&s.session_token, secrets[0]);
	ck_assert_int_eq(session_save(&s), 0);
	session_close(&s);
	/* no key file was made beside the session */
	snprintf(local, sizeof(local), "%s/.icpd-key", dir);
	ck_assert_int_ne(stat(local, &st), 0);
	/* the wrong key cannot open it, and says what to do */
	error_clear();
	ck_assert_int_eq(session_open(&s, dir, "a@b.c", k2, 0), ICPD_EPROTO);
	ck_assert_ptr_nonnull(strstr(error_message(), "wrong key"));
	ck_assert_ptr_nonnull(strstr(error_hint_text(), "icpd auth"));
	ck_assert_int_eq(s.lock_fd, -1);
	session_close(&s);
	/* a missing explicit key file is an error, not a new key */
	snprintf(local, sizeof(local), "%s/missing", tmpdir);
	ck_assert_int_eq(session_open(&s, dir, "a@b.c", local, 0), ICPD_ESTORAGE);
	ck_assert_int_ne(stat(local, &st), 0);
	/* the right key still works */
	ck_assert_int_eq(session_open(&s, dir, "a@b.c", k1, 0), 0);
	ck_assert_str_eq(s.session_token, secrets[0]);
	session_close(&s);
}
END_TEST

START_TEST(test_damaged_session_file)
{
	struct session s;
	char path[300];
	size_t len;
	char *data;
	FILE *f;

	ck_assert_int_eq(session_open(&s, dir, "a@b.c", NULL, 0), 0);
	session_set(&s.session_token, secrets[0]);
	ck_assert_int_eq(session_save(&s), 0);
	session_close(&s);
	snprintf(path, sizeof(path), "%s/abc.icpd-session", dir);
	data = read_all(path, &len);
	/* flipped byte */
	data[len / 2] ^= 0x20;
	f = fopen(path, "wb");
	fwrite(data, 1, len, f);
	fclose(f);
	ck_assert_int_eq(session_open(&s, dir, "a@b.c", NULL, 0), ICPD_EPROTO);
	/* truncated */
	f = fopen(path, "wb");
	fwrite(data, 1, 20, f);
	fclose(f);
	ck_assert_int_eq(session_open(&s, dir, "a@b.c", NULL, 0), ICPD_EPROTO);
	/* plain JSON (someone's hand edit) is not accepted */
	write_text(path, "{\"version\":1,\"account\":\"a@b.c\"}");
	ck_assert_int_eq(session_open(&s, dir, "a@b.c", NULL, 0), ICPD_EPROTO);
	ck_assert_ptr_nonnull(strstr(error_message(), "unknown format"));
	free(data);
}
END_TEST

START_TEST(test_failed_save_keeps_old_file)
{
	struct session s, t;
	struct rlimit old, small = { 100, 100 };
	char listing[1024];
	void (*prev)(int);

	ck_assert_int_eq(session_open(&s, dir, "a@b.c", NULL, 0), 0);
	session_set(&s.session_token, "first");
	ck_assert_int_eq(session_save(&s), 0);
	/* a big cookie jar cannot be written within RLIMIT_FSIZE: the write fails */
	{
		char *big = malloc(8192);

		memset(big, 'c', 8191);
		big[8191] = '\0';
		session_set(&s.cookies, big);
		free(big);
	}
	session_set(&s.session_token, "second");
	prev = signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	ck_assert_int_eq(session_save(&s), ICPD_ESTORAGE);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);
	list_dir(dir, listing, sizeof(listing));
	ck_assert_str_eq(listing, ".icpd-key abc.icpd-lock abc.icpd-session ");
	session_close(&s);
	ck_assert_int_eq(session_open(&t, dir, "a@b.c", NULL, 0), 0);
	ck_assert_str_eq(t.session_token, "first");
	session_close(&t);
}
END_TEST

START_TEST(test_lock_between_processes)
{
	struct session s;
	pid_t child;
	int status = -1;
	int pipefd[2];
	char msg[512] = "";
	char want[128];
	ssize_t n;
	time_t t0;

	ck_assert_int_eq(session_open(&s, dir, "jdoe@gmail.com", NULL, 0), 0);
	/* another process cannot take it and is told who has it */
	ck_assert_int_eq(pipe(pipefd), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct session c;
		int rc;

		close(s.lock_fd);
		rc = session_open(&c, dir, "jdoe@gmail.com", NULL, 1);

		close(pipefd[0]);
		if (write(pipefd[1], error_message(), strlen(error_message())) < 0) {
			_exit(3);
		}
		_exit(rc == ICPD_ESTORAGE ? 0 : 1);
	}
	close(pipefd[1]);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	n = read(pipefd[0], msg, sizeof(msg) - 1);
	close(pipefd[0]);
	msg[n > 0 ? n : 0] = '\0';
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	snprintf(want, sizeof(want), "another icpd is using the session of 'jdoe@gmail.com' (pid %ld)",
		(long)getpid());
	ck_assert_str_eq(msg, want);

	/* a waiting process gets it once the holder lets go */
	t0 = time(NULL);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct session c;
		int rc;

		/* a forked child shares the parent's lock (same open file);
		 * drop that copy to act like an unrelated process */
		close(s.lock_fd);
		rc = session_open(&c, dir, "jdoe@gmail.com", NULL, 10);

		session_close(&c);
		_exit(rc == 0 ? 0 : 1);
	}
	sleep(1);
	session_close(&s);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_lt(time(NULL) - t0, 8);
	/* and another account is never blocked */
	ck_assert_int_eq(session_open(&s, dir, "jdoe@gmail.com", NULL, 0), 0);
	{
		struct session o;

		ck_assert_int_eq(session_open(&o, dir, "other@gmail.com", NULL, 0), 0);
		session_close(&o);
	}
	session_close(&s);
}
END_TEST

/* modelled on icloudpd's tests/cookie/jdoegmailcom; values invented */
static const char lwp_jar[] =
	"#LWP-Cookies-2.0\n"
	"Set-Cookie3: X-APPLE-UNIQUE-CLIENT-ID=\"\\\"Aq==\\\"\"; path=\"/\"; domain=\".icloud.com\"; "
	"path_spec; domain_dot; secure; discard; version=0\n"
	"Set-Cookie3: X-APPLE-WEBAUTH-LOGIN=\"\\\"v=1:t=Aq==BST_LOGIN-SECRET-9999~~\\\"\"; path=\"/\"; "
	"domain=\".icloud.com\"; path_spec; domain_dot; secure; discard; HttpOnly=None; version=0\n"
	"Set-Cookie3: X-APPLE-WEBAUTH-HSA-TRUST=\"\\\"COOKIE-VALUE-HSA-TRUST-2222\\\"\"; path=\"/\"; "
	"domain=\".icloud.com\"; path_spec; domain_dot; secure; expires=\"2024-01-12 05:06:31Z\"; "
	"HttpOnly=None; version=0\n"
	"Set-Cookie3: X-APPLE-WEBAUTH-USER=\"\\\"v=1:s=0:d=COOKIE-VALUE-WEBAUTH-USER-1111\\\"\"; "
	"path=\"/\"; domain=\".icloud.com\"; path_spec; domain_dot; secure; "
	"expires=\"2023-12-20 10:00:00Z\"; HttpOnly=None; version=0\n"
	"Set-Cookie3: aasp=plaintoken_123; path=\"/\"; domain=idmsa.apple.com; path_spec; "
	"expires=\"2025-06-01 00:00:00Z\"; version=0\r\n"
	"\n";

static const char lwp_expected[] =
	".icloud.com\tTRUE\t/\tTRUE\t0\tX-APPLE-UNIQUE-CLIENT-ID\t\"Aq==\"\n"
	"#HttpOnly_.icloud.com\tTRUE\t/\tTRUE\t0\tX-APPLE-WEBAUTH-LOGIN\t"
	"\"v=1:t=Aq==BST_LOGIN-SECRET-9999~~\"\n"
	"#HttpOnly_.icloud.com\tTRUE\t/\tTRUE\t1705036-PLACEHOLDER";

START_TEST(test_parse_lwp_good)
{
	struct buf out = BUF_INIT;
	char expected[2048];

	/* 2024-01-12 05:06:31Z = 1705035991, 2023-12-20 10:00:00Z = 1703066400,
	 * 2025-06-01 00:00:00Z = 1748736000 */
	snprintf(expected, sizeof(expected), "%.*s%s",
		(int)(strstr(lwp_expected, "1705036-PLACEHOLDER") - lwp_expected), lwp_expected,
		"1705035991\tX-APPLE-WEBAUTH-HSA-TRUST\t\"COOKIE-VALUE-HSA-TRUST-2222\"\n"
		"#HttpOnly_.icloud.com\tTRUE\t/\tTRUE\t1703066400\tX-APPLE-WEBAUTH-USER\t"
		"\"v=1:s=0:d=COOKIE-VALUE-WEBAUTH-USER-1111\"\n"
		"idmsa.apple.com\tFALSE\t/\tFALSE\t1748736000\taasp\tplaintoken_123\n");
	ck_assert_int_eq(session_parse_lwp(lwp_jar, strlen(lwp_jar), &out), 0);
	ck_assert_str_eq(out.data, expected);
	secret_buf_release(&out);

	/* just the header: no cookies, no error */
	ck_assert_int_eq(session_parse_lwp("#LWP-Cookies-2.0\n", 17, &out), 0);
	ck_assert_uint_eq(out.len, 0);
	/* backslash escapes of backslash and quote, spaces inside quotes, a
	 * cookie without a value */
	ck_assert_int_eq(
		session_parse_lwp("#LWP-Cookies-2.0\nSet-Cookie3: n=\"a\\\\b \\\"c\\\"\"; domain=x.com\n"
				  "Set-Cookie3: flag; domain=\".x.com\"; version=0",
			strlen("#LWP-Cookies-2.0\nSet-Cookie3: n=\"a\\\\b \\\"c\\\"\"; domain=x.com\n"
			       "Set-Cookie3: flag; domain=\".x.com\"; version=0"),
			&out),
		0);
	ck_assert_str_eq(out.data, "x.com\tFALSE\t/\tFALSE\t0\tn\ta\\b \"c\"\n"
				   ".x.com\tTRUE\t/\tFALSE\t0\tflag\t\n");
	secret_buf_release(&out);
}
END_TEST

START_TEST(test_parse_lwp_hostile)
{
	static const char *const bad[] = {
		"",
		"Set-Cookie3: a=b; domain=x.com\n",                         /* no header */
		"#LWP-Cookies-1.0\n",                                        /* other version */
		"#LWP-Cookies-2.0\nSet-Cookie3: a=\"unterminated; domain=x.com\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=\"ends in backslash\\",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b\n",                     /* no domain */
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b; domain=\"\"\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b; domain=x.com; expires=\"tomorrow\"\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b; domain=x.com; expires=\"2024-13-01 00:00:00Z\"\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b; domain=x.com; expires=\"2024-01-01 00:00:00\"\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b; domain=x.com; expires=\"+024-01-01 00:00:00Z\"\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=\"tab\there\"; domain=x.com\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=\"new\\\nline\"; domain=x.com\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b; domain=\"x.com\tTRUE\"\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b; domain=\"#HttpOnly_x\"\n",
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b, c=d; domain=x.com\n",  /* two cookies */
		"#LWP-Cookies-2.0\nSet-Cookie3: =b; domain=x.com\n",        /* no name */
		"#LWP-Cookies-2.0\nSet-Cookie3: \n",                        /* nothing */
		"#LWP-Cookies-2.0\nSet-Cookie3: a=b \"x\"; domain=x.com\n", /* junk after value */
		"#LWP-Cookies-2.0\nSet-Cookie: a=b; domain=x.com\n",       /* other header */
		"#LWP-Cookies-2.0\nhello\n",
	};
	struct buf out = BUF_INIT;
	static const char with_nul[] = "#LWP-Cookies-2.0\nSet-Cookie3: a=b\0c; domain=x.com\n";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error_clear();
		ck_assert_msg(session_parse_lwp(bad[i], strlen(bad[i]), &out) == ICPD_EPROTO,
			"accepted bad jar #%zu", i);
		ck_assert_uint_eq(out.len, 0);
		ck_assert_msg(*error_message(), "no message for #%zu", i);
	}
	ck_assert_int_eq(session_parse_lwp(with_nul, sizeof(with_nul) - 1, &out), ICPD_EPROTO);
	/* a bad line after good ones leaves the output as it was, and the
	 * message names the line, not the values */
	{
		static const char jar[] = "#LWP-Cookies-2.0\nSet-Cookie3: a=SECRETVALUE; domain=x.com\n"
					  "Set-Cookie3: b=\"SECRET2; domain=x.com\n";

		ck_assert_int_eq(buf_adds(&out, "keep\n"), 0);
		ck_assert_int_eq(session_parse_lwp(jar, strlen(jar), &out), ICPD_EPROTO);
		ck_assert_str_eq(out.data, "keep\n");
		ck_assert_ptr_nonnull(strstr(error_message(), "line 3"));
		ck_assert_ptr_null(strstr(error_message(), "SECRET"));
	}
	secret_buf_release(&out);
	/* pseudo-random mutations of a good jar never crash */
	{
		char mutated[sizeof(lwp_jar)];
		unsigned int seed = 12345;

		for (int round = 0; round < 3000; round++) {
			memcpy(mutated, lwp_jar, sizeof(lwp_jar));
			for (int k = 0; k < 1 + round % 4; k++) {
				seed = seed * 1103515245u + 12345u;
				mutated[(seed >> 8) % (sizeof(lwp_jar) - 1)] = (char)(seed >> 20);
			}
			if (session_parse_lwp(mutated, sizeof(lwp_jar) - 1, &out) == 0) {
				ck_assert(out.len == 0 || out.data[out.len - 1] == '\n');
			}
			buf_reset(&out);
		}
		secret_buf_release(&out);
	}
}
END_TEST

START_TEST(test_import_icloudpd)
{
	struct session s;
	char path[300], listing[1024], pydir[200];
	size_t len;
	char *data;

	snprintf(pydir, sizeof(pydir), "%s/pyicloud", tmpdir);
	ck_assert_int_eq(mkdir(pydir, 0700), 0);
	ck_assert_int_eq(session_open(&s, dir, "jdoe@gmail.com", NULL, 0), 0);
	/* nothing there yet */
	ck_assert_int_eq(session_import_icloudpd(&s, pydir), ICPD_ENOTFOUND);

	snprintf(path, sizeof(path), "%s/jdoegmailcom", pydir);
	write_text(path, lwp_jar);
	snprintf(path, sizeof(path), "%s/jdoegmailcom.session", pydir);
	write_text(path, "{\"client_id\": \"auth-11111111-2222-3333-4444-555555555555\", "
			 "\"session_token\": \"SESSION-TOKEN-0123456789abcdef\", "
			 "\"trust_token\": \"TRUST-TOKEN-fedcba9876\", \"scnt\": \"SCNT-VALUE-55555\", "
			 "\"session_id\": \"SESSION-ID-77777\", \"account_country\": \"USA\", "
			 "\"trust_eligible\": \"true\", \"apple_rscd\": \"409\", \"apple_ercd\": null}");
	ck_assert_int_eq(session_import_icloudpd(&s, pydir), 0);
	ck_assert_str_eq(s.client_id, "auth-11111111-2222-3333-4444-555555555555");
	ck_assert_str_eq(s.session_token, secrets[0]);
	ck_assert_str_eq(s.trust_token, secrets[1]);
	ck_assert_str_eq(s.scnt, secrets[2]);
	ck_assert_str_eq(s.session_id, secrets[3]);
	ck_assert_str_eq(s.account_country, "USA");
	ck_assert_ptr_nonnull(strstr(s.cookies, "\tX-APPLE-WEBAUTH-HSA-TRUST\t"));
	ck_assert_int_eq(s.trust_expires, 1705035991);
	ck_assert_int_eq(s.session_expires, 1703066400);
	ck_assert_int_eq(session_save(&s), 0);
	session_close(&s);

	/* what was saved is sealed: no value in clear, and it reads back */
	snprintf(path, sizeof(path), "%s/jdoegmailcom.icpd-session", dir);
	data = read_all(path, &len);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		ck_assert_msg(memmem(data, len, secrets[i], strlen(secrets[i])) == NULL,
			"'%s' in clear on disk", secrets[i]);
	}
	ck_assert_ptr_null(memmem(data, len, "LOGIN-SECRET-9999", 17));
	ck_assert_ptr_null(memmem(data, len, "plaintoken_123", 14));
	free(data);
	list_dir(dir, listing, sizeof(listing));
	ck_assert_str_eq(listing, ".icpd-key jdoegmailcom.icpd-lock jdoegmailcom.icpd-session ");
	ck_assert_int_eq(session_open(&s, dir, "jdoe@gmail.com", NULL, 0), 0);
	ck_assert_str_eq(s.session_token, secrets[0]);
	ck_assert_ptr_nonnull(strstr(s.cookies, "aasp\tplaintoken_123"));
	ck_assert_str_eq(s.client_id, "auth-11111111-2222-3333-4444-555555555555");

	/* a hostile .session file is an error and changes nothing */
	snprintf(path, sizeof(path), "%s/jdoegmailcom.session", pydir);
	write_text(path, "{\"scnt\": \"new-scnt\", \"session_token\": 42}");
	ck_assert_int_eq(session_import_icloudpd(&s, pydir), ICPD_EPROTO);
	ck_assert_str_eq(s.session_token, secrets[0]);
	ck_assert_str_eq(s.scnt, secrets[2]);
	write_text(path, "[1, 2");
	ck_assert_int_eq(session_import_icloudpd(&s, pydir), ICPD_EPROTO);
	/* a hostile jar too, and the message does not quote it */
	write_text(path, "{}");
	snprintf(path, sizeof(path), "%s/jdoegmailcom", pydir);
	write_text(path, "#LWP-Cookies-2.0\nSet-Cookie3: a=\"SECRETX; domain=x.com\n");
	ck_assert_int_eq(session_import_icloudpd(&s, pydir), ICPD_EPROTO);
	ck_assert_ptr_nonnull(strstr(error_message(), "jdoegmailcom"));
	ck_assert_ptr_null(strstr(error_message(), "SECRETX"));
	ck_assert_ptr_nonnull(strstr(s.cookies, "aasp\tplaintoken_123"));
	session_close(&s);
}
END_TEST

/* Converted icloudpd cookies go into libcurl's cookie engine and come back
 * out of it intact (libcurl parses every line we write). */
START_TEST(test_cookies_through_libcurl)
{
	static const char jar[] =
		"#LWP-Cookies-2.0\n"
		"Set-Cookie3: X-APPLE-WEBAUTH-HSA-TRUST=\"\\\"trust-cookie\\\"\"; path=\"/\"; "
		"domain=\".icloud.com\"; path_spec; domain_dot; secure; expires=\"2099-01-12 05:06:31Z\"; "
		"HttpOnly=None; version=0\n"
		"Set-Cookie3: X-APPLE-WEBAUTH-USER=\"\\\"v=1:s=0\\\"\"; path=\"/\"; "
		"domain=\".icloud.com\"; path_spec; domain_dot; secure; expires=\"2098-12-20 10:00:00Z\"; "
		"HttpOnly=None; version=0\n"
		"Set-Cookie3: X-APPLE-WEBAUTH-LOGIN=\"\\\"v=1:t=x~~\\\"\"; path=\"/\"; "
		"domain=\".icloud.com\"; path_spec; domain_dot; secure; discard; HttpOnly=None; version=0\n"
		"Set-Cookie3: aasp=tok; path=\"/appleauth\"; domain=idmsa.apple.com; path_spec; "
		"expires=\"2097-06-01 00:00:00Z\"; version=0\n"
		"Set-Cookie3: old=gone; path=\"/\"; domain=\".icloud.com\"; "
		"expires=\"2001-06-01 00:00:00Z\"; version=0\n";
	struct session s;
	struct http_client *http = NULL;
	struct buf lines = BUF_INIT;
	char path[300], pydir[200];

	snprintf(pydir, sizeof(pydir), "%s/py", tmpdir);
	ck_assert_int_eq(mkdir(pydir, 0700), 0);
	snprintf(path, sizeof(path), "%s/jdoegmailcom", pydir);
	write_text(path, jar);
	ck_assert_int_eq(session_open(&s, dir, "jdoe@gmail.com", NULL, 0), 0);
	ck_assert_int_eq(session_import_icloudpd(&s, pydir), 0);
	ck_assert_ptr_null(s.session_token); /* no .session file: cookies only */

	ck_assert_int_eq(http_client_new(&http, NULL), 0);
	ck_assert_int_eq(session_load_cookies(&s, http), 0);
	session_set(&s.cookies, NULL);
	ck_assert_int_eq(session_store_cookies(&s, http), 0);
	ck_assert_ptr_nonnull(s.cookies);
	ck_assert_ptr_nonnull(strstr(s.cookies,
		"#HttpOnly_.icloud.com\tTRUE\t/\tTRUE\t4071877591\tX-APPLE-WEBAUTH-HSA-TRUST\t\"trust-cookie\""));
	ck_assert_ptr_nonnull(strstr(s.cookies, "\tX-APPLE-WEBAUTH-LOGIN\t\"v=1:t=x~~\""));
	ck_assert_ptr_nonnull(strstr(s.cookies, "idmsa.apple.com\tFALSE\t/appleauth\tFALSE\t"));
	ck_assert_ptr_null(strstr(s.cookies, "old\tgone")); /* expired: not handed to libcurl */
	ck_assert_int_eq(s.trust_expires, 4071877591);
	ck_assert_int_eq(s.session_expires, 4069908000);
	http_client_free(http);
	secret_buf_release(&lines);
	session_close(&s);
}
END_TEST

START_TEST(test_bad_account_and_dir)
{
	struct session s;
	char file[300];

	ck_assert_int_eq(session_open(&s, dir, "@.+", NULL, 0), ICPD_EUSAGE);
	ck_assert_int_eq(session_open(&s, "", "a@b.c", NULL, 0), ICPD_EUSAGE);
	/* the cookie directory is a file */
	snprintf(file, sizeof(file), "%s/plainfile", tmpdir);
	write_text(file, "x");
	ck_assert_int_eq(session_open(&s, file, "a@b.c", NULL, 0), ICPD_ESTORAGE);
	session_close(&s);
	/* two accounts sharing a file name do not read each other's session */
	ck_assert_int_eq(session_open(&s, dir, "ab@c.d", NULL, 0), 0);
	session_set(&s.session_token, "mine");
	ck_assert_int_eq(session_save(&s), 0);
	session_close(&s);
	ck_assert_int_eq(session_open(&s, dir, "a.b@c.d", NULL, 0), ICPD_EPROTO);
	ck_assert_ptr_nonnull(strstr(error_message(), "another account"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_file_name);
	tcase_add_test(tc, test_new_session_and_round_trip);
	tcase_add_test(tc, test_expiry_rules);
	tcase_add_test(tc, test_explicit_key_file);
	tcase_add_test(tc, test_damaged_session_file);
	tcase_add_test(tc, test_failed_save_keeps_old_file);
	tcase_add_test(tc, test_lock_between_processes);
	tcase_add_test(tc, test_parse_lwp_good);
	tcase_add_test(tc, test_parse_lwp_hostile);
	tcase_add_test(tc, test_import_icloudpd);
	tcase_add_test(tc, test_cookies_through_libcurl);
	tcase_add_test(tc, test_bad_account_and_dir);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	/* the key-file warnings of these tests are expected; keep them quiet */
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT, NULL);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
