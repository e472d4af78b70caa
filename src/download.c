/*
 * The download queue.  Jobs wait in a list with a not-before time; up to
 * `threads` run at once on http_pool.  A failed attempt never sleeps: the
 * job goes back in the list with a later not-before time, so one slow
 * server does not hold up the others.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "icpd/download.h"
#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/http_pool.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/banned.h"

enum verdict {
	V_OK = 0,
	V_RETRY,      /* try again later (resume from what we have) */
	V_RESTART,    /* try again from byte 0 */
	V_REFRESH,    /* the URL was refused: refresh it, then retry */
	V_FAIL,       /* give up on this file */
	V_STORAGE,    /* the disk: give up on the run */
};

struct dl {
	struct downloader *d;
	struct download_job *job;
	struct fsutil_part part;
	int64_t start;          /* offset asked for in this attempt */
	double not_before;
	int restarts;
	bool refreshed;         /* a refusal already led to a fresh URL */
	bool running;
	double started;         /* when the current attempt began */
	enum verdict verdict;
	char why[200];
	double retry_after;
	struct dl *next;
};

struct downloader {
	struct download_options o;
	struct http_pool *pool;
	struct dl *queue;       /* waiting and running */
	struct download_stats stats;
	void (*tick)(void *ctx);
	void *tick_ctx;
	double last_tick;
	double refresh_pause_until; /* a lookup failed: none before then */
	int fatal;
};

bool download_looks_like_error_page(const unsigned char *data, size_t n)
{
	size_t i = 0;

	/* skip a UTF-8 BOM and white space */
	if (n >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf) {
		i = 3;
	}
	while (i < n && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')) {
		i++;
	}
	if (i >= n) {
		return n > 0; /* only white space */
	}
	/* no photo or video format starts with markup or a JSON object */
	return data[i] == '<' || data[i] == '{';
}

