/*
 * struct asset lifecycle.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/asset.h"
#include "icpd/util.h"
#include "icpd/banned.h"

void asset_init(struct asset *a)
{
	memset(a, 0, sizeof(*a));
	a->asset_date = INT64_MIN;
	a->added_date = INT64_MIN;
	a->kind = ASSET_UNKNOWN;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void asset_release(struct asset *a)
{
	if (!a) {
		return;
	}
	free(a->master_id);
	free(a->asset_id);
	free(a->zone);
	free(a->filename);
	free(a->item_type);
	free(a->caption);
	free(a->description);
	if (a->keywords) {
		for (char **k = a->keywords; *k; k++) {
			free(*k);
		}
		free(a->keywords);
	}
	free(a->adjustment_type);
	free(a->change_tag);
	free(a->adjustment_simple_data);
	for (int i = 0; i < SIZE_COUNT; i++) {
		free(a->versions[i].url);
		free(a->versions[i].uti);
		free(a->versions[i].checksum);
	}
	asset_init(a);
}

void asset_copy(struct asset *dst, const struct asset *src)
{
	*dst = *src;
	dst->master_id = dup_or_null(src->master_id);
	dst->asset_id = dup_or_null(src->asset_id);
	dst->zone = dup_or_null(src->zone);
	dst->filename = dup_or_null(src->filename);
	dst->item_type = dup_or_null(src->item_type);
	dst->caption = dup_or_null(src->caption);
	dst->description = dup_or_null(src->description);
	dst->adjustment_type = dup_or_null(src->adjustment_type);
	dst->change_tag = dup_or_null(src->change_tag);
	dst->adjustment_simple_data = dup_or_null(src->adjustment_simple_data);
	if (src->keywords) {
		size_t n = 0;

		while (src->keywords[n]) {
			n++;
		}
		dst->keywords = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			dst->keywords[i] = xstrdup(src->keywords[i]);
		}
	}
	for (int i = 0; i < SIZE_COUNT; i++) {
		dst->versions[i].url = dup_or_null(src->versions[i].url);
		dst->versions[i].uti = dup_or_null(src->versions[i].uti);
		dst->versions[i].checksum = dup_or_null(src->versions[i].checksum);
	}
}
