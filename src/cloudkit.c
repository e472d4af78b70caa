/*
 * CloudKit client: the database URL from the account data, requests with
 * retries and error mapping (all in cloudkit_post), zones → libraries,
 * CheckIndexingState, counts, albums and smart folders
 * (cloudkit-photos.md §1–§3).  One of the modules that may include
 * <jansson.h>.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cloudkit_p.h"
#include "icpd/buf.h"
#include "icpd/cloudkit.h"
#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/session.h"
#include "icpd/util.h"
#include "icpd/version.h"
#include "icpd/banned.h"

#define CONTAINER "/database/1/com.apple.photos.cloud/production/"
#define RETRY_AFTER_CAP 120.0

const char *cloudkit_describe(void)
{
	static char text[64];

	snprintf(text, sizeof(text), "jansson %s", jansson_version_str());
	return text;
}

/* ---------------------------------------------------------------- client */

static int import_cookies(struct cloudkit *ck, struct http_client *h)
{
	if (ck->s->cookies && *ck->s->cookies) {
		return http_cookies_import(h, ck->s->cookies);
	}
	return 0;
}

int cloudkit_new(struct cloudkit **out, struct session *s, const struct cloudkit_options *opts)
{
	struct cloudkit *ck;
	struct http_options ho = { 0 };
	char *base, *cid, *dsid;
	size_t bl;
	int err;

	*out = NULL;
	if (!s || !s->ckdatabasews_url || !*s->ckdatabasews_url) {
		error_set(ICPD_EACCOUNT, "the account data has no photos database URL "
					 "(webservices.ckdatabasews)");
		error_hint("finish setting up iCloud Photos at https://www.icloud.com, then run 'icpd auth'");
		return ICPD_EACCOUNT;
	}
	ck = xcalloc(1, sizeof(*ck));
	ck->s = s;
	if (opts) {
		ck->opts = *opts;
	}
	if (ck->opts.parallelism <= 0) {
		ck->opts.parallelism = 4;
	}
	if (ck->opts.parallelism > 32) {
		ck->opts.parallelism = 32;
	}
	if (ck->opts.max_attempts <= 0) {
		ck->opts.max_attempts = 6;
	}
	if (ck->opts.max_backoff <= 0) {
		ck->opts.max_backoff = 60;
	}
	if (ck->opts.base_backoff <= 0) {
		ck->opts.base_backoff = 1;
	}
	ho.ca_file = ck->opts.ca_file;
	err = http_client_new(&ck->http, &ho);
	if (err < 0) {
		free(ck);
		return err;
	}
	err = import_cookies(ck, ck->http);
	if (err < 0) {
		cloudkit_free(ck);
		return err;
	}
	base = xstrdup(s->ckdatabasews_url);
	bl = strlen(base);
	while (bl && base[bl - 1] == '/') {
		base[--bl] = '\0';
	}
	ck->db_base[0] = xasprintf("%s" CONTAINER "private", base);
	ck->db_base[1] = xasprintf("%s" CONTAINER "shared", base);
	free(base);
	cid = http_escape(s->client_id ? s->client_id : "");
	dsid = http_escape(s->dsid ? s->dsid : "");
	ck->params = xasprintf("clientBuildNumber=2522Project44&clientMasteringNumber=2522B2"
			       "&clientId=%s&dsid=%s&remapEnums=true&getCurrentSyncToken=true",
		cid, dsid);
	free(cid);
	free(dsid);
	ck->zone.name = xstrdup("PrimarySync");
	*out = ck;
	return 0;
}

static void zone_release(struct cloudkit_zone *z)
{
	free(z->name);
	free(z->owner);
	free(z->zone_type);
	memset(z, 0, sizeof(*z));
}

void cloudkit_free(struct cloudkit *ck)
{
	if (!ck) {
		return;
	}
	http_client_free(ck->http);
	http_multi_free(ck->multi[0]);
	http_multi_free(ck->multi[1]);
	for (int i = 0; i < ck->npool; i++) {
		http_client_free(ck->pool[i]);
	}
	free(ck->pool);
	free(ck->db_base[0]);
	free(ck->db_base[1]);
	free(ck->params);
	zone_release(&ck->zone);
	free(ck);
}

long cloudkit_request_count(const struct cloudkit *ck)
{
	return ck->requests;
}

const char *cloudkit_library_name(const struct cloudkit *ck)
{
	return ck->zone.name;
}

json_t *cloudkit_zone_json(const struct cloudkit *ck)
{
	json_t *z = json_pack("{s:s}", "zoneName", ck->zone.name);

	if (ck->zone.owner) {
		json_object_set_new(z, "ownerRecordName", json_string(ck->zone.owner));
	}
	if (ck->zone.zone_type) {
		json_object_set_new(z, "zoneType", json_string(ck->zone.zone_type));
	}
	return z;
}

/* ---------------------------------------------------------------- requests */

enum verdict { V_OK, V_RETRY, V_FAIL, V_REVALIDATE };

static const char *const request_headers[] = {
	"Origin: https://www.icloud.com",
	"Referer: https://www.icloud.com/",
	"Content-Type: text/plain",
	"Accept: */*",
	NULL,
};

/* records/modify goes as JSON, like icloudpd (cloudkit-photos.md §1.4) */
static const char *const modify_headers[] = {
	"Origin: https://www.icloud.com",
	"Referer: https://www.icloud.com/",
	"Content-Type: application/json",
	"Accept: */*",
	NULL,
};

