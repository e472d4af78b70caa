/*
 * plan_dump: run the planner over a list of assets the way `icpd sync` does
 * (one asset after the other, files "written" as they are planned) and print
 * the tree.  A test tool for test_plan_model.py, not part of icpd.
 *
 *   plan_dump [icpd sync options ...] < assets.txt
 *
 * Input, one asset per line, space-separated key=value, text values
 * hex-encoded ("-" = absent):
 *   master= asset= filename= item_type= date=<ms|-> hidden=0|1 deleted=0|1
 *   v<slot>=<uti hex or ->,<size>,<checksum hex>   (slot = enum asset_size)
 * A line "exists <path hex> <size>" adds a file present before the run.
 * Output, one line per file planned for download:
 *   <path hex> <size> <mtime> <decision>
 * and a last line "stopped" when --recent/--until-found ended the listing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "icpd/asset.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/plan.h"
#include "icpd/util.h"

struct file {
	char *path;
	int64_t size;
};

static struct file *files;
static size_t nfiles;

static void add_file(const char *path, int64_t size)
{
	files = xrealloc(files, (nfiles + 1) * sizeof(*files));
	files[nfiles].path = xstrdup(path);
	files[nfiles].size = size;
	nfiles++;
}

static int mem_stat(void *ud, const char *rel, int64_t *size)
{
	(void)ud;
	for (size_t i = 0; i < nfiles; i++) {
		if (strcmp(files[i].path, rel) == 0) {
			*size = files[i].size;
			return 0;
		}
	}
	return ICPD_ENOTFOUND;
}

static char *unhex(const char *s)
{
	size_t n = strlen(s) / 2;
	char *out;

	if (strcmp(s, "-") == 0) {
		return NULL;
	}
	out = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			fprintf(stderr, "plan_dump: bad hex '%s'\n", s);
			exit(2);
		}
		out[i] = (char)v;
	}
	out[n] = '\0';
	return out;
}

static void print_hex(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		printf("%02x", *p);
	}
}

static void parse_asset(char *line, struct asset *a)
{
	char *save = NULL;

	asset_init(a);
	for (char *tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		char *eq = strchr(tok, '=');
		char *v;

		if (!eq) {
			continue;
		}
		*eq = '\0';
		v = eq + 1;
		if (strcmp(tok, "master") == 0) {
			a->master_id = unhex(v);
		} else if (strcmp(tok, "asset") == 0) {
			a->asset_id = unhex(v);
		} else if (strcmp(tok, "filename") == 0) {
			a->filename = unhex(v);
		} else if (strcmp(tok, "item_type") == 0) {
			a->item_type = unhex(v);
		} else if (strcmp(tok, "date") == 0) {
			a->asset_date = strcmp(v, "-") == 0 ? INT64_MIN : strtoll(v, NULL, 10);
		} else if (strcmp(tok, "hidden") == 0) {
			a->hidden = strcmp(v, "1") == 0;
		} else if (strcmp(tok, "deleted") == 0) {
			a->deleted = strcmp(v, "1") == 0;
		} else if (tok[0] == 'v') {
			int slot = atoi(tok + 1);
			char *c1 = strchr(v, ',');
			char *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
			struct asset_version *ver;

			if (slot < 0 || slot >= SIZE_COUNT || !c2) {
				fprintf(stderr, "plan_dump: bad version '%s'\n", tok);
				exit(2);
			}
			*c1 = *c2 = '\0';
			ver = &a->versions[slot];
			ver->present = true;
			ver->uti = unhex(v);
			ver->size = strtoll(c1 + 1, NULL, 10);
			ver->checksum = unhex(c2 + 1);
			ver->url = xasprintf("https://cvws.icloud-content.com/B/%d/${f}", slot);
		}
	}
}

int main(int argc, char **argv)
{
	static const char *const allowed[] = { "align-raw", "file-match-policy", "folder-structure",
		"force-size", "keep-unicode-in-filenames", "live-photo-mov-filename-policy",
		"live-photo-size", "recent", "size", "skip-created-after", "skip-created-before",
		"skip-live-photos", "skip-photos", "skip-videos", "until-found", "use-os-locale",
		"xmp-sidecar", NULL };
	char *env[] = { NULL };
	struct config cfg;
	struct plan_ctx ctx;
	struct plan_progress prog = PLAN_PROGRESS_INIT;
	char *line = NULL;
	size_t cap = 0;
	int rc;

	config_init(&cfg);
	if ((rc = config_resolve(&cfg, allowed, argc - 1, argv + 1, env)) < 0 ||
		(rc = plan_ctx_init(&ctx, &cfg, mem_stat, NULL, time(NULL))) < 0) {
		fprintf(stderr, "plan_dump: %s\n", error_message());
		return 2;
	}
	while (getline(&line, &cap, stdin) > 0) {
		struct asset a;
		struct plan_result r;

		if (strncmp(line, "exists ", 7) == 0) {
			char hex[4096];
			long long size;
			char *path;

			if (sscanf(line + 7, "%4095s %lld", hex, &size) != 2) {
				return 2;
			}
			path = unhex(hex);
			add_file(path, size);
			free(path);
			continue;
		}
		if (plan_progress_stop(&ctx, &prog)) {
			printf("stopped\n");
			break;
		}
		parse_asset(line, &a);
		rc = plan_asset(&ctx, &a, &r);
		if (rc < 0) {
			fprintf(stderr, "plan_dump: %s\n", error_message());
			return 1;
		}
		plan_progress_update(&ctx, &prog, &r);
		for (size_t i = 0; i < r.n; i++) {
			const struct plan_item *it = &r.items[i];

			if (it->decision == PLAN_SKIP_EXISTS) {
				continue;
			}
			add_file(it->path, it->size);
			print_hex(it->path);
			printf(" %lld %lld %s\n", (long long)it->size, (long long)it->mtime,
				plan_decision_name(it->decision));
		}
		plan_result_release(&r);
		asset_release(&a);
	}
	free(line);
	for (size_t i = 0; i < nfiles; i++) {
		free(files[i].path);
	}
	free(files);
	plan_ctx_release(&ctx);
	config_release(&cfg);
	free(cfg.args); /* the argv array config_resolve made (its strings are borrowed) */
	return 0;
}
