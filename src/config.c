/*
 * Option definitions and configuration resolution.  One table describes
 * every option once (name, kind, field, help); each command names the
 * options it takes.  Values are applied source by source, lowest first:
 * defaults, config file, ICPD_* environment, command line.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define OFF(f) offsetof(struct config, f)

static const char *const domain_choices[] = { "com", "cn", NULL };
static const char *const match_choices[] = { "name-size-dedup-with-suffix", "name-id7", NULL };
static const char *const mov_choices[] = { "suffix", "original", NULL };
static const char *const raw_choices[] = { "as-is", "original", "alternative", NULL };
static const char *const live_size_choices[] = { "original", "medium", "thumb", NULL };
static const char *const level_choices[] = { "debug", "info", "warn", "error", NULL };
static const char *const format_choices[] = { "auto", "text", "json", NULL };
static const char *const size_choices[] = { "original", "medium", "thumb", "adjusted",
	"alternative", NULL };

/* Alphabetised by name. */
const struct opt_def config_options[] = {
	{ "album", 'a', OPT_LIST, OFF(albums), "NAME",
		"download only this album (repeatable); default: the whole library", NULL, 0, 0, 0 },
	{ "align-raw", 0, OPT_ENUM, OFF(align_raw), "POLICY",
		"for RAW+JPEG pairs: as-is, original (RAW as original) or alternative", raw_choices,
		0, 0, 0 },
	{ "auth-endpoint", 0, OPT_STR, OFF(auth_endpoint), "URL",
		"sign-in service base (default from --domain)", NULL, 0, 0, OPTF_ADVANCED },
	{ "auth-expiring-days", 0, OPT_INT, OFF(auth_expiring_days), "N",
		"warn and notify when trust expires within N days (default 7)", NULL, 0, 365, 0 },
	{ "auth-only", 0, OPT_FLAG, OFF(auth_only), NULL,
		"sign in, save the session and exit (icloudpd compatible)", NULL, 0, 0, 0 },
	{ "auth-root", 0, OPT_STR, OFF(auth_root), "URL",
		"sign-in origin (default from --domain)", NULL, 0, 0, OPTF_ADVANCED },
	{ "auto-delete", 0, OPT_FLAG, OFF(auto_delete), NULL,
		"delete local files whose asset is in Recently Deleted (off by default)", NULL, 0, 0,
		0 },
	{ "bandwidth-limit", 0, OPT_STR, OFF(bandwidth_limit), "RATE",
		"cap download rate, e.g. 10M (bytes per second)", NULL, 0, 0, 0 },
	{ "ca-file", 0, OPT_STR, OFF(ca_file), "FILE",
		"extra CA bundle to trust (TLS verification is always on)", NULL, 0, 0,
		OPTF_ADVANCED },
	{ "checksums", 0, OPT_FLAG, OFF(checksums), NULL,
		"verify: also compare SHA-256 of every file", NULL, 0, 0, 0 },
	{ "config", 0, OPT_STR, OFF(config_file), "FILE",
		"config file (default $XDG_CONFIG_HOME/icpd/config)", NULL, 0, 0,
		OPTF_NOFILE },
	{ "cookie-directory", 0, OPT_STR, OFF(cookie_directory), "DIR",
		"where the session, state DB and reports live (default ~/.config/icpd)", NULL, 0, 0,
		0 },
	{ "delete-after-download", 0, OPT_FLAG, OFF(delete_after_download), NULL,
		"move each asset this run downloaded to Recently Deleted in iCloud, once all its "
		"files are verified (off by default)", NULL, 0, 0, 0 },
	{ "dir-mode", 0, OPT_MODE, OFF(dir_mode), "MODE",
		"mode of created folders (default 0755)", NULL, 0, 07777, 0 },
	{ "directory", 'd', OPT_STR, OFF(directory), "DIR",
		"download into DIR", NULL, 0, 0, 0 },
	{ "domain", 0, OPT_ENUM, OFF(domain), "com|cn",
		"iCloud region: com (default) or cn (mainland China)", domain_choices, 0, 0, 0 },
	{ "dry-run", 0, OPT_FLAG, OFF(dry_run), NULL,
		"list what would be downloaded; change nothing", NULL, 0, 0, 0 },
	{ "file-match-policy", 0, OPT_ENUM, OFF(file_match_policy), "POLICY",
		"name-size-dedup-with-suffix (default) or name-id7", match_choices, 0, 0, 0 },
	{ "file-mode", 0, OPT_MODE, OFF(file_mode), "MODE",
		"mode of written files (default 0644)", NULL, 0, 07777, 0 },
	{ "folder-structure", 0, OPT_STR, OFF(folder_structure), "FORMAT",
		"folder layout, icloudpd syntax {:%Y/%m/%d} (default), strftime, or none", NULL, 0,
		0, 0 },
	{ "force-size", 0, OPT_FLAG, OFF(force_size), NULL,
		"skip an asset when the requested size is missing instead of taking the original",
		NULL, 0, 0, 0 },
	{ "home-endpoint", 0, OPT_STR, OFF(home_endpoint), "URL",
		"iCloud web home (default from --domain)", NULL, 0, 0, OPTF_ADVANCED },
	{ "immich-api-key-file", 0, OPT_STR, OFF(immich_api_key_file), "FILE",
		"file holding the Immich API key", NULL, 0, 0, 0 },
	{ "immich-library-id", 0, OPT_STR, OFF(immich_library_id), "ID",
		"Immich external library to rescan after new files", NULL, 0, 0, 0 },
	{ "immich-url", 0, OPT_STR, OFF(immich_url), "URL",
		"Immich server, e.g. http://immich-server:2283", NULL, 0, 0, 0 },
	{ "import-icloudpd", 0, OPT_STR, OFF(import_icloudpd), "DIR",
		"import an icloudpd cookie directory's session", NULL, 0, 0, 0 },
	{ "json", 0, OPT_FLAG, OFF(json), NULL,
		"machine-readable output", NULL, 0, 0, 0 },
	{ "keep-icloud-recent-days", 0, OPT_INT, OFF(keep_icloud_recent_days), "N",
		"move assets at least N days old whose files are all here to Recently Deleted in "
		"iCloud; 0 = all (off by default)", NULL, 0, 100000,
		0 },
	{ "keep-unicode-in-filenames", 0, OPT_FLAG, OFF(keep_unicode_in_filenames), NULL,
		"keep non-ASCII characters in file names", NULL, 0, 0, 0 },
	{ "library", 0, OPT_STR, OFF(library), "NAME",
		"library (zone) to download, default PrimarySync", NULL, 0, 0, 0 },
	{ "listing-parallelism", 0, OPT_INT, OFF(listing_parallelism), "N",
		"listing pages fetched at once (default 4)", NULL, 1, 32, OPTF_ADVANCED },
	{ "live-photo-mov-filename-policy", 0, OPT_ENUM, OFF(live_photo_mov_filename_policy),
		"POLICY", "suffix (IMG_1_HEVC.MOV, default) or original (IMG_1.MOV)", mov_choices,
		0, 0, 0 },
	{ "live-photo-size", 0, OPT_ENUM, OFF(live_photo_size), "SIZE",
		"size of live-photo videos: original (default), medium, thumb", live_size_choices, 0,
		0, 0 },
	{ "log-format", 0, OPT_ENUM, OFF(log_format), "FORMAT",
		"auto (default: text on a terminal, records otherwise), text or json", format_choices,
		0, 0, 0 },
	{ "log-level", 0, OPT_ENUM, OFF(log_level), "LEVEL",
		"debug, info (default), warn or error", level_choices, 0, 0, 0 },
	{ "no-progress-bar", 0, OPT_FLAG, OFF(no_progress_bar), NULL,
		"no progress bar even on a terminal", NULL, 0, 0, 0 },
	{ "notify-command", 0, OPT_STR, OFF(notify_command), "CMD",
		"run CMD on events (ICPD_EVENT and ICPD_* in its environment)", NULL, 0, 0, 0 },
	{ "notify-url", 0, OPT_STR, OFF(notify_url), "URL",
		"POST a JSON event to URL (ntfy, Gotify, Apprise style)", NULL, 0, 0, 0 },
	{ "only-print-filenames", 0, OPT_FLAG, OFF(only_print_filenames), NULL,
		"print the paths that would be downloaded, nothing else", NULL, 0, 0, 0 },
	{ "password", 'p', OPT_STR, OFF(password), "PASSWORD",
		"password on the command line (visible to every user; prefer --password-file)",
		NULL, 0, 0, OPTF_SECRET | OPTF_NOENV | OPTF_NOFILE },
	{ "password-command", 0, OPT_STR, OFF(password_command), "CMD",
		"run CMD and read the password from its output", NULL, 0, 0, 0 },
	{ "password-file", 0, OPT_STR, OFF(password_file), "FILE",
		"read the password from FILE (e.g. a mounted Secret)", NULL, 0, 0, 0 },
	{ "recent", 0, OPT_INT, OFF(recent), "N",
		"only the N most recent assets", NULL, 0, 100000000, 0 },
	{ "report-json", 0, OPT_STR, OFF(report_json), "FILE",
		"write a JSON run report to FILE", NULL, 0, 0, 0 },
	{ "secret-key-file", 0, OPT_STR, OFF(secret_key_file), "FILE",
		"32-byte key sealing the session files (else one is made beside them)", NULL, 0, 0,
		0 },
	{ "set-exif-datetime", 0, OPT_FLAG, OFF(set_exif_datetime), NULL,
		"write DateTimeOriginal into JPEGs that lack it", NULL, 0, 0, 0 },
	{ "setup-endpoint", 0, OPT_STR, OFF(setup_endpoint), "URL",
		"account setup service base (default from --domain)", NULL, 0, 0, OPTF_ADVANCED },
	{ "size", 0, OPT_LIST, OFF(sizes), "SIZE",
		"original (default), medium, thumb, adjusted, alternative; repeatable", NULL, 0, 0,
		0 },
	{ "skip-created-after", 0, OPT_STR, OFF(skip_created_after), "DATE",
		"skip assets created after DATE (ISO date or Nd)", NULL, 0, 0, 0 },
	{ "skip-created-before", 0, OPT_STR, OFF(skip_created_before), "DATE",
		"skip assets created before DATE (ISO date or Nd)", NULL, 0, 0, 0 },
	{ "skip-live-photos", 0, OPT_FLAG, OFF(skip_live_photos), NULL,
		"do not download live-photo videos", NULL, 0, 0, 0 },
	{ "skip-photos", 0, OPT_FLAG, OFF(skip_photos), NULL,
		"do not download photos", NULL, 0, 0, 0 },
	{ "skip-videos", 0, OPT_FLAG, OFF(skip_videos), NULL,
		"do not download videos", NULL, 0, 0, 0 },
	{ "threads", 0, OPT_INT, OFF(threads), "N",
		"parallel downloads (default 8)", NULL, 1, 64, 0 },
	{ "until-found", 0, OPT_INT, OFF(until_found), "N",
		"stop after N consecutive already-downloaded assets", NULL, 0, 100000000, 0 },
	{ "use-os-locale", 0, OPT_FLAG, OFF(use_os_locale), NULL,
		"month and day names in folder names follow the OS locale", NULL, 0, 0, 0 },
	{ "username", 'u', OPT_STR, OFF(username), "APPLE_ID",
		"your Apple ID", NULL, 0, 0, 0 },
	{ "xmp-sidecar", 0, OPT_FLAG, OFF(xmp_sidecar), NULL,
		"write IMG_1234.HEIC.xmp beside each file", NULL, 0, 0, 0 },
	{ NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, 0 },
};

