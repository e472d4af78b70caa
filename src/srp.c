/*
 * Apple's SRP-6a variant (auth-protocol.md §4) over OpenSSL libcrypto.
 *
 * Only N, g, a, A, B, k, u, x, v and S are numbers.  The salt and every
 * hash output stay byte strings: turning them into a BIGNUM and back drops
 * leading zero bytes, and Apple then rejects the login as a wrong password
 * for about one account in 256 (§4.1).  MIN() is the big-endian form without
 * leading zeros (BN_bn2bin), PAD() the same left-padded to 256 bytes.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "icpd/error.h"
#include "icpd/srp.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define SRP_N_BYTES 256
#define SRP_HASH_BYTES 32
#define SRP_A_SECRET_BYTES 32
#define SRP_MIN_ITERATIONS 1
#define SRP_MAX_ITERATIONS 1000000
#define SRP_MAX_SALT 1024

/* RFC 5054 appendix A, 2048-bit group; g = 2. */
static const char srp_n_hex[] =
	"AC6BDB41324A9A9BF166DE5E1389582FAF72B6651987EE07FC3192943DB56050"
	"A37329CBB4A099ED8193E0757767A13DD52312AB4B03310DCD7F48A9DA04FD50"
	"E8083969EDB767B0CF6095179A163AB3661A05FBD5FAAAE82918A9962F0B93B8"
	"55F97993EC975EEAA80D740ADBF4FF747359D041D5C33EA71D281E446B14773B"
	"CA97B43A23FB801676BD207A436C6481F1D2B9078717461A5B9D32E688F87748"
	"544523B524B0D57D5EA77A2775D2ECFA032CFBDBF52FB3786160279004E57AE6"
	"AF874E7303CE53299CCC041C7BC308D82A5698F3A8D0C38271AE35F8E9DBFBB6"
	"94B5C803D89F7AE435DE236D525F54759B65E372FCD68EF20FA7111F9E4AFF73";

struct srp_client {
	BIGNUM *a;       /* secret */
	BIGNUM *A;
	uint8_t A_min[SRP_N_BYTES];
	size_t A_len;
	char *A_b64;
};

/* One piece of a hash input. */
struct part {
	const void *p;
	size_t n;
};

static int sha256_parts(uint8_t out[SRP_HASH_BYTES], const struct part *parts, size_t nparts)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	int err = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		err = error_set(ICPD_EINTERNAL, "cannot start sha256");
		goto done;
	}
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].n && EVP_DigestUpdate(ctx, parts[i].p, parts[i].n) != 1) {
			err = error_set(ICPD_EINTERNAL, "cannot compute sha256");
			goto done;
		}
	}
	if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != SRP_HASH_BYTES) {
		err = error_set(ICPD_EINTERNAL, "cannot finish sha256");
	}
done:
	EVP_MD_CTX_free(ctx);
	return err;
}

static BIGNUM *srp_n(void)
{
	BIGNUM *n = NULL;

	if (!BN_hex2bn(&n, srp_n_hex)) {
		abort();
	}
	return n;
}

/* A = g^a mod N into c->A and its MIN form. */
static int compute_A(struct srp_client *c, const BIGNUM *n, BN_CTX *ctx)
{
	BIGNUM *g = BN_new();
	int err = 0;

	if (!g || !BN_set_word(g, 2) || !c->A || !BN_mod_exp(c->A, g, c->a, n, ctx)) {
		err = error_set(ICPD_EINTERNAL, "cannot compute the srp public value");
		goto done;
	}
	c->A_len = (size_t)BN_num_bytes(c->A);
	if (c->A_len == 0 || c->A_len > SRP_N_BYTES) {
		err = error_set(ICPD_EINTERNAL, "srp public value out of range");
		goto done;
	}
	BN_bn2bin(c->A, c->A_min);
done:
	BN_free(g);
	return err;
}

