/*
 * The planner: which files an asset yields and what to do with each
 * (cloudkit-photos.md §4.3, §6.3–§6.8, §8.1, §8.2).  Pure: the filesystem is
 * reached only through ctx->stat_fn.  See plan.h.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "icpd/error.h"
#include "icpd/naming.h"
#include "icpd/plan.h"
#include "icpd/util.h"
#include "icpd/banned.h"

/* 0001-01-01 and 10000-01-01 UTC: the range of Python's datetime. */
#define MIN_DATE_S (-62135596800LL)
#define MAX_DATE_S 253402300800LL

/* Room kept for the ".xmp" sidecar name next to a primary file. */
#define XMP_SUFFIX_LEN 4

static const char *const size_names[SIZE_COUNT] = {
	[SIZE_ORIGINAL] = "original",
	[SIZE_ALTERNATIVE] = "alternative",
	[SIZE_MEDIUM] = "medium",
	[SIZE_THUMB] = "thumb",
	[SIZE_ADJUSTED] = "adjusted",
	[SIZE_LIVE_ORIGINAL] = "live-original",
	[SIZE_LIVE_MEDIUM] = "live-medium",
	[SIZE_LIVE_THUMB] = "live-thumb",
};

const char *plan_size_name(enum asset_size s)
{
	return (unsigned)s < SIZE_COUNT ? size_names[s] : "?";
}

const char *plan_skip_name(enum plan_skip s)
{
	switch (s) {
	case PLAN_SKIP_NONE:
		return "none";
	case PLAN_SKIP_VIDEO:
		return "video";
	case PLAN_SKIP_PHOTO:
		return "photo";
	case PLAN_SKIP_CREATED_BEFORE:
		return "created-before";
	case PLAN_SKIP_CREATED_AFTER:
		return "created-after";
	case PLAN_SKIP_HIDDEN:
		return "hidden";
	case PLAN_SKIP_DELETED:
		return "deleted";
	case PLAN_SKIP_NO_VERSION:
		return "no-version";
	}
	return "?";
}

const char *plan_decision_name(enum plan_decision d)
{
	switch (d) {
	case PLAN_DOWNLOAD:
		return "download";
	case PLAN_DOWNLOAD_DEDUP:
		return "download-dedup";
	case PLAN_SKIP_EXISTS:
		return "exists";
	}
	return "?";
}

/* ---- dates ---- */

