/*
 * EXIF: the one module that includes libexif.  libexif edits the EXIF
 * block but does not write JPEG files, so the JPEG is re-assembled here:
 * every segment is copied, the Exif APP1 replaced (or inserted after SOI /
 * APP0), and everything from SOS on copied verbatim.  libexif has no
 * run-time version call, so the version seen by the build is reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libexif/exif-data.h>

#include "icpd_build.h"
#include "icpd/buf.h"
#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/log.h"
#include "icpd/meta_exif.h"
#include "icpd/util.h"
#include "icpd/version.h"
#include "icpd/banned.h"

#define JPEG_MAX (512L * 1024 * 1024)

const char *meta_exif_describe(void)
{
	return "libexif " ICPD_LIBEXIF_VERSION;
}

static int read_all(const char *path, unsigned char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	unsigned char *data;
	size_t n = 0;

	*out = NULL;
	*len = 0;
	if (fd < 0) {
		error_set(ICPD_ESTORAGE, "cannot open '%s': %s", path, strerror(errno));
		return ICPD_ESTORAGE;
	}
	if (fstat(fd, &st) != 0 || st.st_size > JPEG_MAX) {
		close(fd);
		error_set(ICPD_EASSET, "'%s' is too large to edit its EXIF data", path);
		return ICPD_EASSET;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, data + n, (size_t)st.st_size - n);

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	*out = data;
	*len = n;
	return 0;
}

struct segment {
	size_t off;   /* of the 0xFF marker */
	size_t len;   /* marker + length field + payload */
	unsigned char marker;
};

/*
 * Find the segments before SOS.  Returns the count (up to max), or -1 when
 * the data is not a JPEG we understand.  *sos is the offset of SOS.
 */
static int scan(const unsigned char *d, size_t n, struct segment *segs, int max, size_t *sos)
{
	size_t p = 2;
	int count = 0;

	if (n < 4 || d[0] != 0xff || d[1] != 0xd8) {
		return -1;
	}
	while (p + 4 <= n) {
		unsigned char m;
		size_t l;

		if (d[p] != 0xff) {
			return -1;
		}
		m = d[p + 1];
		if (m == 0xff) {
			p++; /* fill byte */
			continue;
		}
		if (m == 0xda) {
			*sos = p;
			return count;
		}
		if (m == 0xd9 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) {
			return -1; /* no image data before these */
		}
		l = ((size_t)d[p + 2] << 8) | d[p + 3];
		if (l < 2 || p + 2 + l > n || count == max) {
			return -1;
		}
		segs[count].off = p;
		segs[count].len = 2 + l;
		segs[count].marker = m;
		count++;
		p += 2 + l;
	}
	return -1;
}

static bool is_exif_app1(const unsigned char *d, const struct segment *s)
{
	return s->marker == 0xe1 && s->len >= 10 && memcmp(d + s->off + 4, "Exif\0\0", 6) == 0;
}

static ExifData *load_exif(const unsigned char *d, size_t n)
{
	struct segment segs[64];
	size_t sos = 0;
	int count = scan(d, n, segs, (int)ARRAY_SIZE(segs), &sos);

	for (int i = 0; i < count; i++) {
		if (is_exif_app1(d, &segs[i])) {
			return exif_data_new_from_data(d + segs[i].off + 4, (unsigned int)(segs[i].len - 4));
		}
	}
	return NULL;
}

bool meta_exif_has_datetime_original(const char *path)
{
	unsigned char *d = NULL;
	size_t n = 0;
	ExifData *ed;
	bool has = false;

	if (read_all(path, &d, &n) != 0) {
		error_clear();
		return false;
	}
	ed = load_exif(d, n);
	if (ed) {
		ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_EXIF], EXIF_TAG_DATE_TIME_ORIGINAL);

		has = e && e->size > 0 && e->data && e->data[0];
		exif_data_unref(ed);
	}
	free(d);
	return has;
}

static void set_ascii(ExifData *ed, ExifTag tag, const char *value)
{
	ExifContent *ifd = ed->ifd[EXIF_IFD_EXIF];
	ExifEntry *e = exif_content_get_entry(ifd, tag);

	if (e) {
		exif_content_remove_entry(ifd, e);
	}
	e = exif_entry_new();
	exif_content_add_entry(ifd, e);
	exif_entry_initialize(e, tag); /* ASCII, 20 bytes */
	if (e->data && e->size >= 20) {
		memcpy(e->data, value, 19);
		e->data[19] = '\0';
	}
	exif_entry_unref(e);
}

