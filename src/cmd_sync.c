/*
 * icpd sync: the glue.  config → session (auth_ensure_session, never
 * prompting without a terminal) → CloudKit listing → the sync engine
 * (plan, download, commit, state) → report.  Test switches are read here,
 * at the CLI, so nothing below calls getenv().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icpd/auth.h"
#include "icpd/cloudkit.h"
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/http.h"
#include "icpd/immich.h"
#include "icpd/log.h"
#include "icpd/notify.h"
#include "icpd/secret.h"
#include "icpd/session.h"
#include "icpd/state.h"
#include "icpd/sync.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define SYNC_LOCK_WAIT 30

struct listing {
	struct cloudkit *ck;
	struct cloudkit_query *it;
	bool incremental;
	const struct config *cfg;
	size_t album;          /* next index into cfg->albums */
};

struct revalidate_ctx {
	struct config *cfg;
	struct http_client *http;
};

static int revalidate(void *ctx, struct session *s)
{
	struct revalidate_ctx *r = ctx;

	log_info("the session expired during the run; validating it again");
	return auth_ensure_session(r->cfg, s, r->http, AUTH_UNATTENDED);
}

/* Open the listing of the next album (or the whole library). */
static int open_next(struct listing *l)
{
	const struct strlist *albums = &l->cfg->albums;
	int rc;

	cloudkit_query_free(l->it);
	l->it = NULL;
	if (albums->n == 0) {
		if (l->album > 0) {
			return ICPD_ITEROVER;
		}
		l->album = 1;
		return cloudkit_query_new(&l->it, l->ck, NULL);
	}
	if (l->album >= albums->n) {
		return ICPD_ITEROVER;
	}
	rc = cloudkit_query_new(&l->it, l->ck, albums->items[l->album]);
	if (rc == 0) {
		log_info("listing album '%s'", albums->items[l->album]);
	}
	l->album++;
	return rc;
}

static int listing_next(void *ctx, struct asset *out)
{
	struct listing *l = ctx;
	int rc;

	for (;;) {
		if (!l->it) {
			rc = open_next(l);
			if (rc) {
				return rc;
			}
		}
		if (l->incremental) {
			enum cloudkit_change change;

			rc = cloudkit_query_next_change(out, &change, l->it);
		} else {
			rc = cloudkit_query_next(out, l->it);
		}
		if (rc != ICPD_ITEROVER || l->incremental) {
			return rc;
		}
		/* this album is done: on to the next */
		cloudkit_query_free(l->it);
		l->it = NULL;
	}
}

/* Download URLs expire about an hour after the listing: fresh ones by
 * records/lookup in the library being listed. */
static int listing_refresh(void *ctx, const struct asset *const *assets,
	const enum asset_size *slots, size_t n, char **urls)
{
	struct listing *l = ctx;

	return cloudkit_refresh_urls(l->ck, assets, slots, n, urls);
}

/*
 * Sync tokens live in the state database, scoped by a fingerprint of the
 * directory and of every option that changes which files a listing
 * yields: a token earned for one tree says nothing about another.
 */
struct token_scope {
	struct state *st;
	char prefix[24];
	bool forget;   /* act as if none were stored: a full listing earns new ones */
};

static char *scoped(const struct token_scope *t, const char *key)
{
	return xasprintf("%s/%s", t->prefix, key);
}

static int token_get(void *ctx, const char *key, char **out)
{
	struct token_scope *t = ctx;
	char *k;
	int rc;

	if (t->forget) {
		*out = NULL;
		return 0;
	}
	k = scoped(t, key);
	rc = state_token_get(t->st, k, out);

	free(k);
	return rc;
}

static int token_put(void *ctx, const char *key, const char *token)
{
	struct token_scope *t = ctx;
	char *k = scoped(t, key);
	int rc = state_token_set(t->st, k, token);

	free(k);
	return rc;
}

static void fnv(uint64_t *h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : "(null)"); *p; p++) {
		*h ^= *p;
		*h *= 1099511628211ULL;
	}
	*h ^= 0xff;
	*h *= 1099511628211ULL;
}

