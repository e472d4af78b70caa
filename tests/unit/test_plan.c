/*
 * plan: every worked example of cloudkit-photos.md §6.9 and the rules of
 * §4.3, §6.3–§6.8, §8.1, §8.2 through plan_asset, with an in-memory
 * "what exists locally".
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "icpd/asset.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/naming.h"
#include "icpd/plan.h"
#include "icpd/util.h"

#define DATE_7409 1533021744816LL /* 2018-07-31 07:22:24.816 UTC */
#define DATE_0512 1604451600000LL /* 2020-11-04 01:00:00 UTC */
#define MASTER_7409 "AY6c+BsE0jjaXx9tmVGJM1D2VcEO"
#define MASTER_0512 "AdEGM0sVpcQ1yXXRJ1ylUq6Bjb0V" /* base64 starts QWRFR00 */
#define MOV "com.apple.quicktime-movie"
#define JPEG "public.jpeg"
#define HEIC "public.heic"
#define CR2 "com.canon.cr2-raw-image"

/* ---- fake filesystem ---- */

struct fakefs {
	struct {
		char path[600];
		int64_t size;
	} e[16];
	size_t n;
	int calls;
	const char *fail_path; /* stat of this path fails with ICPD_ESTORAGE */
};

static struct fakefs fs;

static void fs_add(const char *path, int64_t size)
{
	ck_assert_uint_lt(fs.n, 16);
	snprintf(fs.e[fs.n].path, sizeof(fs.e[fs.n].path), "%s", path);
	fs.e[fs.n].size = size;
	fs.n++;
}

static int fake_stat(void *ud, const char *rel, int64_t *size)
{
	struct fakefs *f = ud;

	f->calls++;
	/* the planner never asks about a path outside --directory */
	ck_assert_msg(naming_path_is_safe(rel), "unsafe path asked: '%s'", rel);
	if (f->fail_path && strcmp(rel, f->fail_path) == 0) {
		return error_set(ICPD_ESTORAGE, "cannot stat '%s': Permission denied", rel);
	}
	for (size_t i = 0; i < f->n; i++) {
		if (strcmp(f->e[i].path, rel) == 0) {
			*size = f->e[i].size;
			return 0;
		}
	}
	return ICPD_ENOTFOUND;
}

/* ---- builders ---- */

static struct config cfg;
static struct plan_ctx ctx;
static struct plan_result res;
static struct asset a;

static void setup(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	memset(&fs, 0, sizeof(fs));
	memset(&res, 0, sizeof(res));
	memset(&ctx, 0, sizeof(ctx));
	config_init(&cfg);
	asset_init(&a);
}

static void teardown(void)
{
	plan_result_release(&res);
	plan_ctx_release(&ctx);
	config_release(&cfg);
	asset_release(&a);
}

static void mk(const char *master, const char *filename, const char *item_type, int64_t date)
{
	asset_release(&a);
	a.master_id = xstrdup(master);
	a.asset_id = xstrdup("F2A23C38-0020-42FE-A273-2923ADE3CAED");
	a.filename = filename ? xstrdup(filename) : NULL;
	a.item_type = item_type ? xstrdup(item_type) : NULL;
	a.kind = ASSET_UNKNOWN;
	a.asset_date = date;
}

static void ver(enum asset_size s, const char *uti, int64_t size)
{
	struct asset_version *v = &a.versions[s];

	free(v->url);
	free(v->uti);
	free(v->checksum);
	v->present = true;
	v->url = xasprintf("https://cvws.icloud-content.com/B/slot%d/${f}?o=x", (int)s);
	v->uti = uti ? xstrdup(uti) : NULL;
	v->size = size;
	v->checksum = xasprintf("CHK%d", (int)s);
}

/* The IMG_7409 live photo of icloudpd's tests. */
static void asset_7409(void)
{
	mk(MASTER_7409, "IMG_7409.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1884695);
	ver(SIZE_MEDIUM, JPEG, 160000);
	ver(SIZE_THUMB, JPEG, 20000);
	ver(SIZE_LIVE_ORIGINAL, MOV, 3294075);
	ver(SIZE_LIVE_MEDIUM, MOV, 2000000);
	ver(SIZE_LIVE_THUMB, MOV, 100000);
}

static void asset_0512(void)
{
	mk(MASTER_0512, "IMG_0512.HEIC", HEIC, DATE_0512);
	ver(SIZE_ORIGINAL, HEIC, 1700000);
	ver(SIZE_MEDIUM, JPEG, 150000);
	ver(SIZE_THUMB, JPEG, 15000);
	ver(SIZE_LIVE_ORIGINAL, MOV, 2500000);
	ver(SIZE_LIVE_MEDIUM, MOV, 900000);
}

static void sizes(const char *s1, const char *s2, const char *s3)
{
	strlist_clear(&cfg.sizes);
	if (s1) {
		strlist_add(&cfg.sizes, s1);
	}
	if (s2) {
		strlist_add(&cfg.sizes, s2);
	}
	if (s3) {
		strlist_add(&cfg.sizes, s3);
	}
}

static void folder_structure(const char *f)
{
	free(cfg.folder_structure);
	cfg.folder_structure = xstrdup(f);
}

static void init_ctx(void)
{
	int err;

	plan_ctx_release(&ctx);
	err = plan_ctx_init(&ctx, &cfg, fake_stat, &fs, (time_t)1700000000);
	ck_assert_msg(err == 0, "plan_ctx_init: %s", error_message());
}

static void run(void)
{
	int err;

	init_ctx();
	plan_result_release(&res);
	err = plan_asset(&ctx, &a, &res);
	ck_assert_msg(err == 0, "plan_asset: %s", error_message());
	for (size_t i = 0; i < res.n; i++) {
		ck_assert_msg(naming_path_is_safe(res.items[i].path), "unsafe '%s'",
			res.items[i].path);
	}
}

static void expect(size_t i, const char *path, enum plan_decision d)
{
	ck_assert_msg(i < res.n, "item %zu missing (%zu items)", i, res.n);
	ck_assert_str_eq(res.items[i].path, path);
	ck_assert_msg(res.items[i].decision == d, "item %zu '%s': decision %s, want %s", i, path,
		plan_decision_name(res.items[i].decision), plan_decision_name(d));
}

/* ---- §6.9 worked examples ---- */

START_TEST(test_default)
{
	asset_7409();
	run();
	ck_assert_uint_eq(res.n, 2);
	ck_assert_int_eq(res.skip, PLAN_SKIP_NONE);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].slot, SIZE_ORIGINAL);
	ck_assert_int_eq(res.items[0].source, SIZE_ORIGINAL);
	ck_assert_int_eq(res.items[0].size, 1884695);
	ck_assert_int_eq(res.items[0].mtime, 1533021744);
	ck_assert_str_eq(res.items[0].url, a.versions[SIZE_ORIGINAL].url);
	ck_assert_str_eq(res.items[0].checksum, "CHK0");
	ck_assert_uint_eq(res.items[0].flags, 0);
	ck_assert_ptr_null(res.items[0].existing_path);
	expect(1, "2018/07/31/IMG_7409.MOV", PLAN_DOWNLOAD);
	ck_assert_uint_eq(res.items[1].flags, PLAN_F_LIVE);
	ck_assert_int_eq(res.items[1].slot, SIZE_LIVE_ORIGINAL);
	ck_assert_int_eq(res.items[1].size, 3294075);
	/* one stat per file (no -original lookup for the video) plus the legacy
	 * "-original" lookup for the photo */
	ck_assert_int_eq(fs.calls, 3);
}
END_TEST

