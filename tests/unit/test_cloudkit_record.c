/*
 * Decoder tests: real pages recorded by icloudpd (tests/data/recordings/,
 * MIT — see LICENSE.md and README.md there; cut out of the cassettes by
 * extract.py) and the bad-record cases of cloudkit-photos.md §4 / §6.1 /
 * §10.2.  Expected values were read from the JSON with Python (json,
 * base64, plistlib) by the rules of the spec and written here as literals;
 * none is computed by the code under test.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloudkit_p.h"
#include "icpd/asset.h"
#include "icpd/cloudkit.h"
#include "icpd/error.h"
#include "icpd/log.h"

#define RECORDINGS SOURCE_ROOT "/tests/data/recordings/"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Warnings written while a decoder runs, to count how often a bad record is
 * reported and check the report names it. */
struct captured {
	char *text;
	size_t len;
	FILE *f;
};

static void capture_start(struct captured *c)
{
	c->text = NULL;
	c->len = 0;
	c->f = open_memstream(&c->text, &c->len);
	ck_assert_ptr_nonnull(c->f);
	log_setup(LOG_WARN, LOG_FORMAT_TEXT, c->f);
}

static void capture_stop(struct captured *c)
{
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
	fclose(c->f);
	c->f = NULL;
}

static int count_lines(const char *text)
{
	int n = 0;

	for (const char *p = text; *p; p++) {
		n += *p == '\n';
	}
	return n;
}

/* How many lines of text contain needle. */
static int lines_with(const char *text, const char *needle)
{
	int n = 0;
	const char *line = text;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *copy = strndup(line, len);

		n += strstr(copy, needle) != NULL;
		free(copy);
		line += len + (end ? 1 : 0);
	}
	return n;
}

static const struct asset *find_by_name(const struct cloudkit_page *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++) {
		if (p->assets[i].filename && strcmp(p->assets[i].filename, name) == 0) {
			return &p->assets[i];
		}
	}
	return NULL;
}

START_TEST(test_recorded_raw_alt_adj)
{
	size_t len;
	char *text = slurp(RECORDINGS "listing_photos_raw_alt_adj.json", &len);
	struct cloudkit_page p;
	const struct asset *a;

	ck_assert_int_eq(cloudkit_page_decode(text, len, "PrimarySync", &p), 0);
	ck_assert_uint_eq(p.n, 24);
	ck_assert_uint_eq(p.masters, 24);
	ck_assert_int_eq(p.skipped, 0);
	ck_assert_str_eq(p.sync_token, "AQAAAAAAAwmVf//////////Kd+LphRdKGbpJMSeRX5Td");
	a = &p.assets[0]; /* page order is kept */
	ck_assert_str_eq(a->master_id, "AY6c+BsE0jjaXx9tmVGJM1D2VcEO");
	ck_assert_str_eq(a->asset_id, "F2A23C38-0020-42FE-A273-2923ADE3CAED");
	ck_assert_str_eq(a->zone, "PrimarySync");
	ck_assert_str_eq(a->filename, "IMG_7409.CR2");
	ck_assert_str_eq(a->item_type, "com.canon.cr2-raw-image");
	ck_assert_int_eq(a->kind, ASSET_IMAGE);
	ck_assert(a->asset_date == 1533021744816LL);
	ck_assert(a->added_date == 1533021746602LL);
	ck_assert_int_eq(a->tz_offset, 25200);
	ck_assert_int_eq(a->orientation, 6);
	ck_assert_int_eq(a->subtype_v2, 2);
	ck_assert(!a->favorite && !a->hidden && !a->deleted && !a->purged);
	ck_assert_str_eq(a->change_tag, "49lh");
	/* versions: RAW original, JPEG alternative, the edit on the asset */
	ck_assert(a->versions[SIZE_ORIGINAL].present);
	ck_assert(a->versions[SIZE_ORIGINAL].size == 1884695);
	ck_assert_str_eq(a->versions[SIZE_ORIGINAL].uti, "com.canon.cr2-raw-image");
	ck_assert_str_eq(a->versions[SIZE_ORIGINAL].checksum, "AY6c+BsE0jjaXx9tmVGJM1D2VcEO");
	ck_assert(strncmp(a->versions[SIZE_ORIGINAL].url,
			  "https://cvws.icloud-content.com/B/AY6c-BsE0jjaXx9tmVGJM1D2VcEO", 61) == 0);
	ck_assert(strstr(a->versions[SIZE_ORIGINAL].url, "/${f}?") != NULL);
	ck_assert(a->versions[SIZE_ALTERNATIVE].size == 503598);
	ck_assert_str_eq(a->versions[SIZE_ALTERNATIVE].uti, "public.jpeg");
	ck_assert(a->versions[SIZE_ADJUSTED].size == 233944);
	ck_assert_str_eq(a->versions[SIZE_ADJUSTED].uti, "public.jpeg");
	ck_assert(a->versions[SIZE_MEDIUM].size == 664594);
	ck_assert(a->versions[SIZE_THUMB].size == 66936);
	ck_assert(a->versions[SIZE_LIVE_ORIGINAL].size == 3294075);
	ck_assert_str_eq(a->versions[SIZE_LIVE_ORIGINAL].uti, "com.apple.quicktime-movie");
	ck_assert(a->versions[SIZE_LIVE_MEDIUM].size == 1807733);
	ck_assert(!a->versions[SIZE_LIVE_THUMB].present);
	/* locationEnc: a binary plist with lon */
	ck_assert(a->has_location);
	ck_assert(fabs(a->latitude - 18.82285) < 1e-9);
	ck_assert(fabs(a->longitude - 98.96340333333333) < 1e-9);
	ck_assert(fabs(a->altitude - 326.9550561797753) < 1e-9);
	ck_assert(a->location_time == 978307200);
	/* second asset: a plain JPEG live photo */
	a = find_by_name(&p, "IMG_7408.JPG");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->asset_id, "577DE5DB-44CF-470B-9791-11F4A5C4A99C");
	ck_assert(a->versions[SIZE_ORIGINAL].size == 1151066);
	ck_assert(!a->versions[SIZE_ADJUSTED].present);
	ck_assert(!a->versions[SIZE_ALTERNATIVE].present);
	ck_assert(a->versions[SIZE_LIVE_THUMB].size == 253301);
	cloudkit_page_release(&p);
	free(text);
}
END_TEST

/* What a records/lookup answer gives for one version (cloudkit_record_version,
 * the URL refresh) is what the listing decoded, for every asset and slot of
 * the recorded pages (images with RAW+JPEG, edits and live videos; videos). */
static void check_versions_match_listing(const char *file)
{
	size_t len;
	char *text = slurp(file, &len);
	json_t *root = json_loads(text, 0, NULL), *r;
	json_t *byname = json_object();
	struct cloudkit_page p;
	size_t i;
	int found = 0;

	ck_assert_ptr_nonnull(root);
	json_array_foreach(json_object_get(root, "records"), i, r) {
		json_object_set(byname, json_string_value(json_object_get(r, "recordName")), r);
	}
	ck_assert_int_eq(cloudkit_page_decode(text, len, "PrimarySync", &p), 0);
	ck_assert_uint_gt(p.n, 0);
	for (i = 0; i < p.n; i++) {
		const struct asset *a = &p.assets[i];
		const json_t *m = json_object_get(byname, a->master_id);
		const json_t *as = json_object_get(byname, a->asset_id);

		ck_assert_ptr_nonnull(m);
		ck_assert_ptr_nonnull(as);
		for (int slot = 0; slot < SIZE_COUNT; slot++) {
			struct asset_version v = { 0 };
			int rc = cloudkit_record_version(m, as, a->kind, (enum asset_size)slot, &v);

			ck_assert_int_eq(rc, a->versions[slot].present ? 0 : 1);
			if (rc == 0) {
				ck_assert_str_eq(v.url, a->versions[slot].url);
				ck_assert(v.size == a->versions[slot].size);
				ck_assert_str_eq(v.checksum, a->versions[slot].checksum);
				found++;
			}
			free(v.url);
			free(v.uti);
			free(v.checksum);
		}
	}
	ck_assert_int_gt(found, (int)p.n);
	cloudkit_page_release(&p);
	json_decref(byname);
	json_decref(root);
	free(text);
}

START_TEST(test_lookup_version_matches_listing)
{
	check_versions_match_listing(RECORDINGS "listing_photos_raw_alt_adj.json");
	check_versions_match_listing(RECORDINGS "listing_videos.json");
}
END_TEST

START_TEST(test_recorded_videos)
{
	size_t len;
	char *text = slurp(RECORDINGS "listing_videos.json", &len);
	struct cloudkit_page p;
	const struct asset *a;
	int movies = 0;

	ck_assert_int_eq(cloudkit_page_decode(text, len, "PrimarySync", &p), 0);
	ck_assert_uint_eq(p.n, 12);
	ck_assert_int_eq(p.skipped, 0);
	for (size_t i = 0; i < p.n; i++) {
		if (p.assets[i].kind == ASSET_MOVIE) {
			movies++;
			/* movies have no live-photo or adjusted slots */
			ck_assert(!p.assets[i].versions[SIZE_LIVE_ORIGINAL].present);
			ck_assert(!p.assets[i].versions[SIZE_ADJUSTED].present);
			ck_assert_str_eq(p.assets[i].versions[SIZE_ORIGINAL].uti,
				"com.apple.quicktime-movie");
		}
	}
	ck_assert_int_eq(movies, 6);
	a = find_by_name(&p, "IMG_7405.MOV");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->kind, ASSET_MOVIE);
	/* a movie's medium/thumb are resVidMed/resVidSmall, not the JPEG stills */
	ck_assert(a->versions[SIZE_ORIGINAL].size == 36491351);
	ck_assert(a->versions[SIZE_MEDIUM].size == 2875771);
	ck_assert_str_eq(a->versions[SIZE_MEDIUM].uti, "public.mpeg-4");
	ck_assert(a->versions[SIZE_THUMB].size == 828228);
	ck_assert_str_eq(a->versions[SIZE_THUMB].uti, "public.mpeg-4");
	cloudkit_page_release(&p);
	free(text);
}
END_TEST

