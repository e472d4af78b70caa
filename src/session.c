/*
 * Sessions: one sealed file per account in the cookie directory, an
 * exclusive lock per account, the cookie expiries that tell when trust
 * ends, and the import of icloudpd's LWP cookie jar and .session JSON
 * (auth-protocol.md §6).
 *
 * Files in the directory, name = the Apple ID without non-word characters:
 *   <name>.icpd-session  sealed JSON (secret.h), mode 0600, replaced atomically
 *   <name>.icpd-lock     flock()ed while a process uses the session; holds its pid
 *   .icpd-key            the sealing key, unless --secret-key-file names one
 *
 * Every string of struct session but account and dir lives in secret
 * memory (secret_strdup).  While JSON holding tokens is built or parsed,
 * jansson allocates through a wiping allocator, so no copy of a token is
 * left behind in freed heap memory.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/secret.h"
#include "icpd/session.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define SESSION_VERSION 1
#define SESSION_FILE_MAX (16u << 20)
#define IMPORT_FILE_MAX (4u << 20)
#define SESSION_SUFFIX ".icpd-session"
#define LOCK_SUFFIX ".icpd-lock"
#define KEY_NAME ".icpd-key"

/* Token fields stored as JSON strings; keep alphabetised. */
static const struct {
	const char *key;
	size_t off;
} string_fields[] = {
	{ "account_country", offsetof(struct session, account_country) },
	{ "ckdatabasews_url", offsetof(struct session, ckdatabasews_url) },
	{ "client_id", offsetof(struct session, client_id) },
	{ "cookies", offsetof(struct session, cookies) },
	{ "dsid", offsetof(struct session, dsid) },
	{ "scnt", offsetof(struct session, scnt) },
	{ "session_id", offsetof(struct session, session_id) },
	{ "session_token", offsetof(struct session, session_token) },
	{ "trust_token", offsetof(struct session, trust_token) },
};

static char **field_at(struct session *s, size_t off)
{
	return (char **)((char *)s + off);
}

void session_set(char **field, const char *value)
{
	secret_free(*field);
	*field = secret_strdup(value);
}

/* --- jansson with a wiping allocator ------------------------------------ */

struct json_alloc_saved {
	json_malloc_t m;
	json_free_t f;
};

#define WIPE_HEADER 16

static void *wipe_malloc(size_t n)
{
	char *p;

	if (n > SIZE_MAX - WIPE_HEADER) {
		return NULL;
	}
	p = malloc(n + WIPE_HEADER);
	if (!p) {
		return NULL;
	}
	memcpy(p, &n, sizeof(n));
	return p + WIPE_HEADER;
}

static void wipe_free(void *q)
{
	char *p;
	size_t n;

	if (!q) {
		return;
	}
	p = (char *)q - WIPE_HEADER;
	memcpy(&n, p, sizeof(n));
	secure_zero(q, n);
	free(p);
}

/* Objects made between begin and end must be freed before end. */
static void json_wipe_begin(struct json_alloc_saved *saved)
{
	json_get_alloc_funcs(&saved->m, &saved->f);
	json_set_alloc_funcs(wipe_malloc, wipe_free);
}

static void json_wipe_end(const struct json_alloc_saved *saved)
{
	json_set_alloc_funcs(saved->m, saved->f);
}

/* --- names and files ----------------------------------------------------- */

/*
 * icloudpd's file name: the lower-cased Apple ID with every non-word
 * character removed (Python's \W).  ASCII letters, digits and '_' stay;
 * bytes of non-ASCII characters stay too (Python counts letters of every
 * script as word characters).  Caller frees.
 */
char *session_file_name(const char *account)
{
	size_t n = strlen(account), o = 0;
	char *name = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)account[i];

		if (isalnum(ch) || ch == '_' || ch >= 0x80) {
			name[o++] = (char)tolower(ch);
		}
	}
	name[o] = '\0';
	return name;
}

static int make_dir(const char *dir)
{
	char *copy = xstrdup(dir);
	struct stat st;
	int err = 0;

	for (char *p = copy + 1;; p++) {
		char saved = *p;

		if (saved != '/' && saved != '\0') {
			continue;
		}
		*p = '\0';
		if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
			err = error_set(ICPD_ESTORAGE, "cannot create directory '%s': %s", copy,
				strerror(errno));
			goto done;
		}
		*p = saved;
		if (saved == '\0') {
			break;
		}
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		err = error_set(ICPD_ESTORAGE, "'%s' is not a directory", dir);
	}
done:
	free(copy);
	return err;
}