START_TEST(test_heic_live)
{
	asset_0512();
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2020/11/04/IMG_0512.HEIC", PLAN_DOWNLOAD);
	expect(1, "2020/11/04/IMG_0512_HEVC.MOV", PLAN_DOWNLOAD);
	/* --live-photo-mov-filename-policy original */
	cfg.live_photo_mov_filename_policy = LIVE_MOV_ORIGINAL;
	run();
	expect(1, "2020/11/04/IMG_0512.MOV", PLAN_DOWNLOAD);
}
END_TEST

START_TEST(test_id7)
{
	cfg.file_match_policy = MATCH_NAME_ID7;
	asset_0512();
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2020/11/04/IMG_0512_QWRFR00.HEIC", PLAN_DOWNLOAD);
	expect(1, "2020/11/04/IMG_0512_QWRFR00_HEVC.MOV", PLAN_DOWNLOAD);
	mk(MASTER_7409, "IMG_7409.CR2", CR2, DATE_7409);
	ver(SIZE_ORIGINAL, CR2, 25000000);
	run();
	ck_assert_uint_eq(res.n, 1);
	expect(0, "2018/07/31/IMG_7409_QVk2Yyt.CR2", PLAN_DOWNLOAD);
	/* id7 comes before the size suffix */
	asset_7409();
	sizes("thumb", NULL, NULL);
	cfg.live_photo_size = LIVE_SIZE_MEDIUM;
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2018/07/31/IMG_7409_QVk2Yyt-thumb.JPG", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/IMG_7409_QVk2Yyt-medium.MOV", PLAN_DOWNLOAD);
}
END_TEST

START_TEST(test_id7_exists_without_size_check)
{
	cfg.file_match_policy = MATCH_NAME_ID7;
	asset_7409();
	fs_add("2018/07/31/IMG_7409_QVk2Yyt.JPG", 1);
	fs_add("2018/07/31/IMG_7409_QVk2Yyt.MOV", 2);
	run();
	expect(0, "2018/07/31/IMG_7409_QVk2Yyt.JPG", PLAN_SKIP_EXISTS);
	expect(1, "2018/07/31/IMG_7409_QVk2Yyt.MOV", PLAN_SKIP_EXISTS);
}
END_TEST

START_TEST(test_original_and_thumb)
{
	asset_7409();
	sizes("original", "thumb", NULL);
	run();
	ck_assert_uint_eq(res.n, 3);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/IMG_7409-thumb.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[1].slot, SIZE_THUMB);
	ck_assert_int_eq(res.items[1].size, 20000);
	expect(2, "2018/07/31/IMG_7409.MOV", PLAN_DOWNLOAD);
	/* duplicates on the command line are dropped, order is kept */
	sizes("thumb", "original", "thumb");
	run();
	ck_assert_uint_eq(res.n, 3);
	expect(0, "2018/07/31/IMG_7409-thumb.JPG", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	/* medium of a HEIC is a JPEG */
	asset_0512();
	sizes("medium", NULL, NULL);
	run();
	expect(0, "2020/11/04/IMG_0512-medium.JPG", PLAN_DOWNLOAD);
}
END_TEST

START_TEST(test_live_photo_size)
{
	mk(MASTER_7409, "IMG_7400.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 100);
	ver(SIZE_LIVE_ORIGINAL, MOV, 200);
	ver(SIZE_LIVE_MEDIUM, MOV, 150);
	ver(SIZE_LIVE_THUMB, MOV, 50);
	cfg.live_photo_size = LIVE_SIZE_MEDIUM;
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2018/07/31/IMG_7400.JPG", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/IMG_7400-medium.MOV", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[1].slot, SIZE_LIVE_MEDIUM);
	ck_assert_int_eq(res.items[1].source, SIZE_LIVE_MEDIUM);
	ck_assert_int_eq(res.items[1].size, 150);
	cfg.live_photo_size = LIVE_SIZE_THUMB;
	run();
	expect(1, "2018/07/31/IMG_7400-thumb.MOV", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[1].size, 50);
	/* HEIC: the size suffix goes after _HEVC */
	asset_0512();
	cfg.live_photo_size = LIVE_SIZE_MEDIUM;
	run();
	expect(1, "2020/11/04/IMG_0512_HEVC-medium.MOV", PLAN_DOWNLOAD);
	/* no such live size: no video */
	cfg.live_photo_size = LIVE_SIZE_THUMB;
	run();
	ck_assert_uint_eq(res.n, 1);
}
END_TEST

