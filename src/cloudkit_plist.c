/*
 * Just enough of Apple's property lists for keywordsEnc (an array of
 * strings) and locationEnc (a dict of numbers and a date), in the binary
 * ("bplist00") and the XML form.  Every offset is bounds-checked; no
 * recursion.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloudkit_p.h"
#include "icpd/asset.h"
#include "icpd/buf.h"
#include "icpd/error.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define MAX_ITEMS 10000
#define APPLE_EPOCH 978307200.0 /* 2001-01-01 in Unix seconds */

struct bplist {
	const unsigned char *d;
	size_t len;
	unsigned offsz, refsz;
	uint64_t nobj, top, table;
};

static uint64_t be(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++) {
		v = (v << 8) | p[i];
	}
	return v;
}

static int bad(void)
{
	error_set(ICPD_EPROTO, "malformed binary plist");
	return ICPD_EPROTO;
}

static int bp_open(struct bplist *b, const unsigned char *d, size_t len)
{
	const unsigned char *t;

	if (len < 8 + 32 || memcmp(d, "bplist00", 8) != 0) {
		return bad();
	}
	t = d + len - 32;
	b->d = d;
	b->len = len;
	b->offsz = t[6];
	b->refsz = t[7];
	b->nobj = be(t + 8, 8);
	b->top = be(t + 16, 8);
	b->table = be(t + 24, 8);
	if (b->offsz < 1 || b->offsz > 8 || b->refsz < 1 || b->refsz > 8 || b->nobj == 0 ||
		b->nobj > len || b->top >= b->nobj || b->table < 8 || b->table >= len - 32 ||
		b->nobj * b->offsz > len - 32 - b->table) {
		return bad();
	}
	return 0;
}

/* Offset of object ref; 0 on error (0 is never valid: the header is there). */
static size_t bp_obj(const struct bplist *b, uint64_t ref)
{
	uint64_t off;

	if (ref >= b->nobj) {
		return 0;
	}
	off = be(b->d + b->table + ref * b->offsz, b->offsz);
	if (off < 8 || off >= b->table) {
		return 0;
	}
	return (size_t)off;
}

/* Marker and length (with the 0xF extended form); *pos advanced past it. */
static int bp_head(const struct bplist *b, size_t *pos, unsigned *type, uint64_t *count)
{
	unsigned char m;

	if (*pos >= b->table) {
		return bad();
	}
	m = b->d[(*pos)++];
	*type = m >> 4;
	*count = m & 0x0F;
	if (*count == 0x0F && (*type == 0x4 || *type == 0x5 || *type == 0x6 || *type == 0xA ||
				      *type == 0xD)) {
		unsigned char im;
		unsigned n;

		if (*pos >= b->table) {
			return bad();
		}
		im = b->d[(*pos)++];
		if ((im >> 4) != 0x1 || (im & 0x0F) > 3) {
			return bad();
		}
		n = 1u << (im & 0x0F);
		if (*pos + n > b->table) {
			return bad();
		}
		*count = be(b->d + *pos, n);
		*pos += n;
	}
	return 0;
}

