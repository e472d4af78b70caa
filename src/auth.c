/*
 * Signing in to iCloud: the flow of auth-protocol.md §2-§3, §5, §7, §10.
 *
 * The cheapest path that Apple still accepts wins: validate with the cookie
 * jar, then accountLogin with the stored tokens, and only then SRP with the
 * password (sending the stored trust token, so a trusted session needs no
 * code), the second factor, 2sv/trust and accountLogin.  Throttling (429,
 * 5xx) stops the whole flow at once: every extra call extends the window.
 *
 * Sign-in bodies are JSON, so this module parses them with jansson (like
 * session.c and cloudkit*.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "icpd/auth.h"
#include "icpd/buf.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/password.h"
#include "icpd/secret.h"
#include "icpd/session.h"
#include "icpd/srp.h"
#include "icpd/util.h"
#include "icpd/banned.h"

/* auth-protocol.md §1 */
#define WIDGET_KEY "d39ba9916b7251055b22c7f910e2ea796ee65e98b2ddecea8f5dde8d9d1a815d"
#define CLIENT_BUILD "2522Project44"
#define CLIENT_MASTERING "2522B2"
#define ACCEPT_AUTH "application/json, text/javascript"
#define MAX_CODE_TRIES 3
#define MAX_HEADERS 24
#define ANSWER_MAX 256
/* seconds to wait for another icpd holding the session lock */
#define AUTH_LOCK_WAIT 30

enum req_kind {
	REQ_SETUP,  /* setup host: session defaults only */
	REQ_IDMSA,  /* idmsa: auth headers, Origin = web home */
	REQ_SIGNIN, /* signin/init, signin/complete: Origin = auth root */
};

struct auth_ctx {
	struct config *cfg;
	struct session *s;
	struct http_client *http;
	bool may_prompt;
	FILE *in;
	FILE *out;
	char *password;          /* secret memory, fetched when first needed */
	const char *registered[8]; /* token values registered with log_add_secret */
};

/* What accountLogin / validate said (§7). */
struct account_info {
	char *dsid;
	char *ck_url;
	char *domain_to_use;
	long hsa_version;
	bool challenge;
	bool trusted;
	bool qualifying;
	bool adp;
	bool web_access;
	bool locked;
};

static void account_info_release(struct account_info *a)
{
	free(a->dsid);
	free(a->ck_url);
	free(a->domain_to_use);
	memset(a, 0, sizeof(*a));
}

/* ---- secrets in the log ---- */

static void ctx_forget_tokens(struct auth_ctx *ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(ctx->registered); i++) {
		if (ctx->registered[i]) {
			log_forget_secret(ctx->registered[i]);
			ctx->registered[i] = NULL;
		}
	}
}

static void ctx_register(struct auth_ctx *ctx, const char *v)
{
	if (!v || !*v) {
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(ctx->registered); i++) {
		if (!ctx->registered[i]) {
			ctx->registered[i] = v;
			log_add_secret(v);
			return;
		}
	}
}

static void ctx_unregister(struct auth_ctx *ctx, const char *v)
{
	for (size_t i = 0; v && i < ARRAY_SIZE(ctx->registered); i++) {
		if (ctx->registered[i] == v) {
			log_forget_secret(v);
			ctx->registered[i] = NULL;
		}
	}
}

/* Replace a session token field, keeping the log's registry valid. */
static void set_token(struct auth_ctx *ctx, char **field, const char *value)
{
	ctx_unregister(ctx, *field);
	session_set(field, value);
	ctx_register(ctx, *field);
}

/* ---- request headers ---- */

struct hdrs {
	char *v[MAX_HEADERS + 1];
	size_t n;
};

/* Append line (owned from now on). */
static void hdr_take(struct hdrs *h, char *line)
{
	if (h->n == MAX_HEADERS) {
		free(line);
		return;
	}
	h->v[h->n++] = line;
	h->v[h->n] = NULL;
}

/* Header lines may carry scnt and the session id: wipe them. */
static void hdrs_release(struct hdrs *h)
{
	for (size_t i = 0; i < h->n; i++) {
		secure_zero(h->v[i], strlen(h->v[i]));
		free(h->v[i]);
	}
	h->n = 0;
	h->v[0] = NULL;
}

static void build_headers(struct auth_ctx *ctx, enum req_kind kind, const char *accept,
	const char *content_type, struct hdrs *h)
{
	const struct config *cfg = ctx->cfg;
	const struct session *s = ctx->s;
	const char *origin = kind == REQ_SIGNIN ? cfg->auth_root : cfg->home_endpoint;

	h->n = 0;
	h->v[0] = NULL;
	hdr_take(h, xasprintf("Origin: %s", origin));
	hdr_take(h, xasprintf("Referer: %s/", origin));
	if (accept) {
		hdr_take(h, xasprintf("Accept: %s", accept));
	}
	if (content_type) {
		hdr_take(h, xasprintf("Content-Type: %s", content_type));
	}
	if (kind == REQ_SETUP) {
		return;
	}
	hdr_take(h, xasprintf("X-Apple-OAuth-Client-Id: %s", WIDGET_KEY));
	hdr_take(h, xstrdup("X-Apple-OAuth-Client-Type: firstPartyAuth"));
	hdr_take(h, xasprintf("X-Apple-OAuth-Redirect-URI: %s", cfg->home_endpoint));
	hdr_take(h, xstrdup("X-Apple-OAuth-Require-Grant-Code: true"));
	hdr_take(h, xstrdup("X-Apple-OAuth-Response-Mode: web_message"));
	hdr_take(h, xstrdup("X-Apple-OAuth-Response-Type: code"));
	hdr_take(h, xasprintf("X-Apple-OAuth-State: %s", s->client_id));
	hdr_take(h, xasprintf("X-Apple-Widget-Key: %s", WIDGET_KEY));
	if (s->scnt && *s->scnt) {
		hdr_take(h, xasprintf("scnt: %s", s->scnt));
	}
	if (s->session_id && *s->session_id) {
		hdr_take(h, xasprintf("X-Apple-ID-Session-Id: %s", s->session_id));
	}
}

/* ---- one request ---- */

/* Take every token Apple hands out, from every response (§3.1). */
static void capture(struct auth_ctx *ctx, const struct http_response *r)
{
	static const struct {
		const char *header;
		size_t offset;
	} fields[] = {
		{ "scnt", offsetof(struct session, scnt) },
		{ "X-Apple-ID-Account-Country", offsetof(struct session, account_country) },
		{ "X-Apple-ID-Session-Id", offsetof(struct session, session_id) },
		{ "X-Apple-Session-Token", offsetof(struct session, session_token) },
		{ "X-Apple-TwoSV-Trust-Token", offsetof(struct session, trust_token) },
	};

	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		const char *v = http_response_header(r, fields[i].header);

		if (v && *v) {
			set_token(ctx, (char **)((char *)ctx->s + fields[i].offset), v);
		}
	}
}

