/*
 * File and folder names: icloudpd's rules (cloudkit-photos.md §4.3, §4.4,
 * §6.1, §6.2, §6.6), then our own safety pass.  See naming.h.
 */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "icpd/buf.h"
#include "icpd/error.h"
#include "icpd/naming.h"
#include "icpd/util.h"
#include "icpd/banned.h"

/* §4.4 ITEM_TYPE_EXTENSIONS; alphabetised by UTI. */
static const struct {
	const char *uti;
	const char *ext;
} uti_exts[] = {
	{ "com.adobe.raw-image", "DNG" },
	{ "com.apple.quicktime-movie", "MOV" },
	{ "com.canon.cr2-raw-image", "CR2" },
	{ "com.canon.cr3-raw-image", "CR3" },
	{ "com.canon.crw-raw-image", "CRW" },
	{ "com.fuji.raw-image", "RAF" },
	{ "com.nikon.nrw-raw-image", "NRF" }, /* sic: icloudpd maps NRW to NRF */
	{ "com.nikon.raw-image", "NEF" },
	{ "com.olympus.or-raw-image", "ORF" },
	{ "com.olympus.raw-image", "ORF" },
	{ "com.panasonic.rw2-raw-image", "RW2" },
	{ "com.pentax.raw-image", "PEF" },
	{ "com.sony.arw-raw-image", "ARW" },
	{ "public.heic", "HEIC" },
	{ "public.heif", "HEIF" },
	{ "public.jpeg", "JPG" },
	{ "public.png", "PNG" },
};

#define UTI_MOVIE "com.apple.quicktime-movie"

size_t naming_ext_offset(const char *name)
{
	const char *dot = strrchr(name, '.');
	const char *p;

	if (!dot) {
		return strlen(name);
	}
	/* Python splitext: leading dots of the name do not start an extension. */
	for (p = name; p < dot; p++) {
		if (*p != '.') {
			return (size_t)(dot - name);
		}
	}
	return strlen(name);
}

const char *naming_uti_ext(const char *uti)
{
	if (!uti) {
		return NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(uti_exts); i++) {
		if (strcmp(uti_exts[i].uti, uti) == 0) {
			return uti_exts[i].ext;
		}
	}
	return NULL;
}

bool naming_uti_is_raw(const char *uti)
{
	return uti && strstr(uti, "raw") != NULL;
}

enum asset_kind naming_item_kind(const char *item_type, const char *filename)
{
	static const char *const image_exts[] = { ".heic", ".png", ".jpg", ".jpeg" };
	size_t n;

	if (!item_type) {
		return ASSET_UNKNOWN;
	}
	if (strcmp(item_type, UTI_MOVIE) == 0) {
		return ASSET_MOVIE;
	}
	/* icloudpd's ITEM_TYPES has exactly the keys of the extension table. */
	if (naming_uti_ext(item_type)) {
		return ASSET_IMAGE;
	}
	if (!filename) {
		return ASSET_MOVIE; /* the fallback name ends in ".unknown" */
	}
	n = strlen(filename);
	for (size_t i = 0; i < ARRAY_SIZE(image_exts); i++) {
		size_t m = strlen(image_exts[i]);

		if (n >= m && strcasecmp(filename + n - m, image_exts[i]) == 0) {
			return ASSET_IMAGE;
		}
	}
	return ASSET_MOVIE;
}

char *naming_clean(const char *raw, bool keep_unicode)
{
	size_t n = strlen(raw);
	char *out = xmalloc(n + 1);
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)raw[i];

		if (strchr("<>:\"/\\|?*", c)) {
			out[j++] = '_';
		} else if (c >= 0x80 && !keep_unicode) {
			continue;
		} else {
			out[j++] = (char)c;
		}
	}
	out[j] = '\0';
	return out;
}

