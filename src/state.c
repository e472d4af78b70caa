/*
 * State database: the one module that includes <sqlite3.h>.  WAL mode, a
 * versioned schema (PRAGMA user_version) moved forward by the migrations
 * table below, one connection, one thread.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "icpd/asset.h"
#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/state.h"
#include "icpd/util.h"
#include "icpd/version.h"
#include "icpd/banned.h"

struct state {
	sqlite3 *db;
	char *path;
};

/* migrations[i] moves the schema from version i to i + 1.  Never edit a
 * released entry; append a new one. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE assets ("
	"  asset_id TEXT PRIMARY KEY,"
	"  master_id TEXT,"
	"  zone TEXT,"
	"  filename TEXT,"
	"  asset_date INTEGER,"
	"  change_tag TEXT,"
	"  deleted INTEGER NOT NULL DEFAULT 0,"
	"  last_run INTEGER);"
	"CREATE TABLE files ("
	"  path TEXT PRIMARY KEY,"
	"  asset_id TEXT,"
	"  master_id TEXT,"
	"  version INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  api_size INTEGER,"
	"  sha256 TEXT,"
	"  mtime INTEGER,"
	"  status INTEGER NOT NULL,"
	"  error TEXT,"
	"  run_id INTEGER,"
	"  updated INTEGER);"
	"CREATE INDEX files_asset ON files(asset_id);"
	"CREATE TABLE sync_tokens ("
	"  zone TEXT PRIMARY KEY,"
	"  token TEXT NOT NULL,"
	"  updated INTEGER);"
	"CREATE TABLE runs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  started INTEGER NOT NULL,"
	"  finished INTEGER NOT NULL DEFAULT 0,"
	"  result INTEGER NOT NULL DEFAULT 0,"
	"  listed INTEGER NOT NULL DEFAULT 0,"
	"  downloaded INTEGER NOT NULL DEFAULT 0,"
	"  adopted INTEGER NOT NULL DEFAULT 0,"
	"  skipped INTEGER NOT NULL DEFAULT 0,"
	"  failed INTEGER NOT NULL DEFAULT 0,"
	"  bytes INTEGER NOT NULL DEFAULT 0);",
};

static int db_error(struct state *s, const char *what)
{
	return error_set(ICPD_ESTORAGE, "state database '%s': cannot %s: %s", s->path, what,
		sqlite3_errmsg(s->db));
}

static int exec(struct state *s, const char *sql, const char *what)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = error_set(ICPD_ESTORAGE, "state database '%s': cannot %s: %s", s->path,
			what, msg ? msg : sqlite3_errmsg(s->db));

		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

static int prepare(struct state *s, sqlite3_stmt **st, const char *sql)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		return db_error(s, "prepare a statement");
	}
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v) {
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	} else {
		sqlite3_bind_null(st, i);
	}
}

static char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? xstrdup((const char *)t) : NULL;
}

/* Run a statement that returns no rows; finalizes it. */
static int step_done(struct state *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		rc = db_error(s, what);
	} else {
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

char *state_path_for(const char *dir, const char *account)
{
	char *safe = xstrdup(account && *account ? account : "default");
	char *path;

	for (char *p = safe; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '.' || c == '-' || c == '_')) {
			*p = '_';
		}
	}
	path = xasprintf("%s/icpd-%s.db", dir, safe);
	free(safe);
	return path;
}

int state_find(const char *dir, const char *account, char **out)
{
	DIR *d;
	struct dirent *e;
	int found = 0;

	*out = NULL;
	if (account && *account) {
		*out = state_path_for(dir, account);
		return access(*out, F_OK) == 0 ? 0 : ICPD_ENOTFOUND;
	}
	d = opendir(dir);
	if (!d) {
		return ICPD_ENOTFOUND;
	}
	while ((e = readdir(d)) != NULL) {
		if (str_startswith(e->d_name, "icpd-") && str_endswith(e->d_name, ".db")) {
			found++;
			free(*out);
			*out = xasprintf("%s/%s", dir, e->d_name);
		}
	}
	closedir(d);
	if (found == 1) {
		return 0;
	}
	free(*out);
	*out = NULL;
	if (found > 1) {
		error_set(ICPD_EUSAGE, "'%s' holds the state of several accounts", dir);
		error_hint("say which with --username");
		return ICPD_EUSAGE;
	}
	return ICPD_ENOTFOUND;
}