/*
 * Read a whole regular file of at most max bytes into secret memory (it may
 * hold tokens).  ICPD_ENOTFOUND when it does not exist.  *data is
 * NUL-terminated; free with secret_free.
 */
static int read_whole(const char *path, size_t max, char **data, size_t *len)
{
	struct stat st;
	size_t got = 0;
	char *p = NULL;
	int fd, err = 0;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			return error_set(ICPD_ENOTFOUND, "'%s' does not exist", path);
		}
		return error_set(ICPD_ESTORAGE, "cannot open '%s': %s", path, strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err = error_set(ICPD_ESTORAGE, "'%s' is not a regular file", path);
		goto done;
	}
	if ((size_t)st.st_size > max) {
		err = error_set(ICPD_EPROTO, "'%s' is too large (%lld bytes)", path,
			(long long)st.st_size);
		goto done;
	}
	p = secret_alloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, p + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			err = error_set(ICPD_ESTORAGE, "cannot read '%s': %s", path, strerror(errno));
			goto done;
		}
		if (n == 0) {
			break; /* shrank while we read: take what is there */
		}
		got += (size_t)n;
	}
	p[got] = '\0';
	*data = p;
	*len = got;
	p = NULL;
done:
	secret_free(p);
	close(fd);
	return err;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replace dir/name with data: O_EXCL temp file in dir, fsync, rename,
 * fsync of dir.  Nothing is left behind on failure. */
static int write_atomic(const char *dir, const char *name, const void *data, size_t len)
{
	char *final = xasprintf("%s/%s", dir, name);
	char *tmp = NULL;
	int fd = -1, dfd = -1, err = 0;

	for (int tries = 0; fd < 0; tries++) {
		uint8_t r[6];

		secret_random(r, sizeof(r));
		free(tmp);
		tmp = xasprintf("%s/.%s.tmp-%02x%02x%02x%02x%02x%02x", dir, name, r[0], r[1], r[2],
			r[3], r[4], r[5]);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && (errno != EEXIST || tries == 10)) {
			err = error_set(ICPD_ESTORAGE, "cannot create '%s': %s", tmp, strerror(errno));
			free(tmp);
			tmp = NULL;
			goto done;
		}
	}
	if (fchmod(fd, 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		err = error_set(ICPD_ESTORAGE, "cannot write '%s': %s", final, strerror(errno));
		goto done;
	}
	if (close(fd) != 0) {
		fd = -1;
		err = error_set(ICPD_ESTORAGE, "cannot write '%s': %s", final, strerror(errno));
		goto done;
	}
	fd = -1;
	if (rename(tmp, final) != 0) {
		err = error_set(ICPD_ESTORAGE, "cannot replace '%s': %s", final, strerror(errno));
		goto done;
	}
	free(tmp);
	tmp = NULL;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		err = error_set(ICPD_ESTORAGE, "cannot sync directory '%s': %s", dir,
			strerror(errno));
	}
done:
	if (fd >= 0) {
		close(fd);
	}
	if (dfd >= 0) {
		close(dfd);
	}
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(final);
	return err;
}

/* --- lock ------------------------------------------------------------------ */

static int take_lock(struct session *s, const char *name, int lock_wait)
{
	char *path = xasprintf("%s/%s%s", s->dir, name, LOCK_SUFFIX);
	char text[32];
	int fd, err = 0;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err = error_set(ICPD_ESTORAGE, "cannot open lock file '%s': %s", path,
			strerror(errno));
		goto done;
	}
	for (int waited = 0;;) {
		ssize_t n;
		long pid = 0;

		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			break;
		}
		if (errno == EINTR) {
			continue;
		}
		if (errno != EWOULDBLOCK) {
			err = error_set(ICPD_ESTORAGE, "cannot lock '%s': %s", path, strerror(errno));
			goto done;
		}
		if (waited < lock_wait) {
			sleep(1);
			waited++;
			continue;
		}
		n = pread(fd, text, sizeof(text) - 1, 0);
		text[n > 0 ? n : 0] = '\0';
		text[strcspn(text, "\n")] = '\0';
		if (parse_long(text, 1, 1L << 30, &pid) == 0) {
			err = error_set(ICPD_ESTORAGE, "another icpd is using the session of '%s' (pid %ld)",
				s->account, pid);
		} else {
			err = error_set(ICPD_ESTORAGE, "another icpd is using the session of '%s'",
				s->account);
		}
		error_hint("wait for it to finish; the lock is '%s'", path);
		goto done;
	}
	snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, text, strlen(text), 0) < 0) {
		log_debug("cannot write the pid into '%s': %s", path, strerror(errno));
	}
	s->lock_fd = fd;
	fd = -1;