/*
 * The status that counts: idmsa sometimes answers 200 and hides the real
 * one in X-Apple-I-Rscd (§3.13).
 */
long auth_effective_status(const struct http_response *r)
{
	const char *rscd = http_response_header(r, "X-Apple-I-Rscd");
	long v;

	if (r->status >= 200 && r->status < 300 && rscd && parse_long(rscd, 100, 599, &v) == 0 &&
		(v < 200 || v >= 300)) {
		return v;
	}
	return r->status;
}

static int throttled(const char *step, const struct http_response *r, long status)
{
	if (r->retry_after >= 0) {
		error_set(ICPD_EUNAVAIL,
			"Apple is refusing sign-ins for now (HTTP %ld at %s, retry after %.0f s)",
			status, step, r->retry_after);
	} else {
		error_set(ICPD_EUNAVAIL, "Apple is refusing sign-ins for now (HTTP %ld at %s)",
			status, step);
	}
	error_hint("wait an hour or more before signing in again; every attempt extends the block");
	return ICPD_EUNAVAIL;
}

/*
 * Perform one call; capture headers; stop the whole flow on throttling.
 * *status: the effective status.  body may be NULL.
 */
static int call(struct auth_ctx *ctx, enum req_kind kind, const char *step, const char *method,
	const char *url, const char *body, const char *accept, struct http_response *resp,
	long *status)
{
	struct hdrs h;
	struct http_request req = { 0 };
	int err;

	build_headers(ctx, kind, accept, body ? "application/json" : NULL, &h);
	req.method = method;
	req.url = url;
	req.headers = (const char *const *)h.v;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	req.max_response = 4u << 20;
	err = http_request(ctx->http, &req, resp);
	hdrs_release(&h);
	if (err) {
		return err;
	}
	capture(ctx, resp);
	*status = auth_effective_status(resp);
	log_debug("%s: HTTP %ld", step, *status);
	if (*status == 429 || *status >= 500) {
		return throttled(step, resp, *status);
	}
	return 0;
}

/* Free a JSON text that held secrets. */
static void free_wiped(char *text)
{
	if (text) {
		secure_zero(text, strlen(text));
		free(text);
	}
}

static char *url_join(const char *base, const char *path)
{
	return xasprintf("%s%s", base, path);
}

static json_t *parse_json(const struct buf *b)
{
	json_error_t e;

	if (!b->len) {
		return NULL;
	}
	return json_loadb(b->data, b->len, 0, &e);
}

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool jbool(const json_t *o, const char *key, bool dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* The first service error code of an idmsa body ("-20101"), or NULL. */
static const char *service_error_code(const json_t *root)
{
	static const char *const keys[] = { "serviceErrors", "service_errors" };

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_t *e = json_array_get(json_object_get(root, keys[i]), 0);
		json_t *code = json_object_get(e, "code");

		if (json_is_string(code)) {
			return json_string_value(code);
		}
	}
	return NULL;
}

/* ---- prompts ---- */

/*
 * Ask and read one line.  An empty line re-prints the prompt (someone who
 * attached with kubectl attach missed it) unless allow_empty.
 */
static int ask(struct auth_ctx *ctx, const char *prompt, bool allow_empty, char *answer,
	size_t size)
{
	for (;;) {
		char *line = NULL, *p, *e;
		int err = password_read_line(ctx->in, ctx->out, prompt, false, &line);

		if (err) {
			return error_set(ICPD_EAUTH, "sign-in not finished: the input ended before an "
						     "answer");
		}
		/* trim spaces both ends */
		p = line;
		while (isspace((unsigned char)*p)) {
			p++;
		}
		e = p + strlen(p);
		while (e > p && isspace((unsigned char)e[-1])) {
			*--e = '\0';
		}
		if (*p || allow_empty) {
			snprintf(answer, size, "%s", p);
			secret_free(line);
			return 0;
		}
		secret_free(line);
	}
}

/* Read a verification code: six digits (spaces and dashes ignored). */
static int ask_code(struct auth_ctx *ctx, const char *prompt, char code[16])
{
	for (;;) {
		char answer[ANSWER_MAX];
		size_t n = 0;
		bool ok = true;
		int err = ask(ctx, prompt, false, answer, sizeof(answer));

		if (err) {
			return err;
		}
		for (const char *p = answer; *p; p++) {
			if (isdigit((unsigned char)*p) && n < 15) {
				code[n++] = *p;
			} else if (*p != ' ' && *p != '-') {
				ok = false;
			}
		}
		code[n] = '\0';
		secure_zero(answer, sizeof(answer));
		if (ok && n == 6) {
			return 0;
		}
		fprintf(ctx->out, "a code has 6 digits; try again\n");
	}
}

static int need_person(struct auth_ctx *ctx, const char *what)
{
	return error_set(ICPD_EAUTH, "%s, and no one is here to type it: run 'icpd auth -u %s'",
		what, ctx->cfg->username);
}

/* ---- account data ---- */

static int parse_account(const struct buf *body, struct account_info *a)
{
	json_t *root = parse_json(body), *ds, *ck;
	const char *v;
	int err = 0;

	memset(a, 0, sizeof(*a));
	a->web_access = true;
	if (!json_is_object(root)) {
		err = error_set(ICPD_EPROTO, "iCloud sent an account answer that is not JSON");
		goto done;
	}
	v = jstr(root, "domainToUse");
	if (v) {
		a->domain_to_use = xstrdup(v);
		goto done;
	}
	ds = json_object_get(root, "dsInfo");
	if (!json_is_object(ds)) {
		err = error_set(ICPD_EPROTO, "iCloud's account answer has no dsInfo");
		goto done;
	}
	v = jstr(ds, "dsid");
	if (v) {
		a->dsid = xstrdup(v);
	} else if (json_is_integer(json_object_get(ds, "dsid"))) {
		a->dsid = xasprintf("%" JSON_INTEGER_FORMAT,
			json_integer_value(json_object_get(ds, "dsid")));
	}
	a->hsa_version = (long)json_integer_value(json_object_get(ds, "hsaVersion"));
	a->qualifying = jbool(ds, "hasICloudQualifyingDevice", false);
	a->web_access = jbool(ds, "isWebAccessAllowed", true);
	a->locked = jbool(ds, "locked", false);
	a->adp = jbool(root, "iCDPEnabled", false) || jbool(ds, "iCDPEnabled", false);
	a->challenge = jbool(root, "hsaChallengeRequired", false);
	a->trusted = jbool(root, "hsaTrustedBrowser", false);
	ck = json_object_get(json_object_get(root, "webservices"), "ckdatabasews");
	v = jstr(ck, "url");
	if (v) {
		a->ck_url = xstrdup(v);
	}
done:
	json_decref(root);
	return err;
}

