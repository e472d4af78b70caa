/*
 * Where the password comes from, first found wins: --password-file,
 * --password-command, ICPD_PASSWORD, -p/--password, then a no-echo prompt
 * on a terminal (or a line from a non-terminal stdin when allowed).  The
 * password lives in secret memory and is registered with log_add_secret.
 */
#ifndef ICPD_PASSWORD_H
#define ICPD_PASSWORD_H

#include <stdbool.h>
#include <stdio.h>

struct config;

/*
 * *out: secret_alloc'd, registered with log_add_secret; release with
 * password_free.  may_prompt: ask on in/out when no source is configured
 * (a terminal gets no echo).  Without a source and without may_prompt:
 * ICPD_ENOTFOUND (no message).  Errors: ICPD_EUSAGE (unreadable file,
 * failing command, empty password), ICPD_EAUTH (end of input at the prompt).
 */
int password_get(const struct config *cfg, bool may_prompt, FILE *in, FILE *out, char **out_pw)
	__attribute__((warn_unused_result));
void password_free(char *pw);

/*
 * Print prompt (may be NULL) on out and read one line from in into secret
 * memory, without echo when no_echo and in is a terminal (echo goes off
 * before the prompt shows); the line end is removed.  *line: secret_alloc'd,
 * free with secret_free.  ICPD_EAUTH at end of input.
 */
int password_read_line(FILE *in, FILE *out, const char *prompt, bool no_echo, char **line)
	__attribute__((warn_unused_result));

/* Exposed for tests: whether path lies under a directory where mounted
 * secrets live (/run/secrets, /var/run/secrets). */
bool password_in_secret_mount(const char *path);

#endif
