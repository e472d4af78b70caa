#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "icpd/asset.h"
#include "icpd/error.h"
#include "icpd/state.h"

static char tmpdir[64];
static char dbpath[128];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/icpd-test-state-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/s.db", tmpdir);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_path_for)
{
	char *p = state_path_for("/c", "Me@Example.com/../x");

	ck_assert_str_eq(p, "/c/icpd-Me_Example.com_.._x.db");
	free(p);
}
END_TEST

START_TEST(test_find)
{
	struct state *s = NULL;
	char *path = NULL;
	char *a = state_path_for(tmpdir, "a@example.com");
	char *b = state_path_for(tmpdir, "b@example.com");

	ck_assert_int_eq(state_find(tmpdir, NULL, &path), ICPD_ENOTFOUND);
	ck_assert_ptr_null(path);
	ck_assert_int_eq(state_open(&s, a), 0);
	state_close(s);
	ck_assert_int_eq(state_find(tmpdir, NULL, &path), 0);
	ck_assert_str_eq(path, a);
	free(path);
	ck_assert_int_eq(state_find(tmpdir, "b@example.com", &path), ICPD_ENOTFOUND);
	free(path);
	ck_assert_int_eq(state_open(&s, b), 0);
	state_close(s);
	ck_assert_int_eq(state_find(tmpdir, NULL, &path), ICPD_EUSAGE); /* which one? */
	ck_assert_ptr_null(path);
	ck_assert_int_eq(state_find(tmpdir, "b@example.com", &path), 0);
	ck_assert_str_eq(path, b);
	free(path);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_open_wal_schema)
{
	struct state *s = NULL;
	sqlite3 *db;
	sqlite3_stmt *st;

	ck_assert_int_eq(state_open(&s, dbpath), 0);
	ck_assert_int_eq(state_schema_version(s), STATE_SCHEMA_VERSION);
	ck_assert_str_eq(state_path(s), dbpath);
	state_close(s);
	/* WAL is persistent in the file header */
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* reopening does not migrate again */
	ck_assert_int_eq(state_open(&s, dbpath), 0);
	ck_assert_int_eq(state_schema_version(s), STATE_SCHEMA_VERSION);
	state_close(s);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
	struct state *s = NULL;
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(state_open(&s, dbpath), ICPD_ESTORAGE);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(error_message(), "newer"));
}
END_TEST

START_TEST(test_open_missing_dir)
{
	struct state *s = NULL;

	ck_assert_int_eq(state_open(&s, "/nonexistent-dir-icpd/x.db"), ICPD_ESTORAGE);
	ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_files)
{
	struct state *s = NULL;
	struct state_file f, g;
	struct state_counts c;

	state_file_init(&f);
	state_file_init(&g);
	ck_assert_int_eq(state_open(&s, dbpath), 0);
	f.path = strdup("/p/2024/01/02/IMG_1.JPG");
	f.asset_id = strdup("A1");
	f.master_id = strdup("M1");
	f.version = 0;
	f.size = 1234;
	f.api_size = 1200;
	snprintf(f.sha256, sizeof(f.sha256), "%064d", 7);
	f.mtime = 1700000000;
	f.status = STATE_DONE;
	f.run_id = 3;
	ck_assert_int_eq(state_file_put(s, &f), 0);
	ck_assert_int_eq(state_file_get(s, f.path, &g), 0);
	ck_assert_str_eq(g.path, f.path);
	ck_assert_str_eq(g.asset_id, "A1");
	ck_assert_str_eq(g.master_id, "M1");
	ck_assert_int_eq(g.size, 1234);
	ck_assert_int_eq(g.api_size, 1200);
	ck_assert_str_eq(g.sha256, f.sha256);
	ck_assert_int_eq(g.mtime, 1700000000);
	ck_assert_int_eq(g.status, STATE_DONE);
	ck_assert_ptr_null(g.error);
	ck_assert_int_eq(g.run_id, 3);
	ck_assert_int_gt(g.updated, 0);
	/* replace */
	f.status = STATE_FAILED;
	f.error = strdup("cut body");
	f.sha256[0] = '\0';
	ck_assert_int_eq(state_file_put(s, &f), 0);
	ck_assert_int_eq(state_file_get(s, f.path, &g), 0);
	ck_assert_int_eq(g.status, STATE_FAILED);
	ck_assert_str_eq(g.error, "cut body");
	ck_assert_str_eq(g.sha256, "");
	ck_assert_int_eq(state_file_get(s, "/nope", &g), ICPD_ENOTFOUND);
	ck_assert_ptr_null(g.path);
	/* counts */
	free(f.path);
	f.path = strdup("/p/b");
	f.status = STATE_ADOPTED;
	f.size = 10;
	ck_assert_int_eq(state_file_put(s, &f), 0);
	ck_assert_int_eq(state_counts(s, &c), 0);
	ck_assert_int_eq(c.files[STATE_FAILED], 1);
	ck_assert_int_eq(c.files[STATE_ADOPTED], 1);
	ck_assert_int_eq(c.files[STATE_DONE], 0);
	ck_assert_int_eq(c.bytes, 10);
	ck_assert_int_eq(state_file_delete(s, "/p/b"), 0);
	ck_assert_int_eq(state_file_get(s, "/p/b", &g), ICPD_ENOTFOUND);
	state_file_release(&f);
	state_file_release(&g);
	state_close(s);
}
END_TEST