static bool needs_hsa2(const struct account_info *a)
{
	return a->hsa_version == 2 && (a->challenge || !a->trusted) && a->qualifying;
}

static bool needs_2sa(const struct account_info *a)
{
	return !needs_hsa2(a) && a->hsa_version >= 1 && (a->challenge || !a->trusted);
}

/* The account cannot be used whatever we do: say why (§10). */
static int check_account(struct auth_ctx *ctx, const struct account_info *a)
{
	if (a->domain_to_use) {
		bool cn = strstr(a->domain_to_use, ".cn") != NULL;

		error_set(ICPD_EUSAGE, "this Apple ID belongs to %s, not %s: use --domain %s",
			a->domain_to_use, ctx->cfg->domain == DOMAIN_CN ? "iCloud.com.cn" : "iCloud.com",
			cn ? "cn" : "com");
		error_hint("add --domain %s (or 'domain = %s' in the config file) and sign in again",
			cn ? "cn" : "com", cn ? "cn" : "com");
		return ICPD_EUSAGE;
	}
	if (a->locked) {
		error_set(ICPD_EACCOUNT, "the Apple ID '%s' is locked", ctx->cfg->username);
		error_hint("unlock it at https://iforgot.apple.com, then run 'icpd auth'");
		return ICPD_EACCOUNT;
	}
	if (!a->web_access) {
		error_set(ICPD_EACCOUNT, "'Access iCloud Data on the Web' is off for '%s'",
			ctx->cfg->username);
		error_hint("turn it on in Settings > [your name] > iCloud on an iPhone or iPad, "
			   "then run 'icpd auth'");
		return ICPD_EACCOUNT;
	}
	if (a->adp) {
		error_set(ICPD_EACCOUNT, "Advanced Data Protection is on for '%s': iCloud Photos "
					 "cannot be read through iCloud.com sessions",
			ctx->cfg->username);
		error_hint("turn Advanced Data Protection off (Settings > [your name] > iCloud), "
			   "or keep 'Access iCloud Data on the Web' on and sign in again");
		return ICPD_EACCOUNT;
	}
	return 0;
}

/* ---- the reuse paths ---- */

/*
 * POST setup/validate with the cookie jar.  0 and *a filled when Apple
 * still accepts the session; ICPD_ESESSION when not (go on); other errors
 * stop the flow.
 */
static int try_validate(struct auth_ctx *ctx, struct account_info *a)
{
	struct http_response r;
	char *url = url_join(ctx->cfg->setup_endpoint, "/validate");
	long status = 0;
	int err;

	http_response_init(&r);
	err = call(ctx, REQ_SETUP, "validate", "POST", url, "null", "application/json", &r, &status);
	if (err) {
		goto done;
	}
	if (status != 200) {
		log_debug("stored session not accepted by validate (HTTP %ld)", status);
		err = ICPD_ESESSION;
		goto done;
	}
	err = parse_account(&r.body, a);
	if (err) {
		/* a broken answer: try the next path, do not give up */
		log_debug("validate: %s", error_message());
		error_clear();
		err = ICPD_ESESSION;
		goto done;
	}
done:
	http_response_release(&r);
	free(url);
	return err;
}

/*
 * POST setup/accountLogin with the current session token and trust token.
 * 0 and *a filled on 200; ICPD_ESESSION when the token is not accepted.
 */
static int account_login(struct auth_ctx *ctx, struct account_info *a)
{
	struct session *s = ctx->s;
	struct http_response r;
	char *url = url_join(ctx->cfg->setup_endpoint, "/accountLogin");
	json_t *o = json_object();
	char *body;
	long status = 0;
	int err;

	json_object_set_new(o, "accountCountryCode",
		json_string(s->account_country ? s->account_country : ""));
	json_object_set_new(o, "dsWebAuthToken", json_string(s->session_token ? s->session_token : ""));
	json_object_set_new(o, "extended_login", json_true());
	json_object_set_new(o, "trustToken", json_string(s->trust_token ? s->trust_token : ""));
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!body) {
		abort();
	}
	http_response_init(&r);
	err = call(ctx, REQ_SETUP, "accountLogin", "POST", url, body, "application/json", &r,
		&status);
	if (err) {
		goto done;
	}
	if (status != 200) {
		log_debug("accountLogin refused the session token (HTTP %ld)", status);
		err = ICPD_ESESSION;
		goto done;
	}
	err = parse_account(&r.body, a);
done:
	http_response_release(&r);
	free_wiped(body);
	free(url);
	return err;
}

/* ---- SRP (§3.3, §3.4, §4) ---- */

enum signin_result { SIGNIN_TRUSTED, SIGNIN_FACTOR, SIGNIN_REPAIR };

static int get_password(struct auth_ctx *ctx)
{
	int err;

	if (ctx->password) {
		return 0;
	}
	err = password_get(ctx->cfg, ctx->may_prompt, ctx->in, ctx->out, &ctx->password);
	if (err == ICPD_ENOTFOUND) {
		return need_person(ctx, "the saved session is no longer accepted and a password "
					"is needed");
	}
	return err;
}

static int signin_init(struct auth_ctx *ctx, struct srp_client *srp, json_t **init_out)
{
	struct http_response r;
	char *url = url_join(ctx->cfg->auth_endpoint, "/signin/init");
	json_t *o = json_object(), *root = NULL;
	char *body;
	long status = 0;
	int err;

	json_object_set_new(o, "a", json_string(srp_client_A_b64(srp)));
	json_object_set_new(o, "accountName", json_string(ctx->cfg->username));
	json_object_set_new(o, "protocols", json_pack("[ss]", "s2k", "s2k_fo"));
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!body) {
		abort();
	}
	http_response_init(&r);
	err = call(ctx, REQ_SIGNIN, "signin/init", "POST", url, body, ACCEPT_AUTH, &r, &status);
	if (err) {
		goto done;
	}
	if (status == 403) {
		err = throttled("signin/init", &r, status);
		goto done;
	}
	if (status != 200) {
		err = error_set(status == 401 ? ICPD_EAUTH : ICPD_EPROTO,
			"Apple refused to start the sign-in for '%s' (HTTP %ld)", ctx->cfg->username,
			status);
		goto done;
	}
	root = parse_json(&r.body);
	if (!json_is_object(root) || !jstr(root, "salt") || !jstr(root, "b") ||
		!json_object_get(root, "c") || !json_is_integer(json_object_get(root, "iteration"))) {
		err = error_set(ICPD_EPROTO, "Apple's signin/init answer lacks salt, b, c or iteration");
		json_decref(root);
		root = NULL;
		goto done;
	}
	*init_out = root;
