/*
 * icpd list libraries|albums — with counts; a table on a terminal, JSON
 * with --json or when stdout is not a terminal.
 *
 * Also, for machines and tests:
 *   icpd list assets [ALBUM]     one JSON object per asset and line
 *   icpd list changes TOKENFILE  incremental listing with the sync tokens
 *                                kept in TOKENFILE (state.c will own them)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "icpd/asset.h"
#include "icpd/auth.h"
#include "icpd/cloudkit.h"
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/secret.h"
#include "icpd/session.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define LIST_LOCK_WAIT 30

/* Sign-in state for the run; the 421 re-validation uses it again. */
struct signin {
	struct config *cfg;
	struct session s;
	struct http_client *http;
};

/*
 * The session: the one 'icpd auth' saved, validated by auth_ensure_session
 * (never prompting without a terminal).
 */
static int signin_open(struct signin *si, struct config *cfg)
{
	struct http_options ho = { .ca_file = cfg->ca_file };
	int err;

	memset(si, 0, sizeof(*si));
	si->cfg = cfg;
	si->s.lock_fd = -1;
	if (!cfg->username || !*cfg->username) {
		error_set(ICPD_EUSAGE, "no Apple ID given");
		error_hint("pass -u/--username or set ICPD_USERNAME");
		return ICPD_EUSAGE;
	}
	err = secret_init();
	if (!err) {
		err = http_client_new(&si->http, &ho);
	}
	if (!err) {
		err = session_open(&si->s, cfg->cookie_directory, cfg->username, cfg->secret_key_file,
			LIST_LOCK_WAIT);
	}
	if (!err) {
		err = auth_ensure_session(cfg, &si->s, si->http, AUTH_UNATTENDED);
	}
	if (!err) {
		err = session_store_cookies(&si->s, si->http);
	}
	return err;
}

/* 421 from CloudKit: validate the session once more (cloudkit_options). */
static int signin_revalidate(void *ctx, struct session *s)
{
	struct signin *si = ctx;
	int err;

	err = auth_ensure_session(si->cfg, s, si->http, AUTH_UNATTENDED);
	if (!err) {
		err = session_store_cookies(s, si->http);
	}
	return err;
}

/* session_close is a no-op on a session that session_open never opened
 * (or closed again on failure). */
static void signin_close(struct signin *si)
{
	session_close(&si->s);
	http_client_free(si->http);
}

/* Left-aligned in width columns, counting UTF-8 characters, not bytes. */
static void print_padded(const char *s, int width)
{
	int cols = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		cols += (*p & 0xC0) != 0x80;
	}
	fputs(s, stdout);
	for (; cols < width; cols++) {
		putchar(' ');
	}
	putchar(' ');
}

static void print_count(int64_t c)
{
	if (c < 0) {
		printf("%10s", "-");
	} else {
		printf("%10lld", (long long)c);
	}
}

static int list_libraries(struct cloudkit *ck, bool json)
{
	struct cloudkit_library *libs = NULL;
	size_t n = 0;
	int err = cloudkit_libraries(ck, true, &libs, &n);

	if (err < 0) {
		return err;
	}
	if (json) {
		char *s = cloudkit_libraries_json(libs, n);

		printf("%s\n", s);
		free(s);
	} else {
		printf("%-50s %-8s %10s\n", "LIBRARY", "DATABASE", "ASSETS");
		for (size_t i = 0; i < n; i++) {
			print_padded(libs[i].name, 50);
			printf("%-8s ", libs[i].shared_db ? "shared" : "private");
			print_count(libs[i].count);
			printf("\n");
		}
	}
	cloudkit_libraries_free(libs, n);
	return 0;
}

static int list_albums(struct cloudkit *ck, bool json)
{
	struct cloudkit_album *albums = NULL;
	size_t n = 0;
	int err = cloudkit_albums(ck, true, &albums, &n);

	if (err < 0) {
		return err;
	}
	if (json) {
		char *s = cloudkit_albums_json(albums, n);

		printf("%s\n", s);
		free(s);
	} else {
		static const char *const kinds[] = { "album", "folder", "smart" };

		printf("%-40s %-7s %10s\n", "ALBUM", "KIND", "ASSETS");
		for (size_t i = 0; i < n; i++) {
			const char *indent = albums[i].parent_id ? "  " : "";

			fputs(indent, stdout);
			print_padded(albums[i].name, 40 - (int)strlen(indent));
			printf("%-7s ", kinds[albums[i].kind]);
			print_count(albums[i].count);
			printf("\n");
		}
	}
	cloudkit_albums_free(albums, n);
	return 0;
}