/* ---------------------------------------------------------------- every recorded pair */

/*
 * One row per CPLMaster of a recorded page, in page order, with the
 * CPLAsset whose masterRef names it.  Versions follow §4.3: <prefix>Res on
 * the asset first, then on the master; movies use resOriginal / resVidMed /
 * resVidSmall only.  Size -1: no such version.  Location from locationEnc
 * (binary plist; timestamp a plist date, in Unix seconds).
 */
struct want_loc {
	bool has;
	double lat, lon, alt, speed;
	int64_t time;
};

struct want_pair {
	const char *master, *asset, *change_tag, *filename, *item_type;
	enum asset_kind kind;
	int64_t asset_date, added_date;
	int tz, orientation, subtype_v2, favorite, hidden;
	const char *adjustment_type;
	int64_t size[SIZE_COUNT];
	const char *uti[SIZE_COUNT];
	struct want_loc loc;
};

#define UJPEG "public.jpeg"
#define UPNG "public.png"
#define UMOV "com.apple.quicktime-movie"
#define UMP4 "public.mpeg-4"
#define UCR2 "com.canon.cr2-raw-image"

/* listing_photos_raw_alt_adj.json: the first 24 pairs of the recorded page. */
static const struct want_pair photos[] = {
	{ "AY6c+BsE0jjaXx9tmVGJM1D2VcEO", "F2A23C38-0020-42FE-A273-2923ADE3CAED", "49lh",
		"IMG_7409.CR2", "com.canon.cr2-raw-image", ASSET_IMAGE,
		1533021744816LL, 1533021746602LL, 25200, 6, 2, 0, 0, NULL,
		{ 1884695, 503598, 664594, 66936, 233944, 3294075, 1807733, -1 },
		{ UCR2, UJPEG, UJPEG, UJPEG, UJPEG, UMOV, UMOV, NULL },
		{ true, 18.82285, 98.96340333333333, 326.9550561797753, 0.0, 978307200 } },
	{ "AR8OijSKPNBuzFZHNvRpv+yNookj", "577DE5DB-44CF-470B-9791-11F4A5C4A99C", "49jl",
		"IMG_7408.JPG", "public.jpeg", ASSET_IMAGE,
		1532951050176LL, 1532951050580LL, 25200, 6, 2, 0, 0, NULL,
		{ 1151066, -1, 652108, 58595, -1, 1606512, 894467, 253301 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.823253333333334, 98.963325, 329.1757575757576, 0.0, 978307200 } },
	{ "AZ/wAGT9P6jhr0NKCjLyh7KawNEx", "135B4CE4-050D-41CE-ABD2-7AE6E5FA1E25", "49jr",
		"IMG_7407.JPG", "public.jpeg", ASSET_IMAGE,
		1532951045108LL, 1532951045502LL, 25200, 6, 2, 0, 0, NULL,
		{ 656257, -1, 507954, 61197, -1, 2910572, 1759697, 483983 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.823003333333332, 98.96346333333334,
			326.3008130081301, 0.0, 978307200 } },
	{ "AY+R3dhJpz0NaLm5n1dA8cdywPKa", "C83F37E6-6338-4DE7-BB0C-3BC91280F5F8", "49k1",
		"IMG_7405.MOV", "com.apple.quicktime-movie", ASSET_MOVIE,
		1532940531000LL, 1532940538568LL, 25200, 1, 0, 0, 0, NULL,
		{ 36491351, -1, 2875771, 828228, -1, -1, -1, -1 },
		{ UMOV, NULL, UMP4, UMP4, NULL, NULL, NULL, NULL },
		{ true, 18.823, 98.9635, 0.0, -1.0, 1532940531 } },
	{ "AR9MlEx0lFVJHEQTaHcKRCD294Gx", "77D88177-28FC-4931-86E4-53CE82A4C6C3", "49k7",
		"IMG_7404.MOV", "com.apple.quicktime-movie", ASSET_MOVIE,
		1532938364000LL, 1532938410060LL, 25200, 1, 0, 0, 0, NULL,
		{ 225935003, -1, 17680053, 5118247, -1, -1, -1, -1 },
		{ UMOV, NULL, UMP4, UMP4, NULL, NULL, NULL, NULL },
		{ true, 18.8231, 98.9636, 0.0, -1.0, 1532938364 } },
	{ "AW4UkI6B5ZqZbVK7cHvMqNTi3Cqb", "16FEA60F-B8F9-4D04-B7A1-BA0E47588476", "49kd",
		"IMG_7403.MOV", "com.apple.quicktime-movie", ASSET_MOVIE,
		1532938320000LL, 1532938357093LL, 25200, 1, 0, 0, 0, NULL,
		{ 142581379, -1, 11481961, 3356862, -1, -1, -1, -1 },
		{ UMOV, NULL, UMP4, UMP4, NULL, NULL, NULL, NULL },
		{ true, 18.8231, 98.9635, 0.0, -1.0, 1532938320 } },
	{ "AWXh7InIou3rM0Zo+WXXXdecePBO", "4B5B8121-2D5F-4749-8C23-9DF1143162F0", "49kj",
		"IMG_7402.MOV", "com.apple.quicktime-movie", ASSET_MOVIE,
		1532938205000LL, 1532938226865LL, 25200, 1, 0, 0, 0, NULL,
		{ 117665978, -1, 9002147, 2554283, -1, -1, -1, -1 },
		{ UMOV, NULL, UMP4, UMP4, NULL, NULL, NULL, NULL },
		{ true, 18.8231, 98.9635, 0.0, -1.0, 1532938205 } },
	{ "ATIjvJxHQ3UEEqzVXRAHP5lUVvDK", "7DDFAE17-0FBB-4B14-9E39-737136802513", "49ko",
		"IMG_7401.MOV", "com.apple.quicktime-movie", ASSET_MOVIE,
		1532938002000LL, 1532938104556LL, 25200, 1, 0, 0, 0, NULL,
		{ 565699696, -1, 42846986, 12233536, -1, -1, -1, -1 },
		{ UMOV, NULL, UMP4, UMP4, NULL, NULL, NULL, NULL },
		{ true, 18.8229, 98.9635, 0.0, -1.0, 1532938002 } },
	{ "AXE/MlykbRbSwjFfqPAr1NDaT0T1", "4068A28F-8363-40D5-9517-4F30ED8F5695", "49kp",
		"IMG_7400.JPG", "public.jpeg", ASSET_IMAGE,
		1532938000568LL, 1532938001449LL, 25200, 1, 2, 0, 0, NULL,
		{ 2308885, -1, 884119, 59311, -1, 2239365, 1238639, 350123 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.822895, 98.96353833333333, 330.4260355029586, 0.0, 978307200 } },
	{ "AULqseWEVDM/tX0Ew6z/srAwyKAE", "176FD6E6-4D5B-462E-9694-FDB4975657F5", "49jf",
		"IMG_7399.JPG", "public.jpeg", ASSET_IMAGE,
		1532937998366LL, 1532937999514LL, 25200, 1, 2, 0, 0, NULL,
		{ 2251047, -1, 858940, 58547, -1, 2885232, 1473494, 405465 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.822896666666665, 98.96357833333333, 341.247619047619, 0.0, 978307200 } },
	{ "AcE/zW3+k0ytKwyafR5OJe59/7ag", "7C816B40-72E6-4840-8B00-5A05FC049FA4", "49kq",
		"IMG_7398.MOV", "com.apple.quicktime-movie", ASSET_MOVIE,
		1532937689000LL, 1532937720114LL, 25200, 1, 0, 0, 0, NULL,
		{ 169327593, -1, 12814813, 3652285, -1, -1, -1, -1 },
		{ UMOV, NULL, UMP4, UMP4, NULL, NULL, NULL, NULL },
		{ true, 18.8231, 98.9635, 0.0, -1.0, 1532937689 } },
	{ "Acn0krU3KA2rm30x8bnpc6xkcsWr", "B0DA558F-EB77-4C80-BFEA-47C774EC4328", "49ir",
		"IMG_7397.JPG", "public.jpeg", ASSET_IMAGE,
		1532937687435LL, 1532937687983LL, 25200, 1, 2, 0, 0, NULL,
		{ 2170355, -1, 827956, 59635, -1, 1915273, 952302, 261708 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.82313, 98.96346333333334, 348.12735849056605, 0.17, 978307200 } },
	{ "AWbS6cqT2hIkhl2wihDRpigqTVNg", "2336491A-DC2F-4AB8-B3AC-2A9EF46A041E", "49ix",
		"IMG_7396.JPG", "public.jpeg", ASSET_IMAGE,
		1532937684839LL, 1532937685331LL, 25200, 1, 2, 0, 0, NULL,
		{ 2308024, -1, 863960, 57694, -1, 4101840, 2046604, 569374 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.823121666666665, 98.96346333333334,
			348.10884353741494, 0.25, 978307200 } },
	{ "AYh1M8aQGOWPNGDeUqK+BFm/KCbX", "E23165E0-9259-4671-8BE1-4FB9DA873AC2", "49iz",
		"IMG_7395.JPG", "public.jpeg", ASSET_IMAGE,
		1532937683666LL, 1532937684271LL, 25200, 1, 2, 0, 0, NULL,
		{ 2387677, -1, 908298, 61319, -1, 3520258, 1974268, 545939 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.823111666666666, 98.96347, 344.49044585987264, 0.0, 978307200 } },
	{ "AXzUPNHZ1qi0QozJYPwdnc6xi0FE", "2FC404CC-32CF-4340-AF84-5D0F71D07FCD", "49j1",
		"IMG_7394.JPG", "public.jpeg", ASSET_IMAGE,
		1532937682233LL, 1532937683685LL, 25200, 1, 2, 0, 0, NULL,
		{ 2279722, -1, 874027, 61822, -1, 2668651, 1371833, 381201 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.823111666666666, 98.96347, 343.30990415335464, 0.0, 978307200 } },
	{ "AYKIxkH55tYOUrbm6oUbxG8q4G39", "921FDF15-2E3D-48EB-B173-43654ED8796E", "49if",
		"IMG_7393.JPG", "public.jpeg", ASSET_IMAGE,
		1532937061313LL, 1532937062421LL, 25200, 6, 2, 0, 0, NULL,
		{ 1886839, -1, 693873, 71501, -1, 3414122, 1820539, 521226 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
		{ true, 18.823116666666667, 98.96343333333333,
			335.02702702702703, 0.0, 978307200 } },
	{ "AWZ4H9QhQq3X1DKRRYvbU1o/3HrQ", "0D95276A-9383-48FB-B26A-05C8F311563A", "49ia",
		"554468051.307982.jpg", "public.jpeg", ASSET_IMAGE,
		1532775252024LL, 1532775252272LL, 25200, 1, 0, 0, 0, NULL,
		{ 1360496, -1, 555282, 51539, -1, -1, -1, -1 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, NULL, NULL, NULL },
		{ false } },
	{ "Ae0CRg65J0nBmxT2ITsOpS+X2Mvo", "AFB61BE1-40F3-45A0-B61E-C438C8F8F2EF", "49hx",
		"554384976.573289.jpg", "public.jpeg", ASSET_IMAGE,
		1532692177314LL, 1532692177471LL, 25200, 1, 0, 0, 0, NULL,
		{ 2045828, -1, 885310, 90957, -1, -1, -1, -1 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, NULL, NULL, NULL },
		{ false } },
	{ "ASKlqCWiQY8q8FJPMWMGfNDL7s9g", "948A7673-8B15-42E6-A2B6-A8863BB10E4C", "49i2",
		"554384941.976158.jpg", "public.jpeg", ASSET_IMAGE,
		1532692142825LL, 1532692143105LL, 25200, 1, 0, 0, 0, NULL,
		{ 1234726, -1, 491323, 51472, -1, -1, -1, -1 },
		{ UJPEG, NULL, UJPEG, UJPEG, NULL, NULL, NULL, NULL },
		{ false } },
	{ "AbEkQURbJnN6I3DgJ3ZHwppPN/aQ", "0C5CF326-1C6C-4E79-9C4F-A4D8C1C12E46", "49hr",
		"IMG_7389.MOV", "com.apple.quicktime-movie", ASSET_MOVIE,
		1532641698000LL, 1532641716603LL, 25200, 1, 0, 0, 0, NULL,
		{ 92730686, -1, 7518440, 2160590, -1, -1, -1, -1 },
		{ UMOV, NULL, UMP4, UMP4, NULL, NULL, NULL, NULL },
		{ true, 18.8229, 98.9635, 0.0, -1.0, 1532641698 } },
	{ "AW5453H4S5pdzJTY6ECC7Rz5te9G", "166B201A-1513-4AD6-AA27-F6116D360652", "49hl",
		"IMG_7388.PNG", "public.png", ASSET_IMAGE,
		1532635840000LL, 1532635841019LL, 25200, 1, 3, 0, 0, "ScreenshotServices",
		{ 182500, -1, 129028, 40698, 233944, -1, -1, -1 },
		{ UPNG, NULL, UJPEG, UJPEG, UJPEG, NULL, NULL, NULL },
		{ false } },
	{ "AZKL5HXtRMWC3an6JNKC+qeWrssZ", "9458E5E8-E520-45BF-BF12-41B4868A352B", "49hj",
		"IMG_7387.PNG", "public.png", ASSET_IMAGE,
		1532635810000LL, 1532635810093LL, 25200, 1, 3, 0, 0, "ScreenshotServices",
		{ 131126, -1, 174315, 56991, 194924, -1, -1, -1 },
		{ UPNG, NULL, UJPEG, UJPEG, UJPEG, NULL, NULL, NULL },
		{ false } },
	{ "AWyRGLLzuY8FQW0M7EbxVGdq5Few", "E4219362-D437-477D-A4CA-2F35C4931BFC", "49hc",
		"IMG_7386.PNG", "public.png", ASSET_IMAGE,
		1532635731000LL, 1532635731101LL, 25200, 1, 3, 0, 0, "ScreenshotServices",
		{ 130948, -1, 166108, 55004, 195093, -1, -1, -1 },
		{ UPNG, NULL, UJPEG, UJPEG, UJPEG, NULL, NULL, NULL },
		{ false } },
	{ "ASTJbUtZ6E0/F4B7Wg/BuvMefoPA", "5ECBD017-414A-4B6F-B00E-72B7A79A538A", "49h5",
		"IMG_7385.PNG", "public.png", ASSET_IMAGE,
		1532635693000LL, 1532635693537LL, 25200, 1, 3, 0, 0, "ScreenshotServices",
		{ 133793, -1, 176720, 57583, 190114, -1, -1, -1 },
		{ UPNG, NULL, UJPEG, UJPEG, UJPEG, NULL, NULL, NULL },
		{ false } },
};

/* listing_videos.json: its first pair differs (a JPEG live photo, with
 * resVidSmall where the RAW page has resOriginalAlt); pairs 2-12 are
 * byte-for-byte photos[1..11]. */
static const struct want_pair videos_first = {
	"AY6c+BsE0jjaXx9tmVGJM1D2VcEO", "F2A23C38-0020-42FE-A273-2923ADE3CAED", "49lh",
	"IMG_7409.JPG", "public.jpeg", ASSET_IMAGE,
	1533021744816LL, 1533021746602LL, 25200, 6, 2, 0, 0, NULL,
	{ 1884695, -1, 664594, 66936, -1, 3294075, 1807733, 503598 },
	{ UJPEG, NULL, UJPEG, UJPEG, NULL, UMOV, UMOV, UMOV },
	{ true, 18.82285, 98.96340333333333, 326.9550561797753, 0.0, 978307200 }
};

/* listing_videos_shared.json: the shared library's one pair (2023 data). */
static const struct want_pair shared_pair = {
	"AR5gg657a+rfmRM8ThJ6m7rgIEWN", "F077877D-FF64-427D-9143-AFB7201932C4", "g",
	"solvej dk.png", "public.png", ASSET_IMAGE,
	1687281444000LL, 1739183576039LL, 28800, 1, 0, 0, 0, NULL,
	{ 93124, -1, 158779, 40957, -1, -1, -1, -1 },
	{ UPNG, NULL, UJPEG, UJPEG, NULL, NULL, NULL, NULL },
	{ false }
};

static bool near(double a, double b)
{
	return fabs(a - b) <= 1e-12 * (fabs(b) > 1 ? fabs(b) : 1);
}

static void check_pair(const struct asset *a, const struct want_pair *w, const char *zone)
{
	ck_assert_str_eq(a->master_id, w->master);
	ck_assert_str_eq(a->asset_id, w->asset); /* the master paired with its own asset */
	ck_assert_str_eq(a->zone, zone);
	ck_assert_str_eq(a->change_tag, w->change_tag);
	ck_assert_ptr_nonnull(a->filename);
	ck_assert_str_eq(a->filename, w->filename);
	ck_assert_str_eq(a->item_type, w->item_type);
	ck_assert_int_eq(a->kind, w->kind);
	ck_assert_msg(a->asset_date == w->asset_date, "%s: assetDate %lld", w->filename,
		(long long)a->asset_date);
	ck_assert_msg(a->added_date == w->added_date, "%s: addedDate %lld", w->filename,
		(long long)a->added_date);
	ck_assert_int_eq(a->tz_offset, w->tz);
	ck_assert_int_eq(a->orientation, w->orientation);
	ck_assert_int_eq(a->subtype_v2, w->subtype_v2);
	ck_assert_int_eq(a->favorite, w->favorite);
	ck_assert_int_eq(a->hidden, w->hidden);
	ck_assert(!a->deleted && !a->purged);
	ck_assert(a->date_expunged == 0);
	if (w->adjustment_type) {
		ck_assert_str_eq(a->adjustment_type, w->adjustment_type);
	} else {
		ck_assert_ptr_null(a->adjustment_type);
	}
	ck_assert_ptr_null(a->caption);
	ck_assert_ptr_null(a->description);
	for (int s = 0; s < SIZE_COUNT; s++) {
		const struct asset_version *v = &a->versions[s];

		if (w->size[s] < 0) {
			ck_assert_msg(!v->present, "%s: version %d should be absent", w->filename,
				s);
			ck_assert_ptr_null(v->url);
			continue;
		}
		ck_assert_msg(v->present, "%s: version %d missing", w->filename, s);
		ck_assert_msg(v->size == w->size[s], "%s: version %d size %lld, want %lld",
			w->filename, s, (long long)v->size, (long long)w->size[s]);
		ck_assert_str_eq(v->uti, w->uti[s]);
		ck_assert_msg(strncmp(v->url, "https://cvws.icloud-content.com/B/", 34) == 0 &&
				      strstr(v->url, "/${f}?") != NULL,
			"%s: version %d url %s", w->filename, s, v->url);
		ck_assert_uint_eq(strlen(v->checksum), 28);
	}
	/* §4.1: a master's recordName is its original's fileChecksum */
	ck_assert_str_eq(a->versions[SIZE_ORIGINAL].checksum, w->master);
	ck_assert_int_eq(a->has_location, w->loc.has);
	if (w->loc.has) {
		ck_assert_msg(near(a->latitude, w->loc.lat), "%s: lat %.17g", w->filename,
			a->latitude);
		ck_assert_msg(near(a->longitude, w->loc.lon), "%s: lon %.17g", w->filename,
			a->longitude);
		ck_assert_msg(near(a->altitude, w->loc.alt), "%s: alt %.17g", w->filename,
			a->altitude);
		ck_assert_msg(near(a->speed, w->loc.speed), "%s: speed %.17g", w->filename,
			a->speed);
		ck_assert_msg(a->location_time == w->loc.time, "%s: location time %lld",
			w->filename, (long long)a->location_time);
	}
}

/* Decode a recorded page with warnings captured; a recorded page is clean. */
static void decode_recorded(const char *file, const char *zone, struct cloudkit_page *p)
{
	size_t len;
	char *text = slurp(file, &len);
	struct captured c;

	capture_start(&c);
	ck_assert_int_eq(cloudkit_page_decode(text, len, zone, p), 0);
	capture_stop(&c);
	ck_assert_msg(c.len == 0, "warnings on a recorded page: %s", c.text);
	ck_assert_int_eq(p->skipped, 0);
	free(c.text);
	free(text);
}

START_TEST(test_recorded_every_pair_photos)
{
	struct cloudkit_page p;

	decode_recorded(RECORDINGS "listing_photos_raw_alt_adj.json", "PrimarySync", &p);
	ck_assert_uint_eq(p.masters, 24);
	ck_assert_uint_eq(p.n, 24);
	ck_assert_uint_eq(p.n, sizeof(photos) / sizeof(photos[0]));
	ck_assert_str_eq(p.sync_token, "AQAAAAAAAwmVf//////////Kd+LphRdKGbpJMSeRX5Td");
	ck_assert(!p.more_coming);
	for (size_t i = 0; i < p.n; i++) {
		ck_assert_int_eq(p.changes[i], CHANGE_NEW);
		check_pair(&p.assets[i], &photos[i], "PrimarySync");
	}
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_recorded_every_pair_videos)
{
	struct cloudkit_page p;

	decode_recorded(RECORDINGS "listing_videos.json", "PrimarySync", &p);
	ck_assert_uint_eq(p.masters, 12);
	ck_assert_uint_eq(p.n, 12);
	check_pair(&p.assets[0], &videos_first, "PrimarySync");
	for (size_t i = 1; i < p.n; i++) {
		check_pair(&p.assets[i], &photos[i], "PrimarySync");
	}
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_recorded_every_pair_shared)
{
	struct cloudkit_page p;
	const char *zone = "SharedSync-00000000-1111-2222-3333-444444444444";

	decode_recorded(RECORDINGS "listing_videos_shared.json", zone, &p);
	ck_assert_uint_eq(p.masters, 1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_str_eq(p.sync_token, "AQAAAAAAAwmVf//////////Kd+LphRdKGbpJMSeRX5Td");
	check_pair(&p.assets[0], &shared_pair, zone);
	/* keywordsEnc is a binary plist of an empty array: no keywords */
	ck_assert(p.assets[0].keywords == NULL || p.assets[0].keywords[0] == NULL);
	cloudkit_page_release(&p);
}
END_TEST


/* ---------------------------------------------------------------- bad records */

/*
 * The bad-record cases of cloudkit-photos.md (§4.3, §6.1, §10.2: icloudpd's
 * listing_photos_missing_* / bad_filename* cassettes edit the first records
 * of this same page), made by editing the real recorded page.  Each bad
 * record must be reported once, naming the record, and then skipped (or,
 * for a name or type, degraded as the spec says); the rest of the page is
 * untouched.
 */
#define M1 "AY6c+BsE0jjaXx9tmVGJM1D2VcEO" /* IMG_7409.CR2, RAW + JPEG alternative */
#define A1 "F2A23C38-0020-42FE-A273-2923ADE3CAED"
#define M2 "AR8OijSKPNBuzFZHNvRpv+yNookj" /* IMG_7408.JPG, live photo */
#define M3 "AZ/wAGT9P6jhr0NKCjLyh7KawNEx" /* IMG_7407.JPG, live photo */
#define M4 "AY+R3dhJpz0NaLm5n1dA8cdywPKa" /* IMG_7405.MOV */

static json_t *recorded_page(void)
{
	size_t len;
	char *text = slurp(RECORDINGS "listing_photos_raw_alt_adj.json", &len);
	json_t *root = json_loadb(text, len, 0, NULL);

	ck_assert_ptr_nonnull(root);
	free(text);
	return root;
}

static json_t *record_named(json_t *page, const char *name)
{
	size_t i;
	json_t *r;

	json_array_foreach(json_object_get(page, "records"), i, r) {
		if (strcmp(json_string_value(json_object_get(r, "recordName")), name) == 0) {
			return r;
		}
	}
	ck_abort_msg("no record %s in the recorded page", name);
	return NULL;
}

static json_t *fields_of(json_t *page, const char *name)
{
	return json_object_get(record_named(page, name), "fields");
}

static void drop_record(json_t *page, const char *name)
{
	json_t *recs = json_object_get(page, "records");
	size_t i;
	json_t *r;

	json_array_foreach(recs, i, r) {
		if (strcmp(json_string_value(json_object_get(r, "recordName")), name) == 0) {
			ck_assert_int_eq(json_array_remove(recs, i), 0);
			return;
		}
	}
	ck_abort_msg("no record %s in the recorded page", name);
}

/* Decode an edited page with warnings captured in c (caller frees c->text);
 * page is consumed. */
static void decode_edited(json_t *page, struct cloudkit_page *p, struct captured *c)
{
	char *text = json_dumps(page, JSON_COMPACT);

	json_decref(page);
	capture_start(c);
	ck_assert_int_eq(cloudkit_page_decode(text, strlen(text), "PrimarySync", p), 0);
	capture_stop(c);
	free(text);
}

static const struct asset *find_master(const struct cloudkit_page *p, const char *master)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->assets[i].master_id, master) == 0) {
			return &p->assets[i];
		}
	}
	return NULL;
}

