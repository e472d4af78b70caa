/*
 * The current error: one message, set where the failure happens, printed
 * once at the top.  Single-threaded by design (one curl_multi thread).
 */
#include <stdio.h>
#include <string.h>

#include "icpd/error.h"
#include "icpd/util.h"
#include "icpd/banned.h"

static char message[1024];
static char hint[512];
static int current;

int error_setv(int code, const char *fmt, va_list ap)
{
	vsnprintf(message, sizeof(message), fmt, ap);
	hint[0] = '\0';
	current = code;
	return code;
}

int error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_setv(code, fmt, ap);
	va_end(ap);
	return code;
}

void error_hint(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(hint, sizeof(hint), fmt, ap);
	va_end(ap);
}

const char *error_message(void)
{
	return message;
}

const char *error_hint_text(void)
{
	return hint;
}

int error_code(void)
{
	return current;
}

void error_clear(void)
{
	message[0] = '\0';
	hint[0] = '\0';
	current = 0;
}

/* One table from error code to exit code and name. */
static const struct {
	int err;
	int exit;
	const char *name;
} map[] = {
	{ ICPD_OK, EXIT_OK_, "ok" },
	{ ICPD_EINTERNAL, EXIT_INTERNAL, "internal" },
	{ ICPD_EUSAGE, EXIT_USAGE, "usage" },
	{ ICPD_EAUTH, EXIT_AUTH, "auth_required" },
	{ ICPD_EPARTIAL, EXIT_PARTIAL, "partial" },
	{ ICPD_EUNAVAIL, EXIT_UNAVAIL, "unavailable" },
	{ ICPD_ESTORAGE, EXIT_STORAGE, "storage" },
	{ ICPD_EACCOUNT, EXIT_ACCOUNT, "account" },
	{ ICPD_ENOTIMPL, EXIT_INTERNAL, "not_implemented" },
	{ ICPD_EPROTO, EXIT_INTERNAL, "protocol" },
	{ ICPD_ENET, EXIT_UNAVAIL, "network" },
	{ ICPD_ENOTFOUND, EXIT_USAGE, "not_found" },
	{ ICPD_EASSET, EXIT_PARTIAL, "asset" },
	{ ICPD_ESESSION, EXIT_AUTH, "session" },
	{ ICPD_EINTR, 128 + 2, "interrupted" },
};

int exit_code(int err)
{
	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		if (map[i].err == err) {
			return map[i].exit;
		}
	}
	return EXIT_INTERNAL;
}

const char *error_name(int err)
{
	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		if (map[i].err == err) {
			return map[i].name;
		}
	}
	return "internal";
}
