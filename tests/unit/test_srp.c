/*
 * SRP: every vector of srp-vectors.json (read at test time), the
 * salt-stripping trap, random draws of a, a server-side cross-check for a
 * non-ASCII password, rejection of hostile server values, and base64.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/evp.h>

#include "icpd/error.h"
#include "icpd/srp.h"

/*
 * tests/data/srp-vectors.json is a copy of the team's shared spec file
 * (shared/spec/srp-vectors.json); the shared original is tried next.
 * ICPD_SHARED_DIR overrides all.  A missing file fails the test.
 */
static const char *const vector_paths[] = {
	SOURCE_ROOT "/tests/data/srp-vectors.json",
	SHARED_DIR "/spec/srp-vectors.json",
	SOURCE_ROOT "/../../shared/spec/srp-vectors.json",
};

static json_t *vectors;

static void load_vectors(void)
{
	json_error_t jerr;
	const char *env = getenv("ICPD_SHARED_DIR");
	char path[4096];

	if (env && *env) {
		snprintf(path, sizeof(path), "%s/spec/srp-vectors.json", env);
		vectors = json_load_file(path, 0, &jerr);
		ck_assert_msg(vectors != NULL, "cannot load %s: %s", path, jerr.text);
		return;
	}
	for (size_t i = 0; i < sizeof(vector_paths) / sizeof(vector_paths[0]) && !vectors; i++) {
		vectors = json_load_file(vector_paths[i], 0, &jerr);
	}
	ck_assert_msg(vectors != NULL, "cannot load srp-vectors.json from %s: %s",
		vector_paths[0], jerr.text);
}

static void free_vectors(void)
{
	json_decref(vectors);
	vectors = NULL;
}

static const char *str_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	ck_assert_msg(json_is_string(v), "vector field '%s' missing", key);
	return json_string_value(v);
}

static uint8_t *unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *out = malloc(n / 2 + 1);

	ck_assert_uint_eq(n % 2, 0);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int b;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
	*len = n / 2;
	return out;
}

static void assert_bytes_hex(const uint8_t *got, size_t len, const char *hex, const char *what,
	const char *name)
{
	size_t elen;
	uint8_t *exp = unhex(hex, &elen);

	ck_assert_msg(elen == len && memcmp(got, exp, len) == 0, "%s: %s differs", name, what);
	free(exp);
}

/*
 * Run one vector: feed its a, salt, B and protocol to the client and compare
 * A (bytes and base64), M1 and M2 with the file.
 */
