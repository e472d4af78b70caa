/*
 * The sync engine with hand-made assets whose URLs point at the test
 * HTTP server: the expected tree, a second run that downloads nothing,
 * adoption after the state is lost, partial failure, and the crash loop
 * (stop after every state-changing step, resume, compare).
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "icpd/asset.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/http.h"
#include "icpd/state.h"
#include "icpd/sync.h"

#include "testhttpd.h"

static char tmpdir[64];
static char photos[128];
static char dbpath[128];

#define NASSETS 4
static struct asset assets[NASSETS];
static size_t nassets;

struct src {
	size_t i;
};

static int src_next(void *ctx, struct asset *out)
{
	struct src *s = ctx;

	if (s->i >= nassets) {
		return ICPD_ITEROVER;
	}
	asset_release(out);
	asset_copy(out, &assets[s->i++]);
	return 0;
}

static void set_version(struct asset *a, enum asset_size slot, const char *path, long size,
	const char *uti)
{
	char u[256];

	snprintf(u, sizeof(u), "http://127.0.0.1:%d%s/${f}?e=1", port, path);
	a->versions[slot].present = true;
	a->versions[slot].url = strdup(u);
	a->versions[slot].size = size;
	a->versions[slot].uti = strdup(uti);
	a->versions[slot].checksum = strdup("AQID");
}

static void make_asset(struct asset *a, const char *id, const char *name, const char *type,
	int64_t date_ms)
{
	asset_init(a);
	a->asset_id = strdup(id);
	a->master_id = strdup(id);
	a->zone = strdup("PrimarySync");
	a->filename = strdup(name);
	a->item_type = strdup(type);
	a->kind = ASSET_IMAGE;
	a->asset_date = date_ms;
	a->added_date = date_ms;
	a->change_tag = strdup("tag1");
}

/* 2024-05-06 12:00 UTC, one day apart */
#define DAY0 1714996800000LL
#define DAY (86400 * 1000LL)

static void library(bool with_failure)
{
	for (size_t i = 0; i < nassets; i++) {
		asset_release(&assets[i]);
	}
	make_asset(&assets[0], "A1", "IMG_0001.JPG", "public.jpeg", DAY0);
	set_version(&assets[0], SIZE_ORIGINAL, "/ok/5000", 5000, "public.jpeg");
	make_asset(&assets[1], "A2", "IMG_0002.HEIC", "public.heic", DAY0 + DAY);
	set_version(&assets[1], SIZE_ORIGINAL, "/ok/7000", 7000, "public.heic");
	set_version(&assets[1], SIZE_LIVE_ORIGINAL, "/ok/9000", 9000, "com.apple.quicktime-movie");
	make_asset(&assets[2], "A3", "../../evil/IMG_0003.JPG", "public.jpeg", DAY0 + 2 * DAY);
	set_version(&assets[2], SIZE_ORIGINAL, with_failure ? "/503" : "/ok/3000", 3000,
		"public.jpeg");
	make_asset(&assets[3], "A4", "IMG_0004.JPG", "public.jpeg", DAY0 + 2 * DAY);
	set_version(&assets[3], SIZE_ORIGINAL, "/ok/4000", 4000, "public.jpeg");
	nassets = 4;
}

static const char *const expected[] = {
	"2024/05/06/IMG_0001.JPG",
	"2024/05/07/IMG_0002.HEIC",
	"2024/05/07/IMG_0002_HEVC.MOV",
	"2024/05/08/.._.._evil_IMG_0003.JPG",
	"2024/05/08/IMG_0004.JPG",
};
static const long expected_size[] = { 5000, 7000, 9000, 3000, 4000 };

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-sync-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(photos, sizeof(photos), "%s/photos", tmpdir);
	snprintf(dbpath, sizeof(dbpath), "%s/state.db", tmpdir);
	setenv("TZ", "UTC", 1);
	tzset();
	memset(hits, 0, sizeof(hits));
	if (listen_fd < 0) {
		ck_assert_int_eq(http_global_init(), 0);
		start_server();
	}
	library(false);
}

static void teardown(void)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void config(struct config *c)
{
	config_init(c);
	c->directory = strdup(photos);
	c->threads = 3;
}