START_TEST(test_recorded_missing_item_type)
{
	for (int variant = 0; variant < 2; variant++) {
		json_t *page = recorded_page();
		struct cloudkit_page p;
		struct captured c;
		const struct asset *a;

		if (variant == 0) { /* listing_photos_missing_item_type.yml */
			ck_assert_int_eq(json_object_del(fields_of(page, M1), "itemType"), 0);
		} else { /* …_missing_item_type_value.yml: itemType without value */
			json_object_set_new(fields_of(page, M1), "itemType",
				json_pack("{s:s}", "type", "STRING"));
		}
		decode_edited(page, &p, &c);
		ck_assert_uint_eq(p.n, 24);
		ck_assert_int_eq(p.skipped, 0);
		a = &p.assets[0];
		ck_assert_str_eq(a->master_id, M1);
		ck_assert_str_eq(a->asset_id, A1);
		ck_assert_ptr_null(a->item_type);
		ck_assert_int_eq(a->kind, ASSET_UNKNOWN);
		ck_assert_str_eq(a->filename, "IMG_7409.CR2");
		/* unknown is treated as an image: its image versions stay */
		ck_assert(a->versions[SIZE_ORIGINAL].size == 1884695);
		ck_assert(a->versions[SIZE_ALTERNATIVE].size == 503598);
		ck_assert(a->versions[SIZE_ADJUSTED].size == 233944);
		ck_assert_str_eq(p.assets[1].item_type, "public.jpeg");
		ck_assert_msg(count_lines(c.text) == 1, "reports: %s", c.text);
		ck_assert_int_eq(lines_with(c.text, "'" M1 "'"), 1);
		ck_assert_int_eq(lines_with(c.text, "itemType"), 1);
		free(c.text);
		cloudkit_page_release(&p);
	}
}
END_TEST