enum source { SRC_DEFAULT = 0, SRC_FILE, SRC_ENV, SRC_ARGV };

/* Which source last set each option (lists are replaced, not merged, when
 * a higher source sets them). */
static unsigned char set_by[ARRAY_SIZE(config_options)];

const struct opt_def *config_find_option(const char *name)
{
	for (const struct opt_def *o = config_options; o->name; o++) {
		if (strcmp(o->name, name) == 0) {
			return o;
		}
	}
	return NULL;
}

static const struct opt_def *find_short(char c)
{
	for (const struct opt_def *o = config_options; o->name; o++) {
		if (o->short_name == c) {
			return o;
		}
	}
	return NULL;
}

static bool allowed_has(const char *const *allowed, const char *name)
{
	for (; allowed && *allowed; allowed++) {
		if (strcmp(*allowed, name) == 0) {
			return true;
		}
	}
	return false;
}

void config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	memset(set_by, 0, sizeof(set_by));
	c->threads = 8;
	c->listing_parallelism = 4;
	c->keep_icloud_recent_days = -1;
	c->file_mode = 0644;
	c->dir_mode = 0755;
	c->log_level = LOG_INFO;
	c->log_format = LOG_FORMAT_AUTO;
	c->auth_expiring_days = 7;
}

void config_release(struct config *c)
{
	if (!c) {
		return;
	}
	for (const struct opt_def *o = config_options; o->name; o++) {
		void *field = (char *)c + o->offset;

		if (o->kind == OPT_STR) {
			char **p = field;

			if (*p && (o->flags & OPTF_SECRET)) {
				secure_zero(*p, strlen(*p));
			}
			free(*p);
			*p = NULL;
		} else if (o->kind == OPT_LIST) {
			strlist_clear(field);
		}
	}
	if (c->env_password) {
		secure_zero(c->env_password, strlen(c->env_password));
		free(c->env_password);
		c->env_password = NULL;
	}
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (str_eq_nocase(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (str_eq_nocase(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/*
 * Apply one value.  where describes the source for messages ("--size",
 * "ICPD_SIZE", "FILE:LINE: size").
 */
static int set_value(struct config *c, const struct opt_def *o, const char *value,
	enum source src, const char *where)
{
	void *field = (char *)c + o->offset;
	size_t idx = (size_t)(o - config_options);
	long n;

	switch (o->kind) {
	case OPT_FLAG:
		if (!value) {
			*(bool *)field = true;
		} else if (parse_bool(value, field)) {
			return error_set(ICPD_EUSAGE, "%s: '%s' is not a boolean (true or false)",
				where, value);
		}
		break;
	case OPT_STR:
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		break;
	case OPT_INT:
		if (parse_long(value, o->min, o->max, &n)) {
			return error_set(ICPD_EUSAGE, "%s: '%s' is not a number from %ld to %ld",
				where, value, o->min, o->max);
		}
		*(long *)field = n;
		break;
	case OPT_MODE: {
		char *end;

		errno = 0;
		n = strtol(value, &end, 8);
		if (errno || !*value || *end || n < 0 || n > o->max) {
			return error_set(ICPD_EUSAGE, "%s: '%s' is not an octal mode like 0644",
				where, value);
		}
		*(long *)field = n;
		break;
	}
	case OPT_ENUM:
		for (int i = 0; o->choices[i]; i++) {
			if (strcmp(o->choices[i], value) == 0) {
				*(int *)field = i;
				goto done;
			}
		}
		{
			char list[256] = "";
			size_t len = 0;

			for (int i = 0; o->choices[i]; i++) {
				len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
					i ? ", " : "", o->choices[i]);
				if (len >= sizeof(list)) {
					break;
				}
			}
			return error_set(ICPD_EUSAGE, "%s: '%s' is not one of %s", where, value,
				list);
		}
	case OPT_LIST:
		if (o->offset == OFF(sizes)) {
			bool ok = false;

			for (int i = 0; size_choices[i]; i++) {
				ok |= strcmp(size_choices[i], value) == 0;
			}
			if (!ok) {
				return error_set(ICPD_EUSAGE,
					"%s: '%s' is not one of original, medium, thumb, adjusted, "
					"alternative",
					where, value);
			}
		}
		if (set_by[idx] < src) {
			strlist_clear(field);
		}
		if (!strlist_contains(field, value)) {
			strlist_add(field, value);
		}
		break;
	}
done:
	set_by[idx] = (unsigned char)src;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s)) {
		s++;
	}
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1])) {
		*--e = '\0';
	}
	return s;
}

