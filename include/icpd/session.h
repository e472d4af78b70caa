/*
 * A signed-in session, per account, kept in the cookie directory: the
 * cookie jar, the tokens of auth-protocol.md §3.1, the client id and the
 * account data the photo client needs.  Stored sealed (secret.h), written
 * atomically with mode 0600, guarded by an exclusive lock per account.
 */
#ifndef ICPD_SESSION_H
#define ICPD_SESSION_H

#include <stdbool.h>
#include <time.h>

#include "icpd/secret.h"

struct http_client;

struct session {
	char *account;        /* lower-cased Apple ID */
	char *dir;            /* the cookie directory */
	char *client_id;      /* "auth-<uuid>", stable per account */

	/* tokens (auth-protocol.md §3.1); each may be NULL; secret memory */
	char *session_token;
	char *trust_token;
	char *scnt;
	char *session_id;     /* X-Apple-ID-Session-Id */
	char *account_country;

	/* account data from accountLogin/validate (§7) */
	char *dsid;
	char *ckdatabasews_url;
	bool hsa_trusted;
	time_t trust_expires;    /* 0 = unknown; from cookie expiries */
	time_t session_expires;

	char *cookies;        /* Netscape cookie lines (http_cookies_export); secret memory */

	int lock_fd;          /* -1 when not locked */
	struct secret_key key;
};

/*
 * Open the session of account in dir: take the lock (waits up to
 * lock_wait seconds, then ICPD_EUSAGE-free ICPD_ESTORAGE with a message
 * naming the other process), load the key, read the sealed file if any.
 * A missing session file is not an error (the fields stay NULL); a new
 * client_id is made when none is stored.  The directory is created (0700)
 * when missing.  key_file may be NULL (then "<dir>/.icpd-key" is used, or
 * created with a warning).  On failure s is closed (session_close is a
 * no-op on it).
 */
int session_open(struct session *s, const char *dir, const char *account,
	const char *key_file, int lock_wait) __attribute__((warn_unused_result));

/* Write everything atomically (tmp, fsync, rename, fsync dir), mode 0600. */
int session_save(struct session *s) __attribute__((warn_unused_result));

/* Keep only client_id and trust_token (after a rejected session), and of
 * the cookies only X-APPLE-WEBAUTH-HSA-TRUST and X_APPLE_WEB_KB-*, which
 * belong to the trusted browser.  The caller reloads its cookie engine. */
void session_forget_login(struct session *s);

/* Release memory, wipe secrets, drop the lock.  NULL ok. */
void session_close(struct session *s);

/* Cookies between session and an http client. */
int session_load_cookies(struct session *s, struct http_client *http)
	__attribute__((warn_unused_result));
int session_store_cookies(struct session *s, struct http_client *http)
	__attribute__((warn_unused_result));

/*
 * icloudpd migration: dir holds "<name>" (LWP cookie jar) and
 * "<name>.session" (JSON), name = account without non-word characters.
 * Fills s (tokens, client id, cookies).  ICPD_ENOTFOUND when absent.
 */
int session_import_icloudpd(struct session *s, const char *dir)
	__attribute__((warn_unused_result));

/* Set a token field (wipes the old value, copies value into secret
 * memory); value may be NULL. */
void session_set(char **field, const char *value);

/*
 * Recompute trust_expires and session_expires from the cookie lines:
 * session = the earlier expiry of X-APPLE-WEBAUTH-USER and
 * X-APPLE-DS-WEB-SESSION-TOKEN; trust = X-APPLE-WEBAUTH-HSA-TRUST, else the
 * session's.  0 = unknown.  session_store_cookies and the loaders call it.
 */
void session_update_expiry(struct session *s);

/* The per-account file name stem, as icloudpd makes it: the lower-cased
 * Apple ID without non-word characters ("jdoe@gmail.com" -> "jdoegmailcom").
 * Caller frees. */
char *session_file_name(const char *account);

/*
 * Convert an LWP cookie jar (Python's LWPCookieJar, as icloudpd saves it)
 * into libcurl's Netscape cookie lines, appended to netscape_out.  The
 * input is untrusted: any malformed line fails the whole jar with
 * ICPD_EPROTO (message names the line number, never a value) and leaves
 * netscape_out as it was.  Release netscape_out with secret_buf_release.
 * Also the entry point of the cookie-jar fuzz target.
 */
int session_parse_lwp(const char *text, size_t len, struct buf *netscape_out)
	__attribute__((warn_unused_result));

#endif