int srp_client_new(struct srp_client **out, const uint8_t *a_bytes, size_t a_len)
{
	struct srp_client *c = xcalloc(1, sizeof(*c));
	BIGNUM *n = srp_n();
	BN_CTX *ctx = BN_CTX_new();
	uint8_t buf[SRP_A_SECRET_BYTES];
	int err = 0;

	*out = NULL;
	c->a = BN_secure_new();
	c->A = BN_new();
	if (!ctx || !c->a || !c->A) {
		err = error_set(ICPD_EINTERNAL, "out of memory for srp");
		goto done;
	}
	if (a_bytes) {
		if (a_len == 0 || a_len > SRP_N_BYTES || !BN_bin2bn(a_bytes, (int)a_len, c->a) ||
			BN_is_zero(c->a)) {
			err = error_set(ICPD_EUSAGE, "invalid srp secret");
			goto done;
		}
		err = compute_A(c, n, ctx);
		if (err) {
			goto done;
		}
	} else {
		/*
		 * Re-draw until MIN(A) has the full 256 bytes: how Apple
		 * hashes a short A is undocumented (§4.1 pitfall 2), and the
		 * server cannot tell that we chose.  About 1 draw in 172 is
		 * short, so this ends quickly; the bound only guards a
		 * broken random generator.
		 */
		for (int tries = 0;; tries++) {
			if (tries == 1000) {
				err = error_set(ICPD_EINTERNAL, "cannot draw an srp secret");
				goto done;
			}
			if (RAND_bytes(buf, sizeof(buf)) != 1 ||
				!BN_bin2bn(buf, sizeof(buf), c->a)) {
				err = error_set(ICPD_EINTERNAL, "random generator failed");
				goto done;
			}
			if (BN_is_zero(c->a)) {
				continue;
			}
			err = compute_A(c, n, ctx);
			if (err) {
				goto done;
			}
			if (c->A_len == SRP_N_BYTES) {
				break;
			}
		}
	}
	c->A_b64 = srp_b64_encode(c->A_min, c->A_len);
done:
	OPENSSL_cleanse(buf, sizeof(buf));
	BN_CTX_free(ctx);
	BN_free(n);
	if (err) {
		srp_client_free(c);
	} else {
		*out = c;
	}
	return err;
}