int config_load_file(struct config *c, const char *path, const char *const *allowed)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	int err = 0;

	if (!f) {
		return error_set(ICPD_EUSAGE, "cannot open config file '%s': %s", path,
			strerror(errno));
	}
	while (getline(&line, &cap, f) >= 0) {
		char *s, *eq, *key, *value, where[512];
		const struct opt_def *o;

		lineno++;
		s = trim(line);
		if (!*s || *s == '#' || *s == ';') {
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			err = error_set(ICPD_EUSAGE, "%s:%ld: expected 'key = value'", path,
				lineno);
			goto done;
		}
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		if (value[0] == '"' && strlen(value) >= 2 && value[strlen(value) - 1] == '"') {
			value[strlen(value) - 1] = '\0';
			value++;
		}
		snprintf(where, sizeof(where), "%s:%ld: %s", path, lineno, key);
		o = config_find_option(key);
		if (!o) {
			err = error_set(ICPD_EUSAGE, "%s:%ld: unknown key '%s'", path, lineno,
				key);
			error_hint("keys are the long option names; see 'icpd help'");
			goto done;
		}
		if (o->flags & OPTF_NOFILE) {
			err = error_set(ICPD_EUSAGE, "%s:%ld: '%s' is not allowed in a config file",
				path, lineno, key);
			if (strcmp(key, "password") == 0) {
				error_hint("use password-file or password-command instead");
			}
			goto done;
		}
		/* Check the value even for options this command ignores, so a
		 * bad file is reported by every command. */
		{
			struct config scratch;

			config_init(&scratch);
			err = set_value(&scratch, o, value, SRC_FILE, where);
			config_release(&scratch);
			if (err) {
				goto done;
			}
		}
		if (!allowed_has(allowed, key)) {
			continue;
		}
		err = set_value(c, o, value, SRC_FILE, where);
		if (err) {
			goto done;
		}
	}
