/*
 * Listing-side helpers that need no server: the sync-token file store, the
 * client's refusal without a database URL, the JSON shape of `icpd list
 * assets`, change names.  The iterator itself is exercised against the fake
 * in tests/integration/test_listing.py.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "icpd/asset.h"
#include "icpd/cloudkit.h"
#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/session.h"
#include "icpd/util.h"

static char *tmpfile_path(void)
{
	char tmpl[] = "/tmp/icpd-tokens-XXXXXX";
	int fd = mkstemp(tmpl);

	ck_assert_int_ge(fd, 0);
	close(fd);
	unlink(tmpl);
	return xstrdup(tmpl);
}

START_TEST(test_tokens_file_roundtrip)
{
	char *path = tmpfile_path();
	struct cloudkit_tokens t;
	char *v = NULL;
	struct stat st;

	ck_assert_int_eq(cloudkit_tokens_file_open(&t, path), 0);
	ck_assert_int_eq(t.get(t.ctx, "zone:private:PrimarySync", &v), 0);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(t.put(t.ctx, "zone:private:PrimarySync", "AQAAAAAA+/="), 0);
	ck_assert_int_eq(t.put(t.ctx, "db:private", "DB1"), 0);
	ck_assert_int_eq(t.put(t.ctx, "db:private", "DB2"), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	cloudkit_tokens_file_close(&t);

	ck_assert_int_eq(cloudkit_tokens_file_open(&t, path), 0);
	ck_assert_int_eq(t.get(t.ctx, "zone:private:PrimarySync", &v), 0);
	ck_assert_str_eq(v, "AQAAAAAA+/=");
	free(v);
	ck_assert_int_eq(t.get(t.ctx, "db:private", &v), 0);
	ck_assert_str_eq(v, "DB2");
	free(v);
	ck_assert_int_eq(t.put(t.ctx, "db:private", NULL), 0);
	ck_assert_int_eq(t.get(t.ctx, "db:private", &v), 0);
	ck_assert_ptr_null(v);
	cloudkit_tokens_file_close(&t);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_tokens_file_unwritable)
{
	struct cloudkit_tokens t;

	ck_assert_int_eq(cloudkit_tokens_file_open(&t, "/nonexistent-dir/tokens"), 0);
	ck_assert_int_eq(t.put(t.ctx, "k", "v"), ICPD_ESTORAGE);
	ck_assert(strstr(error_message(), "/nonexistent-dir/tokens") != NULL);
	cloudkit_tokens_file_close(&t);
	error_clear();
}
END_TEST

START_TEST(test_new_needs_database_url)
{
	struct session s;
	struct cloudkit *ck = (struct cloudkit *)1;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(cloudkit_new(&ck, &s, NULL), ICPD_EACCOUNT);
	ck_assert_ptr_null(ck);
	ck_assert(strstr(error_hint_text(), "icloud.com") != NULL);
	error_clear();
}
END_TEST

START_TEST(test_asset_json)
{
	struct asset a;
	char *s;
	json_t *j;
	char *kw[] = { "x", NULL };

	asset_init(&a);
	a.master_id = "M";
	a.asset_id = "A";
	a.filename = "IMG_1.JPG";
	a.kind = ASSET_IMAGE;
	a.asset_date = 5;
	a.keywords = kw;
	a.versions[SIZE_ORIGINAL] = (struct asset_version){ .present = true, .url = "u", .size = 7,
		.uti = "public.jpeg" };
	a.versions[SIZE_LIVE_MEDIUM] = (struct asset_version){ .present = true, .url = "v", .size = 8 };
	s = cloudkit_asset_json(&a, CHANGE_HIDDEN);
	j = json_loads(s, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "change")), "hidden");
	ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "image");
	ck_assert(json_is_null(json_object_get(j, "added_date")));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "asset_date")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_object_get(j,
		"versions"), "original"), "size")), 7);
	ck_assert(json_is_null(json_object_get(json_object_get(json_object_get(j, "versions"),
		"live_medium"), "uti")));
	ck_assert_uint_eq(json_object_size(json_object_get(j, "versions")), 2);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "keywords"), 0)), "x");
	json_decref(j);
	free(s);
}
END_TEST

START_TEST(test_change_names)
{
	ck_assert_str_eq(cloudkit_change_name(CHANGE_NEW), "new");
	ck_assert_str_eq(cloudkit_change_name(CHANGE_SOFT_DELETED), "soft-deleted");
	ck_assert_str_eq(cloudkit_change_name(CHANGE_PURGED), "purged");
	ck_assert_str_eq(cloudkit_change_name((enum cloudkit_change)99), "?");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cloudkit_query");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_tokens_file_roundtrip);
	tcase_add_test(tc, test_tokens_file_unwritable);
	tcase_add_test(tc, test_new_needs_database_url);
	tcase_add_test(tc, test_asset_json);
	tcase_add_test(tc, test_change_names);
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