done:
	http_response_release(&r);
	free(body);
	free(url);
	return err;
}

static int signin_complete_status(struct auth_ctx *ctx, long status, const struct buf *body,
	enum signin_result *result)
{
	json_t *root = parse_json(body);
	const char *code = service_error_code(root);
	int err = 0;

	switch (status) {
	case 200:
		*result = SIGNIN_TRUSTED;
		break;
	case 409:
		if (json_object_get(root, "fsaChallenge") || json_object_get(root, "keyNames")) {
			err = error_set(ICPD_EACCOUNT, "'%s' signs in with security keys only (FIDO), "
						       "which iCloud.com sessions cannot use",
				ctx->cfg->username);
			error_hint("add a trusted device or phone number for codes, or use another "
				   "tool");
			break;
		}
		*result = SIGNIN_FACTOR;
		break;
	case 412:
		*result = SIGNIN_REPAIR;
		break;
	case 401:
		if (code && strcmp(code, "-20209") == 0) {
			err = error_set(ICPD_EACCOUNT, "the Apple ID '%s' is locked",
				ctx->cfg->username);
			error_hint("unlock it at https://iforgot.apple.com, then run 'icpd auth'");
			break;
		}
		err = error_set(ICPD_EAUTH, "Apple rejected the password for '%s'%s%s%s",
			ctx->cfg->username, code ? " (" : "", code ? code : "", code ? ")" : "");
		error_hint("check the password; app-specific passwords do not work for iCloud.com "
			   "sign-in, use the account password");
		break;
	case 403:
		err = error_set(ICPD_EUNAVAIL, "Apple refused the sign-in for now (HTTP 403)");
		error_hint("wait an hour or more before signing in again");
		break;
	default:
		err = error_set(ICPD_EPROTO, "Apple answered the sign-in with HTTP %ld%s%s", status,
			code ? ", error " : "", code ? code : "");
		break;
	}
	json_decref(root);
	return err;
}

static int srp_signin(struct auth_ctx *ctx, enum signin_result *result)
{
	struct session *s = ctx->s;
	struct srp_client *srp = NULL;
	struct http_response r;
	json_t *init = NULL, *o = NULL;
	uint8_t *salt = NULL, *B = NULL;
	size_t salt_len = 0, B_len = 0;
	uint8_t m1[32], m2[32];
	char *m1b = NULL, *m2b = NULL, *body = NULL, *url = NULL;
	enum srp_protocol proto;
	const char *ptext;
	long status = 0;
	int err;

	http_response_init(&r);
	err = srp_client_new(&srp, NULL, 0);
	if (err) {
		goto done;
	}
	err = signin_init(ctx, srp, &init);
	if (err) {
		goto done;
	}
	ptext = jstr(init, "protocol");
	if (!ptext || strcmp(ptext, "s2k") == 0) {
		proto = SRP_S2K;
	} else if (strcmp(ptext, "s2k_fo") == 0) {
		proto = SRP_S2K_FO;
	} else {
		err = error_set(ICPD_EPROTO, "Apple asked for an unknown password protocol '%s'", ptext);
		goto done;
	}
	err = srp_b64_decode(jstr(init, "salt"), &salt, &salt_len);
	if (!err) {
		err = srp_b64_decode(jstr(init, "b"), &B, &B_len);
	}
	if (err) {
		err = error_set(ICPD_EPROTO, "Apple's signin/init answer has bad base64");
		goto done;
	}
	err = srp_client_proofs(srp, ctx->cfg->username, ctx->password, proto, salt, salt_len,
		(long)json_integer_value(json_object_get(init, "iteration")), B, B_len, m1, m2);
	if (err) {
		goto done;
	}
	m1b = srp_b64_encode(m1, sizeof(m1));
	m2b = srp_b64_encode(m2, sizeof(m2));
	o = json_object();
	json_object_set_new(o, "accountName", json_string(ctx->cfg->username));
	json_object_set(o, "c", json_object_get(init, "c"));
	json_object_set_new(o, "m1", json_string(m1b));
	json_object_set_new(o, "m2", json_string(m2b));
	json_object_set_new(o, "rememberMe", json_true());
	json_object_set_new(o, "trustTokens",
		s->trust_token && *s->trust_token ? json_pack("[s]", s->trust_token) : json_array());
	body = json_dumps(o, JSON_COMPACT);
	if (!body) {
		abort();
	}
	url = url_join(ctx->cfg->auth_endpoint, "/signin/complete?isRememberMeEnabled=true");
	err = call(ctx, REQ_SIGNIN, "signin/complete", "POST", url, body, ACCEPT_AUTH, &r, &status);
	if (err) {
		goto done;
	}
	if (status == 409 && (http_response_header(&r, "X-Apple-EDP") ||
				     http_response_header(&r, "X-Apple-PDP"))) {
		/* auth-protocol.md §3.4: an unconfirmed "escrow" step; not built */
		log_warn("Apple asked for an escrow proof (X-Apple-EDP/PDP), which icpd does not "
			 "support; trying the usual second factor");
	}
	err = signin_complete_status(ctx, status, &r.body, result);
done:
	secure_zero(m1, sizeof(m1));
	secure_zero(m2, sizeof(m2));
	free_wiped(m1b);
	free_wiped(m2b);
	free_wiped(body);
	free(url);
	free(salt);
	free(B);
	json_decref(o);
	json_decref(init);
	http_response_release(&r);
	srp_client_free(srp);
	return err;
}

/* POST <auth>/repair/complete after 412 (§3.5). */
static int repair(struct auth_ctx *ctx)
{
	struct http_response r;
	char *url = url_join(ctx->cfg->auth_endpoint, "/repair/complete");
	long status = 0;
	int err;

	http_response_init(&r);
	err = call(ctx, REQ_IDMSA, "repair/complete", "POST", url, "{}", ACCEPT_AUTH, &r, &status);
	if (!err && (status < 200 || status >= 300)) {
		err = error_set(ICPD_EPROTO, "Apple refused the account repair step (HTTP %ld)",
			status);
		error_hint("sign in once at https://www.icloud.com to accept pending terms");
	}
	http_response_release(&r);
	free(url);
	return err;
}

/* ---- second factor, HSA2 (§3.8-§3.10) ---- */

static bool body_too_many_codes(const struct buf *b)
{
	json_t *root = parse_json(b), *sc;
	const char *code = service_error_code(root);
	bool yes;

	sc = json_object_get(root, "securityCode");
	yes = jbool(sc, "tooManyCodesSent", false) || jbool(sc, "securityCodeLocked", false) ||
	      (code && strcmp(code, "-22981") == 0);
	json_decref(root);
	return yes;
}

