/*
 * Logging and redaction.  Text lines on a terminal, key=value records when
 * stderr is not a terminal, JSON lines with --log-format json.  Every trace
 * of HTTP headers and bodies goes through log_redact_*() and every message
 * is checked against the registered secret values before it is written.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "icpd/buf.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/banned.h"

static enum log_level cur_level = LOG_INFO;
static enum log_format cur_format = LOG_FORMAT_AUTO;
static FILE *cur_out;

#define MAX_SECRETS 16
static const char *secrets[MAX_SECRETS];

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level level, enum log_format format, FILE *out)
{
	cur_level = level;
	cur_out = out;
	if (format == LOG_FORMAT_AUTO) {
		format = isatty(fileno(out ? out : stderr)) ? LOG_FORMAT_TEXT : LOG_FORMAT_AUTO;
	}
	cur_format = format;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

bool log_enabled(enum log_level level)
{
	return level >= cur_level;
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (str_eq_nocase(s, level_names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (str_eq_nocase(s, "warning")) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

void log_add_secret(const char *value)
{
	if (!value || strlen(value) < 4) {
		return; /* too short to mask without destroying every line */
	}
	for (size_t i = 0; i < MAX_SECRETS; i++) {
		if (!secrets[i]) {
			secrets[i] = value;
			return;
		}
	}
}

void log_forget_secret(const char *value)
{
	for (size_t i = 0; i < MAX_SECRETS; i++) {
		if (secrets[i] == value) {
			secrets[i] = NULL;
		}
	}
}

/* Replace every registered secret in s (in place, same length). */
static void mask_secrets(char *s)
{
	for (size_t i = 0; i < MAX_SECRETS; i++) {
		size_t n;
		char *p;

		if (!secrets[i]) {
			continue;
		}
		n = strlen(secrets[i]);
		while ((p = strstr(s, secrets[i])) != NULL) {
			memset(p, '*', n);
		}
	}
}

/* Append s as a JSON string at line[n]; the caller sized line for the
 * worst case (6 bytes per input byte + 2).  Returns the new length. */
static size_t put_json_string(char *line, size_t n, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	line[n++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			line[n++] = '\\';
			line[n++] = (char)c;
		} else if (c < 0x20) {
			line[n++] = '\\';
			line[n++] = 'u';
			line[n++] = '0';
			line[n++] = '0';
			line[n++] = hex[c >> 4];
			line[n++] = hex[c & 15];
		} else {
			line[n++] = (char)c;
		}
	}
	line[n++] = '"';
	return n;
}

#define LOG_MSG_MAX 4096

/*
 * The whole line is formatted here and written with one fwrite: stderr is
 * unbuffered, and a character at a time cost ~90 write(2) calls per line
 * (0.7 s of system time in a 10k-asset dry run).
 */
void log_msg(enum log_level level, const char *fmt, ...)
{
	FILE *out = cur_out ? cur_out : stderr;
	char msg[LOG_MSG_MAX];
	char line[LOG_MSG_MAX * 6 + 128];
	char stamp[32];
	struct tm tm;
	time_t now;
	va_list ap;
	size_t n = 0;
	int k;

	if (!log_enabled(level)) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mask_secrets(msg);

	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);

	switch (cur_format) {
	case LOG_FORMAT_JSON:
		k = snprintf(line, 128, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", stamp,
			level_names[level]);
		n = k > 0 && k < 128 ? (size_t)k : 0;
		n = put_json_string(line, n, msg);
		line[n++] = '}';
		line[n++] = '\n';
		break;
	case LOG_FORMAT_TEXT:
		if (level == LOG_INFO) {
			k = snprintf(line, sizeof(line), "%s\n", msg);
		} else {
			k = snprintf(line, sizeof(line), "%s: %s\n", level_names[level], msg);
		}
		n = k > 0 && (size_t)k < sizeof(line) ? (size_t)k : 0;
		break;
	default:
		k = snprintf(line, 128, "time=%s level=%s msg=", stamp, level_names[level]);
		n = k > 0 && k < 128 ? (size_t)k : 0;
		n = put_json_string(line, n, msg);
		line[n++] = '\n';
		break;
	}
	fwrite(line, 1, n, out);
	fflush(out);
}