int state_schema_version(struct state *s)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
		sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}

static int migrate(struct state *s)
{
	int v = state_schema_version(s);
	int rc;

	if (v < 0) {
		return db_error(s, "read the schema version");
	}
	if (v > (int)ARRAY_SIZE(migrations)) {
		error_set(ICPD_ESTORAGE, "state database '%s' has schema version %d, newer than %d",
			s->path, v, (int)ARRAY_SIZE(migrations));
		error_hint("use a newer icpd, or move the file away to start a fresh state");
		return ICPD_ESTORAGE;
	}
	for (; v < (int)ARRAY_SIZE(migrations); v++) {
		char pragma[64];

		rc = exec(s, "BEGIN IMMEDIATE", "begin a migration");
		if (rc) {
			return rc;
		}
		rc = exec(s, migrations[v], "migrate the schema");
		if (rc == 0) {
			snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
			rc = exec(s, pragma, "set the schema version");
		}
		if (rc == 0) {
			rc = exec(s, "COMMIT", "commit a migration");
		}
		if (rc) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		log_debug("state: schema migrated to version %d", v + 1);
	}
	return 0;
}

int state_open(struct state **out, const char *path)
{
	struct state *s = xcalloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	s->path = xstrdup(path);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
		SQLITE_OK) {
		rc = error_set(ICPD_ESTORAGE, "cannot open state database '%s': %s", path,
			s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto done;
	}
	sqlite3_busy_timeout(s->db, 10000);
	rc = exec(s, "PRAGMA journal_mode = WAL", "switch to WAL mode");
	if (rc == 0) {
		rc = exec(s, "PRAGMA synchronous = NORMAL", "set synchronous mode");
	}
	if (rc == 0) {
		rc = exec(s, "PRAGMA foreign_keys = ON", "enable foreign keys");
	}
	if (rc == 0) {
		rc = migrate(s);
	}
done:
	if (rc) {
		state_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void state_close(struct state *s)
{
	if (!s) {
		return;
	}
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

const char *state_path(const struct state *s)
{
	return s->path;
}

int state_begin(struct state *s)
{
	return exec(s, "BEGIN IMMEDIATE", "begin a transaction");
}

int state_commit(struct state *s)
{
	return exec(s, "COMMIT", "commit a transaction");
}

int state_asset_seen(struct state *s, const struct asset *a, int64_t run_id)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!a->asset_id) {
		return error_set(ICPD_EINTERNAL, "asset without a record name");
	}
	rc = prepare(s, &st,
		"INSERT INTO assets (asset_id, master_id, zone, filename, asset_date, change_tag,"
		" deleted, last_run) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
		" ON CONFLICT(asset_id) DO UPDATE SET master_id = ?2, zone = ?3, filename = ?4,"
		" asset_date = ?5, change_tag = ?6, deleted = ?7, last_run = ?8");
	if (rc) {
		return rc;
	}
	bind_text(st, 1, a->asset_id);
	bind_text(st, 2, a->master_id);
	bind_text(st, 3, a->zone);
	bind_text(st, 4, a->filename);
	if (a->asset_date == INT64_MIN) {
		sqlite3_bind_null(st, 5);
	} else {
		sqlite3_bind_int64(st, 5, a->asset_date);
	}
	bind_text(st, 6, a->change_tag);
	sqlite3_bind_int(st, 7, a->deleted ? 1 : 0);
	sqlite3_bind_int64(st, 8, run_id);
	return step_done(s, st, "record an asset");
}

void state_file_init(struct state_file *f)
{
	memset(f, 0, sizeof(*f));
}

void state_file_release(struct state_file *f)
{
	if (!f) {
		return;
	}
	free(f->path);
	free(f->asset_id);
	free(f->master_id);
	free(f->error);
	state_file_init(f);
}

int state_file_put(struct state *s, const struct state_file *f)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!f->path || f->status < 0 || f->status >= STATE_STATUS_COUNT) {
		return error_set(ICPD_EINTERNAL, "bad file row");
	}
	rc = prepare(s, &st,
		"INSERT OR REPLACE INTO files (path, asset_id, master_id, version, size, sha256,"
		" mtime, status, error, run_id, updated, api_size)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
	if (rc) {
		return rc;
	}
	bind_text(st, 1, f->path);
	bind_text(st, 2, f->asset_id);
	bind_text(st, 3, f->master_id);
	sqlite3_bind_int(st, 4, f->version);
	sqlite3_bind_int64(st, 5, f->size);
	bind_text(st, 6, f->sha256[0] ? f->sha256 : NULL);
	sqlite3_bind_int64(st, 7, f->mtime);
	sqlite3_bind_int(st, 8, (int)f->status);
	bind_text(st, 9, f->error);
	sqlite3_bind_int64(st, 10, f->run_id);
	sqlite3_bind_int64(st, 11, (int64_t)time(NULL));
	sqlite3_bind_int64(st, 12, f->api_size);
	return step_done(s, st, "record a file");
}