void srp_client_free(struct srp_client *c)
{
	if (!c) {
		return;
	}
	BN_clear_free(c->a);
	BN_free(c->A);
	free(c->A_b64);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

const char *srp_client_A_b64(const struct srp_client *c)
{
	return c->A_b64;
}

static void hex_lower(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
}

/* p = PBKDF2-HMAC-SHA256(P, salt, iterations, 32); P per protocol (§4). */
static int password_key(const char *password, enum srp_protocol proto, const uint8_t *salt,
	size_t salt_len, long iterations, uint8_t out[SRP_HASH_BYTES])
{
	uint8_t p0[SRP_HASH_BYTES] = { 0 };
	char hex[2 * SRP_HASH_BYTES] = { 0 };
	const void *input = p0;
	size_t input_len = sizeof(p0);
	struct part pw = { password, strlen(password) };
	int err;

	err = sha256_parts(p0, &pw, 1);
	if (err) {
		goto done;
	}
	if (proto == SRP_S2K_FO) {
		/* s2k_fo feeds the lowercase hex text of SHA256(password) */
		hex_lower(p0, sizeof(p0), hex);
		input = hex;
		input_len = sizeof(hex);
	}
	if (PKCS5_PBKDF2_HMAC(input, (int)input_len, salt, (int)salt_len, (int)iterations,
		    EVP_sha256(), SRP_HASH_BYTES, out) != 1) {
		err = error_set(ICPD_EINTERNAL, "pbkdf2 failed");
	}
done:
	OPENSSL_cleanse(p0, sizeof(p0));
	OPENSSL_cleanse(hex, sizeof(hex));
	return err;
}

int srp_client_proofs(struct srp_client *c, const char *account, const char *password,
	enum srp_protocol proto, const uint8_t *salt, size_t salt_len, long iterations,
	const uint8_t *B, size_t B_len, uint8_t m1[32], uint8_t m2[32])
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *n = srp_n(), *g = BN_new(), *bB = BN_new(), *bk = BN_new(), *bu = BN_new();
	BIGNUM *bx = BN_secure_new(), *bv = BN_secure_new(), *kv = BN_secure_new();
	BIGNUM *base = BN_secure_new(), *ux = BN_secure_new(), *ex = BN_secure_new();
	BIGNUM *bS = BN_secure_new();
	uint8_t p[SRP_HASH_BYTES] = { 0 }, inner[SRP_HASH_BYTES] = { 0 }, x[SRP_HASH_BYTES] = { 0 };
	uint8_t k[SRP_HASH_BYTES] = { 0 }, u[SRP_HASH_BYTES] = { 0 }, K[SRP_HASH_BYTES] = { 0 };
	uint8_t hn[SRP_HASH_BYTES] = { 0 }, hg[SRP_HASH_BYTES] = { 0 }, hi[SRP_HASH_BYTES] = { 0 };
	uint8_t Nmin[SRP_N_BYTES], gpad[SRP_N_BYTES], Apad[SRP_N_BYTES], Bpad[SRP_N_BYTES];
	uint8_t Bmin[SRP_N_BYTES], Smin[SRP_N_BYTES] = { 0 };
	size_t Bmin_len, Smin_len;
	static const char colon = ':';
	bool zero = true;
	int err = 0;

	if (!ctx || !g || !bB || !bk || !bu || !bx || !bv || !kv || !base || !ux || !ex || !bS) {
		err = error_set(ICPD_EINTERNAL, "out of memory for srp");
		goto done;
	}
	if (proto != SRP_S2K && proto != SRP_S2K_FO) {
		err = error_set(ICPD_EPROTO, "unknown srp protocol");
		goto done;
	}
	if (iterations < SRP_MIN_ITERATIONS || iterations > SRP_MAX_ITERATIONS) {
		err = error_set(ICPD_EPROTO, "srp iteration count %ld is out of range [%d, %d]",
			iterations, SRP_MIN_ITERATIONS, SRP_MAX_ITERATIONS);
		goto done;
	}
	if (salt_len == 0 || salt_len > SRP_MAX_SALT) {
		err = error_set(ICPD_EPROTO, "srp salt has a bad length (%zu bytes)", salt_len);
		goto done;
	}
	if (B_len == 0 || B_len > SRP_N_BYTES || !BN_bin2bn(B, (int)B_len, bB)) {
		err = error_set(ICPD_EPROTO, "srp server value has a bad length (%zu bytes)", B_len);
		goto done;
	}
	/* B mod N == 0 would let the server fix S (SRP-6a safeguard) */
	if (!BN_nnmod(base, bB, n, ctx)) {
		err = error_set(ICPD_EINTERNAL, "bignum failure");
		goto done;
	}
	if (BN_is_zero(base)) {
		err = error_set(ICPD_EPROTO, "invalid srp server value (B mod N is 0)");
		goto done;
	}

	/* k = H(MIN(N) | PAD(g)) */
	if (!BN_set_word(g, 2) || BN_bn2bin(n, Nmin) != SRP_N_BYTES ||
		BN_bn2binpad(g, gpad, SRP_N_BYTES) != SRP_N_BYTES ||
		BN_bn2binpad(c->A, Apad, SRP_N_BYTES) != SRP_N_BYTES ||
		BN_bn2binpad(bB, Bpad, SRP_N_BYTES) != SRP_N_BYTES) {
		err = error_set(ICPD_EINTERNAL, "bignum encoding failure");
		goto done;
	}
	Bmin_len = (size_t)BN_bn2bin(bB, Bmin);
	{
		struct part kp[] = { { Nmin, SRP_N_BYTES }, { gpad, SRP_N_BYTES } };
		struct part up[] = { { Apad, SRP_N_BYTES }, { Bpad, SRP_N_BYTES } };

		err = sha256_parts(k, kp, ARRAY_SIZE(kp));
		if (!err) {
			err = sha256_parts(u, up, ARRAY_SIZE(up));
		}
		if (err) {
			goto done;
		}
	}
	for (size_t i = 0; i < sizeof(u); i++) {
		zero = zero && u[i] == 0;
	}
	if (zero) {
		err = error_set(ICPD_EPROTO, "invalid srp server value (u is 0)");
		goto done;
	}

	/* x = H(salt | H(":" | p)): no username in x, salt bytes as received */
	err = password_key(password, proto, salt, salt_len, iterations, p);
	if (err) {
		goto done;
	}
	{
		struct part ip[] = { { &colon, 1 }, { p, sizeof(p) } };
		struct part xp[2];

		err = sha256_parts(inner, ip, ARRAY_SIZE(ip));
		if (err) {
			goto done;
		}
		xp[0] = (struct part){ salt, salt_len };
		xp[1] = (struct part){ inner, sizeof(inner) };
		err = sha256_parts(x, xp, ARRAY_SIZE(xp));
		if (err) {
			goto done;
		}
	}

	/* S = (B - k * g^x) ^ (a + u * x) mod N */
	if (!BN_bin2bn(x, sizeof(x), bx) || !BN_bin2bn(k, sizeof(k), bk) ||
		!BN_bin2bn(u, sizeof(u), bu) || !BN_mod_exp(bv, g, bx, n, ctx) ||
		!BN_mod_mul(kv, bk, bv, n, ctx) || !BN_mod_sub(base, bB, kv, n, ctx) ||
		!BN_mul(ux, bu, bx, ctx) || !BN_add(ex, c->a, ux) ||
		!BN_mod_exp(bS, base, ex, n, ctx)) {
		err = error_set(ICPD_EINTERNAL, "bignum failure");
		goto done;
	}
	Smin_len = (size_t)BN_bn2bin(bS, Smin);

	/* K = H(MIN(S)) */
	{
		struct part sp[] = { { Smin, Smin_len } };
		struct part ap[] = { { account, strlen(account) } };
		struct part np[] = { { Nmin, SRP_N_BYTES } };
		struct part gp[] = { { gpad, SRP_N_BYTES } };
		struct part mp[6];
		struct part m2p[3];

		err = sha256_parts(K, sp, 1);
		if (!err) {
			err = sha256_parts(hi, ap, 1);
		}
		if (!err) {
			err = sha256_parts(hn, np, 1);
		}
		if (!err) {
			err = sha256_parts(hg, gp, 1);
		}
		if (err) {
			goto done;
		}
		for (size_t i = 0; i < sizeof(hn); i++) {
			hn[i] ^= hg[i];
		}
		/* M1 = H((H(N) xor H(PAD(g))) | H(I) | salt | MIN(A) | MIN(B) | K) */
		mp[0] = (struct part){ hn, sizeof(hn) };
		mp[1] = (struct part){ hi, sizeof(hi) };
		mp[2] = (struct part){ salt, salt_len };
		mp[3] = (struct part){ c->A_min, c->A_len };
		mp[4] = (struct part){ Bmin, Bmin_len };
		mp[5] = (struct part){ K, sizeof(K) };
		err = sha256_parts(m1, mp, ARRAY_SIZE(mp));
		if (err) {
			goto done;
		}
		/* M2 = H(MIN(A) | M1 | K) */
		m2p[0] = (struct part){ c->A_min, c->A_len };
		m2p[1] = (struct part){ m1, SRP_HASH_BYTES };
		m2p[2] = (struct part){ K, sizeof(K) };
		err = sha256_parts(m2, m2p, ARRAY_SIZE(m2p));
	}
done:
	OPENSSL_cleanse(p, sizeof(p));
	OPENSSL_cleanse(inner, sizeof(inner));
	OPENSSL_cleanse(x, sizeof(x));
	OPENSSL_cleanse(K, sizeof(K));
	OPENSSL_cleanse(Smin, sizeof(Smin));
	BN_CTX_free(ctx);
	BN_free(n);
	BN_free(g);
	BN_free(bB);
	BN_free(bk);
	BN_free(bu);
	BN_clear_free(bx);
	BN_clear_free(bv);
	BN_clear_free(kv);
	BN_clear_free(base);
	BN_clear_free(ux);
	BN_clear_free(ex);
	BN_clear_free(bS);
	if (err) {
		OPENSSL_cleanse(m1, SRP_HASH_BYTES);
		OPENSSL_cleanse(m2, SRP_HASH_BYTES);
	}
	return err;
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *srp_b64_encode(const uint8_t *data, size_t len)
{
	char *out = xmalloc((len + 2) / 3 * 4 + 1);
	char *o = out;
	size_t i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];

		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = b64_alphabet[(v >> 6) & 63];
		*o++ = b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)data[i] << 16;

		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;

		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = b64_alphabet[(v >> 6) & 63];
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z') {
		return ch - 'A';
	}
	if (ch >= 'a' && ch <= 'z') {
		return ch - 'a' + 26;
	}
	if (ch >= '0' && ch <= '9') {
		return ch - '0' + 52;
	}
	if (ch == '+') {
		return 62;
	}
	if (ch == '/') {
		return 63;
	}
	return -1;
}

/*
 * Strict: only the standard alphabet, '=' padding only at the end (or no
 * padding at all), no whitespace, and the unused bits of the last
 * character must be zero, so every byte string has one accepted form.
 */
int srp_b64_decode(const char *text, uint8_t **out, size_t *out_len)
{
	size_t len = strlen(text), data_len = len, pad = 0, o = 0;
	uint8_t *res;
	uint32_t acc = 0;
	int bits = 0;

	*out = NULL;
	*out_len = 0;
	while (data_len > 0 && text[data_len - 1] == '=') {
		data_len--;
		pad++;
	}
	if (pad > 2 || (pad > 0 && len % 4 != 0) || data_len % 4 == 1) {
		return error_set(ICPD_EPROTO, "invalid base64 (bad length or padding)");
	}
	res = xmalloc(data_len / 4 * 3 + 3);
	for (size_t i = 0; i < data_len; i++) {
		int v = b64_value(text[i]);

		if (v < 0) {
			free(res);
			return error_set(ICPD_EPROTO, "invalid base64 (unexpected character)");
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			res[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) {
		free(res);
		return error_set(ICPD_EPROTO, "invalid base64 (non-zero trailing bits)");
	}
	*out = res;
	*out_len = o;
	return 0;
}