START_TEST(test_collision_dedup)
{
	asset_7409();
	fs_add("2018/07/31/IMG_7409.JPG", 1000);
	fs_add("2018/07/31/IMG_7409.MOV", 2000);
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2018/07/31/IMG_7409-1884695.JPG", PLAN_DOWNLOAD_DEDUP);
	ck_assert_ptr_null(res.items[0].existing_path);
	expect(1, "2018/07/31/IMG_7409-3294075.MOV", PLAN_DOWNLOAD_DEDUP);
	/* once the dedup copies exist they are taken as they are (no size check) */
	fs_add("2018/07/31/IMG_7409-1884695.JPG", 7);
	fs_add("2018/07/31/IMG_7409-3294075.MOV", 8);
	run();
	expect(0, "2018/07/31/IMG_7409-1884695.JPG", PLAN_SKIP_EXISTS);
	ck_assert_str_eq(res.items[0].existing_path, "2018/07/31/IMG_7409-1884695.JPG");
	expect(1, "2018/07/31/IMG_7409-3294075.MOV", PLAN_SKIP_EXISTS);
}
END_TEST

START_TEST(test_same_size_is_adopted)
{
	asset_7409();
	fs_add("2018/07/31/IMG_7409.JPG", 1884695);
	fs_add("2018/07/31/IMG_7409.MOV", 3294075);
	run();
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_SKIP_EXISTS);
	ck_assert_str_eq(res.items[0].existing_path, "2018/07/31/IMG_7409.JPG");
	expect(1, "2018/07/31/IMG_7409.MOV", PLAN_SKIP_EXISTS);
}
END_TEST

START_TEST(test_legacy_original_name)
{
	mk(MASTER_7409, "IMG_7408.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1151066);
	ver(SIZE_THUMB, JPEG, 9000);
	ver(SIZE_LIVE_ORIGINAL, MOV, 500);
	fs_add("2018/07/31/IMG_7408-original.JPG", 1151066);
	fs_add("2018/07/31/IMG_7408-original.MOV", 500);
	fs_add("2018/07/31/IMG_7408-thumb-original.JPG", 9000);
	sizes("original", "thumb", NULL);
	run();
	ck_assert_uint_eq(res.n, 3);
	expect(0, "2018/07/31/IMG_7408.JPG", PLAN_SKIP_EXISTS);
	ck_assert_str_eq(res.items[0].existing_path, "2018/07/31/IMG_7408-original.JPG");
	/* only the original has the legacy form; not thumbs, not live videos */
	expect(1, "2018/07/31/IMG_7408-thumb.JPG", PLAN_DOWNLOAD);
	expect(2, "2018/07/31/IMG_7408.MOV", PLAN_DOWNLOAD);
	/* a legacy file of another size: dedup name built from the new name */
	asset_release(&a);
	mk(MASTER_7409, "IMG_7408.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1151067);
	sizes("original", NULL, NULL);
	run();
	expect(0, "2018/07/31/IMG_7408-1151067.JPG", PLAN_DOWNLOAD_DEDUP);
}
END_TEST

START_TEST(test_no_filename)
{
	mk(MASTER_7409, NULL, JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 10);
	ver(SIZE_LIVE_ORIGINAL, MOV, 20);
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2018/07/31/AY6c_BsE0jja.JPG", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/AY6c_BsE0jja.MOV", PLAN_DOWNLOAD);
	/* no itemType either: "unknown" extension replaced by the version's */
	mk("AZ/wAGT9P6jhr0NKCjLyh7KawNEx", NULL, NULL, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 10);
	run();
	expect(0, "2018/07/31/AZ_wAGT9P6jh.JPG", PLAN_DOWNLOAD);
}
END_TEST

START_TEST(test_folder_none_and_names)
{
	asset_7409();
	folder_structure("none");
	run();
	expect(0, "IMG_7409.JPG", PLAN_DOWNLOAD);
	expect(1, "IMG_7409.MOV", PLAN_DOWNLOAD);
	folder_structure("{:%Y/%B}");
	run();
	expect(0, "2018/July/IMG_7409.JPG", PLAN_DOWNLOAD);
	folder_structure("%Y-%m");
	run();
	expect(0, "2018-07/IMG_7409.JPG", PLAN_DOWNLOAD);
	/* host time zone */
	setenv("TZ", "America/Los_Angeles", 1);
	tzset();
	folder_structure("{:%Y/%m/%d}");
	run();
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD); /* 00:22 local */
	mk(MASTER_7409, "IMG_1.JPG", JPEG, DATE_0512);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "2020/11/03/IMG_1.JPG", PLAN_DOWNLOAD);
	/* missing assetDate: the epoch in local time, mtime 0 */
	mk(MASTER_7409, "IMG_2.JPG", JPEG, INT64_MIN);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "1969/12/31/IMG_2.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].mtime, 0);
	/* beyond Python's datetime (years 1..9999): the epoch, folder and mtime */
	mk(MASTER_7409, "IMG_4.JPG", JPEG, INT64_MIN + 1);
	ver(SIZE_ORIGINAL, JPEG, 1);
	setenv("TZ", "UTC", 1);
	tzset();
	run();
	expect(0, "1970/01/01/IMG_4.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].mtime, 0);
	mk(MASTER_7409, "IMG_5.JPG", JPEG, 253402300800000LL);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "1970/01/01/IMG_5.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].mtime, 0);
	mk(MASTER_7409, "IMG_6.JPG", JPEG, 253402300799000LL); /* 9999-12-31 23:59:59 */
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "9999/12/31/IMG_6.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].mtime, 253402300799LL);
	setenv("TZ", "America/Los_Angeles", 1);
	tzset();
	/* before 1970: mtime rounds down */
	mk(MASTER_7409, "IMG_3.JPG", JPEG, -1500);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	ck_assert_int_eq(res.items[0].mtime, -2);
}
END_TEST

/* ---- §6.3 size selection ---- */

START_TEST(test_adjusted)
{
	mk(MASTER_7409, "IMG_0001.HEIC", HEIC, DATE_7409);
	ver(SIZE_ORIGINAL, HEIC, 100);
	/* adjusted requested, none exists, original not requested: the original
	 * under the adjusted slot, original name */
	sizes("adjusted", NULL, NULL);
	run();
	ck_assert_uint_eq(res.n, 1);
	expect(0, "2018/07/31/IMG_0001.HEIC", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].slot, SIZE_ADJUSTED);
	ck_assert_int_eq(res.items[0].source, SIZE_ORIGINAL);
	/* both requested, no edit: just the original */
	sizes("original", "adjusted", NULL);
	run();
	ck_assert_uint_eq(res.n, 1);
	expect(0, "2018/07/31/IMG_0001.HEIC", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].slot, SIZE_ORIGINAL);
	/* HEIC edit of a HEIC: same name → -adjusted */
	ver(SIZE_ADJUSTED, HEIC, 120);
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2018/07/31/IMG_0001.HEIC", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/IMG_0001-adjusted.HEIC", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[1].source, SIZE_ADJUSTED);
	ck_assert_int_eq(res.items[1].size, 120);
	/* JPEG edit of a HEIC: different names, no suffix */
	ver(SIZE_ADJUSTED, JPEG, 130);
	run();
	expect(1, "2018/07/31/IMG_0001.JPG", PLAN_DOWNLOAD);
	/* adjusted alone with an edit: the edit under its own name */
	sizes("adjusted", NULL, NULL);
	run();
	ck_assert_uint_eq(res.n, 1);
	expect(0, "2018/07/31/IMG_0001.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].source, SIZE_ADJUSTED);
}
END_TEST

