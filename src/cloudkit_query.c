/*
 * Listing iterator (cloudkit-photos.md §3.2–§3.4) and incremental listing
 * with sync tokens (§7.2).  Pages are fetched by startRank, in parallel
 * when the count is known, decoded, paired and handed out one asset at a
 * time; at most `parallelism` pages are held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cloudkit_p.h"
#include "icpd/asset.h"
#include "icpd/cloudkit.h"
#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define PAGE_PAIRS 100
#define RESULTS_LIMIT 200
#define LOOKUP_BATCH 200
#define MAX_EMPTY_CHANGE_PAGES 100000
/* A batch sent ahead and not collected within this many seconds means the
 * caller spends its time elsewhere (a sync waiting on downloads): its
 * answers sit half-read on idle connections that a server may close, so it
 * is dropped and pages are fetched when asked for from then on. */
#define AHEAD_MAX_AGE 10.0

/*
 * The fields cloudkit_record.c reads, in the order of icloudpd's list of 101
 * (cloudkit-photos.md §3.5), without the 60 it never reads (Width, Height
 * and Fingerprint of every resource, resJPEGLarge, resVidFull, resSidecar,
 * burst, HDR, duration and video-complement timing fields).  CloudKit
 * sends only what is asked for: a listing page shrinks by a quarter, and
 * that is a quarter less to decrypt, decode and free for every asset.
 * A field the decoder starts reading must be added here.
 */
static const char *const desired_keys[] = {
#define RES(x) x "FileType", x "Res"
	RES("resJPEGFull"), RES("resJPEGMed"), RES("resJPEGThumb"),
	RES("resVidMed"), RES("resVidSmall"),
	"itemType", "filenameEnc", "originalOrientation",
	RES("resOriginal"), RES("resOriginalAlt"), RES("resOriginalVidCompl"),
#undef RES
	"isDeleted", "dateExpunged", "recordName", "recordType",
	"recordChangeTag", "masterRef", "assetDate", "addedDate",
	"isFavorite", "isHidden", "orientation", "assetSubtypeV2",
	"captionEnc", "locationEnc", "locationV2Enc", "locationLatitude", "locationLongitude",
	"adjustmentType", "timeZoneOffset", "keywordsEnc",
	"extendedDescEnc", "adjustmentSimpleDataEnc",
};

enum mode { MODE_LIST, MODE_CHANGES };

struct cloudkit_query {
	struct cloudkit *ck;
	enum mode mode;
	char *list_type;
	json_t *extra_filters;   /* array appended after startRank and direction */
	int64_t rank;
	int64_t count;           /* -1 unknown */
	size_t batch;            /* pages in the request batch being decoded */
	struct cloudkit_batch *ahead; /* the batch after it, already on the wire */
	int64_t ahead_rank;      /* its first rank */
	size_t ahead_n;          /* its pages */
	int slot;                /* the slot the next started batch takes */
	double ahead_sent;       /* mono_now() when it was sent */
	bool no_ahead;           /* the consumer is slow: fetch on demand */
	bool eof;
	bool failed;
	struct cloudkit_page page;
	size_t pos;
	struct cloudkit_pairs pairs;
	long skipped;

	/* tokens */
	struct cloudkit_tokens *tokens;
	char *db_key, *zone_key, *zoneid_key;
	char *zone_token;        /* changes mode: the token to ask with next */
	char *new_zone_token;    /* to store at commit */
	char *new_db_token;
	bool want_tokens;
};

const char *cloudkit_change_name(enum cloudkit_change c)
{
	static const char *const names[] = { "new", "edited", "favorited", "hidden", "soft-deleted",
		"purged" };

	return (unsigned)c < ARRAY_SIZE(names) ? names[c] : "?";
}

static json_t *desired_json(void)
{
	json_t *a = json_array();

	for (size_t i = 0; i < ARRAY_SIZE(desired_keys); i++) {
		json_array_append_new(a, json_string(desired_keys[i]));
	}
	return a;
}