/* Header names whose values are credentials.  Alphabetised. */
static const char *const secret_headers[] = {
	"authorization",
	"cookie",
	"scnt",
	"set-cookie",
	"x-api-key",
	"x-apple-id-session-id",
	"x-apple-oauth-grant-code",
	"x-apple-session-token",
	"x-apple-twosv-trust-token",
	"x-apple-webauth-token",
};

char *log_redact_header(const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	size_t namelen;

	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n')) {
		len--;
	}
	if (!colon) {
		return xstrndup(line, len);
	}
	namelen = (size_t)(colon - line);
	for (size_t i = 0; i < ARRAY_SIZE(secret_headers); i++) {
		if (strlen(secret_headers[i]) == namelen &&
			strncasecmp(line, secret_headers[i], namelen) == 0) {
			return xasprintf("%.*s: [redacted]", (int)namelen, line);
		}
	}
	return xstrndup(line, len);
}

/* JSON keys whose values are secret.  Alphabetised; compared exactly. */
static const char *const secret_keys[] = {
	"a", "b", "c", "code", "dsWebAuthToken", "m1", "m2", "password", "salt",
	"session_token", "sessionToken", "trustToken", "trustTokens", "trust_token",
	"verificationCode",
};

static bool is_secret_key(const char *k, size_t n)
{
	for (size_t i = 0; i < ARRAY_SIZE(secret_keys); i++) {
		if (strlen(secret_keys[i]) == n && memcmp(secret_keys[i], k, n) == 0) {
			return true;
		}
	}
	return false;
}

/* Length of the JSON string starting at s[0] == '"', including quotes, or 0. */
static size_t json_string_len(const char *s, size_t len)
{
	for (size_t i = 1; i < len; i++) {
		if (s[i] == '\\') {
			i++;
		} else if (s[i] == '"') {
			return i + 1;
		}
	}
	return 0;
}

char *log_redact_body(const char *body, size_t len)
{
	struct buf out = BUF_INIT;
	size_t i = 0;
	int redact_depth = -1; /* >= 0 while inside a secret array */
	int depth = 0;
	bool next_secret = false;
	char *r;

	if (!len) {
		return xstrdup("");
	}
	while (i < len && isspace((unsigned char)body[i])) {
		i++;
	}
	if (i >= len || (body[i] != '{' && body[i] != '[')) {
		return xasprintf("[%zu bytes, not JSON]", len);
	}
	while (i < len) {
		char c = body[i];

		if (c == '"') {
			size_t n = json_string_len(body + i, len - i);
			size_t j;

			if (!n) {
				break;
			}
			j = i + n;
			while (j < len && isspace((unsigned char)body[j])) {
				j++;
			}
			if (j < len && body[j] == ':') {
				/* a key */
				next_secret = is_secret_key(body + i + 1, n - 2);
				(void)!buf_add(&out, body + i, n);
			} else if (next_secret || redact_depth >= 0) {
				(void)!buf_adds(&out, "\"[redacted]\"");
				next_secret = false;
			} else {
				(void)!buf_add(&out, body + i, n);
			}
			i += n;
			continue;
		}
		if (c == '[' || c == '{') {
			if (next_secret && c == '[' && redact_depth < 0) {
				redact_depth = depth;
			}
			next_secret = false;
			depth++;
		} else if (c == ']' || c == '}') {
			depth--;
			if (redact_depth >= 0 && depth == redact_depth) {
				redact_depth = -1;
			}
		} else if (c == ',') {
			next_secret = false;
		} else if (next_secret && !isspace((unsigned char)c) && c != ':') {
			/* a secret number or literal: drop it */
			while (i < len && body[i] != ',' && body[i] != '}' && body[i] != ']') {
				i++;
			}
			(void)!buf_adds(&out, "\"[redacted]\"");
			next_secret = false;
			continue;
		}
		(void)!buf_add(&out, &c, 1);
		i++;
	}
	r = buf_detach(&out, NULL);
	mask_secrets(r);
	return r;
}

char *log_redact_url(const char *url)
{
	const char *q = strchr(url, '?');
	char *r = q ? xasprintf("%.*s?[query redacted]", (int)(q - url), url) : xstrdup(url);
	char *host = strstr(r, "://");
	char *at, *slash;

	/* and no user:password@ before the host */
	if (host) {
		host += 3;
		slash = strchr(host, '/');
		at = strchr(host, '@');
		if (at && (!slash || at < slash)) {
			memmove(host, at + 1, strlen(at + 1) + 1);
		}
	}
	return r;
}
