/*
 * XMP sidecars.  The document is small and flat, so it is written with
 * a buffer, not an XML library; reading an existing sidecar only needs its
 * x:xmptk stamp.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "icpd/asset.h"
#include "icpd/buf.h"
#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/log.h"
#include "icpd/meta_xmp.h"
#include "icpd/util.h"
#include "icpd_build.h"
#include "icpd/banned.h"

#define XMP_MAX_READ (1 << 20)

/* Text content: escape markup, drop characters XML 1.0 cannot hold. */
static void add_text(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int rc = 0;

		if (c == '&') {
			rc = buf_adds(b, "&amp;");
		} else if (c == '<') {
			rc = buf_adds(b, "&lt;");
		} else if (c == '>') {
			rc = buf_adds(b, "&gt;");
		} else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
			continue;
		} else {
			rc = buf_add(b, s, 1);
		}
		(void)rc; /* unbounded buffer: only allocation can fail, and that aborts */
	}
}

static void add(struct buf *b, const char *s)
{
	int rc = buf_adds(b, s);

	(void)rc;
}

static void addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void addf(struct buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	add(b, tmp);
}

static void element(struct buf *b, const char *name, const char *text)
{
	addf(b, "<%s>", name);
	add_text(b, text);
	addf(b, "</%s>", name);
}

/* ISO 8601 with the offset: 2018-07-30T18:44:10+07:00 */
static void format_date(char *out, size_t n, int64_t ms, int32_t offset)
{
	int64_t secs = ms / 1000 - ((ms % 1000 < 0) ? 1 : 0);
	time_t t = (time_t)(secs + offset);
	struct tm tm;
	char base[32];
	int32_t off = offset < 0 ? -offset : offset;

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, n, "%s%c%02d:%02d", base, offset < 0 ? '-' : '+', (int)(off / 3600),
		(int)(off % 3600 / 60));
}

/* XMP GPS coordinate: "DDD,MM.mmmmmmR" */
static void format_coord(char *out, size_t n, double v, char pos, char neg)
{
	double a = v < 0 ? -v : v;
	int deg = (int)a;
	double min = (a - deg) * 60.0;

	snprintf(out, n, "%d,%.6f%c", deg, min, v < 0 ? neg : pos);
}

static bool nonempty(const char *s)
{
	return s && *s;
}

