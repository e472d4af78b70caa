/*
 * The growable byte buffer.  Invariants: data is never NULL after
 * buf_init (it points at a static "" while cap == 0); data[len] == '\0'
 * always, so text can be used as a C string; len < cap once anything was
 * added.  A non-zero max caps the buffer (for anything read from the
 * network): an add that would exceed it fails with ICPD_EPROTO and leaves
 * the buffer unchanged.
 */
#ifndef ICPD_BUF_H
#define ICPD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* 0 = unlimited */
};

#define BUF_INIT { buf_empty_, 0, 0, 0 }
extern char buf_empty_[];

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
int buf_add(struct buf *b, const void *data, size_t n) __attribute__((warn_unused_result));
/* Make room for extra more bytes, exactly (no doubling): for a body whose
 * size is announced.  Same errors as buf_add. */
int buf_presize(struct buf *b, size_t extra) __attribute__((warn_unused_result));
int buf_adds(struct buf *b, const char *s) __attribute__((warn_unused_result));
int buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), warn_unused_result));
/* Hand the bytes to the caller (free() them); the buffer is reset. */
char *buf_detach(struct buf *b, size_t *len);

#endif