/* Length of the UTF-8 sequence starting at s (1..4), or 0 when invalid:
 * strict (no overlongs, no surrogates, nothing above U+10FFFF).  *cp gets
 * the code point. */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
	uint32_t c = s[0];
	size_t len;
	uint32_t min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		c &= 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		c &= 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			return 0;
		}
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
		return 0;
	}
	*cp = c;
	return len;
}

char *naming_fallback(const char *record_name, const char *item_type)
{
	const char *ext = naming_uti_ext(item_type);
	char stem[13];
	size_t j = 0;
	const unsigned char *p = (const unsigned char *)(record_name ? record_name : "");

	/* Python re.sub("[^0-9a-zA-Z]", "_") works on code points. */
	while (*p && j < 12) {
		uint32_t cp;
		size_t len = utf8_seq(p, &cp);

		stem[j++] = (len == 1 && isalnum(*p)) ? (char)*p : '_';
		p += len ? len : 1;
	}
	stem[j] = '\0';
	return xasprintf("%s.%s", stem, ext ? ext : "unknown");
}

void naming_id7(const char *record_name, char out[8])
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)(record_name ? record_name : "");
	size_t n = strlen((const char *)s);
	size_t j = 0;

	/* 7 characters need at most the first 6 input bytes. */
	for (size_t i = 0; i < n && j < 7; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		size_t left = n - i;

		if (left > 1) {
			v |= (uint32_t)s[i + 1] << 8;
		}
		if (left > 2) {
			v |= s[i + 2];
		}
		char quad[4] = { b64[(v >> 18) & 63], b64[(v >> 12) & 63],
			left > 1 ? b64[(v >> 6) & 63] : '=', left > 2 ? b64[v & 63] : '=' };
		for (int k = 0; k < 4 && j < 7; k++) {
			out[j++] = quad[k];
		}
	}
	out[j] = '\0';
}

char *naming_insert_suffix(const char *name, const char *suffix)
{
	size_t off = naming_ext_offset(name);

	return xasprintf("%.*s%s%s", (int)off, name, suffix, name + off);
}

char *naming_insert_before_last_dot(const char *path, const char *suffix)
{
	const char *dot = strrchr(path, '.');

	if (!dot) {
		return xstrdup(path);
	}
	return xasprintf("%.*s%s%s", (int)(dot - path), path, suffix, dot);
}

char *naming_base(const struct asset *a, bool keep_unicode, enum file_match_policy match)
{
	char *base;

	if (a->filename) {
		base = naming_clean(a->filename, keep_unicode);
	} else {
		base = naming_fallback(a->master_id, a->item_type);
	}
	if (match == MATCH_NAME_ID7) {
		char id7[8];
		char suffix[9];
		char *with;

		naming_id7(a->master_id, id7);
		snprintf(suffix, sizeof(suffix), "_%s", id7);
		with = naming_insert_suffix(base, suffix);
		free(base);
		base = with;
	}
	return base;
}

char *naming_version(const char *base, enum asset_kind kind, const char *uti,
	enum live_mov_policy policy)
{
	size_t off = naming_ext_offset(base);
	const char *ext = base + off;
	const char *mapped;

	if (kind != ASSET_MOVIE && uti && strcmp(uti, UTI_MOVIE) == 0) {
		if (!*ext) {
			return xstrdup(base);
		}
		if (policy == LIVE_MOV_SUFFIX && strcasecmp(ext, ".heic") == 0) {
			return xasprintf("%.*s_HEVC.MOV", (int)off, base);
		}
		return xasprintf("%.*s.MOV", (int)off, base);
	}
	mapped = naming_uti_ext(uti);
	/* Unmapped UTI: keep the name's own extension (possibly empty, which
	 * leaves a trailing dot, as icloudpd does). */
	return xasprintf("%.*s.%s", (int)off, base, mapped ? mapped : (*ext ? ext + 1 : ""));
}

