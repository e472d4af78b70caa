/*
 * The command table and help texts.  Each command lists the options it
 * takes; config.c's option table supplies their help.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "icpd_build.h"
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/version.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define COMMON_OPTS "config", "log-level", "log-format"
#define ENDPOINT_OPTS "ca-file", "auth-endpoint", "auth-root", "setup-endpoint", "home-endpoint"
#define ACCOUNT_OPTS "username", "cookie-directory", "secret-key-file", "domain"
#define PASSWORD_OPTS "password", "password-file", "password-command"

static const char *const auth_opts[] = { COMMON_OPTS, ENDPOINT_OPTS, ACCOUNT_OPTS, PASSWORD_OPTS,
	"import-icloudpd", "notify-command", "notify-url", NULL };

static const char *const sync_opts[] = { COMMON_OPTS, ENDPOINT_OPTS, ACCOUNT_OPTS, PASSWORD_OPTS,
	"album", "align-raw", "auth-expiring-days", "auth-only", "auto-delete", "bandwidth-limit",
	"delete-after-download", "dir-mode", "directory", "dry-run", "file-match-policy",
	"file-mode", "folder-structure", "force-size", "immich-api-key-file", "immich-library-id",
	"immich-url", "keep-icloud-recent-days", "keep-unicode-in-filenames", "library",
	"listing-parallelism", "live-photo-mov-filename-policy", "live-photo-size",
	"no-progress-bar", "notify-command", "notify-url", "only-print-filenames", "recent",
	"report-json", "set-exif-datetime", "size", "skip-created-after", "skip-created-before",
	"skip-live-photos", "skip-photos", "skip-videos", "threads", "until-found",
	"use-os-locale", "xmp-sidecar", NULL };

static const char *const list_opts[] = { COMMON_OPTS, ENDPOINT_OPTS, ACCOUNT_OPTS, PASSWORD_OPTS,
	"json", "library", "listing-parallelism", NULL };

static const char *const status_opts[] = { COMMON_OPTS, ACCOUNT_OPTS, "json", NULL };

static const char *const verify_opts[] = { COMMON_OPTS, ACCOUNT_OPTS, "checksums", "directory",
	"json", NULL };

/* Alphabetised. */
const struct command commands[] = {
	{ "auth", cmd_auth, auth_opts, "[OPTIONS]", "sign in (password and 2FA code) and save a trusted session",
		"Signs in to iCloud, asks for the two-factor code, and saves a trusted session\n"
		"in the cookie directory, so that 'icpd sync' runs unattended for weeks.\n"
		"Works on a terminal and through 'kubectl attach -it'; without a terminal it\n"
		"reads the same answers line by line from standard input." },
	{ "list", cmd_list, list_opts, "albums|libraries [OPTIONS]", "list albums or libraries with counts",
		"Lists the albums (and folders) or the libraries of the account." },
	{ "status", cmd_status, status_opts, "[OPTIONS]", "show the last run, counts and when trust expires",
		"Shows the last run and its result, what is stored, and when the trusted session\n"
		"expires." },
	{ "sync", cmd_sync, sync_opts, "[OPTIONS]", "download what is new into --directory",
		"Signs in with the saved session, lists the library, and downloads only what\n"
		"is new.  Never prompts without a terminal: when a person must sign in again it\n"
		"exits 3 and says to run 'icpd auth'." },
	{ "verify", cmd_verify, verify_opts, "[OPTIONS]", "check every recorded file on disk",
		"Checks that every file the state database recorded is present with the right\n"
		"size (and, with --checksums, the right SHA-256)." },
	{ NULL, NULL, NULL, NULL, NULL, NULL },
};

const struct command *command_find(const char *name)
{
	for (const struct command *c = commands; c->name; c++) {
		if (strcmp(c->name, name) == 0) {
			return c;
		}
	}
	return NULL;
}

void command_print_help(FILE *out, const struct command *cmd)
{
	fprintf(out, "usage: icpd %s %s\n\n%s\n\nOptions:\n", cmd->name, cmd->usage,
		cmd->description);
	fprintf(out, "  %-30s %s\n", "-h, --help", "show this help");
	config_print_help(out, cmd->options);
}

void commands_print_overview(FILE *out)
{
	fputs("usage: icpd COMMAND [OPTIONS]\n"
	      "       icpd [icloudpd options]      (same as 'icpd sync ...')\n\n"
	      "icpd downloads your iCloud Photos library into a folder, only what is new.\n\n"
	      "Commands:\n",
		out);
	for (const struct command *c = commands; c->name; c++) {
		fprintf(out, "  %-8s %s\n", c->name, c->summary);
	}
	fputs("  help     show help for a command: icpd help COMMAND\n\n"
	      "Options for every command: --help, --version.\n"
	      "Exit codes: 0 ok, 1 internal error, 2 usage or configuration, 3 sign-in needed,\n"
	      "4 some assets failed, 5 Apple unavailable or throttling, 6 local storage,\n"
	      "7 account not usable (ADP, FIDO-only), 128+N killed by signal N.\n",
		out);
}

void version_print(FILE *out)
{
	fprintf(out, "icpd %s\n", ICPD_VERSION);
	fprintf(out, "  %s\n", http_describe());
	fprintf(out, "  %s\n", OpenSSL_version(OPENSSL_VERSION));
	fprintf(out, "  %s\n", cloudkit_describe());
	fprintf(out, "  %s\n", state_describe());
	fprintf(out, "  %s\n", meta_exif_describe());
	fprintf(out, "  %s\n", secret_describe());
}
