/*
 * The downloader against a tiny HTTP/1.1 server on a thread of this
 * process.  Paths choose the behaviour: /ok/N, /norange/N, /cut/N (the
 * first response stops half way), /html, /429/N (first 429 + Retry-After:
 * 1), /500, /404, /big/N (10 bytes more than N), /badrange/N.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icpd/download.h"
#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/http.h"
#include "icpd/util.h"

#include "testhttpd.h"

static char tmpdir[64];
static char *ptmp;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-dl-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_int_eq(fsutil_tmpdir(tmpdir, &ptmp), 0);
	memset(hits, 0, sizeof(hits));
	if (listen_fd < 0) {
		ck_assert_int_eq(http_global_init(), 0);
		start_server();
	}
}

static void teardown(void)
{
	char cmd[128];

	free(ptmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

struct result {
	int ndone;
	int err[8];
	char error[8][256];
	char sha[8][65];
	int attempts[8];
	int64_t received[8];
	int prepared;
	int prepare_rc;
	char *refresh_to;
	const char *replaced_url; /* the URL the refresh replaced (the test frees it) */
	bool refresh_all;         /* give every job asked for "/ok/<size>" */
	int refresh_fail;         /* calls that fail first (the lookup is down) */
	int refresh_calls;
	size_t refresh_n[8];      /* jobs asked for, per call */
	char *fresh[16];          /* URLs handed out (the test frees them) */
	int nfresh;
};

static void on_done(void *ctx, struct download_job *job)
{
	struct result *r = ctx;
	int i = (int)(long)job->ud;

	r->ndone++;
	r->err[i] = job->err;
	snprintf(r->error[i], sizeof(r->error[i]), "%s", job->error);
	snprintf(r->sha[i], sizeof(r->sha[i]), "%s", job->sha256);
	r->attempts[i] = job->attempts;
	r->received[i] = job->received;
}

static int on_prepare(void *ctx, struct download_job *job, const char *tmp, bool *changed)
{
	struct result *r = ctx;
	struct stat st;

	(void)job;
	(void)changed;
	r->prepared++;
	/* the file must not be in view yet, and the temp file is complete */
	ck_assert_int_ne(access(job->path, F_OK), 0);
	ck_assert_int_eq(stat(tmp, &st), 0);
	ck_assert_int_eq(st.st_size, job->size);
	if (r->prepare_rc) {
		error_set(r->prepare_rc, "prepare refused");
	}
	return r->prepare_rc;
}

static char *url(const char *path);

static int on_refresh(void *ctx, struct download_job **jobs, size_t n, bool *fresh)
{
	struct result *r = ctx;

	ck_assert_uint_ge(n, 1);
	ck_assert_uint_le(n, DOWNLOAD_REFRESH_BATCH);
	if (r->refresh_calls < 8) {
		r->refresh_n[r->refresh_calls] = n;
	}
	r->refresh_calls++;
	if (r->refresh_fail > 0) {
		r->refresh_fail--;
		return error_set(ICPD_EUNAVAIL, "lookup unavailable");
	}
	if (r->refresh_all) {
		for (size_t i = 0; i < n && r->nfresh < 16; i++) {
			char path[64];

			snprintf(path, sizeof(path), "/ok/%lld", (long long)jobs[i]->size);
			r->fresh[r->nfresh] = url(path);
			jobs[i]->url = r->fresh[r->nfresh++];
			fresh[i] = true;
		}
		return 0;
	}
	if (!r->refresh_to) {
		return ICPD_ENOTFOUND;
	}
	/* only the job that needs it */
	r->replaced_url = jobs[0]->url;
	jobs[0]->url = r->refresh_to;
	fresh[0] = true;
	return 0;
}

static void options(struct download_options *o, struct result *r)
{
	memset(o, 0, sizeof(*o));
	o->tmpdir = ptmp;
	o->threads = 4;
	o->max_retries = 3;
	o->backoff = 0.02;
	o->backoff_max = 0.1;
	o->idle_timeout = 10;
	o->ctx = r;
	o->done = on_done;
	o->prepare = on_prepare;
	o->refresh_urls = on_refresh;
}