static void utf8_put(struct buf *o, uint32_t cp)
{
	unsigned char t[4];
	size_t n;

	if (cp < 0x80) {
		t[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		t[0] = (unsigned char)(0xC0 | (cp >> 6));
		t[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		t[0] = (unsigned char)(0xE0 | (cp >> 12));
		t[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		t[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		t[0] = (unsigned char)(0xF0 | (cp >> 18));
		t[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		t[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		t[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	if (buf_add(o, t, n) < 0) {
		abort();
	}
}

/* String object at ref → owned UTF-8 (NUL-free). */
static int bp_string(const struct bplist *b, uint64_t ref, char **out)
{
	size_t pos = bp_obj(b, ref);
	unsigned type;
	uint64_t n;
	struct buf o;

	if (!pos || bp_head(b, &pos, &type, &n) < 0) {
		return bad();
	}
	buf_init(&o, 0);
	if (type == 0x5) {
		if (n > b->table - pos) {
			goto fail;
		}
		for (uint64_t i = 0; i < n; i++) {
			unsigned char c = b->d[pos + i];

			if (c == 0 || c >= 0x80) {
				goto fail;
			}
		}
		if (buf_add(&o, b->d + pos, n) < 0) {
			goto fail;
		}
	} else if (type == 0x6) {
		if (n > (b->table - pos) / 2) {
			goto fail;
		}
		for (uint64_t i = 0; i < n; i++) {
			uint32_t u = (uint32_t)be(b->d + pos + 2 * i, 2);

			if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n) {
				uint32_t l = (uint32_t)be(b->d + pos + 2 * (i + 1), 2);

				if (l >= 0xDC00 && l <= 0xDFFF) {
					u = 0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00);
					i++;
				} else {
					goto fail;
				}
			} else if ((u >= 0xD800 && u <= 0xDFFF) || u == 0) {
				goto fail;
			}
			utf8_put(&o, u);
		}
	} else {
		goto fail;
	}
	*out = buf_detach(&o, NULL);
	return 0;
fail:
	buf_release(&o);
	return bad();
}

/* Number (int, real or date) at ref. */
static int bp_number(const struct bplist *b, uint64_t ref, double *out, bool *is_date)
{
	size_t pos = bp_obj(b, ref);
	unsigned type;
	uint64_t n;

	*is_date = false;
	if (!pos || bp_head(b, &pos, &type, &n) < 0) {
		return bad();
	}
	if (type == 0x1) {
		unsigned sz = 1u << n;

		if (n > 3 || pos + sz > b->table) {
			return bad();
		}
		*out = (double)(int64_t)be(b->d + pos, sz);
		return 0;
	}
	if (type == 0x2 || (type == 0x3 && n == 3)) {
		unsigned sz = 1u << n;
		uint64_t bits;

		if ((n != 2 && n != 3) || pos + sz > b->table) {
			return bad();
		}
		bits = be(b->d + pos, sz);
		if (sz == 4) {
			uint32_t b32 = (uint32_t)bits;
			float f;

			memcpy(&f, &b32, 4);
			*out = f;
		} else {
			memcpy(out, &bits, 8);
		}
		if (!isfinite(*out)) {
			return bad();
		}
		*is_date = type == 0x3;
		return 0;
	}
	return bad();
}

static void strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i]);
	}
	free(v);
}

static int bp_strings(const unsigned char *d, size_t len, char ***out)
{
	struct bplist b = { 0 };
	size_t pos;
	unsigned type;
	uint64_t n;
	char **v;

	if (bp_open(&b, d, len) < 0) {
		return ICPD_EPROTO;
	}
	pos = bp_obj(&b, b.top);
	if (!pos || bp_head(&b, &pos, &type, &n) < 0 || type != 0xA || n > MAX_ITEMS ||
		n > (b.table - pos) / b.refsz) {
		return bad();
	}
	v = xcalloc(n + 1, sizeof(char *));
	for (uint64_t i = 0; i < n; i++) {
		uint64_t ref = be(b.d + pos + i * b.refsz, b.refsz);

		if (bp_string(&b, ref, &v[i]) < 0) {
			strings_free(v, i);
			return ICPD_EPROTO;
		}
	}
	*out = v;
	return 0;
}

static void location_set(struct asset *a, const char *key, double v, bool is_date, bool *lat,
	bool *lon)
{
	if (strcmp(key, "lat") == 0) {
		a->latitude = v;
		*lat = true;
	} else if (strcmp(key, "lon") == 0 || strcmp(key, "lng") == 0) {
		a->longitude = v;
		*lon = true;
	} else if (strcmp(key, "alt") == 0) {
		a->altitude = v;
	} else if (strcmp(key, "speed") == 0) {
		a->speed = v;
	} else if (strcmp(key, "timestamp") == 0) {
		double t = is_date ? v + APPLE_EPOCH : v;

		if (t > -1e15 && t < 1e15) {
			a->location_time = (int64_t)t;
		}
	}
}

static int bp_location(const unsigned char *d, size_t len, struct asset *a)
{
	struct bplist b = { 0 };
	size_t pos;
	unsigned type;
	uint64_t n;
	bool lat = false, lon = false;

	if (bp_open(&b, d, len) < 0) {
		return ICPD_EPROTO;
	}
	pos = bp_obj(&b, b.top);
	if (!pos || bp_head(&b, &pos, &type, &n) < 0 || type != 0xD || n > MAX_ITEMS ||
		n > (b.table - pos) / b.refsz / 2) {
		return bad();
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t kref = be(b.d + pos + i * b.refsz, b.refsz);
		uint64_t vref = be(b.d + pos + (n + i) * b.refsz, b.refsz);
		char *key = NULL;
		double v;
		bool is_date;

		if (bp_string(&b, kref, &key) < 0) {
			return ICPD_EPROTO;
		}
		if (bp_number(&b, vref, &v, &is_date) == 0) {
			location_set(a, key, v, is_date, &lat, &lon);
		} else {
			error_clear(); /* a non-number value (course text...) is not ours */
		}
		free(key);
	}
	if (!lat || !lon) {
		return error_set(ICPD_EPROTO, "location plist without lat and lon");
	}
	a->has_location = true;
	return 0;
}

/* ---------------------------------------------------------------- XML */

/* Text between <tag> and </tag> starting the search at *p; entities
 * decoded; owned.  NULL when not found before end. */
static char *xml_next(const char **p, const char *end, const char *tag, const char **found_at)
{
	char open[32], close[32];
	const char *s, *e;
	struct buf o;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	s = memmem(*p, (size_t)(end - *p), open, strlen(open));
	if (!s) {
		return NULL;
	}
	if (found_at) {
		*found_at = s;
	}
	s += strlen(open);
	e = memmem(s, (size_t)(end - s), close, strlen(close));
	if (!e) {
		return NULL;
	}
	*p = e + strlen(close);
	buf_init(&o, 0);
	while (s < e) {
		static const struct {
			const char *ent;
			char c;
		} ents[] = { { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
			{ "&apos;", '\'' } };
		bool done = false;

		if (*s == '&') {
			for (size_t i = 0; i < ARRAY_SIZE(ents); i++) {
				size_t l = strlen(ents[i].ent);

				if ((size_t)(e - s) >= l && memcmp(s, ents[i].ent, l) == 0) {
					if (buf_add(&o, &ents[i].c, 1) < 0) {
						abort();
					}
					s += l;
					done = true;
					break;
				}
			}
		}
		if (!done) {
			if (*s == '\0') {
				buf_release(&o);
				return NULL;
			}
			if (buf_add(&o, s, 1) < 0) {
				abort();
			}
			s++;
		}
	}
	return buf_detach(&o, NULL);
}

static bool is_xml(const unsigned char *d, size_t len)
{
	return len >= 5 && (memcmp(d, "<?xml", 5) == 0 || memcmp(d, "<plist", 6 <= len ? 6 : 5) == 0);
}

static int xml_strings(const char *d, size_t len, char ***out)
{
	const char *p = d, *end = d + len, *arr;
	char **v = NULL;
	size_t n = 0;
	char *s;

	arr = memmem(d, len, "<array>", 7);
	if (!arr) {
		return error_set(ICPD_EPROTO, "XML plist without an array");
	}
	p = arr;
	while (n < MAX_ITEMS && (s = xml_next(&p, end, "string", NULL)) != NULL) {
		v = xrealloc(v, (n + 2) * sizeof(char *));
		v[n++] = s;
	}
	if (!v) {
		v = xcalloc(1, sizeof(char *));
	}
	v[n] = NULL;
	*out = v;
	return 0;
}

static int xml_location(const char *d, size_t len, struct asset *a)
{
	const char *p = d, *end = d + len;
	bool lat = false, lon = false;
	char *key;

	while ((key = xml_next(&p, end, "key", NULL)) != NULL) {
		/* the value element follows the key */
		const char *q = p, *at = NULL;
		char *val = NULL;
		bool is_date = false;
		static const char *const tags[] = { "real", "integer", "date" };
		const char *best = NULL;
		int bi = -1;

		for (int i = 0; i < 3; i++) {
			const char *qq = q, *f = NULL;
			char *t = xml_next(&qq, end, tags[i], &f);

			if (t && (!best || f < best)) {
				best = f;
				bi = i;
			}
			free(t);
		}
		(void)at;
		if (bi >= 0) {
			const char *next_key = memmem(p, (size_t)(end - p), "<key>", 5);

			if (!next_key || best < next_key) {
				val = xml_next(&q, end, tags[bi], NULL);
				is_date = bi == 2;
			}
		}
		if (val) {
			double v = 0;
			char *ep = NULL;

			if (is_date) {
				struct tm tm = { 0 };

				if (strptime(val, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
					v = (double)timegm(&tm);
					location_set(a, key, v, false, &lat, &lon);
				}
			} else {
				v = strtod(val, &ep);
				if (ep != val && isfinite(v)) {
					location_set(a, key, v, false, &lat, &lon);
				}
			}
			free(val);
		}
		free(key);
	}
	if (!lat || !lon) {
		return error_set(ICPD_EPROTO, "location plist without lat and lon");
	}
	a->has_location = true;
	return 0;
}

/* ---------------------------------------------------------------- public */

int cloudkit_plist_strings(const unsigned char *data, size_t len, char ***out)
{
	*out = NULL;
	if (is_xml(data, len)) {
		return xml_strings((const char *)data, len, out);
	}
	return bp_strings(data, len, out);
}

int cloudkit_plist_location(const unsigned char *data, size_t len, struct asset *a)
{
	struct asset tmp;
	int err;

	/* decode into a scratch copy so a failure leaves a untouched */
	tmp.has_location = false;
	tmp.latitude = tmp.longitude = tmp.altitude = tmp.speed = 0;
	tmp.location_time = 0;
	if (is_xml(data, len)) {
		err = xml_location((const char *)data, len, &tmp);
	} else {
		err = bp_location(data, len, &tmp);
	}
	if (err == 0) {
		a->has_location = true;
		a->latitude = tmp.latitude;
		a->longitude = tmp.longitude;
		a->altitude = tmp.altitude;
		a->speed = tmp.speed;
		a->location_time = tmp.location_time;
	}
	return err;
}