char *meta_xmp_build(const struct asset *a)
{
	struct buf b = BUF_INIT;
	char tmp[64];
	bool has_keywords = a->keywords && a->keywords[0];
	int rating = 0;
	bool has_rating = false;

	if (a->hidden || a->deleted) {
		rating = -1;
		has_rating = true;
	} else if (a->favorite) {
		rating = 5;
		has_rating = true;
	}
	add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	add(&b, "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"icpd " ICPD_VERSION "\">\n");
	add(&b, " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n");
	add(&b, "  <rdf:Description rdf:about=\"\"\n"
		"    xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n"
		"    xmlns:exif=\"http://ns.adobe.com/exif/1.0/\"\n"
		"    xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"\n"
		"    xmlns:photoshop=\"http://ns.adobe.com/photoshop/1.0/\"\n"
		"    xmlns:tiff=\"http://ns.adobe.com/tiff/1.0/\"\n"
		"    xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\"\n"
		"    xmlns:digiKam=\"http://www.digikam.org/ns/1.0/\"\n"
		"    xmlns:lr=\"http://ns.adobe.com/lightroom/1.0/\">\n");
	if (nonempty(a->caption)) {
		add(&b, "   <dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">");
		add_text(&b, a->caption);
		add(&b, "</rdf:li></rdf:Alt></dc:title>\n");
	}
	/* Immich shows dc:description; the caption stands in when there is
	 * no separate description */
	if (nonempty(a->description) || nonempty(a->caption)) {
		add(&b, "   <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">");
		add_text(&b, nonempty(a->description) ? a->description : a->caption);
		add(&b, "</rdf:li></rdf:Alt></dc:description>\n");
	}
	if (has_keywords) {
		static const char *const lists[][2] = {
			{ "dc:subject", "rdf:Bag" },
			{ "digiKam:TagsList", "rdf:Seq" },
			{ "lr:hierarchicalSubject", "rdf:Bag" },
		};

		for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
			addf(&b, "   <%s><%s>", lists[l][0], lists[l][1]);
			for (char **k = a->keywords; *k; k++) {
				element(&b, "rdf:li", *k);
			}
			addf(&b, "</%s></%s>\n", lists[l][1], lists[l][0]);
		}
	}
	if (a->asset_date != INT64_MIN) {
		format_date(tmp, sizeof(tmp), a->asset_date, a->tz_offset);
		add(&b, "   ");
		element(&b, "exif:DateTimeOriginal", tmp);
		add(&b, "\n   ");
		element(&b, "xmp:CreateDate", tmp);
		add(&b, "\n   ");
		element(&b, "photoshop:DateCreated", tmp);
		add(&b, "\n");
	}
	if (a->has_location && (a->latitude != 0 || a->longitude != 0)) {
		format_coord(tmp, sizeof(tmp), a->latitude, 'N', 'S');
		add(&b, "   ");
		element(&b, "exif:GPSLatitude", tmp);
		format_coord(tmp, sizeof(tmp), a->longitude, 'E', 'W');
		add(&b, "\n   ");
		element(&b, "exif:GPSLongitude", tmp);
		add(&b, "\n");
		if (a->altitude != 0) {
			addf(&b, "   <exif:GPSAltitudeRef>%d</exif:GPSAltitudeRef>\n",
				a->altitude < 0 ? 1 : 0);
			addf(&b, "   <exif:GPSAltitude>%lld/1000</exif:GPSAltitude>\n",
				(long long)((a->altitude < 0 ? -a->altitude : a->altitude) * 1000 + 0.5));
		}
		if (a->speed > 0) {
			addf(&b, "   <exif:GPSSpeed>%lld/1000</exif:GPSSpeed>\n",
				(long long)(a->speed * 1000 + 0.5));
		}
		if (a->location_time > 0) {
			format_date(tmp, sizeof(tmp), a->location_time * 1000, 0);
			add(&b, "   ");
			element(&b, "exif:GPSTimeStamp", tmp);
			add(&b, "\n");
		}
	}
	if (a->subtype_v2 == 3) {
		add(&b, "   <Iptc4xmpExt:DigitalSourceType>screenCapture</Iptc4xmpExt:DigitalSourceType>\n");
		add(&b, "   <tiff:Make>Screenshot</tiff:Make>\n");
	}
	if (a->orientation >= 1 && a->orientation <= 8) {
		addf(&b, "   <tiff:Orientation>%d</tiff:Orientation>\n", a->orientation);
	}
	if (has_rating) {
		addf(&b, "   <xmp:Rating>%d</xmp:Rating>\n", rating);
	}
	add(&b, "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n");
	return buf_detach(&b, NULL);
}

/* Read at most XMP_MAX_READ bytes; NULL when absent (errno ENOENT) or unreadable. */
static char *read_small(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *data;
	size_t n = 0;

	*len = 0;
	if (fd < 0) {
		return NULL;
	}
	data = xmalloc(XMP_MAX_READ + 1);
	for (;;) {
		ssize_t r = read(fd, data + n, XMP_MAX_READ - n);

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		n += (size_t)r;
		if (n == XMP_MAX_READ) {
			break;
		}
	}
	close(fd);
	data[n] = '\0';
	*len = n;
	return data;
}

static bool stamped_by_us(const char *doc)
{
	const char *p = doc;
	const char *tk;

	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
		p++;
	}
	if (strncmp(p, "\xef\xbb\xbf", 3) == 0) {
		p += 3;
	}
	/* an XML document with the adobe:ns:meta/ root namespace */
	if (*p != '<' || !strstr(p, "\"adobe:ns:meta/\"")) {
		return false;
	}
	tk = strstr(p, "x:xmptk=");
	if (!tk) {
		return false;
	}
	tk += 8;
	if (*tk != '"' && *tk != '\'') {
		return false;
	}
	tk++;
	return strncmp(tk, "icloudpd", 8) == 0 || strncmp(tk, "icpd ", 5) == 0;
}

bool meta_xmp_may_overwrite(const char *path)
{
	struct stat st;
	size_t len;
	char *doc;
	bool ok;

	if (lstat(path, &st) != 0) {
		return errno == ENOENT;
	}
	if (!S_ISREG(st.st_mode)) {
		return false;
	}
	if (st.st_size == 0) {
		return true;
	}
	doc = read_small(path, &len);
	ok = doc && stamped_by_us(doc);
	free(doc);
	return ok;
}

int meta_xmp_write(const char *tmpdir, const char *path, const struct asset *a, mode_t mode,
	mode_t dir_mode, bool *written)
{
	char *doc = meta_xmp_build(a);
	size_t n = strlen(doc), old_len = 0;
	char *old = NULL;
	int rc = 0;

	if (written) {
		*written = false;
	}
	if (!meta_xmp_may_overwrite(path)) {
		log_info("leaving '%s' alone: another program wrote it", path);
		goto done;
	}
	old = read_small(path, &old_len);
	if (old && old_len == n && memcmp(old, doc, n) == 0) {
		goto done;
	}
	rc = fsutil_write_atomic(tmpdir, path, doc, n, mode, dir_mode, (int64_t)time(NULL));
	if (rc == 0 && written) {
		*written = true;
	}
done:
	free(old);
	free(doc);
	return rc;
}
