#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icpd/error.h"
#include "icpd/fsutil.h"

static char tmpdir[64];
static char *ptmp;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-fsutil-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	umask(022);
	ck_assert_int_eq(fsutil_tmpdir(tmpdir, &ptmp), 0);
}

static void teardown(void)
{
	char cmd[128];

	free(ptmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *path_in(const char *rel)
{
	char *p = malloc(512);

	snprintf(p, 512, "%s/%s", tmpdir, rel);
	return p;
}

static int count_entries(const char *dir)
{
	char cmd[256];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	f = popen(cmd, "r");
	ck_assert_int_eq(fscanf(f, "%d", &n), 1);
	pclose(f);
	return n;
}

START_TEST(test_tmpdir_hidden)
{
	struct stat st;
	char *expect = path_in(".icpd-tmp");

	ck_assert_str_eq(ptmp, expect);
	ck_assert_int_eq(stat(ptmp, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	free(expect);
	ck_assert_int_eq(fsutil_tmpdir("/nonexistent-icpd-dir", &expect), ICPD_ESTORAGE);
	ck_assert_ptr_null(expect);
}
END_TEST

START_TEST(test_part_commit)
{
	struct fsutil_part p;
	struct stat st;
	char *final = path_in("2024/01/02/IMG_1.JPG");
	char buf[16] = { 0 };
	char sha[65];
	int fd;

	fsutil_part_init(&p);
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "k1", true), 0);
	ck_assert_int_eq(p.size, 0);
	ck_assert_int_eq(fsutil_part_write(&p, "hello ", 6), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "world", 5), 0);
	ck_assert_int_eq(p.size, 11);
	ck_assert_int_eq(fsutil_part_head(&p, buf, 5), 5);
	ck_assert_str_eq(buf, "hello");
	/* a wrong expected size refuses and leaves nothing in view */
	ck_assert_int_eq(fsutil_part_commit(&p, final, 12, 0644, 0755, 1000000000), ICPD_EASSET);
	ck_assert_int_ne(access(final, F_OK), 0);
	ck_assert_int_eq(fsutil_part_commit(&p, final, 11, 0640, 0750, 1000000000), 0);
	ck_assert_int_eq(stat(final, &st), 0);
	ck_assert_int_eq(st.st_size, 11);
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	ck_assert_int_eq(st.st_mtime, 1000000000);
	free(final);
	final = path_in("2024/01");
	ck_assert_int_eq(stat(final, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0750);
	free(final);
	final = path_in("2024/01/02/IMG_1.JPG");
	fsutil_part_abort(&p, true);
	ck_assert_int_eq(count_entries(ptmp), 0);
	ck_assert_int_eq(fsutil_sha256_file(final, sha), 0);
	/* sha256("hello world") */
	ck_assert_str_eq(sha, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
	fd = open("/nonexistent", O_RDONLY);
	ck_assert_int_lt(fd, 0);
	ck_assert_int_eq(fsutil_sha256_file("/nonexistent-icpd", sha), ICPD_ESTORAGE);
	free(final);
}
END_TEST

/* SHA-256 of s, through a file and fsutil_sha256_file (the read-back path) */
static void sha_of(const char *s, char out[65])
{
	char *f = path_in("sha-of");
	int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
	ck_assert_int_eq(fsutil_sha256_file(f, out), 0);
	unlink(f);
	free(f);
}

/* overwrite the part's bytes behind its back: same size, other content */
static void tamper(const struct fsutil_part *p, const char *s)
{
	int fd = open(p->path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, s, strlen(s), 0), (ssize_t)strlen(s));
	close(fd);
}

START_TEST(test_part_streaming_hash)
{
	struct fsutil_part p;
	char sha[65], want[65], other[65];
	char head[64];

	/* the hash kept while writing is used: the file is not read back
	 * (tampering with it in place goes unseen, which proves it) */
	fsutil_part_init(&p);
	p.hash = true;
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h1", true), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "hello ", 6), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "world", 5), 0);
	fsutil_part_abort(&p, false);
	tamper(&p, "HELLO WORLD");
	ck_assert_int_eq(fsutil_part_head(&p, head, 5), 5);
	ck_assert_int_eq(memcmp(head, "hello", 5), 0);
	ck_assert_int_eq(fsutil_part_sha256(&p, false, sha), 0);
	ck_assert_str_eq(sha, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
	fsutil_part_abort(&p, true);

	/* changed (an EXIF rewrite): the file is hashed */
	p.hash = true;
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h2", true), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "hello world", 11), 0);
	tamper(&p, "HELLO WORLD");
	sha_of("HELLO WORLD", want);
	ck_assert_int_eq(fsutil_part_sha256(&p, true, sha), 0);
	ck_assert_str_eq(sha, want);
	fsutil_part_abort(&p, true);

	/* a size that differs from what went through p: the file is hashed */
	p.hash = true;
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h3", true), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "hello world", 11), 0);
	tamper(&p, "HELLO WORLD!");
	sha_of("HELLO WORLD!", want);
	ck_assert_int_eq(fsutil_part_sha256(&p, false, sha), 0);
	ck_assert_str_eq(sha, want);
	fsutil_part_abort(&p, true);

	/* without p.hash nothing is kept */
	p.hash = false;
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h4", true), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "hello world", 11), 0);
	tamper(&p, "HELLO WORLD");
	sha_of("HELLO WORLD", want);
	ck_assert_int_eq(fsutil_part_sha256(&p, false, sha), 0);
	ck_assert_str_eq(sha, want);
	fsutil_part_abort(&p, true);

	/* a retry in this process (close, reopen, append) keeps the hash */
	fsutil_part_init(&p);
	p.hash = true;
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h5", true), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "abc", 3), 0);
	fsutil_part_abort(&p, false);
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h5", true), 0);
	ck_assert_int_eq(p.size, 3);
	ck_assert_int_eq(fsutil_part_write(&p, "def", 3), 0);
	tamper(&p, "ABCDEF");
	sha_of("abcdef", want);
	ck_assert_int_eq(fsutil_part_sha256(&p, false, sha), 0);
	ck_assert_str_eq(sha, want);
	fsutil_part_abort(&p, true);

	/* a part left by an earlier run: its bytes were never seen, so the
	 * file is read (head and hash) */
	p.hash = true;
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h6", true), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "abc", 3), 0);
	fsutil_part_forget(&p);
	ck_assert_ptr_null(p.path);
	p.hash = true;
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h6", true), 0);
	ck_assert_int_eq(p.size, 3);
	ck_assert_int_eq(fsutil_part_write(&p, "def", 3), 0);
	ck_assert_int_eq(fsutil_part_head(&p, head, 6), 6);
	ck_assert_int_eq(memcmp(head, "abcdef", 6), 0);
	tamper(&p, "ABCDEF");
	sha_of("ABCDEF", other);
	ck_assert_int_eq(fsutil_part_sha256(&p, false, sha), 0);
	ck_assert_str_eq(sha, other);
	fsutil_part_abort(&p, true);

	/* truncation (a restart from byte 0) starts the hash again */
	p.hash = true;
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "h7", true), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "junk junk", 9), 0);
	ck_assert_int_eq(fsutil_part_truncate(&p), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "hello world", 11), 0);
	tamper(&p, "HELLO WORLD");
	ck_assert_int_eq(fsutil_part_head(&p, head, 11), 11);
	ck_assert_int_eq(memcmp(head, "hello world", 11), 0);
	ck_assert_int_eq(fsutil_part_sha256(&p, false, sha), 0);
	ck_assert_str_eq(sha, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
	fsutil_part_abort(&p, true);
	ck_assert_int_eq(count_entries(ptmp), 0);
}
END_TEST

