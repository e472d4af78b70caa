/*
 * Secrets: the one module that includes <sodium.h>.  The key that seals the
 * session files, secretbox sealing with a versioned header, locked and
 * guarded memory for passwords and tokens, and no core dumps.
 *
 * Sealed format: "ICPD1" | 24-byte random nonce | crypto_secretbox_easy
 * (16-byte MAC + ciphertext).  The magic lets a later version change the
 * cipher and still recognise (and migrate) files written by this one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/secret.h"
#include "icpd/util.h"
#include "icpd/version.h"
#include "icpd/banned.h"

#define SEAL_MAGIC "ICPD1"
#define SEAL_MAGIC_LEN 5
#define SEAL_OVERHEAD (SEAL_MAGIC_LEN + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
#define KEY_FILE_MAX 256

const char *secret_describe(void)
{
	static char text[64];

	snprintf(text, sizeof(text), "libsodium %s", sodium_version_string());
	return text;
}

static int ensure_sodium(void)
{
	/* idempotent and thread-safe; sodium_malloc needs it first */
	if (sodium_init() < 0) {
		return error_set(ICPD_EINTERNAL, "cannot initialise libsodium");
	}
	return 0;
}

int secret_init(void)
{
	struct rlimit no_core = { 0, 0 };
	int err = ensure_sodium();

	if (err) {
		return err;
	}
	if (setrlimit(RLIMIT_CORE, &no_core) != 0) {
		return error_set(ICPD_EINTERNAL, "cannot switch off core dumps: %s", strerror(errno));
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		return error_set(ICPD_EINTERNAL, "cannot mark the process non-dumpable: %s",
			strerror(errno));
	}
	return 0;
}

void secret_random(void *buf, size_t n)
{
	if (ensure_sodium()) {
		abort();
	}
	randombytes_buf(buf, n);
}

char *secret_alloc(size_t n)
{
	char *p;

	if (ensure_sodium()) {
		abort();
	}
	p = sodium_malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "icpd: out of locked memory (%zu bytes)\n", n);
		abort();
	}
	memset(p, 0, n ? n : 1);
	return p;
}

char *secret_strdup(const char *s)
{
	size_t n;
	char *p;

	if (!s) {
		return NULL;
	}
	n = strlen(s);
	p = secret_alloc(n + 1);
	memcpy(p, s, n + 1);
	return p;
}

char *secret_strndup(const char *s, size_t n)
{
	char *p = secret_alloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void secret_free(char *s)
{
	/* sodium_free wipes the region before unmapping it */
	sodium_free(s);
}

void secret_key_release(struct secret_key *key)
{
	if (!key) {
		return;
	}
	sodium_free(key->bytes);
	key->bytes = NULL;
}

/* Text forms of a key: 64 hex characters or base64 (with or without '=')
 * of 32 bytes, after trailing whitespace is dropped. */
static int parse_key_text(const char *text, size_t len, uint8_t *out)
{
	size_t bin_len = 0;
	const char *end = NULL;

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
				  text[len - 1] == ' ' || text[len - 1] == '\t')) {
		len--;
	}
	if (len == 2 * SECRET_KEY_BYTES) {
		if (sodium_hex2bin(out, SECRET_KEY_BYTES, text, len, NULL, &bin_len, &end) == 0 &&
			bin_len == SECRET_KEY_BYTES && end == text + len) {
			return 0;
		}
		return -1;
	}
	if (len == 43 || len == 44) {
		int variant = len == 44 ? sodium_base64_VARIANT_ORIGINAL
					: sodium_base64_VARIANT_ORIGINAL_NO_PADDING;

		if (sodium_base642bin(out, SECRET_KEY_BYTES, text, len, NULL, &bin_len, &end,
			    variant) == 0 &&
			bin_len == SECRET_KEY_BYTES && end == text + len) {
			return 0;
		}
	}
	return -1;
}

/*
 * Write a new random key as hex text to path, mode 0600.  The key is
 * written to an O_EXCL temp file and link()ed into place, so a process that
 * races us sees either no key file or a complete one.  Returns 1 when
 * someone else created the file first.
 */
static int create_key_file(const char *path, uint8_t *key)
{
	char *hex = secret_alloc(2 * SECRET_KEY_BYTES + 2);
	size_t len = 2 * SECRET_KEY_BYTES + 1;
	uint8_t r[6];
	char *tmp;
	int fd, err = 0;

	randombytes_buf(r, sizeof(r));
	tmp = xasprintf("%s.tmp-%02x%02x%02x%02x%02x%02x", path, r[0], r[1], r[2], r[3], r[4],
		r[5]);
	randombytes_buf(key, SECRET_KEY_BYTES);
	sodium_bin2hex(hex, 2 * SECRET_KEY_BYTES + 1, key, SECRET_KEY_BYTES);
	hex[2 * SECRET_KEY_BYTES] = '\n';
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err = error_set(ICPD_ESTORAGE, "cannot create key file '%s': %s", path,
			strerror(errno));
		goto done;
	}
	if (fchmod(fd, 0600) != 0 || write(fd, hex, len) != (ssize_t)len || fsync(fd) != 0) {
		err = error_set(ICPD_ESTORAGE, "cannot write key file '%s': %s", path,
			strerror(errno));
		close(fd);
		goto done;
	}
	if (close(fd) != 0) {
		err = error_set(ICPD_ESTORAGE, "cannot write key file '%s': %s", path,
			strerror(errno));
		goto done;
	}
	if (link(tmp, path) != 0) {
		if (errno == EEXIST) {
			err = 1;
		} else {
			err = error_set(ICPD_ESTORAGE, "cannot create key file '%s': %s", path,
				strerror(errno));
		}
		goto done;
	}
	log_warn("created the session key file '%s': anyone who can read that directory can "
		 "read the session; use --secret-key-file (a Kubernetes Secret) to keep the key "
		 "elsewhere",
		path);