static json_t *filter(const char *name, const char *type, json_t *value)
{
	return json_pack("{s:s,s:{s:s,s:o},s:s}", "fieldName", name, "fieldValue", "type", type,
		"value", value, "comparator", "EQUALS");
}

static json_t *page_body(const struct cloudkit_query *it, int64_t rank)
{
	json_t *filters = json_array();
	size_t i;
	json_t *f;

	json_array_append_new(filters, filter("startRank", "INT64", json_integer(rank)));
	json_array_append_new(filters, filter("direction", "STRING", json_string("ASCENDING")));
	json_array_foreach(it->extra_filters, i, f) {
		json_array_append(filters, f);
	}
	return json_pack("{s:{s:o,s:s},s:i,s:o,s:o}", "query", "filterBy", filters, "recordType",
		it->list_type, "resultsLimit", RESULTS_LIMIT, "desiredKeys", desired_json(), "zoneID",
		cloudkit_zone_json(it->ck));
}

static struct cloudkit_query *query_alloc(struct cloudkit *ck)
{
	struct cloudkit_query *it = xcalloc(1, sizeof(*it));

	it->ck = ck;
	it->count = -1;
	it->extra_filters = json_array();
	cloudkit_pairs_init(&it->pairs, false);
	return it;
}

static int setup_listing(struct cloudkit_query *it, const char *album)
{
	struct cloudkit *ck = it->ck;
	const char *count_type = "CPLAssetByAssetDateWithoutHiddenOrDeleted";
	char *owned_count = NULL;
	int err = 0;

	free(it->list_type);
	it->list_type = NULL;
	json_array_clear(it->extra_filters);
	if (!album) {
		it->list_type = xstrdup("CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted");
	} else {
		for (const struct cloudkit_smart_folder *f = cloudkit_smart_folders; f->name; f++) {
			if (strcmp(f->name, album) == 0) {
				it->list_type = xstrdup(f->list_type);
				count_type = f->count_type;
				if (f->tag) {
					json_array_append_new(it->extra_filters,
						filter("smartAlbum", "STRING", json_string(f->tag)));
				}
				break;
			}
		}
	}
	if (!it->list_type) {
		struct cloudkit_album *albums = NULL;
		size_t n = 0;

		err = cloudkit_albums(ck, false, &albums, &n);
		if (err < 0) {
			return err;
		}
		for (size_t i = 0; i < n; i++) {
			if (albums[i].kind == ALBUM_USER &&
				(strcmp(albums[i].name, album) == 0 || strcmp(albums[i].id, album) == 0)) {
				it->list_type = xstrdup("CPLContainerRelationLiveByAssetDate");
				json_array_append_new(it->extra_filters,
					filter("parentId", "STRING", json_string(albums[i].id)));
				owned_count = xasprintf("CPLContainerRelationNotDeletedByAssetDate:%s",
					albums[i].id);
				count_type = owned_count;
				break;
			}
		}
		cloudkit_albums_free(albums, n);
		if (!it->list_type) {
			error_set(ICPD_ENOTFOUND, "unknown album '%s'", album);
			error_hint("'icpd list albums' shows the albums of this library");
			return ICPD_ENOTFOUND;
		}
	}
	if (ck->opts.parallelism > 1) {
		err = cloudkit_count(ck, count_type, &it->count);
		if (err < 0) {
			log_warn("cannot count '%s' (%s); listing one page at a time",
				album ? album : "all photos", error_message());
			error_clear();
			it->count = -1;
			err = 0;
		}
	}
	free(owned_count);
	return err;
}

int cloudkit_query_new(struct cloudkit_query **out, struct cloudkit *ck, const char *album)
{
	struct cloudkit_query *it = query_alloc(ck);
	int err = setup_listing(it, album);

	if (err < 0) {
		cloudkit_query_free(it);
		*out = NULL;
		return err;
	}
	*out = it;
	return 0;
}

