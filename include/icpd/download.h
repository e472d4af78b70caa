/*
 * The downloader: a queue of jobs (one file each) driven over http_pool.
 * Each job streams into a resumable .part in the hidden temp folder,
 * resumes with Range (206 + Content-Range checked; 200 restarts from 0),
 * is checked for the API size and for media rather than an error page,
 * retried with a not-before time (backoff, Retry-After, bounded), then
 * handed to the caller's prepare hook (EXIF, sidecar), hashed, and
 * committed atomically.  One thread; the hooks run on it.
 */
#ifndef ICPD_DOWNLOAD_H
#define ICPD_DOWNLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct download_job {
	/* set by the caller; borrowed until the done hook returns */
	const char *url;        /* downloadURL as listed (with "${f}") */
	int64_t size;           /* from the API; -1 when unknown */
	const char *path;       /* final absolute path */
	const char *key;        /* temp file name, stable across runs (for resume) */
	int64_t mtime;          /* seconds */
	double listed_at;       /* mono_now() when the URL was listed */
	void *ud;

	/* results, valid in the done hook */
	int err;                /* 0 or ICPD_E* (ICPD_EASSET: this file failed) */
	char error[256];        /* why, when err != 0 */
	char sha256[65];        /* of the committed bytes */
	int64_t received;       /* bytes received over the network for this job */
	int attempts;
};

/* Jobs per refresh_urls call: each may need two records, and a lookup
 * takes 200 (cloudkit-photos.md §5.1). */
#define DOWNLOAD_REFRESH_BATCH 100

struct download_options {
	const char *tmpdir;     /* "<directory>/.icpd-tmp", must exist */
	const char *ca_file;
	const char *user_agent;
	long threads;           /* concurrent transfers; 0 = 8 */
	int64_t bandwidth;      /* bytes/s over all transfers; 0 = unlimited */
	int max_retries;        /* per job; 0 = 5 */
	double backoff;         /* first retry delay, seconds; 0 = 1 */
	double backoff_max;     /* cap, seconds; 0 = 60 */
	double retry_after_max; /* longer Retry-After fails the job; 0 = 300 */
	double url_max_age;     /* refresh URLs older than this; 0 = 3300 */
	long idle_timeout;      /* seconds; 0 = 60 */
	mode_t file_mode, dir_mode;

	void *ctx;
	/* Fresh URLs for jobs[0..n) (set job->url, owned by the caller, and
	 * fresh[i] = true for each job given one): jobs[0] was refused by the
	 * server or its listing is older than url_max_age; the others wait in
	 * the queue with URLs as old, and are asked for in the same call so
	 * that one lookup serves many files.  n <= DOWNLOAD_REFRESH_BATCH.
	 * 0; ICPD_ENOTFOUND or ICPD_ENOTIMPL when there is none to be had (a
	 * refused file then fails); another error when the lookup failed
	 * (refused files wait backoff_max and ask again).  May be NULL. */
	int (*refresh_urls)(void *ctx, struct download_job **jobs, size_t n, bool *fresh);
	/* The verified temp file, before it appears: EXIF, sidecar.  Non-zero
	 * fails the job with that code.  May be NULL. */
	/* Sets *changed when it rewrote tmp_path (the hash is then taken
	 * from the file, not from the bytes received). */
	int (*prepare)(void *ctx, struct download_job *job, const char *tmp_path, bool *changed);
	/* Every job ends here exactly once, success or not. */
	void (*done)(void *ctx, struct download_job *job);
};

struct download_stats {
	int64_t bytes;          /* received so far */
	long queued, running, done, failed;
	long refreshes;         /* refresh_urls calls */
	long refreshed;         /* URLs they replaced */
};

struct downloader;

int download_new(struct downloader **out, const struct download_options *o)
	__attribute__((warn_unused_result));
/* Jobs still pending end with err = ICPD_EINTR through the done hook. */
void download_free(struct downloader *d);

/* Queue a job (not started until download_run). */
void download_add(struct downloader *d, struct download_job *job);

/*
 * Work until at most max_pending jobs are queued or running (0: until all
 * are finished).  Returns 0, or ICPD_ESTORAGE when the disk is full (the
 * job that hit it ended with that code; the caller should stop), or
 * ICPD_EINTERNAL.
 */
int download_run(struct downloader *d, long max_pending) __attribute__((warn_unused_result));
void download_get_stats(const struct downloader *d, struct download_stats *out);

/* Called about every 250 ms while download_run works (progress display). */
void download_set_tick(struct downloader *d, void (*tick)(void *ctx), void *ctx);

/* Does this look like an HTML/JSON/XML error body rather than media? */
bool download_looks_like_error_page(const unsigned char *data, size_t n);

#endif