done:
	free(line);
	fclose(f);
	return err;
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);

	for (; env && *env; env++) {
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') {
			return *env + n + 1;
		}
	}
	return NULL;
}

static void env_name(const struct opt_def *o, char *out, size_t size)
{
	size_t i = 0;
	const char *p = o->name;

	i += (size_t)snprintf(out, size, "ICPD_");
	for (; *p && i + 1 < size; p++) {
		out[i++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	}
	out[i] = '\0';
}

/* Scan argv for --config before anything else is applied. */
static const char *argv_config(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			break;
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			return argv[i + 1];
		}
		if (str_startswith(argv[i], "--config=")) {
			return argv[i] + strlen("--config=");
		}
	}
	return NULL;
}

static int parse_argv(struct config *c, const char *const *allowed, int argc, char **argv)
{
	c->args = xcalloc((size_t)argc + 1, sizeof(char *));
	c->nargs = 0;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		const struct opt_def *o = NULL;
		const char *value = NULL;
		char where[128];
		int err;

		if (strcmp(arg, "--") == 0) {
			while (++i < argc) {
				c->args[c->nargs++] = argv[i];
			}
			break;
		}
		if (str_startswith(arg, "--")) {
			const char *eq = strchr(arg, '=');
			char *name = eq ? xstrndup(arg + 2, (size_t)(eq - arg - 2))
					: xstrdup(arg + 2);

			o = config_find_option(name);
			free(name);
			if (eq) {
				value = eq + 1;
			}
		} else if (arg[0] == '-' && arg[1]) {
			o = find_short(arg[1]);
			if (o && arg[2]) {
				value = arg + 2;
			}
			if (o && o->kind == OPT_FLAG && arg[2]) {
				o = NULL;
			}
		} else {
			c->args[c->nargs++] = argv[i];
			continue;
		}
		if (!o) {
			return error_set(ICPD_EUSAGE, "unknown option '%s'", arg);
		}
		if (!allowed_has(allowed, o->name)) {
			return error_set(ICPD_EUSAGE, "option '--%s' does not apply to this command",
				o->name);
		}
		snprintf(where, sizeof(where), "--%s", o->name);
		if (o->kind == OPT_FLAG) {
			if (value) {
				return error_set(ICPD_EUSAGE, "option '--%s' takes no value", o->name);
			}
		} else if (!value) {
			if (i + 1 >= argc) {
				return error_set(ICPD_EUSAGE, "option '--%s' needs a value (%s)",
					o->name, o->argname);
			}
			value = argv[++i];
		}
		err = set_value(c, o, value, SRC_ARGV, where);
		if (err) {
			return err;
		}
	}
	return 0;
}

