/*
 * naming: icloudpd's file-name and folder rules with the spec's own examples
 * (cloudkit-photos.md §4.3, §4.4, §6.1, §6.2, §6.6; tooling.md §4d), and the
 * safety pass icloudpd lacks.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "icpd/asset.h"
#include "icpd/error.h"
#include "icpd/naming.h"

/* 2018-07-31 07:22:24.816 UTC, IMG_7409 in icloudpd's tests */
#define DATE_7409 1533021744816LL

static void set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

#define ck_str_free(expr, want)                                                                  \
	do {                                                                                     \
		char *got_ = (expr);                                                             \
		ck_assert_str_eq(got_, want);                                                    \
		free(got_);                                                                      \
	} while (0)

START_TEST(test_ext_offset)
{
	/* Python os.path.splitext */
	ck_assert_uint_eq(naming_ext_offset("IMG_7409.JPG"), 8);
	ck_assert_uint_eq(naming_ext_offset("IMG.1234.HEIC"), 8);
	ck_assert_uint_eq(naming_ext_offset(".JPG"), 4);   /* leading dot: no extension */
	ck_assert_uint_eq(naming_ext_offset("..JPG"), 5);
	ck_assert_uint_eq(naming_ext_offset("noext"), 5);
	ck_assert_uint_eq(naming_ext_offset("IMG."), 3);   /* extension "." */
	ck_assert_uint_eq(naming_ext_offset("a..b"), 2);
	ck_assert_uint_eq(naming_ext_offset(""), 0);
}
END_TEST

