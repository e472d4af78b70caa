/*
 * Small helpers used everywhere: allocation that aborts on out-of-memory
 * (real error paths are for I/O, network and parsing), string helpers.
 */
#ifndef ICPD_UTIL_H
#define ICPD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t nmemb, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
/* Caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), malloc, returns_nonnull));
/* Seconds on the monotonic clock (for intervals, never for dates). */
double mono_now(void);

bool str_startswith(const char *s, const char *prefix);
bool str_endswith(const char *s, const char *suffix);
bool str_eq_nocase(const char *a, const char *b);

/* Parse a whole decimal integer in [min, max]; 0 on success, -1 otherwise. */
int parse_long(const char *s, long min, long max, long *out);

/* Wipe memory in a way the compiler cannot drop. */
void secure_zero(void *p, size_t n);

/* A growable list of owned strings. */
struct strlist {
	char **items; /* owned, each with free() */
	size_t n;
	size_t cap;
};
void strlist_add(struct strlist *l, const char *s);
void strlist_clear(struct strlist *l);
bool strlist_contains(const struct strlist *l, const char *s);

#endif
