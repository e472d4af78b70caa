/*
 * The sync engine.  Order is what makes a crash harmless: the .part file
 * lives in the hidden temp folder until it is whole and verified; the XMP
 * sidecar is written before the media file appears (Immich reads sidecars
 * only when it first sees the media file); the media file is renamed into
 * place and its directory fsync'ed; only then is it recorded as done.  A
 * crash between two steps leaves at worst a file in place but unrecorded,
 * which the next run adopts by path and size.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "icpd/buf.h"
#include "icpd/config.h"
#include "icpd/download.h"
#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/log.h"
#include "icpd/meta_exif.h"
#include "icpd/meta_xmp.h"
#include "icpd/naming.h"
#include "icpd/plan.h"
#include "icpd/state.h"
#include "icpd/sync.h"
#include "icpd/util.h"
#include "icpd_build.h"
#include "icpd/banned.h"

#define MAX_FAILURES_KEPT 1000
#define TMP_MAX_AGE (7 * 86400)

struct sync_job {
	struct download_job dl;
	struct sync *s;
	struct asset asset;        /* copy: sidecar and URL refresh need it */
	enum asset_size source;
	unsigned flags;
	char *rel;                 /* relative path */
	char *abs;                 /* absolute path */
	char *url;                 /* current URL; owned */
	char key[48];
	int64_t api_size;
	struct sync_job *next;     /* pending list */
};

/* --dry-run / --only-print-filenames: files that would have been written,
 * so a second asset with the same name is de-duplicated as in a real run.
 * A chained hash table: a dry run over 100k assets must not be quadratic.
 * It holds every planned path of the run, so it is kept compact: the paths
 * sit back to back in one pool, an entry is 16 bytes, chains are indices
 * (one malloc per path was ~90 bytes a path and the heap fragments that
 * made malloc slow for the rest of the run). */
struct planned {
	int64_t size;
	uint32_t off;              /* of the path in pool */
	uint32_t next;             /* index + 1 of the next entry in the chain; 0 ends it */
};

struct planned_set {
	char *pool;
	size_t pool_len, pool_cap;
	struct planned *ents;
	size_t n, cap;
	uint32_t *slots;           /* index + 1 of the first entry; 0 = empty */
	size_t nslots;
};

static uint64_t hash_str(const char *str)
{
	uint64_t h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h;
}

static const struct planned *planned_find(const struct planned_set *set, const char *rel)
{
	if (!set->nslots) {
		return NULL;
	}
	for (uint32_t i = set->slots[hash_str(rel) % set->nslots]; i; i = set->ents[i - 1].next) {
		const struct planned *p = &set->ents[i - 1];

		if (strcmp(set->pool + p->off, rel) == 0) {
			return p;
		}
	}
	return NULL;
}

static void planned_add(struct planned_set *set, const char *rel, int64_t size)
{
	size_t len = strlen(rel) + 1, k;
	struct planned *p;

	if (set->n >= UINT32_MAX - 1 || set->pool_len + len > UINT32_MAX) {
		return; /* 4 GB of paths: de-duplication of the rest is best effort */
	}
	if (set->n >= set->nslots) {
		size_t nslots = set->nslots ? set->nslots * 2 : 1024;

		free(set->slots);
		set->slots = xcalloc(nslots, sizeof(*set->slots));
		set->nslots = nslots;
		for (size_t i = 0; i < set->n; i++) {
			k = hash_str(set->pool + set->ents[i].off) % nslots;
			set->ents[i].next = set->slots[k];
			set->slots[k] = (uint32_t)(i + 1);
		}
	}
	if (set->n >= set->cap) {
		set->cap = set->cap ? set->cap * 2 : 1024;
		set->ents = xrealloc(set->ents, set->cap * sizeof(*set->ents));
	}
	if (set->pool_len + len > set->pool_cap) {
		while (set->pool_len + len > set->pool_cap) {
			set->pool_cap = set->pool_cap ? set->pool_cap * 2 : 64 * 1024;
		}
		set->pool = xrealloc(set->pool, set->pool_cap);
	}
	memcpy(set->pool + set->pool_len, rel, len);
	p = &set->ents[set->n];
	p->off = (uint32_t)set->pool_len;
	p->size = size;
	set->pool_len += len;
	k = hash_str(rel) % set->nslots;
	p->next = set->slots[k];
	set->slots[k] = (uint32_t)(++set->n);
}