START_TEST(test_part_resume_and_fresh)
{
	struct fsutil_part p;

	fsutil_part_init(&p);
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "k2", true), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "abc", 3), 0);
	fsutil_part_abort(&p, false); /* a crash: file stays */
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "k2", true), 0);
	ck_assert_int_eq(p.size, 3);
	ck_assert_int_eq(fsutil_part_write(&p, "def", 3), 0);
	ck_assert_int_eq(p.size, 6);
	ck_assert_int_eq(fsutil_part_truncate(&p), 0);
	ck_assert_int_eq(p.size, 0);
	fsutil_part_abort(&p, false);
	/* no resume: an old file is replaced */
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "k2", false), 0);
	ck_assert_int_eq(p.size, 0);
	fsutil_part_abort(&p, true);
	ck_assert_int_eq(count_entries(ptmp), 0);
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "../evil", false), ICPD_EINTERNAL);
	fsutil_part_abort(&p, true);
}
END_TEST

START_TEST(test_disk_full)
{
	int fd = open("/dev/full", O_WRONLY);
	char data[4096] = { 0 };

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fsutil_write_all(fd, data, sizeof(data), "/x/IMG_1.JPG"), ICPD_ESTORAGE);
	ck_assert_ptr_nonnull(strstr(error_message(), "disk full"));
	ck_assert_ptr_nonnull(strstr(error_message(), "'/x/IMG_1.JPG'"));
	close(fd);
}
END_TEST

