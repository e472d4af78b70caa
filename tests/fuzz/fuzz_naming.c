/*
 * libFuzzer target: the file-name sanitiser and the path builder.
 *
 * Input: byte 0 = option bits, byte 1 = UTI choice for the original, byte 2
 * = UTI choice for the live video, byte 3 = safe_name limit, then the raw
 * file name (as a decoded filenameEnc) up to the first NUL, then the
 * CPLMaster record name.  Checks, for every input:
 *   - naming_safe_name() returns one safe component within the limit, valid
 *     UTF-8, no control character;
 *   - every path plan_asset() builds (and every path it asks stat about) is
 *     relative, without "..", "." or empty components.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "icpd/asset.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/naming.h"
#include "icpd/plan.h"
#include "icpd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char url[] = "u";
static char chk[] = "c";
static char jpeg[] = "public.jpeg";

static const char *const utis[] = { NULL, "public.heic", "public.jpeg", "public.png",
	"com.apple.quicktime-movie", "com.canon.cr2-raw-image", "org.webmproject.webp",
	"public.mpeg-4" };

static void check_utf8_component(const char *s, size_t max)
{
	size_t n = strlen(s);
	const unsigned char *p = (const unsigned char *)s;

	if (n == 0 || n > max || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
		abort();
	}
	for (size_t i = 0; i < n;) {
		unsigned c = p[i];
		size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;

		if (len == 0 || i + len > n || c < 0x20 || c == 0x7f) {
			abort();
		}
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80) {
				abort();
			}
		}
		if (len == 2 && c == 0xC2 && p[i + 1] < 0xA0) {
			abort(); /* C1 control */
		}
		i += len;
	}
}

static int fuzz_stat(void *ud, const char *rel, int64_t *sz)
{
	(void)ud;
	if (!naming_path_is_safe(rel)) {
		abort();
	}
	/* pretend every other name exists with a different size, so the
	 * dedup and legacy paths are exercised */
	if (strlen(rel) % 2) {
		*sz = 1;
		return 0;
	}
	return ICPD_ENOTFOUND;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct plan_ctx ctx;
	struct plan_result res;
	struct asset a;
	char *name;
	char *rest;
	char *safe;
	size_t nlen;
	size_t max;
	uint8_t opt;

	if (size < 4) {
		return 0;
	}
	opt = data[0];
	max = 8 + data[3];
	name = xstrndup((const char *)data + 4, size - 4);
	nlen = strlen(name);
	rest = 4 + nlen + 1 <= size ? xstrndup((const char *)data + 4 + nlen + 1,
		size - 4 - nlen - 1) : xstrdup("AY6c+BsE0jjaXx9tmVGJM1D2VcEO");

	safe = naming_safe_name(name, max);
	check_utf8_component(safe, max > NAMING_NAME_MAX ? NAMING_NAME_MAX : max);
	free(safe);

	setenv("TZ", "UTC", 1);
	memset(&cfg, 0, sizeof(cfg)); /* config.c is not linked in */
	cfg.folder_structure = xstrdup((opt & 0x80) ? "none" : "{:%Y/%m/%d}");
	cfg.keep_unicode_in_filenames = opt & 0x1;
	cfg.file_match_policy = (opt & 0x2) ? MATCH_NAME_ID7 : MATCH_NAME_SIZE_DEDUP;
	cfg.live_photo_mov_filename_policy = (opt & 0x4) ? LIVE_MOV_ORIGINAL : LIVE_MOV_SUFFIX;
	cfg.xmp_sidecar = opt & 0x8;
	strlist_add(&cfg.sizes, "original");
	if (opt & 0x10) {
		strlist_add(&cfg.sizes, "medium");
	}
	if (opt & 0x20) {
		strlist_add(&cfg.sizes, "adjusted");
	}
	if (plan_ctx_init(&ctx, &cfg, fuzz_stat, NULL, 0) != 0) {
		abort();
	}
	asset_init(&a);
	a.master_id = rest;
	a.filename = (opt & 0x40) ? NULL : name;
	a.item_type = (char *)utis[data[1] % 8];
	a.asset_date = 1533021744816LL;
	a.versions[SIZE_ORIGINAL] = (struct asset_version){ true, url, 1884695,
		(char *)utis[data[1] % 8], chk };
	a.versions[SIZE_ADJUSTED] = (struct asset_version){ true, url, 3, jpeg, chk };
	a.versions[SIZE_LIVE_ORIGINAL] = (struct asset_version){ true, url, 2,
		(char *)utis[data[2] % 8], chk };
	if (plan_asset(&ctx, &a, &res) == 0) {
		for (size_t i = 0; i < res.n; i++) {
			const char *last = strrchr(res.items[i].path, '/');

			if (!naming_path_is_safe(res.items[i].path)) {
				abort();
			}
			check_utf8_component(last ? last + 1 : res.items[i].path, NAMING_NAME_MAX);
		}
	}
	plan_result_release(&res);
	plan_ctx_release(&ctx);
	free(cfg.folder_structure);
	strlist_clear(&cfg.sizes);
	free(name);
	free(rest);
	return 0;
}