static void planned_clear(struct planned_set *set)
{
	free(set->pool);
	free(set->ents);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/* --delete-after-download / --keep-icloud-recent-days: an asset due for
 * deletion in iCloud once its files are verified. */
struct trash_file {
	char *abs;                 /* owned */
	int64_t size;              /* announced size, 0 when unknown */
	bool fresh;                /* downloaded in this run (else found in place) */
};

struct trash_cand {
	char *asset_id;            /* owned */
	char *change_tag;          /* owned, may be NULL */
	char *label;               /* first file's relative path, for messages; owned */
	struct trash_file *files;  /* owned, nfiles */
	size_t nfiles;
};

struct sync {
	const struct config *cfg;
	struct state *st;
	const struct sync_source *src;
	const struct sync_options *opts;
	struct sync_report *rep;
	char *dir;
	char *tmpdir;
	int tree_lock;             /* fd of the temp folder, flock()ed; -1 when none */
	struct downloader *dl;
	struct state_run run;
	struct sync_job *pending;
	struct planned_set planned; /* dry run: what would be there */
	struct trash_cand *trash;  /* assets due for deletion in iCloud */
	size_t ntrash, trash_cap;
	time_t now;
	long steps;
	int fatal;
	double t0, last_line;
	int64_t planned_bytes;
	bool listing_done;
	bool bar_drawn;
};

void sync_report_init(struct sync_report *r)
{
	memset(r, 0, sizeof(*r));
}

void sync_report_release(struct sync_report *r)
{
	if (!r) {
		return;
	}
	for (size_t i = 0; i < r->nfailures; i++) {
		free(r->failures[i].path);
		free(r->failures[i].error);
	}
	free(r->failures);
	sync_report_init(r);
}

static void add_failure(struct sync_report *r, const char *path, const char *error)
{
	r->failed++;
	if (r->nfailures >= MAX_FAILURES_KEPT) {
		return;
	}
	r->failures = xrealloc(r->failures, (r->nfailures + 1) * sizeof(*r->failures));
	r->failures[r->nfailures].path = xstrdup(path);
	r->failures[r->nfailures].error = xstrdup(error && *error ? error : "failed");
	r->nfailures++;
}

/* A state-changing step is over; the crash tests stop us here. */
static void step(struct sync *s, const char *what)
{
	s->steps++;
	if (s->opts && s->opts->stop_after_step > 0 && s->steps == s->opts->stop_after_step) {
		log_warn("test: stopping after step %ld (%s)", s->steps, what);
		fflush(NULL);
		raise(SIGKILL);
	}
}

static struct sync_job *pending_find(struct sync *s, const char *rel)
{
	for (struct sync_job *j = s->pending; j; j = j->next) {
		if (strcmp(j->rel, rel) == 0) {
			return j;
		}
	}
	return NULL;
}

static void pending_remove(struct sync *s, struct sync_job *job)
{
	for (struct sync_job **p = &s->pending; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			return;
		}
	}
}

/*
 * The planner's view of the disk.  A file queued in this run counts as
 * there with its announced size (so a second asset with the same name is
 * de-duplicated as icloudpd would after the first download).  A file we
 * wrote and whose size is unchanged since is reported with the size iCloud
 * announced, so an EXIF edit of ours never causes a "-<size>" copy.
 */
static int stat_fn(void *ud, const char *rel, int64_t *size)
{
	struct sync *s = ud;
	struct sync_job *j = pending_find(s, rel);
	struct state_file f;
	struct stat st;
	char *abs;
	int rc;

	if (j) {
		*size = j->api_size;
		return 0;
	}
	{
		const struct planned *p = planned_find(&s->planned, rel);

		if (p) {
			*size = p->size;
			return 0;
		}
	}
	abs = xasprintf("%s/%s", s->dir, rel);
	if (stat(abs, &st) != 0) {
		int e = errno;

		free(abs);
		if (e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG) {
			return ICPD_ENOTFOUND;
		}
		error_set(ICPD_ESTORAGE, "cannot stat '%s/%s': %s", s->dir, rel, strerror(e));
		return ICPD_ESTORAGE;
	}
	if (!S_ISREG(st.st_mode)) {
		/* a directory (or anything else) is not the file: icloudpd's isfile */
		free(abs);
		return ICPD_ENOTFOUND;
	}
	*size = (int64_t)st.st_size;
	state_file_init(&f);
	rc = state_file_get(s->st, abs, &f);
	if (rc == 0 && f.status == STATE_DONE && f.size == (int64_t)st.st_size && f.api_size > 0) {
		*size = f.api_size;
	} else if (rc && rc != ICPD_ENOTFOUND) {
		state_file_release(&f);
		free(abs);
		return rc;
	}
	state_file_release(&f);
	free(abs);
	return 0;
}