static bool retryable_code(const char *code)
{
	static const char *const codes[] = { "RETRY_LATER", "TRY_AGAIN_LATER", "CAS_OP_LOCK",
		"THROTTLED", "SERVICE_UNAVAILABLE", "INTERNAL_ERROR", NULL };

	for (const char *const *c = codes; code && *c; c++) {
		if (strcmp(code, *c) == 0) {
			return true;
		}
	}
	return false;
}

static int setup_error(const char *code, const char *what)
{
	error_set(ICPD_EACCOUNT, "iCloud Photos is not ready for this account (%s from %s)", code,
		what);
	error_hint("finish setting up iCloud (and iCloud Photos) at https://www.icloud.com in a "
		   "browser, then run icpd again");
	return ICPD_EACCOUNT;
}

/*
 * The one place that decides what a response means.  On V_OK *out holds
 * the parsed body; on V_FAIL the error is set and *err holds it; on
 * V_RETRY *delay says how long to wait (-1 = use the backoff).
 */
static enum verdict classify(const char *what, int net_err, const struct http_response *r,
	json_t **out, int *err, double *delay)
{
	json_t *body = NULL;
	json_error_t jerr;
	const char *code = NULL, *reason = NULL;

	*out = NULL;
	*delay = -1;
	if (net_err < 0) {
		if (net_err == ICPD_ENET) {
			return V_RETRY;
		}
		*err = net_err;
		return V_FAIL;
	}
	if (r->body.len) {
		cloudkit_arena_begin();
		body = cloudkit_json_fast(r->body.data, r->body.len, false);
		if (!body) {
			body = json_loadb(r->body.data, r->body.len, 0, &jerr);
		}
		cloudkit_arena_end();
	}
	if (json_is_object(body)) {
		code = json_string_value(json_object_get(body, "serverErrorCode"));
		reason = json_string_value(json_object_get(body, "reason"));
	}
	if (r->status == 421) {
		json_decref(body);
		return V_REVALIDATE;
	}
	if (r->status == 429 || r->status >= 500 || retryable_code(code)) {
		json_decref(body);
		if (r->retry_after >= 0) {
			*delay = r->retry_after > RETRY_AFTER_CAP ? RETRY_AFTER_CAP : r->retry_after;
		}
		return V_RETRY;
	}
	if (code && strcmp(code, "ACCESS_DENIED") == 0) {
		json_decref(body);
		*err = error_set(ICPD_EACCOUNT, "iCloud refused access to the photo library "
						"(ACCESS_DENIED from %s)", what);
		error_hint("Advanced Data Protection is probably on: on an Apple device turn on "
			   "Settings > [your name] > iCloud > 'Access iCloud Data on the Web', then try again");
		return V_FAIL;
	}
	if (code && (strcmp(code, "ZONE_NOT_FOUND") == 0 ||
			    strcmp(code, "AUTHENTICATION_FAILED") == 0)) {
		*err = setup_error(code, what);
		json_decref(body); /* code points into body */
		return V_FAIL;
	}
	if (r->status == 401 || r->status == 450 ||
		(code && strcmp(code, "AUTHENTICATION_REQUIRED") == 0)) {
		json_decref(body);
		*err = error_set(ICPD_EAUTH, "iCloud asks to sign in again (HTTP %ld from %s)", r->status,
			what);
		error_hint("run 'icpd auth'");
		return V_FAIL;
	}
	if (r->status == 403) {
		json_decref(body);
		*err = error_set(ICPD_EACCOUNT, "iCloud refused access to the photo library (HTTP 403 "
						"from %s)", what);
		error_hint("check that iCloud Photos is on and web access is allowed for this account");
		return V_FAIL;
	}
	if (r->status < 200 || r->status >= 300) {
		*err = error_set(ICPD_EPROTO, "unexpected HTTP %ld from %s%s%s", r->status, what,
			code ? ": " : "", code ? code : "");
		json_decref(body);
		return V_FAIL;
	}
	if (!json_is_object(body)) {
		/* truncated or garbled: treat like a transient failure */
		json_decref(body);
		log_warn("%s: the response is not a JSON object; retrying", what);
		return V_RETRY;
	}
	if (code) {
		*err = error_set(ICPD_EPROTO, "%s failed: %s%s%s", what, code, reason ? ": " : "",
			reason ? reason : "");
		json_decref(body);
		return V_FAIL;
	}
	*out = body;
	return V_OK;
}

