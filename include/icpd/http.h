/*
 * HTTP client over libcurl (the only module that includes <curl/curl.h>).
 * One struct http_client = one easy handle with its own cookie engine, used
 * for sign-in, setup and CloudKit calls; downloads use http_pool (curl_multi).
 * Every request and response trace goes through log_redact_*().
 */
#ifndef ICPD_HTTP_H
#define ICPD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "icpd/buf.h"

struct http_client;

struct http_options {
	const char *ca_file;    /* extra CA bundle (CURLOPT_CAINFO); NULL = system */
	const char *user_agent; /* NULL = the Chrome UA of auth-protocol.md §1 */
	long connect_timeout;   /* seconds; 0 = 30 */
	long idle_timeout;      /* seconds without a byte before giving up; 0 = 60 */
};

struct http_header {
	char *name;  /* owned */
	char *value; /* owned */
};

struct http_request {
	const char *method;              /* "GET", "POST", "PUT" */
	const char *url;
	const char *const *headers;      /* "Name: value", NULL-terminated; may be NULL */
	const char *body;                /* NULL = no body */
	size_t body_len;
	size_t max_response;             /* cap on the body; 0 = 64 MiB */
};

struct http_response {
	long status;                     /* 0 when no response arrived */
	struct buf body;
	struct http_header *headers;     /* owned; the last response's headers only */
	size_t nheaders;
	double retry_after;              /* seconds from Retry-After, or -1 */
};

/* Process-wide set-up (curl_global_init); call once from main. */
int http_global_init(void);

/* Caller frees with http_client_free. */
int http_client_new(struct http_client **out, const struct http_options *opts)
	__attribute__((warn_unused_result));
void http_client_free(struct http_client *c);

/*
 * Perform one request.  Returns 0 when a response arrived (whatever its
 * status: the caller classifies), ICPD_ENET on connection failure or
 * timeout (message set), ICPD_EPROTO when the body exceeds the cap.
 * resp must be initialised with http_response_init and is reset first.
 */
int http_request(struct http_client *c, const struct http_request *req,
	struct http_response *resp) __attribute__((warn_unused_result));

/*
 * Several requests at once (parallel listing pages).  An http_multi is one
 * curl_multi kept for the run: connections and TLS sessions are reused
 * between batches.  http_many_start adds n requests to m, request i on
 * clients[i] (all distinct, none in use), and sends what it can without
 * waiting, so the caller can work while the server does; http_many_wait
 * completes them and frees b: errs[i] gets what http_request would have
 * returned for request i (its message only reaches the log: error_set() is
 * global, the caller sets one); it returns 0, or ICPD_ENET when the multi
 * handle itself failed.  http_many_cancel abandons them (their connections
 * are closed, resps released) and frees b.  reqs (with their bodies) and
 * resps must stay valid until then, and nothing else may use m meanwhile.
 */
struct http_multi;
int http_multi_new(struct http_multi **out) __attribute__((warn_unused_result));
void http_multi_free(struct http_multi *m);
struct http_many;
int http_many_start(struct http_multi *m, struct http_client **clients,
	const struct http_request *reqs, struct http_response *resps, size_t n,
	struct http_many **b) __attribute__((warn_unused_result));
int http_many_wait(struct http_many *b, int *errs) __attribute__((warn_unused_result));
void http_many_cancel(struct http_many *b);

void http_response_init(struct http_response *r);
void http_response_release(struct http_response *r);
/* Case-insensitive; the last value of that header, borrowed from r, or NULL. */
const char *http_response_header(const struct http_response *r, const char *name);

/*
 * Cookies, in libcurl's Netscape cookie-file line format (one cookie per
 * line, "#HttpOnly_" prefix kept, session cookies have expiry 0).
 * export: all cookies of the engine, appended to out.  import: add lines.
 */
int http_cookies_export(struct http_client *c, struct buf *out)
	__attribute__((warn_unused_result));
int http_cookies_import(struct http_client *c, const char *lines)
	__attribute__((warn_unused_result));
void http_cookies_clear(struct http_client *c);

/* Percent-encode for a query value; caller frees. */
char *http_escape(const char *s);

#endif
