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
 * 32 bytes).  With create != 0 and no file, a random key is written (0600)
 * and a warning says who can read the session.  Free with
 * secret_key_release.
 */
int secret_key_load(struct secret_key *key, const char *path, int create)
	__attribute__((warn_unused_result));
void secret_key_release(struct secret_key *key);

/* Seal plain into out (nonce || secretbox); open reverses it and fails
 * with ICPD_EAUTH-free ICPD_EPROTO on a bad key or a tampered file. */
int secret_seal(const struct secret_key *key, const void *plain, size_t len, struct buf *out)
	__attribute__((warn_unused_result));
int secret_open(const struct secret_key *key, const void *sealed, size_t len, struct buf *out)
	__attribute__((warn_unused_result));

/* Locked, guarded memory for a NUL-terminated secret string. */
char *secret_strdup(const char *s);
char *secret_alloc(size_t n);
void secret_free(char *s); /* wipes; NULL ok */

#endif