static void token_prefix(const struct config *cfg, char out[24])
{
	uint64_t h = 1469598103934665603ULL;
	char num[160];

	fnv(&h, cfg->directory);
	fnv(&h, cfg->library);
	fnv(&h, cfg->folder_structure);
	for (size_t i = 0; i < cfg->sizes.n; i++) {
		fnv(&h, cfg->sizes.items[i]);
	}
	snprintf(num, sizeof(num), "%d%d%d%d%d%d%d%d%d%d%d%d%d|%s|%s", cfg->force_size,
		(int)cfg->live_photo_size, (int)cfg->live_photo_mov_filename_policy,
		(int)cfg->align_raw, cfg->skip_videos, cfg->skip_photos, cfg->skip_live_photos,
		cfg->keep_unicode_in_filenames, (int)cfg->file_match_policy, cfg->use_os_locale,
		cfg->set_exif_datetime, cfg->xmp_sidecar, 0,
		cfg->skip_created_before ? cfg->skip_created_before : "",
		cfg->skip_created_after ? cfg->skip_created_after : "");
	fnv(&h, num);
	snprintf(out, 24, "%016llx", (unsigned long long)h);
}

/* Every file recorded under the directory is still there with its size;
 * otherwise an incremental listing would not bring it back. */
struct intact {
	const char *dir;
	size_t dirlen;
	long present, broken;
};

static int check_intact(const struct state_file *f, void *ud)
{
	struct intact *in = ud;
	struct stat st;

	if (strncmp(f->path, in->dir, in->dirlen) != 0 || f->path[in->dirlen] != '/') {
		return 0;
	}
	if (f->status == STATE_FAILED || stat(f->path, &st) != 0 ||
		(int64_t)st.st_size != f->size) {
		in->broken++;
	} else {
		in->present++;
	}
	return 0;
}

static int tree_intact(struct state *st, const char *dir, bool *ok)
{
	struct intact in = { dir, strlen(dir), 0, 0 };
	int rc;

	while (in.dirlen > 1 && dir[in.dirlen - 1] == '/') {
		in.dirlen--;
	}
	rc = state_file_foreach(st, check_intact, &in);
	*ok = rc == 0 && in.present > 0 && in.broken == 0;
	if (rc == 0 && in.broken) {
		log_info("%ld recorded files are missing or changed: listing everything", in.broken);
	}
	return rc;
}

static long env_long(const char *name)
{
	const char *v = getenv(name);
	long n = 0;

	if (v && parse_long(v, 0, 1000000000L, &n) != 0) {
		n = 0;
	}
	return n;
}

static int check_state_location(const struct config *cfg, const char *dbpath)
{
	if (fsutil_is_inside(dbpath, cfg->directory) ||
		fsutil_is_inside(cfg->cookie_directory, cfg->directory)) {
		error_set(ICPD_EUSAGE, "the cookie directory '%s' is inside the photo directory '%s'",
			cfg->cookie_directory, cfg->directory);
		error_hint("keep --cookie-directory outside --directory: Immich would see the "
			   "session and the state database");
		return ICPD_EUSAGE;
	}
	return 0;
}

/*
 * Deleting in iCloud is opt-in and never combined with deleting locally:
 * icloudpd refuses --auto-delete with --delete-after-download, and
 * --delete-after-download with a non-zero --keep-icloud-recent-days.  We
 * also refuse --auto-delete with --keep-icloud-recent-days, which icloudpd
 * allows: the assets this run moves to Recently Deleted would then lose
 * their local copies too.
 */
static int check_delete_options(const struct config *cfg)
{
	bool keep = cfg->keep_icloud_recent_days >= 0;

	if (cfg->auto_delete && (cfg->delete_after_download || keep)) {
		error_set(ICPD_EUSAGE, "--auto-delete cannot be combined with %s",
			cfg->delete_after_download ? "--delete-after-download" :
						     "--keep-icloud-recent-days");
		error_hint("the assets moved to Recently Deleted in iCloud would then be deleted "
			   "locally as well; choose one");
		return ICPD_EUSAGE;
	}
	if (cfg->delete_after_download && cfg->keep_icloud_recent_days > 0) {
		error_set(ICPD_EUSAGE,
			"--keep-icloud-recent-days and --delete-after-download cannot be used together");
		error_hint("--keep-icloud-recent-days N alone deletes what is downloaded and older "
			   "than N days");
		return ICPD_EUSAGE;
	}
	return 0;
}