static void format_bytes(char *out, size_t n, double b)
{
	static const char *const units[] = { "B", "KB", "MB", "GB", "TB" };
	size_t u = 0;

	while (b >= 1000 && u + 1 < ARRAY_SIZE(units)) {
		b /= 1000;
		u++;
	}
	snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void progress(void *ctx)
{
	struct sync *s = ctx;
	struct download_stats ds;
	double now = mono_now(), el = now - s->t0;
	double rate;
	char got[32], rs[32], eta[32] = "";

	download_get_stats(s->dl, &ds);
	rate = el > 0 ? (double)ds.bytes / el : 0;
	format_bytes(got, sizeof(got), (double)ds.bytes);
	format_bytes(rs, sizeof(rs), rate);
	if (s->listing_done && rate > 0 && s->planned_bytes > ds.bytes) {
		long secs = (long)((double)(s->planned_bytes - ds.bytes) / rate);

		snprintf(eta, sizeof(eta), ", ETA %ld:%02ld", secs / 60, secs % 60);
	}
	if (s->opts && s->opts->progress_tty) {
		fprintf(stderr, "\r\033[K%lld listed, %lld saved, %lld failed, %ld running, %s at %s/s%s",
			(long long)s->rep->listed, (long long)s->rep->downloaded,
			(long long)s->rep->failed, ds.running, got, rs, eta);
		fflush(stderr);
		s->bar_drawn = true;
	} else if (now - s->last_line >= 30) {
		s->last_line = now;
		log_info("progress: %lld listed, %lld saved, %lld failed, %s at %s/s%s",
			(long long)s->rep->listed, (long long)s->rep->downloaded,
			(long long)s->rep->failed, got, rs, eta);
	}
}

static void job_free(struct sync_job *job)
{
	asset_release(&job->asset);
	free(job->rel);
	free(job->abs);
	free(job->url);
	free(job);
}

static int write_sidecar(struct sync *s, const char *abs, const struct asset *a)
{
	char *xmp = xasprintf("%s.xmp", abs);
	bool written = false;
	int rc = meta_xmp_write(s->tmpdir, xmp, a, (mode_t)s->cfg->file_mode,
		(mode_t)s->cfg->dir_mode, &written);

	free(xmp);
	if (rc == 0 && written) {
		s->rep->sidecars++;
		step(s, "sidecar");
	}
	return rc;
}

static int job_prepare(void *ctx, struct download_job *dj, const char *tmp_path, bool *changed)
{
	struct sync_job *job = (struct sync_job *)dj;
	struct sync *s = ctx;
	int rc = 0;

	if (job->flags & PLAN_F_EXIF) {
		const char *name = strrchr(job->rel, '/');

		*changed = true; /* it may rewrite the file */
		rc = meta_exif_apply(tmp_path, name ? name + 1 : job->rel, job->dl.mtime, NULL);
		if (rc) {
			return rc;
		}
	}
	if (job->flags & PLAN_F_XMP) {
		rc = write_sidecar(s, job->abs, &job->asset);
	}
	return rc;
}

static int job_refresh(void *ctx, struct download_job **djs, size_t n, bool *fresh)
{
	struct sync *s = ctx;
	const struct asset *assets[DOWNLOAD_REFRESH_BATCH] = { NULL };
	enum asset_size slots[DOWNLOAD_REFRESH_BATCH] = { SIZE_ORIGINAL };
	char *urls[DOWNLOAD_REFRESH_BATCH] = { NULL };
	int rc;

	if (!s->src->refresh) {
		return ICPD_ENOTIMPL;
	}
	if (n > DOWNLOAD_REFRESH_BATCH) {
		n = DOWNLOAD_REFRESH_BATCH;
	}
	for (size_t i = 0; i < n; i++) {
		struct sync_job *job = (struct sync_job *)djs[i];

		assets[i] = &job->asset;
		slots[i] = job->source;
	}
	rc = s->src->refresh(s->src->ctx, assets, slots, n, urls);
	for (size_t i = 0; i < n; i++) {
		struct sync_job *job = (struct sync_job *)djs[i];

		if (rc || !urls[i]) {
			free(urls[i]);
			continue;
		}
		free(job->url);
		job->url = urls[i];
		job->dl.url = urls[i];
		fresh[i] = true;
		log_debug("refreshed the URL of '%s'", job->rel);
	}
	return rc;
}

static void job_done(void *ctx, struct download_job *dj)
{
	struct sync_job *job = (struct sync_job *)dj;
	struct sync *s = ctx;
	struct state_file f;
	struct stat st;
	int rc;

	pending_remove(s, job);
	state_file_init(&f);
	f.path = job->abs;
	f.asset_id = job->asset.asset_id;
	f.master_id = job->asset.master_id;
	f.version = (int)job->source;
	f.api_size = job->api_size;
	f.mtime = job->dl.mtime;
	f.run_id = s->run.id;
	if (dj->err == 0) {
		step(s, "file committed");
		f.status = STATE_DONE;
		f.size = stat(job->abs, &st) == 0 ? (int64_t)st.st_size : job->api_size;
		memcpy(f.sha256, dj->sha256, sizeof(f.sha256));
		s->rep->downloaded++;
		s->rep->bytes += dj->received;
		if (log_enabled(LOG_DEBUG) || !(s->opts && s->opts->progress_tty)) {
			log_info("downloaded '%s'", job->rel);
		}
	} else {
		f.status = STATE_FAILED;
		f.size = 0;
		f.error = dj->error;
		s->rep->bytes += dj->received;
		if (dj->err != ICPD_EINTR) {
			add_failure(s->rep, job->abs, dj->error);
		}
		if (dj->err == ICPD_ESTORAGE && !s->fatal) {
			s->fatal = ICPD_ESTORAGE;
			error_set(ICPD_ESTORAGE, "%s", dj->error);
			error_hint("free space on the volume (or raise the quota) and run again; "
				   "nothing half-written was left in view");
		}
	}
	if (dj->err != ICPD_EINTR) {
		rc = state_file_put(s->st, &f);
		if (rc && !s->fatal) {
			s->fatal = rc;
		} else if (rc == 0) {
			step(s, "state recorded");
		}
	}
	job_free(job);
}

/*
 * A stable temp name, so a killed run resumes: the relative path, iCloud's
 * fileChecksum of the resource (a new version of the photo never resumes
 * the bytes of the old one) and the size.
 */
static void job_key(struct sync_job *job, const char *checksum)
{
	char *id = xasprintf("%s%c%s", job->rel, '\x1f', checksum ? checksum : "");

	snprintf(job->key, sizeof(job->key), "%016llx-%lld", (unsigned long long)hash_str(id),
		(long long)job->api_size);
	free(id);
}

static int record_present(struct sync *s, const struct asset *a, const struct plan_item *it)
{
	const char *rel = it->existing_path ? it->existing_path : it->path;
	char *abs = xasprintf("%s/%s", s->dir, rel);
	struct state_file f;
	struct stat st;
	int rc;

	state_file_init(&f);
	if (pending_find(s, rel)) {
		/* queued in this run under the same name and size: the job records it */
		free(abs);
		s->rep->present++;
		return 0;
	}
	rc = state_file_get(s->st, abs, &f);
	if (rc == 0 && (f.status == STATE_DONE || f.status == STATE_ADOPTED)) {
		s->rep->present++;
		state_file_release(&f);
		free(abs);
		return 0;
	}
	if (rc && rc != ICPD_ENOTFOUND) {
		free(abs);
		return rc;
	}
	state_file_release(&f);
	f.path = abs;
	f.asset_id = a->asset_id;
	f.master_id = a->master_id;
	f.version = (int)it->source;
	f.api_size = it->size;
	f.size = stat(abs, &st) == 0 ? (int64_t)st.st_size : it->size;
	f.mtime = it->mtime;
	f.status = STATE_ADOPTED;
	f.run_id = s->run.id;
	rc = state_file_put(s->st, &f);
	free(abs);
	if (rc == 0) {
		s->rep->adopted++;
		step(s, "adopted");
	}
	return rc;
}

static int handle_item(struct sync *s, const struct asset *a, const struct plan_item *it)
{
	struct sync_job *job;
	char *abs;

	s->rep->planned++;
	if (!naming_path_is_safe(it->path) ||
		(it->existing_path && !naming_path_is_safe(it->existing_path))) {
		/* the planner promises this; never trust a path built from iCloud data */
		add_failure(s->rep, it->path, "unsafe path refused");
		return 0;
	}
	if (it->decision == PLAN_SKIP_EXISTS) {
		int rc = 0;

		if (s->cfg->dry_run || s->cfg->only_print_filenames) {
			return 0;
		}
		rc = record_present(s, a, it);
		if (rc == 0 && (it->flags & PLAN_F_XMP)) {
			abs = xasprintf("%s/%s", s->dir, it->path);
			rc = write_sidecar(s, abs, a);
			free(abs);
		}
		return rc;
	}
	abs = xasprintf("%s/%s", s->dir, it->path);
	if (s->cfg->only_print_filenames || s->cfg->dry_run) {
		planned_add(&s->planned, it->path, it->size);
	}
	if (s->cfg->only_print_filenames) {
		printf("%s\n", abs);
		free(abs);
		return 0;
	}
	if (s->cfg->dry_run) {
		log_info("[dry run] would download '%s' (%lld bytes)", abs, (long long)it->size);
		free(abs);
		return 0;
	}
	if (!it->url) {
		add_failure(s->rep, abs, "no download URL in the listing");
		free(abs);
		return 0;
	}
	job = xcalloc(1, sizeof(*job));
	job->s = s;
	asset_copy(&job->asset, a);
	job->source = it->source;
	job->flags = it->flags;
	job->rel = xstrdup(it->path);
	job->abs = abs;
	job->url = xstrdup(it->url);
	job->api_size = it->size;
	job_key(job, it->checksum);
	job->dl.url = job->url;
	job->dl.size = it->size;
	job->dl.path = job->abs;
	job->dl.key = job->key;
	job->dl.mtime = it->mtime;
	job->dl.listed_at = mono_now();
	job->next = s->pending;
	s->pending = job;
	s->planned_bytes += it->size;
	download_add(s->dl, &job->dl);
	return 0;
}

/* ---- moving downloaded assets to Recently Deleted (cloudkit-photos.md §9.1) ---- */

static bool trash_enabled(const struct config *cfg)
{
	return (cfg->delete_after_download || cfg->keep_icloud_recent_days >= 0) &&
	       !cfg->only_print_filenames;
}

bool sync_trash_wanted(const struct config *cfg, const struct asset *a, bool downloading,
	time_t now)
{
	if (cfg->delete_after_download && downloading) {
		return true;
	}
	if (cfg->keep_icloud_recent_days >= 0) {
		/* icloudpd takes 1970 for a missing assetDate (and so deletes);
		 * we fall back to addedDate and otherwise keep the asset */
		int64_t created = a->asset_date != INT64_MIN ? a->asset_date : a->added_date;
		int64_t diff, days;

		if (created == INT64_MIN) {
			return false;
		}
		/* whole days, rounded down like Python's timedelta.days */
		diff = (int64_t)now * 1000 - created;
		days = diff >= 0 ? diff / 86400000 : -((-diff + 86399999) / 86400000);
		return days >= cfg->keep_icloud_recent_days;
	}
	return false;
}

static void trash_cand_release(struct trash_cand *c)
{
	for (size_t i = 0; i < c->nfiles; i++) {
		free(c->files[i].abs);
	}
	free(c->files);
	free(c->asset_id);
	free(c->change_tag);
	free(c->label);
}

static void trash_clear(struct sync *s)
{
	for (size_t i = 0; i < s->ntrash; i++) {
		trash_cand_release(&s->trash[i]);
	}
	free(s->trash);
	s->trash = NULL;
	s->ntrash = s->trash_cap = 0;
}

/* After the asset's plan items were handled without a refusal: note it
 * when it is due for deletion (a dry run just says so). */
static void trash_note(struct sync *s, const struct asset *a, const struct plan_result *pr)
{
	struct trash_cand *c;
	bool downloading = false;

	if (!a->asset_id || pr->n == 0) {
		return;
	}
	for (size_t i = 0; i < pr->n; i++) {
		downloading |= pr->items[i].decision != PLAN_SKIP_EXISTS;
	}
	if (!sync_trash_wanted(s->cfg, a, downloading, s->now)) {
		return;
	}
	if (s->cfg->dry_run) {
		log_info("[dry run] would move '%s' (%s) to Recently Deleted in iCloud",
			pr->items[0].path, a->asset_id);
		s->rep->trashed++;
		return;
	}
	if (s->ntrash == s->trash_cap) {
		s->trash_cap = s->trash_cap ? s->trash_cap * 2 : 64;
		s->trash = xrealloc(s->trash, s->trash_cap * sizeof(*s->trash));
	}
	c = &s->trash[s->ntrash++];
	memset(c, 0, sizeof(*c));
	c->asset_id = xstrdup(a->asset_id);
	c->change_tag = a->change_tag ? xstrdup(a->change_tag) : NULL;
	c->label = xstrdup(pr->items[0].path);
	c->files = xcalloc(pr->n, sizeof(*c->files));
	c->nfiles = pr->n;
	for (size_t i = 0; i < pr->n; i++) {
		const struct plan_item *it = &pr->items[i];
		bool fresh = it->decision != PLAN_SKIP_EXISTS;
		const char *rel = !fresh && it->existing_path ? it->existing_path : it->path;

		c->files[i].abs = xasprintf("%s/%s", s->dir, rel);
		c->files[i].size = it->size;
		c->files[i].fresh = fresh;
	}
}

/*
 * The file is ours and whole: recorded for this very asset (a file of the
 * same name and size that belongs to another asset does not count), done
 * in this run when this run downloaded it, in place as a regular file with
 * the size recorded, and that record is of the size iCloud announced.
 */
static int trash_file_ok(struct sync *s, const struct trash_cand *c, const struct trash_file *tf,
	bool *ok)
{
	struct state_file f;
	struct stat st;
	int rc;

	*ok = false;
	state_file_init(&f);
	rc = state_file_get(s->st, tf->abs, &f);
	if (rc == ICPD_ENOTFOUND) {
		return 0;
	}
	if (rc) {
		return rc;
	}
	*ok = f.asset_id && strcmp(f.asset_id, c->asset_id) == 0 &&
	      (f.status == STATE_DONE || (f.status == STATE_ADOPTED && !tf->fresh)) &&
	      (!tf->fresh || f.run_id == s->run.id) && (tf->size <= 0 || f.api_size == tf->size) &&
	      stat(tf->abs, &st) == 0 && S_ISREG(st.st_mode) && (int64_t)st.st_size == f.size;
	state_file_release(&f);
	return 0;
}

static int cmp_cand(const void *x, const void *y)
{
	const struct trash_cand *a = *(const struct trash_cand *const *)x;
	const struct trash_cand *b = *(const struct trash_cand *const *)y;

	return strcmp(a->asset_id, b->asset_id);
}

/* After the downloads: verify, then one pass of deletions in iCloud. */
static int trash_run(struct sync *s)
{
	struct trash_cand **ok = xcalloc(s->ntrash ? s->ntrash : 1, sizeof(struct trash_cand *));
	struct sync_trash_item *items = NULL;
	size_t n = 0, k = 0;
	int rc = 0;

	for (size_t i = 0; i < s->ntrash && rc == 0; i++) {
		struct trash_cand *c = &s->trash[i];
		bool good = true;

		for (size_t j = 0; j < c->nfiles && good && rc == 0; j++) {
			rc = trash_file_ok(s, c, &c->files[j], &good);
			if (rc == 0 && !good) {
				log_info("keeping '%s' in iCloud: '%s' is not verified on disk", c->label,
					c->files[j].abs);
			}
		}
		if (rc == 0 && good) {
			ok[n++] = c;
		} else if (rc == 0) {
			s->rep->trash_kept++;
		}
	}
	if (rc || n == 0) {
		goto done;
	}
	/* an asset in two listed albums is moved once */
	qsort(ok, n, sizeof(struct trash_cand *), cmp_cand);
	items = xcalloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		if (k && strcmp(items[k - 1].asset_id, ok[i]->asset_id) == 0) {
			continue;
		}
		ok[k] = ok[i];
		items[k].asset_id = ok[i]->asset_id;
		items[k].change_tag = ok[i]->change_tag;
		items[k].result = 1;
		k++;
	}
	if (!s->src->trash) {
		rc = error_set(ICPD_ENOTIMPL, "this source cannot delete in iCloud");
		goto done;
	}
	log_info("moving %zu assets to Recently Deleted in iCloud", k);
	rc = s->src->trash(s->src->ctx, items, k);
	for (size_t i = 0; i < k; i++) {
		if (items[i].result == 0) {
			s->rep->trashed++;
			log_info("moved '%s' (%s) to Recently Deleted in iCloud", ok[i]->label,
				ok[i]->asset_id);
		} else if (items[i].result < 0) {
			s->rep->trash_failed++;
			log_warn("could not move '%s' (%s) to Recently Deleted: %s", ok[i]->label,
				ok[i]->asset_id, items[i].why[0] ? items[i].why : "refused");
		}
	}
done:
	free(items);
	free(ok);
	return rc;
}