/* Byte length of the longest prefix of s[0..n) that ends on a UTF-8
 * character boundary and is at most max bytes. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
	size_t cut = n < max ? n : max;

	while (cut > 0 && cut < n && ((unsigned char)s[cut] & 0xC0) == 0x80) {
		cut--;
	}
	return cut;
}

char *naming_safe_name(const char *name, size_t max)
{
	return naming_safe_name_keep(name, max, 0);
}

char *naming_safe_name_keep(const char *name, size_t max, size_t keep_tail)
{
	size_t n = strlen(name);
	struct buf b = BUF_INIT;
	const unsigned char *p = (const unsigned char *)name;
	char *out;
	size_t len;

	if (max > NAMING_NAME_MAX) {
		max = NAMING_NAME_MAX;
	}
	if (max < 8) {
		max = 8;
	}
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_seq(p + i, &cp);

		if (l == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == '/') {
			(void)!buf_add(&b, "_", 1);
			i += l ? l : 1;
		} else {
			(void)!buf_add(&b, p + i, l);
			i += l;
		}
	}
	if (b.len == 0 || strcmp(b.data, ".") == 0 || strcmp(b.data, "..") == 0) {
		char *tmp = xasprintf("_%s", b.data);

		buf_reset(&b);
		(void)!buf_adds(&b, tmp);
		free(tmp);
	}
	out = buf_detach(&b, &len);
	if (len > max) {
		size_t off = naming_ext_offset(out);
		size_t extlen = len - off;
		size_t keep;

		/* A pathological "extension" is cut like the rest of the name. */
		if (extlen > max / 2) {
			off = len;
			extlen = 0;
			keep_tail = 0;
		}
		/* keep the suffix we appended ("-thumb", "_HEVC-medium") whole */
		if (keep_tail > off || keep_tail > (max - extlen) / 2) {
			keep_tail = 0;
		}
		keep = utf8_cut(out, off - keep_tail, max - extlen - keep_tail);
		/* never empty: max >= 8 leaves room for at least one character */
		memmove(out + keep, out + off - keep_tail, keep_tail + extlen + 1);
	}
	return out;
}

bool naming_path_is_safe(const char *rel)
{
	const char *p = rel;

	if (!rel || !*rel || *rel == '/') {
		return false;
	}
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 0 || n > NAMING_NAME_MAX || (n == 1 && p[0] == '.') ||
			(n == 2 && p[0] == '.' && p[1] == '.')) {
			return false;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];

			if (c < 0x20 || c == 0x7F) {
				return false;
			}
		}
		if (!slash) {
			break;
		}
		p = slash + 1;
		if (!*p) {
			return false; /* trailing '/' */
		}
	}
	return true;
}

/* ---- --folder-structure ---- */

enum seg_kind { SEG_TEXT, SEG_STRFTIME, SEG_STR };

struct seg {
	enum seg_kind kind;
	char *text; /* literal text, or the strftime spec; owned */
};

struct naming_folder {
	bool none;
	struct seg *segs;
	size_t n;
	locale_t loc;
};

void naming_folder_free(struct naming_folder *f)
{
	if (!f) {
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		free(f->segs[i].text);
	}
	free(f->segs);
	if (f->loc != (locale_t)0) {
		freelocale(f->loc);
	}
	free(f);
}

static void add_seg(struct naming_folder *f, enum seg_kind kind, const char *s, size_t n)
{
	f->segs = xrealloc(f->segs, (f->n + 1) * sizeof(*f->segs));
	f->segs[f->n].kind = kind;
	f->segs[f->n].text = xstrndup(s, n);
	f->n++;
}