done:
	unlink(tmp);
	free(tmp);
	secret_free(hex);
	return err;
}

int secret_key_load(struct secret_key *key, const char *path, int create)
{
	char *text = NULL;
	struct stat st;
	ssize_t n = 0;
	size_t len = 0;
	int fd = -1, err = 0;

	err = ensure_sodium();
	if (err) {
		return err;
	}
	key->bytes = (uint8_t *)secret_alloc(SECRET_KEY_BYTES);
	for (int attempt = 0; attempt < 2; attempt++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT || !create) {
			break;
		}
		err = create_key_file(path, key->bytes);
		if (err <= 0) {
			goto done; /* created (0) or failed */
		}
		err = 0; /* lost a race with another creator: read theirs */
	}
	if (fd < 0) {
		err = error_set(ICPD_ESTORAGE, "cannot open key file '%s': %s", path,
			strerror(errno));
		if (errno == ENOENT) {
			error_hint("check --secret-key-file / ICPD_SECRET_KEY_FILE");
		}
		goto done;
	}
	if (fstat(fd, &st) != 0) {
		err = error_set(ICPD_ESTORAGE, "cannot read key file '%s': %s", path,
			strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		err = error_set(ICPD_ESTORAGE, "key file '%s' is not a regular file", path);
		goto done;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		err = error_set(ICPD_ESTORAGE, "key file '%s' is writable by group or others",
			path);
		error_hint("run: chmod go-w '%s'", path);
		goto done;
	}
	text = secret_alloc(KEY_FILE_MAX + 1);
	while (len <= KEY_FILE_MAX) {
		n = read(fd, text + len, KEY_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
	}
	if (n < 0) {
		err = error_set(ICPD_ESTORAGE, "cannot read key file '%s': %s", path,
			strerror(errno));
		goto done;
	}
	if (len == SECRET_KEY_BYTES) {
		memcpy(key->bytes, text, SECRET_KEY_BYTES);
	} else if (len > KEY_FILE_MAX || parse_key_text(text, len, key->bytes) != 0) {
		err = error_set(ICPD_EUSAGE,
			"key file '%s' must hold 32 bytes, 64 hex characters or the base64 of 32 "
			"bytes",
			path);
		error_hint("make one with: head -c 32 /dev/urandom | base64");
		goto done;
	}
done:
	if (fd >= 0) {
		close(fd);
	}
	secret_free(text);
	if (err) {
		secret_key_release(key);
	}
	return err;
}

int secret_seal(const struct secret_key *key, const void *plain, size_t len, struct buf *out)
{
	uint8_t *sealed;
	size_t total = SEAL_OVERHEAD + len;
	int err;

	if (len > SIZE_MAX - SEAL_OVERHEAD) {
		return error_set(ICPD_EINTERNAL, "data too large to seal");
	}
	sealed = xmalloc(total);
	memcpy(sealed, SEAL_MAGIC, SEAL_MAGIC_LEN);
	randombytes_buf(sealed + SEAL_MAGIC_LEN, crypto_secretbox_NONCEBYTES);
	if (crypto_secretbox_easy(sealed + SEAL_MAGIC_LEN + crypto_secretbox_NONCEBYTES, plain,
		    len, sealed + SEAL_MAGIC_LEN, key->bytes) != 0) {
		free(sealed);
		return error_set(ICPD_EINTERNAL, "cannot seal data");
	}
	err = buf_add(out, sealed, total);
	free(sealed);
	return err;
}

int secret_open(const struct secret_key *key, const void *sealed, size_t len, struct buf *out)
{
	const uint8_t *s = sealed;
	size_t plain_len;
	char *plain;
	int err;

	if (len < SEAL_MAGIC_LEN || memcmp(s, SEAL_MAGIC, SEAL_MAGIC_LEN) != 0) {
		return error_set(ICPD_EPROTO, "not a sealed icpd file (unknown format)");
	}
	if (len < SEAL_OVERHEAD) {
		return error_set(ICPD_EPROTO, "sealed data is truncated");
	}
	plain_len = len - SEAL_OVERHEAD;
	plain = secret_alloc(plain_len + 1);
	if (crypto_secretbox_open_easy((uint8_t *)plain,
		    s + SEAL_MAGIC_LEN + crypto_secretbox_NONCEBYTES,
		    len - SEAL_MAGIC_LEN - crypto_secretbox_NONCEBYTES, s + SEAL_MAGIC_LEN,
		    key->bytes) != 0) {
		secret_free(plain);
		return error_set(ICPD_EPROTO, "cannot unseal: wrong key or damaged data");
	}
	err = buf_add(out, plain, plain_len);
	secret_free(plain);
	return err;
}

void secret_buf_release(struct buf *b)
{
	if (!b) {
		return;
	}
	if (b->cap) {
		sodium_memzero(b->data, b->cap);
	}
	buf_release(b);
}