static char *url(const char *path)
{
	char *u = malloc(600);

	snprintf(u, 600, "http://127.0.0.1:%d%s", port, path);
	return u;
}

static char *dest(const char *name)
{
	char *p = malloc(256);

	snprintf(p, 256, "%s/2024/05/06/%s", tmpdir, name);
	return p;
}

/* The file at path has exactly n bytes of the server's pattern. */
static void check_file(const char *path, long n)
{
	FILE *f = fopen(path, "rb");
	long i = 0;
	int c;

	long bad = -1;

	ck_assert_msg(f != NULL, "missing %s", path);
	/* one assertion per file: Check records every ck_assert, and a million
	 * of them make the no-fork runner crawl under valgrind */
	while ((c = fgetc(f)) != EOF) {
		if (bad < 0 && c != byte_at(i)) {
			bad = i;
		}
		i++;
	}
	fclose(f);
	ck_assert_msg(bad < 0, "%s differs at byte %ld", path, bad);
	ck_assert_int_eq(i, n);
}

static int tmp_entries(void)
{
	DIR *d = opendir(ptmp);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

static void run_one(const char *path, long size, const char *name, struct result *r,
	struct download_options *o, struct download_job *job)
{
	struct downloader *d = NULL;

	memset(job, 0, sizeof(*job));
	job->url = url(path);
	job->size = size;
	job->path = dest(name);
	job->key = name;
	job->mtime = 1500000000;
	job->ud = (void *)0L;
	ck_assert_int_eq(download_new(&d, o), 0);
	download_add(d, job);
	ck_assert_int_eq(download_run(d, 0), 0);
	download_free(d);
	ck_assert_int_eq(r->ndone, 1);
}

static void free_job(struct download_job *job)
{
	free((char *)job->path);
}

START_TEST(test_parallel_ok)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job jobs[6];
	struct downloader *d = NULL;
	char *urls[6];
	struct stat st;

	options(&o, &r);
	ck_assert_int_eq(download_new(&d, &o), 0);
	for (long i = 0; i < 6; i++) {
		char path[64], name[32];

		snprintf(path, sizeof(path), "/ok/%ld", 100000 + i * 1000);
		snprintf(name, sizeof(name), "IMG_%ld.JPG", i);
		memset(&jobs[i], 0, sizeof(jobs[i]));
		urls[i] = url(path);
		jobs[i].url = urls[i];
		jobs[i].size = 100000 + i * 1000;
		jobs[i].path = dest(name);
		jobs[i].key = strdup(name);
		jobs[i].mtime = 1500000000;
		jobs[i].ud = (void *)i;
		download_add(d, &jobs[i]);
	}
	ck_assert_int_eq(download_run(d, 0), 0);
	download_free(d);
	ck_assert_int_eq(r.ndone, 6);
	ck_assert_int_eq(r.prepared, 6);
	for (int i = 0; i < 6; i++) {
		char sha[65];

		ck_assert_int_eq(r.err[i], 0);
		check_file(jobs[i].path, 100000 + i * 1000);
		ck_assert_int_eq(fsutil_sha256_file(jobs[i].path, sha), 0);
		ck_assert_str_eq(sha, r.sha[i]);
		ck_assert_int_eq(stat(jobs[i].path, &st), 0);
		ck_assert_int_eq(st.st_mtime, 1500000000);
		ck_assert_int_eq(st.st_mode & 0777, 0644);
		ck_assert_int_eq(r.received[i], 100000 + i * 1000);
		free(urls[i]);
		free((char *)jobs[i].path);
		free((char *)jobs[i].key);
	}
	ck_assert_int_eq(tmp_entries(), 0);
}
END_TEST

