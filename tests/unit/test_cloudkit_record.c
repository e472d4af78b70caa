/*
 * Decoder tests: real pages recorded by icloudpd (fixtures/cloudkit/, MIT —
 * see LICENSE.icloudpd there; extracted by extract.py) and the bad-record
 * cases of cloudkit-photos.md §4 / §10.2.
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

#define FIXTURES SOURCE_ROOT "/tests/unit/fixtures/cloudkit/"

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
	char *text = slurp(FIXTURES "listing_photos_raw_alt_adj.json", &len);
	struct cloudkit_page p;
	const struct asset *a;

	ck_assert_int_eq(cloudkit_page_decode(text, len, "PrimarySync", &p), 0);
	ck_assert_uint_eq(p.n, 12);
	ck_assert_uint_eq(p.masters, 12);
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

START_TEST(test_recorded_videos)
{
	size_t len;
	char *text = slurp(FIXTURES "listing_videos.json", &len);
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

START_TEST(test_recorded_albums)
{
	size_t len;
	char *text = slurp(FIXTURES "listing_albums.json", &len);
	json_t *root = json_loadb(text, len, 0, NULL), *r;
	struct cloudkit_album al[20];
	size_t n = 0, i;

	ck_assert_ptr_nonnull(root);
	json_array_foreach(json_object_get(root, "records"), i, r) {
		if (cloudkit_album_from_record(r, &al[n]) == 0) {
			n++;
		}
	}
	ck_assert_uint_eq(n, 16); /* 17 records minus ----Root-Folder---- */
	ck_assert_str_eq(al[0].name, "Bilderrahmen");
	ck_assert_str_eq(al[0].id, "2076BCB0-C481-4175-8F14-7A0E8EFAF02B");
	/* Apple sends NFD (o + combining diaeresis); kept byte for byte */
	ck_assert_str_eq(al[1].name, "Jo\xcc\x88rg");
	ck_assert_str_eq(al[5].name, "Garage vorher/nachher");
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(al[i].kind, ALBUM_USER);
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

		snprintf(path, sizeof(path), FIXTURES "%s", files[i]);
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