void cloudkit_sleep(double s)
{
	struct timespec ts;

	if (s <= 0) {
		return;
	}
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

static double backoff(const struct cloudkit *ck, int attempt)
{
	double d = ck->opts.base_backoff;

	for (int i = 0; i < attempt && d < ck->opts.max_backoff; i++) {
		d *= 2;
	}
	if (d > ck->opts.max_backoff) {
		d = ck->opts.max_backoff;
	}
	/* up to 25 % jitter so parallel clients do not retry in step */
	return d * (0.75 + 0.25 * ((double)rand() / RAND_MAX));
}

static int revalidate(struct cloudkit *ck, const char *what)
{
	int err;

	if (!ck->opts.revalidate || ck->revalidated) {
		error_set(ICPD_EAUTH, "the iCloud session is no longer valid (HTTP 421 from %s)", what);
		error_hint("run 'icpd auth'");
		return ICPD_EAUTH;
	}
	ck->revalidated = true;
	ck->session_gen++;
	log_info("session rejected by %s; validating it again", what);
	err = ck->opts.revalidate(ck->opts.revalidate_ctx, ck->s);
	if (err < 0) {
		return err;
	}
	http_cookies_clear(ck->http);
	err = import_cookies(ck, ck->http);
	for (int i = 0; err == 0 && i < ck->npool; i++) {
		http_cookies_clear(ck->pool[i]);
		err = import_cookies(ck, ck->pool[i]);
	}
	return err;
}

static char *op_url(const struct cloudkit *ck, int db, const char *op, bool with_params)
{
	return with_params ? xasprintf("%s/%s?%s", ck->db_base[db], op, ck->params) :
			     xasprintf("%s/%s", ck->db_base[db], op);
}

/* Retry loop for one request whose first attempt (if any) already ran. */
static int post_loop_h(struct cloudkit *ck, struct http_client *h, const char *url,
	const char *what, const char *const *headers, const char *text, int attempt, json_t **out)
{
	struct http_request req = { .method = "POST", .url = url, .headers = headers,
		.body = text, .body_len = strlen(text) };
	struct http_response resp;
	int err = 0;

	http_response_init(&resp);
	for (;;) {
		enum verdict v;
		double delay;
		int rerr;

		ck->requests++;
		rerr = http_request(h, &req, &resp);
		v = classify(what, rerr, &resp, out, &err, &delay);
		if (v == V_OK) {
			err = 0;
			break;
		}
		if (v == V_FAIL) {
			break;
		}
		if (v == V_REVALIDATE) {
			err = revalidate(ck, what);
			if (err < 0) {
				break;
			}
			continue;
		}
		if (++attempt >= ck->opts.max_attempts) {
			if (rerr < 0) {
				err = rerr; /* keep the network message */
			} else {
				err = error_set(ICPD_EUNAVAIL, "%s still failing after %d attempts (HTTP %ld)",
					what, attempt, resp.status);
				error_hint("iCloud is unavailable or throttling; try again later");
			}
			break;
		}
		if (delay < 0) {
			delay = backoff(ck, attempt - 1);
		}
		log_warn("%s: %s; retrying in %.1f s (attempt %d of %d)", what,
			rerr < 0 ? error_message() : "temporary failure", delay, attempt + 1,
			ck->opts.max_attempts);
		error_clear();
		cloudkit_sleep(delay);
	}
	http_response_release(&resp);
	return err;
}

static int post_loop(struct cloudkit *ck, struct http_client *h, const char *url, const char *what,
	const char *text, int attempt, json_t **out)
{
	return post_loop_h(ck, h, url, what, request_headers, text, attempt, out);
}

int cloudkit_post(struct cloudkit *ck, int db, const char *op, json_t *body, bool with_params,
	json_t **out)
{
	char *url = op_url(ck, db, op, with_params);
	char *text = json_dumps(body, JSON_COMPACT);
	char *what = xasprintf("%s/%s", db ? "shared" : "private", op);
	int err;

	*out = NULL;
	err = post_loop(ck, ck->http, url, what, text ? text : "{}", 0, out);
	free(text);
	free(url);
	free(what);
	return err;
}

int cloudkit_post_json(struct cloudkit *ck, int db, const char *op, json_t *body, json_t **out)
{
	char *url = op_url(ck, db, op, true);
	char *text = json_dumps(body, JSON_COMPACT);
	char *what = xasprintf("%s/%s", db ? "shared" : "private", op);
	int err;

	*out = NULL;
	err = post_loop_h(ck, ck->http, url, what, modify_headers, text ? text : "{}", 0, out);
	free(text);
	free(url);
	free(what);
	return err;
}

static int pool_ensure(struct cloudkit *ck, size_t n)
{
	struct http_options ho = { .ca_file = ck->opts.ca_file };

	if ((size_t)ck->npool >= n) {
		return 0;
	}
	ck->pool = xrealloc(ck->pool, n * sizeof(struct http_client *));
	while ((size_t)ck->npool < n) {
		int err = http_client_new(&ck->pool[ck->npool], &ho);

		if (err < 0) {
			return err;
		}
		err = import_cookies(ck, ck->pool[ck->npool]);
		ck->npool++;
		if (err < 0) {
			return err;
		}
	}
	return 0;
}

struct cloudkit_batch {
	size_t n;
	char *url;
	char *what;
	char **texts;
	struct http_request *reqs;
	struct http_response *resps;
	int *errs;
	struct http_many *inflight;     /* started, not yet waited for */
	int wait_err;                   /* what waiting for it returned */
	size_t slot_base;               /* its first client in ck->pool */
	int session_gen;                /* ck->session_gen when it was sent */
};

void cloudkit_batch_cancel(struct cloudkit_batch *b)
{
	if (!b) {
		return;
	}
	http_many_cancel(b->inflight);
	for (size_t i = 0; i < b->n; i++) {
		free(b->texts[i]);
		http_response_release(&b->resps[i]);
	}
	free(b->texts);
	free(b->reqs);
	free(b->resps);
	free(b->errs);
	free(b->url);
	free(b->what);
	free(b);
}

int cloudkit_batch_start(struct cloudkit *ck, int slot, int db, const char *op, json_t **bodies,
	size_t n, struct cloudkit_batch **out)
{
	struct cloudkit_batch *b = xcalloc(1, sizeof(*b));
	size_t per = ck->opts.parallelism > 1 ? (size_t)ck->opts.parallelism : 1;
	int err;

	*out = NULL;
	b->n = n;
	b->url = op_url(ck, db, op, true);
	b->what = xasprintf("%s/%s", db ? "shared" : "private", op);
	b->texts = xcalloc(n, sizeof(char *));
	b->reqs = xcalloc(n, sizeof(*b->reqs));
	b->resps = xcalloc(n, sizeof(*b->resps));
	b->errs = xcalloc(n, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		http_response_init(&b->resps[i]);
	}
	if (n > per) {
		per = n;
	}
	/* slot s uses pool clients [s * per, s * per + n) and multi s */
	err = pool_ensure(ck, (size_t)(slot + 1) * per);
	if (err == 0 && !ck->multi[slot]) {
		err = http_multi_new(&ck->multi[slot]);
	}
	if (err < 0) {
		cloudkit_batch_cancel(b);
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		b->texts[i] = json_dumps(bodies[i], JSON_COMPACT);
		b->reqs[i] = (struct http_request){ .method = "POST", .url = b->url,
			.headers = request_headers, .body = b->texts[i], .body_len = strlen(b->texts[i]) };
	}
	ck->requests += (long)n;
	err = http_many_start(ck->multi[slot], ck->pool + (size_t)slot * per, b->reqs, b->resps, n,
		&b->inflight);
	if (err < 0) {
		cloudkit_batch_cancel(b);
		return err;
	}
	b->slot_base = (size_t)slot * per;
	b->session_gen = ck->session_gen;
	*out = b;
	return 0;
}

int cloudkit_batch_wait(struct cloudkit_batch *b)
{
	if (b->inflight) {
		b->wait_err = http_many_wait(b->inflight, b->errs);
		b->inflight = NULL;
	}
	return b->wait_err;
}

int cloudkit_batch_finish(struct cloudkit *ck, struct cloudkit_batch *b,
	int (*on_page)(void *ctx, size_t i, json_t *resp), void *ctx)
{
	/* a batch sent before the session was validated again had the old
	 * cookies: its 421s are retried with the new ones, not validated again */
	bool fresh_session = b->session_gen != ck->session_gen;
	int err = cloudkit_batch_wait(b);

	/* one page at a time: parse, hand over, free, so at most one tree lives */
	for (size_t i = 0; i < b->n && err == 0; i++) {
		double delay;
		int e = 0;
		json_t *out = NULL;
		enum verdict v = classify(b->what, b->errs[i], &b->resps[i], &out, &e, &delay);

		http_response_release(&b->resps[i]);
		if (v == V_FAIL) {
			err = e;
			break;
		}
		if (v == V_REVALIDATE && !fresh_session) {
			/* once per batch: the other 421s of it had the old cookies */
			err = revalidate(ck, b->what);
			fresh_session = err == 0;
		} else if (v == V_RETRY) {
			if (delay < 0) {
				delay = backoff(ck, 0);
			}
			log_warn("%s: temporary failure; retrying in %.1f s", b->what, delay);
			error_clear();
			cloudkit_sleep(delay);
		}
		if (err == 0 && v != V_OK) {
			/* this one again, on its own, with the remaining attempts */
			err = post_loop(ck, ck->pool[b->slot_base + i], b->url, b->what, b->texts[i],
				v == V_REVALIDATE ? 0 : 1, &out);
		}
		if (err == 0) {
			err = on_page(ctx, i, out);
		}
		json_decref(out);
		if (err > 0) {
			err = 0; /* the caller needs no more of this batch */
			break;
		}
	}
	cloudkit_batch_cancel(b);
	return err;
}

int cloudkit_post_many(struct cloudkit *ck, int db, const char *op, json_t **bodies, size_t n,
	int (*on_page)(void *ctx, size_t i, json_t *resp), void *ctx)
{
	struct cloudkit_batch *b = NULL;
	int err;

	if (n == 1) {
		json_t *out = NULL;

		err = cloudkit_post(ck, db, op, bodies[0], true, &out);
		if (err == 0) {
			err = on_page(ctx, 0, out);
			err = err > 0 ? 0 : err;
		}
		json_decref(out);
		return err;
	}
	err = cloudkit_batch_start(ck, 0, db, op, bodies, n, &b);
	return err ? err : cloudkit_batch_finish(ck, b, on_page, ctx);
}

/* ---------------------------------------------------------------- zones */

static bool photo_zone(const char *name)
{
	return strcmp(name, "PrimarySync") == 0 || str_startswith(name, "SharedSync-");
}

static int zones_list(struct cloudkit *ck, int db, json_t **zones)
{
	json_t *body = json_object(), *resp = NULL;
	int err;

	err = cloudkit_post(ck, db, "zones/list", body, false, &resp);
	json_decref(body);
	if (err < 0) {
		return err;
	}
	*zones = json_incref(json_object_get(resp, "zones"));
	json_decref(resp);
	if (!json_is_array(*zones)) {
		json_decref(*zones);
		*zones = NULL;
		return error_set(ICPD_EPROTO, "zones/list answered without a zones array");
	}
	return 0;
}

void cloudkit_libraries_free(struct cloudkit_library *libs, size_t n)
{
	for (size_t i = 0; libs && i < n; i++) {
		free(libs[i].name);
		free(libs[i].owner);
		free(libs[i].zone_type);
	}
	free(libs);
}

static int count_in_zone(struct cloudkit *ck, const struct cloudkit_zone *z, const char *obj_type,
	int64_t *out);

int cloudkit_libraries(struct cloudkit *ck, bool with_counts, struct cloudkit_library **out,
	size_t *n)
{
	struct cloudkit_library *libs = NULL;
	size_t cnt = 0;
	int err = 0;

	*out = NULL;
	*n = 0;
	for (int db = 0; db < 2; db++) {
		json_t *zones = NULL, *z;
		size_t i;

		err = zones_list(ck, db, &zones);
		if (err < 0 && db == 1 && err == ICPD_EPROTO) {
			/* no shared database for this account: not fatal */
			log_warn("cannot list shared libraries: %s", error_message());
			error_clear();
			err = 0;
			break;
		}
		if (err < 0) {
			goto done;
		}
		json_array_foreach(zones, i, z) {
			const json_t *id = json_object_get(z, "zoneID");
			const char *name = json_string_value(json_object_get(id, "zoneName"));
			const char *owner = json_string_value(json_object_get(id, "ownerRecordName"));
			const char *type = json_string_value(json_object_get(id, "zoneType"));

			if (!name || json_is_true(json_object_get(z, "deleted")) || !photo_zone(name)) {
				if (name) {
					log_debug("zone '%s' is not a photo library; ignored", name);
				}
				continue;
			}
			libs = xrealloc(libs, (cnt + 1) * sizeof(*libs));
			libs[cnt] = (struct cloudkit_library){ .name = xstrdup(name),
				.owner = owner ? xstrdup(owner) : NULL,
				.zone_type = type ? xstrdup(type) : NULL, .shared_db = db == 1, .count = -1 };
			cnt++;
		}
		json_decref(zones);
	}
	for (size_t i = 0; with_counts && i < cnt; i++) {
		struct cloudkit_zone z = { .name = libs[i].name, .owner = libs[i].owner,
			.zone_type = libs[i].zone_type, .shared_db = libs[i].shared_db };

		err = count_in_zone(ck, &z, "CPLAssetByAssetDateWithoutHiddenOrDeleted", &libs[i].count);
		if (err < 0) {
			goto done;
		}
	}
done:
	if (err < 0) {
		cloudkit_libraries_free(libs, cnt);
		return err;
	}
	*out = libs;
	*n = cnt;
	return 0;
}

static int check_indexing(struct cloudkit *ck)
{
	json_t *body = json_pack("{s:{s:s},s:o}", "query", "recordType", "CheckIndexingState",
		"zoneID", cloudkit_zone_json(ck));
	json_t *resp = NULL, *rec;
	const char *state;
	int err = cloudkit_post(ck, ck->zone.shared_db, "records/query", body, true, &resp);

	json_decref(body);
	if (err < 0) {
		return err;
	}
	rec = json_array_get(json_object_get(resp, "records"), 0);
	state = cloudkit_field_str(rec, "state");
	if (!state || strcmp(state, "FINISHED") != 0) {
		log_warn("library '%s' is still being indexed by iCloud (state %s); the listing may be "
			 "incomplete", ck->zone.name, state ? state : "unknown");
	}
	json_decref(resp);
	return 0;
}

int cloudkit_select_library(struct cloudkit *ck, const char *name)
{
	struct cloudkit_library *libs = NULL;
	size_t n = 0;
	int err;

	if (!name || !*name) {
		name = "PrimarySync";
	}
	err = cloudkit_libraries(ck, false, &libs, &n);
	if (err < 0) {
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(libs[i].name, name) == 0) {
			zone_release(&ck->zone);
			ck->zone.name = xstrdup(libs[i].name);
			ck->zone.owner = libs[i].owner ? xstrdup(libs[i].owner) : NULL;
			ck->zone.zone_type = libs[i].zone_type ? xstrdup(libs[i].zone_type) : NULL;
			ck->zone.shared_db = libs[i].shared_db;
			cloudkit_libraries_free(libs, n);
			return check_indexing(ck);
		}
	}
	{
		struct buf names;

		buf_init(&names, 0);
		for (size_t i = 0; i < n; i++) {
			if (buf_addf(&names, "%s%s", i ? ", " : "", libs[i].name) < 0) {
				break;
			}
		}
		err = error_set(ICPD_ENOTFOUND, "unknown library '%s'", name);
		error_hint("libraries of this account: %s", names.len ? names.data : "(none)");
		buf_release(&names);
	}
	cloudkit_libraries_free(libs, n);
	return err;
}

