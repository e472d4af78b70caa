/*
 * Download transfers on curl_multi: one thread, a list of per-transfer
 * structs reached through CURLOPT_PRIVATE, HTTP/2 multiplexing where the
 * server offers it.  Headers are collected per response so the caller sees
 * status, Content-Range and Content-Type before the first body byte and can
 * decide whether to append, restart or refuse.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "icpd/error.h"
#include "icpd/http_pool.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define DEFAULT_UA                                                                                 \
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) " \
	"Chrome/138.0.0.0 Safari/537.36"

struct xfer {
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;
	struct http_pool_request req;
	struct http_pool_head head;
	char *content_type;
	bool head_sent;
	bool aborted;
	bool paused;            /* by the bandwidth limit */
	char errbuf[CURL_ERROR_SIZE];
	struct http_pool *pool;
	struct xfer *prev, *next;
};

struct http_pool {
	CURLM *multi;
	struct http_pool_options opts;
	char *ca_file;
	char *user_agent;
	struct xfer *list;
	size_t running;
	/* --bandwidth-limit: one token bucket for all transfers.  libcurl's
	 * CURLOPT_MAX_RECV_SPEED_LARGE averages over several seconds per
	 * transfer, so a stream of small photos would pass unthrottled. */
	double budget;          /* bytes that may arrive now */
	double refilled;        /* monotonic seconds of the last refill */
	size_t npaused;
};

static void refill(struct http_pool *p)
{
	double now = mono_now();
	double rate = (double)p->opts.max_recv_speed;
	double cap = rate / 4 > 16384 ? rate / 4 : 16384; /* a quarter second of burst */

	p->budget += (now - p->refilled) * rate;
	if (p->budget > cap) {
		p->budget = cap;
	}
	p->refilled = now;
}

