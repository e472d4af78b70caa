/*
 * CloudKit client for iCloud Photos (cloudkit-photos.md): libraries (zones),
 * albums, counts, and a listing iterator that yields plain struct asset.
 * Only cloudkit*.c include <jansson.h>; nothing here exposes json_t.
 *
 * Typical use:
 *	cloudkit_new(&ck, &session, &opts);
 *	cloudkit_select_library(ck, "PrimarySync");
 *	cloudkit_query_new(&it, ck, NULL);          // whole library
 *	while ((err = cloudkit_query_next(&a, it)) == 0) { ...; asset_release(&a); }
 *	if (err == ICPD_ITEROVER) err = 0;
 */
#ifndef ICPD_CLOUDKIT_H
#define ICPD_CLOUDKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icpd/asset.h"

struct session;
struct cloudkit;
struct cloudkit_query;

/* Version string of the JSON library, for `icpd --version`. */
const char *cloudkit_describe(void);

/*
 * Sync-token store (cloudkit-photos.md §7.2).  Keys are short ASCII
 * strings ("db:private", "zone:private:PrimarySync").  get: *out is a
 * malloc'd copy or NULL when absent (return 0); put with token NULL
 * removes.  state.c will provide the persistent implementation; the file
 * one below is for tests and `icpd list assets TOKENFILE`.
 */
struct cloudkit_tokens {
	int (*get)(void *ctx, const char *key, char **out);
	int (*put)(void *ctx, const char *key, const char *token);
	void *ctx;
};

/* A "key<TAB>token" line file; written atomically on each put.  path is
 * copied.  Release with cloudkit_tokens_file_close. */
int cloudkit_tokens_file_open(struct cloudkit_tokens *t, const char *path)
	__attribute__((warn_unused_result));
void cloudkit_tokens_file_close(struct cloudkit_tokens *t);

struct cloudkit_options {
	const char *ca_file;    /* extra CA bundle; NULL = system */
	int parallelism;        /* listing pages in flight; 0 = 4; 1 = sequential */
	int max_attempts;       /* per request, retries included; 0 = 6 */
	double max_backoff;     /* seconds; 0 = 60 (Retry-After is capped at 120) */
	double base_backoff;    /* seconds of the first retry; 0 = 1 */
	/*
	 * Called once after a 421 (session no longer valid): re-validate the
	 * session (accountLogin/validate) and refresh s->cookies; return 0 to
	 * retry the request, or an ICPD_E* code.  NULL = no re-validation
	 * (421 ends with ICPD_EAUTH).
	 */
	int (*revalidate)(void *ctx, struct session *s);
	void *revalidate_ctx;
};

/* One library = one zone (cloudkit-photos.md §2). */
struct cloudkit_library {
	char *name;        /* zoneName, e.g. PrimarySync, SharedSync-<UUID>; owned */
	char *owner;       /* ownerRecordName; owned, may be NULL */
	char *zone_type;   /* owned, may be NULL */
	bool shared_db;    /* listed by the "shared" database */
	int64_t count;     /* assets, -1 when unknown */
};

enum cloudkit_album_kind { ALBUM_USER = 0, ALBUM_FOLDER, ALBUM_SMART };

struct cloudkit_album {
	char *name;        /* decoded albumNameEnc or smart folder name; owned */
	char *id;          /* CPLAlbum recordName; NULL for smart folders; owned */
	char *parent_id;   /* owning folder's recordName; NULL at top level; owned */
	enum cloudkit_album_kind kind;
	int64_t count;     /* -1 when unknown or a folder */
};

/*
 * Client for the account of s (borrowed; must outlive the client: the
 * database URL, dsid, client id and cookies are read from it, and a 421
 * re-validation updates it).  Selects PrimarySync until told otherwise.
 */
int cloudkit_new(struct cloudkit **out, struct session *s, const struct cloudkit_options *opts)
	__attribute__((warn_unused_result));
void cloudkit_free(struct cloudkit *ck);