START_TEST(test_alternative)
{
	mk(MASTER_7409, "IMG_7409.CR2", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 100);
	ver(SIZE_ALTERNATIVE, CR2, 900);
	sizes("original", "alternative", NULL);
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/IMG_7409.CR2", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[1].source, SIZE_ALTERNATIVE);
	/* same name → -alternative */
	ver(SIZE_ALTERNATIVE, JPEG, 900);
	run();
	expect(1, "2018/07/31/IMG_7409-alternative.JPG", PLAN_DOWNLOAD);
	/* alternative requested, missing, original not requested: the original */
	mk(MASTER_7409, "IMG_7409.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 100);
	sizes("alternative", NULL, NULL);
	run();
	ck_assert_uint_eq(res.n, 1);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].slot, SIZE_ALTERNATIVE);
	ck_assert_int_eq(res.items[0].source, SIZE_ORIGINAL);
	/* missing alternative with original requested: nothing extra */
	sizes("original", "alternative", NULL);
	run();
	ck_assert_uint_eq(res.n, 1);
}
END_TEST

START_TEST(test_align_raw)
{
	/* §6.4: names follow each resource's UTI whichever slot it is in */
	mk(MASTER_7409, "IMG_7409.CR2", CR2, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 100);
	ver(SIZE_ALTERNATIVE, CR2, 900);
	sizes("original", NULL, NULL);
	cfg.align_raw = ALIGN_RAW_AS_IS;
	run();
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].size, 100);
	cfg.align_raw = ALIGN_RAW_ORIGINAL; /* the RAW becomes the original */
	run();
	expect(0, "2018/07/31/IMG_7409.CR2", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].slot, SIZE_ORIGINAL);
	ck_assert_int_eq(res.items[0].source, SIZE_ALTERNATIVE);
	ck_assert_int_eq(res.items[0].size, 900);
	cfg.align_raw = ALIGN_RAW_ALTERNATIVE; /* original is not RAW: no swap */
	run();
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	/* RAW in the original slot */
	ver(SIZE_ORIGINAL, CR2, 900);
	ver(SIZE_ALTERNATIVE, JPEG, 100);
	sizes("original", "alternative", NULL);
	cfg.align_raw = ALIGN_RAW_ALTERNATIVE;
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].source, SIZE_ALTERNATIVE);
	expect(1, "2018/07/31/IMG_7409.CR2", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[1].source, SIZE_ORIGINAL);
	cfg.align_raw = ALIGN_RAW_ORIGINAL; /* already RAW-original: no swap */
	run();
	expect(0, "2018/07/31/IMG_7409.CR2", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].source, SIZE_ORIGINAL);
}
END_TEST

START_TEST(test_missing_size_fallback)
{
	mk(MASTER_7409, "IMG_7409.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 100);
	/* medium missing, original not requested: the original, under its own name */
	sizes("medium", NULL, NULL);
	run();
	ck_assert_uint_eq(res.n, 1);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	ck_assert_int_eq(res.items[0].source, SIZE_ORIGINAL);
	ck_assert_uint_eq(res.missing, 0);
	/* both missing: one file, not two */
	sizes("medium", "thumb", NULL);
	run();
	ck_assert_uint_eq(res.n, 1);
	/* original also requested: the missing size is skipped silently */
	sizes("original", "medium", NULL);
	run();
	ck_assert_uint_eq(res.n, 1);
	ck_assert_uint_eq(res.missing, 0);
}
END_TEST

START_TEST(test_force_size)
{
	asset_7409();
	free(a.versions[SIZE_MEDIUM].url);
	a.versions[SIZE_MEDIUM].url = NULL;
	a.versions[SIZE_MEDIUM].present = false;
	cfg.force_size = true;
	sizes("medium", NULL, NULL);
	run();
	/* no primary file, the error is reported, the live video still comes */
	ck_assert_uint_eq(res.missing, 1u << SIZE_MEDIUM);
	ck_assert_uint_eq(res.n, 1);
	ck_assert(res.items[0].flags & PLAN_F_LIVE);
	sizes("original", "medium", "thumb");
	run();
	ck_assert_uint_eq(res.missing, 1u << SIZE_MEDIUM);
	ck_assert_uint_eq(res.n, 3);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/IMG_7409-thumb.JPG", PLAN_DOWNLOAD);
	/* adjusted is never forced: the original stands in (icloudpd clones it) */
	sizes("adjusted", NULL, NULL);
	run();
	ck_assert_uint_eq(res.missing, 0);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
}
END_TEST

/* ---- filters ---- */

START_TEST(test_movies)
{
	mk(MASTER_7409, "IMG_0001.MOV", MOV, DATE_7409);
	ver(SIZE_ORIGINAL, MOV, 5000);
	ver(SIZE_MEDIUM, MOV, 500);
	ver(SIZE_ADJUSTED, JPEG, 50);            /* not a movie size: ignored */
	ver(SIZE_LIVE_ORIGINAL, MOV, 10);        /* movies have no live video */
	sizes("original", "medium", "adjusted");
	run();
	ck_assert_uint_eq(res.n, 2);
	expect(0, "2018/07/31/IMG_0001.MOV", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/IMG_0001-medium.MOV", PLAN_DOWNLOAD);
	/* other video UTIs keep their own extension */
	mk(MASTER_7409, "clip.mp4", "public.mpeg-4", DATE_7409);
	ver(SIZE_ORIGINAL, "public.mpeg-4", 5000);
	sizes("original", NULL, NULL);
	run();
	expect(0, "2018/07/31/clip.mp4", PLAN_DOWNLOAD);
	cfg.skip_videos = true;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_VIDEO);
	ck_assert_uint_eq(res.n, 0);
}
END_TEST

START_TEST(test_skip_filters)
{
	asset_7409();
	cfg.skip_videos = true;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_NONE);
	ck_assert_uint_eq(res.n, 2); /* a live photo is an image */
	cfg.skip_videos = false;
	cfg.skip_live_photos = true;
	run();
	ck_assert_uint_eq(res.n, 1);
	expect(0, "2018/07/31/IMG_7409.JPG", PLAN_DOWNLOAD);
	cfg.skip_photos = true;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_PHOTO);
	ck_assert_uint_eq(res.n, 0);
	/* no itemType: never skipped by --skip-photos / --skip-videos */
	mk(MASTER_7409, "x.jpg", NULL, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1);
	cfg.skip_videos = true;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_NONE);
	ck_assert_uint_eq(res.n, 1);
}
END_TEST