static int too_many_codes(void)
{
	error_set(ICPD_EUNAVAIL, "Apple will not send more verification codes for now");
	error_hint("enter the last code you received, or wait a few hours and run 'icpd auth' "
		   "again");
	return ICPD_EUNAVAIL;
}

/* PUT verify/trusteddevice/securitycode: ask Apple to push a code. */
static int push_code(struct auth_ctx *ctx)
{
	struct http_response r;
	char *url = url_join(ctx->cfg->auth_endpoint, "/verify/trusteddevice/securitycode");
	long status = 0;
	int err;

	http_response_init(&r);
	err = call(ctx, REQ_IDMSA, "push code", "PUT", url, NULL, "application/json", &r, &status);
	if (err) {
		goto done;
	}
	if (status == 423 || body_too_many_codes(&r.body)) {
		err = too_many_codes();
		goto done;
	}
	if (status < 200 || status >= 300) {
		/* not fatal: a code may still be on its way (§3.8) */
		log_warn("asking Apple to send a code failed (HTTP %ld); a code may still arrive",
			status);
	}
done:
	http_response_release(&r);
	free(url);
	return err;
}

struct phone_choice {
	long id;
	const char *mode;
};

/* POST the code; 0 accepted, 1 wrong code, error otherwise. */
static int submit_code(struct auth_ctx *ctx, const struct phone_choice *phone, const char *code)
{
	struct http_response r;
	char *url, *body;
	json_t *o = json_object();
	long status = 0;
	int err;

	json_object_set_new(o, "securityCode", json_pack("{ss}", "code", code));
	if (phone) {
		json_object_set_new(o, "phoneNumber", json_pack("{sI}", "id", (json_int_t)phone->id));
		json_object_set_new(o, "mode", json_string(phone->mode));
		url = url_join(ctx->cfg->auth_endpoint, "/verify/phone/securitycode");
	} else {
		url = url_join(ctx->cfg->auth_endpoint, "/verify/trusteddevice/securitycode");
	}
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!body) {
		abort();
	}
	http_response_init(&r);
	err = call(ctx, REQ_IDMSA, "submit code", "POST", url, body,
		phone ? "application/json; charset=utf-8" : "application/json", &r, &status);
	if (err) {
		goto done;
	}
	if (status >= 200 && status < 300) {
		err = 0;
	} else if (status == 400 || status == 401) {
		err = 1;
	} else if (status == 423 || body_too_many_codes(&r.body)) {
		err = too_many_codes();
	} else {
		err = error_set(ICPD_EPROTO, "Apple answered the code with HTTP %ld", status);
	}
done:
	http_response_release(&r);
	free_wiped(body);
	free(url);
	return err;
}

/* Read codes and submit them until one is accepted (at most 3 tries). */
static int code_loop(struct auth_ctx *ctx, const struct phone_choice *phone, const char *first)
{
	char code[16];

	for (int tries = 1;; tries++) {
		int err;

		if (first) {
			snprintf(code, sizeof(code), "%s", first);
			first = NULL;
		} else {
			err = ask_code(ctx, phone ? "enter the 6-digit code from the text message: "
						  : "enter the 6-digit code shown on your device: ",
				code);
			if (err) {
				return err;
			}
		}
		err = submit_code(ctx, phone, code);
		secure_zero(code, sizeof(code));
		if (err <= 0) {
			if (err == 0) {
				fprintf(ctx->out, "code accepted\n");
			}
			return err;
		}
		if (tries >= MAX_CODE_TRIES) {
			return error_set(ICPD_EAUTH, "Apple rejected %d verification codes in a row",
				MAX_CODE_TRIES);
		}
		fprintf(ctx->out, "that code was not accepted; try again (%d of %d)\n", tries + 1,
			MAX_CODE_TRIES);
	}
}

static int fetch_phones(struct auth_ctx *ctx, const char *accept, struct auth_phone_list *l)
{
	struct http_response r;
	long status = 0;
	int err;

	http_response_init(&r);
	err = call(ctx, REQ_IDMSA, "phone list", "GET", ctx->cfg->auth_endpoint, NULL, accept, &r,
		&status);
	if (!err && status != 200) {
		err = error_set(ICPD_EPROTO, "Apple did not list the trusted phone numbers (HTTP %ld)",
			status);
	}
	if (!err) {
		err = auth_parse_phone_list(r.body.data, r.body.len, l);
	}
	http_response_release(&r);
	return err;
}

static int sms_flow(struct auth_ctx *ctx)
{
	struct auth_phone_list l = { 0 };
	struct phone_choice choice;
	struct http_response r;
	char *url = NULL, *body = NULL;
	json_t *o;
	long status = 0;
	size_t pick = 0;
	int err;

	http_response_init(&r);
	/* the HTML page first; the JSON answer as a fallback (§3.9) */
	err = fetch_phones(ctx, "text/html", &l);
	if (err || l.n == 0) {
		if (err == ICPD_EUNAVAIL || err == ICPD_ENET) {
			goto done;
		}
		error_clear();
		auth_phone_list_release(&l);
		err = fetch_phones(ctx, "application/json", &l);
		if (err) {
			goto done;
		}
	}
	if (l.too_many_codes) {
		err = too_many_codes();
		goto done;
	}
	if (l.n == 0) {
		err = error_set(ICPD_EAUTH, "the account has no trusted phone number for SMS codes");
		goto done;
	}
	if (l.n > 1) {
		for (size_t i = 0; i < l.n; i++) {
			fprintf(ctx->out, "  %zu: %s\n", i + 1, l.items[i].label);
		}
		for (;;) {
			char answer[ANSWER_MAX], prompt[64];
			long v;

			snprintf(prompt, sizeof(prompt), "send the code to which number [1-%zu]: ", l.n);
			err = ask(ctx, prompt, false, answer, sizeof(answer));
			if (err) {
				goto done;
			}
			if (parse_long(answer, 1, (long)l.n, &v) == 0) {
				pick = (size_t)v - 1;
				break;
			}
		}
	}
	choice.id = l.items[pick].id;
	choice.mode = "sms";
	o = json_object();
	json_object_set_new(o, "phoneNumber", json_pack("{sI}", "id", (json_int_t)choice.id));
	json_object_set_new(o, "mode", json_string("sms"));
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!body) {
		abort();
	}
	url = url_join(ctx->cfg->auth_endpoint, "/verify/phone");
	err = call(ctx, REQ_IDMSA, "send SMS", "PUT", url, body, "application/json", &r, &status);
	if (err) {
		goto done;
	}
	if (status == 423 || body_too_many_codes(&r.body)) {
		err = too_many_codes();
		goto done;
	}
	if (status < 200 || status >= 300) {
		err = error_set(ICPD_EPROTO, "Apple did not send the text message (HTTP %ld)", status);
		goto done;
	}
	fprintf(ctx->out, "a code was sent to %s\n", l.items[pick].label);
	err = code_loop(ctx, &choice, NULL);
