/*
 * The growable buffer (see include/icpd/buf.h for its invariants).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/buf.h"
#include "icpd/error.h"
#include "icpd/util.h"
#include "icpd/banned.h"

char buf_empty_[1];

void buf_init(struct buf *b, size_t max)
{
	b->data = buf_empty_;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void buf_release(struct buf *b)
{
	if (!b) {
		return;
	}
	if (b->cap) {
		free(b->data);
	}
	buf_init(b, b->max);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->data[0] = '\0';
}

static int buf_grow(struct buf *b, size_t extra)
{
	size_t need, cap;

	if (extra > (size_t)-1 / 2 - b->len) {
		return error_set(ICPD_EPROTO, "buffer too large");
	}
	need = b->len + extra + 1;
	if (b->max && need - 1 > b->max) {
		return error_set(ICPD_EPROTO, "response larger than %zu bytes", b->max);
	}
	if (need <= b->cap) {
		return 0;
	}
	cap = b->cap ? b->cap : 64;
	while (cap < need) {
		cap *= 2;
	}
	if (b->cap) {
		b->data = xrealloc(b->data, cap);
	} else {
		b->data = xmalloc(cap);
		b->data[0] = '\0';
	}
	b->cap = cap;
	return 0;
}

int buf_add(struct buf *b, const void *data, size_t n)
{
	int err = buf_grow(b, n);

	if (err) {
		return err;
	}
	if (n) {
		memcpy(b->data + b->len, data, n);
	}
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_presize(struct buf *b, size_t extra)
{
	size_t need;

	if (extra > (size_t)-1 / 2 - b->len) {
		return error_set(ICPD_EPROTO, "buffer too large");
	}
	need = b->len + extra + 1;
	if (b->max && need - 1 > b->max) {
		return error_set(ICPD_EPROTO, "response larger than %zu bytes", b->max);
	}
	if (need <= b->cap) {
		return 0;
	}
	if (b->cap) {
		b->data = xrealloc(b->data, need);
	} else {
		b->data = xmalloc(need);
		b->data[0] = '\0';
	}
	b->cap = need;
	return 0;
}

int buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, err;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		return error_set(ICPD_EINTERNAL, "bad format string");
	}
	err = buf_grow(b, (size_t)n);
	if (err) {
		return err;
	}
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *p;

	if (len) {
		*len = b->len;
	}
	p = b->cap ? b->data : xstrdup("");
	buf_init(b, b->max);
	return p;
}