/* Requests sent so far (including retries); for tests and reports. */
long cloudkit_request_count(const struct cloudkit *ck);

/*
 * zones/list on private and shared; deleted zones and CMM-/AppLibrary
 * zones are left out.  with_counts adds one count query per library.
 * Caller frees with cloudkit_libraries_free.
 */
int cloudkit_libraries(struct cloudkit *ck, bool with_counts, struct cloudkit_library **out,
	size_t *n) __attribute__((warn_unused_result));
void cloudkit_libraries_free(struct cloudkit_library *libs, size_t n);

/* Select the library (zone) by name; ICPD_ENOTFOUND with the list of known
 * names when absent.  Also checks CheckIndexingState (warns when not FINISHED). */
int cloudkit_select_library(struct cloudkit *ck, const char *name)
	__attribute__((warn_unused_result));
/* The selected zone's name; borrowed. */
const char *cloudkit_library_name(const struct cloudkit *ck);

/*
 * Smart folders first (in cloudkit-photos.md §3.4 order), then the user
 * albums and folders of the selected library (none on SharedSync zones).
 * with_counts: one batch count request per 20 albums.
 */
int cloudkit_albums(struct cloudkit *ck, bool with_counts, struct cloudkit_album **out, size_t *n)
	__attribute__((warn_unused_result));
void cloudkit_albums_free(struct cloudkit_album *albums, size_t n);

/* Count for an obj_type (HyperionIndexCountLookup); *out = -1 when missing. */
int cloudkit_count(struct cloudkit *ck, const char *obj_type, int64_t *out)
	__attribute__((warn_unused_result));

/*
 * What changed, for an incremental listing (cloudkit_query_next_change).
 * A full listing reports every asset as CHANGE_NEW.
 */
enum cloudkit_change {
	CHANGE_NEW = 0,       /* not seen before (or: full listing) */
	CHANGE_EDITED,        /* asset record changed (edit, restore, unhide, ...) */
	CHANGE_FAVORITED,     /* isFavorite now 1 */
	CHANGE_HIDDEN,        /* isHidden now 1 */
	CHANGE_SOFT_DELETED,  /* isDeleted 1: in Recently Deleted */
	CHANGE_PURGED,        /* record hard-deleted; only ids are set */
};
const char *cloudkit_change_name(enum cloudkit_change c);

/*
 * Listing iterator over album (NULL = the whole library; else a smart
 * folder name from cloudkit_albums or a user album's name or id).
 * Constant memory: at most `parallelism` pages are held.
 * next: 0 with *out filled (caller releases with asset_release),
 * ICPD_ITEROVER at the end, or an error (the iterator is then done).
 */
int cloudkit_query_new(struct cloudkit_query **out, struct cloudkit *ck, const char *album)
	__attribute__((warn_unused_result));
int cloudkit_query_next(struct asset *out, struct cloudkit_query *it)
	__attribute__((warn_unused_result));
void cloudkit_query_free(struct cloudkit_query *it);

/*
 * Incremental listing of the selected library.  With a stored zone token:
 * changes/database (when a db token is stored) then changes/zone; without
 * one, or when the server rejects the token (warning): a full listing.
 * Tokens are written only after the listing ended (ITEROVER) — call
 * cloudkit_query_commit_tokens then.  *full tells which way was taken.
 */
int cloudkit_query_new_incremental(struct cloudkit_query **out, struct cloudkit *ck,
	struct cloudkit_tokens *tokens, bool *full) __attribute__((warn_unused_result));
/* Like next, also says what changed. */
int cloudkit_query_next_change(struct asset *out, enum cloudkit_change *change,
	struct cloudkit_query *it) __attribute__((warn_unused_result));
int cloudkit_query_commit_tokens(struct cloudkit_query *it)
	__attribute__((warn_unused_result));
/* True when the iterator lists everything (no token, or it was rejected). */
bool cloudkit_query_is_full(const struct cloudkit_query *it);

/*
 * Select a library from the zone id a previous incremental listing stored
 * in tokens (no request at all), else like cloudkit_select_library.
 * tokens may be NULL.
 */