int sync_parse_rate(const char *str, int64_t *out)
{
	char *end = NULL;
	double v;
	double mult = 1;

	*out = 0;
	if (!str || !*str) {
		return 0;
	}
	errno = 0;
	v = strtod(str, &end);
	if (errno || end == str || v < 0) {
		goto bad;
	}
	switch (tolower((unsigned char)*end)) {
	case '\0':
		break;
	case 'k':
		mult = 1e3;
		end++;
		break;
	case 'm':
		mult = 1e6;
		end++;
		break;
	case 'g':
		mult = 1e9;
		end++;
		break;
	default:
		goto bad;
	}
	if (*end == 'b' || *end == 'B') {
		end++;
	}
	if (strcmp(end, "") != 0 && strcmp(end, "/s") != 0) {
		goto bad;
	}
	*out = (int64_t)(v * mult);
	return 0;
bad:
	error_set(ICPD_EUSAGE, "bad --bandwidth-limit '%s'", str);
	error_hint("give bytes per second, e.g. 500k, 10M or 1G");
	return ICPD_EUSAGE;
}

static void summary(struct sync *s)
{
	char got[32];

	if (s->bar_drawn) {
		fprintf(stderr, "\r\033[K");
	}
	format_bytes(got, sizeof(got), (double)s->rep->bytes);
	log_info("%s: %lld assets listed, %lld files downloaded (%s), %lld adopted, %lld already "
		 "present, %lld failed, in %.1f s",
		s->cfg->dry_run ? "dry run" : "sync", (long long)s->rep->listed,
		(long long)s->rep->downloaded, got, (long long)s->rep->adopted,
		(long long)s->rep->present, (long long)s->rep->failed, s->rep->seconds);
	if (!s->cfg->dry_run && (s->rep->trashed || s->rep->trash_kept || s->rep->trash_failed)) {
		log_info("iCloud: %lld assets moved to Recently Deleted, %lld kept (not verified "
			 "locally), %lld refused", (long long)s->rep->trashed,
			(long long)s->rep->trash_kept, (long long)s->rep->trash_failed);
	}
	for (size_t i = 0; i < s->rep->nfailures && i < 20; i++) {
		log_warn("failed: '%s': %s", s->rep->failures[i].path, s->rep->failures[i].error);
	}
}

