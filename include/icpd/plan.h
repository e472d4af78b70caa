/*
 * The planner: a pure function of (asset, what exists locally, config) →
 * the list of files to fetch for that asset, with icloudpd-compatible
 * relative paths (cloudkit-photos.md §6) and a decision per file.
 *
 * "Pure" means: no filesystem, network, clock or environment access of its
 * own.  What exists locally is asked through the injected stat_fn (the sync
 * engine answers from the filesystem, optionally helped by its state DB);
 * "now" (for --skip-created-before 30d) is passed in; the time zone is the
 * process TZ read by localtime_r (icloudpd uses the host zone too).
 *
 * Typical use by cmd_sync (per album / library listing):
 *
 *	struct plan_ctx ctx;
 *	struct plan_progress prog = PLAN_PROGRESS_INIT;
 *	if ((err = plan_ctx_init(&ctx, cfg, my_stat, my_ud, time(NULL))) < 0)
 *		goto done;                       // bad --folder-structure, bad date…
 *	while (cloudkit_query_next(&asset, it) == 0) {
 *		if (plan_progress_stop(&ctx, &prog))
 *			break;                       // --recent / --until-found reached
 *		struct plan_result r;
 *		err = plan_asset(&ctx, &asset, &r);  // 0, or <0 (stat_fn error, ICPD_EASSET)
 *		plan_progress_update(&ctx, &prog, &r);
 *		... queue r.items[i] with decision != PLAN_SKIP_EXISTS ...
 *		plan_result_release(&r);
 *	}
 *	plan_ctx_release(&ctx);
 */
#ifndef ICPD_PLAN_H
#define ICPD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "icpd/asset.h"
#include "icpd/config.h"

struct naming_folder; /* naming.h */

/*
 * What exists locally.  relpath is relative to --directory, '/'-separated,
 * never absolute, never containing a ".." component (borrowed for the call).
 * Return 0 and set *size when a regular file exists there, ICPD_ENOTFOUND
 * when nothing is there, any other negative ICPD_E* on error (that error is
 * returned by plan_asset, whose message the callback must have set).
 * A directory or other non-regular file at relpath, and ENOENT, ENOTDIR or
 * ENAMETOOLONG, should be reported as ICPD_ENOTFOUND (icloudpd uses
 * os.path.isfile).  The planner never asks about a component longer than
 * NAME_MAX.  May be called several times per file (primary name, legacy
 * "-original" name, dedup name).  A file planned for download earlier in
 * the run but not yet written must count as present with its expected size:
 * icloudpd works one asset after the other, so the second of two same-named
 * photos of one day sees the first (and gets the "-<size>" name when the
 * sizes differ, or is skipped when they are equal).
 */
typedef int (*plan_stat_fn)(void *ud, const char *relpath, int64_t *size);

/* Why an asset yields no files at all. */
enum plan_skip {
	PLAN_SKIP_NONE = 0,      /* items were planned (possibly all SKIP_EXISTS) */
	PLAN_SKIP_VIDEO,         /* --skip-videos and the asset is a movie */
	PLAN_SKIP_PHOTO,         /* --skip-photos and the asset is an image */
	PLAN_SKIP_CREATED_BEFORE,/* created before --skip-created-before */
	PLAN_SKIP_CREATED_AFTER, /* created after --skip-created-after */
	PLAN_SKIP_HIDDEN,        /* isHidden: icloudpd's listing never shows it */
	PLAN_SKIP_DELETED,       /* in Recently Deleted, or purged */
	PLAN_SKIP_NO_VERSION,    /* not even the original resource is present */
};

/* What to do with one file. */
enum plan_decision {
	PLAN_DOWNLOAD = 0,   /* nothing at path: fetch to path */
	PLAN_DOWNLOAD_DEDUP, /* a different-size file holds the primary name; fetch to
	                      * path, which is the "<stem>-<size><ext>" name (§6.7) */
	PLAN_SKIP_EXISTS,    /* already there (adopted); existing_path says where */
};