/* Parse Python str.format syntax into segments. */
static int parse_format(struct naming_folder *f, const char *t)
{
	struct buf lit = BUF_INIT;
	const char *p = t;
	int err = 0;

	while (*p) {
		if (p[0] == '{' && p[1] == '{') {
			(void)!buf_add(&lit, "{", 1);
			p += 2;
		} else if (p[0] == '}' && p[1] == '}') {
			(void)!buf_add(&lit, "}", 1);
			p += 2;
		} else if (*p == '}') {
			err = error_set(ICPD_EUSAGE, "bad --folder-structure '%s': single '}'", t);
			goto done;
		} else if (*p == '{') {
			const char *end = strchr(p + 1, '}');
			const char *colon;
			const char *open;
			size_t fieldlen;

			if (!end) {
				err = error_set(ICPD_EUSAGE,
					"bad --folder-structure '%s': '{' without '}'", t);
				goto done;
			}
			open = memchr(p + 1, '{', (size_t)(end - p - 1));
			if (open) {
				err = error_set(ICPD_EUSAGE,
					"bad --folder-structure '%s': nested fields are not supported", t);
				goto done;
			}
			colon = memchr(p + 1, ':', (size_t)(end - p - 1));
			fieldlen = (size_t)((colon ? colon : end) - (p + 1));
			if (!(fieldlen == 0 || (fieldlen == 1 && p[1] == '0'))) {
				err = error_set(ICPD_EUSAGE,
					"bad --folder-structure '%s': only {:FORMAT} and {0:FORMAT} "
					"fields are supported", t);
				error_hint("write the date as {:%%Y/%%m/%%d}");
				goto done;
			}
			if (lit.len) {
				add_seg(f, SEG_TEXT, lit.data, lit.len);
				buf_reset(&lit);
			}
			if (colon && end > colon + 1) {
				add_seg(f, SEG_STRFTIME, colon + 1, (size_t)(end - colon - 1));
			} else {
				add_seg(f, SEG_STR, "", 0);
			}
			p = end + 1;
		} else {
			(void)!buf_add(&lit, p, 1);
			p++;
		}
	}
	if (lit.len) {
		add_seg(f, SEG_TEXT, lit.data, lit.len);
	}
done:
	buf_release(&lit);
	return err;
}

int naming_folder_compile(const char *tmpl, bool use_os_locale, struct naming_folder **out)
{
	struct naming_folder *f = xcalloc(1, sizeof(*f));
	int err = 0;

	*out = NULL;
	if (!tmpl) {
		tmpl = "{:%Y/%m/%d}";
	}
	if (strcasecmp(tmpl, "none") == 0) {
		f->none = true;
		*out = f;
		return 0;
	}
	if (use_os_locale) {
		/* LC_TIME only: month and day names are all strftime needs, and
		 * glibc leaks a composite LC_ALL name */
		f->loc = newlocale(LC_TIME_MASK, "", (locale_t)0);
	}
	if (f->loc == (locale_t)0) {
		f->loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	}
	if (f->loc == (locale_t)0) {
		err = error_set(ICPD_EINTERNAL, "cannot create the C locale: %s", strerror(errno));
		goto done;
	}
	if (!strchr(tmpl, '{') && !strchr(tmpl, '}') && strchr(tmpl, '%')) {
		/* icpd extension: a plain strftime string. */
		add_seg(f, SEG_STRFTIME, tmpl, strlen(tmpl));
	} else if ((err = parse_format(f, tmpl)) < 0) {
		goto done;
	}
	*out = f;
	f = NULL;
done:
	naming_folder_free(f);
	return err;
}

/* strftime into b, with Python's %f (microseconds) handled here. */
static void format_time(struct buf *b, const char *spec, const struct tm *tm, long usec,
	locale_t loc)
{
	struct buf fmt = BUF_INIT;
	char *out = NULL;
	size_t cap = 256;

	for (const char *p = spec; *p; p++) {
		if (p[0] == '%' && p[1] == 'f') {
			(void)!buf_addf(&fmt, "%06ld", usec);
			p++;
		} else if (p[0] == '%' && p[1]) {
			(void)!buf_add(&fmt, p, 2);
			p++;
		} else if (p[0] == '%') {
			/* a trailing lone '%': Python passes it on, glibc prints it */
			(void)!buf_add(&fmt, "%%", 2);
		} else {
			(void)!buf_add(&fmt, p, 1);
		}
	}
	/* A sentinel tells an empty result from a too-small buffer. */
	(void)!buf_add(&fmt, "x", 1);
	for (;;) {
		size_t n;

		out = xrealloc(out, cap);
		n = strftime_l(out, cap, fmt.data, tm, loc);
		if (n > 0) {
			(void)!buf_add(b, out, n - 1);
			break;
		}
		if (cap >= 65536) {
			break;
		}
		cap *= 4;
	}
	free(out);
	buf_release(&fmt);
}

