/*
 * secret: sealing round trip, tamper and wrong-key detection, the key file
 * formats, the created key file (0600, warning), refused key files, locked
 * memory helpers, and core dumps switched off.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "icpd/buf.h"
#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/secret.h"
#include "icpd/version.h"

static char tmpdir[64];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-secret-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *path_of(const char *name)
{
	char *p = malloc(256);

	snprintf(p, 256, "%s/%s", tmpdir, name);
	return p;
}

static char *write_bytes(const char *name, const void *data, size_t len, mode_t mode)
{
	char *p = path_of(name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	ck_assert_int_eq(chmod(p, mode), 0);
	return p;
}

static const uint8_t key_raw[32] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x0a };
static const char key_hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e0a";
static const char key_b64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHgo=";

static void load_ok(const char *name, const void *data, size_t len)
{
	struct secret_key key = { NULL };
	char *p = write_bytes(name, data, len, 0600);

	ck_assert_msg(secret_key_load(&key, p, 0) == 0, "%s: %s", name, error_message());
	ck_assert_ptr_nonnull(key.bytes);
	ck_assert_msg(memcmp(key.bytes, key_raw, 32) == 0, "%s: wrong key bytes", name);
	secret_key_release(&key);
	ck_assert_ptr_null(key.bytes);
	free(p);
}

static void load_bad(const char *name, const void *data, size_t len, mode_t mode, int code)
{
	struct secret_key key = { NULL };
	char *p = write_bytes(name, data, len, mode);

	ck_assert_msg(secret_key_load(&key, p, 1) == code, "%s: accepted or wrong code", name);
	ck_assert_ptr_null(key.bytes);
	free(p);
}

START_TEST(test_key_formats)
{
	char text[128];

	load_ok("raw", key_raw, 32);
	load_ok("hex", key_hex, 64);
	snprintf(text, sizeof(text), "%s\n", key_hex);
	load_ok("hex-nl", text, strlen(text));
	snprintf(text, sizeof(text), "%s\r\n", key_hex);
	load_ok("hex-crlf", text, strlen(text));
	load_ok("b64", key_b64, strlen(key_b64));
	snprintf(text, sizeof(text), "%s\n", key_b64);
	load_ok("b64-nl", text, strlen(text));
	load_ok("b64-nopad", key_b64, strlen(key_b64) - 1);

	load_bad("short", key_raw, 31, 0600, ICPD_EUSAGE);
	load_bad("long", "0123456789012345678901234567890123", 33, 0600, ICPD_EUSAGE);
	load_bad("hex63", key_hex, 63, 0600, ICPD_EUSAGE);
	memcpy(text, key_hex, 64);
	text[10] = 'g';
	load_bad("hexbad", text, 64, 0600, ICPD_EUSAGE);
	/* base64 of 31 bytes */
	load_bad("b64short", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", 44, 0600,
		ICPD_EUSAGE);
	load_bad("b64junk", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd*go=", 44, 0600,
		ICPD_EUSAGE);
	load_bad("empty", "", 0, 0600, ICPD_EUSAGE);
	memset(text, 'x', 127);
	load_bad("huge", text, 127, 0600, ICPD_EUSAGE);
	/* writable by group or others: refused even with a valid key */
	load_bad("gw", key_hex, 64, 0620, ICPD_ESTORAGE);
	load_bad("ow", key_hex, 64, 0602, ICPD_ESTORAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "writable"));
	/* readable by others is fine (a Kubernetes Secret is mounted 0644) */
	{
		struct secret_key key = { NULL };
		char *p = write_bytes("k8s", key_hex, 64, 0644);

		ck_assert_int_eq(secret_key_load(&key, p, 0), 0);
		secret_key_release(&key);
		free(p);
	}
}
END_TEST