/*
 * One icpd at a time per tree: two runs with different cookie directories
 * (so different session locks) would otherwise share the temp names of the
 * hidden temp folder and write into each other's files.  flock() on the
 * temp folder itself (no lock file to leave behind); wait up to
 * TREE_LOCK_WAIT seconds, then give up with a clear message.  A filesystem
 * without flock on directories (some network mounts) runs unlocked, with a
 * debug line.
 */
#define TREE_LOCK_WAIT 30

static int tree_lock(struct sync *s)
{
	int fd = open(s->tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		error_set(ICPD_ESTORAGE, "cannot open '%s': %s", s->tmpdir, strerror(errno));
		return ICPD_ESTORAGE;
	}
	for (int waited = 0;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			s->tree_lock = fd;
			return 0;
		}
		if (errno == EINTR) {
			continue;
		}
		if (errno != EWOULDBLOCK) {
			log_debug("cannot lock '%s' (%s); going on without the tree lock", s->tmpdir,
				strerror(errno));
			close(fd);
			return 0;
		}
		if (waited == 0) {
			log_info("another icpd is syncing into '%s'; waiting up to %d s", s->dir,
				TREE_LOCK_WAIT);
		}
		if (waited >= TREE_LOCK_WAIT) {
			close(fd);
			error_set(ICPD_ESTORAGE, "another icpd is syncing into '%s'", s->dir);
			error_hint("wait for it to finish; one icpd at a time per directory");
			return ICPD_ESTORAGE;
		}
		sleep(1);
		waited++;
	}
}