static int parse_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i])) {
			return -1;
		}
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int plan_parse_date(const char *s, time_t now, int64_t *out)
{
	const char *p = s;
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	bool has_off = false;
	long off = 0;
	time_t t;

	if (!s || !*s) {
		goto bad;
	}
	/* "<N>d": N days before now (icloudpd: a timedelta) */
	{
		size_t n = strspn(s, "0123456789");
		long days = 0;

		for (size_t i = 0; i < n && n <= 9; i++) {
			days = days * 10 + (s[i] - '0');
		}
		if (n > 0 && n <= 9 && (s[n] == 'd' || s[n] == 'D') && s[n + 1] == '\0') {
			*out = (int64_t)now - (int64_t)days * 86400;
			return 0;
		}
	}
	if (parse_digits(&p, 4, &y) < 0 || *p++ != '-' || parse_digits(&p, 2, &mo) < 0 ||
		*p++ != '-' || parse_digits(&p, 2, &d) < 0) {
		goto bad;
	}
	if (*p == 'T' || *p == ' ') {
		p++;
		if (parse_digits(&p, 2, &h) < 0) {
			goto bad;
		}
		if (*p == ':') {
			p++;
			if (parse_digits(&p, 2, &mi) < 0) {
				goto bad;
			}
			if (*p == ':') {
				p++;
				if (parse_digits(&p, 2, &sec) < 0) {
					goto bad;
				}
				if (*p == '.' || *p == ',') {
					p++;
					if (!isdigit((unsigned char)*p)) {
						goto bad;
					}
					while (isdigit((unsigned char)*p)) {
						p++;
					}
				}
			}
		}
		if (*p == 'Z' || *p == 'z') {
			has_off = true;
			p++;
		} else if (*p == '+' || *p == '-') {
			int oh, om = 0;
			int sign = *p == '-' ? -1 : 1;

			p++;
			if (parse_digits(&p, 2, &oh) < 0) {
				goto bad;
			}
			if (*p == ':') {
				p++;
			}
			if (isdigit((unsigned char)*p) && parse_digits(&p, 2, &om) < 0) {
				goto bad;
			}
			if (oh > 23 || om > 59) {
				goto bad;
			}
			has_off = true;
			off = sign * (oh * 3600L + om * 60L);
		}
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) {
		goto bad;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	tm.tm_isdst = -1;
	if (has_off) {
		t = timegm(&tm);
		*out = (int64_t)t - off;
	} else {
		/* naive: local time, as icloudpd attaches the local zone */
		t = mktime(&tm);
		*out = (int64_t)t;
	}
	/* reject 2023-02-31 and friends: mktime/timegm normalise them */
	if (tm.tm_mday != d || tm.tm_mon != mo - 1) {
		goto bad;
	}
	return 0;
bad:
	return error_set(ICPD_EUSAGE, "bad date '%s': expected an ISO date (2023-01-31) or "
		"a number of days (30d)", s ? s : "");
}

/* ---- context ---- */

static int size_from_name(const char *s, enum asset_size *out)
{
	static const struct {
		const char *name;
		enum asset_size size;
	} map[] = {
		{ "adjusted", SIZE_ADJUSTED },
		{ "alternative", SIZE_ALTERNATIVE },
		{ "medium", SIZE_MEDIUM },
		{ "original", SIZE_ORIGINAL },
		{ "thumb", SIZE_THUMB },
	};

	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		if (strcmp(map[i].name, s) == 0) {
			*out = map[i].size;
			return 0;
		}
	}
	return -1;
}

int plan_ctx_init(struct plan_ctx *ctx, const struct config *cfg, plan_stat_fn stat_fn,
	void *stat_ud, time_t now)
{
	int err;
	char *probe = NULL;

	memset(ctx, 0, sizeof(*ctx));
	ctx->stat_fn = stat_fn;
	ctx->stat_ud = stat_ud;
	for (size_t i = 0; i < cfg->sizes.n; i++) {
		enum asset_size s;
		bool dup = false;

		if (size_from_name(cfg->sizes.items[i], &s) < 0) {
			return error_set(ICPD_EUSAGE, "bad --size '%s': expected original, medium, "
				"thumb, adjusted or alternative", cfg->sizes.items[i]);
		}
		for (size_t j = 0; j < ctx->nsizes; j++) {
			dup |= ctx->sizes[j] == s;
		}
		if (!dup) {
			ctx->sizes[ctx->nsizes++] = s;
		}
	}
	if (ctx->nsizes == 0) {
		ctx->sizes[ctx->nsizes++] = SIZE_ORIGINAL;
	}
	ctx->force_size = cfg->force_size;
	switch (cfg->live_photo_size) {
	case LIVE_SIZE_MEDIUM:
		ctx->live_size = SIZE_LIVE_MEDIUM;
		break;
	case LIVE_SIZE_THUMB:
		ctx->live_size = SIZE_LIVE_THUMB;
		break;
	default:
		ctx->live_size = SIZE_LIVE_ORIGINAL;
		break;
	}
	ctx->live_policy = cfg->live_photo_mov_filename_policy;
	ctx->align_raw = cfg->align_raw;
	ctx->match = cfg->file_match_policy;
	ctx->keep_unicode = cfg->keep_unicode_in_filenames;
	ctx->skip_videos = cfg->skip_videos;
	ctx->skip_photos = cfg->skip_photos;
	ctx->skip_live_photos = cfg->skip_live_photos;
	ctx->xmp_sidecar = cfg->xmp_sidecar;
	ctx->set_exif = cfg->set_exif_datetime;
	ctx->recent = cfg->recent > 0 ? cfg->recent : 0;
	ctx->until_found = cfg->until_found > 0 ? cfg->until_found : 0;
	if (cfg->skip_created_before && *cfg->skip_created_before) {
		if ((err = plan_parse_date(cfg->skip_created_before, now, &ctx->created_before)) < 0) {
			error_hint("check --skip-created-before");
			return err;
		}
		ctx->has_before = true;
	}
	if (cfg->skip_created_after && *cfg->skip_created_after) {
		if ((err = plan_parse_date(cfg->skip_created_after, now, &ctx->created_after)) < 0) {
			error_hint("check --skip-created-after");
			return err;
		}
		ctx->has_after = true;
	}
	err = naming_folder_compile(cfg->folder_structure && *cfg->folder_structure
			? cfg->folder_structure : NULL,
		cfg->use_os_locale, &ctx->folder);
	if (err < 0) {
		return err;
	}
	/* icloudpd validates the template by formatting it once. */
	err = naming_folder_format(ctx->folder, 1533021744816LL, &probe);
	free(probe);
	return err;
}

