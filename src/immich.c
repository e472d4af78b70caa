/*
 * Immich library scan after a sync (immich.h).  Best effort: every failure
 * is one clear warning and the sync's own outcome is left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icpd_build.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/immich.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define KEY_MAX 4096
#define CONNECT_SECONDS 10
#define IDLE_SECONDS 30

static int timeout_seconds;

void immich_set_timeout(int seconds)
{
	timeout_seconds = seconds > 0 ? seconds : 0;
}

bool immich_configured(const struct config *cfg)
{
	return cfg->immich_url && *cfg->immich_url;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Read the API key: the file's text with surrounding whitespace removed.
 * *out is malloc'd; the caller wipes and frees it.
 */
static int read_key(const char *path, char **out)
{
	char raw[KEY_MAX + 1];
	struct stat st;
	size_t got = 0;
	char *start, *end;
	int fd, err = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		return error_set(ICPD_EUSAGE, "cannot open --immich-api-key-file '%s': %s", path,
			strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err = error_set(ICPD_EUSAGE, "--immich-api-key-file '%s' is not a regular file",
			path);
		goto done;
	}
	if (st.st_mode & S_IROTH) {
		/* Kubernetes mounts Secrets 0644 unless told otherwise: say so, go on */
		log_warn("--immich-api-key-file '%s' is readable by every user (mode %04o): "
			 "make it 0600 or 0440 (defaultMode in Kubernetes)",
			path, (unsigned)(st.st_mode & 07777));
	}
	for (;;) {
		ssize_t n = read(fd, raw + got, KEY_MAX + 1 - got);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			err = error_set(ICPD_EUSAGE, "cannot read --immich-api-key-file '%s': %s",
				path, strerror(errno));
			goto done;
		}
		if (n == 0) {
			break;
		}
		got += (size_t)n;
		if (got > KEY_MAX) {
			err = error_set(ICPD_EUSAGE,
				"--immich-api-key-file '%s' is larger than %d bytes: not an API key",
				path, KEY_MAX);
			goto done;
		}
	}
	raw[got] = '\0';
	start = raw;
	while (*start && is_space(*start)) {
		start++;
	}
	end = raw + got;
	while (end > start && is_space(end[-1])) {
		end--;
	}
	if (end == start) {
		err = error_set(ICPD_EUSAGE, "--immich-api-key-file '%s' is empty", path);
		goto done;
	}
	for (const char *p = start; p < end; p++) {
		if ((unsigned char)*p < 0x21 || *p == 0x7f) {
			/* a header value cannot hold it; probably not a key at all */
			err = error_set(ICPD_EUSAGE,
				"--immich-api-key-file '%s' holds more than one word", path);
			goto done;
		}
	}
	*out = xstrndup(start, (size_t)(end - start));
done:
	secure_zero(raw, sizeof(raw));
	close(fd);
	return err;
}

static int scan(const struct config *cfg, const char *key)
{
	struct http_client *c = NULL;
	struct http_options ho = {
		.ca_file = cfg->ca_file,
		.user_agent = "icpd/" ICPD_VERSION,
		.connect_timeout = timeout_seconds ? timeout_seconds : CONNECT_SECONDS,
		.idle_timeout = timeout_seconds ? timeout_seconds : IDLE_SECONDS,
	};
	struct http_response resp;
	struct http_request req = { .method = "POST", .body = "{}", .body_len = 2,
		.max_response = 64 * 1024 };
	char *keyhdr = xasprintf("x-api-key: %s", key);
	const char *headers[] = { keyhdr, "Content-Type: application/json",
		"Accept: application/json", NULL };
	char *id = http_escape(cfg->immich_library_id);
	size_t blen = strlen(cfg->immich_url);
	char *url, *shown;
	int err;

	while (blen && cfg->immich_url[blen - 1] == '/') {
		blen--;
	}
	url = xasprintf("%.*s/api/libraries/%s/scan", (int)blen, cfg->immich_url, id);
	shown = log_redact_url(url);
	req.url = url;
	req.headers = headers;
	http_response_init(&resp);
	err = http_client_new(&c, &ho);
	if (err) {
		goto done;
	}
	err = http_request(c, &req, &resp);
	if (err) {
		goto done;
	}
	if (resp.status >= 200 && resp.status <= 299) {
		log_info("asked Immich to scan library %s (HTTP %ld)", cfg->immich_library_id,
			resp.status);
		goto done;
	}
	switch (resp.status) {
	case 401:
		err = error_set(ICPD_EPROTO, "Immich refused the API key at '%s' (HTTP 401)", shown);
		error_hint("check --immich-api-key-file: the key must exist and be an admin's");
		break;
	case 403:
		err = error_set(ICPD_EPROTO, "the Immich API key may not scan libraries at '%s' "
			"(HTTP 403)", shown);
		error_hint("create the key as an admin with the library.update permission");
		break;
	case 404:
		err = error_set(ICPD_EPROTO, "Immich knows no library '%s' at '%s' (HTTP 404)",
			cfg->immich_library_id, shown);
		error_hint("look the id up under Administration → External Libraries, "
			   "or GET /api/libraries");
		break;
	default:
		err = error_set(ICPD_EPROTO, "Immich answered HTTP %ld to '%s'", resp.status,
			shown);
	}
done:
	http_response_release(&resp);
	http_client_free(c);
	secure_zero(keyhdr, strlen(keyhdr));
	free(keyhdr);
	free(id);
	free(url);
	free(shown);
	return err;
}

int immich_scan(const struct config *cfg)
{
	int saved_code = error_code();
	char *saved_msg = xstrdup(error_message());
	char *saved_hint = xstrdup(error_hint_text());
	char *key = NULL;
	int err = 0;

	if (!immich_configured(cfg)) {
		goto restore;
	}
	error_clear();
	if (!cfg->immich_library_id || !*cfg->immich_library_id) {
		err = error_set(ICPD_EUSAGE, "--immich-url is set but --immich-library-id is not");
	} else if (!cfg->immich_api_key_file || !*cfg->immich_api_key_file) {
		err = error_set(ICPD_EUSAGE, "--immich-url is set but --immich-api-key-file is not");
	} else {
		err = read_key(cfg->immich_api_key_file, &key);
	}
	if (!err) {
		log_add_secret(key);
		err = scan(cfg, key);
	}
	if (err) {
		log_warn("Immich scan not requested: %s%s%s; new files appear at Immich's next "
			 "scheduled scan",
			error_message(), error_hint_text()[0] ? "; " : "", error_hint_text());
	}
	if (key) {
		log_forget_secret(key);
		secure_zero(key, strlen(key));
		free(key);
	}
restore:
	if (saved_code || saved_msg[0]) {
		error_set(saved_code, "%s", saved_msg);
		if (saved_hint[0]) {
			error_hint("%s", saved_hint);
		}
	} else {
		error_clear();
	}
	free(saved_msg);
	free(saved_hint);
	return err;
}
