/*
 * Apple's SRP-6a variant for idmsa signin/init + signin/complete
 * (auth-protocol.md §4): 2048-bit RFC 5054 group, SHA-256, PBKDF2 with
 * protocols s2k and s2k_fo.  The salt and every hash output stay byte
 * strings and never pass through a BIGNUM.
 */
#ifndef ICPD_SRP_H
#define ICPD_SRP_H

#include <stddef.h>
#include <stdint.h>

enum srp_protocol { SRP_S2K = 0, SRP_S2K_FO };

struct srp_client; /* holds a (secret) and A */

/* a_bytes: NULL = draw randomly (re-drawn until A is 256 bytes long);
 * tests pass the vector's a.  Caller frees with srp_client_free. */
int srp_client_new(struct srp_client **out, const uint8_t *a_bytes, size_t a_len)
	__attribute__((warn_unused_result));
void srp_client_free(struct srp_client *c);

/* base64 of MIN(A), for signin/init "a".  Borrowed from c. */
const char *srp_client_A_b64(const struct srp_client *c);

/*
 * Compute M1 and M2 (each 32 bytes) from the init response.  account is
 * the accountName exactly as sent; salt and B are the decoded bytes.
 * Returns ICPD_EPROTO for a bad B (B mod N == 0), u == 0, or an iteration
 * count outside [1, 1000000].
 */
int srp_client_proofs(struct srp_client *c, const char *account, const char *password,
	enum srp_protocol proto, const uint8_t *salt, size_t salt_len, long iterations,
	const uint8_t *B, size_t B_len, uint8_t m1[32], uint8_t m2[32])
	__attribute__((warn_unused_result));

/* Standard base64 with padding; caller frees.  decode: 0 or ICPD_EPROTO,
 * *out malloc'd. */
char *srp_b64_encode(const uint8_t *data, size_t len);
int srp_b64_decode(const char *text, uint8_t **out, size_t *out_len)
	__attribute__((warn_unused_result));

#endif