void plan_ctx_release(struct plan_ctx *ctx)
{
	if (!ctx) {
		return;
	}
	naming_folder_free(ctx->folder);
	ctx->folder = NULL;
}

/* ---- one asset ---- */

void plan_result_release(struct plan_result *r)
{
	if (!r) {
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		free(r->items[i].path);
		free(r->items[i].existing_path);
		free(r->items[i].url);
		free(r->items[i].checksum);
	}
	free(r->items);
	r->items = NULL;
	r->n = 0;
}

/* A version as icloudpd's disambiguate step sees it: which resource, under
 * which file name. */
struct ver {
	bool present;
	enum asset_size source;
	char *name; /* owned */
};

static bool version_usable(const struct asset_version *v)
{
	return v->present && v->url && *v->url;
}

static char *join(const char *folder, const char *name)
{
	return *folder ? xasprintf("%s/%s", folder, name) : xstrdup(name);
}

/* Ask stat_fn; 1 = regular file there (size set), 0 = nothing, <0 error. */
static int exists(const struct plan_ctx *ctx, const char *rel, int64_t *size)
{
	int err;
	const char *last = strrchr(rel, '/');

	/* a name the filesystem cannot hold cannot exist */
	if (strlen(last ? last + 1 : rel) > NAMING_NAME_MAX) {
		return 0;
	}
	*size = -1;
	if (!ctx->stat_fn) {
		return 0;
	}
	err = ctx->stat_fn(ctx->stat_ud, rel, size);
	if (err == ICPD_ENOTFOUND) {
		return 0;
	}
	return err < 0 ? err : 1;
}

/* §6.7: the dedup name "-<size>" before the last '.' of the whole path,
 * re-cut so the file name stays within max bytes (keeping "-<size><ext>"). */
static char *dedup_path(const char *folder, const char *name, int64_t size, size_t max)
{
	char suffix[32];
	const char *dot = strrchr(name, '.');
	char *newname;
	char *path;

	snprintf(suffix, sizeof(suffix), "-%lld", (long long)size);
	if (!dot) {
		/* icloudpd splits the whole path: the suffix lands in a folder name
		 * that has a dot, or nowhere */
		char *p = join(folder, name);

		path = naming_insert_before_last_dot(p, suffix);
		free(p);
		return path;
	}
	{
		size_t stem = (size_t)(dot - name);
		size_t tail = strlen(suffix) + strlen(dot);

		if (stem + tail > max && tail < max) {
			size_t keep = max - tail;

			while (keep > 0 && ((unsigned char)name[keep] & 0xC0) == 0x80) {
				keep--;
			}
			stem = keep;
		}
		newname = xasprintf("%.*s%s%s", (int)stem, name, suffix, dot);
	}
	path = join(folder, newname);
	free(newname);
	return path;
}

