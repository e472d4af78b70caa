/*
 * XMP sidecars ("IMG_1234.HEIC.xmp", cloudkit-photos.md §8.1) with the
 * fields icloudpd writes plus what Immich reads (immich-and-k8s.md §3.4):
 * title, description, keywords (dc:subject, digiKam:TagsList,
 * lr:hierarchicalSubject), GPS in XMP's "DDD,MM.mmmmN" form, dates with
 * their offset (exif:DateTimeOriginal, xmp:CreateDate,
 * photoshop:DateCreated), rating, orientation, screenshot marks.
 * Stamped x:xmptk="icpd <version>".
 */
#ifndef ICPD_META_XMP_H
#define ICPD_META_XMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct asset;

/* The sidecar document for a; caller frees. */
char *meta_xmp_build(const struct asset *a);

/*
 * §8.1 overwrite rule: true when path is absent or empty, or holds an XMP
 * document whose x:xmptk says icpd or icloudpd wrote it.  Foreign or
 * unparsable sidecars are left alone (false).
 */
bool meta_xmp_may_overwrite(const char *path);

/*
 * Write the sidecar of a at path atomically (through tmpdir), unless the
 * overwrite rule says no or the file already has exactly this content.
 * *written (may be NULL) says whether the file changed.
 */
int meta_xmp_write(const char *tmpdir, const char *path, const struct asset *a, mode_t mode,
	mode_t dir_mode, bool *written) __attribute__((warn_unused_result));

#endif
