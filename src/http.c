/*
 * HTTP client over libcurl: the only module (with http_pool.c) that
 * includes <curl/curl.h>.  One easy handle per client, its own cookie
 * engine, TLS verification always on, every trace redacted.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/version.h"
#include "icpd/banned.h"

#define DEFAULT_UA                                                                                 \
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) " \
	"Chrome/138.0.0.0 Safari/537.36"
#define DEFAULT_MAX_RESPONSE (64u * 1024 * 1024)
#define TRACE_BODY_MAX 2048

struct http_client {
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
};

/* State for one transfer's callbacks. */
struct transfer {
	struct http_response *resp;
	size_t cap;
	bool over_cap;
	size_t hcap;
};

const char *http_describe(void)
{
	static char text[256];
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	snprintf(text, sizeof(text), "libcurl %s (TLS: %s, HTTP/2: %s)", v->version,
		v->ssl_version ? v->ssl_version : "none",
		(v->features & CURL_VERSION_HTTP2) ? "yes" : "no");
	return text;
}

int http_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		return error_set(ICPD_EINTERNAL, "cannot initialise libcurl");
	}
	return 0;
}

int http_client_new(struct http_client **out, const struct http_options *opts)
{
	struct http_client *c = xcalloc(1, sizeof(*c));
	struct http_options none = { 0 };

	if (!opts) {
		opts = &none;
	}
	c->easy = curl_easy_init();
	if (!c->easy) {
		free(c);
		return error_set(ICPD_EINTERNAL, "cannot create a libcurl handle");
	}
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	/* an empty name switches the cookie engine on without reading a file */
	curl_easy_setopt(c->easy, CURLOPT_COOKIEFILE, "");
	curl_easy_setopt(c->easy, CURLOPT_USERAGENT, opts->user_agent ? opts->user_agent : DEFAULT_UA);
	curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT,
		opts->connect_timeout ? opts->connect_timeout : 30L);
	curl_easy_setopt(c->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->easy, CURLOPT_LOW_SPEED_TIME,
		opts->idle_timeout ? opts->idle_timeout : 60L);
	if (opts->ca_file) {
		curl_easy_setopt(c->easy, CURLOPT_CAINFO, opts->ca_file);
	}
	*out = c;
	return 0;
}

void http_client_free(struct http_client *c)
{
	if (!c) {
		return;
	}
	curl_easy_cleanup(c->easy);
	free(c);
}

void http_response_init(struct http_response *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body, 0);
	r->retry_after = -1;
}

static void clear_headers(struct http_response *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	r->headers = NULL;
	r->nheaders = 0;
}

void http_response_release(struct http_response *r)
{
	if (!r) {
		return;
	}
	clear_headers(r);
	buf_release(&r->body);
	r->status = 0;
	r->retry_after = -1;
}

const char *http_response_header(const struct http_response *r, const char *name)
{
	for (size_t i = r->nheaders; i-- > 0;) {
		if (strcasecmp(r->headers[i].name, name) == 0) {
			return r->headers[i].value;
		}
	}
	return NULL;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct transfer *t = ud;
	struct http_response *r = t->resp;
	size_t len = size * nmemb, n = len;
	const char *colon;
	char *name, *value;
	size_t vlen;

	while (n && (data[n - 1] == '\r' || data[n - 1] == '\n')) {
		n--;
	}
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* a new response (after 100-continue, say): forget earlier headers */
		clear_headers(r);
		t->hcap = 0;
		return len;
	}
	colon = memchr(data, ':', n);
	if (!colon) {
		return len;
	}
	name = xstrndup(data, (size_t)(colon - data));
	colon++;
	vlen = n - (size_t)(colon - data);
	while (vlen && (*colon == ' ' || *colon == '\t')) {
		colon++;
		vlen--;
	}
	value = xstrndup(colon, vlen);
	if (strcasecmp(name, "Content-Length") == 0 && r->body.len == 0) {
		/* the body in one block of the right size, not grown by doubling
		 * (a listing page: ~0.4 MB copied 13 times into a 1 MB block) */
		char *end = NULL;
		unsigned long long cl = strtoull(value, &end, 10);

		if (end != value && *end == '\0' && cl <= t->cap && cl <= (16u << 20) &&
			buf_presize(&r->body, (size_t)cl)) {
			error_clear();
		}
	}
	if (r->nheaders == t->hcap) {
		t->hcap = t->hcap ? t->hcap * 2 : 16;
		r->headers = xrealloc(r->headers, t->hcap * sizeof(*r->headers));
	}
	r->headers[r->nheaders].name = name;
	r->headers[r->nheaders].value = value;
	r->nheaders++;
	return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * nmemb;

	if (t->resp->body.len + len > t->cap) {
		t->over_cap = true;
		return 0;
	}
	if (buf_add(&t->resp->body, data, len)) {
		t->over_cap = true;
		return 0;
	}
	return len;
}

