/*
 * Secrets (the only module that includes <sodium.h>): sealing files with
 * secretbox under a 32-byte key, locked memory for passwords and tokens,
 * and core dumps switched off while secrets are in memory.
 */
#ifndef ICPD_SECRET_H
#define ICPD_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "icpd/buf.h"

#define SECRET_KEY_BYTES 32

struct secret_key {
	uint8_t *bytes; /* sodium_malloc'd, SECRET_KEY_BYTES long */
};

/* sodium_init, RLIMIT_CORE = 0, no dumps (prctl PR_SET_DUMPABLE 0). */
int secret_init(void) __attribute__((warn_unused_result));

/*
 * Load the key from path (32 raw bytes, or 64 hex characters, or base64 of
 * 32 bytes; trailing whitespace such as a newline is ignored in the text
 * forms).  With create != 0 and no file, a random key is written (0600,
 * O_EXCL, as hex) and a warning says who can read the session.  A key file
 * writable by group or others is refused (ICPD_ESTORAGE); a malformed one
 * is ICPD_EUSAGE.  Free with secret_key_release (NULL bytes ok).
 */
int secret_key_load(struct secret_key *key, const char *path, int create)
	__attribute__((warn_unused_result));
void secret_key_release(struct secret_key *key);

/*
 * Seal plain into out ("ICPD1" || nonce || secretbox); open reverses it and
 * fails with ICPD_EPROTO (not ICPD_EAUTH) on a bad key, a tampered or
 * truncated file or an unknown format.  Both append to out; for open, pass
 * an empty buffer (the plaintext then lands in one allocation) and release
 * it with secret_buf_release.
 */
int secret_seal(const struct secret_key *key, const void *plain, size_t len, struct buf *out)
	__attribute__((warn_unused_result));
int secret_open(const struct secret_key *key, const void *sealed, size_t len, struct buf *out)
	__attribute__((warn_unused_result));

/* Locked, guarded memory (sodium_malloc) for a NUL-terminated secret string. */
/* secret_strdup(NULL) is NULL.  Out of memory aborts.  Free with secret_free. */
char *secret_strdup(const char *s);
char *secret_strndup(const char *s, size_t n);
/* n zeroed bytes. */
char *secret_alloc(size_t n);
void secret_free(char *s); /* wipes; NULL ok */

/* Wipe a buffer's whole allocation, then release it. */
void secret_buf_release(struct buf *b);

/* n bytes from the system CSPRNG (randombytes_buf). */
void secret_random(void *buf, size_t n);

#endif