/* plan_item.flags */
#define PLAN_F_LIVE 0x1  /* the live-photo video of an image asset */
#define PLAN_F_XMP 0x2   /* --xmp-sidecar: write/refresh "<path>.xmp" (§8.1): every
                          * primary file, also SKIP_EXISTS ones; never live videos.
                          * The caller still honours --dry-run. */
#define PLAN_F_EXIF 0x4  /* --set-exif-datetime: a JPEG (file name ends .jpg/.jpeg,
                          * any case) downloaded in this run; the downloader still checks
                          * that DateTimeOriginal is missing before writing (§8.2).
                          * Never set on SKIP_EXISTS items. */

struct plan_item {
	enum asset_size slot;   /* the requested size this file stands for
	                         * (SIZE_ADJUSTED when the original stands in for a
	                         * missing edit; SIZE_LIVE_* for live videos) */
	enum asset_size source; /* the resource actually fetched: a->versions[source] */
	enum plan_decision decision;
	unsigned flags;         /* PLAN_F_* */
	char *path;             /* relative to --directory, '/'-separated: where the
	                         * file goes (DOWNLOAD*) or is taken to be (SKIP_EXISTS:
	                         * the primary name or the dedup name; the XMP sidecar
	                         * is path + ".xmp"); owned */
	char *existing_path;    /* SKIP_EXISTS: the file found (differs from path only
	                         * for the legacy "<stem>-original<ext>" form); NULL
	                         * otherwise; owned */
	char *url;              /* downloadURL as received (contains ${f}); owned */
	char *checksum;         /* fileChecksum of the source, for the temp name; owned,
	                         * may be NULL */
	int64_t size;           /* expected bytes (API size) */
	int64_t mtime;          /* floor(assetDate / 1000) seconds; 0 when absent */
};

struct plan_result {
	enum plan_skip skip;    /* PLAN_SKIP_NONE unless the asset was filtered */
	unsigned missing;       /* bit (1u << size) per requested size that the asset
	                         * lacks and that --force-size skipped (icloudpd logs
	                         * "<size> size does not exist for <name>. Skipping..."
	                         * and goes on with the other sizes and the live video) */
	struct plan_item *items;/* primary files in --size order, then the live video;
	                         * owned, free with plan_result_release */
	size_t n;
};

/* Built once per run from the config; read-only afterwards (plan_asset takes it const). */
struct plan_ctx {
	/* requested primary sizes, deduplicated, in --size order */
	enum asset_size sizes[5];
	size_t nsizes;
	bool force_size;
	enum asset_size live_size;   /* SIZE_LIVE_ORIGINAL / _MEDIUM / _THUMB */
	enum live_mov_policy live_policy;
	enum align_raw align_raw;
	enum file_match_policy match;
	bool keep_unicode;
	bool skip_videos, skip_photos, skip_live_photos;
	bool xmp_sidecar, set_exif;
	long recent;                 /* 0 = off */
	long until_found;            /* 0 = off */
	bool has_before, has_after;
	int64_t created_before;      /* seconds since epoch: skip when created < this */
	int64_t created_after;       /* seconds since epoch: skip when created > this */
	struct naming_folder *folder;/* compiled --folder-structure; owned */
	plan_stat_fn stat_fn;        /* borrowed */
	void *stat_ud;               /* borrowed */
};

/*
 * Fill ctx from cfg (borrowed only during the call).  NULL/empty
 * folder_structure means the default "{:%Y/%m/%d}"; no --size means
 * original.  now (seconds since epoch) anchors "Nd" dates.  Returns 0, or
 * ICPD_EUSAGE with a message naming the flag (bad --folder-structure,
 * --size, --skip-created-*).  Release with plan_ctx_release even on error.
 */
int plan_ctx_init(struct plan_ctx *ctx, const struct config *cfg, plan_stat_fn stat_fn,
	void *stat_ud, time_t now) __attribute__((warn_unused_result));
void plan_ctx_release(struct plan_ctx *ctx);