START_TEST(test_hidden_deleted)
{
	asset_7409();
	a.hidden = true;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_HIDDEN);
	ck_assert_uint_eq(res.n, 0);
	a.hidden = false;
	a.deleted = true;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_DELETED);
	a.deleted = false;
	a.purged = true;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_DELETED);
	ck_assert_int_eq(fs.calls, 0);
	a.purged = false;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_NONE);
}
END_TEST

START_TEST(test_created_filters)
{
	asset_7409(); /* 2018-07-31 07:22:24 UTC */
	cfg.skip_created_before = xstrdup("2018-08-01");
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_CREATED_BEFORE);
	free(cfg.skip_created_before);
	cfg.skip_created_before = xstrdup("2018-07-31T07:22:24");
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_NONE); /* equal is not before */
	free(cfg.skip_created_before);
	cfg.skip_created_before = xstrdup("2018-07-31T07:22:25Z");
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_CREATED_BEFORE);
	free(cfg.skip_created_before);
	cfg.skip_created_before = NULL;
	cfg.skip_created_after = xstrdup("2018-07-31");
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_CREATED_AFTER);
	free(cfg.skip_created_after);
	cfg.skip_created_after = xstrdup("2018-07-31T09:00:00+02:00"); /* 07:00 UTC */
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_CREATED_AFTER);
	free(cfg.skip_created_after);
	cfg.skip_created_after = xstrdup("2018-07-31T09:30+02:00"); /* 07:30 UTC */
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_NONE);
	/* the fraction counts: 07:22:24.816 is after 07:22:24 */
	free(cfg.skip_created_after);
	cfg.skip_created_after = xstrdup("2018-07-31T07:22:24");
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_CREATED_AFTER);
	/* Nd relative to now (1700000000 = 2023-11-14) */
	free(cfg.skip_created_after);
	cfg.skip_created_after = NULL;
	cfg.skip_created_before = xstrdup("30d");
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_CREATED_BEFORE);
	free(cfg.skip_created_before);
	cfg.skip_created_before = xstrdup("3000D");
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_NONE);
}
END_TEST

START_TEST(test_parse_date)
{
	int64_t t;

	ck_assert_int_eq(plan_parse_date("2023-01-31", 0, &t), 0);
	ck_assert_int_eq(t, 1675123200);
	ck_assert_int_eq(plan_parse_date("2023-01-31T10:00:00Z", 0, &t), 0);
	ck_assert_int_eq(t, 1675159200);
	ck_assert_int_eq(plan_parse_date("2023-01-31 10:00:00.123456-01:30", 0, &t), 0);
	ck_assert_int_eq(t, 1675159200 + 5400);
	ck_assert_int_eq(plan_parse_date("2023-01-31T10:00+0100", 0, &t), 0);
	ck_assert_int_eq(t, 1675159200 - 3600);
	ck_assert_int_eq(plan_parse_date("7d", 1000000, &t), 0);
	ck_assert_int_eq(t, 1000000 - 7 * 86400);
	/* naive dates are local */
	setenv("TZ", "Europe/Berlin", 1);
	tzset();
	ck_assert_int_eq(plan_parse_date("2023-01-31", 0, &t), 0);
	ck_assert_int_eq(t, 1675123200 - 3600);
	setenv("TZ", "UTC", 1);
	tzset();
	ck_assert_int_eq(plan_parse_date("2023-02-31", 0, &t), ICPD_EUSAGE);
	ck_assert_int_eq(plan_parse_date("2023-1-31", 0, &t), ICPD_EUSAGE);
	ck_assert_int_eq(plan_parse_date("yesterday", 0, &t), ICPD_EUSAGE);
	ck_assert_int_eq(plan_parse_date("", 0, &t), ICPD_EUSAGE);
	ck_assert_int_eq(plan_parse_date("d", 0, &t), ICPD_EUSAGE);
	ck_assert_int_eq(plan_parse_date("5 d", 0, &t), ICPD_EUSAGE);
	ck_assert_int_eq(plan_parse_date("2023-01-31T25:00", 0, &t), ICPD_EUSAGE);
	ck_assert_int_eq(plan_parse_date("2023-01-31x", 0, &t), ICPD_EUSAGE);
	ck_assert(strstr(error_message(), "2023-01-31x") != NULL);
}
END_TEST

START_TEST(test_ctx_errors)
{
	sizes("huge", NULL, NULL);
	ck_assert_int_eq(plan_ctx_init(&ctx, &cfg, fake_stat, &fs, 0), ICPD_EUSAGE);
	ck_assert(strstr(error_message(), "huge") != NULL);
	plan_ctx_release(&ctx);
	sizes(NULL, NULL, NULL);
	folder_structure("{:%Y/../x}");
	ck_assert_int_eq(plan_ctx_init(&ctx, &cfg, fake_stat, &fs, 0), ICPD_EUSAGE);
	plan_ctx_release(&ctx);
	folder_structure("{");
	ck_assert_int_eq(plan_ctx_init(&ctx, &cfg, fake_stat, &fs, 0), ICPD_EUSAGE);
	plan_ctx_release(&ctx);
	free(cfg.folder_structure);
	cfg.folder_structure = NULL;
	cfg.skip_created_after = xstrdup("soon");
	ck_assert_int_eq(plan_ctx_init(&ctx, &cfg, fake_stat, &fs, 0), ICPD_EUSAGE);
	plan_ctx_release(&ctx);
	free(cfg.skip_created_after);
	cfg.skip_created_after = NULL;
	/* defaults: original, {:%Y/%m/%d} */
	ck_assert_int_eq(plan_ctx_init(&ctx, &cfg, fake_stat, &fs, 0), 0);
	ck_assert_uint_eq(ctx.nsizes, 1);
	ck_assert_int_eq(ctx.sizes[0], SIZE_ORIGINAL);
	ck_assert_int_eq(ctx.live_size, SIZE_LIVE_ORIGINAL);
}
END_TEST