/* ---------------------------------------------------------------- counts */

static json_t *count_query(const char *obj_type, json_t *zone)
{
	return json_pack("{s:i,s:{s:{s:s,s:{s:s,s:[s]},s:s},s:s},s:b,s:o}", "resultsLimit", 1,
		"query", "filterBy", "fieldName", "indexCountID", "fieldValue", "type", "STRING_LIST",
		"value", obj_type, "comparator", "IN", "recordType", "HyperionIndexCountLookup",
		"zoneWide", 1, "zoneID", zone);
}

static int64_t count_of(const json_t *elem)
{
	const json_t *rec = json_array_get(json_object_get(elem, "records"), 0);
	int64_t v;

	if (rec && cloudkit_field_int(rec, "itemCount", &v) && v >= 0) {
		return v;
	}
	return -1;
}

/* Counts for n obj_types in one batch request per 20. */
static int count_many(struct cloudkit *ck, const struct cloudkit_zone *z, const char *const *types,
	size_t n, int64_t *out)
{
	for (size_t start = 0; start < n; start += 20) {
		size_t end = start + 20 < n ? start + 20 : n;
		json_t *batch = json_array(), *body, *resp = NULL, *arr;
		int err;

		for (size_t i = start; i < end; i++) {
			json_t *zj = json_pack("{s:s}", "zoneName", z->name);

			if (z->owner) {
				json_object_set_new(zj, "ownerRecordName", json_string(z->owner));
			}
			if (z->zone_type) {
				json_object_set_new(zj, "zoneType", json_string(z->zone_type));
			}
			json_array_append_new(batch, count_query(types[i], zj));
		}
		body = json_pack("{s:o}", "batch", batch);
		err = cloudkit_post(ck, z->shared_db, "internal/records/query/batch", body, true, &resp);
		json_decref(body);
		if (err < 0) {
			return err;
		}
		arr = json_object_get(resp, "batch");
		for (size_t i = start; i < end; i++) {
			out[i] = count_of(json_array_get(arr, i - start));
		}
		json_decref(resp);
	}
	return 0;
}