static struct plan_item *add_item(struct plan_result *r)
{
	struct plan_item *it;

	r->items = xrealloc(r->items, (r->n + 1) * sizeof(*r->items));
	it = &r->items[r->n++];
	memset(it, 0, sizeof(*it));
	return it;
}

static bool path_taken(const struct plan_result *r, const char *path)
{
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->items[i].path, path) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * Decide one file: name is its (safe) file name, legacy enables the
 * "-original" lookup.  Fills a new item unless its path duplicates one
 * already planned for this asset.
 */
static int decide(const struct plan_ctx *ctx, const struct asset *a, struct plan_result *r,
	const char *folder, const char *name, enum asset_size slot, enum asset_size source,
	bool legacy, bool live, size_t max)
{
	const struct asset_version *v = &a->versions[source];
	char *path = join(folder, name);
	char *found = NULL;
	char *dedup = NULL;
	enum plan_decision decision = PLAN_DOWNLOAD;
	int64_t size = -1;
	int e;
	int err = 0;
	struct plan_item *it;

	if (!naming_path_is_safe(path)) {
		err = error_set(ICPD_EASSET, "cannot build a safe path for asset '%s' ('%s')",
			a->asset_id ? a->asset_id : "?", path);
		goto done;
	}
	if (path_taken(r, path)) {
		goto done;
	}
	if ((e = exists(ctx, path, &size)) < 0) {
		err = e;
		goto done;
	}
	if (e) {
		found = xstrdup(path);
	} else if (legacy) {
		char *legacy_name = naming_insert_suffix(name, "-original");
		char *lp = join(folder, legacy_name);

		free(legacy_name);
		if ((e = exists(ctx, lp, &size)) < 0) {
			free(lp);
			err = e;
			goto done;
		}
		if (e) {
			found = lp;
		} else {
			free(lp);
		}
	}
	if (found) {
		decision = PLAN_SKIP_EXISTS;
		if (ctx->match == MATCH_NAME_SIZE_DEDUP && size != v->size) {
			dedup = dedup_path(folder, name, v->size, max);
			free(found);
			found = NULL;
			if (!naming_path_is_safe(dedup)) {
				err = error_set(ICPD_EASSET,
					"cannot build a safe path for asset '%s' ('%s')",
					a->asset_id ? a->asset_id : "?", dedup);
				goto done;
			}
			if ((e = exists(ctx, dedup, &size)) < 0) {
				err = e;
				goto done;
			}
			if (e) {
				found = xstrdup(dedup);
			} else {
				decision = PLAN_DOWNLOAD_DEDUP;
			}
			free(path);
			path = dedup;
			dedup = NULL;
		}
	}
	it = add_item(r);
	it->slot = slot;
	it->source = source;
	it->decision = decision;
	it->path = path;
	path = NULL;
	it->existing_path = decision == PLAN_SKIP_EXISTS ? found : NULL;
	if (decision != PLAN_SKIP_EXISTS) {
		free(found);
	}
	found = NULL;
	it->url = xstrdup(v->url);
	it->checksum = v->checksum ? xstrdup(v->checksum) : NULL;
	it->size = v->size;
	if (a->asset_date != INT64_MIN) {
		it->mtime = a->asset_date / 1000 - (a->asset_date % 1000 < 0 ? 1 : 0);
		/* outside Python's years 1..9999 icloudpd uses the epoch */
		if (it->mtime < MIN_DATE_S || it->mtime >= MAX_DATE_S) {
			it->mtime = 0;
		}
	}
	if (live) {
		it->flags |= PLAN_F_LIVE;
	} else {
		size_t n = strlen(name);

		if (ctx->xmp_sidecar) {
			it->flags |= PLAN_F_XMP;
		}
		if (ctx->set_exif && decision != PLAN_SKIP_EXISTS &&
			((n >= 4 && strcasecmp(name + n - 4, ".jpg") == 0) ||
				(n >= 5 && strcasecmp(name + n - 5, ".jpeg") == 0))) {
			it->flags |= PLAN_F_EXIF;
		}
	}
done:
	free(path);
	free(found);
	free(dedup);
	return err;
}