void config_apply_domain(struct config *c)
{
	bool cn = c->domain == DOMAIN_CN;

	if (!c->auth_root) {
		c->auth_root = xstrdup(cn ? "https://idmsa.apple.com.cn" : "https://idmsa.apple.com");
	}
	if (!c->auth_endpoint) {
		c->auth_endpoint = xasprintf("%s/appleauth/auth", c->auth_root);
	}
	if (!c->setup_endpoint) {
		c->setup_endpoint = xstrdup(cn ? "https://setup.icloud.com.cn/setup/ws/1"
					       : "https://setup.icloud.com/setup/ws/1");
	}
	if (!c->home_endpoint) {
		c->home_endpoint = xstrdup(cn ? "https://www.icloud.com.cn" : "https://www.icloud.com");
	}
}

static void apply_defaults_after(struct config *c, char **env)
{
	const char *home = env_get(env, "HOME");

	if (!c->cookie_directory) {
		c->cookie_directory = xasprintf("%s/.config/icpd", home ? home : ".");
	} else if (c->cookie_directory[0] == '~' && c->cookie_directory[1] == '/' && home) {
		char *p = xasprintf("%s%s", home, c->cookie_directory + 1);

		free(c->cookie_directory);
		c->cookie_directory = p;
	}
	if (!c->folder_structure) {
		c->folder_structure = xstrdup("{:%Y/%m/%d}");
	}
	if (!c->library) {
		c->library = xstrdup("PrimarySync");
	}
	if (c->sizes.n == 0) {
		strlist_add(&c->sizes, "original");
	}
	if (c->username) {
		/* icloudpd lower-cases the Apple ID; so do we (auth-protocol.md §4) */
		for (char *p = c->username; *p; p++) {
			*p = (char)tolower((unsigned char)*p);
		}
	}
	config_apply_domain(c);
}