done:
	if (fd >= 0) {
		close(fd);
	}
	free(path);
	return err;
}

/* --- client id --------------------------------------------------------------- */

static char *new_client_id(void)
{
	uint8_t b[16];
	char text[48];

	secret_random(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(text, sizeof(text),
		"auth-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		b[14], b[15]);
	return secret_strdup(text);
}

/* --- cookie expiries ----------------------------------------------------------- */

/* The latest expiry of the cookies called name in Netscape lines; 0 when
 * absent or a session cookie. */
static time_t cookie_expiry(const char *lines, const char *name)
{
	size_t name_len = strlen(name);
	time_t best = 0;

	for (const char *p = lines; p && *p;) {
		const char *end = strchr(p, '\n');
		const char *f[7];
		size_t nf = 0;
		const char *q = p;

		if (!end) {
			end = p + strlen(p);
		}
		if (str_startswith(p, "#HttpOnly_")) {
			q += strlen("#HttpOnly_");
		} else if (*p == '#') {
			q = end;
		}
		while (q < end && nf < 7) {
			f[nf++] = q;
			q = memchr(q, '\t', (size_t)(end - q));
			if (!q) {
				break;
			}
			q++;
		}
		if (nf == 7) {
			const char *name_end = memchr(f[5], '\t', (size_t)(end - f[5]));
			long long exp = 0;
			char num[24];
			size_t nlen = (size_t)(f[5] - f[4] - 1);

			if (name_end && (size_t)(name_end - f[5]) == name_len &&
				memcmp(f[5], name, name_len) == 0 && nlen > 0 && nlen < sizeof(num)) {
				memcpy(num, f[4], nlen);
				num[nlen] = '\0';
				exp = strtoll(num, NULL, 10);
				if (exp > (long long)best) {
					best = (time_t)exp;
				}
			}
		}
		p = *end ? end + 1 : end;
	}
	return best;
}

void session_update_expiry(struct session *s)
{
	time_t trust = cookie_expiry(s->cookies, "X-APPLE-WEBAUTH-HSA-TRUST");
	time_t user = cookie_expiry(s->cookies, "X-APPLE-WEBAUTH-USER");
	time_t web = cookie_expiry(s->cookies, "X-APPLE-DS-WEB-SESSION-TOKEN");

	/* the session ends with the first of its cookies (§6.3) */
	if (user && web) {
		s->session_expires = user < web ? user : web;
	} else {
		s->session_expires = user ? user : web;
	}
	s->trust_expires = trust ? trust : s->session_expires;
}

/* --- the sealed session file ------------------------------------------------------ */

static int load_json(struct session *s, const char *path, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *v;
	int err = 0;

	if (!json_is_object(root)) {
		err = error_set(ICPD_EPROTO, "session file '%s' is damaged (not a JSON object)", path);
		goto done;
	}
	v = json_object_get(root, "version");
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		err = error_set(ICPD_EPROTO, "session file '%s' is damaged (no version)", path);
		goto done;
	}
	if (json_integer_value(v) > SESSION_VERSION) {
		err = error_set(ICPD_EPROTO, "session file '%s' was written by a newer icpd (format %lld)",
			path, (long long)json_integer_value(v));
		goto done;
	}
	v = json_object_get(root, "account");
	if (!json_is_string(v) || strcmp(json_string_value(v), s->account) != 0) {
		err = error_set(ICPD_EPROTO, "session file '%s' belongs to another account", path);
		goto done;
	}
	for (size_t i = 0; i < ARRAY_SIZE(string_fields); i++) {
		v = json_object_get(root, string_fields[i].key);
		if (!v || json_is_null(v)) {
			continue;
		}
		if (!json_is_string(v)) {
			err = error_set(ICPD_EPROTO, "session file '%s' is damaged (field '%s')", path,
				string_fields[i].key);
			goto done;
		}
		session_set(field_at(s, string_fields[i].off), json_string_value(v));
	}
	v = json_object_get(root, "hsa_trusted");
	s->hsa_trusted = json_is_true(v);
	v = json_object_get(root, "trust_expires");
	s->trust_expires = json_is_integer(v) ? (time_t)json_integer_value(v) : 0;
	v = json_object_get(root, "session_expires");
	s->session_expires = json_is_integer(v) ? (time_t)json_integer_value(v) : 0;
done:
	json_decref(root);
	return err;
}

static int load_file(struct session *s, const char *name)
{
	char *path = xasprintf("%s/%s%s", s->dir, name, SESSION_SUFFIX);
	char *sealed = NULL;
	size_t sealed_len = 0;
	struct buf plain = BUF_INIT;
	struct json_alloc_saved saved;
	int err;

	err = read_whole(path, SESSION_FILE_MAX, &sealed, &sealed_len);
	if (err == ICPD_ENOTFOUND) {
		error_clear();
		err = 0;
		goto done;
	}
	if (err) {
		goto done;
	}
	err = secret_open(&s->key, sealed, sealed_len, &plain);
	if (err) {
		char *why = xstrdup(error_message());

		err = error_set(ICPD_EPROTO, "cannot open session file '%s': %s", path, why);
		free(why);
		error_hint("check the key (--secret-key-file), or remove '%s' and run 'icpd auth'",
			path);
		goto done;
	}
	json_wipe_begin(&saved);
	err = load_json(s, path, plain.data, plain.len);
	json_wipe_end(&saved);
	if (err) {
		error_hint("remove '%s' and run 'icpd auth'", path);
	}
done:
	secret_buf_release(&plain);
	secret_free(sealed);
	free(path);
	return err;
}

/* A growable string in secret memory for json_dump_callback. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;
};

static int sbuf_dump(const char *data, size_t n, void *arg)
{
	struct sbuf *b = arg;

	if (!b->p || b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1) {
			cap *= 2;
		}
		p = secret_alloc(cap);
		if (b->len) {
			memcpy(p, b->p, b->len);
		}
		secret_free(b->p);
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* json string for the cookie lines; lines that are not valid UTF-8 (jansson
 * refuses them) are dropped rather than losing the whole session. */
static json_t *cookies_json(const char *lines)
{
	json_t *j = json_string(lines);
	struct sbuf kept = { NULL, 0, 0 };
	size_t dropped = 0;

	if (j) {
		return j;
	}
	for (const char *p = lines; *p;) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		json_t *line = json_stringn(p, n);

		if (line) {
			sbuf_dump(p, n, &kept);
			sbuf_dump("\n", 1, &kept);
			json_decref(line);
		} else {
			dropped++;
		}
		p += n + (end ? 1 : 0);
	}
	log_warn("dropped %zu stored cookies that are not valid UTF-8", dropped);
	j = json_string(kept.p ? kept.p : "");
	secret_free(kept.p);
	return j;
}