START_TEST(test_missing_key)
{
	struct secret_key key = { NULL };
	char *p = path_of("nope");

	ck_assert_int_eq(secret_key_load(&key, p, 0), ICPD_ESTORAGE);
	ck_assert_ptr_null(key.bytes);
	ck_assert_ptr_nonnull(strstr(error_message(), "cannot open key file"));
	free(p);
	/* a directory is not a key file */
	ck_assert_int_eq(secret_key_load(&key, tmpdir, 1), ICPD_ESTORAGE);
}
END_TEST

START_TEST(test_created_key_file)
{
	struct secret_key a = { NULL }, b = { NULL };
	char *p = path_of(".icpd-key");
	char logpath[300];
	char text[4096] = "";
	struct stat st;
	FILE *logf;
	size_t n;

	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	logf = fopen(logpath, "w+");
	ck_assert_ptr_nonnull(logf);
	log_setup(LOG_INFO, LOG_FORMAT_TEXT, logf);
	umask(022);
	ck_assert_int_eq(secret_key_load(&a, p, 1), 0);
	log_setup(LOG_INFO, LOG_FORMAT_TEXT, NULL);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(st.st_size, 65); /* hex and a newline */
	fflush(logf);
	rewind(logf);
	n = fread(text, 1, sizeof(text) - 1, logf);
	text[n] = '\0';
	fclose(logf);
	ck_assert_ptr_nonnull(strstr(text, "anyone who can read that directory"));
	ck_assert_ptr_nonnull(strstr(text, p));

	/* loading again gives the same key and creates nothing */
	ck_assert_int_eq(secret_key_load(&b, p, 1), 0);
	ck_assert(memcmp(a.bytes, b.bytes, 32) == 0);
	secret_key_release(&a);
	secret_key_release(&b);
	free(p);
}
END_TEST

START_TEST(test_concurrent_create)
{
	enum { N = 6 };
	char *p = path_of("shared-key");
	uint8_t keys[N][32];
	int fds[N][2];
	pid_t pids[N];
	struct dirent *e;
	DIR *d;
	int entries = 0;

	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(pipe(fds[i]), 0);
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			struct secret_key key = { NULL };

			close(fds[i][0]);
			log_setup(LOG_ERROR, LOG_FORMAT_TEXT, NULL);
			if (secret_key_load(&key, p, 1) != 0 ||
				write(fds[i][1], key.bytes, 32) != 32) {
				_exit(1);
			}
			_exit(0);
		}
		close(fds[i][1]);
	}
	for (int i = 0; i < N; i++) {
		int status = -1;

		ck_assert_int_eq(read(fds[i][0], keys[i], 32), 32);
		close(fds[i][0]);
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		ck_assert_msg(memcmp(keys[i], keys[0], 32) == 0, "process %d got another key", i);
	}
	/* and no temp file is left behind */
	d = opendir(tmpdir);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] != '.') {
			ck_assert_str_eq(e->d_name, "shared-key");
			entries++;
		}
	}
	closedir(d);
	ck_assert_int_eq(entries, 1);
	free(p);
}
END_TEST