/* Python's str(datetime) for an aware datetime. */
static void format_str(struct buf *b, const struct tm *tm, long usec)
{
	long off = tm->tm_gmtoff;
	char sign = off < 0 ? '-' : '+';

	(void)!buf_addf(b, "%04d-%02d-%02d %02d:%02d:%02d", tm->tm_year + 1900, tm->tm_mon + 1,
		tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec);
	if (usec) {
		(void)!buf_addf(b, ".%06ld", usec);
	}
	if (off < 0) {
		off = -off;
	}
	(void)!buf_addf(b, "%c%02ld:%02ld", sign, off / 3600, off / 60 % 60);
	if (off % 60) {
		(void)!buf_addf(b, ":%02ld", off % 60);
	}
}

int naming_folder_format(const struct naming_folder *f, int64_t asset_date_ms, char **out)
{
	struct buf raw = BUF_INIT;
	struct buf norm = BUF_INIT;
	struct tm tm;
	time_t secs;
	long usec;
	int64_t ms = asset_date_ms == INT64_MIN ? 0 : asset_date_ms;
	int err = 0;
	const char *p;

	*out = NULL;
	if (f->none) {
		*out = xstrdup("");
		return 0;
	}
	/* floor division, so dates before 1970 round down like Python's (and no
	 * multiplication that could overflow near INT64_MIN) */
	{
		int64_t q = ms / 1000;
		int64_t rem = ms % 1000;

		if (rem < 0) {
			q--;
			rem += 1000;
		}
		secs = (time_t)q;
		usec = (long)rem * 1000;
	}
	if (!localtime_r(&secs, &tm) || tm.tm_year < 1 - 1900 || tm.tm_year > 9999 - 1900) {
		/* icloudpd (Python datetime: years 1 to 9999) falls back to the
		 * epoch when the date cannot be converted */
		secs = 0;
		usec = 0;
		if (!localtime_r(&secs, &tm)) {
			return error_set(ICPD_EINTERNAL, "cannot convert the epoch to local time");
		}
	}
	for (size_t i = 0; i < f->n; i++) {
		switch (f->segs[i].kind) {
		case SEG_TEXT:
			(void)!buf_adds(&raw, f->segs[i].text);
			break;
		case SEG_STRFTIME:
			format_time(&raw, f->segs[i].text, &tm, usec, f->loc);
			break;
		case SEG_STR:
			format_str(&raw, &tm, usec);
			break;
		}
	}
	if (raw.data[0] == '/') {
		err = error_set(ICPD_EUSAGE, "--folder-structure gives an absolute path '%s'",
			raw.data);
		error_hint("folders are always created inside --directory");
		goto done;
	}
	/* normpath: drop empty and "." components; refuse ".." */
	p = raw.data;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			err = error_set(ICPD_EUSAGE,
				"--folder-structure gives a path with '..' ('%s')", raw.data);
			error_hint("folders are always created inside --directory");
			goto done;
		}
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (norm.len) {
				(void)!buf_add(&norm, "/", 1);
			}
			(void)!buf_add(&norm, p, n);
		}
		p += n;
		if (*p == '/') {
			p++;
		}
	}
	if (norm.len && !naming_path_is_safe(norm.data)) {
		err = error_set(ICPD_EUSAGE,
			"--folder-structure gives an unusable folder name (control character or "
			"a component over %d bytes)", NAMING_NAME_MAX);
		goto done;
	}
	*out = buf_detach(&norm, NULL);
done:
	buf_release(&raw);
	buf_release(&norm);
	return err;
}