START_TEST(test_recorded_missing_filename)
{
	json_t *page = recorded_page();
	struct cloudkit_page p;
	struct captured c;

	/* listing_photos_missing_filenameEnc.yml: 1st and 3rd master */
	ck_assert_int_eq(json_object_del(fields_of(page, M1), "filenameEnc"), 0);
	ck_assert_int_eq(json_object_del(fields_of(page, M3), "filenameEnc"), 0);
	decode_edited(page, &p, &c);
	ck_assert_uint_eq(p.n, 24);
	ck_assert_int_eq(p.skipped, 0);
	/* degraded, not dropped: naming makes a name from the record name */
	ck_assert_str_eq(p.assets[0].master_id, M1);
	ck_assert_ptr_null(p.assets[0].filename);
	ck_assert(p.assets[0].versions[SIZE_ORIGINAL].size == 1884695);
	ck_assert_str_eq(p.assets[1].filename, "IMG_7408.JPG");
	ck_assert_str_eq(p.assets[2].master_id, M3);
	ck_assert_ptr_null(p.assets[2].filename);
	ck_assert(p.assets[2].versions[SIZE_ORIGINAL].size == 656257);
	ck_assert_msg(count_lines(c.text) == 2, "reports: %s", c.text);
	ck_assert_int_eq(lines_with(c.text, "'" M1 "'"), 1);
	ck_assert_int_eq(lines_with(c.text, "'" M3 "'"), 1);
	ck_assert_int_eq(lines_with(c.text, "filenameEnc"), 2);
	free(c.text);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_recorded_filename_encodings)
{
	/* the first master's filenameEnc replaced; want NULL = undecodable */
	static const struct {
		const char *value, *type, *want;
	} cases[] = {
		/* listing_photos_bad_filename_base64_encoding.yml: 17 characters */
		{ "SU1HXzc0MDkuQ1Iyx", "ENCRYPTED_BYTES", NULL },
		/* …_bad_filename_utf8_encoding.yml: decodes to 69 b7 1d 79 f8 21 */
		{ "abcdefgh", "ENCRYPTED_BYTES", NULL },
		/* an encoding type that is neither STRING nor ENCRYPTED_BYTES */
		{ "SU1HXzc0MDkuQ1Iy", "BYTES", NULL },
		/* good: …_filename_string_encoding, …_chinese, …_bad_filename.yml */
		{ "IMG_7409.CR2", "STRING", "IMG_7409.CR2" },
		{ "SU1HX+S4reaWh183NDA5LkpQRw==", "ENCRYPTED_BYTES",
			"IMG_\xe4\xb8\xad\xe6\x96\x87_7409.JPG" },
		{ "aS9uIHY6YQBsKmk/ZFxwPGE+dCJofC5KUEc=", "ENCRYPTED_BYTES",
			"i/n v:a_l*i?d\\p<a>t\"h|.JPG" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *page = recorded_page();
		struct cloudkit_page p;
		struct captured c;

		json_object_set_new(fields_of(page, M1), "filenameEnc",
			json_pack("{s:s,s:s}", "value", cases[i].value, "type", cases[i].type));
		decode_edited(page, &p, &c);
		ck_assert_uint_eq(p.n, 24);
		ck_assert_int_eq(p.skipped, 0);
		ck_assert_str_eq(p.assets[0].master_id, M1);
		ck_assert_str_eq(p.assets[1].filename, "IMG_7408.JPG");
		if (cases[i].want) {
			ck_assert_str_eq(p.assets[0].filename, cases[i].want);
			ck_assert_msg(c.len == 0, "case %zu: %s", i, c.text);
		} else {
			ck_assert_ptr_null(p.assets[0].filename);
			ck_assert_msg(count_lines(c.text) == 1, "case %zu: %s", i, c.text);
			ck_assert_int_eq(lines_with(c.text, "'" M1 "'"), 1);
			ck_assert_int_eq(lines_with(c.text, "filenameEnc"), 1);
		}
		free(c.text);
		cloudkit_page_release(&p);
	}
}
END_TEST

START_TEST(test_recorded_missing_download_url)
{
	json_t *page = recorded_page();
	json_t *res;
	struct cloudkit_page p;
	struct captured c;

	/* listing_photos_missing_downloadUrl.yml: the first master's original */
	res = json_object_get(json_object_get(fields_of(page, M1), "resOriginalRes"), "value");
	ck_assert_int_eq(json_object_del(res, "downloadURL"), 0);
	decode_edited(page, &p, &c);
	ck_assert_uint_eq(p.masters, 24);
	ck_assert_uint_eq(p.n, 23);
	ck_assert_int_eq(p.skipped, 1);
	ck_assert_ptr_null(find_master(&p, M1));
	ck_assert_str_eq(p.assets[0].master_id, M2);
	ck_assert_msg(count_lines(c.text) == 1, "reports: %s", c.text);
	ck_assert_int_eq(lines_with(c.text, "'" M1 "'"), 1);
	ck_assert_int_eq(lines_with(c.text, "downloadURL"), 1);
	ck_assert_int_eq(lines_with(c.text, "asset skipped"), 1);
	free(c.text);
	cloudkit_page_release(&p);

	/* a version other than the original: only that version goes, reported
	 * with the record that holds it (the edit is on the CPLAsset) */
	page = recorded_page();
	res = json_object_get(json_object_get(fields_of(page, A1), "resJPEGFullRes"), "value");
	ck_assert_int_eq(json_object_del(res, "downloadURL"), 0);
	res = json_object_get(json_object_get(fields_of(page, M4), "resVidMedRes"), "value");
	json_object_set_new(res, "downloadURL", json_string(""));
	decode_edited(page, &p, &c);
	ck_assert_uint_eq(p.n, 24);
	ck_assert_int_eq(p.skipped, 0);
	ck_assert(p.assets[0].versions[SIZE_ORIGINAL].size == 1884695);
	ck_assert(p.assets[0].versions[SIZE_ALTERNATIVE].size == 503598);
	ck_assert(!p.assets[0].versions[SIZE_ADJUSTED].present);
	ck_assert_str_eq(p.assets[3].master_id, M4);
	ck_assert(p.assets[3].versions[SIZE_ORIGINAL].size == 36491351);
	ck_assert(!p.assets[3].versions[SIZE_MEDIUM].present);
	ck_assert(p.assets[3].versions[SIZE_THUMB].size == 828228);
	ck_assert_msg(count_lines(c.text) == 2, "reports: %s", c.text);
	ck_assert_int_eq(lines_with(c.text, "'" A1 "'"), 1);
	ck_assert_int_eq(lines_with(c.text, "'" M4 "'"), 1);
	ck_assert_int_eq(lines_with(c.text, "version skipped"), 2);
	free(c.text);
	cloudkit_page_release(&p);

	/* a skipped asset is reported once, whatever else is wrong with it:
	 * no original at all, and no name or type either */
	page = recorded_page();
	ck_assert_int_eq(json_object_del(fields_of(page, M1), "resOriginalRes"), 0);
	ck_assert_int_eq(json_object_del(fields_of(page, M1), "filenameEnc"), 0);
	ck_assert_int_eq(json_object_del(fields_of(page, M1), "itemType"), 0);
	decode_edited(page, &p, &c);
	ck_assert_uint_eq(p.n, 23);
	ck_assert_int_eq(p.skipped, 1);
	ck_assert_ptr_null(find_master(&p, M1));
	ck_assert_msg(count_lines(c.text) == 1, "reports: %s", c.text);
	ck_assert_int_eq(lines_with(c.text, "'" M1 "'"), 1);
	ck_assert_int_eq(lines_with(c.text, "resOriginalRes"), 1);
	ck_assert_int_eq(lines_with(c.text, "asset skipped"), 1);
	free(c.text);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_recorded_unknown_types)
{
	json_t *page = recorded_page();
	struct cloudkit_page p;
	struct captured c;

	/* a record type a listing should not hold */
	json_array_append_new(json_object_get(page, "records"),
		json_pack("{s:s,s:s,s:{}}", "recordName", "F00D", "recordType", "CPLFace",
			"fields"));
	/* UTIs outside the table: the file name decides (§4.3), no report */
	json_object_set_new(fields_of(page, M2), "itemType",
		json_pack("{s:s,s:s}", "value", "com.example.unknown", "type", "STRING"));
	json_object_set_new(fields_of(page, M4), "itemType",
		json_pack("{s:s,s:s}", "value", "com.example.unknown", "type", "STRING"));
	decode_edited(page, &p, &c);
	ck_assert_uint_eq(p.n, 24);
	ck_assert_int_eq(p.skipped, 1);
	ck_assert_msg(count_lines(c.text) == 1, "reports: %s", c.text);
	ck_assert_int_eq(lines_with(c.text, "'F00D'"), 1);
	ck_assert_int_eq(lines_with(c.text, "CPLFace"), 1);
	ck_assert_str_eq(p.assets[1].master_id, M2);
	ck_assert_str_eq(p.assets[1].item_type, "com.example.unknown");
	ck_assert_int_eq(p.assets[1].kind, ASSET_IMAGE); /* IMG_7408.JPG */
	ck_assert(p.assets[1].versions[SIZE_LIVE_ORIGINAL].size == 1606512);
	ck_assert_str_eq(p.assets[3].master_id, M4);
	ck_assert_int_eq(p.assets[3].kind, ASSET_MOVIE); /* IMG_7405.MOV */
	ck_assert(p.assets[3].versions[SIZE_MEDIUM].size == 2875771);
	free(c.text);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_recorded_unpaired)
{
	json_t *page = recorded_page();
	struct cloudkit_page p;
	struct captured c;

	/* a master whose asset is not on the page */
	drop_record(page, A1);
	decode_edited(page, &p, &c);
	ck_assert_uint_eq(p.masters, 24);
	ck_assert_uint_eq(p.n, 23);
	ck_assert_int_eq(p.skipped, 1);
	ck_assert_ptr_null(find_master(&p, M1));
	ck_assert_msg(count_lines(c.text) == 1, "reports: %s", c.text);
	ck_assert_int_eq(lines_with(c.text, "'" M1 "'"), 1);
	free(c.text);
	cloudkit_page_release(&p);

	/* an asset whose master is not on the page */
	page = recorded_page();
	drop_record(page, M1);
	decode_edited(page, &p, &c);
	ck_assert_uint_eq(p.masters, 23);
	ck_assert_uint_eq(p.n, 23);
	ck_assert_int_eq(p.skipped, 1);
	ck_assert_msg(count_lines(c.text) == 1, "reports: %s", c.text);
	ck_assert_int_eq(lines_with(c.text, "'" A1 "'"), 1);
	ck_assert_int_eq(lines_with(c.text, "'" M1 "'"), 1);
	free(c.text);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_recorded_split_pages)
{
	/* the recorded masters on one page, their assets on the next: pairs wait */
	json_t *page = recorded_page();
	json_t *recs = json_object_get(page, "records");
	json_t *first = json_array(), *second = json_array();
	struct cloudkit_pairs pairs;
	struct cloudkit_page out;
	size_t i;
	json_t *r;

	json_array_foreach(recs, i, r) {
		json_array_append(i < 24 ? first : second, r);
	}
	memset(&out, 0, sizeof(out));
	cloudkit_pairs_init(&pairs, false);
	ck_assert_int_eq(cloudkit_pairs_page(&pairs, first, "PrimarySync", &out), 0);
	ck_assert_uint_eq(out.masters, 24);
	ck_assert_uint_eq(out.n, 0);
	ck_assert_int_eq(cloudkit_pairs_page(&pairs, second, "PrimarySync", &out), 0);
	ck_assert_uint_eq(out.n, 24);
	cloudkit_pairs_flush(&pairs, "PrimarySync", &out);
	ck_assert_int_eq(out.skipped, 0);
	for (i = 0; i < out.n; i++) {
		check_pair(&out.assets[i], &photos[i], "PrimarySync");
	}
	cloudkit_pairs_release(&pairs);
	cloudkit_page_release(&out);
	json_decref(first);
	json_decref(second);
	json_decref(page);
}
END_TEST

/* ---------------------------------------------------------------- synthetic */

#define URL "https://cvws.icloud-content.com/B/AAAA/${f}?e=1"
#define RES(prefix, size, uti)                                                                   \
	"\"" prefix "Res\":{\"type\":\"ASSETID\",\"value\":{\"fileChecksum\":\"AAAA\",\"size\":" #size \
	",\"downloadURL\":\"" URL "\"}},\"" prefix "FileType\":{\"type\":\"STRING\",\"value\":\"" uti "\"}"

static char *page_with(const char *master_fields, const char *asset_fields, bool with_master,
	bool with_asset)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	fprintf(f, "{\"records\":[");
	if (with_master) {
		fprintf(f, "{\"recordName\":\"M1\",\"recordType\":\"CPLMaster\",\"fields\":{%s}}",
			master_fields);
	}
	if (with_asset) {
		fprintf(f,
			"%s{\"recordName\":\"A1\",\"recordType\":\"CPLAsset\",\"recordChangeTag\":\"t1\","
			"\"fields\":{\"masterRef\":{\"type\":\"REFERENCE\",\"value\":{\"recordName\":\"M1\"}},"
			"\"assetDate\":{\"type\":\"TIMESTAMP\",\"value\":1000}%s%s}}",
			with_master ? "," : "", *asset_fields ? "," : "", asset_fields);
	}
	fprintf(f, "],\"syncToken\":\"tok\"}");
	fclose(f);
	return out;
}