/* sync_source.trash: records what it was asked; refuses trash_refuse. */
static char trashed[256];
static int trash_calls;
static const char *trash_refuse;

static int src_trash(void *ctx, struct sync_trash_item *items, size_t n)
{
	(void)ctx;
	trash_calls++;
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(items[i].change_tag);
		if (trash_refuse && strcmp(items[i].asset_id, trash_refuse) == 0) {
			items[i].result = ICPD_EASSET;
			snprintf(items[i].why, sizeof(items[i].why), "CONFLICT: test");
			continue;
		}
		items[i].result = 0;
		strncat(trashed, items[i].asset_id, sizeof(trashed) - strlen(trashed) - 2);
		strncat(trashed, " ", sizeof(trashed) - strlen(trashed) - 1);
	}
	return 0;
}

static int run(struct config *c, struct sync_report *rep, long stop_after)
{
	struct state *st = NULL;
	struct src s = { 0 };
	struct sync_source src = { src_next, NULL, src_trash, &s };
	struct sync_options o = { 0 };
	int rc;

	o.backoff = 0.01;
	o.max_retries = 2;
	o.stop_after_step = stop_after;
	ck_assert_int_eq(state_open(&st, dbpath), 0);
	rc = sync_run(c, st, &src, &o, rep);
	state_close(st);
	return rc;
}