static void trace_body(const char *dir, const char *body, size_t len)
{
	char *r;

	if (!log_enabled(LOG_DEBUG) || !len) {
		return;
	}
	r = log_redact_body(body, len);
	if (strlen(r) > TRACE_BODY_MAX) {
		log_debug("%s body: %.*s... (%zu bytes)", dir, TRACE_BODY_MAX, r, len);
	} else {
		log_debug("%s body: %s", dir, r);
	}
	free(r);
}

static void trace_request(const struct http_request *req)
{
	char *url;

	if (!log_enabled(LOG_DEBUG)) {
		return;
	}
	url = log_redact_url(req->url);
	log_debug("> %s %s", req->method, url);
	free(url);
	for (const char *const *h = req->headers; h && *h; h++) {
		char *line = log_redact_header(*h, strlen(*h));

		log_debug("> %s", line);
		free(line);
	}
	trace_body(">", req->body, req->body ? req->body_len : 0);
}

static void trace_response(const struct http_response *r)
{
	if (!log_enabled(LOG_DEBUG)) {
		return;
	}
	log_debug("< %ld", r->status);
	for (size_t i = 0; i < r->nheaders; i++) {
		char *line = xasprintf("%s: %s", r->headers[i].name, r->headers[i].value);
		char *red = log_redact_header(line, strlen(line));

		log_debug("< %s", red);
		free(red);
		free(line);
	}
	trace_body("<", r->body.data, r->body.len);
}

static bool has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);

	for (const char *const *h = headers; h && *h; h++) {
		if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':') {
			return true;
		}
	}
	return false;
}

static double parse_retry_after(const char *v)
{
	long secs;
	time_t when;

	if (!v) {
		return -1;
	}
	if (parse_long(v, 0, 86400, &secs) == 0) {
		return (double)secs;
	}
	when = curl_getdate(v, NULL);
	if (when > 0) {
		time_t now = time(NULL);

		return when > now ? (double)(when - now) : 0;
	}
	return -1;
}

/*
 * One request in two halves, so http_request (one easy handle) and
 * http_many_start/http_many_wait (a curl_multi over several) share them.
 */
struct prepared {
	struct curl_slist *hdrs;
	struct transfer t;
};

static void request_prepare(struct http_client *c, const struct http_request *req,
	struct http_response *resp, struct prepared *p)
{
	CURL *e = c->easy;

	memset(p, 0, sizeof(*p));
	p->t.resp = resp;
	http_response_release(resp);
	buf_init(&resp->body, 0);
	p->t.cap = req->max_response ? req->max_response : DEFAULT_MAX_RESPONSE;

	for (const char *const *h = req->headers; h && *h; h++) {
		p->hdrs = curl_slist_append(p->hdrs, *h);
	}
	/* libcurl must not invent a form content type or an Expect header */
	if (req->body && !has_header(req->headers, "Content-Type")) {
		p->hdrs = curl_slist_append(p->hdrs, "Content-Type:");
	}
	p->hdrs = curl_slist_append(p->hdrs, "Expect:");

	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->hdrs);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &p->t);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &p->t);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	if (strcmp(req->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
	} else {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
			(curl_off_t)(req->body ? req->body_len : 0));
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
			strcmp(req->method, "POST") == 0 ? NULL : req->method);
	}
	trace_request(req);
	c->errbuf[0] = '\0';
}

static int request_finish(struct http_client *c, const struct http_request *req,
	struct http_response *resp, struct prepared *p, CURLcode rc)
{
	CURL *e = c->easy;
	int err = 0;

	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
	if (p->t.over_cap) {
		err = error_set(ICPD_EPROTO, "response from '%s' is larger than %zu bytes",
			req->url, p->t.cap);
		goto done;
	}
	if (rc != CURLE_OK) {
		char *url = log_redact_url(req->url);

		err = error_set(ICPD_ENET, "cannot reach '%s': %s", url,
			c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
		if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
			rc == CURLE_SSL_CONNECT_ERROR) {
			error_hint("check the system CA certificates (or --ca-file)");
		}
		free(url);
		goto done;
	}
	resp->retry_after = parse_retry_after(http_response_header(resp, "Retry-After"));
	trace_response(resp);
done:
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(p->hdrs);
	p->hdrs = NULL;
	return err;
}

int http_request(struct http_client *c, const struct http_request *req, struct http_response *resp)
{
	struct prepared p;

	request_prepare(c, req, resp, &p);
	return request_finish(c, req, resp, &p, curl_easy_perform(c->easy));
}

/* ------------------------------------------------------------------------
 * http_multi / http_many: parallel listing pages.  Several clients, one curl_multi kept for the run (so its
 * connections and TLS sessions are reused between batches), one thread.
 */
struct http_multi {
	CURLM *m;
};