static json_t *session_to_json(struct session *s)
{
	json_t *root = json_object();

	json_object_set_new(root, "version", json_integer(SESSION_VERSION));
	json_object_set_new(root, "account", json_string(s->account));
	for (size_t i = 0; i < ARRAY_SIZE(string_fields); i++) {
		const char *value = *field_at(s, string_fields[i].off);
		json_t *v;

		if (!value) {
			v = json_null();
		} else if (string_fields[i].off == offsetof(struct session, cookies)) {
			v = cookies_json(value);
		} else {
			v = json_string(value);
		}
		if (!v) {
			json_decref(root);
			error_set(ICPD_EPROTO, "session field '%s' is not valid UTF-8",
				string_fields[i].key);
			return NULL;
		}
		json_object_set_new(root, string_fields[i].key, v);
	}
	json_object_set_new(root, "hsa_trusted", json_boolean(s->hsa_trusted));
	json_object_set_new(root, "trust_expires", json_integer((json_int_t)s->trust_expires));
	json_object_set_new(root, "session_expires", json_integer((json_int_t)s->session_expires));
	return root;
}

int session_save(struct session *s)
{
	char *name = session_file_name(s->account);
	char *file = xasprintf("%s%s", name, SESSION_SUFFIX);
	struct json_alloc_saved saved;
	struct sbuf text = { NULL, 0, 0 };
	struct buf sealed = BUF_INIT;
	json_t *root;
	int err = 0;

	json_wipe_begin(&saved);
	root = session_to_json(s);
	if (!root) {
		json_wipe_end(&saved);
		err = error_code() ? error_code() : ICPD_EINTERNAL;
		goto done;
	}
	if (json_dump_callback(root, sbuf_dump, &text, JSON_COMPACT | JSON_SORT_KEYS) != 0) {
		err = error_set(ICPD_EINTERNAL, "cannot encode the session");
	}
	json_decref(root);
	json_wipe_end(&saved);
	if (err) {
		goto done;
	}
	err = secret_seal(&s->key, text.p, text.len, &sealed);
	if (err) {
		goto done;
	}
	err = write_atomic(s->dir, file, sealed.data, sealed.len);
	if (!err) {
		log_debug("saved the session of '%s' in '%s/%s'", s->account, s->dir, file);
	}
done:
	secret_free(text.p);
	buf_release(&sealed);
	free(file);
	free(name);
	return err;
}