static void read_file_row(sqlite3_stmt *st, struct state_file *f)
{
	const unsigned char *sha;
	int status;

	f->path = col_text(st, 0);
	f->asset_id = col_text(st, 1);
	f->master_id = col_text(st, 2);
	f->version = sqlite3_column_int(st, 3);
	f->size = sqlite3_column_int64(st, 4);
	sha = sqlite3_column_text(st, 5);
	snprintf(f->sha256, sizeof(f->sha256), "%s", sha ? (const char *)sha : "");
	f->mtime = sqlite3_column_int64(st, 6);
	status = sqlite3_column_int(st, 7);
	f->status = (status >= 0 && status < STATE_STATUS_COUNT) ? (enum state_status)status :
								     STATE_FAILED;
	f->error = col_text(st, 8);
	f->run_id = sqlite3_column_int64(st, 9);
	f->updated = sqlite3_column_int64(st, 10);
	f->api_size = sqlite3_column_int64(st, 11);
}

#define FILE_COLUMNS "path, asset_id, master_id, version, size, sha256, mtime, status, error," \
		     " run_id, updated, api_size"

int state_file_get(struct state *s, const char *path, struct state_file *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	state_file_release(out);
	rc = prepare(s, &st, "SELECT " FILE_COLUMNS " FROM files WHERE path = ?1");
	if (rc) {
		return rc;
	}
	bind_text(st, 1, path);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_file_row(st, out);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = ICPD_ENOTFOUND;
	} else {
		rc = db_error(s, "read a file row");
	}
	sqlite3_finalize(st);
	return rc;
}

int state_file_delete(struct state *s, const char *path)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(s, &st, "DELETE FROM files WHERE path = ?1");

	if (rc) {
		return rc;
	}
	bind_text(st, 1, path);
	return step_done(s, st, "delete a file row");
}

int state_file_foreach(struct state *s, int (*fn)(const struct state_file *f, void *ud), void *ud)
{
	sqlite3_stmt *st = NULL;
	struct state_file f;
	int rc;

	state_file_init(&f);
	rc = prepare(s, &st, "SELECT " FILE_COLUMNS " FROM files ORDER BY path");
	if (rc) {
		return rc;
	}
	for (;;) {
		int r = sqlite3_step(st);

		if (r == SQLITE_DONE) {
			break;
		}
		if (r != SQLITE_ROW) {
			rc = db_error(s, "walk the file rows");
			break;
		}
		read_file_row(st, &f);
		rc = fn(&f, ud);
		state_file_release(&f);
		if (rc) {
			break;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int state_token_get(struct state *s, const char *zone, char **out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	rc = prepare(s, &st, "SELECT token FROM sync_tokens WHERE zone = ?1");
	if (rc) {
		return rc;
	}
	bind_text(st, 1, zone);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = col_text(st, 0);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = db_error(s, "read a sync token");
	}
	sqlite3_finalize(st);
	return rc;
}

int state_token_set(struct state *s, const char *zone, const char *token)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!token) {
		rc = prepare(s, &st, "DELETE FROM sync_tokens WHERE zone = ?1");
		if (rc) {
			return rc;
		}
		bind_text(st, 1, zone);
		return step_done(s, st, "forget a sync token");
	}
	rc = prepare(s, &st,
		"INSERT OR REPLACE INTO sync_tokens (zone, token, updated) VALUES (?1, ?2, ?3)");
	if (rc) {
		return rc;
	}
	bind_text(st, 1, zone);
	bind_text(st, 2, token);
	sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
	return step_done(s, st, "store a sync token");
}