/* The part of a version name's stem that was appended to the base name's
 * stem ("-thumb", "_HEVC-medium"), kept whole when the name is cut. */
static size_t appended_len(const char *base, const char *vname)
{
	size_t ob = naming_ext_offset(base);
	size_t ov = naming_ext_offset(vname);

	if (ov < ob || strncmp(base, vname, ob) != 0) {
		return 0;
	}
	return ov - ob;
}

static bool wants(const struct plan_ctx *ctx, enum asset_size s)
{
	for (size_t i = 0; i < ctx->nsizes; i++) {
		if (ctx->sizes[i] == s) {
			return true;
		}
	}
	return false;
}

static char *copy_name(const struct ver *v)
{
	return xstrdup(v->name);
}

static void set_suffixed(struct ver *v, const char *suffix)
{
	char *n = naming_insert_suffix(v->name, suffix);

	free(v->name);
	v->name = n;
}

/*
 * §4.3, §6.2–§6.4: the versions an asset offers, named from base (vers[],
 * after --align-raw), and icloudpd's disambiguated set for the requested
 * sizes (res[]).  Names are owned by the arrays.
 */
static void build_versions(const struct plan_ctx *ctx, const struct asset *a,
	enum asset_kind kind, const char *base, struct ver *vers, struct ver *res)
{
	static const enum asset_size primary[] = { SIZE_ORIGINAL, SIZE_ALTERNATIVE, SIZE_MEDIUM,
		SIZE_THUMB, SIZE_ADJUSTED };

	/* §4.3: the versions an asset offers (movies have no adjusted or
	 * alternative), named by §6.2. */
	for (size_t i = 0; i < ARRAY_SIZE(primary); i++) {
		enum asset_size s = primary[i];
		char *name;

		if (!version_usable(&a->versions[s])) {
			continue;
		}
		if (kind == ASSET_MOVIE && (s == SIZE_ADJUSTED || s == SIZE_ALTERNATIVE)) {
			continue;
		}
		name = naming_version(base, kind, a->versions[s].uti, ctx->live_policy);
		if (s == SIZE_MEDIUM || s == SIZE_THUMB) {
			char *with = naming_insert_suffix(name,
				s == SIZE_MEDIUM ? "-medium" : "-thumb");

			free(name);
			name = with;
		}
		vers[s].present = true;
		vers[s].source = s;
		vers[s].name = name;
	}
	/* §6.4 --align-raw: swap original and alternative */
	if (vers[SIZE_ORIGINAL].present && vers[SIZE_ALTERNATIVE].present) {
		const char *ouni = a->versions[SIZE_ORIGINAL].uti;
		const char *auni = a->versions[SIZE_ALTERNATIVE].uti;

		if ((ctx->align_raw == ALIGN_RAW_ORIGINAL && naming_uti_is_raw(auni)) ||
			(ctx->align_raw == ALIGN_RAW_ALTERNATIVE && naming_uti_is_raw(ouni))) {
			struct ver tmp = vers[SIZE_ORIGINAL];

			vers[SIZE_ORIGINAL] = vers[SIZE_ALTERNATIVE];
			vers[SIZE_ALTERNATIVE] = tmp;
		}
	}