static int collect(const struct state_file *f, void *ud)
{
	char *out = ud;

	strncat(out, f->path, 100);
	strncat(out, ";", 2);
	return strcmp(f->path, "/b") == 0 ? 42 : 0;
}

START_TEST(test_foreach)
{
	struct state *s = NULL;
	struct state_file f;
	const char *paths[] = { "/c", "/a", "/b" };
	char out[256] = "";

	ck_assert_int_eq(state_open(&s, dbpath), 0);
	ck_assert_int_eq(state_begin(s), 0);
	for (size_t i = 0; i < 3; i++) {
		state_file_init(&f);
		f.path = (char *)paths[i];
		f.status = STATE_DONE;
		ck_assert_int_eq(state_file_put(s, &f), 0);
	}
	ck_assert_int_eq(state_commit(s), 0);
	/* path order, and the callback's non-zero result stops the walk */
	ck_assert_int_eq(state_file_foreach(s, collect, out), 42);
	ck_assert_str_eq(out, "/a;/b;");
	state_close(s);
}
END_TEST

START_TEST(test_assets_tokens_runs)
{
	struct state *s = NULL;
	struct asset a;
	struct state_run r, last;
	struct state_counts c;
	char *tok = NULL;

	ck_assert_int_eq(state_open(&s, dbpath), 0);
	ck_assert_int_eq(state_run_last(s, &last), ICPD_ENOTFOUND);
	asset_init(&a);
	a.asset_id = strdup("A1");
	a.master_id = strdup("M1");
	a.zone = strdup("PrimarySync");
	ck_assert_int_eq(state_run_begin(s, &r), 0);
	ck_assert_int_gt(r.id, 0);
	ck_assert_int_eq(state_asset_seen(s, &a, r.id), 0);
	ck_assert_int_eq(state_asset_seen(s, &a, r.id), 0); /* upsert */
	ck_assert_int_eq(state_counts(s, &c), 0);
	ck_assert_int_eq(c.assets, 1);
	ck_assert_int_eq(c.runs, 1);
	r.downloaded = 5;
	r.bytes = 999;
	r.result = ICPD_EPARTIAL;
	ck_assert_int_eq(state_run_end(s, &r), 0);
	ck_assert_int_eq(state_run_last(s, &last), 0);
	ck_assert_int_eq(last.id, r.id);
	ck_assert_int_eq(last.downloaded, 5);
	ck_assert_int_eq(last.bytes, 999);
	ck_assert_int_eq(last.result, ICPD_EPARTIAL);
	ck_assert_int_gt(last.finished, 0);

	ck_assert_int_eq(state_token_get(s, "PrimarySync", &tok), 0);
	ck_assert_ptr_null(tok);
	ck_assert_int_eq(state_token_set(s, "PrimarySync", "T1"), 0);
	ck_assert_int_eq(state_token_set(s, "PrimarySync", "T2"), 0);
	ck_assert_int_eq(state_token_get(s, "PrimarySync", &tok), 0);
	ck_assert_str_eq(tok, "T2");
	free(tok);
	ck_assert_int_eq(state_token_set(s, "PrimarySync", NULL), 0);
	ck_assert_int_eq(state_token_get(s, "PrimarySync", &tok), 0);
	ck_assert_ptr_null(tok);
	asset_release(&a);
	state_close(s);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_path_for);
	tcase_add_test(tc, test_find);
	tcase_add_test(tc, test_open_wal_schema);
	tcase_add_test(tc, test_newer_schema_refused);
	tcase_add_test(tc, test_open_missing_dir);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_foreach);
	tcase_add_test(tc, test_assets_tokens_runs);
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