void cloudkit_query_free(struct cloudkit_query *it)
{
	if (!it) {
		return;
	}
	cloudkit_batch_cancel(it->ahead);
	free(it->list_type);
	json_decref(it->extra_filters);
	cloudkit_page_release(&it->page);
	cloudkit_pairs_release(&it->pairs);
	free(it->db_key);
	free(it->zone_key);
	free(it->zoneid_key);
	free(it->zone_token);
	free(it->new_zone_token);
	free(it->new_db_token);
	free(it);
}

bool cloudkit_query_is_full(const struct cloudkit_query *it)
{
	return it->mode == MODE_LIST;
}

long cloudkit_query_skipped(const struct cloudkit_query *it)
{
	return it->skipped;
}

/* ---------------------------------------------------------------- listing */

static void set_token(char **dst, const json_t *resp)
{
	const char *t = json_string_value(json_object_get(resp, "syncToken"));

	if (t && !*dst) {
		*dst = xstrdup(t);
	}
}

static int on_list_page(void *ctx, size_t i, json_t *resp)
{
	struct cloudkit_query *it = ctx;
	size_t before = it->page.masters, got;
	int err;

	if (it->want_tokens) {
		set_token(&it->new_zone_token, resp);
	}
	err = cloudkit_pairs_page(&it->pairs, json_object_get(resp, "records"), it->ck->zone.name,
		&it->page);
	if (err < 0) {
		return err;
	}
	got = it->page.masters - before;
	it->rank += (int64_t)got;
	if (got == 0) {
		it->eof = true;
		return 1;
	}
	if (got < PAGE_PAIRS && i + 1 < it->batch) {
		/* a short page in the middle: the rest was fetched at ranks
		 * that no longer line up; ask again from the new rank */
		log_debug("short page at rank %lld; re-reading from there", (long long)it->rank);
		return 1;
	}
	return 0;
}

/* Pages of the batch starting at rank (count known, parallel listing). */
static size_t batch_pages(const struct cloudkit_query *it, int64_t rank)
{
	const struct cloudkit *ck = it->ck;
	size_t k = 1;

	if (it->count >= 0 && ck->opts.parallelism > 1 && rank < it->count) {
		int64_t left = it->count - rank;

		k = (size_t)((left + PAGE_PAIRS - 1) / PAGE_PAIRS);
		if (k > (size_t)ck->opts.parallelism) {
			k = (size_t)ck->opts.parallelism;
		}
	}
	return k;
}

static int start_batch(struct cloudkit_query *it, int64_t rank, size_t k, struct cloudkit_batch **b)
{
	json_t **bodies = xcalloc(k, sizeof(json_t *));
	int err;

	for (size_t i = 0; i < k; i++) {
		bodies[i] = page_body(it, rank + (int64_t)i * PAGE_PAIRS);
	}
	err = cloudkit_batch_start(it->ck, it->slot, it->ck->zone.shared_db, "records/query", bodies,
		k, b);
	it->slot ^= 1;
	for (size_t i = 0; i < k; i++) {
		json_decref(bodies[i]);
	}
	free(bodies);
	return err;
}

/*
 * One batch of pages (several at once when the count is known).  While it
 * is decoded, the next batch is already on the wire (pipelined): the
 * server prepares it while we decode, instead of each side waiting for
 * the other.  When the pages do not line up with the count (a short page:
 * the library changed), the batch ahead asked for the wrong ranks and is
 * dropped.
 */