int sync_run(const struct config *cfg, struct state *st, const struct sync_source *src,
	const struct sync_options *opts, struct sync_report *rep)
{
	struct sync s = { 0 };
	struct plan_ctx pctx;
	struct plan_progress prog = PLAN_PROGRESS_INIT;
	struct download_options dopt = { 0 };
	int64_t rate = 0;
	int rc = 0, rc2;
	size_t n;

	memset(&pctx, 0, sizeof(pctx));
	sync_report_release(rep);
	s.tree_lock = -1;
	s.cfg = cfg;
	s.st = st;
	s.src = src;
	s.opts = opts;
	s.rep = rep;
	s.t0 = s.last_line = mono_now();
	s.now = time(NULL);
	if (!cfg->directory || !*cfg->directory) {
		error_set(ICPD_EUSAGE, "no directory to sync into");
		error_hint("give --directory DIR (-d DIR)");
		return rep->result = ICPD_EUSAGE;
	}
	s.dir = xstrdup(cfg->directory);
	n = strlen(s.dir);
	while (n > 1 && s.dir[n - 1] == '/') {
		s.dir[--n] = '\0';
	}
	rc = sync_parse_rate(cfg->bandwidth_limit, &rate);
	if (rc) {
		goto done;
	}
	if (!cfg->dry_run && !cfg->only_print_filenames) {
		rc = fsutil_mkdirs(s.dir, (mode_t)cfg->dir_mode);
		if (rc == 0) {
			rc = fsutil_tmpdir(s.dir, &s.tmpdir);
		}
		if (rc == 0) {
			rc = tree_lock(&s);
		}
		if (rc) {
			goto done;
		}
		fsutil_tmpdir_clean(s.tmpdir, TMP_MAX_AGE);
	}
	rc = plan_ctx_init(&pctx, cfg, stat_fn, &s, s.now);
	if (rc) {
		goto done;
	}
	dopt.tmpdir = s.tmpdir;
	dopt.ca_file = cfg->ca_file;
	dopt.user_agent = opts ? opts->user_agent : NULL;
	dopt.threads = cfg->threads;
	dopt.bandwidth = rate;
	dopt.max_retries = opts ? opts->max_retries : 0;
	dopt.backoff = opts ? opts->backoff : 0;
	dopt.url_max_age = opts ? opts->url_max_age : 0;
	dopt.file_mode = (mode_t)cfg->file_mode;
	dopt.dir_mode = (mode_t)cfg->dir_mode;
	dopt.ctx = &s;
	dopt.refresh_urls = job_refresh;
	dopt.prepare = job_prepare;
	dopt.done = job_done;
	rc = download_new(&s.dl, &dopt);
	if (rc) {
		goto done;
	}
	download_set_tick(s.dl, progress, &s);
	if (!cfg->dry_run && !cfg->only_print_filenames) {
		rc = state_run_begin(st, &s.run);
		if (rc) {
			goto done;
		}
	}

	for (;;) {
		struct asset a;
		struct plan_result pr;

		if (s.fatal) {
			break;
		}
		if (plan_progress_stop(&pctx, &prog)) {
			log_info("stopping the listing: --recent/--until-found reached");
			break;
		}
		asset_init(&a);
		rc = src->next(src->ctx, &a);
		if (rc == ICPD_ITEROVER) {
			rc = 0;
			asset_release(&a);
			break;
		}
		if (rc) {
			asset_release(&a);
			break;
		}
		rep->listed++;
		if (!cfg->dry_run && !cfg->only_print_filenames && a.asset_id) {
			rc = state_asset_seen(st, &a, s.run.id);
			if (rc) {
				asset_release(&a);
				break;
			}
		}
		rc = plan_asset(&pctx, &a, &pr);
		if (rc == ICPD_EASSET) {
			add_failure(rep, a.filename ? a.filename : (a.asset_id ? a.asset_id : "?"),
				error_message());
			rc = 0;
		} else if (rc == 0) {
			int64_t failed = rep->failed;

			plan_progress_update(&pctx, &prog, &pr);
			for (size_t i = 0; i < pr.n && rc == 0; i++) {
				rc = handle_item(&s, &a, &pr.items[i]);
			}
			if (rc == 0 && rep->failed == failed && trash_enabled(cfg)) {
				trash_note(&s, &a, &pr);
			}
		}
		plan_result_release(&pr);
		asset_release(&a);
		if (rc) {
			break;
		}
		/* keep enough queued that transfers go on while the listing waits for a page */
		rc = download_run(s.dl, cfg->threads * 16);
		if (rc) {
			break;
		}
	}
	s.listing_done = true;
	if (rc == 0 && !s.fatal) {
		rc = download_run(s.dl, 0);
	}
	if (rc == 0 && !s.fatal && s.ntrash) {
		rc = trash_run(&s);
	}
	if (rc == 0 && cfg->dry_run && rep->trashed) {
		log_info("dry run: %lld assets would be moved to Recently Deleted in iCloud",
			(long long)rep->trashed);
	}
done:
	/* pending jobs (after an error) end here, keeping their parts */
	download_free(s.dl);
	s.dl = NULL;
	plan_ctx_release(&pctx);
	if (!rc && s.fatal) {
		rc = s.fatal;
	}
	rep->seconds = mono_now() - s.t0;
	if (rc == 0 && rep->failed > 0) {
		long long tried = (long long)rep->failed + (long long)rep->downloaded;

		rc = error_set(ICPD_EPARTIAL, "%lld of %lld files failed; the rest were saved",
			(long long)rep->failed, tried);
		error_hint("run again; files that keep failing are listed above");
	} else if (rc == 0 && rep->trash_failed > 0) {
		rc = error_set(ICPD_EPARTIAL, "%lld assets could not be moved to Recently Deleted",
			(long long)rep->trash_failed);
		error_hint("they stay in iCloud; the reasons are listed above");
	}
	rep->result = rc;
	summary(&s);
	if (s.run.id) {
		s.run.finished = (int64_t)time(NULL);
		s.run.result = rc;
		s.run.listed = rep->listed;
		s.run.downloaded = rep->downloaded;
		s.run.adopted = rep->adopted;
		s.run.skipped = rep->present;
		s.run.failed = rep->failed;
		s.run.bytes = rep->bytes;
		rc2 = state_run_end(st, &s.run);
		if (rc2 && !rc) {
			rc = rep->result = rc2;
		}
	}
	planned_clear(&s.planned);
	trash_clear(&s);
	if (s.tree_lock >= 0) {
		close(s.tree_lock); /* drops the flock */
	}
	free(s.tmpdir);
	free(s.dir);
	return rc;
}

