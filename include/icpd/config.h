/*
 * Configuration, resolved once into struct config:
 *   command-line flags > ICPD_* environment > config file > defaults.
 * The config file (--config FILE, else $ICPD_CONFIG, else
 * $XDG_CONFIG_HOME/icpd/config) holds `key = value` lines whose keys are the
 * long flag names.  Nothing below the CLI calls getenv().
 */
#ifndef ICPD_CONFIG_H
#define ICPD_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "icpd/log.h"
#include "icpd/util.h"

enum domain { DOMAIN_COM = 0, DOMAIN_CN };
enum file_match_policy { MATCH_NAME_SIZE_DEDUP = 0, MATCH_NAME_ID7 };
enum live_mov_policy { LIVE_MOV_SUFFIX = 0, LIVE_MOV_ORIGINAL };
enum align_raw { ALIGN_RAW_AS_IS = 0, ALIGN_RAW_ORIGINAL, ALIGN_RAW_ALTERNATIVE };
enum live_size { LIVE_SIZE_ORIGINAL = 0, LIVE_SIZE_MEDIUM, LIVE_SIZE_THUMB };

struct config {
	/* account and session */
	char *username;
	char *password;          /* -p, discouraged: visible in argv */
	char *env_password;      /* from ICPD_PASSWORD, which is then unset */
	char *password_file;
	char *password_command;
	char *cookie_directory;  /* default ~/.config/icpd */
	char *secret_key_file;
	char *import_icloudpd;   /* icpd auth --import-icloudpd DIR */
	enum domain domain;
	bool auth_only;

	/* endpoints (advanced; defaults from --domain) */
	char *ca_file;
	char *auth_endpoint;     /* e.g. https://idmsa.apple.com/appleauth/auth */
	char *setup_endpoint;    /* e.g. https://setup.icloud.com/setup/ws/1 */
	char *home_endpoint;     /* e.g. https://www.icloud.com */
	char *auth_root;         /* e.g. https://idmsa.apple.com (Origin for sign-in) */

	/* what to download */
	char *directory;
	struct strlist sizes;    /* original|medium|thumb|adjusted|alternative */
	bool force_size;
	enum live_size live_photo_size;
	enum live_mov_policy live_photo_mov_filename_policy;
	enum align_raw align_raw;
	bool skip_videos;
	bool skip_photos;
	bool skip_live_photos;
	struct strlist albums;
	char *library;           /* default PrimarySync */
	long recent;             /* 0 = all */
	long until_found;        /* 0 = off */
	char *skip_created_before;
	char *skip_created_after;
	char *folder_structure;  /* default {:%Y/%m/%d} */
	bool keep_unicode_in_filenames;
	enum file_match_policy file_match_policy;
	bool use_os_locale;
	bool set_exif_datetime;
	bool xmp_sidecar;
	bool dry_run;
	bool only_print_filenames;
	bool auto_delete;
	long keep_icloud_recent_days; /* -1 = off */
	bool delete_after_download;
	long file_mode;
	long dir_mode;

	/* how */
	long threads;
	long listing_parallelism;
	char *bandwidth_limit;   /* e.g. 10M per second */
	bool no_progress_bar;
	char *report_json;
	bool json;               /* machine output for list/status */
	bool checksums;          /* verify --checksums */

	/* operator features */
	char *notify_command;
	char *notify_url;
	char *immich_url;
	char *immich_api_key_file;
	char *immich_library_id;
	long auth_expiring_days;

	/* logging */
	enum log_level log_level;
	enum log_format log_format;

	/* where the values came from; for `icpd status` and error messages */
	char *config_file;       /* the file read, or NULL */

	/* positional arguments after the command (borrowed from argv) */
	int nargs;
	char **args;
};

/* Option argument kinds. */
enum opt_kind { OPT_FLAG, OPT_STR, OPT_INT, OPT_ENUM, OPT_LIST, OPT_MODE };

struct opt_def {
	const char *name;      /* long name, also the config-file key */
	char short_name;       /* 0 when none */
	enum opt_kind kind;
	size_t offset;         /* into struct config */
	const char *argname;   /* shown in --help */
	const char *help;
	const char *const *choices; /* OPT_ENUM: NULL-terminated */
	long min, max;         /* OPT_INT */
	unsigned flags;
};

#define OPTF_SECRET 0x1   /* value never printed (e.g. --password) */
#define OPTF_ADVANCED 0x2 /* listed under "advanced" in --help */
#define OPTF_NOENV 0x4    /* not read from the environment */
#define OPTF_NOFILE 0x8   /* not read from the config file */

/* All known options, alphabetised by name; terminated by a zeroed entry. */
extern const struct opt_def config_options[];

const struct opt_def *config_find_option(const char *name);

/* Set defaults (no allocation of user data yet). */
void config_init(struct config *c);
void config_release(struct config *c);

/*
 * Resolve configuration for a command that accepts the options named in
 * allowed[] (NULL-terminated list of long names).  argv[0] is the first
 * argument after the command name.  env is the environment (envp style).
 * On error sets the message (naming the flag, or file:line) and returns
 * ICPD_EUSAGE.
 */
int config_resolve(struct config *c, const char *const *allowed, int argc, char **argv,
	char **env) __attribute__((warn_unused_result));

/* Parse a config file into c (used by config_resolve; exposed for tests). */
int config_load_file(struct config *c, const char *path, const char *const *allowed)
	__attribute__((warn_unused_result));

/* Print help lines for the allowed options to out. */
void config_print_help(FILE *out, const char *const *allowed);

/* Endpoint defaults for the domain, unless overridden. */
void config_apply_domain(struct config *c);

#endif