START_TEST(test_uti_table)
{
	static const char *const rows[][2] = {
		{ "public.heic", "HEIC" }, { "public.heif", "HEIF" }, { "public.jpeg", "JPG" },
		{ "public.png", "PNG" }, { "com.apple.quicktime-movie", "MOV" },
		{ "com.adobe.raw-image", "DNG" }, { "com.canon.cr2-raw-image", "CR2" },
		{ "com.canon.crw-raw-image", "CRW" }, { "com.sony.arw-raw-image", "ARW" },
		{ "com.fuji.raw-image", "RAF" }, { "com.panasonic.rw2-raw-image", "RW2" },
		{ "com.nikon.nrw-raw-image", "NRF" }, { "com.pentax.raw-image", "PEF" },
		{ "com.nikon.raw-image", "NEF" }, { "com.olympus.raw-image", "ORF" },
		{ "com.canon.cr3-raw-image", "CR3" }, { "com.olympus.or-raw-image", "ORF" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ck_assert_msg(naming_uti_ext(rows[i][0]) != NULL, "%s unmapped", rows[i][0]);
		ck_assert_str_eq(naming_uti_ext(rows[i][0]), rows[i][1]);
	}
	ck_assert_ptr_null(naming_uti_ext("org.webmproject.webp")); /* icloudpd keeps .webp */
	ck_assert_ptr_null(naming_uti_ext("com.compuserve.gif"));
	ck_assert_ptr_null(naming_uti_ext("public.mpeg-4"));
	ck_assert_ptr_null(naming_uti_ext(NULL));
	ck_assert(naming_uti_is_raw("com.canon.cr2-raw-image"));
	ck_assert(naming_uti_is_raw("com.adobe.raw-image"));
	ck_assert(!naming_uti_is_raw("public.jpeg"));
	ck_assert(!naming_uti_is_raw(NULL));
}
END_TEST

START_TEST(test_item_kind)
{
	/* §4.3 */
	ck_assert_int_eq(naming_item_kind("public.heic", "x.mov"), ASSET_IMAGE);
	ck_assert_int_eq(naming_item_kind("public.jpeg", NULL), ASSET_IMAGE);
	ck_assert_int_eq(naming_item_kind("com.sony.arw-raw-image", "a"), ASSET_IMAGE);
	ck_assert_int_eq(naming_item_kind("com.apple.quicktime-movie", "x.jpg"), ASSET_MOVIE);
	/* other UTIs: by the file name's extension */
	ck_assert_int_eq(naming_item_kind("public.mpeg-4", "clip.mp4"), ASSET_MOVIE);
	ck_assert_int_eq(naming_item_kind("com.compuserve.gif", "anim.gif"), ASSET_MOVIE);
	ck_assert_int_eq(naming_item_kind("org.webmproject.webp", "a.JPeG"), ASSET_IMAGE);
	ck_assert_int_eq(naming_item_kind("org.webmproject.webp", "a.PNG"), ASSET_IMAGE);
	ck_assert_int_eq(naming_item_kind("org.webmproject.webp", "a.heic"), ASSET_IMAGE);
	ck_assert_int_eq(naming_item_kind("org.webmproject.webp", "a.webp"), ASSET_MOVIE);
	ck_assert_int_eq(naming_item_kind("org.webmproject.webp", NULL), ASSET_MOVIE);
	ck_assert_int_eq(naming_item_kind(NULL, "a.jpg"), ASSET_UNKNOWN);
}
END_TEST

START_TEST(test_clean)
{
	/* §6.1-3: icloudpd's test name, minus the NUL a C string cannot hold */
	ck_str_free(naming_clean("i/n v:al*i?d\\p<a>t\"h|.JPG", false),
		"i_n v_al_i_d_p_a_t_h_.JPG");
	/* nothing else is touched: spaces, dots, control characters */
	ck_str_free(naming_clean(" a..b\tc ", false), " a..b\tc ");
	/* §6.1-4 */
	ck_str_free(naming_clean("IMG_中文_7409.JPG", false), "IMG__7409.JPG");
	ck_str_free(naming_clean("IMG_中文_7409.JPG", true), "IMG_中文_7409.JPG");
	/* macOS screenshot: U+202F before PM vanishes (tooling.md §4d) */
	ck_str_free(naming_clean("Screenshot 3.14.15\xe2\x80\xafPM.png", false),
		"Screenshot 3.14.15PM.png");
	ck_str_free(naming_clean("a/b:c", true), "a_b_c");
}
END_TEST

START_TEST(test_fallback_and_id7)
{
	char id7[8];

	/* §6.1-2 */
	ck_str_free(naming_fallback("AY6c+BsE0jjaXx9tmVGJM1D2VcEO", "public.jpeg"),
		"AY6c_BsE0jja.JPG");
	ck_str_free(naming_fallback("AZ/wAGT9P6jhr0NKCjLyh7KawNEx", "public.jpeg"),
		"AZ_wAGT9P6jh.JPG");
	ck_str_free(naming_fallback("AY6c+BsE0jjaXx9tmVGJM1D2VcEO", NULL), "AY6c_BsE0jja.unknown");
	ck_str_free(naming_fallback("AY6c+BsE0jjaXx9tmVGJM1D2VcEO", "public.mpeg-4"),
		"AY6c_BsE0jja.unknown");
	ck_str_free(naming_fallback("short", "public.heic"), "short.HEIC");
	/* one '_' per non-ASCII code point, as Python's re.sub */
	ck_str_free(naming_fallback("\xc3\xa9t\xc3\xa9", "public.png"), "_t_.PNG");
	/* §6.1-5 */
	naming_id7("AY6c+BsE0jjaXx9tmVGJM1D2VcEO", id7);
	ck_assert_str_eq(id7, "QVk2Yyt");
	naming_id7("AdEGM0sVpcQ1yXXRJ1ylUq6Bjb0V", id7);
	ck_assert_str_eq(id7, "QWRFR00");
	naming_id7("abcdef", id7);
	ck_assert_str_eq(id7, "YWJjZGV");
	naming_id7("ab", id7); /* Python's [:7] of "YWI=" */
	ck_assert_str_eq(id7, "YWI=");
}
END_TEST

START_TEST(test_base)
{
	struct asset a;

	asset_init(&a);
	a.master_id = "AY6c+BsE0jjaXx9tmVGJM1D2VcEO";
	a.item_type = "public.jpeg";
	a.filename = "IMG_7409.JPG";
	ck_str_free(naming_base(&a, false, MATCH_NAME_SIZE_DEDUP), "IMG_7409.JPG");
	ck_str_free(naming_base(&a, false, MATCH_NAME_ID7), "IMG_7409_QVk2Yyt.JPG");
	a.filename = "IMG_中文_7409.JPG";
	ck_str_free(naming_base(&a, false, MATCH_NAME_ID7), "IMG__7409_QVk2Yyt.JPG");
	ck_str_free(naming_base(&a, true, MATCH_NAME_SIZE_DEDUP), "IMG_中文_7409.JPG");
	a.filename = NULL;
	ck_str_free(naming_base(&a, false, MATCH_NAME_SIZE_DEDUP), "AY6c_BsE0jja.JPG");
	ck_str_free(naming_base(&a, false, MATCH_NAME_ID7), "AY6c_BsE0jja_QVk2Yyt.JPG");
}
END_TEST

START_TEST(test_version_names)
{
	const char *mov = "com.apple.quicktime-movie";

	/* §6.2 live-photo rule, policy suffix */
	ck_str_free(naming_version("IMG.1234.HEIC", ASSET_IMAGE, mov, LIVE_MOV_SUFFIX),
		"IMG.1234_HEVC.MOV");
	ck_str_free(naming_version("IMG_1234.JPG", ASSET_IMAGE, mov, LIVE_MOV_SUFFIX),
		"IMG_1234.MOV");
	ck_str_free(naming_version("X.HEIF", ASSET_IMAGE, mov, LIVE_MOV_SUFFIX), "X.MOV");
	ck_str_free(naming_version("IMG_0512.heic", ASSET_IMAGE, mov, LIVE_MOV_SUFFIX),
		"IMG_0512_HEVC.MOV");
	ck_str_free(naming_version("noext", ASSET_IMAGE, mov, LIVE_MOV_SUFFIX), "noext");
	ck_str_free(naming_version("AY6c_BsE0jja.JPG", ASSET_UNKNOWN, mov, LIVE_MOV_SUFFIX),
		"AY6c_BsE0jja.MOV");
	/* policy original */
	ck_str_free(naming_version("IMG_0512.HEIC", ASSET_IMAGE, mov, LIVE_MOV_ORIGINAL),
		"IMG_0512.MOV");
	ck_str_free(naming_version("noext", ASSET_IMAGE, mov, LIVE_MOV_ORIGINAL), "noext");
	/* a movie's own QuickTime file follows the table, not the live rule */
	ck_str_free(naming_version("IMG_0001.heic", ASSET_MOVIE, mov, LIVE_MOV_SUFFIX),
		"IMG_0001.MOV");
	/* extension from the UTI */
	ck_str_free(naming_version("IMG_0001.jpeg", ASSET_IMAGE, "public.jpeg", LIVE_MOV_SUFFIX),
		"IMG_0001.JPG");
	ck_str_free(naming_version("IMG_0001.HEIC", ASSET_IMAGE, "public.jpeg", LIVE_MOV_SUFFIX),
		"IMG_0001.JPG");
	ck_str_free(naming_version("IMG_7409.CR2", ASSET_IMAGE, "com.canon.cr2-raw-image",
			    LIVE_MOV_SUFFIX), "IMG_7409.CR2");
	/* unmapped UTI keeps the name's extension; none leaves a trailing dot */
	ck_str_free(naming_version("a.webp", ASSET_IMAGE, "org.webmproject.webp", LIVE_MOV_SUFFIX),
		"a.webp");
	ck_str_free(naming_version("a", ASSET_IMAGE, "org.webmproject.webp", LIVE_MOV_SUFFIX), "a.");
	ck_str_free(naming_version("a.gif", ASSET_IMAGE, NULL, LIVE_MOV_SUFFIX), "a.gif");
	/* tooling.md §4d, hostile names seen with the real icloudpd */
	{
		char *b = naming_clean("../x.jpg", false);

		ck_str_free(naming_version(b, ASSET_IMAGE, "public.heic", LIVE_MOV_SUFFIX),
			".._x.HEIC");
		free(b);
		b = naming_clean("a/b/c.jpg", false);
		ck_str_free(naming_version(b, ASSET_IMAGE, "public.jpeg", LIVE_MOV_SUFFIX),
			"a_b_c.JPG");
		free(b);
	}
	ck_str_free(naming_version("noext", ASSET_IMAGE, "public.heic", LIVE_MOV_SUFFIX),
		"noext.HEIC");
}
END_TEST

START_TEST(test_suffixes)
{
	ck_str_free(naming_insert_suffix("IMG_7409.JPG", "-thumb"), "IMG_7409-thumb.JPG");
	ck_str_free(naming_insert_suffix("IMG_7409_QVk2Yyt.JPG", "-thumb"),
		"IMG_7409_QVk2Yyt-thumb.JPG");
	ck_str_free(naming_insert_suffix(".hidden", "-x"), ".hidden-x");
	ck_str_free(naming_insert_suffix("IMG_0512_HEVC.MOV", "-medium"), "IMG_0512_HEVC-medium.MOV");
	/* §6.7 rsplit('.', 1) on the whole path */
	ck_str_free(naming_insert_before_last_dot("2018/07/31/IMG_7409.JPG", "-1884695"),
		"2018/07/31/IMG_7409-1884695.JPG");
	ck_str_free(naming_insert_before_last_dot("2018/07/31/IMG", "-5"), "2018/07/31/IMG");
	ck_str_free(naming_insert_before_last_dot("a.b/IMG", "-5"), "a-5.b/IMG");
}
END_TEST

START_TEST(test_safe_name)
{
	char big[600];
	char *s;

	/* unchanged where icloudpd's name is already safe */
	ck_str_free(naming_safe_name("IMG_7409.JPG", 255), "IMG_7409.JPG");
	ck_str_free(naming_safe_name(".._x.HEIC", 255), ".._x.HEIC");
	ck_str_free(naming_safe_name("IMG_中文.JPG", 255), "IMG_中文.JPG");
	ck_str_free(naming_safe_name("a.", 255), "a.");
	/* control characters (C0, DEL, C1) become '_' */
	ck_str_free(naming_safe_name("a\tb\nc\x7f" "d\x1b[31m.JPG", 255), "a_b_c_d_[31m.JPG");
	ck_str_free(naming_safe_name("x\xc2\x85y.JPG", 255), "x_y.JPG");
	/* invalid UTF-8 */
	ck_str_free(naming_safe_name("a\xff\xfe" "b.JPG", 255), "a__b.JPG");
	ck_str_free(naming_safe_name("a\xc0\xaf.JPG", 255), "a__.JPG");     /* overlong '/' */
	ck_str_free(naming_safe_name("a\xed\xa0\x80.JPG", 255), "a___.JPG"); /* surrogate */
	ck_str_free(naming_safe_name("a\xe4\xb8.JPG", 255), "a__.JPG");     /* truncated */
	/* separators never survive */
	ck_str_free(naming_safe_name("a/b", 255), "a_b");
	/* names that mean something else */
	ck_str_free(naming_safe_name("", 255), "_");
	ck_str_free(naming_safe_name(".", 255), "_.");
	ck_str_free(naming_safe_name("..", 255), "_..");
	/* length: at most max bytes, extension kept */
	memset(big, 'a', 300);
	memcpy(big + 300, ".JPG", 5);
	s = naming_safe_name(big, 255);
	ck_assert_uint_eq(strlen(s), 255);
	ck_assert(strcmp(s + 251, ".JPG") == 0);
	free(s);
	s = naming_safe_name(big, 251);
	ck_assert_uint_eq(strlen(s), 251);
	ck_assert(strcmp(s + 247, ".JPG") == 0);
	free(s);
	/* max above NAME_MAX is clamped */
	s = naming_safe_name(big, 4000);
	ck_assert_uint_eq(strlen(s), 255);
	free(s);
}
END_TEST

START_TEST(test_safe_name_utf8_boundary)
{
	char big[600] = "";
	char *s;
	size_t n;

	for (int i = 0; i < 100; i++) {
		strcat(big, "中"); /* 3 bytes each */
	}
	strcat(big, ".HEIC");
	s = naming_safe_name(big, 255);
	n = strlen(s);
	/* 250 bytes left for the stem: 83 whole characters = 249 bytes */
	ck_assert_uint_eq(n, 249 + 5);
	ck_assert_str_eq(s + 249, ".HEIC");
	for (size_t i = 0; i < 249; i += 3) {
		ck_assert(memcmp(s + i, "中", 3) == 0);
	}
	free(s);
	/* a giant "extension" is cut too */
	memset(big, 0, sizeof(big));
	big[0] = 'a';
	big[1] = '.';
	memset(big + 2, 'x', 400);
	s = naming_safe_name(big, 255);
	ck_assert_uint_eq(strlen(s), 255);
	free(s);
}
END_TEST

START_TEST(test_safe_name_keep_tail)
{
	char big[400];
	char *s;

	memset(big, 'a', 300);
	memcpy(big + 300, "-thumb.JPG", 11);
	s = naming_safe_name_keep(big, 255, 6);
	ck_assert_uint_eq(strlen(s), 255);
	ck_assert_str_eq(s + 245, "-thumb.JPG");
	free(s);
	/* without keep_tail the suffix is cut away */
	s = naming_safe_name(big, 255);
	ck_assert_str_eq(s + 245, "aaaaaa.JPG");
	free(s);
	/* a short name is never changed, whatever keep_tail says */
	s = naming_safe_name_keep("IMG-thumb.JPG", 255, 6);
	ck_assert_str_eq(s, "IMG-thumb.JPG");
	free(s);
	/* an absurd keep_tail is ignored rather than overflowing the limit */
	s = naming_safe_name_keep(big, 255, 290);
	ck_assert_uint_eq(strlen(s), 255);
	free(s);
}
END_TEST

START_TEST(test_path_is_safe)
{
	char big[300];

	ck_assert(naming_path_is_safe("2018/07/31/IMG_7409.JPG"));
	ck_assert(naming_path_is_safe("IMG_7409.JPG"));
	ck_assert(naming_path_is_safe(".._x.HEIC"));
	ck_assert(naming_path_is_safe("a/...b"));
	ck_assert(!naming_path_is_safe(""));
	ck_assert(!naming_path_is_safe(NULL));
	ck_assert(!naming_path_is_safe("/etc/passwd"));
	ck_assert(!naming_path_is_safe("../x.jpg"));
	ck_assert(!naming_path_is_safe("a/../../x.jpg"));
	ck_assert(!naming_path_is_safe("a/./x.jpg"));
	ck_assert(!naming_path_is_safe("a//x.jpg"));
	ck_assert(!naming_path_is_safe("a/x.jpg/"));
	ck_assert(!naming_path_is_safe(".."));
	ck_assert(!naming_path_is_safe("."));
	ck_assert(!naming_path_is_safe("a/b\nc.jpg"));
	memset(big, 'a', 256);
	big[256] = '\0';
	ck_assert(!naming_path_is_safe(big));
	big[255] = '\0';
	ck_assert(naming_path_is_safe(big));
}
END_TEST

static char *folder(const char *tmpl, bool os_locale, int64_t ms)
{
	struct naming_folder *f = NULL;
	char *out = NULL;
	int err = naming_folder_compile(tmpl, os_locale, &f);

	ck_assert_msg(err == 0, "compile '%s': %s", tmpl, error_message());
	err = naming_folder_format(f, ms, &out);
	ck_assert_msg(err == 0, "format '%s': %s", tmpl, error_message());
	naming_folder_free(f);
	return out;
}

static int folder_err(const char *tmpl, int64_t ms)
{
	struct naming_folder *f = NULL;
	char *out = NULL;
	int err = naming_folder_compile(tmpl, false, &f);

	if (err == 0) {
		err = naming_folder_format(f, ms, &out);
	}
	free(out);
	naming_folder_free(f);
	return err;
}

START_TEST(test_folder_default_and_tz)
{
	set_tz("UTC");
	ck_str_free(folder(NULL, false, DATE_7409), "2018/07/31");
	ck_str_free(folder("{:%Y/%m/%d}", false, DATE_7409), "2018/07/31");
	/* host zone, not the photo's: 07:22 UTC is the 31st in Tokyo, the 31st
	 * 00:22 in Los Angeles, and 2020-11-04 01:00 UTC is the 3rd in New York */
	set_tz("Asia/Tokyo");
	ck_str_free(folder(NULL, false, DATE_7409), "2018/07/31");
	set_tz("America/New_York");
	ck_str_free(folder(NULL, false, 1604451600000LL), "2020/11/03");
	set_tz("UTC");
	ck_str_free(folder(NULL, false, 1604451600000LL), "2020/11/04");
	/* missing date: the epoch in local time */
	ck_str_free(folder(NULL, false, INT64_MIN), "1970/01/01");
	set_tz("America/Los_Angeles");
	ck_str_free(folder(NULL, false, INT64_MIN), "1969/12/31");
	/* before 1970: floor, not truncation (-1 ms is 1969-12-31 23:59:59.999 UTC) */
	set_tz("UTC");
	ck_str_free(folder("{:%Y-%m-%d %H:%M:%S.%f}", false, -1), "1969-12-31 23:59:59.999000");
	set_tz("UTC");
}
END_TEST

START_TEST(test_folder_syntax)
{
	set_tz("UTC");
	ck_str_free(folder("none", false, DATE_7409), "");
	ck_str_free(folder("NoNe", false, DATE_7409), "");
	ck_str_free(folder("{0:%Y/%m}", false, DATE_7409), "2018/07");
	ck_str_free(folder("photos/{:%Y}/x", false, DATE_7409), "photos/2018/x");
	ck_str_free(folder("{{lit}}/{:%Y}", false, DATE_7409), "{lit}/2018");
	ck_str_free(folder("{:%Y/%B}", false, DATE_7409), "2018/July"); /* C locale */
	ck_str_free(folder("{:%Y}-{:%b}-{:%A}", false, DATE_7409), "2018-Jul-Tuesday");
	ck_str_free(folder("{:%f}", false, DATE_7409), "816000");
	ck_str_free(folder("{:%%f%Y}", false, DATE_7409), "%f2018");
	ck_str_free(folder("{:%z %Z}", false, DATE_7409), "+0000 UTC");
	/* plain strftime (icpd extension) */
	ck_str_free(folder("%Y/%m/%d", false, DATE_7409), "2018/07/31");
	/* Python str(datetime) for {} */
	ck_str_free(folder("{}", false, DATE_7409), "2018-07-31 07:22:24.816000+00:00");
	/* normpath */
	ck_str_free(folder("a//b/./{:%Y}/", false, DATE_7409), "a/b/2018");
	ck_str_free(folder("", false, DATE_7409), "");
	ck_str_free(folder("literal", false, DATE_7409), "literal");
	/* years below 1000 are not zero-padded by glibc: 0005-01-01 UTC */
	ck_str_free(folder(NULL, false, -62009366400000LL), "5/01/01");
	/* extreme dates (found by fuzz_folder_template): no overflow; a date
	 * localtime cannot represent falls back to the epoch, as icloudpd */
	ck_str_free(folder("{:%Y}", false, INT64_MIN + 1), "1970");
	ck_str_free(folder("{:%Y}", false, INT64_MAX), "1970");
	ck_str_free(folder("{:%f}", false, -1001), "999000");
	/* an empty strftime result is not an error */
	ck_str_free(folder("{:%p}x", false, DATE_7409), "AMx");
}
END_TEST

START_TEST(test_folder_errors)
{
	set_tz("UTC");
	ck_assert_int_eq(folder_err("{", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("{:%Y", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("}", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("{:%Y}}x}", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("{1:%Y}", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("{name}", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("{0.year}", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("{:{x}}", DATE_7409), ICPD_EUSAGE);
	/* never leave --directory */
	ck_assert_int_eq(folder_err("/abs/{:%Y}", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("{:%Y}/../../x", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("..", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("%Y/../x", DATE_7409), ICPD_EUSAGE);
	ck_assert_int_eq(folder_err("a\nb/{:%Y}", DATE_7409), ICPD_EUSAGE);
	ck_assert(strstr(error_message(), "folder") != NULL);
	ck_assert_int_eq(folder_err("{:%Y}/...", DATE_7409), 0); /* "..." is a plain name */
}
END_TEST

/* glibc keeps the locale search path it builds from LOCPATH in a static
 * cache that is never freed (allocated in __argz_add_sep inside newlocale);
 * tell LeakSanitizer that this one libc allocation is not ours.  The hook is
 * only called in sanitizer builds. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:__argz_add_sep\n";
}

/* §6.6 / §6.9: {:%Y/%B} with --use-os-locale under de_DE → 2018/Juli.  The
 * locale is compiled into a private directory with localedef (Debian
 * package "locales") and found through LOCPATH.  The check itself runs in a
 * child process (this binary with --os-locale DIR): glibc's newlocale leaks
 * the LOCPATH search list, and valgrind, which does not follow exec, must not
 * count that against us. */
static const char *self_path;

/* Plain C, no ck_assert: Check cannot report from outside a test run. */
static int child_folder(const char *tmpl, bool os_locale, const char *want)
{
	struct naming_folder *f = NULL;
	char *got = NULL;
	int ok = naming_folder_compile(tmpl, os_locale, &f) == 0 &&
		naming_folder_format(f, DATE_7409, &got) == 0 && strcmp(got, want) == 0;

	printf("%s%s: '%s', want '%s'\n", tmpl, os_locale ? " (OS locale)" : "",
		got ? got : error_message(), want);
	free(got);
	naming_folder_free(f);
	return ok;
}

static int os_locale_child(const char *dir)
{
	int ok;

	setenv("LOCPATH", dir, 1);
	setenv("LC_ALL", "de_DE.UTF-8", 1);
	set_tz("UTC");
	ok = child_folder("{:%Y/%B}", true, "2018/Juli");
	/* without --use-os-locale the same environment gives English */
	ok &= child_folder("{:%Y/%B}", false, "2018/July");
	return ok ? 0 : 1;
}

START_TEST(test_folder_os_locale)
{
	char dir[] = "/tmp/icpd-test-locale-XXXXXX";
	char cmd[512];
	int rc;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		"localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1", dir);
	rc = system(cmd);
	snprintf(cmd, sizeof(cmd), "%s/de_DE.UTF-8/LC_TIME", dir);
	ck_assert_msg(access(cmd, F_OK) == 0,
		"localedef did not build de_DE.UTF-8 (status %d); install the Debian package "
		"'locales'", rc);
	snprintf(cmd, sizeof(cmd), "'%s' --os-locale '%s'", self_path, dir);
	rc = system(cmd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_msg(rc == 0, "{:%%Y/%%B} under de_DE with --use-os-locale is not 2018/Juli "
		"(child status %d, output above)", rc);
}
END_TEST

static Suite *naming_suite(void)
{
	Suite *s = suite_create("naming");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_ext_offset);
	tcase_add_test(tc, test_uti_table);
	tcase_add_test(tc, test_item_kind);
	tcase_add_test(tc, test_clean);
	tcase_add_test(tc, test_fallback_and_id7);
	tcase_add_test(tc, test_base);
	tcase_add_test(tc, test_version_names);
	tcase_add_test(tc, test_suffixes);
	tcase_add_test(tc, test_safe_name);
	tcase_add_test(tc, test_safe_name_utf8_boundary);
	tcase_add_test(tc, test_safe_name_keep_tail);
	tcase_add_test(tc, test_path_is_safe);
	tcase_add_test(tc, test_folder_default_and_tz);
	tcase_add_test(tc, test_folder_syntax);
	tcase_add_test(tc, test_folder_errors);
	tcase_add_test(tc, test_folder_os_locale);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	SRunner *sr;
	int failed;

	self_path = argv[0];
	if (argc == 3 && strcmp(argv[1], "--os-locale") == 0) {
		return os_locale_child(argv[2]);
	}
	sr = srunner_create(naming_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
