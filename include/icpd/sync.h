/*
 * The sync engine: listing → plan → download → commit → state, for one
 * library listing.  It knows nothing of sign-in or CloudKit: assets come
 * from a struct sync_source, so the engine runs the same against iCloud,
 * the fake, or a unit test's hand-made assets.
 */
#ifndef ICPD_SYNC_H
#define ICPD_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "icpd/asset.h"

struct config;
struct state;

/* One asset to move to Recently Deleted in iCloud (sync_source.trash). */
struct sync_trash_item {
	const char *asset_id;    /* CPLAsset recordName; borrowed */
	const char *change_tag;  /* recordChangeTag from the listing; borrowed, may be NULL */
	int result;              /* out: 0 moved, ICPD_EASSET refused (why says why) */
	char why[120];
};

struct sync_source {
	/* 0 with *out filled (the engine releases it), ICPD_ITEROVER at the
	 * end, or an error (the run stops with it). */
	int (*next)(void *ctx, struct asset *out);
	/* Fresh downloadURLs (records/lookup) for n <= 100 versions:
	 * urls[i] = the URL of version slots[i] of assets[i] (borrowed), owned
	 * by the caller afterwards, or NULL when there is none (the asset is
	 * gone or changed).  0, or the error of the lookup.  May be NULL. */
	int (*refresh)(void *ctx, const struct asset *const *assets, const enum asset_size *slots,
		size_t n, char **urls);
	/* Move n assets to Recently Deleted (--delete-after-download,
	 * --keep-icloud-recent-days); each item's result is set.  Returns 0, or
	 * the error that stopped it (items not answered keep result 1).  May be
	 * NULL when neither option is on. */
	int (*trash)(void *ctx, struct sync_trash_item *items, size_t n);
	void *ctx;
};

struct sync_failure {
	char *path;   /* owned */
	char *error;  /* owned */
};

struct sync_report {
	int64_t listed;       /* assets from the source */
	int64_t planned;      /* files the plan wants (downloads + present) */
	int64_t downloaded;   /* files written */
	int64_t adopted;      /* found in place, first recorded now */
	int64_t present;      /* already recorded and in place */
	int64_t failed;       /* files that failed */
	int64_t bytes;        /* downloaded bytes */
	int64_t sidecars;     /* XMP sidecars written */
	int64_t deleted;      /* local files removed by --auto-delete */
	int64_t trashed;      /* assets moved to Recently Deleted in iCloud (dry run: would be) */
	int64_t trash_kept;   /* assets due for deletion but kept: a file not verified locally */
	int64_t trash_failed; /* assets iCloud refused to move (changed since listed, ...) */
	double seconds;
	struct sync_failure *failures; /* owned; up to 1000 kept */
	size_t nfailures;
	int result;           /* 0 or ICPD_E* of the run */
};

struct sync_options {
	const char *user_agent;      /* NULL = default */
	double backoff;              /* first retry delay (tests shorten it); 0 = 1 s */
	int max_retries;             /* 0 = 5 */
	double url_max_age;          /* seconds before a listed URL is refreshed; 0 = 3300
	                              * (tests shorten it; ICPD_TEST_URL_MAX_AGE_MS) */
	long stop_after_step;        /* > 0: SIGKILL ourselves after that many state-changing
	                              * steps (crash tests; ICPD_TEST_STOP_AFTER_STEP) */
	bool progress_tty;           /* draw a progress bar on stderr */
};

void sync_report_init(struct sync_report *r);
void sync_report_release(struct sync_report *r);

/*
 * Run one sync of cfg->directory from src, recording in st (open).
 * With cfg->delete_after_download or cfg->keep_icloud_recent_days >= 0,
 * after the last download the assets due for deletion (sync_trash_wanted)
 * whose every planned file is verified locally (recorded done in st for
 * this asset, in place, with the recorded size) go to src->trash, in one
 * pass so the listing's ranks never shift under it; a dry run only says
 * which would.
 * Returns 0, ICPD_EPARTIAL (some files failed, the rest saved; message
 * set), or the error that stopped the run (ICPD_ESTORAGE, ...).  rep is
 * filled either way.
 */
int sync_run(const struct config *cfg, struct state *st, const struct sync_source *src,
	const struct sync_options *opts, struct sync_report *rep) __attribute__((warn_unused_result));

/*
 * --auto-delete (cloudkit-photos.md §9.2): deleted is the listing of
 * Recently Deleted.  Each asset is planned as if it were live; a planned
 * file that is present, recorded in st, and still has the recorded size is
 * removed with its ".xmp" sidecar, and its row forgotten.  A file icpd
 * does not know, or one that changed since, is never removed.  Counts go
 * to rep->deleted.  cfg->dry_run only logs.
 */
int sync_auto_delete(const struct config *cfg, struct state *st, const struct sync_source *deleted,
	struct sync_report *rep) __attribute__((warn_unused_result));

/*
 * Is this listed asset due for deletion in iCloud?  downloading: the plan
 * downloads at least one of its files in this run.  --delete-after-download:
 * downloading.  --keep-icloud-recent-days N: created (assetDate, else
 * addedDate) at least N whole days before now, as icloudpd counts them.
 * Either option when both are given (icloudpd allows that only for N = 0).
 */
bool sync_trash_wanted(const struct config *cfg, const struct asset *a, bool downloading,
	time_t now);

/* Write rep as JSON to path (atomically). */
int sync_report_write_json(const struct sync_report *rep, const char *path)
	__attribute__((warn_unused_result));

/* Parse --bandwidth-limit: "500k", "10M", "1.5M", "2G" (per second), bytes
 * without a suffix.  ICPD_EUSAGE when malformed. */
int sync_parse_rate(const char *s, int64_t *out) __attribute__((warn_unused_result));

#endif