static int count_in_zone(struct cloudkit *ck, const struct cloudkit_zone *z, const char *obj_type,
	int64_t *out)
{
	return count_many(ck, z, &obj_type, 1, out);
}

int cloudkit_count(struct cloudkit *ck, const char *obj_type, int64_t *out)
{
	return count_in_zone(ck, &ck->zone, obj_type, out);
}

/* ---------------------------------------------------------------- albums */

/* cloudkit-photos.md §3.4; the listing side is in cloudkit_query.c. */
const struct cloudkit_smart_folder cloudkit_smart_folders[] = {
	{ "Favorites", "CPLAssetAndMasterInSmartAlbumByAssetDate",
		"CPLAssetInSmartAlbumByAssetDate:Favorite", "FAVORITE" },
	{ "Videos", "CPLAssetAndMasterInSmartAlbumByAssetDate", "CPLAssetInSmartAlbumByAssetDate:Video",
		"VIDEO" },
	{ "Live", "CPLAssetAndMasterInSmartAlbumByAssetDate", "CPLAssetInSmartAlbumByAssetDate:Live",
		"LIVE" },
	{ "Panoramas", "CPLAssetAndMasterInSmartAlbumByAssetDate",
		"CPLAssetInSmartAlbumByAssetDate:Panorama", "PANORAMA" },
	{ "Time-lapse", "CPLAssetAndMasterInSmartAlbumByAssetDate",
		"CPLAssetInSmartAlbumByAssetDate:Timelapse", "TIMELAPSE" },
	{ "Slo-mo", "CPLAssetAndMasterInSmartAlbumByAssetDate", "CPLAssetInSmartAlbumByAssetDate:Slomo",
		"SLOMO" },
	{ "Screenshots", "CPLAssetAndMasterInSmartAlbumByAssetDate",
		"CPLAssetInSmartAlbumByAssetDate:Screenshot", "SCREENSHOT" },
	{ "Bursts", "CPLBurstStackAssetAndMasterByAssetDate", "CPLAssetBurstStackAssetByAssetDate", NULL },
	{ "Hidden", "CPLAssetAndMasterHiddenByAssetDate", "CPLAssetHiddenByAssetDate", NULL },
	{ "Recently Deleted", "CPLAssetAndMasterDeletedByExpungedDate", "CPLAssetDeletedByExpungedDate",
		NULL },
	{ "Portrait", "CPLAssetAndMasterInSmartAlbumByAssetDate", "CPLAssetInSmartAlbumByAssetDate:Depth",
		"DEPTH" },
	{ "Long Exposure", "CPLAssetAndMasterInSmartAlbumByAssetDate",
		"CPLAssetInSmartAlbumByAssetDate:Exposure", "EXPOSURE" },
	{ "Animated", "CPLAssetAndMasterInSmartAlbumByAssetDate",
		"CPLAssetInSmartAlbumByAssetDate:Animated", "ANIMATED" },
	{ NULL, NULL, NULL, NULL },
};

