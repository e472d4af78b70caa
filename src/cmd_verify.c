/*
 * icpd verify [--checksums]: every file the state database recorded is
 * there with its size (and, with --checksums, the SHA-256 of what was
 * written).  Files adopted from an icloudpd tree have no recorded hash;
 * they are checked by size and counted as such.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/log.h"
#include "icpd/state.h"
#include "icpd/util.h"
#include "icpd/banned.h"

struct verify {
	const struct config *cfg;
	size_t dirlen;
	long checked, missing, wrong_size, wrong_hash, no_hash, failed_rows;
};

static int check_one(const struct state_file *f, void *ud)
{
	struct verify *v = ud;
	struct stat st;
	char sha[65];

	if (f->status == STATE_FAILED) {
		v->failed_rows++;
		return 0;
	}
	if (v->cfg->directory && (strncmp(f->path, v->cfg->directory, v->dirlen) != 0 ||
					 f->path[v->dirlen] != '/')) {
		return 0;
	}
	v->checked++;
	if (stat(f->path, &st) != 0 || !S_ISREG(st.st_mode)) {
		v->missing++;
		printf("missing: %s\n", f->path);
		return 0;
	}
	if ((int64_t)st.st_size != f->size) {
		v->wrong_size++;
		printf("size: %s has %lld bytes, recorded %lld\n", f->path, (long long)st.st_size,
			(long long)f->size);
		return 0;
	}
	if (!v->cfg->checksums) {
		return 0;
	}
	if (!f->sha256[0]) {
		v->no_hash++;
		return 0;
	}
	if (fsutil_sha256_file(f->path, sha) != 0) {
		v->missing++;
		printf("unreadable: %s: %s\n", f->path, error_message());
		error_clear();
		return 0;
	}
	if (strcmp(sha, f->sha256) != 0) {
		v->wrong_hash++;
		printf("checksum: %s differs from what was written\n", f->path);
	}
	return 0;
}

int cmd_verify(struct config *cfg)
{
	struct verify v = { 0 };
	struct state *st = NULL;
	char *path = NULL;
	long bad;
	int rc;

	v.cfg = cfg;
	if (cfg->directory) {
		size_t n = strlen(cfg->directory);

		while (n > 1 && cfg->directory[n - 1] == '/') {
			cfg->directory[--n] = '\0';
		}
		v.dirlen = n;
	}
	rc = state_find(cfg->cookie_directory, cfg->username, &path);
	if (rc == ICPD_ENOTFOUND) {
		rc = error_set(ICPD_ENOTFOUND, "no state database in '%s'", cfg->cookie_directory);
		error_hint("run 'icpd sync' first, or give the --cookie-directory it used");
		goto done;
	}
	if (rc) {
		goto done;
	}
	rc = state_open(&st, path);
	if (rc == 0) {
		rc = state_file_foreach(st, check_one, &v);
	}
	if (rc) {
		goto done;
	}
	bad = v.missing + v.wrong_size + v.wrong_hash;
	if (cfg->json) {
		printf("{\"database\": \"");
		for (const char *c = path; *c; c++) {
			if (*c == '"' || *c == '\\') {
				printf("\\%c", *c);
			} else if ((unsigned char)*c < 0x20) {
				printf("\\u%04x", (unsigned char)*c);
			} else {
				putchar(*c);
			}
		}
		printf("\", \"checked\": %ld, \"missing\": %ld, \"wrong_size\": %ld, "
		       "\"wrong_checksum\": %ld, \"without_checksum\": %ld, \"failed_downloads\": %ld}\n",
			v.checked, v.missing, v.wrong_size, v.wrong_hash, v.no_hash, v.failed_rows);
	} else {
		printf("%ld files checked%s: %ld missing, %ld with a wrong size", v.checked,
			cfg->checksums ? " with checksums" : "", v.missing, v.wrong_size);
		if (cfg->checksums) {
			printf(", %ld with a wrong checksum, %ld adopted without a checksum", v.wrong_hash,
				v.no_hash);
		}
		printf("; %ld failed downloads recorded\n", v.failed_rows);
	}
	if (bad) {
		rc = error_set(ICPD_EPARTIAL, "%ld of %ld recorded files failed verification", bad,
			v.checked);
		error_hint("run 'icpd sync' to download them again");
	}
done:
	state_close(st);
	free(path);
	return rc;
}