START_TEST(test_no_version)
{
	mk(MASTER_7409, "IMG_1.JPG", JPEG, DATE_7409);
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_NO_VERSION);
	ck_assert_uint_eq(res.n, 0);
	/* a resource without a URL cannot be fetched */
	ver(SIZE_ORIGINAL, JPEG, 1);
	free(a.versions[SIZE_ORIGINAL].url);
	a.versions[SIZE_ORIGINAL].url = NULL;
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_NO_VERSION);
}
END_TEST

/* ---- §8.1, §8.2 flags ---- */

START_TEST(test_metadata_flags)
{
	asset_7409();
	cfg.xmp_sidecar = true;
	cfg.set_exif_datetime = true;
	sizes("original", "thumb", NULL);
	fs_add("2018/07/31/IMG_7409-thumb.JPG", 20000);
	run();
	ck_assert_uint_eq(res.n, 3);
	ck_assert_uint_eq(res.items[0].flags, PLAN_F_XMP | PLAN_F_EXIF);
	ck_assert_uint_eq(res.items[1].flags, PLAN_F_XMP); /* exists: XMP only */
	ck_assert_int_eq(res.items[1].decision, PLAN_SKIP_EXISTS);
	ck_assert_uint_eq(res.items[2].flags, PLAN_F_LIVE); /* never on videos */
	/* HEIC: no EXIF edit; .jpeg counts as JPEG */
	asset_0512();
	sizes("original", NULL, NULL);
	run();
	ck_assert_uint_eq(res.items[0].flags, PLAN_F_XMP);
	mk(MASTER_7409, "x.jpeg", "public.jpeg-2000", DATE_7409);
	ver(SIZE_ORIGINAL, "public.jpeg-2000", 1);
	run();
	expect(0, "2018/07/31/x.jpeg", PLAN_DOWNLOAD);
	ck_assert_uint_eq(res.items[0].flags, PLAN_F_XMP | PLAN_F_EXIF);
	/* a dedup download is downloaded in this run too */
	asset_7409();
	fs_add("2018/07/31/IMG_7409.JPG", 1);
	run();
	expect(0, "2018/07/31/IMG_7409-1884695.JPG", PLAN_DOWNLOAD_DEDUP);
	ck_assert_uint_eq(res.items[0].flags, PLAN_F_XMP | PLAN_F_EXIF);
}
END_TEST

/* ---- hostile names (tooling.md §4d) and the safety pass ---- */

START_TEST(test_hostile_names)
{
	mk(MASTER_7409, "../x.jpg", HEIC, DATE_7409);
	ver(SIZE_ORIGINAL, HEIC, 1);
	ver(SIZE_LIVE_ORIGINAL, MOV, 2);
	run();
	expect(0, "2018/07/31/.._x.HEIC", PLAN_DOWNLOAD);
	expect(1, "2018/07/31/.._x.MOV", PLAN_DOWNLOAD); /* the live rule looks at ".jpg" */
	mk(MASTER_7409, "a/b/c.jpg", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "2018/07/31/a_b_c.JPG", PLAN_DOWNLOAD);
	mk(MASTER_7409, "noext", HEIC, DATE_7409);
	ver(SIZE_ORIGINAL, HEIC, 1);
	run();
	expect(0, "2018/07/31/noext.HEIC", PLAN_DOWNLOAD);
	mk(MASTER_7409, "/etc/passwd", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "2018/07/31/_etc_passwd.JPG", PLAN_DOWNLOAD);
	mk(MASTER_7409, "..", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "2018/07/31/...JPG", PLAN_DOWNLOAD);
	/* control characters: icpd replaces them (icloudpd keeps them) */
	mk(MASTER_7409, "a\nb\x1b[2J.jpg", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "2018/07/31/a_b_[2J.JPG", PLAN_DOWNLOAD);
	/* everything stripped: ".JPG", as icloudpd */
	mk(MASTER_7409, "中文", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1);
	run();
	expect(0, "2018/07/31/.JPG", PLAN_DOWNLOAD);
	/* unknown UTI, no extension: a trailing dot, as icloudpd */
	mk(MASTER_7409, "x", "com.example.thing", DATE_7409);
	ver(SIZE_ORIGINAL, "com.example.thing", 1);
	run();
	expect(0, "2018/07/31/x.", PLAN_DOWNLOAD);
}
END_TEST

START_TEST(test_long_names)
{
	char name[400];
	const char *last;

	memset(name, 'n', 300);
	memcpy(name + 300, ".jpg", 5);
	mk(MASTER_7409, name, JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1884695);
	ver(SIZE_LIVE_ORIGINAL, MOV, 3);
	run();
	last = strrchr(res.items[0].path, '/') + 1;
	ck_assert_uint_eq(strlen(last), 255);
	ck_assert(strcmp(last + 251, ".JPG") == 0);
	last = strrchr(res.items[1].path, '/') + 1;
	ck_assert_uint_eq(strlen(last), 255);
	ck_assert(strcmp(last + 251, ".MOV") == 0);
	/* with sidecars the primary name leaves room for ".xmp" */
	cfg.xmp_sidecar = true;
	run();
	last = strrchr(res.items[0].path, '/') + 1;
	ck_assert_uint_eq(strlen(last), 251);
	ck_assert(strcmp(last + 247, ".JPG") == 0);
	/* the dedup name is cut again, keeping "-<size>.JPG" */
	{
		char existing[300];

		snprintf(existing, sizeof(existing), "2018/07/31/%s", last);
		fs_add(existing, 5);
	}
	run();
	ck_assert_int_eq(res.items[0].decision, PLAN_DOWNLOAD_DEDUP);
	last = strrchr(res.items[0].path, '/') + 1;
	ck_assert_uint_eq(strlen(last), 251);
	ck_assert(strcmp(last + 251 - strlen("-1884695.JPG"), "-1884695.JPG") == 0);
}
END_TEST