	/* §6.3: icloudpd's disambiguate step */
	for (size_t i = 0; i < ctx->nsizes; i++) {
		enum asset_size s = ctx->sizes[i];

		if (vers[s].present) {
			res[s] = vers[s];
			res[s].name = copy_name(&vers[s]);
		}
	}
	if (wants(ctx, SIZE_ADJUSTED)) {
		if (!wants(ctx, SIZE_ORIGINAL)) {
			if (!res[SIZE_ADJUSTED].present && vers[SIZE_ORIGINAL].present) {
				res[SIZE_ADJUSTED] = vers[SIZE_ORIGINAL];
				res[SIZE_ADJUSTED].name = copy_name(&vers[SIZE_ORIGINAL]);
			}
		} else if (res[SIZE_ADJUSTED].present && res[SIZE_ORIGINAL].present &&
			strcmp(res[SIZE_ORIGINAL].name, res[SIZE_ADJUSTED].name) == 0) {
			set_suffixed(&res[SIZE_ADJUSTED], "-adjusted");
		}
	}
	if (wants(ctx, SIZE_ALTERNATIVE)) {
		if (!wants(ctx, SIZE_ORIGINAL) && !res[SIZE_ADJUSTED].present) {
			if (!res[SIZE_ALTERNATIVE].present && vers[SIZE_ORIGINAL].present) {
				res[SIZE_ALTERNATIVE] = vers[SIZE_ORIGINAL];
				res[SIZE_ALTERNATIVE].name = copy_name(&vers[SIZE_ORIGINAL]);
			}
		} else if (res[SIZE_ALTERNATIVE].present &&
			((res[SIZE_ADJUSTED].present &&
				 strcmp(res[SIZE_ADJUSTED].name, res[SIZE_ALTERNATIVE].name) == 0) ||
				(res[SIZE_ORIGINAL].present &&
					strcmp(res[SIZE_ORIGINAL].name, res[SIZE_ALTERNATIVE].name) ==
						0))) {
			set_suffixed(&res[SIZE_ALTERNATIVE], "-alternative");
		}
	}
	for (size_t i = 0; i < ctx->nsizes; i++) {
		enum asset_size s = ctx->sizes[i];

		if ((s == SIZE_MEDIUM || s == SIZE_THUMB) && !res[s].present &&
			!wants(ctx, SIZE_ORIGINAL) && !res[SIZE_ORIGINAL].present &&
			vers[SIZE_ORIGINAL].present) {
			res[SIZE_ORIGINAL] = vers[SIZE_ORIGINAL];
			res[SIZE_ORIGINAL].name = copy_name(&vers[SIZE_ORIGINAL]);
		}
	}
}

