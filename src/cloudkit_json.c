/*
 * A fast path for decoding CloudKit answers into jansson trees.
 *
 * jansson's decoder reads its input one byte at a time through a callback,
 * checks each byte for UTF-8 and appends it to a token buffer one call at a
 * time: ~100 instructions per byte, 60 % of a dry run's instructions for the
 * ~4 KB of JSON each asset costs.  The pages CloudKit sends are plain:
 * ASCII, no escapes in practice, integers.  This parser handles exactly
 * that common shape with a pointer walk and builds the very same tree with
 * jansson's own constructors (the calls its parser makes); anything else —
 * an escape, a byte >= 0x80, a number that needs care, a syntax error,
 * nesting deeper than jansson allows — makes it give up, and the caller
 * decodes the text with json_loadb as before.  So jansson alone decides
 * what is rejected and with which message; this only has to agree with it
 * on what it accepts.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cloudkit_p.h"
#include "icpd/banned.h"

/* jansson counts every value, containers and scalars, against its limit of
 * 2048; deeper than this is left to it */
#define MAX_DEPTH 512
#define MAX_REAL_TEXT 64

struct parser {
	const char *p, *end;
	bool reject_dups;
	int depth;
};

static json_t *parse_value(struct parser *ps);

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	        (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t')) {
		ps->p++;
	}
}

/*
 * Does any of the 8 bytes in v end or spoil a plain string: '"', '\\', a
 * control character (< 0x20) or a byte >= 0x80?  The usual "has a zero
 * byte" word trick, applied to v ^ '"', v ^ '\\' and to v - 0x20 (bytes
 * below 0x20 borrow into their top bit; bytes >= 0x80 are caught first).
 */
static bool word_has_special(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');

	return ((v & highs) | ((q - ones) & ~q & highs) | ((b - ones) & ~b & highs) |
		       ((v - ones * 0x20) & ~v & highs)) != 0;
}

/* At the opening quote; on success *s, *n point into the text (no escapes). */
static bool scan_string(struct parser *ps, const char **s, size_t *n)
{
	const char *q = ps->p + 1;

	/* eight plain bytes at a time; the byte loop finds what stopped it */
	while (ps->end - q >= 8) {
		uint64_t v;

		memcpy(&v, q, sizeof(v));
		if (word_has_special(v)) {
			break;
		}
		q += 8;
	}
	for (;; q++) {
		unsigned char c;

		if (q >= ps->end) {
			return false;
		}
		c = (unsigned char)*q;
		if (c == '"') {
			break;
		}
		if (c == '\\' || c < 0x20 || c >= 0x80) {
			return false; /* escapes, control characters, UTF-8: jansson's */
		}
	}
	*s = ps->p + 1;
	*n = (size_t)(q - *s);
	ps->p = q + 1;
	return true;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static json_t *parse_number(struct parser *ps)
{
	const char *start = ps->p, *q = ps->p;
	bool neg = false, real = false;

	if (*q == '-') {
		neg = true;
		q++;
	}
	if (q >= ps->end || !is_digit(*q)) {
		return NULL;
	}
	if (*q == '0') {
		q++;
		if (q < ps->end && is_digit(*q)) {
			return NULL; /* leading zero: jansson's error */
		}
	} else {
		while (q < ps->end && is_digit(*q)) {
			q++;
		}
	}
	if (q < ps->end && *q == '.') {
		real = true;
		q++;
		if (q >= ps->end || !is_digit(*q)) {
			return NULL;
		}
		while (q < ps->end && is_digit(*q)) {
			q++;
		}
	}
	if (q < ps->end && (*q == 'e' || *q == 'E')) {
		real = true;
		q++;
		if (q < ps->end && (*q == '+' || *q == '-')) {
			q++;
		}
		if (q >= ps->end || !is_digit(*q)) {
			return NULL;
		}
		while (q < ps->end && is_digit(*q)) {
			q++;
		}
	}
	ps->p = q;
	if (!real) {
		/* 18 digits cannot overflow json_int_t; longer ones go to jansson */
		const char *d = start + (neg ? 1 : 0);
		json_int_t v = 0;

		if (q - d > 18) {
			return NULL;
		}
		for (; d < q; d++) {
			v = v * 10 + (*d - '0');
		}
		return json_integer(neg ? -v : v);
	}
	{
		char text[MAX_REAL_TEXT];
		size_t n = (size_t)(q - start);
		char *end = NULL;
		double v;

		if (n >= sizeof(text)) {
			return NULL;
		}
		memcpy(text, start, n);
		text[n] = '\0';
		errno = 0;
		v = strtod(text, &end);
		if (errno || end != text + n || !isfinite(v)) {
			return NULL; /* range, or a locale whose decimal point is not '.' */
		}
		return json_real(v);
	}
}

static bool literal(struct parser *ps, const char *word, size_t n)
{
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
		return false;
	}
	ps->p += n;
	return true;
}