/* Every regular file under dir (relative), outside the temp folder; '\n'-joined. */
static void walk(const char *root, const char *rel, char *out, size_t n)
{
	char path[1024];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
	d = opendir(path);
	if (!d) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		char sub[400];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
			strcmp(e->d_name, ".icpd-tmp") == 0) {
			continue;
		}
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		snprintf(path, sizeof(path), "%s/%s", root, sub);
		ck_assert_int_eq(lstat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			walk(root, sub, out, n);
		} else {
			strncat(out, sub, n - strlen(out) - 1);
			strncat(out, "\n", n - strlen(out) - 1);
		}
	}
	closedir(d);
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The tree is exactly the expected files with the pattern bytes and mtimes. */
static void check_tree(size_t nexp)
{
	char list[4096] = "";
	char *lines[32];
	size_t n = 0;

	n = 0;
	list[0] = '\0';
	walk(photos, "", list, sizeof(list));
	{
		char *save = NULL;

		for (char *p = strtok_r(list, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
			lines[n++] = p;
		}
	}
	qsort(lines, n, sizeof(lines[0]), cmp_lines);
	ck_assert_uint_eq(n, nexp);
	for (size_t i = 0; i < nexp; i++) {
		char path[512];
		struct stat st;
		FILE *f;
		long j = 0;
		int c;

		ck_assert_str_eq(lines[i], expected[i]);
		snprintf(path, sizeof(path), "%s/%s", photos, expected[i]);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_eq(st.st_size, expected_size[i]);
		f = fopen(path, "rb");
		{
			long bad = -1;

			while ((c = fgetc(f)) != EOF) {
				if (bad < 0 && c != byte_at(j)) {
					bad = j;
				}
				j++;
			}
			ck_assert_msg(bad < 0, "%s differs at byte %ld", path, bad);
		}
		fclose(f);
	}
}

static int tmp_entries(void)
{
	char p[256];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(p, sizeof(p), "%s/.icpd-tmp", photos);
	d = opendir(p);
	if (!d) {
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

static int count_rows(enum state_status want)
{
	struct state *st = NULL;
	struct state_counts c;

	ck_assert_int_eq(state_open(&st, dbpath), 0);
	ck_assert_int_eq(state_counts(st, &c), 0);
	state_close(st);
	return (int)c.files[want];
}

START_TEST(test_full_second_adopt)
{
	struct config c;
	struct sync_report rep;
	struct stat st;
	char p[256];
	int requests;

	sync_report_init(&rep);
	config(&c);
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(rep.listed, 4);
	ck_assert_int_eq(rep.downloaded, 5);
	ck_assert_int_eq(rep.bytes, 28000);
	ck_assert_int_eq(rep.failed, 0);
	check_tree(5);
	ck_assert_int_eq(tmp_entries(), 0);
	snprintf(p, sizeof(p), "%s/%s", photos, expected[0]);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mtime, DAY0 / 1000);
	ck_assert_int_eq(st.st_mode & 0777, 0644);
	ck_assert_int_eq(count_rows(STATE_DONE), 5);

	/* second run: nothing on the wire */
	requests = hits[4];
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(hits[4], requests);
	ck_assert_int_eq(rep.downloaded, 0);
	ck_assert_int_eq(rep.present, 5);
	ck_assert_int_eq(rep.adopted, 0);

	/* state lost: everything adopted, still nothing downloaded */
	ck_assert_int_eq(unlink(dbpath), 0);
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(hits[4], requests);
	ck_assert_int_eq(rep.adopted, 5);
	ck_assert_int_eq(rep.downloaded, 0);
	ck_assert_int_eq(count_rows(STATE_ADOPTED), 5);
	check_tree(5);
	sync_report_release(&rep);
	config_release(&c);
}
END_TEST

START_TEST(test_partial_failure)
{
	struct config c;
	struct sync_report rep;
	char report[256];
	FILE *f;
	char buf[4096] = "";

	library(true);
	sync_report_init(&rep);
	config(&c);
	ck_assert_int_eq(run(&c, &rep, 0), ICPD_EPARTIAL);
	ck_assert_int_eq(exit_code(ICPD_EPARTIAL), 4);
	ck_assert_int_eq(rep.failed, 1);
	ck_assert_int_eq(rep.downloaded, 4);
	ck_assert_uint_eq(rep.nfailures, 1);
	ck_assert_ptr_nonnull(strstr(rep.failures[0].path, "IMG_0003.JPG"));
	ck_assert_str_eq(rep.failures[0].error, "HTTP 503");
	ck_assert_int_eq(count_rows(STATE_FAILED), 1);
	ck_assert_int_eq(tmp_entries(), 0);
	snprintf(report, sizeof(report), "%s/report.json", tmpdir);
	ck_assert_int_eq(sync_report_write_json(&rep, report), 0);
	f = fopen(report, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_gt(fread(buf, 1, sizeof(buf) - 1, f), 0);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "\"result\": \"partial\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"exit_code\": 4"));
	ck_assert_ptr_nonnull(strstr(buf, "\"error\": \"HTTP 503\""));
	/* the asset comes back: the next run completes the tree */
	library(false);
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(rep.downloaded, 1);
	check_tree(5);
	ck_assert_int_eq(count_rows(STATE_FAILED), 0);
	sync_report_release(&rep);
	config_release(&c);
}
END_TEST

START_TEST(test_crash_loop)
{
	struct config c;
	struct sync_report rep;
	long n;
	int killed = 0;

	sync_report_init(&rep);
	config(&c);
	for (n = 1; n < 40; n++) {
		pid_t pid;
		int status = 0;
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s' '%s-wal' '%s-shm'", photos, dbpath,
			dbpath, dbpath);
		ck_assert_int_eq(system(cmd), 0);
		fflush(NULL);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int rc = run(&c, &rep, n);

			_exit(rc == 0 ? 0 : 1);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status)) {
			/* n is past the last step: the run completed */
			ck_assert_int_eq(WEXITSTATUS(status), 0);
			break;
		}
		ck_assert(WIFSIGNALED(status));
		ck_assert_int_eq(WTERMSIG(status), SIGKILL);
		killed++;
		/* never a partial file in view after the crash */
		{
			char list[4096] = "";
			char *save = NULL;

			walk(photos, "", list, sizeof(list));
			for (char *p = strtok_r(list, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
				char path[512];
				struct stat st;
				bool known = false;

				snprintf(path, sizeof(path), "%s/%s", photos, p);
				ck_assert_int_eq(stat(path, &st), 0);
				for (size_t i = 0; i < 5; i++) {
					if (strcmp(p, expected[i]) == 0) {
						known = true;
						ck_assert_int_eq(st.st_size, expected_size[i]);
					}
				}
				ck_assert_msg(known, "unexpected file %s", p);
			}
		}
		/* resume */
		ck_assert_int_eq(run(&c, &rep, 0), 0);
		check_tree(5);
		ck_assert_int_eq(tmp_entries(), 0);
		ck_assert_int_eq(count_rows(STATE_DONE) + count_rows(STATE_ADOPTED), 5);
		ck_assert_int_eq(count_rows(STATE_FAILED), 0);
	}
	/* 5 files × (commit + record) at least */
	ck_assert_int_ge(killed, 10);
	sync_report_release(&rep);
	config_release(&c);
}
END_TEST

