/*
 * The one write icpd ever makes to iCloud: moving assets to Recently
 * Deleted for --delete-after-download / --keep-icloud-recent-days
 * (cloudkit-photos.md §9.1).  A soft delete only: isDeleted = 1, which the
 * user can undo in Photos for about 40 days.  Never isExpunged.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cloudkit_p.h"
#include "icpd/cloudkit.h"
#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define TRASH_ROUNDS 3 /* a record answered TRY_AGAIN_LATER is sent up to this often */

static bool retryable_record(const char *code)
{
	static const char *const codes[] = { "RETRY_LATER", "TRY_AGAIN_LATER", "CAS_OP_LOCK",
		"THROTTLED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", NULL };

	for (const char *const *c = codes; code && *c; c++) {
		if (strcmp(code, *c) == 0) {
			return true;
		}
	}
	return false;
}

static void refuse(struct cloudkit_trash_item *it, const char *code, const char *reason)
{
	it->result = ICPD_EASSET;
	snprintf(it->why, sizeof(it->why), "%s%s%s", code, reason && *reason ? ": " : "",
		reason ? reason : "");
}

static json_t *trash_body(const struct cloudkit *ck, struct cloudkit_trash_item **batch, size_t n)
{
	json_t *ops = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *rec = json_pack("{s:{s:{s:i}}, s:s, s:s}", "fields", "isDeleted", "value", 1,
			"recordName", batch[i]->asset_id, "recordType", "CPLAsset");

		if (batch[i]->change_tag) {
			json_object_set_new(rec, "recordChangeTag", json_string(batch[i]->change_tag));
		}
		json_array_append_new(ops, json_pack("{s:s, s:o}", "operationType", "update", "record",
			rec));
	}
	return json_pack("{s:b, s:[s], s:o, s:o}", "atomic", 0, "desiredKeys", "isDeleted",
		"operations", ops, "zoneID", cloudkit_zone_json(ck));
}

static const json_t *find_record(const json_t *records, const char *name)
{
	size_t i;
	const json_t *r;

	json_array_foreach(records, i, r) {
		const char *rn = json_string_value(json_object_get(r, "recordName"));

		if (rn && strcmp(rn, name) == 0) {
			return r;
		}
	}
	return NULL;
}

/*
 * A CONFLICT means the record's tag moved on.  If that is because our own
 * earlier attempt went through (a retry after a lost answer), the asset is
 * already where we want it; anything else changed it (an edit, a restore)
 * and it stays.
 */
static int settle_conflicts(struct cloudkit *ck, struct cloudkit_trash_item **c, size_t n)
{
	json_t *names = json_array();
	json_t *body, *resp = NULL;
	const json_t *records;
	int err;

	for (size_t i = 0; i < n; i++) {
		json_array_append_new(names, json_pack("{s:s}", "recordName", c[i]->asset_id));
	}
	body = json_pack("{s:o, s:[s], s:o}", "records", names, "desiredKeys", "isDeleted", "zoneID",
		cloudkit_zone_json(ck));
	err = cloudkit_post(ck, ck->zone.shared_db, "records/lookup", body, true, &resp);
	json_decref(body);
	if (err) {
		return err;
	}
	records = json_object_get(resp, "records");
	for (size_t i = 0; i < n; i++) {
		const json_t *r = find_record(records, c[i]->asset_id);
		int64_t del = 0;

		if (r && !json_object_get(r, "serverErrorCode") &&
			cloudkit_field_int(r, "isDeleted", &del) && del == 1) {
			c[i]->result = 0;
			c[i]->why[0] = '\0';
		}
	}
	json_decref(resp);
	return 0;
}

/* One request for up to CLOUDKIT_TRASH_BATCH items; sets each result. */
static int trash_batch(struct cloudkit *ck, struct cloudkit_trash_item **batch, size_t n)
{
	json_t *body = trash_body(ck, batch, n);
	json_t *resp = NULL;
	const json_t *records;
	struct cloudkit_trash_item *conflicts[CLOUDKIT_TRASH_BATCH];
	size_t nconf = 0;
	int err;

	err = cloudkit_post_json(ck, ck->zone.shared_db, "records/modify", body, &resp);
	json_decref(body);
	if (err) {
		return err;
	}
	records = json_object_get(resp, "records");
	for (size_t i = 0; i < n; i++) {
		struct cloudkit_trash_item *it = batch[i];
		const json_t *r = find_record(records, it->asset_id);
		const char *code = r ? json_string_value(json_object_get(r, "serverErrorCode")) : NULL;
		int64_t del = 0;

		if (!r) {
			refuse(it, "NO_ANSWER", "the response does not mention the record");
		} else if (code) {
			refuse(it, code, json_string_value(json_object_get(r, "reason")));
			if (retryable_record(code)) {
				it->result = 1; /* the caller sends it again */
			} else if (strcmp(code, "CONFLICT") == 0) {
				conflicts[nconf++] = it;
			}
		} else if (cloudkit_field_int(r, "isDeleted", &del) && del == 1) {
			it->result = 0;
			it->why[0] = '\0';
		} else {
			refuse(it, "NOT_DELETED", "the answer does not show isDeleted = 1");
		}
	}
	json_decref(resp);
	if (nconf) {
		err = settle_conflicts(ck, conflicts, nconf);
	}
	return err;
}

int cloudkit_trash(struct cloudkit *ck, struct cloudkit_trash_item *items, size_t n)
{
	struct cloudkit_trash_item *batch[CLOUDKIT_TRASH_BATCH];
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		items[i].result = 1;
		items[i].why[0] = '\0';
	}
	for (int round = 0; round < TRASH_ROUNDS && err == 0; round++) {
		size_t k = 0, left = 0;

		for (size_t i = 0; i < n; i++) {
			left += items[i].result == 1;
		}
		if (!left) {
			break;
		}
		if (round > 0) {
			log_warn("records/modify: %zu records answered 'try again later'; sending them again",
				left);
			cloudkit_sleep(ck->opts.base_backoff * (double)(1 << round));
		}
		for (size_t i = 0; i < n && err == 0; i++) {
			if (items[i].result != 1) {
				continue;
			}
			batch[k++] = &items[i];
			if (k == CLOUDKIT_TRASH_BATCH) {
				err = trash_batch(ck, batch, k);
				k = 0;
			}
		}
		if (k && err == 0) {
			err = trash_batch(ck, batch, k);
		}
	}
	for (size_t i = 0; i < n && err == 0; i++) {
		if (items[i].result == 1) {
			items[i].result = ICPD_EASSET; /* still "try again later" after the last round */
		}
	}
	return err;
}