char *http_pool_url_encode_braces(const char *url)
{
	size_t n = 0;
	char *out, *o;

	for (const char *s = url; *s; s++) {
		n += (*s == '{' || *s == '}') ? 3 : 1;
	}
	out = o = xmalloc(n + 1);
	for (const char *s = url; *s; s++) {
		if (*s == '{' || *s == '}') {
			memcpy(o, *s == '{' ? "%7B" : "%7D", 3);
			o += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

int http_pool_new(struct http_pool **out, const struct http_pool_options *opts)
{
	struct http_pool *p = xcalloc(1, sizeof(*p));

	*out = NULL;
	if (opts) {
		p->opts = *opts;
	}
	if (p->opts.max_transfers <= 0) {
		p->opts.max_transfers = 8;
	}
	if (p->opts.connect_timeout <= 0) {
		p->opts.connect_timeout = 30;
	}
	if (p->opts.idle_timeout <= 0) {
		p->opts.idle_timeout = 60;
	}
	p->refilled = mono_now();
	p->ca_file = p->opts.ca_file ? xstrdup(p->opts.ca_file) : NULL;
	p->user_agent = xstrdup(p->opts.user_agent ? p->opts.user_agent : DEFAULT_UA);
	p->multi = curl_multi_init();
	if (!p->multi) {
		http_pool_free(p);
		return error_set(ICPD_EINTERNAL, "cannot create a libcurl multi handle");
	}
	curl_multi_setopt(p->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS, p->opts.max_transfers);
	*out = p;
	return 0;
}

static void xfer_free(struct http_pool *p, struct xfer *x)
{
	if (x->easy) {
		curl_multi_remove_handle(p->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->hdrs);
	free(x->url);
	free(x->content_type);
	free(x);
}

static void unlink_xfer(struct http_pool *p, struct xfer *x)
{
	if (x->prev) {
		x->prev->next = x->next;
	} else {
		p->list = x->next;
	}
	if (x->next) {
		x->next->prev = x->prev;
	}
	p->running--;
}

void http_pool_free(struct http_pool *p)
{
	if (!p) {
		return;
	}
	for (struct xfer *x = p->list, *next; x; x = next) {
		next = x->next;
		xfer_free(p, x);
	}
	p->list = NULL;
	p->running = 0;
	if (p->multi) {
		curl_multi_cleanup(p->multi);
	}
	free(p->ca_file);
	free(p->user_agent);
	free(p);
}

size_t http_pool_running(const struct http_pool *p)
{
	return p->running;
}

long http_pool_capacity(const struct http_pool *p)
{
	return p->opts.max_transfers;
}

static double parse_retry_after(const char *v)
{
	long secs;
	time_t when;

	if (parse_long(v, 0, 86400 * 7, &secs) == 0) {
		return (double)secs;
	}
	when = curl_getdate(v, NULL);
	if (when > 0) {
		time_t now = time(NULL);

		return when > now ? (double)(when - now) : 0;
	}
	return -1;
}

static int64_t parse_i64(const char *s, const char **end)
{
	int64_t v = 0;

	if (!isdigit((unsigned char)*s)) {
		*end = NULL;
		return -1;
	}
	while (isdigit((unsigned char)*s)) {
		if (v > (INT64_MAX - 9) / 10) {
			*end = NULL;
			return -1;
		}
		v = v * 10 + (*s - '0');
		s++;
	}
	*end = s;
	return v;
}

/* "bytes 100-199/200", or a star for an unknown total */
static void parse_content_range(struct http_pool_head *h, const char *v)
{
	const char *e;

	h->has_range = false;
	if (strncasecmp(v, "bytes ", 6) != 0) {
		return;
	}
	v += 6;
	h->range_start = parse_i64(v, &e);
	if (!e || *e != '-') {
		return;
	}
	h->range_end = parse_i64(e + 1, &e);
	if (!e || *e != '/') {
		return;
	}
	if (e[1] == '*') {
		h->range_total = -1;
	} else {
		h->range_total = parse_i64(e + 1, &e);
		if (!e) {
			return;
		}
	}
	h->has_range = h->range_end >= h->range_start;
}

static void head_reset(struct xfer *x)
{
	memset(&x->head, 0, sizeof(x->head));
	x->head.content_length = -1;
	x->head.retry_after = -1;
	free(x->content_type);
	x->content_type = NULL;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * nmemb, n = len;
	const char *colon;
	char *name, *value;

	while (n && (data[n - 1] == '\r' || data[n - 1] == '\n')) {
		n--;
	}
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		head_reset(x);
		return len;
	}
	colon = memchr(data, ':', n);
	if (!colon) {
		return len;
	}
	name = xstrndup(data, (size_t)(colon - data));
	colon++;
	while (colon < data + n && (*colon == ' ' || *colon == '\t')) {
		colon++;
	}
	value = xstrndup(colon, n - (size_t)(colon - data));
	if (strcasecmp(name, "Content-Length") == 0) {
		const char *e;
		int64_t v = parse_i64(value, &e);

		x->head.content_length = (e && *e == '\0') ? v : -1;
	} else if (strcasecmp(name, "Content-Range") == 0) {
		parse_content_range(&x->head, value);
	} else if (strcasecmp(name, "Content-Type") == 0) {
		free(x->content_type);
		x->content_type = value;
		value = NULL;
	} else if (strcasecmp(name, "Retry-After") == 0) {
		x->head.retry_after = parse_retry_after(value);
	}
	free(name);
	free(value);
	return len;
}

static int send_head(struct xfer *x)
{
	long status = 0;

	x->head_sent = true;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	x->head.status = status;
	x->head.content_type = x->content_type;
	if (x->req.on_head && x->req.on_head(x->req.ud, &x->head) != 0) {
		x->aborted = true;
		return -1;
	}
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct http_pool *p = x->pool;
	size_t len = size * nmemb;

	if (!x->head_sent && send_head(x) != 0) {
		return 0;
	}
	if (p->opts.max_recv_speed > 0) {
		refill(p);
		if (p->budget <= 0) {
			/* libcurl keeps these bytes and hands them over again after
			 * curl_easy_pause(CURLPAUSE_CONT) */
			if (!x->paused) {
				x->paused = true;
				p->npaused++;
			}
			return CURL_WRITEFUNC_PAUSE;
		}
		p->budget -= (double)len;
	}
	if (x->req.on_data && x->req.on_data(x->req.ud, data, len) != 0) {
		x->aborted = true;
		return 0;
	}
	return len;
}

int http_pool_add(struct http_pool *p, const struct http_pool_request *req)
{
	struct xfer *x = xcalloc(1, sizeof(*x));
	char range[64];
	CURL *e;

	x->url = xstrdup(req->url);
	x->pool = p;
	x->req = *req;
	x->req.url = x->url;
	head_reset(x);
	e = x->easy = curl_easy_init();
	if (!e) {
		xfer_free(p, x);
		return error_set(ICPD_EINTERNAL, "cannot create a libcurl handle");
	}
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, p->user_agent);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (p->ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file);
	}
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, p->opts.connect_timeout);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, p->opts.idle_timeout);
	/* the body is media: never let libcurl decode it */
	curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	if (req->range_from >= 0) {
		snprintf(range, sizeof(range), "Range: bytes=%lld-", (long long)req->range_from);
		x->hdrs = curl_slist_append(x->hdrs, range);
	}
	x->hdrs = curl_slist_append(x->hdrs, "Accept: */*");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	if (log_enabled(LOG_DEBUG)) {
		char *red = log_redact_url(x->url);

		log_debug("> GET %s (from byte %lld)", red, (long long)req->range_from);
		free(red);
	}
	if (curl_multi_add_handle(p->multi, e) != CURLM_OK) {
		xfer_free(p, x);
		return error_set(ICPD_EINTERNAL, "cannot add a transfer");
	}
	x->next = p->list;
	if (p->list) {
		p->list->prev = x;
	}
	p->list = x;
	p->running++;
	return 0;
}