static void decode(const char *mf, const char *af, bool m, bool a, struct cloudkit_page *p)
{
	char *text = page_with(mf, af, m, a);

	ck_assert_int_eq(cloudkit_page_decode(text, strlen(text), "PrimarySync", p), 0);
	free(text);
}

#define NAME_ENC(v, t) "\"filenameEnc\":{\"type\":\"" t "\",\"value\":\"" v "\"}"
#define ITEM(t) "\"itemType\":{\"type\":\"STRING\",\"value\":\"" t "\"}"
#define JPEG_ORIG RES("resOriginal", 100, "public.jpeg")

START_TEST(test_good_synthetic)
{
	struct cloudkit_page p;

	decode(NAME_ENC("SU1HXzEuSlBH", "ENCRYPTED_BYTES") "," ITEM("public.jpeg") "," JPEG_ORIG, "",
		true, true, &p);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_str_eq(p.assets[0].filename, "IMG_1.JPG");
	ck_assert(p.assets[0].asset_date == 1000);
	ck_assert(p.assets[0].added_date == INT64_MIN);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_missing_download_url)
{
	struct cloudkit_page p;

	/* original without downloadURL: the asset cannot be used */
	decode(NAME_ENC("SU1HXzEuSlBH", "ENCRYPTED_BYTES") "," ITEM("public.jpeg") ","
	       "\"resOriginalRes\":{\"type\":\"ASSETID\",\"value\":{\"size\":5}},"
	       "\"resOriginalFileType\":{\"type\":\"STRING\",\"value\":\"public.jpeg\"}",
		"", true, true, &p);
	ck_assert_uint_eq(p.n, 0);
	ck_assert_int_eq(p.skipped, 1);
	cloudkit_page_release(&p);
	/* a thumbnail without downloadURL: only that version goes */
	decode(NAME_ENC("SU1HXzEuSlBH", "ENCRYPTED_BYTES") "," ITEM("public.jpeg") "," JPEG_ORIG ","
	       "\"resJPEGThumbRes\":{\"type\":\"ASSETID\",\"value\":{\"size\":5}}",
		"", true, true, &p);
	ck_assert_uint_eq(p.n, 1);
	ck_assert(p.assets[0].versions[SIZE_ORIGINAL].present);
	ck_assert(!p.assets[0].versions[SIZE_THUMB].present);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_filename_encodings)
{
	struct cloudkit_page p;

	/* absent: degraded, not dropped */
	decode(ITEM("public.jpeg") "," JPEG_ORIG, "", true, true, &p);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_ptr_null(p.assets[0].filename);
	cloudkit_page_release(&p);
	/* STRING type: the value is the name */
	decode(NAME_ENC("IMG_2.JPG", "STRING") "," ITEM("public.jpeg") "," JPEG_ORIG, "", true, true, &p);
	ck_assert_str_eq(p.assets[0].filename, "IMG_2.JPG");
	cloudkit_page_release(&p);
	/* invalid base64 (bad padding) */
	decode(NAME_ENC("SU1HXzEuSlBHx", "ENCRYPTED_BYTES") "," ITEM("public.jpeg") "," JPEG_ORIG, "",
		true, true, &p);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_ptr_null(p.assets[0].filename);
	cloudkit_page_release(&p);
	/* "abcdefgh" decodes to bytes that are not UTF-8 (recording §10.2) */
	decode(NAME_ENC("abcdefgh", "ENCRYPTED_BYTES") "," ITEM("public.jpeg") "," JPEG_ORIG, "", true,
		true, &p);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_ptr_null(p.assets[0].filename);
	cloudkit_page_release(&p);
	/* unknown encoding type */
	decode(NAME_ENC("SU1HXzEuSlBH", "BYTES") "," ITEM("public.jpeg") "," JPEG_ORIG, "", true, true,
		&p);
	ck_assert_ptr_null(p.assets[0].filename);
	cloudkit_page_release(&p);
	/* hostile characters and a NUL survive decoding (NUL as '_') */
	decode(NAME_ENC("aS9uIHY6YQBsKmk/ZFxwPGE+dCJofC5KUEc=", "ENCRYPTED_BYTES") ","
	       ITEM("public.jpeg") "," JPEG_ORIG, "", true, true, &p);
	ck_assert_str_eq(p.assets[0].filename, "i/n v:a_l*i?d\\p<a>t\"h|.JPG");
	cloudkit_page_release(&p);
	/* UTF-8 kept as is */
	decode(NAME_ENC("SU1HX+S4reaWh183NDA5LkpQRw==", "ENCRYPTED_BYTES") "," ITEM("public.jpeg") ","
	       JPEG_ORIG, "", true, true, &p);
	ck_assert_str_eq(p.assets[0].filename, "IMG_\xe4\xb8\xad\xe6\x96\x87_7409.JPG");
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_item_types)
{
	struct cloudkit_page p;

	decode(NAME_ENC("a.JPG", "STRING") "," JPEG_ORIG, "", true, true, &p);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_ptr_null(p.assets[0].item_type);
	ck_assert_int_eq(p.assets[0].kind, ASSET_UNKNOWN);
	cloudkit_page_release(&p);
	/* itemType without value */
	decode(NAME_ENC("a.JPG", "STRING") ",\"itemType\":{\"type\":\"STRING\"}," JPEG_ORIG, "", true,
		true, &p);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_int_eq(p.assets[0].kind, ASSET_UNKNOWN);
	cloudkit_page_release(&p);
	/* unknown UTI: the name decides */
	decode(NAME_ENC("clip.MP4", "STRING") "," ITEM("public.mpeg-4") "," JPEG_ORIG, "", true, true, &p);
	ck_assert_int_eq(p.assets[0].kind, ASSET_MOVIE);
	cloudkit_page_release(&p);
	decode(NAME_ENC("pic.jpeg", "STRING") "," ITEM("public.webp") "," JPEG_ORIG, "", true, true, &p);
	ck_assert_int_eq(p.assets[0].kind, ASSET_IMAGE);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_unpaired_and_unknown)
{
	struct cloudkit_page p;
	const char *odd = "{\"records\":[{\"recordName\":\"X\",\"recordType\":\"CPLMystery\"},"
			  "{\"recordName\":\"Y\",\"serverErrorCode\":\"NOT_FOUND\"},42,"
			  "{\"recordType\":\"CPLMaster\"}]}";

	decode(ITEM("public.jpeg") "," JPEG_ORIG, "", true, false, &p);
	ck_assert_uint_eq(p.n, 0);
	ck_assert_uint_eq(p.masters, 1); /* still advances the rank */
	ck_assert_int_eq(p.skipped, 1);
	cloudkit_page_release(&p);
	decode("", "", false, true, &p);
	ck_assert_uint_eq(p.n, 0);
	ck_assert_int_eq(p.skipped, 1);
	cloudkit_page_release(&p);
	ck_assert_int_eq(cloudkit_page_decode(odd, strlen(odd), "Z", &p), 0);
	ck_assert_uint_eq(p.n, 0);
	ck_assert_int_eq(p.skipped, 4);
	cloudkit_page_release(&p);
	ck_assert_int_eq(cloudkit_page_decode("{\"records\":[", 12, "Z", &p), ICPD_EPROTO);
	cloudkit_page_release(&p);
	ck_assert_int_eq(cloudkit_page_decode("{\"records\":{}}", 14, "Z", &p), ICPD_EPROTO);
	cloudkit_page_release(&p);
	ck_assert_int_eq(cloudkit_page_decode("[]", 2, "Z", &p), ICPD_EPROTO);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_metadata)
{
	struct cloudkit_page p;
	const struct asset *a;

	decode(NAME_ENC("a.JPG", "STRING") "," ITEM("public.jpeg") "," JPEG_ORIG,
		"\"keywordsEnc\":{\"type\":\"ENCRYPTED_BYTES\",\"value\":\"YnBsaXN0MDCjAQIDVUJlYWNoaADJAHQA6QAg"
		"ADIAMAAxADhiZeVnLAgMEiMAAAAAAAABAQAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAKA==\"},"
		"\"locationEnc\":{\"type\":\"ENCRYPTED_BYTES\",\"value\":\"PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGlu"
		"Zz0iVVRGLTgiPz4KPCFET0NUWVBFIHBsaXN0IFBVQkxJQyAiLS8vQXBwbGUvL0RURCBQTElTVCAxLjAvL0VOIiAiaHR0c"
		"DovL3d3dy5hcHBsZS5jb20vRFREcy9Qcm9wZXJ0eUxpc3QtMS4wLmR0ZCI+CjxwbGlzdCB2ZXJzaW9uPSIxLjAiPgo8ZG"
		"ljdD4KCTxrZXk+YWx0PC9rZXk+Cgk8aW50ZWdlcj4xMDwvaW50ZWdlcj4KCTxrZXk+bGF0PC9rZXk+Cgk8cmVhbD40OC4"
		"1PC9yZWFsPgoJPGtleT5sbmc8L2tleT4KCTxyZWFsPi0yLjI1PC9yZWFsPgo8L2RpY3Q+CjwvcGxpc3Q+Cg==\"},"
		"\"captionEnc\":{\"type\":\"ENCRYPTED_BYTES\",\"value\":\"Q2FwdGlvbg==\"},"
		"\"extendedDescEnc\":{\"type\":\"STRING\",\"value\":\"Desc\"},"
		"\"isFavorite\":{\"type\":\"INT64\",\"value\":1},\"isHidden\":{\"type\":\"INT64\",\"value\":1},"
		"\"isDeleted\":{\"type\":\"INT64\",\"value\":1},"
		"\"dateExpunged\":{\"type\":\"TIMESTAMP\",\"value\":77},"
		"\"adjustmentType\":{\"type\":\"STRING\",\"value\":\"com.apple.photo\"},"
		"\"addedDate\":{\"type\":\"TIMESTAMP\",\"value\":2000},"
		"\"timeZoneOffset\":{\"type\":\"INT64\",\"value\":-3600}",
		true, true, &p);
	ck_assert_uint_eq(p.n, 1);
	a = &p.assets[0];
	ck_assert_ptr_nonnull(a->keywords);
	ck_assert_str_eq(a->keywords[0], "Beach");
	ck_assert_str_eq(a->keywords[1], "\xc3\x89t\xc3\xa9 2018");
	ck_assert_str_eq(a->keywords[2], "\xe6\x97\xa5\xe6\x9c\xac");
	ck_assert_ptr_null(a->keywords[3]);
	ck_assert(a->has_location);
	ck_assert(fabs(a->latitude - 48.5) < 1e-12);
	ck_assert(fabs(a->longitude + 2.25) < 1e-12); /* "lng" accepted */
	ck_assert(fabs(a->altitude - 10) < 1e-12);
	ck_assert_str_eq(a->caption, "Caption");
	ck_assert_str_eq(a->description, "Desc");
	ck_assert(a->favorite && a->hidden && a->deleted);
	ck_assert(a->date_expunged == 77);
	ck_assert_str_eq(a->adjustment_type, "com.apple.photo");
	ck_assert(a->added_date == 2000);
	ck_assert_int_eq(a->tz_offset, -3600);
	cloudkit_page_release(&p);
	/* a broken plist degrades to "no keywords", the asset stays */
	decode(NAME_ENC("a.JPG", "STRING") "," ITEM("public.jpeg") "," JPEG_ORIG,
		"\"keywordsEnc\":{\"type\":\"ENCRYPTED_BYTES\",\"value\":\"YnBsaXN0MDCjAQID\"},"
		"\"locationEnc\":{\"type\":\"ENCRYPTED_BYTES\",\"value\":\"!!!\"}",
		true, true, &p);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_ptr_null(p.assets[0].keywords);
	ck_assert(!p.assets[0].has_location);
	cloudkit_page_release(&p);
}
END_TEST