done:
	http_response_release(&r);
	auth_phone_list_release(&l);
	free(body);
	free(url);
	return err;
}

/* GET 2sv/trust: the trust token that lets later sign-ins skip the code. */
static int trust(struct auth_ctx *ctx)
{
	struct http_response r;
	char *url = url_join(ctx->cfg->auth_endpoint, "/2sv/trust");
	long status = 0;
	int err;

	http_response_init(&r);
	err = call(ctx, REQ_IDMSA, "2sv/trust", "GET", url, NULL, ACCEPT_AUTH, &r, &status);
	if (!err && (status < 200 || status >= 300)) {
		err = error_set(ICPD_EPROTO, "Apple refused to trust this session (HTTP %ld)", status);
	}
	if (!err && !http_response_header(&r, "X-Apple-TwoSV-Trust-Token")) {
		log_warn("Apple sent no trust token: the next sign-in will need a code again");
	}
	http_response_release(&r);
	free(url);
	return err;
}

static int hsa2_flow(struct auth_ctx *ctx)
{
	char answer[ANSWER_MAX];
	int err;

	for (;;) {
		size_t n = 0;
		bool digits = true;

		err = ask(ctx, "two-factor authentication: press Enter to send a code to your "
			       "devices, or type s for SMS (or the code, if you already have one): ",
			true, answer, sizeof(answer));
		if (err) {
			return err;
		}
		for (const char *p = answer; *p; p++, n++) {
			digits = digits && isdigit((unsigned char)*p);
		}
		if (n == 0) {
			err = push_code(ctx);
			if (err) {
				return err;
			}
			fprintf(ctx->out, "a code was sent to your trusted devices\n");
			err = code_loop(ctx, NULL, NULL);
			break;
		}
		if (strcmp(answer, "s") == 0 || strcmp(answer, "S") == 0 ||
			strcmp(answer, "sms") == 0) {
			err = sms_flow(ctx);
			break;
		}
		if (digits && n == 6) {
			/* a code they already have: a new push would invalidate it */
			err = code_loop(ctx, NULL, answer);
			secure_zero(answer, sizeof(answer));
			break;
		}
		fprintf(ctx->out, "please press Enter, type s, or type a 6-digit code\n");
	}
	if (err) {
		return err;
	}
	return trust(ctx);
}

/* ---- legacy two-step (2SA, §3.11) ---- */

static char *legacy_url(struct auth_ctx *ctx, const char *path, const char *dsid)
{
	char *cid = http_escape(ctx->s->client_id), *d = http_escape(dsid ? dsid : "");
	char *u = xasprintf("%s%s?clientBuildNumber=%s&clientMasteringNumber=%s&clientId=%s&dsid=%s",
		ctx->cfg->setup_endpoint, path, CLIENT_BUILD, CLIENT_MASTERING, cid, d);

	free(cid);
	free(d);
	return u;
}

/* POST a 2SA call; *ok from {"success": true}. */
static int legacy_post(struct auth_ctx *ctx, const char *step, const char *path, const char *dsid,
	json_t *body_obj, bool *ok)
{
	struct http_response r;
	char *url = legacy_url(ctx, path, dsid);
	char *body = json_dumps(body_obj, JSON_COMPACT);
	json_t *root = NULL;
	long status = 0;
	int err;

	if (!body) {
		abort();
	}
	http_response_init(&r);
	err = call(ctx, REQ_SETUP, step, "POST", url, body, "application/json", &r, &status);
	if (err) {
		goto done;
	}
	root = parse_json(&r.body);
	*ok = status == 200 && jbool(root, "success", false);
	if (status != 200 && status != 400) {
		err = error_set(ICPD_EPROTO, "Apple answered %s with HTTP %ld", step, status);
	}
done:
	json_decref(root);
	http_response_release(&r);
	free_wiped(body);
	free(url);
	return err;
}

static int legacy_flow(struct auth_ctx *ctx, const struct account_info *a)
{
	struct http_response r;
	char *url = legacy_url(ctx, "/listDevices", a->dsid);
	json_t *root = NULL, *devices, *dev, *req = NULL;
	long status = 0;
	size_t pick = 0, n;
	bool ok = false;
	int err;

	http_response_init(&r);
	err = call(ctx, REQ_SETUP, "listDevices", "GET", url, NULL, "application/json", &r, &status);
	if (err) {
		goto done;
	}
	root = parse_json(&r.body);
	devices = json_object_get(root, "devices");
	n = json_array_size(devices);
	if (status != 200 || n == 0) {
		err = error_set(ICPD_EAUTH, "Apple lists no device for a two-step code (HTTP %ld)",
			status);
		goto done;
	}
	if (n > 1) {
		for (size_t i = 0; i < n; i++) {
			json_t *d = json_array_get(devices, i);
			const char *name = jstr(d, "deviceName");

			fprintf(ctx->out, "  %zu: %s %s\n", i + 1, name ? name : "SMS to",
				jstr(d, "phoneNumber") ? jstr(d, "phoneNumber") : "");
		}
		for (;;) {
			char answer[ANSWER_MAX], prompt[64];
			long v;

			snprintf(prompt, sizeof(prompt), "send the code to which device [1-%zu]: ", n);
			err = ask(ctx, prompt, false, answer, sizeof(answer));
			if (err) {
				goto done;
			}
			if (parse_long(answer, 1, (long)n, &v) == 0) {
				pick = (size_t)v - 1;
				break;
			}
		}
	}
	dev = json_array_get(devices, pick);
	err = legacy_post(ctx, "sendVerificationCode", "/sendVerificationCode", a->dsid, dev, &ok);
	if (!err && !ok) {
		err = error_set(ICPD_EAUTH, "Apple did not send the two-step code");
	}
	if (err) {
		goto done;
	}
	fprintf(ctx->out, "a two-step code was sent\n");
	for (int tries = 1;; tries++) {
		char code[16];

		err = ask_code(ctx, "enter the 6-digit two-step code: ", code);
		if (err) {
			goto done;
		}
		req = json_deep_copy(dev);
		json_object_set_new(req, "verificationCode", json_string(code));
		json_object_set_new(req, "trustBrowser", json_true());
		secure_zero(code, sizeof(code));
		err = legacy_post(ctx, "validateVerificationCode", "/validateVerificationCode",
			a->dsid, req, &ok);
		json_decref(req);
		req = NULL;
		if (err) {
			goto done;
		}
		if (ok) {
			fprintf(ctx->out, "code accepted\n");
			break;
		}
		if (tries >= MAX_CODE_TRIES) {
			err = error_set(ICPD_EAUTH, "Apple rejected %d verification codes in a row",
				MAX_CODE_TRIES);
			goto done;
		}
		fprintf(ctx->out, "that code was not accepted; try again (%d of %d)\n", tries + 1,
			MAX_CODE_TRIES);
	}
done:
	json_decref(root);
	http_response_release(&r);
	free(url);
	return err;
}

