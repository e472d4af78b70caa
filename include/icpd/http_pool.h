/*
 * Parallel GET transfers on one curl_multi handle, driven from one thread:
 * HTTP/2 multiplexing when the server offers it, a cap on concurrent
 * transfers, a bandwidth cap shared between them (a token bucket: libcurl's
 * own per-transfer limit averages over seconds and lets small files through).  No cookies: download
 * URLs are self-authorising.  The caller (download.c) owns retry policy.
 */
#ifndef ICPD_HTTP_POOL_H
#define ICPD_HTTP_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_pool;

struct http_pool_options {
	const char *ca_file;      /* extra CA bundle; NULL = system */
	const char *user_agent;   /* NULL = the default UA of http.c */
	long max_transfers;       /* concurrent transfers; 0 = 8 */
	int64_t max_recv_speed;   /* bytes/s for all transfers together (one token bucket
				     in the pool, pausing transfers); 0 = unlimited */
	long connect_timeout;     /* seconds; 0 = 30 */
	long idle_timeout;        /* seconds below 1 byte/s before giving up; 0 = 60 */
};

/* What arrived before the body (the final response after redirects). */
struct http_pool_head {
	long status;
	int64_t content_length;   /* -1 when absent */
	bool has_range;           /* Content-Range parsed */
	int64_t range_start, range_end, range_total; /* total -1 for "*" */
	const char *content_type; /* borrowed for the call; may be NULL */
	double retry_after;       /* seconds, -1 when absent */
};

struct http_pool_request {
	const char *url;          /* sent as given */
	int64_t range_from;       /* >= 0: send "Range: bytes=N-"; < 0: no Range */
	/* Called once before the first body byte (or at the end for an empty
	 * body).  Return 0 to receive the body, non-zero to abort the transfer. */
	int (*on_head)(void *ud, const struct http_pool_head *h);
	/* Body bytes; return 0 to go on, non-zero to abort. */
	int (*on_data)(void *ud, const char *data, size_t n);
	void *ud;
};

struct http_pool_result {
	void *ud;
	int err;                  /* 0, ICPD_ENET (connect, reset, timeout, short body),
				     ICPD_EINTR (aborted by a callback) */
	long status;              /* 0 when no response */
	double retry_after;       /* seconds, -1 when absent */
	char message[256];        /* what went wrong, for the per-asset error */
};

int http_pool_new(struct http_pool **out, const struct http_pool_options *opts)
	__attribute__((warn_unused_result));
void http_pool_free(struct http_pool *p); /* aborts running transfers; NULL ok */

/* Start a transfer; the request's strings are copied. */
int http_pool_add(struct http_pool *p, const struct http_pool_request *req)
	__attribute__((warn_unused_result));
size_t http_pool_running(const struct http_pool *p);
long http_pool_capacity(const struct http_pool *p);

/*
 * Drive transfers for at most timeout_ms, then report finished ones: up to
 * max results in out[], count in *n.  Returns 0 or ICPD_EINTERNAL.
 */
int http_pool_poll(struct http_pool *p, int timeout_ms, struct http_pool_result *out,
	size_t max, size_t *n) __attribute__((warn_unused_result));

/* Percent-encode '{' and '}' (the "${f}" placeholder of CloudKit download
 * URLs goes on the wire as "$%7Bf%7D").  Caller frees. */
char *http_pool_url_encode_braces(const char *url);

#endif