START_TEST(test_braces_encoded)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	run_one("/ok/1000/${f}?o=a&e=1", 1000, "IMG_B.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], 0);
	ck_assert_str_eq(last_target, "/ok/1000/$%7Bf%7D?o=a&e=1");
	ck_assert_str_eq(last_range, "bytes=0-");
	free((char *)job.url);
	free_job(&job);
}
END_TEST

static void make_part(const char *key, long n, bool correct)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.part", ptmp, key);
	f = fopen(path, "wb");
	for (long i = 0; i < n; i++) {
		fputc(correct ? byte_at(i) : 0x55, f);
	}
	fclose(f);
}

START_TEST(test_resume_206)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	make_part("IMG_R.JPG", 5000, true);
	run_one("/ok/20000", 20000, "IMG_R.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], 0);
	ck_assert_str_eq(last_range, "bytes=5000-");
	ck_assert_int_eq(r.received[0], 15000);
	check_file(job.path, 20000);
	ck_assert_int_eq(tmp_entries(), 0);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_resume_ignored_range_restarts)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	make_part("IMG_N.JPG", 5000, false); /* wrong bytes: a 200 must replace them */
	run_one("/norange/20000", 20000, "IMG_N.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], 0);
	ck_assert_str_eq(last_range, "bytes=5000-");
	check_file(job.path, 20000);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_bad_content_range_restarts)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	make_part("IMG_BR.JPG", 100, false);
	run_one("/badrange/3000", 3000, "IMG_BR.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], 0);
	ck_assert_int_eq(r.attempts[0], 2);
	check_file(job.path, 3000);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_cut_then_resume)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	run_one("/cut/40000", 40000, "IMG_C.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], 0);
	ck_assert_int_eq(r.attempts[0], 2);
	ck_assert_str_eq(last_range, "bytes=20000-");
	check_file(job.path, 40000);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_html_is_refused)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	run_one("/html", 46, "IMG_H.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], ICPD_EASSET);
	ck_assert_ptr_nonnull(strstr(r.error[0], "error page"));
	ck_assert_int_eq(hits[2], 4); /* 1 + 3 retries */
	ck_assert_int_ne(access(job.path, F_OK), 0);
	ck_assert_int_eq(tmp_entries(), 0);
	ck_assert_int_eq(r.prepared, 0);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_429_retry_after)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;
	double t0 = mono_now();

	options(&o, &r);
	run_one("/429/5000", 5000, "IMG_T.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], 0);
	ck_assert_int_eq(r.attempts[0], 2);
	ck_assert(mono_now() - t0 >= 0.9); /* Retry-After: 1 was honoured */
	check_file(job.path, 5000);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_5xx_gives_up)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	o.max_retries = 2;
	run_one("/503", 5000, "IMG_5.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], ICPD_EASSET);
	ck_assert_str_eq(r.error[0], "HTTP 503");
	ck_assert_int_eq(hits[3], 3);
	ck_assert_int_ne(access(job.path, F_OK), 0);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_too_long_fails)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	run_one("/big/5000", 5000, "IMG_L.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], ICPD_EASSET);
	ck_assert_ptr_nonnull(strstr(r.error[0], "expected 5000"));
	ck_assert_int_ne(access(job.path, F_OK), 0);
	ck_assert_int_eq(tmp_entries(), 0);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_404_refresh)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	r.refresh_to = url("/ok/3000");
	run_one("/404", 3000, "IMG_F.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], 0);
	check_file(job.path, 3000);
	ck_assert_ptr_nonnull(r.replaced_url);
	free((char *)r.replaced_url);
	free(r.refresh_to);
	free((char *)job.path);
	/* without a fresh URL the 404 is final, after one attempt */
	memset(&r, 0, sizeof(r));
	memset(hits, 0, sizeof(hits));
	run_one("/404", 3000, "IMG_G.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], ICPD_EASSET);
	ck_assert_int_eq(hits[3], 1);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

/* n jobs whose URLs are refused with 410 unless refreshed */
static void run_stale(struct result *r, struct download_options *o, long n, double listed_at,
	struct download_stats *stats)
{
	struct download_job jobs[8];
	char *urls[8];
	struct downloader *d = NULL;

	ck_assert_int_le(n, 8);
	r->refresh_all = true;
	ck_assert_int_eq(download_new(&d, o), 0);
	for (long i = 0; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "IMG_R%ld.JPG", i);
		memset(&jobs[i], 0, sizeof(jobs[i]));
		urls[i] = url("/410");
		jobs[i].url = urls[i];
		jobs[i].size = 20000 + i * 100;
		jobs[i].path = dest(name);
		jobs[i].key = strdup(name);
		jobs[i].mtime = 1500000000;
		jobs[i].listed_at = listed_at;
		jobs[i].ud = (void *)i;
		download_add(d, &jobs[i]);
	}
	ck_assert_int_eq(download_run(d, 0), 0);
	download_get_stats(d, stats);
	download_free(d);
	ck_assert_int_eq(r->ndone, n);
	for (long i = 0; i < n; i++) {
		ck_assert_int_eq(r->err[i], 0);
		check_file(jobs[i].path, 20000 + i * 100);
		free(urls[i]);
		free((char *)jobs[i].path);
		free((char *)jobs[i].key);
	}
	for (int i = 0; i < r->nfresh; i++) {
		free(r->fresh[i]);
	}
	ck_assert_int_eq(tmp_entries(), 0);
}

START_TEST(test_refused_url_refreshes_the_queue_at_once)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_stats st;

	/* one transfer at a time: the first 410 refreshes every waiting job
	 * listed before it was tried, in one call */
	options(&o, &r);
	o.threads = 1;
	run_stale(&r, &o, 5, mono_now(), &st);
	ck_assert_int_eq(r.refresh_calls, 1);
	ck_assert_uint_eq(r.refresh_n[0], 5);
	ck_assert_int_eq(hits[3], 1);
	ck_assert_int_eq(st.refreshes, 1);
	ck_assert_int_eq(st.refreshed, 5);
}
END_TEST