static void run_vector(json_t *v, const char *default_a_hex, uint8_t m1_out[32])
{
	json_t *inputs = json_object_get(vectors, "inputs");
	const char *name = str_at(v, "name");
	const char *a_hex = json_object_get(v, "a_hex") ? str_at(v, "a_hex") : default_a_hex;
	const char *proto = str_at(v, "protocol");
	const char *user = str_at(inputs, "username");
	const char *password = str_at(inputs, "password");
	long iterations = (long)json_integer_value(json_object_get(inputs, "iterations"));
	struct srp_client *c = NULL;
	uint8_t *a, *salt, *B, *salt_b64, *B_b64, *A_dec;
	size_t a_len, salt_len, B_len, sb_len, bb_len, A_len;
	uint8_t m1[32], m2[32];

	ck_assert_int_gt(iterations, 0);
	a = unhex(a_hex, &a_len);
	salt = unhex(str_at(v, "salt_hex"), &salt_len);
	B = unhex(str_at(v, "B_hex"), &B_len);

	/* the wire forms decode to the same bytes */
	ck_assert_int_eq(srp_b64_decode(str_at(v, "salt_b64"), &salt_b64, &sb_len), 0);
	ck_assert_msg(sb_len == salt_len && memcmp(salt_b64, salt, salt_len) == 0, "%s: salt_b64",
		name);
	ck_assert_int_eq(srp_b64_decode(str_at(v, "B_b64"), &B_b64, &bb_len), 0);
	ck_assert_msg(bb_len == B_len && memcmp(B_b64, B, B_len) == 0, "%s: B_b64", name);

	ck_assert_int_eq(srp_client_new(&c, a, a_len), 0);
	ck_assert_str_eq(srp_client_A_b64(c), str_at(v, "A_b64"));
	ck_assert_int_eq(srp_b64_decode(srp_client_A_b64(c), &A_dec, &A_len), 0);
	assert_bytes_hex(A_dec, A_len, str_at(v, "A_hex"), "A", name);

	ck_assert_int_eq(srp_client_proofs(c, user, password,
				 strcmp(proto, "s2k_fo") == 0 ? SRP_S2K_FO : SRP_S2K, salt_b64,
				 sb_len, iterations, B_b64, bb_len, m1, m2),
		0);
	assert_bytes_hex(m1, 32, str_at(v, "M1_hex"), "M1", name);
	assert_bytes_hex(m2, 32, str_at(v, "M2_hex"), "M2", name);
	{
		char *m1b = srp_b64_encode(m1, 32), *m2b = srp_b64_encode(m2, 32);

		ck_assert_str_eq(m1b, str_at(v, "M1_b64"));
		ck_assert_str_eq(m2b, str_at(v, "M2_b64"));
		free(m1b);
		free(m2b);
	}
	if (m1_out) {
		memcpy(m1_out, m1, 32);
	}
	srp_client_free(c);
	free(a);
	free(salt);
	free(B);
	free(salt_b64);
	free(B_b64);
	free(A_dec);
}

START_TEST(test_main_vectors)
{
	json_t *list = json_object_get(vectors, "vectors");
	const char *a_hex = str_at(json_object_get(vectors, "inputs"), "a_hex");
	size_t i;
	json_t *v;
	int seen_s2k = 0, seen_fo = 0;

	ck_assert_uint_ge(json_array_size(list), 2);
	json_array_foreach(list, i, v) {
		run_vector(v, a_hex, NULL);
		seen_s2k += strcmp(str_at(v, "protocol"), "s2k") == 0;
		seen_fo += strcmp(str_at(v, "protocol"), "s2k_fo") == 0;
	}
	ck_assert_int_ge(seen_s2k, 1);
	ck_assert_int_ge(seen_fo, 1);
}
END_TEST

START_TEST(test_salt_leading_zero)
{
	json_t *list = json_object_get(json_object_get(json_object_get(vectors, "edge_cases"),
					       "salt_leading_zero"),
		"vectors");
	size_t i;
	json_t *v;

	ck_assert_uint_ge(json_array_size(list), 2);
	json_array_foreach(list, i, v) {
		uint8_t m1[32];
		json_t *wrong = json_object_get(v, "client_that_strips_the_salt_sends");
		size_t wlen;
		uint8_t *wm1;

		ck_assert(strncmp(str_at(v, "salt_hex"), "00", 2) == 0);
		run_vector(v, NULL, m1);
		/* and not what a salt-stripping client sends */
		ck_assert_ptr_nonnull(wrong);
		wm1 = unhex(str_at(wrong, "M1_hex"), &wlen);
		ck_assert_uint_eq(wlen, 32);
		ck_assert_msg(memcmp(m1, wm1, 32) != 0, "%s: produced the stripped-salt M1",
			str_at(v, "name"));
		free(wm1);
	}
}
END_TEST

START_TEST(test_minimal_encodings)
{
	json_t *list = json_object_get(json_object_get(json_object_get(vectors, "edge_cases"),
					       "minimal_encodings"),
		"vectors");
	size_t i;
	json_t *v;
	int short_A = 0;

	ck_assert_uint_ge(json_array_size(list), 3);
	json_array_foreach(list, i, v) {
		run_vector(v, NULL, NULL);
		short_A += strlen(str_at(v, "A_hex")) < 512;
	}
	ck_assert_int_eq(short_A, 1); /* the short-A vector kept its 255 bytes */
}
END_TEST