START_TEST(test_xmp_and_dry_run)
{
	struct config c;
	struct sync_report rep;
	char p[256];

	sync_report_init(&rep);
	config(&c);
	c.dry_run = true;
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(rep.downloaded, 0);
	ck_assert_int_eq(hits[4], 0);
	ck_assert_int_ne(access(photos, F_OK), 0);
	c.dry_run = false;
	c.xmp_sidecar = true;
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(rep.sidecars, 4);
	snprintf(p, sizeof(p), "%s/%s.xmp", photos, expected[0]);
	ck_assert_int_eq(access(p, F_OK), 0);
	{
		/* the sidecar appeared before the media file (Immich reads it only then) */
		char m[256];
		struct stat sx, sm;

		snprintf(m, sizeof(m), "%s/%s", photos, expected[0]);
		ck_assert_int_eq(stat(p, &sx), 0);
		ck_assert_int_eq(stat(m, &sm), 0);
		ck_assert(sx.st_ctim.tv_sec < sm.st_ctim.tv_sec ||
			  (sx.st_ctim.tv_sec == sm.st_ctim.tv_sec &&
				  sx.st_ctim.tv_nsec <= sm.st_ctim.tv_nsec));
	}
	snprintf(p, sizeof(p), "%s/%s.xmp", photos, expected[2]); /* live video: none */
	ck_assert_int_ne(access(p, F_OK), 0);
	/* unchanged sidecars are not rewritten */
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(rep.sidecars, 0);
	sync_report_release(&rep);
	config_release(&c);
}
END_TEST

START_TEST(test_trash_wanted)
{
	struct config c;
	struct asset a;
	time_t now = (time_t)((DAY0 + 3 * DAY) / 1000); /* A1 is exactly 3 days old */

	config(&c);
	make_asset(&a, "A1", "IMG_0001.JPG", "public.jpeg", DAY0);
	ck_assert(!sync_trash_wanted(&c, &a, true, now)); /* off by default */
	c.delete_after_download = true;
	ck_assert(sync_trash_wanted(&c, &a, true, now));
	ck_assert(!sync_trash_wanted(&c, &a, false, now)); /* nothing downloaded now */
	c.delete_after_download = false;
	c.keep_icloud_recent_days = 3;
	ck_assert(sync_trash_wanted(&c, &a, false, now));
	c.keep_icloud_recent_days = 4;
	ck_assert(!sync_trash_wanted(&c, &a, true, now));
	c.keep_icloud_recent_days = 3;
	a.asset_date = DAY0 + 1; /* a millisecond short of 3 days: 2 whole days */
	ck_assert(!sync_trash_wanted(&c, &a, false, now));
	c.keep_icloud_recent_days = 0;
	ck_assert(sync_trash_wanted(&c, &a, false, now));
	a.asset_date = (int64_t)now * 1000 + 1; /* in the future: day -1, kept even by 0 */
	ck_assert(!sync_trash_wanted(&c, &a, false, now));
	a.asset_date = INT64_MIN; /* no assetDate: addedDate counts */
	ck_assert(sync_trash_wanted(&c, &a, false, now));
	a.added_date = INT64_MIN; /* no date at all: kept */
	ck_assert(!sync_trash_wanted(&c, &a, false, now));
	c.delete_after_download = true; /* icloudpd allows both with 0: either reason */
	ck_assert(sync_trash_wanted(&c, &a, true, now));
	asset_release(&a);
	config_release(&c);
}
END_TEST