static int delete_recorded(struct sync *s, const char *rel)
{
	char *abs = xasprintf("%s/%s", s->dir, rel);
	char *xmp = xasprintf("%s.xmp", abs);
	struct state_file f;
	struct stat st;
	int rc;

	state_file_init(&f);
	rc = state_file_get(s->st, abs, &f);
	if (rc == ICPD_ENOTFOUND) {
		log_info("not deleting '%s': icpd did not record it", abs);
		rc = 0;
		goto done;
	}
	if (rc) {
		goto done;
	}
	if (f.status == STATE_FAILED || stat(abs, &st) != 0 || (int64_t)st.st_size != f.size) {
		log_info("not deleting '%s': it changed since icpd recorded it", abs);
		goto done;
	}
	if (s->cfg->dry_run) {
		log_info("[dry run] would delete '%s' (in Recently Deleted)", abs);
		goto done;
	}
	if (unlink(abs) != 0) {
		rc = error_set(ICPD_ESTORAGE, "cannot delete '%s': %s", abs, strerror(errno));
		goto done;
	}
	log_info("deleted '%s' (in Recently Deleted)", abs);
	if (meta_xmp_may_overwrite(xmp) && unlink(xmp) == 0) {
		log_info("deleted '%s'", xmp);
	}
	s->rep->deleted++;
	rc = state_file_delete(s->st, abs);
done:
	state_file_release(&f);
	free(xmp);
	free(abs);
	return rc;
}