int download_new(struct downloader **out, const struct download_options *o)
{
	struct downloader *d = xcalloc(1, sizeof(*d));
	struct http_pool_options po = { 0 };
	int rc;

	*out = NULL;
	d->o = *o;
	if (d->o.threads <= 0) {
		d->o.threads = 8;
	}
	if (d->o.max_retries <= 0) {
		d->o.max_retries = 5;
	}
	if (d->o.backoff <= 0) {
		d->o.backoff = 1;
	}
	if (d->o.backoff_max <= 0) {
		d->o.backoff_max = 60;
	}
	if (d->o.retry_after_max <= 0) {
		d->o.retry_after_max = 300;
	}
	if (d->o.url_max_age <= 0) {
		d->o.url_max_age = 3300;
	}
	if (!d->o.file_mode) {
		d->o.file_mode = 0644;
	}
	if (!d->o.dir_mode) {
		d->o.dir_mode = 0755;
	}
	po.ca_file = o->ca_file;
	po.user_agent = o->user_agent;
	po.max_transfers = d->o.threads;
	po.max_recv_speed = o->bandwidth;
	po.idle_timeout = o->idle_timeout;
	rc = http_pool_new(&d->pool, &po);
	if (rc) {
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void download_set_tick(struct downloader *d, void (*tick)(void *ctx), void *ctx)
{
	d->tick = tick;
	d->tick_ctx = ctx;
}

void download_get_stats(const struct downloader *d, struct download_stats *out)
{
	*out = d->stats;
}

void download_add(struct downloader *d, struct download_job *job)
{
	struct dl *x = xcalloc(1, sizeof(*x));
	struct dl **tail = &d->queue;

	job->err = 0;
	job->error[0] = '\0';
	job->sha256[0] = '\0';
	job->received = 0;
	job->attempts = 0;
	x->job = job;
	x->d = d;
	fsutil_part_init(&x->part);
	x->part.hash = true;
	x->retry_after = -1;
	while (*tail) {
		tail = &(*tail)->next;
	}
	*tail = x;
	d->stats.queued++;
}

static void set_verdict(struct dl *x, enum verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_verdict(struct dl *x, enum verdict v, const char *fmt, ...)
{
	va_list ap;

	x->verdict = v;
	va_start(ap, fmt);
	vsnprintf(x->why, sizeof(x->why), fmt, ap);
	va_end(ap);
}

static int on_head(void *ud, const struct http_pool_head *h)
{
	struct dl *x = ud;
	int64_t size = x->job->size;

	if (h->status == 200) {
		if (x->start > 0) {
			/* the server ignored Range: take the whole body */
			log_debug("'%s': server sent the whole file, restarting", x->job->path);
			if (fsutil_part_truncate(&x->part) != 0) {
				set_verdict(x, V_STORAGE, "%s", error_message());
				return -1;
			}
			x->start = 0;
		}
	} else if (h->status == 206) {
		if (!h->has_range || h->range_start != x->start ||
			(size >= 0 && h->range_total >= 0 && h->range_total != size)) {
			set_verdict(x, V_RESTART, "bad Content-Range in a 206 response");
			return -1;
		}
	} else if (h->status == 416 && x->start > 0) {
		set_verdict(x, V_RESTART, "HTTP 416 for a resumed download");
		return -1;
	} else {
		enum verdict v;

		x->retry_after = h->retry_after;
		if (h->status == 408 || h->status == 429 || h->status >= 500) {
			v = V_RETRY;
		} else if (h->status == 401 || h->status == 403 || h->status == 404 ||
			   h->status == 410 || h->status == 421) {
			v = V_REFRESH; /* an expired or revoked URL looks like this */
		} else {
			v = V_FAIL;
		}
		set_verdict(x, v, "HTTP %ld", h->status);
		return -1;
	}
	if (h->content_type && (strncasecmp(h->content_type, "text/html", 9) == 0 ||
				       strncasecmp(h->content_type, "application/json", 16) == 0)) {
		set_verdict(x, V_RESTART, "the server sent an error page (%s), not media",
			h->content_type);
		return -1;
	}
	if (size >= 0 && h->content_length >= 0 && x->start + h->content_length > size) {
		long long announced = (long long)x->start + (long long)h->content_length;

		set_verdict(x, V_RESTART, "the server announced %lld bytes, expected %lld",
			announced, (long long)size);
		return -1;
	}
	return 0;
}

static int on_data(void *ud, const char *data, size_t n)
{
	struct dl *x = ud;
	int64_t size = x->job->size;

	if (x->part.size == 0 && download_looks_like_error_page((const unsigned char *)data, n)) {
		set_verdict(x, V_RESTART, "the server sent an error page, not media");
		return -1;
	}
	if (size >= 0 && x->part.size + (int64_t)n > size) {
		set_verdict(x, V_RESTART, "the server sent more than the expected %lld bytes",
			(long long)size);
		return -1;
	}
	if (fsutil_part_write(&x->part, data, n) != 0) {
		set_verdict(x, V_STORAGE, "%s", error_message());
		return -1;
	}
	x->job->received += (int64_t)n;
	x->d->stats.bytes += (int64_t)n;
	return 0;
}

static void remove_dl(struct downloader *d, struct dl *x)
{
	for (struct dl **p = &d->queue; *p; p = &(*p)->next) {
		if (*p == x) {
			*p = x->next;
			break;
		}
	}
}

/* The job is over: report and forget it. */
static void end_job(struct downloader *d, struct dl *x, int err, const char *why)
{
	struct download_job *job = x->job;

	remove_dl(d, x);
	d->stats.queued--;
	if (err) {
		job->err = err;
		snprintf(job->error, sizeof(job->error), "%s", why && *why ? why : error_name(err));
		/* keep a part worth resuming, drop anything we distrust or that
		 * filled the disk */
		if (x->verdict == V_RESTART || x->verdict == V_FAIL || x->verdict == V_STORAGE ||
			err == ICPD_ESTORAGE || x->part.size == 0) {
			fsutil_part_abort(&x->part, true);
		} else {
			fsutil_part_forget(&x->part); /* stays on disk for the next run */
		}
		d->stats.failed++;
		log_warn("cannot download '%s': %s", job->path, job->error);
	} else {
		fsutil_part_abort(&x->part, true);
		d->stats.done++;
	}
	if (d->o.done) {
		d->o.done(d->o.ctx, job);
	}
	free(x);
}

/* Verified bytes in the part: hooks, hash, commit. */
static void finalize(struct downloader *d, struct dl *x)
{
	struct download_job *job = x->job;
	unsigned char head[64];
	bool changed = false;
	ssize_t hn;
	int rc;

	fsutil_part_abort(&x->part, false); /* close; the file stays */
	hn = fsutil_part_head(&x->part, head, sizeof(head));
	if (hn < 0 || ((job->size != 0 || hn > 0) &&
			      download_looks_like_error_page(head, (size_t)hn))) {
		x->verdict = V_FAIL;
		end_job(d, x, ICPD_EASSET, "the downloaded file is an error page, not media");
		return;
	}
	if (d->o.prepare) {
		rc = d->o.prepare(d->o.ctx, job, x->part.path, &changed);
		if (rc) {
			x->verdict = V_FAIL;
			if (rc == ICPD_ESTORAGE) {
				d->fatal = rc;
			}
			end_job(d, x, rc, error_message());
			return;
		}
	}
	rc = fsutil_part_sha256(&x->part, changed, job->sha256);
	if (rc == 0) {
		rc = fsutil_part_commit(&x->part, job->path, -1, d->o.file_mode, d->o.dir_mode,
			job->mtime);
	}
	if (rc) {
		x->verdict = V_FAIL;
		if (rc == ICPD_ESTORAGE) {
			d->fatal = rc;
		}
		end_job(d, x, rc, error_message());
		return;
	}
	log_debug("saved '%s'", job->path);
	end_job(d, x, 0, NULL);
}

static double backoff_delay(struct downloader *d, struct dl *x)
{
	double delay = d->o.backoff;

	for (int i = 1; i < x->job->attempts && delay < d->o.backoff_max; i++) {
		delay *= 2;
	}

	if (delay > d->o.backoff_max) {
		delay = d->o.backoff_max;
	}
	if (x->retry_after >= 0) {
		delay = x->retry_after;
	}
	return delay;
}

/*
 * Fresh URLs for x's job and, in the same call, for the other jobs whose
 * URLs were listed before `before`.  URLs expire with age (about an hour
 * after the listing), so when one is refused or too old, the others of its
 * age are as suspect, and one batched lookup beats one per file.  After a
 * refusal that includes jobs on the wire (with_running): their transfer
 * keeps the old URL, and if it is refused too the retry takes the new one
 * without another lookup.  0 when x's job got a fresh URL, 1 when there
 * is none for it (gone or changed), else the lookup's error (then no lookup
 * is tried for a while: backoff_max).
 */
static int refresh(struct downloader *d, struct dl *x, double before, bool with_running)
{
	struct download_job *jobs[DOWNLOAD_REFRESH_BATCH];
	bool fresh[DOWNLOAD_REFRESH_BATCH] = { false };
	double now = mono_now();
	size_t n = 0, got = 0;
	int rc;

	jobs[n++] = x->job;
	for (struct dl *y = d->queue; y && n < DOWNLOAD_REFRESH_BATCH; y = y->next) {
		if (y != x && (with_running || !y->running) && y->job->listed_at > 0 &&
			y->job->listed_at < before) {
			jobs[n++] = y->job;
		}
	}
	d->stats.refreshes++;
	rc = d->o.refresh_urls(d->o.ctx, jobs, n, fresh);
	if (rc == ICPD_ENOTFOUND || rc == ICPD_ENOTIMPL) {
		return 1;
	}
	if (rc) {
		d->refresh_pause_until = now + d->o.backoff_max;
		log_warn("cannot refresh download URLs: %s", error_message());
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (fresh[i]) {
			jobs[i]->listed_at = now;
			got++;
		}
	}
	d->stats.refreshed += (long)got;
	log_debug("refreshed %zu of %zu download URLs", got, n);
	return fresh[0] ? 0 : 1;
}

/* An attempt ended without a complete file; decide what next. */
static void retry_or_fail(struct downloader *d, struct dl *x)
{
	double delay, wait = 0;

	if (x->verdict == V_STORAGE) {
		d->fatal = ICPD_ESTORAGE;
		end_job(d, x, ICPD_ESTORAGE, x->why);
		return;
	}
	if (x->verdict == V_FAIL) {
		end_job(d, x, ICPD_EASSET, x->why);
		return;
	}
	if (x->verdict == V_RESTART) {
		if (fsutil_part_truncate(&x->part) != 0) {
			d->fatal = ICPD_ESTORAGE;
			end_job(d, x, ICPD_ESTORAGE, error_message());
			return;
		}
		x->restarts++;
	}
	if (x->verdict == V_REFRESH) {
		double now = mono_now();
		int rc;

		if (x->refreshed || !d->o.refresh_urls) {
			end_job(d, x, ICPD_EASSET, x->why);
			return;
		}
		if (x->job->listed_at > x->started) {
			/* a fresh URL came while this attempt ran (another job's
			 * refresh took it along) */
			x->refreshed = true;
		} else if (now < d->refresh_pause_until) {
			/* a lookup failed a moment ago: ask again after the pause */
			wait = d->refresh_pause_until - now;
		} else {
			/* with every URL listed before this attempt began: as old
			 * or older than the refused one */
			rc = refresh(d, x, x->started, true);
			if (rc == 1) {
				end_job(d, x, ICPD_EASSET, x->why);
				return;
			}
			if (rc == 0) {
				x->refreshed = true;
			} else {
				wait = d->o.backoff_max;
			}
		}
	}
	if (x->job->attempts > d->o.max_retries) {
		end_job(d, x, ICPD_EASSET, x->why);
		return;
	}
	if (x->retry_after > d->o.retry_after_max) {
		char why[256];

		snprintf(why, sizeof(why), "%s; the server asks to wait %.0f s", x->why,
			x->retry_after);
		end_job(d, x, ICPD_EASSET, why);
		return;
	}
	delay = x->verdict == V_REFRESH ? wait : backoff_delay(d, x);
	log_info("'%s': %s; retry %d of %d in %.1f s", x->job->path, x->why, x->job->attempts,
		d->o.max_retries, delay);
	fsutil_part_abort(&x->part, false);
	x->not_before = mono_now() + delay;
}

static void start(struct downloader *d, struct dl *x)
{
	struct download_job *job = x->job;
	struct http_pool_request req = { 0 };
	char *url;
	int rc;

	job->attempts++;
	x->verdict = V_OK;
	x->why[0] = '\0';
	x->retry_after = -1;
	x->started = mono_now();
	if (d->o.refresh_urls && job->listed_at > 0 && x->started >= d->refresh_pause_until &&
		x->started - job->listed_at > d->o.url_max_age) {
		/* with it, the waiting URLs past half their life */
		if (refresh(d, x, x->started - d->o.url_max_age / 2, false) != 0) {
			log_debug("cannot refresh the URL of '%s'; trying the old one", job->path);
		}
	}
	rc = fsutil_part_open(&x->part, d->o.tmpdir, job->key, true);
	if (rc) {
		d->fatal = rc == ICPD_ESTORAGE ? rc : d->fatal;
		x->verdict = V_FAIL;
		end_job(d, x, rc, error_message());
		return;
	}
	if (job->size >= 0 && x->part.size > job->size) {
		if (fsutil_part_truncate(&x->part) != 0) {
			d->fatal = ICPD_ESTORAGE;
			end_job(d, x, ICPD_ESTORAGE, error_message());
			return;
		}
	}
	if (job->size >= 0 && x->part.size == job->size && job->size > 0) {
		/* a previous run got every byte but died before the commit */
		finalize(d, x);
		return;
	}
	x->start = x->part.size;
	url = http_pool_url_encode_braces(job->url);
	req.url = url;
	req.range_from = x->start;
	req.on_head = on_head;
	req.on_data = on_data;
	req.ud = x;
	rc = http_pool_add(d->pool, &req);
	free(url);
	if (rc) {
		x->verdict = V_FAIL;
		end_job(d, x, rc, error_message());
		return;
	}
	x->running = true;
	d->stats.running++;
}

static void handle_result(struct downloader *d, const struct http_pool_result *r)
{
	struct dl *x = r->ud;

	x->running = false;
	d->stats.running--;
	if (r->err == ICPD_EINTR) {
		/* we stopped it; the verdict says why */
	} else if (r->err) {
		set_verdict(x, V_RETRY, "%s", r->message);
	} else if (r->status / 100 != 2) {
		/* already judged in on_head (which saw the response) */
		if (x->verdict == V_OK) {
			set_verdict(x, V_FAIL, "HTTP %ld", r->status);
		}
	} else if (x->job->size >= 0 && x->part.size != x->job->size) {
		set_verdict(x, x->part.size < x->job->size ? V_RETRY : V_RESTART,
			"got %lld of %lld bytes", (long long)x->part.size, (long long)x->job->size);
	} else {
		finalize(d, x);
		return;
	}
	if (x->retry_after < 0) {
		x->retry_after = r->retry_after;
	}
	retry_or_fail(d, x);
}

static void maybe_tick(struct downloader *d)
{
	double now = mono_now();

	if (d->tick && now - d->last_tick >= 0.25) {
		d->last_tick = now;
		d->tick(d->tick_ctx);
	}
}

int download_run(struct downloader *d, long max_pending)
{
	struct http_pool_result res[16];

	while (d->stats.queued > max_pending && !d->fatal) {
		double now = mono_now();
		double next = now + 1.0;
		int timeout;
		size_t n = 0;
		int rc;

		for (struct dl *x = d->queue, *nx; x && d->stats.running < d->o.threads; x = nx) {
			nx = x->next;
			if (x->running) {
				continue;
			}
			if (x->not_before <= now) {
				start(d, x);
				if (d->fatal) {
					break;
				}
			}
		}
		if (d->fatal) {
			break;
		}
		/* Wake for the next retry time; a job that waits only for a free
		 * transfer slot needs no timer (a finished transfer wakes the
		 * poll), or this loop would spin while every slot is busy. */
		bool ready = false;

		for (struct dl *x = d->queue; x; x = x->next) {
			if (x->running) {
				continue;
			}
			if (x->not_before <= now) {
				ready = true;
			} else if (x->not_before < next) {
				next = x->not_before;
			}
		}
		timeout = (int)((next - mono_now()) * 1000) + 1;
		if (timeout > 250) {
			timeout = 250;
		}
		if (timeout < 0 || d->stats.queued <= max_pending ||
			(ready && d->stats.running < d->o.threads)) {
			timeout = 0;
		}
		if (d->stats.running == 0) {
			/* nothing on the wire: wait for the next not-before time */
			if (timeout > 0) {
				struct timespec ts = { timeout / 1000, (timeout % 1000) * 1000000L };

				nanosleep(&ts, NULL);
			}
			maybe_tick(d);
			continue;
		}
		rc = http_pool_poll(d->pool, timeout, res, ARRAY_SIZE(res), &n);
		if (rc) {
			return rc;
		}
		for (size_t i = 0; i < n; i++) {
			handle_result(d, &res[i]);
		}
		maybe_tick(d);
	}
	return d->fatal;
}

void download_free(struct downloader *d)
{
	if (!d) {
		return;
	}
	/* transfers first, so no callback touches a freed job */
	http_pool_free(d->pool);
	d->pool = NULL;
	while (d->queue) {
		struct dl *x = d->queue;

		x->running = false;
		x->verdict = V_RETRY;
		end_job(d, x, ICPD_EINTR, "stopped");
	}
	free(d);
}