/* --- open / close ----------------------------------------------------------------- */

int session_open(struct session *s, const char *dir, const char *account,
	const char *key_file, int lock_wait)
{
	char *name = NULL, *key_path = NULL;
	int err = 0;

	memset(s, 0, sizeof(*s));
	s->lock_fd = -1;
	s->account = xstrdup(account);
	for (char *p = s->account; *p; p++) {
		*p = (char)tolower((unsigned char)*p);
	}
	s->dir = xstrdup(dir);
	if (!*dir) {
		err = error_set(ICPD_EUSAGE, "the cookie directory is empty");
		goto done;
	}
	name = session_file_name(s->account);
	if (!*name) {
		err = error_set(ICPD_EUSAGE, "cannot make a file name from the account '%s'", account);
		goto done;
	}
	err = make_dir(dir);
	if (err) {
		goto done;
	}
	err = take_lock(s, name, lock_wait);
	if (err) {
		goto done;
	}
	key_path = key_file ? xstrdup(key_file) : xasprintf("%s/%s", dir, KEY_NAME);
	err = secret_key_load(&s->key, key_path, key_file == NULL);
	if (err) {
		goto done;
	}
	err = load_file(s, name);
	if (err) {
		goto done;
	}
	if (!s->client_id) {
		s->client_id = new_client_id();
	}
	if (s->cookies) {
		session_update_expiry(s);
	}
done:
	free(key_path);
	free(name);
	if (err) {
		session_close(s);
	}
	return err;
}

void session_forget_login(struct session *s)
{
	struct sbuf kept = { NULL, 0, 0 };

	session_set(&s->session_token, NULL);
	session_set(&s->scnt, NULL);
	session_set(&s->session_id, NULL);
	session_set(&s->account_country, NULL);
	session_set(&s->dsid, NULL);
	session_set(&s->ckdatabasews_url, NULL);
	s->hsa_trusted = false;
	/* keep the cookies that belong to the trusted browser, not to the login */
	for (const char *p = s->cookies; p && *p;) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (memmem(p, n, "\tX-APPLE-WEBAUTH-HSA-TRUST\t", 27) ||
			memmem(p, n, "\tX_APPLE_WEB_KB-", 16)) {
			sbuf_dump(p, n, &kept);
			sbuf_dump("\n", 1, &kept);
		}
		p += n + (end ? 1 : 0);
	}
	secret_free(s->cookies);
	s->cookies = kept.p;
	session_update_expiry(s);
}

void session_close(struct session *s)
{
	if (!s || !s->account) {
		return; /* never opened, or closed already */
	}
	for (size_t i = 0; i < ARRAY_SIZE(string_fields); i++) {
		session_set(field_at(s, string_fields[i].off), NULL);
	}
	if (s->lock_fd >= 0) {
		close(s->lock_fd); /* drops the flock */
	}
	secret_key_release(&s->key);
	free(s->account);
	free(s->dir);
	memset(s, 0, sizeof(*s));
	s->lock_fd = -1;
}

/* --- cookies between the session and libcurl --------------------------------------- */

/* The expiry field of one Netscape line, or -1 when it has none. */
static long long line_expiry(const char *p, size_t n)
{
	const char *end = p + n;
	long long v = 0;

	for (int field = 0; field < 4; field++) {
		p = memchr(p, '\t', (size_t)(end - p));
		if (!p) {
			return -1;
		}
		p++;
	}
	if (p == end || *p < '0' || *p > '9') {
		return -1;
	}
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (v > (LLONG_MAX - 9) / 10) {
			return -1;
		}
		v = v * 10 + (*p - '0');
	}
	return v;
}

/*
 * Hand the cookies to libcurl, leaving out the ones that expired (libcurl
 * keeps expired cookies that are added as lines, and icloudpd saved them).
 */
int session_load_cookies(struct session *s, struct http_client *http)
{
	struct sbuf live = { NULL, 0, 0 };
	time_t now = time(NULL);
	int err;

	for (const char *p = s->cookies; p && *p;) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		long long exp = line_expiry(p, n);

		bool session_cookie = exp == 0, live_cookie = exp >= (long long)now;
		bool comment = exp < 0 && *p == '#';

		/* expired cookies and malformed lines stay out */
		if (session_cookie || live_cookie || comment) {
			sbuf_dump(p, n, &live);
			sbuf_dump("\n", 1, &live);
		}
		p += n + (end ? 1 : 0);
	}
	if (!live.p) {
		return 0;
	}
	err = http_cookies_import(http, live.p);
	secret_free(live.p);
	return err;
}