/* A cut never eats the size suffix: the versions of one long-named asset
 * keep distinct names. */
START_TEST(test_long_names_keep_suffixes)
{
	char name[400];
	const char *last;

	memset(name, 'n', 300);
	memcpy(name + 300, ".HEIC", 6);
	mk(MASTER_7409, name, HEIC, DATE_7409);
	ver(SIZE_ORIGINAL, HEIC, 10);
	ver(SIZE_MEDIUM, JPEG, 5);
	ver(SIZE_THUMB, JPEG, 2);
	ver(SIZE_ADJUSTED, HEIC, 11);
	ver(SIZE_LIVE_MEDIUM, MOV, 3);
	sizes("original", "thumb", "adjusted");
	cfg.live_photo_size = LIVE_SIZE_MEDIUM;
	cfg.xmp_sidecar = true;
	run();
	ck_assert_uint_eq(res.n, 4);
	last = strrchr(res.items[0].path, '/') + 1;
	ck_assert_uint_eq(strlen(last), 251);
	ck_assert_str_eq(last + 251 - 5, ".HEIC");
	last = strrchr(res.items[1].path, '/') + 1;
	ck_assert_uint_eq(strlen(last), 251);
	ck_assert_str_eq(last + 251 - 10, "-thumb.JPG");
	last = strrchr(res.items[2].path, '/') + 1;
	ck_assert_uint_eq(strlen(last), 251);
	ck_assert_str_eq(last + 251 - 14, "-adjusted.HEIC");
	last = strrchr(res.items[3].path, '/') + 1;
	ck_assert_uint_eq(strlen(last), 255); /* no sidecar for videos */
	ck_assert_str_eq(last + 255 - 16, "_HEVC-medium.MOV");
	for (size_t i = 0; i < res.n; i++) {
		for (size_t j = i + 1; j < res.n; j++) {
			ck_assert_str_ne(res.items[i].path, res.items[j].path);
		}
	}
}
END_TEST

START_TEST(test_stat_error)
{
	asset_7409();
	fs.fail_path = "2018/07/31/IMG_7409.MOV";
	init_ctx();
	ck_assert_int_eq(plan_asset(&ctx, &a, &res), ICPD_ESTORAGE);
	ck_assert(strstr(error_message(), "IMG_7409.MOV") != NULL);
}
END_TEST

/* ---- §9.2 --auto-delete candidates ---- */

static char **cands;
static size_t ncands;

static void candidates(void)
{
	plan_paths_free(cands, ncands);
	init_ctx();
	plan_delete_candidates(&ctx, &a, &cands, &ncands);
	for (size_t i = 0; i < ncands; i++) {
		ck_assert_msg(naming_path_is_safe(cands[i]), "unsafe '%s'", cands[i]);
		for (size_t j = i + 1; j < ncands; j++) {
			ck_assert_str_ne(cands[i], cands[j]);
		}
	}
}

static bool has(const char *path)
{
	for (size_t i = 0; i < ncands; i++) {
		if (strcmp(cands[i], path) == 0) {
			return true;
		}
	}
	return false;
}