static int fetch_list(struct cloudkit_query *it)
{
	struct cloudkit *ck = it->ck;
	size_t k = batch_pages(it, it->rank);
	struct cloudkit_batch *b = NULL;
	int64_t next;
	int err;

	if (it->count < 0 || ck->opts.parallelism <= 1) {
		json_t *body = page_body(it, it->rank);

		it->batch = 1;
		err = cloudkit_post_many(ck, ck->zone.shared_db, "records/query", &body, 1,
			on_list_page, it);
		json_decref(body);
		return err;
	}
	if (it->ahead && mono_now() - it->ahead_sent > AHEAD_MAX_AGE) {
		log_debug("listing: the pages fetched ahead waited %.0f s; fetching on demand from here",
			mono_now() - it->ahead_sent);
		cloudkit_batch_cancel(it->ahead);
		it->ahead = NULL;
		it->no_ahead = true;
	}
	if (it->ahead && it->ahead_rank == it->rank && it->ahead_n == k) {
		b = it->ahead;
		it->ahead = NULL;
	} else {
		cloudkit_batch_cancel(it->ahead);
		it->ahead = NULL;
		err = start_batch(it, it->rank, k, &b);
		if (err < 0) {
			return err;
		}
	}
	err = cloudkit_batch_wait(b);
	next = it->rank + (int64_t)k * PAGE_PAIRS;
	if (err == 0 && !it->no_ahead && next < it->count) {
		size_t kn = batch_pages(it, next);

		if (start_batch(it, next, kn, &it->ahead) == 0) {
			it->ahead_rank = next;
			it->ahead_n = kn;
			it->ahead_sent = mono_now();
		} else {
			error_clear(); /* it is asked again when its turn comes */
		}
	}
	it->batch = k;
	return cloudkit_batch_finish(ck, b, on_list_page, it);
}

/* ---------------------------------------------------------------- changes */

static bool token_rejected(const json_t *zresp)
{
	return json_object_get(zresp, "serverErrorCode") != NULL;
}

/* One records/lookup of recs (an array of {"recordName"}; borrowed) in the
 * selected zone, with the listing's desired keys.  *resp: the answer
 * (caller decrefs). */
static int lookup_records(struct cloudkit *ck, json_t *recs, json_t **resp)
{
	json_t *body = json_pack("{s:O,s:o,s:o}", "records", recs, "zoneID", cloudkit_zone_json(ck),
		"desiredKeys", desired_json());
	int err = cloudkit_post(ck, ck->zone.shared_db, "records/lookup", body, true, resp);

	json_decref(body);
	return err;
}

static int lookup_masters(struct cloudkit_query *it)
{
	struct cloudkit *ck = it->ck;
	const char *key;
	json_t *v, *names = json_array();
	int err = 0;

	json_object_foreach(it->pairs.assets, key, v) {
		json_array_append_new(names, json_pack("{s:s}", "recordName", key));
	}
	for (size_t start = 0; err == 0 && start < json_array_size(names); start += LOOKUP_BATCH) {
		json_t *recs = json_array(), *resp = NULL, *r;
		size_t i;

		for (i = start; i < json_array_size(names) && i < start + LOOKUP_BATCH; i++) {
			json_array_append(recs, json_array_get(names, i));
		}
		err = lookup_records(ck, recs, &resp);
		json_decref(recs);
		if (err < 0) {
			break;
		}
		json_array_foreach(json_object_get(resp, "records"), i, r) {
			const char *type = json_string_value(json_object_get(r, "recordType"));

			if (type && strcmp(type, "CPLMaster") == 0) {
				cloudkit_pairs_lone_asset(&it->pairs, r, ck->zone.name, &it->page);
			}
		}
		json_decref(resp);
	}
	/* what the lookup could not complete is reported once, not asked again */
	for (size_t i = 0; err == 0 && i < json_array_size(names); i++) {
		const char *m = json_string_value(json_object_get(json_array_get(names, i), "recordName"));
		json_t *as = json_object_get(it->pairs.assets, m);

		if (as) {
			log_warn("record '%s': changed CPLAsset whose CPLMaster '%s' cannot be looked up; "
				 "skipped", json_string_value(json_object_get(as, "recordName")), m);
			json_object_del(it->pairs.assets, m);
			it->pairs.skipped++;
			it->page.skipped++;
		}
	}
	json_decref(names);
	return err;
}