void cloudkit_albums_free(struct cloudkit_album *albums, size_t n)
{
	for (size_t i = 0; albums && i < n; i++) {
		free(albums[i].name);
		free(albums[i].id);
		free(albums[i].parent_id);
	}
	free(albums);
}

static void album_push(struct cloudkit_album **v, size_t *n, struct cloudkit_album a)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = a;
}

/* One CPLAlbumByPositionLive query (parent NULL = top level), following
 * continuationMarker. */
static int album_query(struct cloudkit *ck, const char *parent, json_t *acc)
{
	json_t *marker = NULL;
	int err = 0;

	for (int guard = 0; guard < 1000; guard++) {
		json_t *body = json_pack("{s:{s:s},s:o}", "query", "recordType", "CPLAlbumByPositionLive",
			"zoneID", cloudkit_zone_json(ck));
		json_t *resp = NULL, *recs, *r;
		size_t i;

		if (parent) {
			json_object_set_new(json_object_get(body, "query"), "filterBy",
				json_pack("[{s:s,s:s,s:{s:s,s:s}}]", "fieldName", "parentId", "comparator",
					"EQUALS", "fieldValue", "type", "STRING", "value", parent));
		}
		if (marker) {
			json_object_set(body, "continuationMarker", marker);
		}
		err = cloudkit_post(ck, ck->zone.shared_db, "records/query", body, true, &resp);
		json_decref(body);
		json_decref(marker);
		marker = NULL;
		if (err < 0) {
			return err;
		}
		recs = json_object_get(resp, "records");
		json_array_foreach(recs, i, r) {
			json_array_append(acc, r);
		}
		marker = json_incref(json_object_get(resp, "continuationMarker"));
		json_decref(resp);
		if (!json_is_string(marker)) {
			json_decref(marker);
			return 0;
		}
	}
	json_decref(marker);
	return error_set(ICPD_EPROTO, "album list does not end");
}