START_TEST(test_pairs_across_pages)
{
	struct cloudkit_pairs pairs;
	struct cloudkit_page page;
	char *m = page_with(ITEM("public.jpeg") "," JPEG_ORIG, "", true, false);
	char *a = page_with("", "\"isHidden\":{\"type\":\"INT64\",\"value\":1}", false, true);
	json_t *jm = json_loads(m, 0, NULL), *ja = json_loads(a, 0, NULL);
	json_t *purge = json_loads("[{\"recordName\":\"6F1C3B1E-0000-4000-8000-000000000001\","
				   "\"recordType\":null,\"deleted\":true}]", 0, NULL);

	memset(&page, 0, sizeof(page));
	cloudkit_pairs_init(&pairs, true);
	ck_assert_int_eq(cloudkit_pairs_page(&pairs, json_object_get(jm, "records"), "Z", &page), 0);
	ck_assert_uint_eq(page.n, 0); /* waits for its asset */
	ck_assert_int_eq(cloudkit_pairs_page(&pairs, json_object_get(ja, "records"), "Z", &page), 0);
	ck_assert_uint_eq(page.n, 1);
	ck_assert_int_eq(page.changes[0], CHANGE_HIDDEN);
	ck_assert_int_eq(cloudkit_pairs_page(&pairs, purge, "Z", &page), 0);
	ck_assert_uint_eq(page.n, 2);
	ck_assert_int_eq(page.changes[1], CHANGE_PURGED);
	ck_assert_str_eq(page.assets[1].asset_id, "6F1C3B1E-0000-4000-8000-000000000001");
	cloudkit_pairs_flush(&pairs, "Z", &page);
	ck_assert_int_eq(page.skipped, 0);
	cloudkit_pairs_release(&pairs);
	cloudkit_page_release(&page);
	json_decref(jm);
	json_decref(ja);
	json_decref(purge);
	free(m);
	free(a);
}
END_TEST