START_TEST(test_refused_in_flight_share_one_lookup)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_stats st;

	/* four transfers go out with stale URLs: the first refusal refreshes
	 * them all (and the two waiting); the other three retry with the URL
	 * that came meanwhile, without a lookup of their own */
	options(&o, &r);
	o.threads = 4;
	run_stale(&r, &o, 6, mono_now(), &st);
	ck_assert_int_eq(r.refresh_calls, 1);
	ck_assert_uint_eq(r.refresh_n[0], 6);
	ck_assert_int_eq(hits[3], 4);
}
END_TEST

START_TEST(test_failed_lookup_is_asked_again_later)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_stats st;

	/* the first lookup fails: the refused files wait (backoff_max) and
	 * are not failed; the next lookup serves all three */
	options(&o, &r);
	o.threads = 1;
	r.refresh_fail = 1;
	run_stale(&r, &o, 3, mono_now(), &st);
	ck_assert_int_eq(r.refresh_calls, 2);
	ck_assert_uint_eq(r.refresh_n[1], 3);
	ck_assert_int_eq(st.refreshed, 3);
}
END_TEST

START_TEST(test_old_listing_refreshed_before_the_first_try)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_stats st;

	/* listed longer ago than url_max_age: refreshed before any request,
	 * all in the first call, and no stale URL is ever sent */
	options(&o, &r);
	o.url_max_age = 0.5;
	run_stale(&r, &o, 6, mono_now() - 1.0, &st);
	ck_assert_int_eq(r.refresh_calls, 1);
	ck_assert_uint_eq(r.refresh_n[0], 6);
	ck_assert_int_eq(hits[3], 0);
	ck_assert_int_eq(st.refreshed, 6);
}
END_TEST