START_TEST(test_delete_candidates)
{
	mk(MASTER_7409, "IMG_7190.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 100);
	ver(SIZE_MEDIUM, JPEG, 50);
	ver(SIZE_THUMB, JPEG, 10);
	ver(SIZE_ADJUSTED, JPEG, 120);
	ver(SIZE_LIVE_ORIGINAL, MOV, 300);
	ver(SIZE_LIVE_MEDIUM, MOV, 200);
	a.deleted = true; /* it is in Recently Deleted: still named */
	candidates();
	/* icloudpd's test expects IMG_7190.JPG and IMG_7190-medium.JPG deleted */
	ck_assert(has("2018/07/31/IMG_7190.JPG"));
	ck_assert(has("2018/07/31/IMG_7190.JPG.xmp"));
	ck_assert(has("2018/07/31/IMG_7190-medium.JPG"));
	ck_assert(has("2018/07/31/IMG_7190-medium.JPG.xmp"));
	ck_assert(has("2018/07/31/IMG_7190-thumb.JPG"));
	ck_assert(has("2018/07/31/IMG_7190.MOV"));
	ck_assert(has("2018/07/31/IMG_7190.MOV.xmp")); /* icloudpd tries it too */
	/* adjusted not requested: not deleted; icloudpd's live medium has no suffix */
	ck_assert(!has("2018/07/31/IMG_7190-adjusted.JPG"));
	ck_assert(!has("2018/07/31/IMG_7190-medium.MOV"));
	ck_assert_uint_eq(ncands, 8);
	/* adjusted requested: with its override name */
	sizes("original", "adjusted", NULL);
	candidates();
	ck_assert(has("2018/07/31/IMG_7190-adjusted.JPG"));
	ck_assert(has("2018/07/31/IMG_7190-adjusted.JPG.xmp"));
	/* our own live-medium name is found too */
	sizes("original", NULL, NULL);
	cfg.live_photo_size = LIVE_SIZE_MEDIUM;
	candidates();
	ck_assert(has("2018/07/31/IMG_7190-medium.MOV"));
	ck_assert(!has("2018/07/31/IMG_7190-medium.MOV.xmp"));
	/* HEIC live photo: icloudpd expects IMG_0512_HEVC.MOV */
	asset_0512();
	cfg.live_photo_size = LIVE_SIZE_ORIGINAL;
	candidates();
	ck_assert(has("2020/11/04/IMG_0512.HEIC"));
	ck_assert(has("2020/11/04/IMG_0512_HEVC.MOV"));
	/* movies (icloudpd expects IMG_7406.MOV) and PNGs (IMG_7383.PNG) */
	mk(MASTER_7409, "IMG_7406.MOV", MOV, DATE_7409);
	ver(SIZE_ORIGINAL, MOV, 100);
	ver(SIZE_LIVE_ORIGINAL, MOV, 1); /* movies have no live video */
	cfg.skip_videos = true;          /* filters do not apply */
	candidates();
	ck_assert(has("2018/07/31/IMG_7406.MOV"));
	ck_assert_uint_eq(ncands, 2);
	mk(MASTER_7409, "IMG_7383.PNG", "public.png", DATE_7409);
	ver(SIZE_ORIGINAL, "public.png", 100);
	candidates();
	ck_assert(has("2018/07/31/IMG_7383.PNG"));
	plan_paths_free(cands, ncands);
	cands = NULL;
	ncands = 0;
}
END_TEST

START_TEST(test_delete_candidates_policies)
{
	/* icloudpd deletes by its default-policy, Unicode-kept name; we also find
	 * the name we gave under name-id7 and stripped Unicode */
	mk(MASTER_7409, "IMG_中_7409.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 100);
	cfg.file_match_policy = MATCH_NAME_ID7;
	candidates();
	ck_assert(has("2018/07/31/IMG_中_7409.JPG"));
	ck_assert(has("2018/07/31/IMG__7409_QVk2Yyt.JPG"));
	ck_assert(has("2018/07/31/IMG__7409_QVk2Yyt.JPG.xmp"));
	ck_assert_uint_eq(ncands, 4);
	/* hostile name: still inside the directory */
	mk(MASTER_7409, "../../x.jpg", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 100);
	cfg.file_match_policy = MATCH_NAME_SIZE_DEDUP;
	candidates();
	ck_assert(has("2018/07/31/.._.._x.JPG"));
	plan_paths_free(cands, ncands);
	cands = NULL;
	ncands = 0;
}
END_TEST

/* ---- §6.8 --until-found, §7.1 --recent ---- */

START_TEST(test_until_found)
{
	struct plan_progress p = PLAN_PROGRESS_INIT;

	cfg.until_found = 3;
	asset_7409();
	sizes("original", "thumb", NULL);
	fs_add("2018/07/31/IMG_7409.JPG", 1884695);
	fs_add("2018/07/31/IMG_7409-thumb.JPG", 20000);
	run();
	ck_assert(!plan_progress_stop(&ctx, &p));
	plan_progress_update(&ctx, &p, &res);
	ck_assert_int_eq(p.found_in_row, 2); /* two primary files; the video does not count */
	ck_assert(!plan_progress_stop(&ctx, &p));
	/* a download resets the counter */
	mk(MASTER_7409, "IMG_1.JPG", JPEG, DATE_7409);
	ver(SIZE_ORIGINAL, JPEG, 1);
	ver(SIZE_THUMB, JPEG, 1);
	fs_add("2018/07/31/IMG_1-thumb.JPG", 1);
	run();
	plan_progress_update(&ctx, &p, &res);
	ck_assert_int_eq(p.found_in_row, 1); /* download (reset), then thumb found */
	/* live video existing does not count; filtered assets do not touch it */
	sizes("original", NULL, NULL);
	asset_7409();
	fs.n = 0;
	fs_add("2018/07/31/IMG_7409.JPG", 1884695);
	fs_add("2018/07/31/IMG_7409.MOV", 3294075);
	run();
	plan_progress_update(&ctx, &p, &res);
	ck_assert_int_eq(p.found_in_row, 2);
	a.hidden = true;
	run();
	plan_progress_update(&ctx, &p, &res);
	ck_assert_int_eq(p.found_in_row, 2);
	a.hidden = false;
	run();
	plan_progress_update(&ctx, &p, &res);
	ck_assert_int_eq(p.found_in_row, 3);
	ck_assert(plan_progress_stop(&ctx, &p));
}
END_TEST

START_TEST(test_recent)
{
	struct plan_progress p = PLAN_PROGRESS_INIT;

	cfg.recent = 2;
	cfg.skip_videos = true;
	mk(MASTER_7409, "v.MOV", MOV, DATE_7409);
	ver(SIZE_ORIGINAL, MOV, 1);
	run();
	ck_assert_int_eq(res.skip, PLAN_SKIP_VIDEO);
	ck_assert(!plan_progress_stop(&ctx, &p));
	plan_progress_update(&ctx, &p, &res); /* filtered assets count */
	ck_assert_int_eq(p.assets, 1);
	a.hidden = true; /* not in icloudpd's listing: does not count */
	run();
	plan_progress_update(&ctx, &p, &res);
	ck_assert_int_eq(p.assets, 1);
	ck_assert(!plan_progress_stop(&ctx, &p));
	asset_7409();
	run();
	plan_progress_update(&ctx, &p, &res);
	ck_assert_int_eq(p.assets, 2);
	ck_assert(plan_progress_stop(&ctx, &p));
	/* off by default */
	cfg.recent = 0;
	init_ctx();
	ck_assert(!plan_progress_stop(&ctx, &p));
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_default);
	tcase_add_test(tc, test_heic_live);
	tcase_add_test(tc, test_id7);
	tcase_add_test(tc, test_id7_exists_without_size_check);
	tcase_add_test(tc, test_original_and_thumb);
	tcase_add_test(tc, test_live_photo_size);
	tcase_add_test(tc, test_collision_dedup);
	tcase_add_test(tc, test_same_size_is_adopted);
	tcase_add_test(tc, test_legacy_original_name);
	tcase_add_test(tc, test_no_filename);
	tcase_add_test(tc, test_folder_none_and_names);
	tcase_add_test(tc, test_adjusted);
	tcase_add_test(tc, test_alternative);
	tcase_add_test(tc, test_align_raw);
	tcase_add_test(tc, test_missing_size_fallback);
	tcase_add_test(tc, test_force_size);
	tcase_add_test(tc, test_movies);
	tcase_add_test(tc, test_skip_filters);
	tcase_add_test(tc, test_hidden_deleted);
	tcase_add_test(tc, test_created_filters);
	tcase_add_test(tc, test_parse_date);
	tcase_add_test(tc, test_ctx_errors);
	tcase_add_test(tc, test_no_version);
	tcase_add_test(tc, test_metadata_flags);
	tcase_add_test(tc, test_hostile_names);
	tcase_add_test(tc, test_long_names);
	tcase_add_test(tc, test_long_names_keep_suffixes);
	tcase_add_test(tc, test_stat_error);
	tcase_add_test(tc, test_delete_candidates);
	tcase_add_test(tc, test_delete_candidates_policies);
	tcase_add_test(tc, test_until_found);
	tcase_add_test(tc, test_recent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(plan_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