/* ---- saving ---- */

static int finish(struct auth_ctx *ctx, const struct account_info *a)
{
	struct session *s = ctx->s;
	int err;

	if (!a->ck_url) {
		error_set(ICPD_EACCOUNT, "iCloud Photos is not available for '%s' (no CloudKit "
					 "service in the account data)",
			ctx->cfg->username);
		error_hint("sign in once at https://www.icloud.com/photos to set it up");
		return ICPD_EACCOUNT;
	}
	session_set(&s->dsid, a->dsid);
	session_set(&s->ckdatabasews_url, a->ck_url);
	s->hsa_trusted = a->trusted || !a->challenge;
	/* also recomputes trust_expires from the cookie expiries */
	err = session_store_cookies(s, ctx->http);
	if (err) {
		return err;
	}
	return session_save(s);
}

void auth_print_trust(FILE *out, const struct session *s)
{
	char date[64];
	struct tm tm;

	if (s->trust_expires > 0 && localtime_r(&s->trust_expires, &tm) &&
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M %Z", &tm) > 0) {
		fprintf(out, "trusted until about %s\n", date);
	} else {
		fprintf(out, "trusted (Apple did not say until when)\n");
	}
}

/* ---- the flow ---- */

static bool is_fatal(int err)
{
	return err && err != ICPD_ESESSION;
}

static bool session_empty(const struct session *s)
{
	return !s->session_token && !s->trust_token && !(s->cookies && *s->cookies);
}

static int import_icloudpd(struct auth_ctx *ctx)
{
	const char *dir = ctx->cfg->import_icloudpd;
	int err;

	if (!dir && !session_empty(ctx->s)) {
		return 0;
	}
	err = session_import_icloudpd(ctx->s, dir ? dir : ctx->cfg->cookie_directory);
	if (err == ICPD_ENOTFOUND && !dir) {
		error_clear();
		return 0;
	}
	return err ? err : 1;
}

static int run_flow(struct auth_ctx *ctx)
{
	struct session *s = ctx->s;
	struct account_info a = { 0 };
	enum signin_result res = SIGNIN_FACTOR;
	int err;

	err = import_icloudpd(ctx);
	if (err < 0) {
		return err;
	}
	err = session_load_cookies(s, ctx->http);
	if (err) {
		return err;
	}
	ctx_register(ctx, s->session_token);
	ctx_register(ctx, s->trust_token);
	ctx_register(ctx, s->scnt);
	ctx_register(ctx, s->session_id);

	/* 1. the cookie jar alone */
	if (s->cookies && *s->cookies) {
		err = try_validate(ctx, &a);
		if (is_fatal(err)) {
			goto done;
		}
		if (!err && (a.domain_to_use || (!needs_hsa2(&a) && !needs_2sa(&a)))) {
			err = check_account(ctx, &a);
			if (!err) {
				log_info("the saved session is still valid");
				err = finish(ctx, &a);
			}
			goto done;
		}
		account_info_release(&a);
	}
	/* 2. accountLogin with the stored tokens (no password) */
	if (s->session_token) {
		err = account_login(ctx, &a);
		if (is_fatal(err)) {
			goto done;
		}
		if (!err && (a.domain_to_use || (!needs_hsa2(&a) && !needs_2sa(&a)))) {
			err = check_account(ctx, &a);
			if (!err) {
				log_info("signed in with the saved tokens");
				err = finish(ctx, &a);
			}
			goto done;
		}
		account_info_release(&a);
	}
	/* 3. the password, with the trust token */
	ctx_forget_tokens(ctx);
	session_forget_login(s);
	ctx_register(ctx, s->trust_token);
	/* the engine keeps only what forget_login kept: the trusted-browser cookies */
	http_cookies_clear(ctx->http);
	err = session_load_cookies(s, ctx->http);
	if (!err) {
		err = get_password(ctx);
	}
	if (err) {
		goto done;
	}
	err = srp_signin(ctx, &res);
	if (err) {
		goto done;
	}
	if (res == SIGNIN_REPAIR) {
		err = repair(ctx);
		if (err) {
			goto done;
		}
	}
	err = account_login(ctx, &a);
	if (err == ICPD_ESESSION) {
		err = error_set(ICPD_EACCOUNT, "iCloud refused a fresh sign-in of '%s' (HTTP 421); "
					       "'Access iCloud Data on the Web' may be off",
			ctx->cfg->username);
		error_hint("turn it on in Settings > [your name] > iCloud on an iPhone or iPad, then "
			   "run 'icpd auth'");
	}
	if (err) {
		goto done;
	}
	err = check_account(ctx, &a);
	if (err) {
		goto done;
	}
	if (needs_hsa2(&a) || needs_2sa(&a)) {
		bool legacy = !needs_hsa2(&a);

		if (!ctx->may_prompt) {
			err = need_person(ctx, "the saved trust expired and Apple asks for a "
					       "verification code");
			goto done;
		}
		err = legacy ? legacy_flow(ctx, &a) : hsa2_flow(ctx);
		if (err) {
			goto done;
		}
		account_info_release(&a);
		err = account_login(ctx, &a);
		if (err == ICPD_ESESSION) {
			err = error_set(ICPD_EPROTO, "iCloud refused the session after the code");
		}
		if (err) {
			goto done;
		}
		err = check_account(ctx, &a);
		if (err) {
			goto done;
		}
		if (needs_hsa2(&a) || needs_2sa(&a)) {
			err = error_set(ICPD_EAUTH, "Apple still asks for a second factor after the "
						    "code was accepted");
			goto done;
		}
	}
	err = finish(ctx, &a);
done:
	account_info_release(&a);
	return err;
}

int auth_ensure_session(struct config *cfg, struct session *s, struct http_client *http,
	enum auth_mode mode)
{
	struct auth_ctx ctx = { 0 };
	int err;