START_TEST(test_prepare_refusal)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	r.prepare_rc = ICPD_EASSET;
	run_one("/ok/3000", 3000, "IMG_P.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], ICPD_EASSET);
	ck_assert_int_ne(access(job.path, F_OK), 0);
	ck_assert_int_eq(tmp_entries(), 0);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_complete_part_needs_no_network)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job job;

	options(&o, &r);
	make_part("IMG_D.JPG", 3000, true);
	run_one("/500", 3000, "IMG_D.JPG", &r, &o, &job);
	ck_assert_int_eq(r.err[0], 0);
	ck_assert_int_eq(hits[3], 0);
	check_file(job.path, 3000);
	free((char *)job.url);
	free_job(&job);
}
END_TEST

START_TEST(test_bandwidth_limit)
{
	struct result r = { 0 };
	struct download_options o;
	struct download_job jobs[3];
	struct downloader *d = NULL;
	char *urls[3];
	double t0, took;

	options(&o, &r);
	o.threads = 3;
	o.bandwidth = 100000; /* for all transfers together */
	ck_assert_int_eq(download_new(&d, &o), 0);
	for (long i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "IMG_W%ld.JPG", i);
		memset(&jobs[i], 0, sizeof(jobs[i]));
		urls[i] = url("/ok/100000");
		jobs[i].url = urls[i];
		jobs[i].size = 100000;
		jobs[i].path = dest(name);
		jobs[i].key = strdup(name);
		jobs[i].ud = (void *)i;
		download_add(d, &jobs[i]);
	}
	t0 = mono_now();
	ck_assert_int_eq(download_run(d, 0), 0);
	took = mono_now() - t0;
	download_free(d);
	/* 300 kB at 100 kB/s (minus a quarter second of burst): about 2.75 s;
	 * unlimited it takes milliseconds */
	ck_assert_msg(took >= 2.3 && took < 100.0, "took %.2f s", took);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(r.err[i], 0);
		check_file(jobs[i].path, 100000);
		free(urls[i]);
		free((char *)jobs[i].path);
		free((char *)jobs[i].key);
	}
}
END_TEST

START_TEST(test_sniff)
{
	ck_assert(download_looks_like_error_page((const unsigned char *)"<html>", 6));
	ck_assert(download_looks_like_error_page((const unsigned char *)"  {\"a\":1}", 9));
	ck_assert(download_looks_like_error_page((const unsigned char *)"\xef\xbb\xbf<?xml", 8));
	ck_assert(!download_looks_like_error_page((const unsigned char *)"\xff\xd8\xff\xe0", 4));
	ck_assert(!download_looks_like_error_page((const unsigned char *)"\0\0\0\x18" "ftypheic", 12));
	ck_assert(!download_looks_like_error_page((const unsigned char *)"", 0));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("download");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sniff);
	tcase_add_test(tc, test_parallel_ok);
	tcase_add_test(tc, test_braces_encoded);
	tcase_add_test(tc, test_resume_206);
	tcase_add_test(tc, test_resume_ignored_range_restarts);
	tcase_add_test(tc, test_bad_content_range_restarts);
	tcase_add_test(tc, test_cut_then_resume);
	tcase_add_test(tc, test_html_is_refused);
	tcase_add_test(tc, test_429_retry_after);
	tcase_add_test(tc, test_5xx_gives_up);
	tcase_add_test(tc, test_too_long_fails);
	tcase_add_test(tc, test_404_refresh);
	tcase_add_test(tc, test_refused_url_refreshes_the_queue_at_once);
	tcase_add_test(tc, test_refused_in_flight_share_one_lookup);
	tcase_add_test(tc, test_failed_lookup_is_asked_again_later);
	tcase_add_test(tc, test_old_listing_refreshed_before_the_first_try);
	tcase_add_test(tc, test_prepare_refusal);
	tcase_add_test(tc, test_complete_part_needs_no_network);
	tcase_add_test(tc, test_bandwidth_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	/* one process: the server thread lives across tests */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