int state_run_begin(struct state *s, struct state_run *r)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	r->started = (int64_t)time(NULL);
	rc = prepare(s, &st, "INSERT INTO runs (started) VALUES (?1)");
	if (rc) {
		return rc;
	}
	sqlite3_bind_int64(st, 1, r->started);
	rc = step_done(s, st, "record a run");
	if (rc == 0) {
		r->id = sqlite3_last_insert_rowid(s->db);
	}
	return rc;
}

int state_run_end(struct state *s, const struct state_run *r)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(s, &st,
		"UPDATE runs SET finished = ?2, result = ?3, listed = ?4, downloaded = ?5,"
		" adopted = ?6, skipped = ?7, failed = ?8, bytes = ?9 WHERE id = ?1");

	if (rc) {
		return rc;
	}
	sqlite3_bind_int64(st, 1, r->id);
	sqlite3_bind_int64(st, 2, r->finished ? r->finished : (int64_t)time(NULL));
	sqlite3_bind_int(st, 3, r->result);
	sqlite3_bind_int64(st, 4, r->listed);
	sqlite3_bind_int64(st, 5, r->downloaded);
	sqlite3_bind_int64(st, 6, r->adopted);
	sqlite3_bind_int64(st, 7, r->skipped);
	sqlite3_bind_int64(st, 8, r->failed);
	sqlite3_bind_int64(st, 9, r->bytes);
	return step_done(s, st, "finish a run");
}

int state_run_last(struct state *s, struct state_run *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = prepare(s, &st,
		"SELECT id, started, finished, result, listed, downloaded, adopted, skipped,"
		" failed, bytes FROM runs ORDER BY id DESC LIMIT 1");
	if (rc) {
		return rc;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		out->started = sqlite3_column_int64(st, 1);
		out->finished = sqlite3_column_int64(st, 2);
		out->result = sqlite3_column_int(st, 3);
		out->listed = sqlite3_column_int64(st, 4);
		out->downloaded = sqlite3_column_int64(st, 5);
		out->adopted = sqlite3_column_int64(st, 6);
		out->skipped = sqlite3_column_int64(st, 7);
		out->failed = sqlite3_column_int64(st, 8);
		out->bytes = sqlite3_column_int64(st, 9);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = ICPD_ENOTFOUND;
	} else {
		rc = db_error(s, "read the last run");
	}
	sqlite3_finalize(st);
	return rc;
}

static int count_query(struct state *s, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(s, &st, sql);

	if (rc) {
		return rc;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
	} else {
		rc = db_error(s, "count rows");
	}
	sqlite3_finalize(st);
	return rc;
}

int state_counts(struct state *s, struct state_counts *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = count_query(s, "SELECT count(*) FROM assets", &out->assets);
	if (rc == 0) {
		rc = count_query(s, "SELECT count(*) FROM runs", &out->runs);
	}
	if (rc == 0) {
		rc = count_query(s,
			"SELECT coalesce(sum(size), 0) FROM files WHERE status IN (0, 1)",
			&out->bytes);
	}
	if (rc) {
		return rc;
	}
	rc = prepare(s, &st, "SELECT status, count(*) FROM files GROUP BY status");
	if (rc) {
		return rc;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		int status = sqlite3_column_int(st, 0);

		if (status >= 0 && status < STATE_STATUS_COUNT) {
			out->files[status] = sqlite3_column_int64(st, 1);
		}
	}
	sqlite3_finalize(st);
	return 0;
}

const char *state_status_name(enum state_status st)
{
	switch (st) {
	case STATE_DONE:
		return "done";
	case STATE_ADOPTED:
		return "adopted";
	case STATE_FAILED:
		return "failed";
	default:
		return "unknown";
	}
}

const char *state_describe(void)
{
	static char text[64];

	snprintf(text, sizeof(text), "SQLite %s", sqlite3_libversion());
	return text;
}