int cloudkit_album_from_record(const json_t *r, struct cloudkit_album *out)
{
	const char *id = json_string_value(json_object_get(r, "recordName"));
	const char *parent = cloudkit_field_str(r, "parentId");
	const char *enc = cloudkit_field_str(r, "albumNameEnc");
	const char *why = NULL;
	char *name = NULL;
	int64_t type = 0, del = 0;
	unsigned char *raw = NULL;
	size_t rl = 0;

	if (!id || strcmp(id, "----Root-Folder----") == 0 ||
		strcmp(id, "----Project-Root-Folder----") == 0 ||
		json_is_true(json_object_get(r, "deleted"))) {
		return 1;
	}
	cloudkit_field_int(r, "albumType", &type);
	cloudkit_field_int(r, "isDeleted", &del);
	if (del) {
		return 1;
	}
	if (enc) {
		if (cloudkit_b64decode(enc, &raw, &rl) == 0 && rl > 0 && strlen((char *)raw) == rl) {
			name = (char *)raw;
		} else {
			free(raw);
			error_clear();
			why = "albumNameEnc is not valid base64 text";
		}
	} else {
		why = "no albumNameEnc";
	}
	if (!name) {
		log_warn("album '%s': %s; listed under its record name", id, why);
		name = xstrdup(id);
	}
	if (parent && strcmp(parent, "----Root-Folder----") == 0) {
		parent = NULL;
	}
	*out = (struct cloudkit_album){ .name = name, .id = xstrdup(id),
		.parent_id = parent ? xstrdup(parent) : NULL,
		.kind = type == 3 ? ALBUM_FOLDER : ALBUM_USER, .count = -1 };
	return 0;
}