int sync_auto_delete(const struct config *cfg, struct state *st, const struct sync_source *deleted,
	struct sync_report *rep)
{
	struct sync s = { 0 };
	struct plan_ctx pctx;
	size_t n;
	int rc;

	memset(&pctx, 0, sizeof(pctx));
	s.cfg = cfg;
	s.st = st;
	s.rep = rep;
	s.dir = xstrdup(cfg->directory);
	n = strlen(s.dir);
	while (n > 1 && s.dir[n - 1] == '/') {
		s.dir[--n] = '\0';
	}
	rc = plan_ctx_init(&pctx, cfg, stat_fn, &s, time(NULL));
	while (rc == 0) {
		struct asset a;
		struct plan_result pr;

		asset_init(&a);
		rc = deleted->next(deleted->ctx, &a);
		if (rc) {
			asset_release(&a);
			break;
		}
		/* plan it as the live asset it was */
		a.deleted = false;
		a.purged = false;
		a.hidden = false;
		rc = plan_asset(&pctx, &a, &pr);
		if (rc == ICPD_EASSET) {
			rc = 0;
		}
		for (size_t i = 0; rc == 0 && i < pr.n; i++) {
			if (pr.items[i].decision == PLAN_SKIP_EXISTS) {
				rc = delete_recorded(&s, pr.items[i].existing_path ?
								pr.items[i].existing_path : pr.items[i].path);
			}
		}
		plan_result_release(&pr);
		asset_release(&a);
	}
	if (rc == ICPD_ITEROVER) {
		rc = 0;
	}
	plan_ctx_release(&pctx);
	free(s.dir);
	return rc;
}

static void json_str(struct buf *b, const char *s)
{
	int r = buf_adds(b, "\"");

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			r |= buf_addf(b, "\\%c", c);
		} else if (c < 0x20) {
			r |= buf_addf(b, "\\u%04x", c);
		} else {
			r |= buf_add(b, s, 1);
		}
	}
	r |= buf_adds(b, "\"");
	(void)r;
}

int sync_report_write_json(const struct sync_report *rep, const char *path)
{
	struct buf b = BUF_INIT;
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int r, rc;

	if (slash) {
		*slash = '\0';
	} else {
		free(dir);
		dir = xstrdup(".");
	}
	r = buf_addf(&b,
		"{\"version\": \"%s\", \"result\": \"%s\", \"exit_code\": %d, \"listed\": %lld, "
		"\"downloaded\": %lld, \"adopted\": %lld, \"present\": %lld, \"failed\": %lld, "
		"\"bytes\": %lld, \"sidecars\": %lld, \"deleted\": %lld, \"icloud_trashed\": %lld, "
		"\"icloud_trash_kept\": %lld, \"icloud_trash_failed\": %lld, \"seconds\": %.3f, "
		"\"failures\": [",
		ICPD_VERSION, rep->result ? error_name(rep->result) : "ok", exit_code(rep->result),
		(long long)rep->listed, (long long)rep->downloaded, (long long)rep->adopted,
		(long long)rep->present, (long long)rep->failed, (long long)rep->bytes,
		(long long)rep->sidecars, (long long)rep->deleted, (long long)rep->trashed,
		(long long)rep->trash_kept, (long long)rep->trash_failed, rep->seconds);
	for (size_t i = 0; i < rep->nfailures; i++) {
		r |= buf_adds(&b, i ? ", {\"path\": " : "{\"path\": ");
		json_str(&b, rep->failures[i].path);
		r |= buf_adds(&b, ", \"error\": ");
		json_str(&b, rep->failures[i].error);
		r |= buf_adds(&b, "}");
	}
	r |= buf_adds(&b, "]}\n");
	(void)r;
	/* the temp file sits beside the report: same filesystem */
	rc = fsutil_write_atomic(dir, path, b.data, b.len, 0644, 0755, (int64_t)time(NULL));
	free(dir);
	buf_release(&b);
	return rc;
}