/* 1: the token was rejected (caller falls back to a full listing). */
static int fetch_changes(struct cloudkit_query *it)
{
	struct cloudkit *ck = it->ck;
	int err = 0;

	for (int guard = 0; guard < MAX_EMPTY_CHANGE_PAGES && it->page.n == 0 && !it->eof; guard++) {
		json_t *body = json_pack("{s:[{s:o,s:s,s:i,s:o}]}", "zones", "zoneID",
			cloudkit_zone_json(ck), "syncToken", it->zone_token, "resultsLimit", RESULTS_LIMIT,
			"desiredKeys", desired_json());
		json_t *resp = NULL, *z;
		const char *tok;

		err = cloudkit_post(ck, ck->zone.shared_db, "changes/zone", body, true, &resp);
		json_decref(body);
		if (err == ICPD_EPROTO) {
			return 1; /* BAD_REQUEST in the body: unknown/garbled token */
		}
		if (err < 0) {
			return err;
		}
		z = json_array_get(json_object_get(resp, "zones"), 0);
		if (!z || token_rejected(z)) {
			log_warn("changes/zone: %s", z ? json_string_value(json_object_get(z,
							  "serverErrorCode")) : "no zone in the answer");
			json_decref(resp);
			return 1;
		}
		err = cloudkit_pairs_page(&it->pairs, json_object_get(z, "records"), ck->zone.name,
			&it->page);
		tok = json_string_value(json_object_get(z, "syncToken"));
		if (tok) {
			free(it->zone_token);
			it->zone_token = xstrdup(tok);
		}
		if (!json_is_true(json_object_get(z, "moreComing"))) {
			it->eof = true;
		}
		json_decref(resp);
		if (err < 0) {
			return err;
		}
		/* asset-only changes (edits, hides...) wait for their masters; look
		 * them up in batches so a large feed stays in constant memory */
		if (!it->eof && json_object_size(it->pairs.assets) >= LOOKUP_BATCH) {
			err = lookup_masters(it);
			if (err < 0) {
				return err;
			}
		}
	}
	if (it->eof) {
		free(it->new_zone_token);
		it->new_zone_token = it->zone_token ? xstrdup(it->zone_token) : NULL;
		err = lookup_masters(it);
	}
	return err;
}

/* ---------------------------------------------------------------- next */

static int refill(struct cloudkit_query *it)
{
	int err;

	cloudkit_page_release(&it->page);
	it->pos = 0;
	while (it->page.n == 0) {
		if (it->eof) {
			cloudkit_pairs_flush(&it->pairs, it->ck->zone.name, &it->page);
			it->skipped += it->page.skipped;
			it->page.skipped = 0;
			return it->page.n ? 0 : ICPD_ITEROVER;
		}
		if (it->mode == MODE_LIST) {
			err = fetch_list(it);
		} else {
			err = fetch_changes(it);
			if (err == 1) {
				log_warn("the stored sync token of library '%s' was rejected; listing "
					 "everything", it->ck->zone.name);
				error_clear();
				it->mode = MODE_LIST;
				it->rank = 0;
				it->eof = false;
				cloudkit_pairs_release(&it->pairs);
				cloudkit_pairs_init(&it->pairs, false);
				cloudkit_page_release(&it->page);
				free(it->new_zone_token);
				it->new_zone_token = NULL;
				err = setup_listing(it, NULL);
			}
		}
		it->skipped += it->page.skipped;
		it->page.skipped = 0;
		if (err < 0) {
			return err;
		}
	}
	return 0;
}

int cloudkit_query_next_change(struct asset *out, enum cloudkit_change *change,
	struct cloudkit_query *it)
{
	int err;

	asset_init(out);
	if (it->failed) {
		return error_set(ICPD_EINTERNAL, "listing iterator used after an error");
	}
	if (it->pos >= it->page.n) {
		err = refill(it);
		if (err < 0) {
			if (err != ICPD_ITEROVER) {
				it->failed = true;
			}
			return err;
		}
	}
	*out = it->page.assets[it->pos];
	if (change) {
		*change = it->mode == MODE_LIST ? CHANGE_NEW : it->page.changes[it->pos];
	}
	asset_init(&it->page.assets[it->pos]);
	it->pos++;
	return 0;
}

int cloudkit_query_next(struct asset *out, struct cloudkit_query *it)
{
	return cloudkit_query_next_change(out, NULL, it);
}

/* ---------------------------------------------------------------- incremental */