START_TEST(test_trash_after_download)
{
	struct config c;
	struct sync_report rep;

	trashed[0] = '\0';
	trash_calls = 0;
	trash_refuse = NULL;
	sync_report_init(&rep);
	config(&c);
	c.delete_after_download = true;
	/* a dry run asks nothing of iCloud and downloads nothing */
	c.dry_run = true;
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(trash_calls, 0);
	ck_assert_int_eq(rep.trashed, 4);
	ck_assert_int_eq(rep.downloaded, 0);
	c.dry_run = false;
	/* A3 fails to download: only A1, A2 (photo and video) and A4 go, once */
	library(true);
	ck_assert_int_eq(run(&c, &rep, 0), ICPD_EPARTIAL);
	ck_assert_int_eq(trash_calls, 1);
	ck_assert_str_eq(trashed, "A1 A2 A4 ");
	ck_assert_int_eq(rep.trashed, 3);
	ck_assert_int_eq(rep.trash_kept, 1);
	/* the next run downloads A3 only, so only A3 goes */
	library(false);
	trashed[0] = '\0';
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(rep.downloaded, 1);
	ck_assert_str_eq(trashed, "A3 ");
	/* nothing downloaded: nothing to move, no call */
	ck_assert_int_eq(run(&c, &rep, 0), 0);
	ck_assert_int_eq(trash_calls, 2);
	ck_assert_int_eq(rep.trashed, 0);
	check_tree(5);
	sync_report_release(&rep);
	config_release(&c);
}
END_TEST

START_TEST(test_trash_keep_days_verifies_files)
{
	struct config c;
	struct sync_report rep;

	trashed[0] = '\0';
	trash_calls = 0;
	sync_report_init(&rep);
	config(&c);
	/* A5 is another photo with A1's name, day and size: icloudpd's rule
	 * takes A1's file for it, but that file was never A5's bytes */
	asset_release(&assets[3]);
	make_asset(&assets[3], "A5", "IMG_0001.JPG", "public.jpeg", DAY0);
	set_version(&assets[3], SIZE_ORIGINAL, "/ok/5000", 5000, "public.jpeg");
	/* and iCloud refuses A2 (changed since it was listed) */
	trash_refuse = "A2";
	c.keep_icloud_recent_days = 0;
	ck_assert_int_eq(run(&c, &rep, 0), ICPD_EPARTIAL);
	trash_refuse = NULL;
	ck_assert_int_eq(rep.downloaded, 4);
	ck_assert_int_eq(trash_calls, 1);
	ck_assert_str_eq(trashed, "A1 A3 ");
	ck_assert_int_eq(rep.trashed, 2);
	ck_assert_int_eq(rep.trash_failed, 1);
	ck_assert_int_eq(rep.trash_kept, 1);
	sync_report_release(&rep);
	config_release(&c);
}
END_TEST

START_TEST(test_parse_rate)
{
	int64_t r;

	ck_assert_int_eq(sync_parse_rate("10M", &r), 0);
	ck_assert_int_eq(r, 10000000);
	ck_assert_int_eq(sync_parse_rate("500k", &r), 0);
	ck_assert_int_eq(r, 500000);
	ck_assert_int_eq(sync_parse_rate("1.5MB/s", &r), 0);
	ck_assert_int_eq(r, 1500000);
	ck_assert_int_eq(sync_parse_rate("1234", &r), 0);
	ck_assert_int_eq(r, 1234);
	ck_assert_int_eq(sync_parse_rate("fast", &r), ICPD_EUSAGE);
	ck_assert_int_eq(sync_parse_rate("10X", &r), ICPD_EUSAGE);
	ck_assert_int_eq(sync_parse_rate("-1", &r), ICPD_EUSAGE);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("sync");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_parse_rate);
	tcase_add_test(tc, test_full_second_adopt);
	tcase_add_test(tc, test_partial_failure);
	tcase_add_test(tc, test_xmp_and_dry_run);
	tcase_add_test(tc, test_crash_loop);
	tcase_add_test(tc, test_trash_wanted);
	tcase_add_test(tc, test_trash_after_download);
	tcase_add_test(tc, test_trash_keep_days_verifies_files);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	for (size_t i = 0; i < nassets; i++) {
		asset_release(&assets[i]);
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
