/*
 * Operator notifications: --notify-command CMD and --notify-url URL, for the
 * events auth_required, auth_expiring, sync_failed and sync_complete.
 *
 * A notification never changes the outcome of a run: every failure (the
 * command exits non-zero or runs too long, the URL is unreachable or answers
 * non-2xx) is logged as a warning, and the global error message of the run
 * (error.h) is left as it was.
 *
 * --notify-command: run as `/bin/sh -c CMD` with stdin from /dev/null and
 * stdout sent to icpd's stderr, in its own process group, killed (TERM, then
 * KILL) after 30 s.  Its environment is icpd's minus every inherited ICPD_*
 * variable (they are icpd's configuration, ICPD_PASSWORD among them) and minus
 * any variable holding the password, plus:
 *   ICPD_EVENT          auth_required | auth_expiring | sync_failed | sync_complete
 *   ICPD_ACCOUNT        the Apple ID
 *   ICPD_MESSAGE        one line for humans
 *   ICPD_TIME           when, UTC, 2026-01-31T03:00:00Z
 *   ICPD_EXIT_CODE      icpd's exit code for the run (0 when not known yet)
 *   ICPD_LISTED, ICPD_DOWNLOADED, ICPD_FAILED, ICPD_BYTES   counts of the run
 *   ICPD_TRUST_EXPIRES  when the trusted session ends (UTC), "" when unknown
 *   ICPD_TRUST_DAYS_LEFT  whole days until then, "" when unknown
 *
 * --notify-url: one POST, Content-Type application/json, no other special
 * headers, body (one object, keys in this order):
 *   {"event":"sync_complete","account":"me@example.com",
 *    "title":"icpd: sync_complete","message":"...","body":"...",
 *    "time":"2026-01-31T03:00:00Z",
 *    "figures":{"listed":0,"downloaded":12,"failed":0,"bytes":123456,
 *               "exit_code":0,"trust_expires":"2026-02-20T10:00:00Z",
 *               "trust_days_left":20}}
 * "title" and "message" are what Gotify's /message reads, "title" and "body"
 * what Apprise's /notify reads; ntfy publishes the whole body as the text
 * of a message to the topic URL.  trust_expires and trust_days_left are null
 * when unknown.  Any 2xx answer counts as delivered.
 */
#ifndef ICPD_NOTIFY_H
#define ICPD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct config;

#define NOTIFY_AUTH_REQUIRED "auth_required"
#define NOTIFY_AUTH_EXPIRING "auth_expiring"
#define NOTIFY_SYNC_FAILED "sync_failed"
#define NOTIFY_SYNC_COMPLETE "sync_complete"

struct notify_figures {
	const char *account;  /* borrowed; NULL = cfg->username */
	const char *message;  /* borrowed; NULL = a default sentence for the event */
	int64_t listed;
	int64_t downloaded;
	int64_t failed;
	int64_t bytes;
	int exit_code;        /* the process exit code the run ends with */
	time_t trust_expires; /* 0 = unknown */
};

/*
 * Send event to the configured command and URL (either, both or none).
 * Returns 0 when every configured channel succeeded (or none is
 * configured), else the code of the last failure; the failure was logged
 * as a warning already, so callers may ignore the result.
 */
int notify_event(const struct config *cfg, const char *event, const struct notify_figures *f);

/*
 * The end of a sync: rc (0 or ICPD_E*) picks the event: ICPD_EAUTH and
 * ICPD_EACCOUNT → auth_required; 0 and ICPD_EPARTIAL → sync_complete (with
 * the failed count; exit code 4); anything else → sync_failed with the
 * run's error message.  f->exit_code and f->message are filled from rc when
 * left 0/NULL.
 */
void notify_sync_result(const struct config *cfg, int rc, const struct notify_figures *f);

/*
 * When trust_expires is known and at most cfg->auth_expiring_days away
 * (or already past), log a warning and send auth_expiring.  Returns true
 * when it did.  now = 0 means time(NULL).
 */
bool notify_check_trust(const struct config *cfg, time_t trust_expires, time_t now);

/* Tests only: shorten the limits (seconds; 0 = the defaults, 30 s for the
 * command, 10 s to connect and 10 s without a byte for the URL). */
void notify_set_timeouts(int command_seconds, int url_seconds);

#endif