START_TEST(test_write_atomic)
{
	char *final = path_in("a/b/IMG_1.JPG.xmp");
	char buf[32] = { 0 };
	struct stat st;
	FILE *f;

	ck_assert_int_eq(fsutil_write_atomic(ptmp, final, "<x/>", 4, 0644, 0755, 86400), 0);
	f = fopen(final, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fread(buf, 1, sizeof(buf), f), 4);
	fclose(f);
	ck_assert_str_eq(buf, "<x/>");
	ck_assert_int_eq(stat(final, &st), 0);
	ck_assert_int_eq(st.st_mtime, 86400);
	ck_assert_int_eq(st.st_mode & 07777, 0644);
	ck_assert_int_eq(count_entries(ptmp), 0);
	/* overwrite */
	ck_assert_int_eq(fsutil_write_atomic(ptmp, final, "<y/>", 4, 0644, 0755, 86400), 0);
	free(final);
}
END_TEST

START_TEST(test_mkdirs_over_file)
{
	char *file = path_in("f");
	char *sub = path_in("f/g");
	FILE *f = fopen(file, "w");

	fclose(f);
	ck_assert_int_eq(fsutil_mkdirs(sub, 0755), ICPD_ESTORAGE);
	free(file);
	free(sub);
}
END_TEST

START_TEST(test_path_taken_is_per_file)
{
	struct fsutil_part p;
	char *dir = path_in("d/IMG_1.JPG");
	char *under_file = path_in("f/IMG_2.JPG");
	char *file = path_in("f");
	FILE *f;

	ck_assert_int_eq(fsutil_mkdirs(dir, 0755), 0); /* a directory where the file goes */
	f = fopen(file, "w");
	fclose(f);
	fsutil_part_init(&p);
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "k3", false), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "x", 1), 0);
	ck_assert_int_eq(fsutil_part_commit(&p, dir, 1, 0644, 0755, 0), ICPD_EASSET);
	fsutil_part_abort(&p, true);
	ck_assert_int_eq(fsutil_part_open(&p, ptmp, "k4", false), 0);
	ck_assert_int_eq(fsutil_part_write(&p, "x", 1), 0);
	ck_assert_int_eq(fsutil_part_commit(&p, under_file, 1, 0644, 0755, 0), ICPD_EASSET);
	fsutil_part_abort(&p, true);
	free(dir);
	free(under_file);
	free(file);
}
END_TEST

START_TEST(test_is_inside)
{
	char *a = path_in("x/y/z");
	char *b = path_in("../other");

	ck_assert(fsutil_is_inside(a, tmpdir));
	ck_assert(fsutil_is_inside(tmpdir, tmpdir));
	ck_assert(!fsutil_is_inside(b, tmpdir));
	ck_assert(!fsutil_is_inside("/etc/passwd", tmpdir));
	free(a);
	free(b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fsutil");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_tmpdir_hidden);
	tcase_add_test(tc, test_part_commit);
	tcase_add_test(tc, test_part_streaming_hash);
	tcase_add_test(tc, test_part_resume_and_fresh);
	tcase_add_test(tc, test_disk_full);
	tcase_add_test(tc, test_write_atomic);
	tcase_add_test(tc, test_mkdirs_over_file);
	tcase_add_test(tc, test_path_taken_is_per_file);
	tcase_add_test(tc, test_is_inside);
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