/* listing_albums.json in page order: recordName, decoded albumNameEnc
 * (albumType 0, no parentId, for all of them). */
static const struct {
	const char *id, *name;
} albums[] = {
	{ "2076BCB0-C481-4175-8F14-7A0E8EFAF02B", "Bilderrahmen" },
	/* Apple sends NFD (o + combining diaeresis); kept byte for byte */
	{ "1EB42751-25E0-437F-951D-5A5EB7140BD5", "Jo\xcc\x88rg" },
	{ "1D1A8AD0-070E-496B-9F6B-2FFD36BC3CD5", "Ferienhaus" },
	{ "4AEB5E06-904A-4FAE-8388-93555ED98FDB", "Trash (PhotoSweeper)" },
	{ "F2A86812-22F7-4B96-9BA2-6EF0BFFDB8EF", "Hochzeit" },
	{ "0A7632D2-07BB-4C5A-B727-052303F97480", "Garage vorher/nachher" },
	{ "72F22BEC-3AFF-45E4-8F1D-1D98C0F1A69D", "Fahrzeuge" },
	{ "67BF5262-8DC6-489D-9056-8C5C6491EA7D", "Runtastic" },
	{ "CB6A72E2-7813-4018-9BF1-D70D5E856EE4", "Wohnwagen" },
	{ "426490EA-35C8-477B-90D5-F6B8489C516F", "Monster" },
	{ "38909D3A-7B05-42D6-895C-9B603FC9D69B", "24.09.2009" },
	{ "9DBA991D-A2D5-4266-B60A-09011E7A1BB3", "Laminat Stadthagen" },
	{ "27867DE7-6B4C-4666-929D-1D67768DC1DB", "Baby Matti 2009" },
	{ "D83EE9A0-2595-49B5-892E-52BBEA8DE8CD", "30.06.2009" },
	{ "A4E5781F-56C7-4C5D-B5C4-1F749E40C22C", "WhatsApp" },
	{ "F36A6773-8723-493D-A989-074490C1B5A0", "Taufe Fotos" },
};

START_TEST(test_recorded_albums)
{
	size_t len;
	char *text = slurp(RECORDINGS "listing_albums.json", &len);
	json_t *root = json_loadb(text, len, 0, NULL), *r;
	struct cloudkit_album al[20];
	size_t n = 0, i;
	struct captured c;

	ck_assert_ptr_nonnull(root);
	ck_assert_uint_eq(json_array_size(json_object_get(root, "records")), 17);
	capture_start(&c);
	json_array_foreach(json_object_get(root, "records"), i, r) {
		if (cloudkit_album_from_record(r, &al[n]) == 0) {
			n++;
		}
	}
	capture_stop(&c);
	ck_assert_msg(c.len == 0, "warnings on the recorded albums: %s", c.text);
	free(c.text);
	ck_assert_uint_eq(n, 16); /* 17 records minus ----Root-Folder---- */
	ck_assert_uint_eq(n, sizeof(albums) / sizeof(albums[0]));
	for (i = 0; i < n; i++) {
		ck_assert_str_eq(al[i].id, albums[i].id);
		ck_assert_str_eq(al[i].name, albums[i].name);
		ck_assert_int_eq(al[i].kind, ALBUM_USER);
		ck_assert(al[i].count == -1);
		ck_assert_ptr_null(al[i].parent_id);
		free(al[i].name);
		free(al[i].id);
	}
	r = json_loads("{\"recordName\":\"F\",\"fields\":{\"albumType\":{\"value\":3},"
		       "\"albumNameEnc\":{\"value\":\"!!\"},\"parentId\":{\"value\":\"P\"}}}", 0, NULL);
	ck_assert_int_eq(cloudkit_album_from_record(r, &al[0]), 0);
	ck_assert_int_eq(al[0].kind, ALBUM_FOLDER);
	ck_assert_str_eq(al[0].name, "F"); /* undecodable name: the record name */
	ck_assert_str_eq(al[0].parent_id, "P");
	free(al[0].name);
	free(al[0].id);
	free(al[0].parent_id);
	json_decref(r);
	r = json_loads("{\"recordName\":\"D\",\"fields\":{\"isDeleted\":{\"value\":1}}}", 0, NULL);
	ck_assert_int_eq(cloudkit_album_from_record(r, &al[0]), 1);
	json_decref(r);
	json_decref(root);
	free(text);
}
END_TEST