int cloudkit_albums(struct cloudkit *ck, bool with_counts, struct cloudkit_album **out, size_t *n)
{
	struct cloudkit_album *v = NULL;
	size_t cnt = 0;
	json_t *recs = json_array(), *seen = json_object();
	bool shared = str_startswith(ck->zone.name, "SharedSync");
	int err = 0;

	*out = NULL;
	*n = 0;
	for (const struct cloudkit_smart_folder *f = cloudkit_smart_folders; f->name; f++) {
		album_push(&v, &cnt, (struct cloudkit_album){ .name = xstrdup(f->name),
					     .kind = ALBUM_SMART, .count = -1 });
	}
	if (!shared) {
		/* top level, then each folder's children (breadth first) */
		err = album_query(ck, NULL, recs);
		for (size_t i = 0; err == 0 && i < json_array_size(recs); i++) {
			const json_t *r = json_array_get(recs, i);
			const char *id = json_string_value(json_object_get(r, "recordName"));
			struct cloudkit_album al;

			if (!id || json_object_get(seen, id)) {
				continue;
			}
			json_object_set_new(seen, id, json_true());
			if (cloudkit_album_from_record(r, &al) != 0) {
				continue;
			}
			album_push(&v, &cnt, al);
			if (al.kind == ALBUM_FOLDER) {
				err = album_query(ck, id, recs);
			}
		}
	}
	if (err == 0 && with_counts) {
		const char **types = xcalloc(cnt, sizeof(char *));
		char **owned = xcalloc(cnt, sizeof(char *));
		int64_t *counts = xcalloc(cnt, sizeof(int64_t));
		size_t k = 0;
		size_t *idx = xcalloc(cnt, sizeof(size_t));

		for (size_t i = 0; i < cnt; i++) {
			if (v[i].kind == ALBUM_SMART) {
				types[k] = cloudkit_smart_folders[i].count_type;
			} else if (v[i].kind == ALBUM_USER) {
				owned[i] = xasprintf("CPLContainerRelationNotDeletedByAssetDate:%s", v[i].id);
				types[k] = owned[i];
			} else {
				continue;
			}
			idx[k++] = i;
		}
		err = count_many(ck, &ck->zone, types, k, counts);
		for (size_t j = 0; err == 0 && j < k; j++) {
			v[idx[j]].count = counts[j];
		}
		for (size_t i = 0; i < cnt; i++) {
			free(owned[i]);
		}
		free(owned);
		free(types);
		free(counts);
		free(idx);
	}
	json_decref(recs);
	json_decref(seen);
	if (err < 0) {
		cloudkit_albums_free(v, cnt);
		return err;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* ---------------------------------------------------------------- tokens */

struct token_file {
	char *path;
	json_t *map;
};

static int tf_get(void *ctx, const char *key, char **out)
{
	struct token_file *tf = ctx;
	const char *v = json_string_value(json_object_get(tf->map, key));

	*out = v ? xstrdup(v) : NULL;
	return 0;
}

static int tf_put(void *ctx, const char *key, const char *token)
{
	struct token_file *tf = ctx;
	char *tmp = xasprintf("%s.tmp", tf->path);
	const char *k;
	json_t *v;
	FILE *f;
	int fd, err = 0;

	if (token) {
		json_object_set_new(tf->map, key, json_string(token));
	} else {
		json_object_del(tf->map, key);
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		err = error_set(ICPD_ESTORAGE, "cannot write '%s': %s", tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		goto done;
	}
	json_object_foreach(tf->map, k, v) {
		fprintf(f, "%s\t%s\n", k, json_string_value(v));
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		err = error_set(ICPD_ESTORAGE, "cannot write '%s': %s", tmp, strerror(errno));
	}
	if (fclose(f) != 0 && err == 0) {
		err = error_set(ICPD_ESTORAGE, "cannot write '%s': %s", tmp, strerror(errno));
	}
	if (err == 0 && rename(tmp, tf->path) != 0) {
		err = error_set(ICPD_ESTORAGE, "cannot rename '%s': %s", tmp, strerror(errno));
	}
done:
	if (err < 0) {
		unlink(tmp);
	}
	free(tmp);
	return err;
}

int cloudkit_tokens_file_open(struct cloudkit_tokens *t, const char *path)
{
	struct token_file *tf = xcalloc(1, sizeof(*tf));
	FILE *f = fopen(path, "r");
	char line[8192];

	tf->path = xstrdup(path);
	tf->map = json_object();
	if (!f && errno != ENOENT) {
		int err = error_set(ICPD_ESTORAGE, "cannot open '%s': %s", path, strerror(errno));

		json_decref(tf->map);
		free(tf->path);
		free(tf);
		return err;
	}
	while (f && fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');

		if (nl) {
			*nl = '\0';
		}
		if (!tab) {
			continue;
		}
		*tab = '\0';
		json_object_set_new(tf->map, line, json_string(tab + 1));
	}
	if (f) {
		fclose(f);
	}
	t->get = tf_get;
	t->put = tf_put;
	t->ctx = tf;
	return 0;
}

void cloudkit_tokens_file_close(struct cloudkit_tokens *t)
{
	struct token_file *tf = t ? t->ctx : NULL;

	if (!tf) {
		return;
	}
	json_decref(tf->map);
	free(tf->path);
	free(tf);
	t->ctx = NULL;
}

/* ---------------------------------------------------------------- output */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static char *dump_free(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);

	json_decref(j);
	return s ? s : xstrdup("null");
}

char *cloudkit_asset_json(const struct asset *a, int change)
{
	static const char *const size_names[SIZE_COUNT] = { "original", "alternative", "medium",
		"thumb", "adjusted", "live_original", "live_medium", "live_thumb" };
	static const char *const kinds[] = { "image", "movie", "unknown" };
	json_t *o = json_object(), *vers = json_object();

	json_object_set_new(o, "master_id", str_or_null(a->master_id));
	json_object_set_new(o, "asset_id", str_or_null(a->asset_id));
	json_object_set_new(o, "zone", str_or_null(a->zone));
	if (change >= 0) {
		json_object_set_new(o, "change", json_string(cloudkit_change_name(change)));
	}
	if (a->purged) {
		json_decref(vers);
		json_object_set_new(o, "purged", json_true());
		return dump_free(o);
	}
	json_object_set_new(o, "filename", str_or_null(a->filename));
	json_object_set_new(o, "item_type", str_or_null(a->item_type));
	json_object_set_new(o, "kind", json_string(kinds[a->kind <= ASSET_UNKNOWN ? a->kind : 2]));
	json_object_set_new(o, "asset_date",
		a->asset_date == INT64_MIN ? json_null() : json_integer(a->asset_date));
	json_object_set_new(o, "added_date",
		a->added_date == INT64_MIN ? json_null() : json_integer(a->added_date));
	json_object_set_new(o, "tz_offset", json_integer(a->tz_offset));
	json_object_set_new(o, "favorite", json_boolean(a->favorite));
	json_object_set_new(o, "hidden", json_boolean(a->hidden));
	json_object_set_new(o, "deleted", json_boolean(a->deleted));
	if (a->date_expunged) {
		json_object_set_new(o, "date_expunged", json_integer(a->date_expunged));
	}
	json_object_set_new(o, "caption", str_or_null(a->caption));
	json_object_set_new(o, "description", str_or_null(a->description));
	if (a->keywords) {
		json_t *k = json_array();

		for (char **p = a->keywords; *p; p++) {
			json_array_append_new(k, json_string(*p));
		}
		json_object_set_new(o, "keywords", k);
	}
	if (a->has_location) {
		json_object_set_new(o, "location",
			json_pack("{s:f,s:f,s:f,s:f,s:I}", "lat", a->latitude, "lon", a->longitude, "alt",
				a->altitude, "speed", a->speed, "timestamp", (json_int_t)a->location_time));
	}
	json_object_set_new(o, "orientation", json_integer(a->orientation));
	json_object_set_new(o, "subtype_v2", json_integer(a->subtype_v2));
	json_object_set_new(o, "adjustment_type", str_or_null(a->adjustment_type));
	for (int i = 0; i < SIZE_COUNT; i++) {
		const struct asset_version *v = &a->versions[i];

		if (!v->present) {
			continue;
		}
		json_object_set_new(vers, size_names[i],
			json_pack("{s:s,s:I,s:o,s:o}", "url", v->url, "size", (json_int_t)v->size, "uti",
				str_or_null(v->uti), "checksum", str_or_null(v->checksum)));
	}
	json_object_set_new(o, "versions", vers);
	return dump_free(o);
}

char *cloudkit_libraries_json(const struct cloudkit_library *libs, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		json_array_append_new(a, json_pack("{s:s,s:s,s:o}", "name", libs[i].name, "database",
						 libs[i].shared_db ? "shared" : "private", "count",
						 libs[i].count < 0 ? json_null() : json_integer(libs[i].count)));
	}
	return dump_free(a);
}

char *cloudkit_albums_json(const struct cloudkit_album *albums, size_t n)
{
	static const char *const kinds[] = { "album", "folder", "smart" };
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:o,s:o}", "name", albums[i].name, "kind",
						 kinds[albums[i].kind], "id", str_or_null(albums[i].id),
						 "parent_id", str_or_null(albums[i].parent_id), "count",
						 albums[i].count < 0 ? json_null() : json_integer(albums[i].count)));
	}
	return dump_free(a);
}
