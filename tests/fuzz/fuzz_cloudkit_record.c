/*
 * libFuzzer target for the record decoder: a records/query page (pairing,
 * field decoding, base64, UTF-8) and the plist readers behind keywordsEnc
 * and locationEnc.  Built by tests/fuzz/run.sh, or by meson with
 * -Dfuzz=true and CC=clang.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "icpd/asset.h"
#include "icpd/cloudkit.h"
#include "icpd/error.h"
#include "icpd/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_setup(LOG_ERROR, LOG_FORMAT_TEXT, stderr); /* bad records warn; keep the run quiet */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cloudkit_page page;
	struct asset a;
	char **words = NULL;

	if (cloudkit_page_decode((const char *)data, size, "PrimarySync", &page) == 0) {
		for (size_t i = 0; i < page.n; i++) {
			/* every decoded asset must be self-consistent */
			if (!page.assets[i].master_id || !page.assets[i].asset_id ||
				!page.assets[i].versions[SIZE_ORIGINAL].present) {
				abort();
			}
			char *j = cloudkit_asset_json(&page.assets[i], (int)page.changes[i]);

			free(j);
		}
	}
	cloudkit_page_release(&page);
	if (cloudkit_plist_strings(data, size, &words) == 0) {
		for (char **w = words; *w; w++) {
			free(*w);
		}
		free(words);
	}
	asset_init(&a);
	if (cloudkit_plist_location(data, size, &a) == 0 && !a.has_location) {
		abort(); /* success means a location was set */
	}
	asset_release(&a);
	error_clear();
	return 0;
}
