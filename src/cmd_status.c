/*
 * icpd status: the last run and its result, what the state database
 * holds, where it is, and when the trusted session expires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/secret.h"
#include "icpd/session.h"
#include "icpd/state.h"
#include "icpd/util.h"
#include "icpd/banned.h"

static void format_time(char *out, size_t n, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		snprintf(out, n, "never");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			printf("\\%c", c);
		} else if (c < 0x20) {
			printf("\\u%04x", c);
		} else {
			putchar(c);
		}
	}
	putchar('"');
}

/*
 * When the trusted session expires, from the saved session (read without
 * waiting for the lock: a running sync holds it).  *expires 0 = unknown;
 * *note says why when the session could not be read.
 */
static void trust_info(struct config *cfg, time_t *expires, const char **note)
{
	struct session s;

	*expires = 0;
	*note = NULL;
	memset(&s, 0, sizeof(s));
	s.lock_fd = -1;
	if (!cfg->username || !*cfg->username) {
		*note = "give --username to see the session";
		return;
	}
	if (secret_init() != 0 || session_open(&s, cfg->cookie_directory, cfg->username,
					 cfg->secret_key_file, 0) != 0) {
		*note = "the session is in use by a running icpd, or unreadable";
		error_clear();
		return;
	}
	*expires = s.trust_expires;
	if (!s.trust_token && !s.session_token) {
		*note = "not signed in: run 'icpd auth'";
	}
	session_close(&s);
}

int cmd_status(struct config *cfg)
{
	struct state *st = NULL;
	struct state_run run;
	struct state_counts c;
	char *path = NULL;
	char started[32], finished[32], trust[32];
	const char *note = NULL;
	time_t expires = 0;
	bool have_run = false;
	int rc;

	memset(&c, 0, sizeof(c));
	trust_info(cfg, &expires, &note);
	rc = state_find(cfg->cookie_directory, cfg->username, &path);
	if (rc == ICPD_ENOTFOUND) {
		/* signed in, never synced (right after 'icpd auth'): say so, with
		 * the session's trust; with no session either, this is most
		 * likely the wrong folder */
		if (note) {
			rc = error_set(ICPD_ENOTFOUND, "no state database and no session in '%s'",
				cfg->cookie_directory);
			error_hint("run 'icpd auth' and 'icpd sync' first, or give the --cookie-directory "
				   "they used");
			goto done;
		}
		rc = 0;
	} else if (rc) {
		goto done;
	} else {
		rc = state_open(&st, path);
		if (rc == 0) {
			rc = state_counts(st, &c);
		}
		if (rc) {
			goto done;
		}
		rc = state_run_last(st, &run);
		if (rc && rc != ICPD_ENOTFOUND) {
			goto done;
		}
		have_run = rc == 0;
		rc = 0;
	}
	format_time(trust, sizeof(trust), (int64_t)expires);
	format_time(started, sizeof(started), have_run ? run.started : 0);
	format_time(finished, sizeof(finished), have_run ? run.finished : 0);
	if (cfg->json) {
		printf("{\"database\": ");
		if (st) {
			json_string(path);
			printf(", \"schema\": %d", state_schema_version(st));
		} else {
			printf("null, \"schema\": null");
		}
		printf(", \"assets\": %lld, \"files_done\": %lld, "
		       "\"files_adopted\": %lld, \"files_failed\": %lld, \"bytes\": %lld, \"runs\": %lld",
			(long long)c.assets,
			(long long)c.files[STATE_DONE], (long long)c.files[STATE_ADOPTED],
			(long long)c.files[STATE_FAILED], (long long)c.bytes, (long long)c.runs);
		if (have_run) {
			printf(", \"last_run\": {\"started\": \"%s\", \"finished\": %s%s%s, "
			       "\"result\": \"%s\", \"exit_code\": %d, \"listed\": %lld, "
			       "\"downloaded\": %lld, \"adopted\": %lld, \"present\": %lld, "
			       "\"failed\": %lld, \"bytes\": %lld}",
				started, run.finished ? "\"" : "", run.finished ? finished : "null",
				run.finished ? "\"" : "", run.finished ? (run.result ? error_name(run.result) : "ok") : "interrupted",
				run.finished ? exit_code(run.result) : -1, (long long)run.listed,
				(long long)run.downloaded, (long long)run.adopted, (long long)run.skipped,
				(long long)run.failed, (long long)run.bytes);
		} else {
			printf(", \"last_run\": null");
		}
		if (expires > 0) {
			printf(", \"trust_expires\": \"%s\", \"trust_days_left\": %lld", trust,
				(long long)((expires - time(NULL)) / 86400));
		} else {
			printf(", \"trust_expires\": null");
		}
		if (note) {
			printf(", \"session_note\": ");
			json_string(note);
		}
		printf("}\n");
		goto done;
	}
	if (st) {
		printf("state database: %s (schema %d)\n", path, state_schema_version(st));
	} else {
		printf("state database: none yet (no sync has run with this --cookie-directory)\n");
	}
	if (have_run) {
		if (run.finished) {
			printf("last run: %s to %s, %s (exit %d)\n", started, finished,
				run.result ? error_name(run.result) : "ok", exit_code(run.result));
		} else {
			printf("last run: started %s, did not finish (killed or still running)\n",
				started);
		}
		printf("  %lld listed, %lld downloaded (%lld bytes), %lld adopted, %lld already "
		       "present, %lld failed\n",
			(long long)run.listed, (long long)run.downloaded, (long long)run.bytes,
			(long long)run.adopted, (long long)run.skipped, (long long)run.failed);
	} else {
		printf("last run: never\n");
	}
	if (expires > 0) {
		printf("trusted session: expires about %s (%lld days left)\n", trust,
			(long long)((expires - time(NULL)) / 86400));
	} else {
		printf("trusted session: expiry unknown%s%s\n", note ? "; " : "", note ? note : "");
	}
	printf("stored: %lld assets; files: %lld downloaded, %lld adopted, %lld failed; %lld bytes\n",
		(long long)c.assets, (long long)c.files[STATE_DONE], (long long)c.files[STATE_ADOPTED],
		(long long)c.files[STATE_FAILED], (long long)c.bytes);
done:
	state_close(st);
	free(path);
	return rc;
}