START_TEST(test_b64)
{
	unsigned char *out;
	size_t len;

	ck_assert_int_eq(cloudkit_b64decode("SU1HXzczODguUE5H", &out, &len), 0);
	ck_assert_str_eq((char *)out, "IMG_7388.PNG");
	free(out);
	ck_assert_int_eq(cloudkit_b64decode("YQ", &out, &len), ICPD_EPROTO);
	ck_assert_int_eq(cloudkit_b64decode("YQ==", &out, &len), 0);
	ck_assert_uint_eq(len, 1);
	free(out);
	ck_assert_int_eq(cloudkit_b64decode("Y", &out, &len), ICPD_EPROTO);
	ck_assert_int_eq(cloudkit_b64decode("YQ==YQ==", &out, &len), ICPD_EPROTO);
	error_clear();
}
END_TEST


/* The fast path agrees with json_loadb on what it accepts, and leaves the
 * rest (errors included) to it. */
static void same_as_jansson(const char *text, size_t flags, bool fast_expected)
{
	size_t len = strlen(text);
	json_t *fast = cloudkit_json_fast(text, len, flags != 0);
	json_t *slow = json_loadb(text, len, flags, NULL);

	if (fast_expected) {
		ck_assert_msg(fast != NULL, "fast path gave up on %s", text);
	}
	if (fast) {
		char *a, *b;

		ck_assert_msg(slow != NULL, "fast path accepted what jansson rejects: %s", text);
		a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
		b = json_dumps(slow, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
		ck_assert_str_eq(a, b);
		ck_assert_msg(json_equal(fast, slow), "trees differ for %s", text);
		free(a);
		free(b);
	}
	json_decref(fast);
	json_decref(slow);
}

START_TEST(test_json_fast)
{
	static const char *const ok[] = {
		"{}", "[]", " \t\r\n{ \"a\" : 1 , \"b\":[true,false,null,\"x\"]}\n",
		"{\"n\":-0,\"m\":123456789012345678,\"k\":-123456789012345678}",
		"{\"r\":1.5,\"e\":-2.25e-3,\"E\":6E+2,\"z\":0.0,\"big\":1.7976931348623157e308}",
		"{\"lat\":48.858844,\"lon\":2.294351}",
		"{\"a\":1,\"a\":2}", /* the later one wins, as in jansson */
		"{\"\":\"\",\"s\":\"https://x/B/${f}?o=A&v=1\"}",
		"[[[[[[{\"deep\":[1,[2,[3]]]}]]]]]]",
	};
	static const char *const hand_over[] = {
		/* valid, but left to jansson */
		"{\"s\":\"a\\\"b\"}", "{\"s\":\"\\u00e9\"}", "{\"s\":\"caf\xc3\xa9\"}",
		"{\"i\":1234567890123456789}", "{\"i\":-9223372036854775808}", "{\"t\":1e-400}",
		/* invalid: jansson's error */
		"", " ", "1", "\"s\"", "null", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}",
		"{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":1e+}",
		"{\"a\":1e999}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}", "{\"a\":\"x\ty\"}",
		"{\"a\":\"unterminated}", "{} x", "{}{}", "[1 2]", "{\"a\":[1}", "{\"a\":123abc}",
		"{\"a\":\"\xff\"}", "\xef\xbb\xbf{}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":+1}",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		same_as_jansson(ok[i], 0, true);
	}
	for (size_t i = 0; i < sizeof(hand_over) / sizeof(hand_over[0]); i++) {
		ck_assert_msg(cloudkit_json_fast(hand_over[i], strlen(hand_over[i]), false) == NULL,
			"fast path took %s", hand_over[i]);
		same_as_jansson(hand_over[i], 0, false);
	}
	/* duplicates: jansson's error under JSON_REJECT_DUPLICATES */
	ck_assert_ptr_null(cloudkit_json_fast("{\"a\":1,\"a\":2}", 13, true));
	same_as_jansson("{\"a\":{\"a\":1},\"b\":{\"a\":2}}", JSON_REJECT_DUPLICATES, true);
	/* a NUL byte inside the length */
	ck_assert_ptr_null(cloudkit_json_fast("{\"a\":1}\0", 8, false));
	ck_assert_ptr_null(cloudkit_json_fast("{\"a\0\":1}", 8, false));
	/* nesting: jansson stops at 2048 values deep, the fast path well before */
	{
		char deep[3000];
		size_t n = 0;

		for (int i = 0; i < 1200; i++) {
			deep[n++] = '[';
		}
		for (int i = 0; i < 1200; i++) {
			deep[n++] = ']';
		}
		deep[n] = '\0';
		ck_assert_ptr_null(cloudkit_json_fast(deep, n, false));
		same_as_jansson(deep, 0, false);
	}
}
END_TEST

/* Recorded pages: the fast path takes them and builds jansson's tree. */
START_TEST(test_json_fast_recorded)
{
	static const char *const files[] = { "listing_photos_raw_alt_adj.json", "listing_videos.json",
		"listing_albums.json" };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[512];
		size_t len;
		char *text;
		json_t *fast, *slow;

		snprintf(path, sizeof(path), RECORDINGS "%s", files[i]);
		text = slurp(path, &len);
		fast = cloudkit_json_fast(text, len, false);
		slow = json_loadb(text, len, 0, NULL);
		ck_assert_ptr_nonnull(slow);
		ck_assert_msg(fast != NULL, "fast path gave up on %s", files[i]);
		ck_assert(json_equal(fast, slow));
		json_decref(fast);
		json_decref(slow);
		free(text);
	}
}
END_TEST

static int other_allocs;

static void *other_malloc(size_t n)
{
	other_allocs++;
	return malloc(n);
}

/* Trees decoded in the arena are freed at any time, in any order, with
 * blocks from plain malloc mixed in; a record kept past its page pins only
 * its chunk; someone else's allocation functions are left in place. */
START_TEST(test_arena)
{
	json_malloc_t m;
	json_free_t f;
	json_t *a, *b, *keep, *plain;
	char text[4096];
	size_t n = 0;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"records\":[");
	for (int i = 0; i < 100; i++) {
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s{\"recordName\":\"r%d\",\"v\":%d}",
			i ? "," : "", i, i);
	}
	snprintf(text + n, sizeof(text) - n, "]}");

	plain = json_loads(text, 0, NULL); /* before the arena is installed */
	cloudkit_arena_begin();
	a = json_loads(text, 0, NULL);
	cloudkit_arena_begin(); /* nests */
	b = cloudkit_json_fast(text, strlen(text), false);
	cloudkit_arena_end();
	cloudkit_arena_end();
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert(json_equal(a, b));
	ck_assert(json_equal(a, plain));
	keep = json_incref(json_array_get(json_object_get(a, "records"), 42));
	json_decref(a);
	ck_assert_int_eq(json_integer_value(json_object_get(keep, "v")), 42);
	json_object_set_new(keep, "late", json_string("made outside a decode"));
	json_decref(plain);
	cloudkit_arena_begin();
	a = cloudkit_json_fast(text, strlen(text), false);
	cloudkit_arena_end();
	json_decref(b);
	json_decref(keep);
	json_decref(a);

	json_get_alloc_funcs(&m, &f);
	json_set_alloc_funcs(other_malloc, free);
	other_allocs = 0;
	cloudkit_arena_begin();
	a = cloudkit_json_fast(text, strlen(text), false);
	cloudkit_arena_end();
	ck_assert_int_gt(other_allocs, 100);
	json_decref(a);
	{
		json_malloc_t m2;
		json_free_t f2;

		json_get_alloc_funcs(&m2, &f2);
		ck_assert(m2 == other_malloc && f2 == free);
	}
	json_set_alloc_funcs(m, f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cloudkit_record");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_recorded_raw_alt_adj);
	tcase_add_test(tc, test_recorded_videos);
	tcase_add_test(tc, test_recorded_every_pair_photos);
	tcase_add_test(tc, test_recorded_every_pair_videos);
	tcase_add_test(tc, test_recorded_every_pair_shared);
	tcase_add_test(tc, test_recorded_missing_item_type);
	tcase_add_test(tc, test_recorded_missing_filename);
	tcase_add_test(tc, test_recorded_filename_encodings);
	tcase_add_test(tc, test_recorded_missing_download_url);
	tcase_add_test(tc, test_recorded_unknown_types);
	tcase_add_test(tc, test_recorded_unpaired);
	tcase_add_test(tc, test_recorded_split_pages);
	tcase_add_test(tc, test_lookup_version_matches_listing);
	tcase_add_test(tc, test_good_synthetic);
	tcase_add_test(tc, test_missing_download_url);
	tcase_add_test(tc, test_filename_encodings);
	tcase_add_test(tc, test_item_types);
	tcase_add_test(tc, test_unpaired_and_unknown);
	tcase_add_test(tc, test_metadata);
	tcase_add_test(tc, test_pairs_across_pages);
	tcase_add_test(tc, test_recorded_albums);
	tcase_add_test(tc, test_b64);
	tcase_add_test(tc, test_json_fast);
	tcase_add_test(tc, test_json_fast_recorded);
	tcase_add_test(tc, test_arena);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	log_setup(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