START_TEST(test_random_a_full_length)
{
	char *prev = NULL;

	for (int i = 0; i < 200; i++) {
		struct srp_client *c = NULL;
		uint8_t *A;
		size_t len;

		ck_assert_int_eq(srp_client_new(&c, NULL, 0), 0);
		ck_assert_int_eq(srp_b64_decode(srp_client_A_b64(c), &A, &len), 0);
		ck_assert_uint_eq(len, 256);
		ck_assert_uint_ne(A[0], 0);
		if (prev) {
			ck_assert_str_ne(prev, srp_client_A_b64(c));
			free(prev);
		}
		prev = strdup(srp_client_A_b64(c));
		free(A);
		srp_client_free(c);
	}
	free(prev);
}
END_TEST

/* The server side of §4, written independently with BN: v = g^x,
 * B = k v + g^b, S = (A v^u)^b, K = H(S), M1. */
static void sha256(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	ck_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
	EVP_DigestUpdate(ctx, a, an);
	if (bn) {
		EVP_DigestUpdate(ctx, b, bn);
	}
	EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
}

static void server_check(const char *user, const char *password, int fo)
{
	static const uint8_t salt[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
		0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	const char *nhex = str_at(json_object_get(vectors, "group"), "N_hex");
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *N = NULL, *g = BN_new(), *x = BN_new(), *v = BN_new(), *b = BN_new();
	BIGNUM *B = BN_new(), *k = BN_new(), *t = BN_new(), *A = BN_new(), *u = BN_new();
	BIGNUM *S = BN_new();
	uint8_t p0[32], p[32], inner[32], xh[32], kh[32], uh[32], K[32], hn[32], hg[32], hi[32];
	uint8_t buf[512], Nb[256], gp[256], Bb[256], Sb[256], m1[32], m2[32], em1[32], em2[32];
	uint8_t *Ab;
	size_t Alen, Blen, Slen;
	char hex[65];
	struct srp_client *c = NULL;
	EVP_MD_CTX *mctx;

	ck_assert(BN_hex2bn(&N, nhex) > 0);
	BN_set_word(g, 2);
	/* password key */
	sha256(password, strlen(password), NULL, 0, p0);
	for (int i = 0; i < 32; i++) {
		snprintf(hex + 2 * i, 3, "%02x", p0[i]);
	}
	ck_assert(PKCS5_PBKDF2_HMAC(fo ? hex : (const char *)p0, fo ? 64 : 32, salt, 16, 1000,
			  EVP_sha256(), 32, p) == 1);
	sha256(":", 1, p, 32, inner);
	sha256(salt, 16, inner, 32, xh);
	BN_bin2bn(xh, 32, x);
	BN_mod_exp(v, g, x, N, ctx);
	/* k */
	BN_bn2bin(N, Nb);
	BN_bn2binpad(g, gp, 256);
	sha256(Nb, 256, gp, 256, kh);
	BN_bin2bn(kh, 32, k);
	/* B = k v + g^b with a fixed b */
	BN_set_word(b, 0x1234567);
	BN_lshift(b, b, 200);
	BN_add_word(b, 99);
	BN_mod_mul(t, k, v, N, ctx);
	BN_mod_exp(B, g, b, N, ctx);
	BN_mod_add(B, B, t, N, ctx);
	Blen = (size_t)BN_bn2bin(B, Bb);

	ck_assert_int_eq(srp_client_new(&c, NULL, 0), 0);
	ck_assert_int_eq(srp_b64_decode(srp_client_A_b64(c), &Ab, &Alen), 0);
	ck_assert_int_eq(srp_client_proofs(c, user, password, fo ? SRP_S2K_FO : SRP_S2K, salt, 16,
				 1000, Bb, Blen, m1, m2),
		0);

	/* server: u, S = (A v^u)^b, K, expected M1/M2 */
	BN_bin2bn(Ab, (int)Alen, A);
	memset(buf, 0, sizeof(buf));
	memcpy(buf + 256 - Alen, Ab, Alen);
	BN_bn2binpad(B, buf + 256, 256);
	sha256(buf, 512, NULL, 0, uh);
	BN_bin2bn(uh, 32, u);
	BN_mod_exp(t, v, u, N, ctx);
	BN_mod_mul(t, A, t, N, ctx);
	BN_mod_exp(S, t, b, N, ctx);
	Slen = (size_t)BN_bn2bin(S, Sb);
	sha256(Sb, Slen, NULL, 0, K);
	sha256(Nb, 256, NULL, 0, hn);
	sha256(gp, 256, NULL, 0, hg);
	for (int i = 0; i < 32; i++) {
		hn[i] ^= hg[i];
	}
	sha256(user, strlen(user), NULL, 0, hi);
	mctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(mctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(mctx, hn, 32);
	EVP_DigestUpdate(mctx, hi, 32);
	EVP_DigestUpdate(mctx, salt, 16);
	EVP_DigestUpdate(mctx, Ab, Alen);
	EVP_DigestUpdate(mctx, Bb, Blen);
	EVP_DigestUpdate(mctx, K, 32);
	EVP_DigestFinal_ex(mctx, em1, NULL);
	EVP_DigestInit_ex(mctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(mctx, Ab, Alen);
	EVP_DigestUpdate(mctx, em1, 32);
	EVP_DigestUpdate(mctx, K, 32);
	EVP_DigestFinal_ex(mctx, em2, NULL);
	EVP_MD_CTX_free(mctx);
	ck_assert_msg(memcmp(m1, em1, 32) == 0, "server rejects M1 (fo=%d)", fo);
	ck_assert_msg(memcmp(m2, em2, 32) == 0, "server computes another M2 (fo=%d)", fo);

	/* a different password must not pass */
	ck_assert_int_eq(srp_client_proofs(c, user, "Pässwört 密码 🔒", fo ? SRP_S2K_FO : SRP_S2K,
				 salt, 16, 1000, Bb, Blen, m1, m2),
		0);
	ck_assert(memcmp(m1, em1, 32) != 0);

	srp_client_free(c);
	free(Ab);
	BN_free(N);
	BN_free(g);
	BN_free(x);
	BN_free(v);
	BN_free(b);
	BN_free(B);
	BN_free(k);
	BN_free(t);
	BN_free(A);
	BN_free(u);
	BN_free(S);
	BN_CTX_free(ctx);
}

START_TEST(test_non_ascii_password_server_side)
{
	server_check("jdoe@example.com", "Pässwört 密码 🔑", 0);
	server_check("jdoe@example.com", "Pässwört 密码 🔑", 1);
	server_check("test@example.com", "correct horse battery staple", 0);
}
END_TEST

START_TEST(test_rejects_bad_server_values)
{
	static const uint8_t salt[16] = { 1 };
	const char *nhex = str_at(json_object_get(vectors, "group"), "N_hex");
	BIGNUM *N = NULL;
	uint8_t Nb[256], N2[256], zero[256] = { 0 }, big[257], m1[32], m2[32], one = 1;
	struct srp_client *c = NULL;
	const char *pw = "pw";

	memset(big, 1, sizeof(big));
	ck_assert(BN_hex2bn(&N, nhex) > 0);
	BN_bn2bin(N, Nb);
	/* 2N does not fit in 256 bytes, but N itself and 0 do */
	memcpy(N2, Nb, 256);
	ck_assert_int_eq(srp_client_new(&c, NULL, 0), 0);

	error_clear();
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, 1000, Nb, 256, m1, m2),
		ICPD_EPROTO);
	ck_assert_ptr_nonnull(strstr(error_message(), "B mod N"));
	ck_assert_int_eq(
		srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, 1000, zero, 256, m1, m2),
		ICPD_EPROTO);
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, 1000, zero, 1, m1, m2),
		ICPD_EPROTO);
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, 1000, big, 257, m1, m2),
		ICPD_EPROTO);
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, 1000, N2, 0, m1, m2),
		ICPD_EPROTO);
	/* iteration bounds */
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, 0, &one, 1, m1, m2),
		ICPD_EPROTO);
	ck_assert_int_eq(
		srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, 1000001, &one, 1, m1, m2),
		ICPD_EPROTO);
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, -5, &one, 1, m1, m2),
		ICPD_EPROTO);
	/* empty salt */
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, SRP_S2K, salt, 0, 1000, &one, 1, m1, m2),
		ICPD_EPROTO);
	/* an unknown protocol value */
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, (enum srp_protocol)7, salt, 16, 1000, &one,
				 1, m1, m2),
		ICPD_EPROTO);
	/* the bounds themselves are accepted (B = 1 is a legal value) */
	ck_assert_int_eq(srp_client_proofs(c, "u", pw, SRP_S2K, salt, 16, 1, &one, 1, m1, m2), 0);
	srp_client_free(c);

	/* a given a of zero or too long */
	ck_assert_int_eq(srp_client_new(&c, zero, 32), ICPD_EUSAGE);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(srp_client_new(&c, big, 257), ICPD_EUSAGE);
	BN_free(N);
}
END_TEST