static char *zone_desc(const struct cloudkit *ck)
{
	return xasprintf("%d\t%s\t%s", ck->zone.shared_db ? 1 : 0,
		ck->zone.owner ? ck->zone.owner : "", ck->zone.zone_type ? ck->zone.zone_type : "");
}

int cloudkit_query_new_incremental(struct cloudkit_query **out, struct cloudkit *ck,
	struct cloudkit_tokens *tokens, bool *full)
{
	struct cloudkit_query *it = query_alloc(ck);
	const char *db = ck->zone.shared_db ? "shared" : "private";
	char *db_token = NULL, *zone_token = NULL;
	int err;

	*out = NULL;
	it->tokens = tokens;
	it->want_tokens = true;
	it->db_key = xasprintf("db:%s", db);
	it->zone_key = xasprintf("zone:%s:%s", db, ck->zone.name);
	it->zoneid_key = xasprintf("zoneid:%s", ck->zone.name);
	err = tokens->get(tokens->ctx, it->zone_key, &zone_token);
	if (err == 0) {
		err = tokens->get(tokens->ctx, it->db_key, &db_token);
	}
	if (err < 0) {
		goto done;
	}
	if (zone_token && *zone_token) {
		bool zone_changed = true;

		if (db_token && *db_token) {
			json_t *body = json_pack("{s:s}", "syncToken", db_token), *resp = NULL, *z;
			size_t i;

			err = cloudkit_post(ck, ck->zone.shared_db, "changes/database", body, true, &resp);
			json_decref(body);
			if (err == ICPD_EPROTO) {
				log_warn("the stored database sync token was rejected (%s); asking the zone",
					error_message());
				error_clear();
				err = 0;
			} else if (err < 0) {
				goto done;
			} else {
				zone_changed = false;
				json_array_foreach(json_object_get(resp, "zones"), i, z) {
					const char *zn = json_string_value(
						json_object_get(json_object_get(z, "zoneID"), "zoneName"));

					if (zn && strcmp(zn, ck->zone.name) == 0) {
						zone_changed = true;
					}
				}
				set_token(&it->new_db_token, resp);
				json_decref(resp);
			}
		}
		it->mode = MODE_CHANGES;
		cloudkit_pairs_release(&it->pairs);
		cloudkit_pairs_init(&it->pairs, true);
		it->zone_token = xstrdup(zone_token);
		if (!zone_changed) {
			it->eof = true;
			it->new_zone_token = xstrdup(zone_token);
		}
		*full = false;
	} else {
		json_t *body = json_object(), *resp = NULL;

		/* the db token first, so nothing between it and the listing is lost */
		err = cloudkit_post(ck, ck->zone.shared_db, "changes/database", body, true, &resp);
		json_decref(body);
		if (err < 0) {
			log_warn("cannot get a database sync token (%s); the next run asks the zone",
				error_message());
			error_clear();
		} else {
			set_token(&it->new_db_token, resp);
			json_decref(resp);
		}
		it->mode = MODE_LIST;
		err = setup_listing(it, NULL);
		*full = true;
	}
done:
	free(db_token);
	free(zone_token);
	if (err < 0) {
		cloudkit_query_free(it);
		return err;
	}
	*out = it;
	return 0;
}

int cloudkit_query_commit_tokens(struct cloudkit_query *it)
{
	struct cloudkit_tokens *t = it->tokens;
	char *desc;
	int err = 0;

	if (!t) {
		return 0;
	}
	if (!it->eof || it->failed) {
		return error_set(ICPD_EINTERNAL, "sync tokens committed before the listing ended");
	}
	desc = zone_desc(it->ck);
	err = t->put(t->ctx, it->zoneid_key, desc);
	free(desc);
	if (err == 0 && it->new_zone_token) {
		err = t->put(t->ctx, it->zone_key, it->new_zone_token);
	}
	if (err == 0 && it->new_db_token) {
		err = t->put(t->ctx, it->db_key, it->new_db_token);
	}
	return err;
}