static void finish(struct http_pool *p, struct xfer *x, CURLcode code, struct http_pool_result *r)
{
	long status = 0;

	memset(r, 0, sizeof(*r));
	r->ud = x->req.ud;
	r->retry_after = x->head.retry_after;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	r->status = status;
	if (code == CURLE_OK && !x->head_sent && send_head(x) != 0) {
		code = CURLE_WRITE_ERROR;
	}
	if (x->aborted) {
		r->err = ICPD_EINTR;
		snprintf(r->message, sizeof(r->message), "transfer stopped");
	} else if (code != CURLE_OK) {
		r->err = ICPD_ENET;
		snprintf(r->message, sizeof(r->message), "%s",
			x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
	}
	log_debug("< %ld (%s)", status, r->err ? r->message : "complete");
	if (x->paused) {
		p->npaused--;
	}
	unlink_xfer(p, x);
	xfer_free(p, x);
}

/* Let paused transfers go on while the bucket has bytes. */
static void resume_paused(struct http_pool *p)
{
	if (!p->npaused) {
		return;
	}
	refill(p);
	for (struct xfer *x = p->list; x && p->budget > 0; x = x->next) {
		if (x->paused) {
			x->paused = false;
			p->npaused--;
			/* may call on_body at once, which may pause it again */
			curl_easy_pause(x->easy, CURLPAUSE_CONT);
		}
	}
}

int http_pool_poll(struct http_pool *p, int timeout_ms, struct http_pool_result *out, size_t max,
	size_t *n)
{
	int still = 0, left = 0;
	CURLMsg *msg;

	*n = 0;
	resume_paused(p);
	if (curl_multi_perform(p->multi, &still) != CURLM_OK) {
		return error_set(ICPD_EINTERNAL, "libcurl multi perform failed");
	}
	if (p->npaused && timeout_ms > 20) {
		timeout_ms = 20; /* come back to refill the bucket */
	}
	if (still > 0 && timeout_ms > 0) {
		int nfds = 0;

		if (curl_multi_poll(p->multi, NULL, 0, timeout_ms, &nfds) != CURLM_OK) {
			return error_set(ICPD_EINTERNAL, "libcurl multi poll failed");
		}
		if (curl_multi_perform(p->multi, &still) != CURLM_OK) {
			return error_set(ICPD_EINTERNAL, "libcurl multi perform failed");
		}
	}
	while (*n < max && (msg = curl_multi_info_read(p->multi, &left)) != NULL) {
		struct xfer *x = NULL;

		if (msg->msg != CURLMSG_DONE) {
			continue;
		}
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		finish(p, x, msg->data.result, &out[*n]);
		(*n)++;
	}
	return 0;
}
