#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libexif/exif-data.h>

#include "icpd/error.h"
#include "icpd/meta_exif.h"

static char tmpdir[64];
static char path[128];

/* SOI, APP0 JFIF, a fake DQT, SOS header, scan bytes, EOI: enough JPEG
 * structure for the segment walker. */
static const unsigned char jpeg[] = {
	0xff, 0xd8,
	0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
	0xff, 0xdb, 0x00, 0x04, 0x00, 0x01,
	0xff, 0xda, 0x00, 0x04, 0x01, 0x00,
	0x12, 0x34, 0xff, 0x00, 0x56,
	0xff, 0xd9,
};

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-exif-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/x.part", tmpdir);
	setenv("TZ", "UTC", 1);
	tzset();
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_bytes(const unsigned char *d, size_t n)
{
	FILE *f = fopen(path, "wb");

	ck_assert_uint_eq(fwrite(d, 1, n, f), n);
	fclose(f);
}

static unsigned char *read_bytes(size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *d = malloc(1 << 20);

	*n = fread(d, 1, 1 << 20, f);
	fclose(f);
	return d;
}

static void tag_value(ExifTag tag, char *out, size_t n)
{
	ExifData *ed = exif_data_new_from_file(path);
	ExifEntry *e;

	out[0] = '\0';
	ck_assert_ptr_nonnull(ed);
	e = exif_content_get_entry(ed->ifd[EXIF_IFD_EXIF], tag);
	if (e) {
		exif_entry_get_value(e, out, (unsigned int)n);
	}
	exif_data_unref(ed);
}

START_TEST(test_insert_and_keep_rest)
{
	char v[64];
	size_t n;
	unsigned char *d;
	bool changed = false;

	write_bytes(jpeg, sizeof(jpeg));
	ck_assert(!meta_exif_has_datetime_original(path));
	/* 2018-07-31 07:22:24 UTC */
	ck_assert_int_eq(meta_exif_apply(path, "IMG_1.JPG", 1533021744, &changed), 0);
	ck_assert(changed);
	ck_assert(meta_exif_has_datetime_original(path));
	tag_value(EXIF_TAG_DATE_TIME_ORIGINAL, v, sizeof(v));
	ck_assert_str_eq(v, "2018:07:31 07:22:24");
	tag_value(EXIF_TAG_DATE_TIME_DIGITIZED, v, sizeof(v));
	ck_assert_str_eq(v, "2018:07:31 07:22:24");
	d = read_bytes(&n);
	/* SOI + APP0 first, then our APP1, and the scan data unchanged at the end */
	ck_assert_int_eq(memcmp(d, jpeg, 20), 0);
	ck_assert_int_eq(d[20], 0xff);
	ck_assert_int_eq(d[21], 0xe1);
	ck_assert_int_eq(memcmp(d + n - 17, jpeg + sizeof(jpeg) - 17, 17), 0);
	free(d);
	/* an existing DateTimeOriginal is never touched */
	ck_assert_int_eq(meta_exif_apply(path, "IMG_1.JPG", 0, &changed), 0);
	ck_assert(!changed);
	tag_value(EXIF_TAG_DATE_TIME_ORIGINAL, v, sizeof(v));
	ck_assert_str_eq(v, "2018:07:31 07:22:24");
}
END_TEST

START_TEST(test_local_time)
{
	char v[64];

	setenv("TZ", "Asia/Bangkok", 1);
	tzset();
	write_bytes(jpeg, sizeof(jpeg));
	ck_assert_int_eq(meta_exif_set_datetime(path, 1533021744), 0);
	tag_value(EXIF_TAG_DATE_TIME_ORIGINAL, v, sizeof(v));
	ck_assert_str_eq(v, "2018:07:31 14:22:24");
}
END_TEST

START_TEST(test_not_jpeg)
{
	const unsigned char heic[] = { 0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c' };
	bool changed = true;
	size_t n;
	unsigned char *d;

	write_bytes(heic, sizeof(heic));
	/* not a .jpg name: untouched */
	ck_assert_int_eq(meta_exif_apply(path, "IMG_1.HEIC", 0, &changed), 0);
	ck_assert(!changed);
	/* a .jpg name on non-JPEG bytes: a clear per-asset error, file unchanged */
	ck_assert_int_eq(meta_exif_apply(path, "IMG_1.jpeg", 0, &changed), ICPD_EASSET);
	ck_assert_ptr_nonnull(strstr(error_message(), "not a JPEG"));
	d = read_bytes(&n);
	ck_assert_uint_eq(n, sizeof(heic));
	ck_assert_int_eq(memcmp(d, heic, n), 0);
	free(d);
	ck_assert(!meta_exif_has_datetime_original("/nonexistent-icpd"));
}
END_TEST

START_TEST(test_truncated_jpeg)
{
	write_bytes(jpeg, 24); /* cut inside the DQT segment */
	ck_assert_int_eq(meta_exif_set_datetime(path, 0), ICPD_EASSET);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("meta_exif");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_insert_and_keep_rest);
	tcase_add_test(tc, test_local_time);
	tcase_add_test(tc, test_not_jpeg);
	tcase_add_test(tc, test_truncated_jpeg);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
