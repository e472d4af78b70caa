/*
 * --set-exif-datetime (cloudkit-photos.md §8.2): give a JPEG that lacks
 * EXIF DateTimeOriginal that tag and DateTimeDigitized, from the asset
 * date in the process time zone.  Works on the temp file, before it
 * becomes visible.  libexif lives only here.
 */
#ifndef ICPD_META_EXIF_H
#define ICPD_META_EXIF_H

#include <stdbool.h>
#include <stdint.h>

/* Does the JPEG at path carry DateTimeOriginal (0x9003)?  Read errors and
 * non-JPEG files count as "no" (as icloudpd). */
bool meta_exif_has_datetime_original(const char *path);

/*
 * Write DateTimeOriginal and DateTimeDigitized (Exif IFD) = when (seconds
 * since epoch, shown in local time, "%Y:%m:%d %H:%M:%S") into the JPEG at
 * path, keeping every other segment.  The file is rewritten through a
 * sibling temp file and renamed over path.  ICPD_EASSET when the file is
 * not a JPEG we can edit (message set), ICPD_ESTORAGE on I/O errors.
 */
int meta_exif_set_datetime(const char *path, int64_t when) __attribute__((warn_unused_result));

/* §8.2 as one call: only for names ending .jpg/.jpeg (any case) and only
 * when DateTimeOriginal is missing.  *changed (may be NULL) says whether
 * the file was rewritten. */
int meta_exif_apply(const char *path, const char *name, int64_t when, bool *changed)
	__attribute__((warn_unused_result));

const char *meta_exif_describe(void);

#endif