	if (!cfg->username || !*cfg->username) {
		error_set(ICPD_EUSAGE, "no Apple ID given");
		error_hint("pass -u/--username or set ICPD_USERNAME");
		return ICPD_EUSAGE;
	}
	ctx.cfg = cfg;
	ctx.s = s;
	ctx.http = http;
	ctx.in = stdin;
	ctx.out = stderr;
	ctx.may_prompt = mode == AUTH_INTERACTIVE ||
			 (isatty(STDIN_FILENO) && isatty(STDERR_FILENO));
	if (ctx.may_prompt) {
		/* no copy of the password in stdio's buffer; nothing read ahead */
		setvbuf(ctx.in, NULL, _IONBF, 0);
	}
	err = run_flow(&ctx);
	password_free(ctx.password);
	ctx_forget_tokens(&ctx);
	return err;
}

/* ---- the trusted phone list (§3.9) ---- */

static const char *find_ci(const char *hay, size_t hlen, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; n <= hlen && i <= hlen - n; i++) {
		if (strncasecmp(hay + i, needle, n) == 0) {
			return hay + i;
		}
	}
	return NULL;
}

/* Whether the attributes of a tag (text between "<script" and ">") name
 * the class boot_args. */
static bool tag_is_boot_args(const char *attrs, size_t len)
{
	const char *p = find_ci(attrs, len, "class");

	while (p) {
		size_t off = (size_t)(p - attrs) + 5;
		const char *q = attrs + off;
		size_t rest = len - off;

		while (rest && isspace((unsigned char)*q)) {
			q++;
			rest--;
		}
		if (rest && *q == '=') {
			q++;
			rest--;
			while (rest && isspace((unsigned char)*q)) {
				q++;
				rest--;
			}
			if (rest && (*q == '"' || *q == '\'')) {
				q++;
				rest--;
			}
			if (rest >= 9 && strncmp(q, "boot_args", 9) == 0 &&
				(rest == 9 || q[9] == '"' || q[9] == '\'' || isspace((unsigned char)q[9]) ||
					q[9] == '>')) {
				return true;
			}
		}
		p = find_ci(attrs + off, len - off, "class");
	}
	return false;
}

/* The JSON text inside <script ... class="boot_args">...</script>. */
static json_t *boot_args(const char *body, size_t len)
{
	const char *p = body, *end = body + len;

	while ((p = find_ci(p, (size_t)(end - p), "<script")) != NULL) {
		const char *gt = memchr(p, '>', (size_t)(end - p));
		const char *close;
		json_error_t e;

		if (!gt) {
			return NULL;
		}
		if (!tag_is_boot_args(p + 7, (size_t)(gt - p - 7))) {
			p = gt + 1;
			continue;
		}
		close = find_ci(gt + 1, (size_t)(end - gt - 1), "</script");
		if (!close) {
			return NULL;
		}
		return json_loadb(gt + 1, (size_t)(close - gt - 1), 0, &e);
	}
	return NULL;
}

static void add_phones(const json_t *pnv, struct auth_phone_list *out)
{
	const json_t *list = json_object_get(pnv, "trustedPhoneNumbers");
	const json_t *sc = json_object_get(pnv, "securityCode");
	size_t i;
	json_t *e;

	if (jbool(sc, "tooManyCodesSent", false) || jbool(sc, "securityCodeLocked", false)) {
		out->too_many_codes = true;
	}
	json_array_foreach(list, i, e) {
		json_t *id = json_object_get(e, "id");
		const char *label = jstr(e, "obfuscatedNumber");
		const char *mode = jstr(e, "pushMode");
		long v;

		if (out->n >= 64) {
			break;
		}
		if (json_is_integer(id)) {
			v = (long)json_integer_value(id);
		} else if (!json_is_string(id) ||
			   parse_long(json_string_value(id), 0, 1L << 30, &v) != 0) {
			continue;
		}
		if (!label) {
			label = jstr(e, "numberWithDialCode");
		}
		if (!label) {
			label = jstr(e, "lastTwoDigits");
		}
		out->items = xrealloc(out->items, (out->n + 1) * sizeof(*out->items));
		out->items[out->n].id = v;
		out->items[out->n].label = xstrdup(label ? label : "a trusted phone number");
		out->items[out->n].push_mode = xstrdup(mode ? mode : "sms");
		out->n++;
	}
}

int auth_parse_phone_list(const char *body, size_t len, struct auth_phone_list *out)
{
	const json_t *two, *pnv;
	json_t *root = NULL;
	size_t i = 0;

	memset(out, 0, sizeof(*out));
	while (i < len && isspace((unsigned char)body[i])) {
		i++;
	}
	if (i < len && body[i] == '{') {
		json_error_t e;

		root = json_loadb(body + i, len - i, 0, &e);
	} else {
		root = boot_args(body, len);
	}
	if (!json_is_object(root)) {
		json_decref(root);
		return error_set(ICPD_EPROTO, "cannot find the trusted phone numbers in Apple's page");
	}
	two = json_object_get(json_object_get(root, "direct"), "twoSV");
	pnv = json_object_get(two, "phoneNumberVerification");
	if (!pnv) {
		pnv = json_object_get(json_object_get(two, "bridgeInitiateData"),
			"phoneNumberVerification");
	}
	if (!pnv) {
		pnv = json_object_get(root, "phoneNumberVerification");
	}
	if (!pnv) {
		pnv = root;
	}
	add_phones(pnv, out);
	if (out->n == 0 && pnv != root) {
		add_phones(root, out);
	}
	json_decref(root);
	return 0;
}

void auth_phone_list_release(struct auth_phone_list *l)
{
	for (size_t i = 0; l && i < l->n; i++) {
		free(l->items[i].label);
		free(l->items[i].push_mode);
	}
	if (l) {
		free(l->items);
		memset(l, 0, sizeof(*l));
	}
}

int auth_sign_in_only(struct config *cfg, enum auth_mode mode)
{
	struct session s;
	struct http_client *http = NULL;
	struct http_options ho = { .ca_file = cfg->ca_file };
	bool opened = false;
	int err;

	memset(&s, 0, sizeof(s));
	s.lock_fd = -1;
	if (!cfg->username || !*cfg->username) {
		error_set(ICPD_EUSAGE, "no Apple ID given");
		error_hint("pass -u/--username or set ICPD_USERNAME");
		return ICPD_EUSAGE;
	}
	err = secret_init();
	if (!err) {
		err = http_global_init();
	}
	if (!err) {
		err = http_client_new(&http, &ho);
	}
	if (err) {
		goto done;
	}
	err = session_open(&s, cfg->cookie_directory, cfg->username, cfg->secret_key_file,
		AUTH_LOCK_WAIT);
	if (err) {
		goto done;
	}
	opened = true;
	err = auth_ensure_session(cfg, &s, http, mode);
	if (err) {
		goto done;
	}
	fprintf(stdout, "signed in as %s; ", cfg->username);
	auth_print_trust(stdout, &s);
	fflush(stdout);
done:
	if (opened) {
		session_close(&s);
	}
	http_client_free(http);
	return err;
}