int http_multi_new(struct http_multi **out)
{
	struct http_multi *hm = xcalloc(1, sizeof(*hm));

	hm->m = curl_multi_init();
	if (!hm->m) {
		free(hm);
		return error_set(ICPD_EINTERNAL, "cannot create a libcurl multi handle");
	}
	curl_multi_setopt(hm->m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	*out = hm;
	return 0;
}

void http_multi_free(struct http_multi *hm)
{
	if (!hm) {
		return;
	}
	curl_multi_cleanup(hm->m);
	free(hm);
}

struct http_many {
	struct http_multi *hm;
	struct http_client **clients;
	const struct http_request *reqs;
	struct http_response *resps;
	struct prepared *p;
	CURLcode *rcs;
	size_t n;
};

int http_many_start(struct http_multi *hm, struct http_client **clients,
	const struct http_request *reqs, struct http_response *resps, size_t n,
	struct http_many **out)
{
	struct http_many *b = xcalloc(1, sizeof(*b));
	int running = 0;

	b->hm = hm;
	b->clients = xcalloc(n, sizeof(struct http_client *));
	for (size_t i = 0; i < n; i++) {
		b->clients[i] = clients[i];
	}
	b->reqs = reqs;
	b->resps = resps;
	b->n = n;
	b->p = xcalloc(n, sizeof(*b->p));
	b->rcs = xcalloc(n, sizeof(*b->rcs));
	for (size_t i = 0; i < n; i++) {
		request_prepare(clients[i], &reqs[i], &resps[i], &b->p[i]);
		b->rcs[i] = CURLE_OK;
		/* over HTTP/2 wait for the one connection and multiplex on it */
		curl_easy_setopt(clients[i]->easy, CURLOPT_PIPEWAIT, 1L);
		curl_multi_add_handle(hm->m, clients[i]->easy);
	}
	/* on a kept-alive connection this puts the requests on the wire, so
	 * the server works on them while the caller does something else */
	(void)curl_multi_perform(hm->m, &running);
	*out = b;
	return 0;
}

/* b's handles are already out of the multi */
static void many_free(struct http_many *b)
{
	free(b->clients);
	free(b->p);
	free(b->rcs);
	free(b);
}

int http_many_wait(struct http_many *b, int *errs)
{
	CURLM *m = b->hm->m;
	int running = 0;
	int err = 0;

	do {
		CURLMcode mc = curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;

		if (mc == CURLM_OK && running) {
			mc = curl_multi_poll(m, NULL, 0, 1000, NULL);
		}
		if (mc != CURLM_OK) {
			err = error_set(ICPD_ENET, "parallel requests failed: %s", curl_multi_strerror(mc));
			break;
		}
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE) {
				continue;
			}
			for (size_t i = 0; i < b->n; i++) {
				if (b->clients[i]->easy == msg->easy_handle) {
					b->rcs[i] = msg->data.result;
				}
			}
		}
	} while (running);
	for (size_t i = 0; i < b->n; i++) {
		curl_multi_remove_handle(m, b->clients[i]->easy);
		errs[i] = request_finish(b->clients[i], &b->reqs[i], &b->resps[i], &b->p[i],
			err < 0 ? CURLE_RECV_ERROR : b->rcs[i]);
	}
	if (err == 0) {
		error_clear();
	}
	many_free(b);
	return err;
}

void http_many_cancel(struct http_many *b)
{
	if (!b) {
		return;
	}
	for (size_t i = 0; i < b->n; i++) {
		/* removing a handle mid-transfer drops its connection */
		curl_multi_remove_handle(b->hm->m, b->clients[i]->easy);
		curl_easy_setopt(b->clients[i]->easy, CURLOPT_HTTPHEADER, NULL);
		curl_slist_free_all(b->p[i].hdrs);
		b->p[i].hdrs = NULL;
		http_response_release(&b->resps[i]);
	}
	many_free(b);
}

int http_cookies_export(struct http_client *c, struct buf *out)
{
	struct curl_slist *list = NULL;
	int err = 0;

	if (curl_easy_getinfo(c->easy, CURLINFO_COOKIELIST, &list) != CURLE_OK) {
		return error_set(ICPD_EINTERNAL, "cannot read the cookie engine");
	}
	for (struct curl_slist *l = list; l; l = l->next) {
		err = buf_addf(out, "%s\n", l->data);
		if (err) {
			break;
		}
	}
	curl_slist_free_all(list);
	return err;
}

int http_cookies_import(struct http_client *c, const char *lines)
{
	const char *p = lines;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = xstrndup(p, n);

		if (*line && !(line[0] == '#' && !str_startswith(line, "#HttpOnly_"))) {
			/* libcurl wants "Set-Cookie:" or Netscape lines; these are Netscape */
			if (curl_easy_setopt(c->easy, CURLOPT_COOKIELIST, line) != CURLE_OK) {
				secure_zero(line, n);
				free(line);
				return error_set(ICPD_EPROTO, "cannot load a stored cookie");
			}
		}
		secure_zero(line, n);
		free(line);
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

void http_cookies_clear(struct http_client *c)
{
	curl_easy_setopt(c->easy, CURLOPT_COOKIELIST, "ALL");
}

char *http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *r;

	if (!e) {
		return xstrdup("");
	}
	r = xstrdup(e);
	curl_free(e);
	return r;
}
