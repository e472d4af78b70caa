/*
 * Signing in to iCloud (auth-protocol.md §2-§3, §5, §7, §10): reuse the
 * stored session when Apple still accepts it, otherwise SRP with the
 * stored trust token, the second factor when Apple asks for one, trust,
 * accountLogin, and save.  The person at the keyboard is reached through
 * struct auth_io; nothing here prompts without one.
 */
#ifndef ICPD_AUTH_H
#define ICPD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct config;
struct session;
struct http_client;
struct http_response;

enum auth_mode {
	/* icpd auth: may ask for the password and the code (on a terminal, or
	 * line by line from a non-terminal stdin) */
	AUTH_INTERACTIVE = 0,
	/* sync, list: never prompts unless stdin and stderr are terminals;
	 * otherwise a needed password or code is ICPD_EAUTH with one line
	 * saying to run 'icpd auth' */
	AUTH_UNATTENDED,
};

/*
 * Make s a usable, saved session: validate → accountLogin with the stored
 * tokens → (icloudpd import when the directory has its files and s is
 * empty) → SRP with the stored trust token → second factor → trust →
 * accountLogin → session_save.  s must come from session_open (locked);
 * http is the client every later call of the run uses (its cookies are
 * loaded from s first).  On success s->dsid, s->ckdatabasews_url and
 * s->trust_expires are set.  Errors: ICPD_EAUTH (password/code needed or
 * wrong), ICPD_EUNAVAIL (throttled, stops at once), ICPD_EACCOUNT (ADP, web
 * access off, FIDO-only, locked), ICPD_EUSAGE (wrong --domain), ICPD_ENET.
 */
int auth_ensure_session(struct config *cfg, struct session *s, struct http_client *http,
	enum auth_mode mode) __attribute__((warn_unused_result));

/*
 * For commands that only sign in (icpd auth, icpd sync --auth-only): open
 * the session of cfg->username (lock, key), auth_ensure_session, print
 * "signed in as ...; trusted until about DATE" on stdout, close.
 */
int auth_sign_in_only(struct config *cfg, enum auth_mode mode)
	__attribute__((warn_unused_result));

/* One trusted phone number from the sign-in page. */
struct auth_phone {
	long id;
	char *label;      /* obfuscatedNumber or numberWithDialCode; owned */
	char *push_mode;  /* "sms" (default) or "voice"; owned */
};

struct auth_phone_list {
	struct auth_phone *items; /* owned */
	size_t n;
	bool too_many_codes;      /* tooManyCodesSent or securityCodeLocked */
};

/*
 * Parse the trusted phone numbers out of the body of GET <auth>: the HTML
 * page's <script class="boot_args"> JSON (direct.twoSV.phoneNumberVerification
 * or direct.twoSV.bridgeInitiateData.phoneNumberVerification), or a JSON
 * body (phoneNumberVerification.trustedPhoneNumbers or trustedPhoneNumbers).
 * body need not be NUL-terminated.  Returns 0 (out filled, possibly with
 * n == 0) or ICPD_EPROTO.  Release with auth_phone_list_release.
 */
int auth_parse_phone_list(const char *body, size_t len, struct auth_phone_list *out)
	__attribute__((warn_unused_result));
void auth_phone_list_release(struct auth_phone_list *l);

/*
 * The status that counts for a sign-in response: idmsa sometimes answers
 * 2xx and puts the real status in X-Apple-I-Rscd (auth-protocol.md §3.13).
 */
long auth_effective_status(const struct http_response *r);

/* Print "trusted until about DATE" (or that the date is unknown) for s. */
void auth_print_trust(FILE *out, const struct session *s);

#endif