/* sync_source.trash over CloudKit records/modify. */
static int listing_trash(void *ctx, struct sync_trash_item *items, size_t n)
{
	struct listing *l = ctx;
	struct cloudkit_trash_item *t = xcalloc(n ? n : 1, sizeof(*t));
	int rc;

	for (size_t i = 0; i < n; i++) {
		t[i].asset_id = items[i].asset_id;
		t[i].change_tag = items[i].change_tag;
	}
	rc = cloudkit_trash(l->ck, t, n);
	for (size_t i = 0; i < n; i++) {
		items[i].result = t[i].result;
		memcpy(items[i].why, t[i].why, sizeof(items[i].why));
	}
	free(t);
	return rc;
}

/*
 * ops: after the run, the Immich scan (only when files were added or
 * removed) and the notification.  Both only warn; rc stays what it is.
 */
static void ops_after_sync(const struct config *cfg, int rc, const struct sync_report *rep,
	time_t trust_expires)
{
	struct notify_figures nf = { .listed = rep->listed, .downloaded = rep->downloaded,
		.failed = rep->failed, .bytes = rep->bytes, .trust_expires = trust_expires };

	if (cfg->dry_run || cfg->only_print_filenames) {
		return;
	}
	if ((rc == 0 || rc == ICPD_EPARTIAL) && (rep->downloaded > 0 || rep->deleted > 0)) {
		immich_scan(cfg);
	}
	notify_sync_result(cfg, rc, &nf);
}

