/*
 * The state database (SQLite, WAL mode), kept in the cookie directory and
 * never under the photo directory: what we listed, what we wrote where
 * (size and SHA-256 of the bytes on disk), sync tokens and runs.  The
 * filesystem stays the source of truth for what exists; the database says
 * what we know about it.  Single-threaded use only.
 */
#ifndef ICPD_STATE_H
#define ICPD_STATE_H

#include <stdbool.h>
#include <stdint.h>

struct asset;
struct state;

/* The schema version this build writes; older databases are migrated. */
#define STATE_SCHEMA_VERSION 1

enum state_status {
	STATE_DONE = 0,    /* downloaded and committed by icpd */
	STATE_ADOPTED,     /* found at the expected path with the expected size */
	STATE_FAILED,      /* the last attempt failed (error says why) */
	STATE_STATUS_COUNT
};

struct state_file {
	char *path;           /* absolute path of the media file; owned */
	char *asset_id;       /* CPLAsset recordName; owned, may be NULL */
	char *master_id;      /* CPLMaster recordName; owned, may be NULL */
	int version;          /* enum asset_size slot */
	int64_t size;         /* bytes on disk */
	int64_t api_size;     /* bytes iCloud announced (differs after an EXIF edit) */
	char sha256[65];      /* hex of what was written, "" when unknown (adopted) */
	int64_t mtime;        /* seconds */
	enum state_status status;
	char *error;          /* owned, NULL unless STATE_FAILED */
	int64_t run_id;
	int64_t updated;      /* unix seconds */
};

struct state_run {
	int64_t id;
	int64_t started;      /* unix seconds */
	int64_t finished;     /* 0 while running (or killed) */
	int result;           /* 0 or ICPD_E* */
	int64_t listed;       /* assets seen */
	int64_t downloaded;   /* files written */
	int64_t adopted;      /* files recorded without download */
	int64_t skipped;      /* files already known and present */
	int64_t failed;       /* files that failed */
	int64_t bytes;        /* bytes downloaded */
};

struct state_counts {
	int64_t assets;
	int64_t files[STATE_STATUS_COUNT];
	int64_t bytes;        /* sum of sizes of done + adopted files */
	int64_t runs;
};

void state_file_init(struct state_file *f);
void state_file_release(struct state_file *f);

/*
 * The database file for account in dir: "<dir>/icpd-<account>.db" with
 * every character but [A-Za-z0-9._-] of the account replaced.  Caller
 * frees.
 */
char *state_path_for(const char *dir, const char *account);

/*
 * The existing database for account in dir, or (account NULL) the only
 * one there.  0 and *out (caller frees); ICPD_ENOTFOUND when none;
 * ICPD_EUSAGE (message set) when several accounts have one and none was
 * named.
 */
int state_find(const char *dir, const char *account, char **out)
	__attribute__((warn_unused_result));

/*
 * Open (create, migrate) the database at path; the directory must exist.
 * A database written by a newer schema is ICPD_ESTORAGE.  Caller closes
 * with state_close.
 */
int state_open(struct state **out, const char *path) __attribute__((warn_unused_result));
void state_close(struct state *s); /* NULL ok */
const char *state_path(const struct state *s); /* borrowed */
int state_schema_version(struct state *s);

/* Group many writes into one transaction (for speed, not correctness). */
int state_begin(struct state *s) __attribute__((warn_unused_result));
int state_commit(struct state *s) __attribute__((warn_unused_result));

/* Remember an asset as listed in run_id. */
int state_asset_seen(struct state *s, const struct asset *a, int64_t run_id)
	__attribute__((warn_unused_result));

/* Insert or replace the row of f->path (updated is set to now). */
int state_file_put(struct state *s, const struct state_file *f)
	__attribute__((warn_unused_result));
/* ICPD_ENOTFOUND when there is no row for path.  out is released first. */
int state_file_get(struct state *s, const char *path, struct state_file *out)
	__attribute__((warn_unused_result));
int state_file_delete(struct state *s, const char *path) __attribute__((warn_unused_result));
/* Calls fn for each file row in path order; a non-zero return from fn stops
 * the walk and is returned.  The row is borrowed for the call. */
int state_file_foreach(struct state *s, int (*fn)(const struct state_file *f, void *ud), void *ud)
	__attribute__((warn_unused_result));

/* Sync tokens per zone; *out is NULL when none (caller frees). */
int state_token_get(struct state *s, const char *zone, char **out)
	__attribute__((warn_unused_result));
int state_token_set(struct state *s, const char *zone, const char *token)
	__attribute__((warn_unused_result));

/* Runs.  run_begin fills r->id and r->started. */
int state_run_begin(struct state *s, struct state_run *r) __attribute__((warn_unused_result));
int state_run_end(struct state *s, const struct state_run *r) __attribute__((warn_unused_result));
/* The most recent run; ICPD_ENOTFOUND when none. */
int state_run_last(struct state *s, struct state_run *out) __attribute__((warn_unused_result));

int state_counts(struct state *s, struct state_counts *out) __attribute__((warn_unused_result));

const char *state_status_name(enum state_status st);
const char *state_describe(void);

#endif