int config_resolve(struct config *c, const char *const *allowed, int argc, char **argv,
	char **env)
{
	const char *file = argv_config(argc, argv);
	char *default_file = NULL;
	int err = 0;

	/* 1. config file */
	if (!file) {
		file = env_get(env, "ICPD_CONFIG");
	}
	if (!file) {
		const char *xdg = env_get(env, "XDG_CONFIG_HOME");
		const char *home = env_get(env, "HOME");
		FILE *f;

		if (xdg && *xdg) {
			default_file = xasprintf("%s/icpd/config", xdg);
		} else if (home) {
			default_file = xasprintf("%s/.config/icpd/config", home);
		}
		/* the default file is optional */
		if (default_file && (f = fopen(default_file, "r")) != NULL) {
			fclose(f);
			file = default_file;
		}
	}
	if (file) {
		err = config_load_file(c, file, allowed);
		if (err) {
			goto done;
		}
		free(c->config_file);
		c->config_file = xstrdup(file);
	}

	/* 2. environment */
	for (const struct opt_def *o = config_options; o->name; o++) {
		char name[96], where[128];
		const char *v;

		if (o->flags & OPTF_NOENV || !allowed_has(allowed, o->name)) {
			continue;
		}
		env_name(o, name, sizeof(name));
		v = env_get(env, name);
		if (!v) {
			continue;
		}
		snprintf(where, sizeof(where), "%s", name);
		err = set_value(c, o, v, SRC_ENV, where);
		if (err) {
			goto done;
		}
	}
	if (allowed_has(allowed, "password")) {
		const char *v = env_get(env, "ICPD_PASSWORD");

		if (v && *v) {
			c->env_password = xstrdup(v);
		}
	}

	/* 3. command line */
	err = parse_argv(c, allowed, argc, argv);
	if (err) {
		goto done;
	}
	apply_defaults_after(c, env);
done:
	free(default_file);
	return err;
}

void config_print_help(FILE *out, const char *const *allowed)
{
	for (int pass = 0; pass < 2; pass++) {
		bool any = false;

		for (const struct opt_def *o = config_options; o->name; o++) {
			char left[80];

			if (!allowed_has(allowed, o->name) ||
				!!(o->flags & OPTF_ADVANCED) != (pass == 1)) {
				continue;
			}
			if (!any && pass == 1) {
				fputs("\nAdvanced options:\n", out);
			}
			any = true;
			if (o->short_name) {
				snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name,
					o->argname ? " " : "", o->argname ? o->argname : "");
			} else {
				snprintf(left, sizeof(left), "    --%s%s%s", o->name,
					o->argname ? " " : "", o->argname ? o->argname : "");
			}
			if (strlen(left) > 30) {
				fprintf(out, "  %s\n  %-30s %s\n", left, "", o->help);
			} else {
				fprintf(out, "  %-30s %s\n", left, o->help);
			}
		}
	}
	fputs("\nEvery option can also be set as ICPD_<NAME> in the environment "
	      "(e.g. ICPD_LOG_LEVEL=debug)\nor as 'name = value' in the config file; "
	      "the command line wins over the environment,\nwhich wins over the file.\n",
		out);
}