int plan_asset(const struct plan_ctx *ctx, const struct asset *a, struct plan_result *out)
{
	struct ver vers[SIZE_COUNT];
	struct ver res[SIZE_COUNT]; /* icloudpd's disambiguated "results" */
	enum asset_kind kind;
	char *base = NULL;
	char *folder = NULL;
	int64_t created;
	size_t max = NAMING_NAME_MAX - (ctx->xmp_sidecar ? XMP_SUFFIX_LEN : 0);
	int err = 0;

	memset(out, 0, sizeof(*out));
	memset(vers, 0, sizeof(vers));
	memset(res, 0, sizeof(res));

	/* The listing icloudpd uses never returns hidden or trashed assets. */
	if (a->deleted || a->purged) {
		out->skip = PLAN_SKIP_DELETED;
		return 0;
	}
	if (a->hidden) {
		out->skip = PLAN_SKIP_HIDDEN;
		return 0;
	}
	kind = a->item_type ? naming_item_kind(a->item_type, a->filename) : a->kind;
	if (ctx->skip_videos && kind == ASSET_MOVIE) {
		out->skip = PLAN_SKIP_VIDEO;
		return 0;
	}
	if (ctx->skip_photos && kind == ASSET_IMAGE) {
		out->skip = PLAN_SKIP_PHOTO;
		return 0;
	}
	/* compared in ms, as icloudpd compares datetimes with their fraction */
	created = a->asset_date == INT64_MIN ? 0 : a->asset_date;
	if (ctx->has_before && created < ctx->created_before * 1000) {
		out->skip = PLAN_SKIP_CREATED_BEFORE;
		return 0;
	}
	if (ctx->has_after && created > ctx->created_after * 1000) {
		out->skip = PLAN_SKIP_CREATED_AFTER;
		return 0;
	}

	if ((err = naming_folder_format(ctx->folder, a->asset_date, &folder)) < 0) {
		err = ICPD_EASSET;
		goto done;
	}
	base = naming_base(a, ctx->keep_unicode, ctx->match);

	build_versions(ctx, a, kind, base, vers, res);

	/* the download loop over the requested sizes */
	for (size_t i = 0; i < ctx->nsizes; i++) {
		enum asset_size s = ctx->sizes[i];
		const struct ver *v;
		char *safe;

		if (!res[s].present && s != SIZE_ORIGINAL) {
			if (ctx->force_size) {
				out->missing |= 1u << s;
				continue;
			}
			if (wants(ctx, SIZE_ORIGINAL)) {
				continue;
			}
			s = SIZE_ORIGINAL;
		}
		/* icloudpd would crash on a missing original here; we skip it */
		v = res[s].present ? &res[s] : &vers[s];
		if (!v->present) {
			continue; /* no original at all: PLAN_SKIP_NO_VERSION below */
		}
		safe = naming_safe_name_keep(v->name, max, appended_len(base, v->name));
		err = decide(ctx, a, out, folder, safe, s, v->source, s == SIZE_ORIGINAL, false, max);
		free(safe);
		if (err < 0) {
			goto done;
		}
	}

	/* §6.5 the live-photo video */
	if (!ctx->skip_live_photos && kind != ASSET_MOVIE &&
		version_usable(&a->versions[ctx->live_size])) {
		char *name = naming_version(base, kind, a->versions[ctx->live_size].uti,
			ctx->live_policy);
		char *safe;

		if (ctx->live_size != SIZE_LIVE_ORIGINAL) {
			char *with = naming_insert_suffix(name,
				ctx->live_size == SIZE_LIVE_MEDIUM ? "-medium" : "-thumb");

			free(name);
			name = with;
		}
		safe = naming_safe_name_keep(name, NAMING_NAME_MAX, appended_len(base, name));
		free(name);
		err = decide(ctx, a, out, folder, safe, ctx->live_size, ctx->live_size, false, true,
			NAMING_NAME_MAX);
		free(safe);
		if (err < 0) {
			goto done;
		}
	}
	if (out->n == 0 && out->missing == 0) {
		out->skip = PLAN_SKIP_NO_VERSION;
	}
done:
	for (int i = 0; i < SIZE_COUNT; i++) {
		free(vers[i].name);
		free(res[i].name);
	}
	free(base);
	free(folder);
	return err;
}

/* ---- --auto-delete ---- */

struct pathset {
	char **v;
	size_t n;
};

static void pathset_add(struct pathset *ps, char *path)
{
	if (!naming_path_is_safe(path)) {
		free(path);
		return;
	}
	for (size_t i = 0; i < ps->n; i++) {
		if (strcmp(ps->v[i], path) == 0) {
			free(path);
			return;
		}
	}
	ps->v = xrealloc(ps->v, (ps->n + 1) * sizeof(*ps->v));
	ps->v[ps->n++] = path;
}

/* name (unsafe, from base) → folder/safe-name, and its ".xmp" when xmp. */
static void add_name(struct pathset *ps, const char *folder, const char *base, const char *name,
	bool xmp)
{
	char *safe = naming_safe_name_keep(name, NAMING_NAME_MAX, appended_len(base, name));
	char *path = join(folder, safe);

	free(safe);
	if (xmp) {
		pathset_add(ps, xasprintf("%s.xmp", path));
	}
	pathset_add(ps, path);
}