/* Give an empty buffer room for n bytes up front, so that filling it with
 * secrets does not leave copies behind in memory freed by growing. */
static void buf_reserve(struct buf *b, size_t n)
{
	char *pad = xcalloc(1, n);

	if (buf_add(b, pad, n) == 0) {
		buf_reset(b);
	}
	free(pad);
}

int session_store_cookies(struct session *s, struct http_client *http)
{
	struct buf lines = BUF_INIT;
	int err;

	buf_reserve(&lines, 64u << 10);
	err = http_cookies_export(http, &lines);

	if (!err) {
		session_set(&s->cookies, lines.data);
		session_update_expiry(s);
	}
	secret_buf_release(&lines);
	return err;
}

/* --- icloudpd's LWP cookie jar ------------------------------------------------------ */

/* Fields point into the parse's scratch buffer (secret memory). */
struct lwp_cookie {
	const char *name;
	const char *value;
	const char *domain;
	const char *path;
	const char *expires;
	bool secure;
	bool discard;
	bool httponly;
};

/* Bump allocator over one secret buffer, reset for every line. */
struct scratch {
	char *p;
	size_t used;
	size_t cap;
};

static char *scratch_copy(struct scratch *sc, const char *s, size_t n)
{
	char *out;

	if (n + 1 > sc->cap - sc->used) {
		return NULL; /* cannot happen: the buffer holds twice the input */
	}
	out = sc->p + sc->used;
	memcpy(out, s, n);
	out[n] = '\0';
	sc->used += n + 1;
	return out;
}

/* Python's http.cookiejar token: no whitespace, '=', ';' or ','. */
static bool lwp_token_char(char ch)
{
	return ch && !isspace((unsigned char)ch) && ch != '=' && ch != ';' && ch != ',' &&
	       ch != '"';
}

/* Characters allowed in the Netscape fields we write. */
static bool field_ok(const char *s, bool allow_space)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f || (!allow_space && ch == ' ')) {
			return false;
		}
	}
	return true;
}

