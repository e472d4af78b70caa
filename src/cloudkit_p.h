/*
 * Internals shared by cloudkit.c, cloudkit_query.c, cloudkit_record.c and
 * cloudkit_plist.c.  Only these files see json_t.
 */
#ifndef ICPD_CLOUDKIT_P_H
#define ICPD_CLOUDKIT_P_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "icpd/asset.h"
#include "icpd/cloudkit.h"

struct http_client;

struct cloudkit_zone {
	char *name;
	char *owner;
	char *zone_type;
	bool shared_db;
};

struct cloudkit {
	struct session *s;
	struct cloudkit_options opts;
	struct http_client *http;       /* sequential requests */
	struct http_client **pool;      /* parallel listing; opts.parallelism entries, lazily made */
	struct http_multi *multi[2];    /* drive the pool: one per batch in flight */
	int npool;
	char *db_base[2];               /* .../production/private and .../shared */
	char *params;                   /* query string (without '?') */
	struct cloudkit_zone zone;      /* selected library */
	bool revalidated;
	int session_gen;                /* bumped by each validation mid-run */
	long requests;
};

/* Smart folders (cloudkit-photos.md §3.4), NULL-name terminated. */
struct cloudkit_smart_folder {
	const char *name;       /* as icloudpd's --album spells it */
	const char *list_type;  /* records/query recordType */
	const char *count_type; /* HyperionIndexCountLookup indexCountID */
	const char *tag;        /* smartAlbum filter value, NULL when none */
};
extern const struct cloudkit_smart_folder cloudkit_smart_folders[];

/* Base64 (standard alphabet; characters outside it are skipped, padding
 * checked like Python's b64decode).  0 or ICPD_EPROTO.  Caller frees *out
 * (NUL-terminated for convenience; *len excludes the NUL). */
int cloudkit_b64decode(const char *in, unsigned char **out, size_t *len);

/* POST op on db (0 private, 1 shared) with a JSON body; retries, error
 * mapping and re-validation in one place.  *out: the parsed body (caller
 * decrefs).  with_params: append the query string. */
int cloudkit_post(struct cloudkit *ck, int db, const char *op, json_t *body, bool with_params,
	json_t **out) __attribute__((warn_unused_result));

/* Sleep s seconds (through EINTR); nothing when s <= 0. */
void cloudkit_sleep(double s);

/* The same with the query string and Content-Type application/json, as
 * icloudpd sends records/modify. */
int cloudkit_post_json(struct cloudkit *ck, int db, const char *op, json_t *body, json_t **out)
	__attribute__((warn_unused_result));

/* The same for n requests in parallel (pages of one listing).  Each
 * answer is handed to on_page in order (i, parsed body; borrowed) and freed
 * right after; on_page returns 0 to go on, 1 to drop the rest of the batch,
 * or an error. */
int cloudkit_post_many(struct cloudkit *ck, int db, const char *op, json_t **bodies, size_t n,
	int (*on_page)(void *ctx, size_t i, json_t *resp), void *ctx)
	__attribute__((warn_unused_result));

/*
 * cloudkit_post_many in steps, so a listing can have the next batch on the
 * wire while it decodes this one.  Two batches may be in flight, one per
 * slot (0, 1), each with its own clients and multi handle.
 * cloudkit_batch_start sends what it can and returns; cloudkit_batch_wait
 * receives the answers (no parsing; again, it returns what it returned the
 * first time); cloudkit_batch_finish waits if needed,
 * then classifies, retries and hands over each page as cloudkit_post_many
 * does, and frees b; cloudkit_batch_cancel drops b (its connections too).
 */
struct cloudkit_batch;
int cloudkit_batch_start(struct cloudkit *ck, int slot, int db, const char *op, json_t **bodies,
	size_t n, struct cloudkit_batch **b) __attribute__((warn_unused_result));
int cloudkit_batch_wait(struct cloudkit_batch *b) __attribute__((warn_unused_result));
int cloudkit_batch_finish(struct cloudkit *ck, struct cloudkit_batch *b,
	int (*on_page)(void *ctx, size_t i, json_t *resp), void *ctx)
	__attribute__((warn_unused_result));
void cloudkit_batch_cancel(struct cloudkit_batch *b);

/* JSON decoded between begin and end takes its memory from the arena
 * (cloudkit_arena.c); the trees may be freed at any time after, from
 * anywhere (json_decref).  Nests. */
void cloudkit_arena_begin(void);
void cloudkit_arena_end(void);

/* The common shape of a CloudKit answer (ASCII, no escapes, plain numbers)
 * decoded fast into the same tree json_loadb(text, len, flags) would make
 * (flags: 0, or JSON_REJECT_DUPLICATES when reject_duplicates); NULL when
 * the text is anything else, valid or not: then decode it with json_loadb,
 * which alone decides what is an error.  cloudkit_json.c.  Caller decrefs. */
json_t *cloudkit_json_fast(const char *text, size_t len, bool reject_duplicates);

/* The zoneID object of the selected library (new reference). */
json_t *cloudkit_zone_json(const struct cloudkit *ck);

/*
 * Pairing state carried across pages: unpaired CPLMaster / CPLAsset
 * halves keyed by master recordName.  cloudkit_pairs_add takes one record;
 * a completed pair is decoded into out[] (grown as needed).
 */
struct cloudkit_pairs {
	json_t *masters;  /* recordName -> record */
	json_t *assets;   /* master recordName -> record */
	bool changes;     /* a changes feed: classify and keep halves across pages */
	long skipped;
};
void cloudkit_pairs_init(struct cloudkit_pairs *p, bool changes);
void cloudkit_pairs_release(struct cloudkit_pairs *p);
/* Decode a page's "records" array into page (appending).  In a listing
 * (not changes) halves left unpaired at the end of the page stay pending
 * for the next page; cloudkit_pairs_flush reports what is left. */
int cloudkit_pairs_page(struct cloudkit_pairs *p, json_t *records, const char *zone,
	struct cloudkit_page *page);
/* A changes feed's lone CPLAsset, completed by its master from records/lookup. */
int cloudkit_pairs_lone_asset(struct cloudkit_pairs *p, const json_t *master, const char *zone,
	struct cloudkit_page *page);
void cloudkit_pairs_flush(struct cloudkit_pairs *p, const char *zone, struct cloudkit_page *page);

/* Decode one pair into a (initialised by the caller).  0, or ICPD_EASSET
 * when the pair must be skipped (reported with log_warn). */
int cloudkit_record_pair(const json_t *master, const json_t *asset, const char *zone,
	struct asset *a);

/* One version (slot size of an asset of that kind) from a looked-up pair,
 * found as cloudkit_record_pair finds it: 0 with *v filled (release with
 * the asset it goes into, or free its fields), 1 when absent or unusable. */
int cloudkit_record_version(const json_t *master, const json_t *asset, enum asset_kind kind,
	enum asset_size size, struct asset_version *v);

/* A CPLAlbum record → album (0), or 1 when it is not one to offer (root
 * folders, deleted).  A name that cannot be decoded is reported and the
 * record name used instead. */
int cloudkit_album_from_record(const json_t *r, struct cloudkit_album *out);

/* Field helpers. */
const json_t *cloudkit_field(const json_t *rec, const char *name);  /* fields.NAME.value */
const char *cloudkit_field_str(const json_t *rec, const char *name);
bool cloudkit_field_int(const json_t *rec, const char *name, int64_t *out);

/* Append to page (grows arrays). */
void cloudkit_page_push(struct cloudkit_page *page, struct asset *a, enum cloudkit_change c);

#endif