void plan_delete_candidates(const struct plan_ctx *ctx, const struct asset *a, char ***paths,
	size_t *n)
{
	static const enum asset_size lives[] = { SIZE_LIVE_ORIGINAL, SIZE_LIVE_MEDIUM,
		SIZE_LIVE_THUMB };
	struct pathset ps = { NULL, 0 };
	struct ver vers[SIZE_COUNT];
	struct ver res[SIZE_COUNT];
	enum asset_kind kind = a->item_type ? naming_item_kind(a->item_type, a->filename) : a->kind;
	char *folder = NULL;
	char *base = NULL;

	*paths = NULL;
	*n = 0;
	memset(vers, 0, sizeof(vers));
	memset(res, 0, sizeof(res));
	if (naming_folder_format(ctx->folder, a->asset_date, &folder) < 0) {
		return;
	}
	/* icloudpd's names: default policy, Unicode kept */
	base = naming_base(a, true, MATCH_NAME_SIZE_DEDUP);
	build_versions(ctx, a, kind, base, vers, res);
	if (wants(ctx, SIZE_ADJUSTED) && res[SIZE_ADJUSTED].present) {
		add_name(&ps, folder, base, res[SIZE_ADJUSTED].name, true);
	}
	if (wants(ctx, SIZE_ALTERNATIVE) && res[SIZE_ALTERNATIVE].present) {
		add_name(&ps, folder, base, res[SIZE_ALTERNATIVE].name, true);
	}
	for (int s = 0; s < SIZE_COUNT; s++) {
		if (vers[s].present && s != SIZE_ADJUSTED && s != SIZE_ALTERNATIVE) {
			add_name(&ps, folder, base, vers[s].name, true);
		}
	}
	for (size_t i = 0; kind != ASSET_MOVIE && i < ARRAY_SIZE(lives); i++) {
		if (version_usable(&a->versions[lives[i]])) {
			char *name = naming_version(base, kind, a->versions[lives[i]].uti,
				ctx->live_policy);

			add_name(&ps, folder, base, name, true);
			free(name);
		}
	}
	/* ours: what plan_asset names with the current options */
	{
		struct plan_ctx c = *ctx;
		struct asset copy = *a;
		struct plan_result r;

		c.stat_fn = NULL;
		c.skip_videos = c.skip_photos = c.skip_live_photos = false;
		c.has_before = c.has_after = false;
		copy.hidden = copy.deleted = copy.purged = false;
		if (plan_asset(&c, &copy, &r) == 0) {
			for (size_t i = 0; i < r.n; i++) {
				if (!(r.items[i].flags & PLAN_F_LIVE)) {
					pathset_add(&ps, xasprintf("%s.xmp", r.items[i].path));
				}
				pathset_add(&ps, xstrdup(r.items[i].path));
			}
		}
		plan_result_release(&r);
	}
	for (int s = 0; s < SIZE_COUNT; s++) {
		free(vers[s].name);
		free(res[s].name);
	}
	free(base);
	free(folder);
	*paths = ps.v;
	*n = ps.n;
}

void plan_paths_free(char **paths, size_t n)
{
	for (size_t i = 0; paths && i < n; i++) {
		free(paths[i]);
	}
	free(paths);
}

/* ---- --recent / --until-found ---- */

bool plan_progress_stop(const struct plan_ctx *ctx, const struct plan_progress *p)
{
	if (ctx->recent > 0 && p->assets >= ctx->recent) {
		return true;
	}
	return ctx->until_found > 0 && p->found_in_row >= ctx->until_found;
}

void plan_progress_update(const struct plan_ctx *ctx, struct plan_progress *p,
	const struct plan_result *r)
{
	(void)ctx;
	if (r->skip == PLAN_SKIP_HIDDEN || r->skip == PLAN_SKIP_DELETED) {
		return;
	}
	p->assets++;
	for (size_t i = 0; i < r->n; i++) {
		if (r->items[i].flags & PLAN_F_LIVE) {
			continue;
		}
		if (r->items[i].decision == PLAN_SKIP_EXISTS) {
			p->found_in_row++;
		} else {
			p->found_in_row = 0;
		}
	}
}