static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "YYYY-MM-DD hh:mm:ssZ" (Python's time2isoz) to epoch seconds. */
static int parse_isoz(const char *s, long long *out)
{
	int y, mo, d, h, mi, se;
	struct tm tm;
	time_t t;

	if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' ||
		s[16] != ':' || s[19] != 'Z') {
		return -1;
	}
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	se = digits(s + 17, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
		mi > 59 || se < 0 || se > 60) {
		return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = timegm(&tm);
	if (t == (time_t)-1) {
		return -1;
	}
	*out = (long long)t;
	return 0;
}

/*
 * One "Set-Cookie3:" line (without the prefix): "; "-separated key[=value]
 * pairs, the first being the cookie's name and value; values are tokens or
 * double-quoted with backslash escapes.  Returns 0 or -1 with *why set.
 */
static int lwp_parse_line(const char *p, const char *end, struct lwp_cookie *c,
	struct scratch *sc, const char **why)
{
	bool first = true;
	char *val = sc->p + sc->used; /* the value is unescaped here, then kept or dropped */
	int rc = -1;

	if ((size_t)(end - p) + 1 > sc->cap - sc->used) {
		*why = "line too long";
		return -1;
	}
	sc->used += (size_t)(end - p) + 1;

	while (p < end) {
		const char *k, *k_end;
		size_t vlen = 0;
		bool has_value = false;

		while (p < end && (*p == ' ' || *p == '\t')) {
			p++;
		}
		if (p == end) {
			break;
		}
		k = p;
		while (p < end && lwp_token_char(*p)) {
			p++;
		}
		k_end = p;
		if (k == k_end) {
			*why = "expected a name";
			goto done;
		}
		while (p < end && (*p == ' ' || *p == '\t')) {
			p++;
		}
		if (p < end && *p == '=') {
			has_value = true;
			p++;
			while (p < end && (*p == ' ' || *p == '\t')) {
				p++;
			}
			if (p < end && *p == '"') {
				p++;
				for (;;) {
					if (p == end) {
						*why = "unterminated quoted value";
						goto done;
					}
					if (*p == '"') {
						p++;
						break;
					}
					if (*p == '\\') {
						p++;
						if (p == end) {
							*why = "unterminated quoted value";
							goto done;
						}
					}
					val[vlen++] = *p++;
				}
			} else {
				while (p < end && lwp_token_char(*p)) {
					val[vlen++] = *p++;
				}
			}
		}
		val[vlen] = '\0';
		while (p < end && (*p == ' ' || *p == '\t')) {
			p++;
		}
		if (p < end && *p != ';') {
			*why = *p == ',' ? "more than one cookie on a line" : "unexpected character";
			goto done;
		}
		if (p < end) {
			p++;
		}
		if (memchr(val, '\0', vlen)) {
			*why = "NUL byte in a value";
			goto done;
		}

#define KEY_IS(lit) ((size_t)(k_end - k) == strlen(lit) && strncasecmp(k, lit, strlen(lit)) == 0)
		if (first) {
			first = false;
			c->name = scratch_copy(sc, k, (size_t)(k_end - k));
			c->value = scratch_copy(sc, val, vlen);
		} else if (KEY_IS("domain") && has_value) {
			c->domain = scratch_copy(sc, val, vlen);
		} else if (KEY_IS("path") && has_value) {
			c->path = scratch_copy(sc, val, vlen);
		} else if (KEY_IS("expires") && has_value) {
			c->expires = scratch_copy(sc, val, vlen);
		} else if (KEY_IS("secure")) {
			c->secure = true;
		} else if (KEY_IS("discard")) {
			c->discard = true;
		} else if (KEY_IS("httponly")) {
			c->httponly = true;
		}
		/* path_spec, domain_dot, port, port_spec, version, comment,
		 * commenturl and other attributes do not matter to libcurl */
#undef KEY_IS
	}
	if (first) {
		*why = "no cookie";
		goto done;
	}
	if (!c->name || !c->value) {
		*why = "line too long";
		goto done;
	}
	rc = 0;
done:
	return rc;
}

static int lwp_emit(const struct lwp_cookie *c, struct buf *out, const char **why)
{
	long long expires = 0;

	if (!c->domain || !*c->domain) {
		*why = "no domain";
		return -1;
	}
	if (!*c->name || !field_ok(c->name, false) || !field_ok(c->domain, false) ||
		(c->path && !field_ok(c->path, false)) || !field_ok(c->value, true)) {
		*why = "control characters in a field";
		return -1;
	}
	if (c->domain[0] == '#') {
		*why = "bad domain";
		return -1;
	}
	if (!c->discard && c->expires && parse_isoz(c->expires, &expires) != 0) {
		*why = "bad expiry date";
		return -1;
	}
	if (buf_addf(out, "%s%s\t%s\t%s\t%s\t%lld\t%s\t%s\n", c->httponly ? "#HttpOnly_" : "",
		    c->domain, c->domain[0] == '.' ? "TRUE" : "FALSE",
		    c->path && *c->path ? c->path : "/", c->secure ? "TRUE" : "FALSE", expires,
		    c->name, c->value) != 0) {
		*why = "too large";
		return -1;
	}
	return 0;
}

int session_parse_lwp(const char *text, size_t len, struct buf *netscape_out)
{
	static const char magic[] = "#LWP-Cookies-2.0";
	static const char prefix[] = "Set-Cookie3:";
	size_t pos = 0, lineno = 0, start_len = netscape_out->len, count = 0;
	struct scratch sc = { NULL, 0, 0 };
	const char *why = NULL;
	bool header = false;
	int err = 0;

	if (len > IMPORT_FILE_MAX) {
		return error_set(ICPD_EPROTO, "cookie jar is too large");
	}
	if (memchr(text, '\0', len)) {
		return error_set(ICPD_EPROTO, "cookie jar contains a NUL byte");
	}
	/* one allocation for the output, so growing leaves no copies behind */
	if (netscape_out->cap < netscape_out->len + 2 * len + 256) {
		char *pad = xcalloc(1, 2 * len + 256);

		err = buf_add(netscape_out, pad, 2 * len + 256);
		free(pad);
		if (err) {
			return error_set(ICPD_EPROTO, "cookie jar is too large");
		}
		netscape_out->len = start_len;
		netscape_out->data[start_len] = '\0';
	}
	sc.cap = 2 * len + 16;
	sc.p = secret_alloc(sc.cap);
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		struct lwp_cookie c = { 0 };

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n > 0 && line[n - 1] == '\r') {
			n--;
		}
		if (!header) {
			if (n < sizeof(magic) - 1 || memcmp(line, magic, sizeof(magic) - 1) != 0) {
				break;
			}
			header = true;
			continue;
		}
		if (n == 0 || line[0] == '#') {
			continue;
		}
		sc.used = 0;
		if (n < sizeof(prefix) - 1 || memcmp(line, prefix, sizeof(prefix) - 1) != 0) {
			why = "not a Set-Cookie3 line";
		} else if (lwp_parse_line(line + sizeof(prefix) - 1, line + n, &c, &sc, &why) == 0) {
			lwp_emit(&c, netscape_out, &why);
		}
		if (why) {
			break;
		}
		count++;
	}
	if (!header) {
		err = error_set(ICPD_EPROTO, "not an LWP cookie jar (no '#LWP-Cookies-2.0' line)");
	} else if (why) {
		err = error_set(ICPD_EPROTO, "cookie jar line %zu: %s", lineno, why);
	}
	if (err) {
		secure_zero(netscape_out->data + start_len, netscape_out->len - start_len);
		netscape_out->len = start_len;
		netscape_out->data[start_len] = '\0';
	} else {
		log_debug("read %zu cookies from an LWP cookie jar", count);
	}
	secret_free(sc.p);
	return err;
}

