/*
 * Logging: human lines on a terminal, one logfmt-style record per line
 * otherwise, or JSON lines (--log-format json) for Kubernetes.  Diagnostics
 * go to stderr.  Everything that traces HTTP headers, cookies or bodies goes
 * through log_redact_header()/log_redact_body() first.
 */
#ifndef ICPD_LOG_H
#define ICPD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_AUTO = 0, LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* out: borrowed; NULL means stderr. */
void log_setup(enum log_level level, enum log_format format, FILE *out);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/*
 * Redaction, the one place that decides what may be traced.  Header names
 * that carry credentials (Cookie, Set-Cookie, X-Apple-Session-Token,
 * X-Apple-TwoSV-Trust-Token, scnt, X-Apple-ID-Session-Id, Authorization,
 * x-api-key, ...) keep their name and lose their value.  Returns a string the
 * caller frees.
 */
char *log_redact_header(const char *line, size_t len);
/* JSON bodies: values of secret-looking keys (password, token, m1, m2, a,
 * b, salt, code, dsWebAuthToken, trustToken(s), ...) are replaced.  Caller
 * frees. */
char *log_redact_body(const char *body, size_t len);
/* A URL with its query string (signatures) and any user:password@ removed.
 * Caller frees. */
char *log_redact_url(const char *url);

/* Register a secret value (a password, a token) that must never be printed:
 * any log line containing it is masked.  The value is copied into locked
 * memory by the caller's module; here we keep only a borrowed pointer that
 * must stay valid until log_forget_secret(). */
void log_add_secret(const char *value);
void log_forget_secret(const char *value);

int log_parse_level(const char *s, enum log_level *out);

#endif