/*
 * Parse a --skip-created-* value: an ISO 8601 date or date-time
 * ("2023-01-31", "2023-01-31T10:00", "2023-01-31 10:00:00", optional
 * "Z"/"+HH:MM" offset; without one it is local time) or "<N>d" (N days
 * before now).  0 and *out seconds since epoch, or ICPD_EUSAGE.
 */
int plan_parse_date(const char *s, time_t now, int64_t *out) __attribute__((warn_unused_result));

/*
 * Plan one asset.  The asset's kind is taken from item_type and the file
 * name (§4.3, naming_item_kind) when item_type is set, else from a->kind.
 * Paths: "<folder>/<name>" where folder comes from --folder-structure and
 * name is the icloudpd name made safe (naming.h); a primary file's name is
 * at most 251 bytes under --xmp-sidecar (so "<name>.xmp" fits), else 255.
 * Two sizes that resolve to the same path yield one item (icloudpd would
 * find the file it just wrote).  Fills *out (always initialised, release it with
 * plan_result_release even on error).  Returns 0, or the error of stat_fn,
 * or ICPD_EASSET when no safe path could be built for this asset (message
 * set; go on with the next asset).  Decisions follow §6.7: for each primary
 * file P: P exists (or, for the original, "<stem>-original<ext>") → under
 * name-size-dedup-with-suffix compare sizes: equal → SKIP_EXISTS, different →
 * D = "<P stem>-<size><ext>": D exists → SKIP_EXISTS at D, else
 * DOWNLOAD_DEDUP to D; under name-id7 existence alone → SKIP_EXISTS; nothing
 * → DOWNLOAD to P.  Live videos: same without the -original fallback.
 */
int plan_asset(const struct plan_ctx *ctx, const struct asset *a, struct plan_result *out)
	__attribute__((warn_unused_result));
void plan_result_release(struct plan_result *r);

/*
 * --auto-delete (§9.2): the relative paths where files of an asset that is
 * in Recently Deleted may lie, for the caller to remove if present (it must
 * still check that each is a regular file; honour --dry-run).  The union of
 *   - icloudpd's candidates: every version of the asset (after --align-raw)
 *     named with the default policy and without Unicode stripping, live
 *     videos without the -medium/-thumb suffix, adjusted/alternative only
 *     when --size asks for them (with the -adjusted/-alternative overrides),
 *     each also with ".xmp";
 *   - the primary and live-video paths plan_asset gives with the current
 *     options, so files named under name-id7 or with stripped Unicode are
 *     found too (icloudpd misses those), primaries also with ".xmp".
 * Neither includes "-<size>" dedup copies or legacy "-original" names (as
 * icloudpd).  The asset's hidden/deleted flags and the --skip-* filters are
 * ignored.  Every path is safe (naming_path_is_safe) and listed once.
 * *paths: array of n owned strings; free with plan_paths_free.
 */
void plan_delete_candidates(const struct plan_ctx *ctx, const struct asset *a, char ***paths,
	size_t *n);
void plan_paths_free(char **paths, size_t n);

/*
 * --recent / --until-found bookkeeping (§6.8, §7.1), one per album listing.
 * Before each asset call plan_progress_stop; after plan_asset call
 * plan_progress_update.  --recent counts every listed asset (also those
 * filtered by --skip-* flags, as icloudpd slices the listing first) except
 * hidden/deleted ones, which icloudpd's listing never returns.  --until-found
 * counts primary files found existing in a row (live videos do not count);
 * a planned download resets it.
 */
struct plan_progress {
	long assets;      /* assets counted for --recent */
	long found_in_row;/* consecutive existing primary files */
};
#define PLAN_PROGRESS_INIT { 0, 0 }
bool plan_progress_stop(const struct plan_ctx *ctx, const struct plan_progress *p);
void plan_progress_update(const struct plan_ctx *ctx, struct plan_progress *p,
	const struct plan_result *r);

/* Stable lowercase names for logs and reports: "original", "live-medium", ... */
const char *plan_size_name(enum asset_size s);
const char *plan_skip_name(enum plan_skip s);
const char *plan_decision_name(enum plan_decision d);

#endif
