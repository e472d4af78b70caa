/*
 * File and folder names, icloudpd-compatible (cloudkit-photos.md §6), made
 * safe: a name from iCloud is hostile, and no path built here ever leaves
 * --directory.
 *
 * Compatibility first: every step below reproduces icloudpd byte for byte,
 * so a tree it filled is adopted.  Then naming_safe_name() applies the rules
 * icloudpd lacks; it changes a name only where icloudpd's would be unsafe or
 * impossible on disk:
 *   - control characters (U+0001–U+001F, U+007F and, with
 *     --keep-unicode-in-filenames, U+0080–U+009F) become '_' (icloudpd keeps
 *     them; they break terminals, logs and some importers);
 *   - invalid UTF-8 sequences become '_' (icloudpd aborts on such names, so
 *     it never wrote such a file);
 *   - a name that is empty, "." or ".." gets a leading '_';
 *   - a name longer than the limit (255 bytes, NAME_MAX) is cut on a UTF-8
 *     boundary, keeping the extension (icloudpd would fail to write it).
 * All strings are UTF-8 byte strings; all returned strings are owned by the
 * caller (free()).
 */
#ifndef ICPD_NAMING_H
#define ICPD_NAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icpd/asset.h"
#include "icpd/config.h"

#define NAMING_NAME_MAX 255

/* Python os.path.splitext on a file name: the offset of the extension's '.'
 * (the last '.' not part of the name's leading dots), or strlen(name). */
size_t naming_ext_offset(const char *name);

/* §4.4: "HEIC", "JPG", ... for a UTI, or NULL when unmapped (uti may be NULL). */
const char *naming_uti_ext(const char *uti);

/* §4.4 last line: the UTI names a RAW format (contains "raw"). */
bool naming_uti_is_raw(const char *uti);

/* §4.3: image / movie / unknown from itemType and the raw file name (either
 * may be NULL; a NULL item_type gives ASSET_UNKNOWN). */
enum asset_kind naming_item_kind(const char *item_type, const char *filename);

/* §6.1 step 3 and 4: replace < > : " / \ | ? * by '_'; unless keep_unicode,
 * drop every byte >= 0x80. */
char *naming_clean(const char *raw, bool keep_unicode);

/* §6.1 step 2: "<first 12 of record_name, non-alnum → _>.<EXT(item_type) or unknown>". */
char *naming_fallback(const char *record_name, const char *item_type);

/* §6.1 step 5: the 7 characters of standard base64(record_name); out gets 8 bytes. */
void naming_id7(const char *record_name, char out[8]);

/* Insert suffix before the extension (splitext): ("IMG.JPG", "-thumb") → "IMG-thumb.JPG". */
char *naming_insert_suffix(const char *name, const char *suffix);

/* Insert suffix before the last '.' of the whole string (Python
 * rsplit('.', 1)); unchanged copy when there is no '.' (§6.7). */
char *naming_insert_before_last_dot(const char *path, const char *suffix);

/* The base name B of an asset (§6.1): cleaned filenameEnc or the fallback,
 * with the id7 suffix under name-id7.  Not yet made safe. */
char *naming_base(const struct asset *a, bool keep_unicode, enum file_match_policy match);

/*
 * §6.2: the file name of one version of an asset with base name B.  kind is
 * the asset's kind; uti is the version's UTI (may be NULL).  An image (or
 * unknown) asset's QuickTime version gets the live-photo rule, whichever slot
 * it is in (as icloudpd).  The -medium/-thumb suffix is not added here.
 */
char *naming_version(const char *base, enum asset_kind kind, const char *uti,
	enum live_mov_policy policy);

/*
 * Make one path component safe (see the top of this file).  max is the
 * byte limit (<= NAMING_NAME_MAX; callers pass less to leave room for a
 * ".xmp" sidecar).  Returns a new string.
 */
char *naming_safe_name(const char *name, size_t max);

/* The same, but a cut keeps the last keep_tail bytes before the extension
 * (a suffix such as "-thumb" or "_HEVC-medium" appended to the base name),
 * so the versions of one asset keep distinct names. */
char *naming_safe_name_keep(const char *name, size_t max, size_t keep_tail);

/* True when rel is a safe relative path: not empty, not absolute, no empty,
 * "." or ".." component, no control character, each component at most
 * NAMING_NAME_MAX bytes. */
bool naming_path_is_safe(const char *rel);

/*
 * The compiled --folder-structure.  Accepted syntax:
 *   - "none" (any case): no folder;
 *   - icloudpd's Python str.format syntax: literal text, "{{" and "}}",
 *     "{:SPEC}" and "{0:SPEC}" (SPEC is strftime; %f gives microseconds),
 *     "{}" and "{0}" (Python's str(datetime) form);
 *   - a plain strftime string without braces ("%Y/%m/%d") — an icpd
 *     extension (icloudpd would create a literal "%Y" folder).
 * The expansion is then split on '/', empty and "." components dropped;
 * ".." or an absolute result is refused.
 */
struct naming_folder;

/* 0 and *out (free with naming_folder_free), or ICPD_EUSAGE with a message.
 * use_os_locale: month/day names from the environment's locale (LC_ALL,
 * LC_TIME, LANG) instead of the C locale. */
int naming_folder_compile(const char *tmpl, bool use_os_locale, struct naming_folder **out)
	__attribute__((warn_unused_result));
void naming_folder_free(struct naming_folder *f);

/* The folder for an asset date (ms since epoch UTC; INT64_MIN = absent →
 * epoch), in the process TZ (localtime_r).  *out is "" for "none", else
 * "a/b/c" without leading or trailing '/'.  0, or ICPD_EUSAGE when the
 * expansion is unsafe or too long. */
int naming_folder_format(const struct naming_folder *f, int64_t asset_date_ms, char **out)
	__attribute__((warn_unused_result));

#endif