int cmd_sync(struct config *cfg)
{
	struct session s;
	struct http_client *http = NULL;
	struct http_options ho = { .ca_file = cfg->ca_file };
	struct cloudkit_options co = { 0 };
	struct token_scope scope = { 0 };
	struct cloudkit_tokens tokens = { token_get, token_put, &scope };
	struct revalidate_ctx rv = { cfg, NULL };
	struct listing l = { 0 };
	struct sync_source src = { listing_next, listing_refresh, listing_trash, &l };
	struct sync_options so = { 0 };
	struct sync_report rep;
	struct state *st = NULL;
	char *dbpath = NULL;
	bool opened = false;
	bool full = true;
	int rc;

	/* --auth-only (icloudpd compatible): sign in, save, exit. */
	if (cfg->auth_only) {
		return auth_sign_in_only(cfg, AUTH_UNATTENDED);
	}
	memset(&s, 0, sizeof(s));
	s.lock_fd = -1;
	sync_report_init(&rep);
	if (!cfg->username || !*cfg->username) {
		error_set(ICPD_EUSAGE, "no Apple ID given");
		error_hint("pass -u/--username or set ICPD_USERNAME");
		return ICPD_EUSAGE;
	}
	if (!cfg->directory || !*cfg->directory) {
		error_set(ICPD_EUSAGE, "no directory to download into");
		error_hint("pass -d/--directory DIR");
		return ICPD_EUSAGE;
	}
	rc = check_delete_options(cfg);
	if (rc) {
		return rc;
	}
	dbpath = state_path_for(cfg->cookie_directory, cfg->username);
	rc = check_state_location(cfg, dbpath);
	if (rc) {
		goto done;
	}
	rc = secret_init();
	if (rc == 0) {
		rc = http_global_init();
	}
	if (rc == 0) {
		rc = http_client_new(&http, &ho);
	}
	if (rc) {
		goto done;
	}
	rc = session_open(&s, cfg->cookie_directory, cfg->username, cfg->secret_key_file,
		SYNC_LOCK_WAIT);
	if (rc) {
		goto done;
	}
	opened = true;
	rc = auth_ensure_session(cfg, &s, http, AUTH_UNATTENDED);
	if (rc) {
		goto done;
	}
	notify_check_trust(cfg, s.trust_expires, 0); /* ops: auth_expiring */
	rc = state_open(&st, dbpath);
	if (rc) {
		goto done;
	}
	scope.st = st;
	token_prefix(cfg, scope.prefix);
	rv.http = http;
	co.ca_file = cfg->ca_file;
	co.parallelism = (int)cfg->listing_parallelism;
	co.revalidate = revalidate;
	co.revalidate_ctx = &rv;
	rc = cloudkit_new(&l.ck, &s, &co);
	if (rc == 0) {
		rc = cloudkit_select_library(l.ck, cfg->library ? cfg->library : "PrimarySync");
	}
	if (rc) {
		goto done;
	}
	l.cfg = cfg;
	/* Sync tokens only for the plain whole-library sync: an album, a
	 * --recent/--until-found window or a dry run must see the full listing;
	 * so must --keep-icloud-recent-days, which acts on assets downloaded
	 * in earlier runs once they are old enough. */
	if (cfg->albums.n == 0 && cfg->recent == 0 && cfg->until_found == 0 && !cfg->dry_run &&
		!cfg->only_print_filenames && cfg->keep_icloud_recent_days < 0) {
		bool intact = false;

		rc = tree_intact(st, cfg->directory, &intact);
		if (rc) {
			goto done;
		}
		scope.forget = !intact;
		rc = cloudkit_query_new_incremental(&l.it, l.ck, &tokens, &full);
		if (rc) {
			goto done;
		}
		l.incremental = true;
		l.album = 1;
		log_info("%s listing", full ? "full" : "incremental");
	}
	so.stop_after_step = env_long("ICPD_TEST_STOP_AFTER_STEP");
	so.progress_tty = isatty(STDERR_FILENO) && !cfg->no_progress_bar &&
			  cfg->log_format != LOG_FORMAT_JSON && !cfg->only_print_filenames;
	{
		long ms = env_long("ICPD_TEST_BACKOFF_MS");

		so.backoff = ms > 0 ? (double)ms / 1000.0 : 0;
		ms = env_long("ICPD_TEST_URL_MAX_AGE_MS");
		so.url_max_age = ms > 0 ? (double)ms / 1000.0 : 0;
	}
	rc = sync_run(cfg, st, &src, &so, &rep);
	if (rc == 0 && l.incremental) {
		/* only a complete run moves the tokens on: a failed asset must be
		 * listed again next time */
		rc = cloudkit_query_commit_tokens(l.it);
	}
	if ((rc == 0 || rc == ICPD_EPARTIAL) && cfg->auto_delete && !cfg->only_print_filenames) {
		struct listing dl = { 0 };
		struct sync_source dsrc = { listing_next, NULL, NULL, &dl };
		struct strlist none = { 0 };
		struct config dcfg = *cfg;
		int rc2;

		/* the Recently Deleted smart folder, through the same iterator */
		dcfg.albums = none;
		strlist_add(&dcfg.albums, "Recently Deleted");
		dl.ck = l.ck;
		dl.cfg = &dcfg;
		rc2 = sync_auto_delete(cfg, st, &dsrc, &rep);
		cloudkit_query_free(dl.it);
		strlist_clear(&dcfg.albums);
		if (rc2) {
			rc = rc2;
		} else {
			log_info("--auto-delete: %lld local files removed", (long long)rep.deleted);
		}
	}
	log_debug("%ld CloudKit requests", cloudkit_request_count(l.ck));
done:
	if (cfg->report_json && !cfg->dry_run) {
		int rc2;

		rep.result = rc;
		rc2 = sync_report_write_json(&rep, cfg->report_json);
		if (rc2 && !rc) {
			rc = rc2;
		}
	}
	ops_after_sync(cfg, rc, &rep, opened ? s.trust_expires : 0);
	sync_report_release(&rep);
	cloudkit_query_free(l.it);
	cloudkit_free(l.ck);
	state_close(st);
	if (opened) {
		session_close(&s);
	}
	http_client_free(http);
	free(dbpath);
	return rc;
}