START_TEST(test_base64)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
		"Zm9vYmFy" };
	static const char *const bad[] = { "Zg=", "Zg===", "Z", "Zm9v\n", " Zm9v", "Zh==",
		"Zm$v", "Zg==Zg==", "=", "====", "Zm9=v", "Zm9vYg=", "Zm-_" };
	uint8_t all[256], *out;
	size_t len;
	char *e;

	for (size_t i = 0; i < 7; i++) {
		e = srp_b64_encode((const uint8_t *)plain[i], strlen(plain[i]));
		ck_assert_str_eq(e, enc[i]);
		free(e);
		ck_assert_int_eq(srp_b64_decode(enc[i], &out, &len), 0);
		ck_assert_uint_eq(len, strlen(plain[i]));
		ck_assert(memcmp(out, plain[i], len) == 0);
		free(out);
	}
	/* unpadded input of a valid length is accepted */
	ck_assert_int_eq(srp_b64_decode("Zg", &out, &len), 0);
	ck_assert_uint_eq(len, 1);
	ck_assert_uint_eq(out[0], 'f');
	free(out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (uint8_t *)1;
		ck_assert_msg(srp_b64_decode(bad[i], &out, &len) == ICPD_EPROTO, "accepted '%s'",
			bad[i]);
		ck_assert_ptr_null(out);
	}
	ck_assert_int_eq(srp_b64_decode("Zm8", &out, &len), 0);
	ck_assert_uint_eq(len, 2);
	free(out);
	/* every byte value round-trips */
	for (int i = 0; i < 256; i++) {
		all[i] = (uint8_t)(255 - i);
	}
	for (size_t n = 0; n <= 256; n += 37) {
		e = srp_b64_encode(all, n);
		ck_assert_int_eq(srp_b64_decode(e, &out, &len), 0);
		ck_assert_uint_eq(len, n);
		ck_assert(memcmp(out, all, n) == 0);
		free(out);
		free(e);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("srp");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, load_vectors, free_vectors);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_main_vectors);
	tcase_add_test(tc, test_salt_leading_zero);
	tcase_add_test(tc, test_minimal_encodings);
	tcase_add_test(tc, test_random_a_full_length);
	tcase_add_test(tc, test_non_ascii_password_server_side);
	tcase_add_test(tc, test_rejects_bad_server_values);
	tcase_add_test(tc, test_base64);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