int meta_exif_set_datetime(const char *path, int64_t when)
{
	unsigned char *d = NULL, *exif = NULL;
	unsigned int exif_len = 0;
	size_t n = 0, sos = 0;
	struct segment segs[64];
	int count, replaced = -1, insert_after = -1;
	ExifData *ed = NULL;
	struct buf out = BUF_INIT;
	char value[32];
	char *tmp = NULL;
	time_t t = (time_t)when;
	struct tm tm;
	int rc;
	int fd = -1;

	rc = read_all(path, &d, &n);
	if (rc) {
		goto done;
	}
	count = scan(d, n, segs, (int)ARRAY_SIZE(segs), &sos);
	if (count < 0) {
		rc = error_set(ICPD_EASSET, "cannot set the EXIF date of '%s': not a JPEG file", path);
		goto done;
	}
	for (int i = 0; i < count; i++) {
		if (replaced < 0 && is_exif_app1(d, &segs[i])) {
			replaced = i;
		}
	}
	if (replaced >= 0) {
		ed = exif_data_new_from_data(d + segs[replaced].off + 4,
			(unsigned int)(segs[replaced].len - 4));
	}
	if (!ed) {
		ed = exif_data_new();
		exif_data_set_byte_order(ed, EXIF_BYTE_ORDER_MOTOROLA);
		if (count > 0 && segs[0].marker == 0xe0) {
			insert_after = 0;
		}
	}
	if (!ed) {
		rc = error_set(ICPD_EINTERNAL, "cannot create EXIF data");
		goto done;
	}
	localtime_r(&t, &tm);
	strftime(value, sizeof(value), "%Y:%m:%d %H:%M:%S", &tm);
	set_ascii(ed, EXIF_TAG_DATE_TIME_ORIGINAL, value);
	set_ascii(ed, EXIF_TAG_DATE_TIME_DIGITIZED, value);
	exif_data_save_data(ed, &exif, &exif_len);
	if (!exif || exif_len + 2 > 0xffff) {
		rc = error_set(ICPD_EASSET, "cannot set the EXIF date of '%s': EXIF block too large",
			path);
		goto done;
	}
	{
		unsigned char app1[4] = { 0xff, 0xe1, (unsigned char)((exif_len + 2) >> 8),
			(unsigned char)((exif_len + 2) & 0xff) };
		int r = buf_add(&out, d, 2); /* SOI */

		if (replaced < 0 && insert_after < 0) {
			r |= buf_add(&out, app1, 4);
			r |= buf_add(&out, exif, exif_len);
		}
		for (int i = 0; i < count; i++) {
			if (i == replaced) {
				r |= buf_add(&out, app1, 4);
				r |= buf_add(&out, exif, exif_len);
			} else {
				r |= buf_add(&out, d + segs[i].off, segs[i].len);
			}
			if (i == insert_after) {
				r |= buf_add(&out, app1, 4);
				r |= buf_add(&out, exif, exif_len);
			}
		}
		r |= buf_add(&out, d + sos, n - sos);
		if (r) {
			rc = error_set(ICPD_EINTERNAL, "cannot assemble the JPEG file");
			goto done;
		}
	}
	tmp = xasprintf("%s.exif", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = error_set(ICPD_ESTORAGE, "cannot create '%s': %s", tmp, strerror(errno));
		goto done;
	}
	rc = fsutil_write_all(fd, out.data, out.len, tmp);
	{
		int closed = close(fd);

		fd = -1;
		if (rc == 0 && closed != 0) {
			rc = error_set(ICPD_ESTORAGE, "cannot write '%s': %s", tmp, strerror(errno));
		}
	}
	if (rc == 0 && rename(tmp, path) != 0) {
		rc = error_set(ICPD_ESTORAGE, "cannot rename '%s': %s", tmp, strerror(errno));
	}
done:
	if (fd >= 0) {
		close(fd);
	}
	if (rc && tmp) {
		unlink(tmp);
	}
	free(tmp);
	free(exif);
	if (ed) {
		exif_data_unref(ed);
	}
	buf_release(&out);
	free(d);
	return rc;
}

int meta_exif_apply(const char *path, const char *name, int64_t when, bool *changed)
{
	int rc;

	if (changed) {
		*changed = false;
	}
	size_t n = strlen(name);

	if (!(n > 4 && str_eq_nocase(name + n - 4, ".jpg")) &&
		!(n > 5 && str_eq_nocase(name + n - 5, ".jpeg"))) {
		return 0;
	}
	if (meta_exif_has_datetime_original(path)) {
		return 0;
	}
	rc = meta_exif_set_datetime(path, when);
	if (rc == 0 && changed) {
		*changed = true;
	}
	return rc;
}