START_TEST(test_seal_round_trip_and_tamper)
{
	struct secret_key key = { NULL }, other = { NULL };
	char *p = write_bytes("k", key_raw, 32, 0600), *q;
	static const char msg[] = "{\"session_token\":\"very-secret-token\"}";
	struct buf sealed = BUF_INIT, sealed2 = BUF_INIT, plain = BUF_INIT;
	uint8_t other_raw[32];

	ck_assert_int_eq(secret_key_load(&key, p, 0), 0);
	ck_assert_int_eq(secret_seal(&key, msg, strlen(msg), &sealed), 0);
	ck_assert_uint_eq(sealed.len, 5 + 24 + 16 + strlen(msg));
	ck_assert(memcmp(sealed.data, "ICPD1", 5) == 0);
	ck_assert_ptr_null(memmem(sealed.data, sealed.len, "very-secret", 11));
	ck_assert_int_eq(secret_open(&key, sealed.data, sealed.len, &plain), 0);
	ck_assert_uint_eq(plain.len, strlen(msg));
	ck_assert_str_eq(plain.data, msg);
	secret_buf_release(&plain);

	/* a fresh nonce every time */
	ck_assert_int_eq(secret_seal(&key, msg, strlen(msg), &sealed2), 0);
	ck_assert(memcmp(sealed.data + 5, sealed2.data + 5, 24) != 0);
	buf_release(&sealed2);

	/* flip one bit anywhere: the magic, the nonce, the MAC, the text */
	for (size_t i = 0; i < sealed.len; i++) {
		sealed.data[i] ^= 0x01;
		ck_assert_msg(secret_open(&key, sealed.data, sealed.len, &plain) == ICPD_EPROTO,
			"tampered byte %zu accepted", i);
		ck_assert_uint_eq(plain.len, 0);
		sealed.data[i] ^= 0x01;
	}
	/* truncated */
	for (size_t n = 0; n < sealed.len; n += 7) {
		ck_assert_int_eq(secret_open(&key, sealed.data, n, &plain), ICPD_EPROTO);
	}
	/* wrong key */
	memcpy(other_raw, key_raw, 32);
	other_raw[31] ^= 0x80;
	q = write_bytes("k2", other_raw, 32, 0600);
	ck_assert_int_eq(secret_key_load(&other, q, 0), 0);
	ck_assert_int_eq(secret_open(&other, sealed.data, sealed.len, &plain), ICPD_EPROTO);
	ck_assert_ptr_nonnull(strstr(error_message(), "wrong key"));
	/* still fine with the right one */
	ck_assert_int_eq(secret_open(&key, sealed.data, sealed.len, &plain), 0);
	secret_buf_release(&plain);
	/* empty plaintext */
	buf_reset(&sealed);
	ck_assert_int_eq(secret_seal(&key, "", 0, &sealed), 0);
	ck_assert_int_eq(secret_open(&key, sealed.data, sealed.len, &plain), 0);
	ck_assert_uint_eq(plain.len, 0);
	secret_buf_release(&plain);

	buf_release(&sealed);
	secret_key_release(&key);
	secret_key_release(&other);
	free(p);
	free(q);
}
END_TEST

START_TEST(test_secret_memory)
{
	char *s = secret_strdup("hunter2"), *t = secret_strndup("abcdef", 3), *z = secret_alloc(16);
	uint8_t r1[32], r2[32];

	ck_assert_str_eq(s, "hunter2");
	ck_assert_str_eq(t, "abc");
	for (int i = 0; i < 16; i++) {
		ck_assert_int_eq(z[i], 0);
	}
	ck_assert_ptr_null(secret_strdup(NULL));
	secret_free(s);
	secret_free(t);
	secret_free(z);
	secret_free(NULL);
	secret_random(r1, sizeof(r1));
	secret_random(r2, sizeof(r2));
	ck_assert(memcmp(r1, r2, 32) != 0);
	/* many allocations work even beyond RLIMIT_MEMLOCK (mlock failure is not fatal) */
	{
		char *many[300];

		for (int i = 0; i < 300; i++) {
			many[i] = secret_strdup("x");
		}
		for (int i = 0; i < 300; i++) {
			ck_assert_str_eq(many[i], "x");
			secret_free(many[i]);
		}
	}
}
END_TEST

START_TEST(test_init_no_core_dumps)
{
	struct rlimit rl;

	ck_assert_int_eq(secret_init(), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_CORE, &rl), 0);
	ck_assert_uint_eq(rl.rlim_cur, 0);
	ck_assert_uint_eq(rl.rlim_max, 0);
	ck_assert_int_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	ck_assert_ptr_nonnull(strstr(secret_describe(), "libsodium"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("secret");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_key_formats);
	tcase_add_test(tc, test_missing_key);
	tcase_add_test(tc, test_created_key_file);
	tcase_add_test(tc, test_concurrent_create);
	tcase_add_test(tc, test_seal_round_trip_and_tamper);
	tcase_add_test(tc, test_secret_memory);
	tcase_add_test(tc, test_init_no_core_dumps);
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