static int list_assets(struct cloudkit *ck, const char *album)
{
	struct cloudkit_query *it = NULL;
	struct asset a;
	long n = 0;
	int err = cloudkit_query_new(&it, ck, album);

	while (err == 0 && (err = cloudkit_query_next(&a, it)) == 0) {
		char *s = cloudkit_asset_json(&a, -1);

		printf("%s\n", s);
		free(s);
		asset_release(&a);
		n++;
	}
	if (err == ICPD_ITEROVER) {
		err = 0;
		log_info("listed %ld assets (%ld records skipped) with %ld requests", n,
			cloudkit_query_skipped(it), cloudkit_request_count(ck));
	}
	cloudkit_query_free(it);
	return err;
}

static int list_changes(struct cloudkit *ck, const char *library, const char *token_file)
{
	struct cloudkit_tokens tokens = { 0 };
	struct cloudkit_query *it = NULL;
	struct asset a;
	enum cloudkit_change c;
	bool full = false; /* at the start; a rejected token turns it full later */
	long n = 0;
	int err = cloudkit_tokens_file_open(&tokens, token_file);

	if (err < 0) {
		return err;
	}
	err = cloudkit_select_library_cached(ck, library, &tokens);
	if (err == 0) {
		err = cloudkit_query_new_incremental(&it, ck, &tokens, &full);
	}
	while (err == 0 && (err = cloudkit_query_next_change(&a, &c, it)) == 0) {
		char *s = cloudkit_asset_json(&a, (int)c);

		printf("%s\n", s);
		free(s);
		asset_release(&a);
		n++;
	}
	if (err == ICPD_ITEROVER) {
		fflush(stdout);
		err = cloudkit_query_commit_tokens(it);
		log_info("%s listing: %ld assets (%ld records skipped) with %ld requests",
			cloudkit_query_is_full(it) ? "full" : "incremental", n, cloudkit_query_skipped(it),
			cloudkit_request_count(ck));
	}
	cloudkit_query_free(it);
	cloudkit_tokens_file_close(&tokens);
	return err;
}

int cmd_list(struct config *cfg)
{
	struct signin si;
	struct cloudkit *ck = NULL;
	struct cloudkit_options opts = { 0 };
	const char *what = cfg->nargs > 0 ? cfg->args[0] : NULL;
	bool json = cfg->json || !isatty(STDOUT_FILENO);
	int err;

	if (!what || (strcmp(what, "libraries") != 0 && strcmp(what, "albums") != 0 &&
			     strcmp(what, "assets") != 0 && strcmp(what, "changes") != 0)) {
		error_set(ICPD_EUSAGE, "'icpd list' needs what to list: albums or libraries");
		error_hint("run 'icpd list albums' or 'icpd list libraries'");
		return ICPD_EUSAGE;
	}
	if (strcmp(what, "changes") == 0 && cfg->nargs < 2) {
		return error_set(ICPD_EUSAGE, "'icpd list changes' needs a token file");
	}
	err = signin_open(&si, cfg);
	if (err < 0) {
		goto done;
	}
	opts.ca_file = cfg->ca_file;
	opts.parallelism = (int)cfg->listing_parallelism;
	opts.revalidate = signin_revalidate;
	opts.revalidate_ctx = &si;
	err = cloudkit_new(&ck, &si.s, &opts);
	if (err < 0) {
		goto done;
	}
	if (strcmp(what, "libraries") == 0) {
		err = list_libraries(ck, json);
		goto done;
	}
	if (strcmp(what, "changes") == 0) {
		err = list_changes(ck, cfg->library, cfg->args[1]);
		goto done;
	}
	err = cloudkit_select_library(ck, cfg->library);
	if (err < 0) {
		goto done;
	}
	if (strcmp(what, "albums") == 0) {
		err = list_albums(ck, json);
	} else {
		err = list_assets(ck, cfg->nargs > 1 ? cfg->args[1] : NULL);
	}
done:
	cloudkit_free(ck);
	signin_close(&si);
	return err;
}