static json_t *parse_object(struct parser *ps)
{
	json_t *obj = json_object();

	ps->p++; /* { */
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
		return obj;
	}
	for (;;) {
		const char *key;
		size_t klen;
		json_t *v;

		if (ps->p >= ps->end || *ps->p != '"' || !scan_string(ps, &key, &klen)) {
			goto fail;
		}
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != ':') {
			goto fail;
		}
		ps->p++;
		skip_ws(ps);
		if (ps->reject_dups && json_object_getn(obj, key, klen)) {
			goto fail;
		}
		v = parse_value(ps);
		if (!v || json_object_setn_new_nocheck(obj, key, klen, v)) {
			goto fail;
		}
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			skip_ws(ps);
			continue;
		}
		if (ps->p < ps->end && *ps->p == '}') {
			ps->p++;
			return obj;
		}
		goto fail;
	}
fail:
	json_decref(obj);
	return NULL;
}

static json_t *parse_array(struct parser *ps)
{
	json_t *arr = json_array();

	ps->p++; /* [ */
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
		return arr;
	}
	for (;;) {
		json_t *v = parse_value(ps);

		if (!v || json_array_append_new(arr, v)) {
			goto fail;
		}
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			skip_ws(ps);
			continue;
		}
		if (ps->p < ps->end && *ps->p == ']') {
			ps->p++;
			return arr;
		}
		goto fail;
	}
fail:
	json_decref(arr);
	return NULL;
}

static json_t *parse_value(struct parser *ps)
{
	json_t *v = NULL;

	if (ps->p >= ps->end || ++ps->depth > MAX_DEPTH) {
		return NULL;
	}
	switch (*ps->p) {
	case '{':
		v = parse_object(ps);
		break;
	case '[':
		v = parse_array(ps);
		break;
	case '"': {
		const char *s;
		size_t n;

		v = scan_string(ps, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
		break;
	}
	case 't':
		v = literal(ps, "true", 4) ? json_true() : NULL;
		break;
	case 'f':
		v = literal(ps, "false", 5) ? json_false() : NULL;
		break;
	case 'n':
		v = literal(ps, "null", 4) ? json_null() : NULL;
		break;
	default:
		if (*ps->p == '-' || is_digit(*ps->p)) {
			v = parse_number(ps);
		}
		break;
	}
	ps->depth--;
	return v;
}

json_t *cloudkit_json_fast(const char *text, size_t len, bool reject_duplicates)
{
	struct parser ps = {text, text + len, reject_duplicates, 0};
	json_t *root;

	skip_ws(&ps);
	if (ps.p >= ps.end || (*ps.p != '{' && *ps.p != '[')) {
		return NULL; /* jansson wants an object or an array at the top */
	}
	root = parse_value(&ps);
	if (!root) {
		return NULL;
	}
	skip_ws(&ps);
	if (ps.p != ps.end) {
		json_decref(root);
		return NULL;
	}
	return root;
}