/* --- icloudpd import -------------------------------------------------------------- */

static int import_session_json(struct session *s, const char *path, const char *text,
	size_t len)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "account_country", offsetof(struct session, account_country) },
		{ "client_id", offsetof(struct session, client_id) },
		{ "scnt", offsetof(struct session, scnt) },
		{ "session_id", offsetof(struct session, session_id) },
		{ "session_token", offsetof(struct session, session_token) },
		{ "trust_token", offsetof(struct session, trust_token) },
	};
	json_error_t jerr;
	json_t *root = json_loadb(text, len, 0, &jerr);
	int err = 0;

	if (!json_is_object(root)) {
		err = error_set(ICPD_EPROTO, "'%s' is not an icloudpd session file (not a JSON object)",
			path);
		goto done;
	}
	/* check every field before taking any, so a bad file changes nothing */
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_t *v = json_object_get(root, keys[i].key);

		if (v && !json_is_null(v) && !json_is_string(v)) {
			err = error_set(ICPD_EPROTO, "'%s': field '%s' is not a string", path,
				keys[i].key);
			goto done;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_t *v = json_object_get(root, keys[i].key);

		if (json_is_string(v) && *json_string_value(v)) {
			session_set(field_at(s, keys[i].off), json_string_value(v));
		}
	}
done:
	json_decref(root);
	return err;
}

int session_import_icloudpd(struct session *s, const char *dir)
{
	char *name = session_file_name(s->account);
	char *jar_path = xasprintf("%s/%s", dir, name);
	char *json_path = xasprintf("%s/%s.session", dir, name);
	char *jar = NULL, *json = NULL;
	size_t jar_len = 0, json_len = 0;
	struct buf lines = BUF_INIT;
	struct json_alloc_saved saved;
	int err, jerr;

	err = read_whole(jar_path, IMPORT_FILE_MAX, &jar, &jar_len);
	jerr = read_whole(json_path, IMPORT_FILE_MAX, &json, &json_len);
	if (err == ICPD_ENOTFOUND && jerr == ICPD_ENOTFOUND) {
		err = error_set(ICPD_ENOTFOUND, "no icloudpd session for '%s' in '%s'", s->account,
			dir);
		goto done;
	}
	if (err && err != ICPD_ENOTFOUND) {
		goto done;
	}
	if (jerr && jerr != ICPD_ENOTFOUND) {
		err = jerr;
		goto done;
	}
	if (jar) {
		err = session_parse_lwp(jar, jar_len, &lines);
		if (err) {
			char *why = xstrdup(error_message());

			err = error_set(err, "cannot import '%s': %s", jar_path, why);
			free(why);
			goto done;
		}
	}
	err = 0;
	error_clear(); /* a missing half is fine */
	if (json) {
		json_wipe_begin(&saved);
		err = import_session_json(s, json_path, json, json_len);
		json_wipe_end(&saved);
		if (err) {
			goto done;
		}
	}
	if (jar) {
		session_set(&s->cookies, lines.data);
	}
	if (!s->client_id) {
		s->client_id = new_client_id();
	}
	session_update_expiry(s);
	log_info("imported the icloudpd session of '%s' from '%s'", s->account, dir);
done:
	secret_buf_release(&lines);
	secret_free(jar);
	secret_free(json);
	free(jar_path);
	free(json_path);
	free(name);
	return err;
}