int cloudkit_select_library_cached(struct cloudkit *ck, const char *name,
	struct cloudkit_tokens *tokens)
{
	char *key = xasprintf("zoneid:%s", name ? name : "PrimarySync");
	char *desc = NULL;
	int err = tokens ? tokens->get(tokens->ctx, key, &desc) : 0;

	free(key);
	if (err < 0) {
		return err;
	}
	if (desc) {
		char *owner = strchr(desc, '\t'), *type = owner ? strchr(owner + 1, '\t') : NULL;

		if (owner && type) {
			*owner++ = '\0';
			*type++ = '\0';
			free(ck->zone.name);
			free(ck->zone.owner);
			free(ck->zone.zone_type);
			ck->zone.name = xstrdup(name ? name : "PrimarySync");
			ck->zone.shared_db = desc[0] == '1';
			ck->zone.owner = *owner ? xstrdup(owner) : NULL;
			ck->zone.zone_type = *type ? xstrdup(type) : NULL;
			free(desc);
			return 0;
		}
		free(desc);
	}
	return cloudkit_select_library(ck, name);
}

/* ---------------------------------------------------------------- URL refresh */

static bool same_version(const struct asset_version *listed, const struct asset_version *now)
{
	if (listed->size != now->size) {
		return false;
	}
	return !listed->checksum || !now->checksum || strcmp(listed->checksum, now->checksum) == 0;
}

/* Ask for name once per request (two versions of one asset share records). */
static void add_name(json_t *recs, json_t *seen, const char *name)
{
	if (name && !json_object_get(seen, name)) {
		json_object_set_new(seen, name, json_true());
		json_array_append_new(recs, json_pack("{s:s}", "recordName", name));
	}
}

int cloudkit_refresh_urls(struct cloudkit *ck, const struct asset *const *assets,
	const enum asset_size *slots, size_t n, char **urls)
{
	size_t from = 0;
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		urls[i] = NULL;
	}
	while (err == 0 && from < n) {
		json_t *recs = json_array(), *seen = json_object(), *byname = json_object();
		json_t *resp = NULL, *r;
		size_t to = from, i;

		/* both records of each asset (a version may live on either), up
		 * to LOOKUP_BATCH names per request */
		while (to < n && json_array_size(recs) + 2 <= LOOKUP_BATCH) {
			add_name(recs, seen, assets[to]->master_id);
			add_name(recs, seen, assets[to]->asset_id);
			to++;
		}
		err = lookup_records(ck, recs, &resp);
		json_array_foreach(json_object_get(resp, "records"), i, r) {
			const char *name = json_string_value(json_object_get(r, "recordName"));

			if (name && !json_object_get(r, "serverErrorCode") &&
				json_is_string(json_object_get(r, "recordType"))) {
				json_object_set(byname, name, r);
			}
		}
		for (i = from; err == 0 && i < to; i++) {
			const struct asset *a = assets[i];
			const json_t *m = a->master_id ? json_object_get(byname, a->master_id) : NULL;
			const json_t *as = a->asset_id ? json_object_get(byname, a->asset_id) : NULL;
			struct asset fresh; /* holds the looked-up version */
			struct asset_version *v;

			if (!m || !as || !a->zone || strcmp(a->zone, ck->zone.name) != 0) {
				log_debug("record '%s': not found by records/lookup; no fresh URL",
					a->master_id ? a->master_id : "?");
				continue;
			}
			asset_init(&fresh);
			v = &fresh.versions[slots[i]];
			if (cloudkit_record_version(m, as, a->kind, slots[i], v) == 0 &&
				same_version(&a->versions[slots[i]], v)) {
				urls[i] = v->url;
				v->url = NULL;
			} else {
				log_debug("record '%s': the version changed since the listing; no fresh URL",
					a->master_id);
			}
			asset_release(&fresh);
		}
		json_decref(resp);
		json_decref(byname);
		json_decref(seen);
		json_decref(recs);
		from = to;
	}
	if (err) {
		for (size_t i = 0; i < n; i++) {
			free(urls[i]);
			urls[i] = NULL;
		}
	}
	return err;
}