int cloudkit_select_library_cached(struct cloudkit *ck, const char *name,
	struct cloudkit_tokens *tokens) __attribute__((warn_unused_result));

/*
 * Fresh downloadURLs for n versions of listed assets of the selected
 * library (they expire about an hour after the listing, cloudkit-photos.md
 * §5.1): records/lookup of each asset's CPLMaster and CPLAsset, up to 200
 * records per request.  urls[i] (caller frees) is the URL of version
 * slots[i] of assets[i] (borrowed), or NULL when the records are gone or
 * that version changed since the listing (another size or checksum).
 * 0, or the error of a request (every urls[i] is then NULL).
 */
int cloudkit_refresh_urls(struct cloudkit *ck, const struct asset *const *assets,
	const enum asset_size *slots, size_t n, char **urls) __attribute__((warn_unused_result));

/* Records reported and skipped so far (bad records, unpaired halves). */
long cloudkit_query_skipped(const struct cloudkit_query *it);

/*
 * Decoder entry point, exposed for the unit tests and the fuzz target:
 * decode one records/query (or changes/zone "records" array) response page.
 * Pairs CPLMaster/CPLAsset on the page; unpaired halves are reported and
 * counted in skipped.  Caller releases with cloudkit_page_release.
 */
struct cloudkit_page {
	struct asset *assets;   /* owned, n entries */
	enum cloudkit_change *changes; /* owned, n entries */
	size_t n;
	size_t masters;         /* CPLMaster records seen (rank advance) */
	long skipped;           /* records reported and skipped */
	char *sync_token;       /* owned, may be NULL */
	bool more_coming;
};
int cloudkit_page_decode(const char *json, size_t len, const char *zone, struct cloudkit_page *page)
	__attribute__((warn_unused_result));
void cloudkit_page_release(struct cloudkit_page *page);

/*
 * Binary/XML plist helpers used by the decoder (exposed for tests/fuzz).
 * keywords: an array of strings → NULL-terminated owned array.
 * location: a dict with lat, lon|lng, alt, speed, timestamp.
 */
int cloudkit_plist_strings(const unsigned char *data, size_t len, char ***out)
	__attribute__((warn_unused_result));
int cloudkit_plist_location(const unsigned char *data, size_t len, struct asset *a)
	__attribute__((warn_unused_result));

/*
 * Machine output for `icpd list` (one JSON object, no newline; caller
 * frees).  change < 0: no "change" member.
 */
char *cloudkit_asset_json(const struct asset *a, int change);
char *cloudkit_libraries_json(const struct cloudkit_library *libs, size_t n);
char *cloudkit_albums_json(const struct cloudkit_album *albums, size_t n);

/*
 * Move assets of the selected library to Recently Deleted
 * (cloudkit-photos.md §9.1): records/modify setting isDeleted = 1 on each
 * CPLAsset, guarded by the recordChangeTag from the listing, at most
 * CLOUDKIT_TRASH_BATCH operations per request and not atomic, so one
 * refused record does not hold back the others.  Errors come per record
 * inside an HTTP 200 body: CONFLICT (the asset changed since it was listed)
 * leaves it in place unless a records/lookup shows it is already deleted
 * (a retried request that had gone through); TRY_AGAIN_LATER and friends
 * are sent again twice.  Returns 0 when every item has its result, else
 * the error that stopped the requests (items not answered keep result 1).
 */
#define CLOUDKIT_TRASH_BATCH 100

struct cloudkit_trash_item {
	const char *asset_id;    /* CPLAsset recordName; borrowed */
	const char *change_tag;  /* its recordChangeTag from the listing; borrowed */
	int result;              /* out: 0 in Recently Deleted, ICPD_EASSET refused, 1 not answered */
	char why[120];           /* out: the reason when refused */
};

int cloudkit_trash(struct cloudkit *ck, struct cloudkit_trash_item *items, size_t n)
	__attribute__((warn_unused_result));

#endif
