/*
 * Errors: every fallible function returns 0 or a negative ICPD_E* code.
 * The message is set once, where the error happens (error_set), and printed
 * once, at the top (main).  The code says how far the failure reaches, so a
 * caller knows whether to skip an asset, re-authenticate, or stop the run.
 */
#ifndef ICPD_ERROR_H
#define ICPD_ERROR_H

#include <stdarg.h>

enum icpd_error {
	ICPD_OK = 0,
	ICPD_EINTERNAL = -1,   /* a bug or an impossible state */
	ICPD_EUSAGE = -2,      /* bad flag, bad config value */
	ICPD_EAUTH = -3,       /* a person must sign in again (2FA, trust expired, password) */
	ICPD_EPARTIAL = -4,    /* some assets failed, the rest were saved */
	ICPD_EUNAVAIL = -5,    /* Apple unavailable or throttling us (429, 503) */
	ICPD_ESTORAGE = -6,    /* disk full, permission, missing directory */
	ICPD_EACCOUNT = -7,    /* account cannot be used: ADP, FIDO-only, locked */
	ICPD_ENOTIMPL = -8,    /* command or feature not built yet */
	ICPD_EPROTO = -9,      /* the server answered something we cannot use */
	ICPD_ENET = -10,       /* connection failed, timed out or was reset */
	ICPD_ENOTFOUND = -11,  /* asked-for thing does not exist */
	ICPD_EASSET = -12,     /* this one asset failed; go on with the others */
	ICPD_ESESSION = -13,   /* session expired mid-run: re-validate once */
	ICPD_EINTR = -14,      /* interrupted by a signal */
	ICPD_ITEROVER = -100,  /* not an error: an iterator is exhausted */
};

/* Process exit codes; documented in README.md.  Keep in step with exit_code(). */
enum icpd_exit {
	EXIT_OK_ = 0,
	EXIT_INTERNAL = 1,
	EXIT_USAGE = 2,
	EXIT_AUTH = 3,
	EXIT_PARTIAL = 4,
	EXIT_UNAVAIL = 5,
	EXIT_STORAGE = 6,
	EXIT_ACCOUNT = 7,
};

/* Record the message for the current error; returns code so callers can
 * write `return error_set(ICPD_EPROTO, "...")`. */
int error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int error_setv(int code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Add a next-step hint ("run 'icpd auth'") shown below the message. */
void error_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Borrowed until the next error_set()/error_clear(); "" when none. */
const char *error_message(void);
const char *error_hint_text(void);
int error_code(void);
void error_clear(void);

/* Map an ICPD_E* code (or 0) to the process exit code. */
int exit_code(int err);

/* Short stable name of a code ("auth", "storage", ...) for logs and reports. */
const char *error_name(int err);

#endif
