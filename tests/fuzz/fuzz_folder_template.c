/*
 * libFuzzer target: the --folder-structure compiler and formatter.
 *
 * Input: 8 bytes of asset date (ms, little-endian), then the template.
 * Checks: compile and format either fail with ICPD_EUSAGE or give "" or a
 * safe relative path (no "..", not absolute, no control characters).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/error.h"
#include "icpd/naming.h"
#include "icpd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct naming_folder *f = NULL;
	char *tmpl;
	char *out = NULL;
	int64_t ms = 0;
	int err;

	if (size < 8) {
		return 0;
	}
	for (int i = 7; i >= 0; i--) {
		ms = (int64_t)((uint64_t)ms << 8 | data[i]);
	}
	tmpl = xstrndup((const char *)data + 8, size - 8);
	setenv("TZ", "UTC", 1);
	err = naming_folder_compile(tmpl, false, &f);
	if (err != 0 && err != ICPD_EUSAGE) {
		abort();
	}
	if (err == 0) {
		err = naming_folder_format(f, ms, &out);
		if (err != 0 && err != ICPD_EUSAGE) {
			abort();
		}
		if (err == 0 && *out && !naming_path_is_safe(out)) {
			abort();
		}
	}
	free(out);
	naming_folder_free(f);
	free(tmpl);
	return 0;
}
