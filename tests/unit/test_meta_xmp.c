#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icpd/asset.h"
#include "icpd/fsutil.h"
#include "icpd/meta_xmp.h"

static char tmpdir[64];
static char *ptmp;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-xmp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_int_eq(fsutil_tmpdir(tmpdir, &ptmp), 0);
}

static void teardown(void)
{
	char cmd[128];

	free(ptmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void full_asset(struct asset *a)
{
	asset_init(a);
	a->asset_id = strdup("A1");
	a->caption = strdup("Beach <sunset> & friends");
	a->description = strdup("Long description");
	a->keywords = calloc(3, sizeof(char *));
	a->keywords[0] = strdup("holiday");
	a->keywords[1] = strdup("sea");
	a->asset_date = 1533030250000; /* 2018-07-31T09:44:10Z */
	a->tz_offset = 7 * 3600;
	a->has_location = true;
	a->latitude = 13.7563;
	a->longitude = -100.5018;
	a->altitude = 12.5;
	a->favorite = true;
	a->subtype_v2 = 3;
	a->orientation = 6;
}

START_TEST(test_build_full)
{
	struct asset a;
	char *x;

	full_asset(&a);
	x = meta_xmp_build(&a);
	ck_assert_ptr_nonnull(strstr(x, "x:xmptk=\"icpd "));
	ck_assert_ptr_nonnull(strstr(x, "Beach &lt;sunset&gt; &amp; friends</rdf:li></rdf:Alt></dc:title>"));
	ck_assert_ptr_nonnull(strstr(x, "Long description</rdf:li></rdf:Alt></dc:description>"));
	ck_assert_ptr_nonnull(strstr(x, "<dc:subject><rdf:Bag><rdf:li>holiday</rdf:li><rdf:li>sea</rdf:li></rdf:Bag></dc:subject>"));
	ck_assert_ptr_nonnull(strstr(x, "<digiKam:TagsList><rdf:Seq><rdf:li>holiday</rdf:li>"));
	ck_assert_ptr_nonnull(strstr(x, "<exif:DateTimeOriginal>2018-07-31T16:44:10+07:00</exif:DateTimeOriginal>"));
	ck_assert_ptr_nonnull(strstr(x, "<xmp:CreateDate>2018-07-31T16:44:10+07:00</xmp:CreateDate>"));
	ck_assert_ptr_nonnull(strstr(x, "<photoshop:DateCreated>2018-07-31T16:44:10+07:00</photoshop:DateCreated>"));
	ck_assert_ptr_nonnull(strstr(x, "<exif:GPSLatitude>13,45.378000N</exif:GPSLatitude>"));
	ck_assert_ptr_nonnull(strstr(x, "<exif:GPSLongitude>100,30.108000W</exif:GPSLongitude>"));
	ck_assert_ptr_nonnull(strstr(x, "<exif:GPSAltitude>12500/1000</exif:GPSAltitude>"));
	ck_assert_ptr_nonnull(strstr(x, "<xmp:Rating>5</xmp:Rating>"));
	ck_assert_ptr_nonnull(strstr(x, "<tiff:Make>Screenshot</tiff:Make>"));
	ck_assert_ptr_nonnull(strstr(x, "<tiff:Orientation>6</tiff:Orientation>"));
	free(x);
	asset_release(&a);
}
END_TEST

START_TEST(test_build_minimal)
{
	struct asset a;
	char *x;

	asset_init(&a);
	a.hidden = true;
	a.caption = strdup("a\001b"); /* control characters cannot be in XML */
	x = meta_xmp_build(&a);
	ck_assert_ptr_null(strstr(x, "dc:subject"));
	ck_assert_ptr_null(strstr(x, "DateTimeOriginal"));
	ck_assert_ptr_null(strstr(x, "GPS"));
	ck_assert_ptr_null(strstr(x, "\001"));
	ck_assert_ptr_nonnull(strstr(x, ">ab</rdf:li>"));
	ck_assert_ptr_nonnull(strstr(x, "<xmp:Rating>-1</xmp:Rating>"));
	free(x);
	asset_release(&a);
}
END_TEST

static void put(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");

	fputs(text, f);
	fclose(f);
}

static char *slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	char *d = calloc(1, 65536);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fread(d, 1, 65535, f), 0);
	fclose(f);
	return d;
}

START_TEST(test_overwrite_rule)
{
	struct asset a;
	char p[256];
	char *doc;
	bool written;

	full_asset(&a);
	snprintf(p, sizeof(p), "%s/2018/07/31/IMG_1.JPG.xmp", tmpdir);
	ck_assert(meta_xmp_may_overwrite(p));
	ck_assert_int_eq(meta_xmp_write(ptmp, p, &a, 0644, 0755, &written), 0);
	ck_assert(written);
	doc = slurp(p);
	ck_assert_ptr_nonnull(strstr(doc, "icpd "));
	free(doc);
	/* same content: not rewritten */
	ck_assert_int_eq(meta_xmp_write(ptmp, p, &a, 0644, 0755, &written), 0);
	ck_assert(!written);
	/* icloudpd's own: replaced */
	put(p, "<?xml version='1.0' encoding='utf-8'?>\n<x:xml_doc xmlns:x=\"adobe:ns:meta/\" "
	       "x:xmptk=\"icloudpd 1.32.2+abc\"><rdf:RDF/></x:xml_doc>");
	ck_assert_int_eq(meta_xmp_write(ptmp, p, &a, 0644, 0755, &written), 0);
	ck_assert(written);
	/* someone else's (Immich write-back, digiKam): left alone */
	put(p, "<?xml version=\"1.0\"?><x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"Image::ExifTool 12.57\"/>");
	ck_assert_int_eq(meta_xmp_write(ptmp, p, &a, 0644, 0755, &written), 0);
	ck_assert(!written);
	doc = slurp(p);
	ck_assert_ptr_nonnull(strstr(doc, "ExifTool"));
	free(doc);
	/* garbage: left alone; empty: replaced */
	put(p, "not xml at all");
	ck_assert(!meta_xmp_may_overwrite(p));
	put(p, "");
	ck_assert(meta_xmp_may_overwrite(p));
	asset_release(&a);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("meta_xmp");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_build_full);
	tcase_add_test(tc, test_build_minimal);
	tcase_add_test(tc, test_overwrite_rule);
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
