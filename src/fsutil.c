/*
 * Atomic file creation: .part in the hidden temp folder, fsync, rename,
 * fsync of the directory.  A crash at any point leaves either nothing or
 * the whole file in view; leftovers stay inside the hidden folder.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "icpd/error.h"
#include "icpd/fsutil.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/banned.h"

static int storage_error(int err, const char *what, const char *path)
{
	if (err == ENOSPC || err == EDQUOT) {
		error_set(ICPD_ESTORAGE, "disk full while writing '%s': %s", path, strerror(err));
		error_hint("free space on the volume (or raise the quota) and run again; nothing "
			   "half-written was left in view");
		return ICPD_ESTORAGE;
	}
	return error_set(ICPD_ESTORAGE, "cannot %s '%s': %s", what, path, strerror(err));
}

void fsutil_part_init(struct fsutil_part *p)
{
	memset(p, 0, sizeof(*p));
	p->fd = -1;
}

static void part_hash_drop(struct fsutil_part *p)
{
	EVP_MD_CTX_free(p->sha);
	p->sha = NULL;
	p->hashed = 0;
}

/* Start hashing at byte 0 (a new or emptied file). */
static void part_hash_start(struct fsutil_part *p)
{
	part_hash_drop(p);
	if (!p->hash) {
		return;
	}
	p->sha = EVP_MD_CTX_new();
	if (p->sha && EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL) != 1) {
		part_hash_drop(p); /* the file is hashed at the end instead */
	}
}

int fsutil_write_all(int fd, const void *data, size_t n, const char *what)
{
	const char *d = data;

	while (n > 0) {
		ssize_t w = write(fd, d, n);

		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return storage_error(errno, "write", what);
		}
		if (w == 0) {
			return storage_error(ENOSPC, "write", what);
		}
		d += w;
		n -= (size_t)w;
	}
	return 0;
}

int fsutil_part_open(struct fsutil_part *p, const char *tmpdir, const char *key, bool resume)
{
	struct stat st;
	bool same_path;
	char *path;

	fsutil_part_abort(p, false);
	if (!key || !*key || strchr(key, '/') || strcmp(key, ".") == 0 || strcmp(key, "..") == 0) {
		return error_set(ICPD_EINTERNAL, "bad temporary file key");
	}
	path = xasprintf("%s/%s.part", tmpdir, key);
	/* a retry in this process appends to the file it wrote: its hash holds */
	same_path = p->path && strcmp(p->path, path) == 0;
	free(p->path);
	p->path = path;
	p->size = 0;
	if (resume) {
		p->fd = open(p->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
		if (p->fd >= 0) {
			if (fstat(p->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
				close(p->fd);
				p->fd = -1;
			} else {
				p->size = (int64_t)st.st_size;
				if (p->size == 0) {
					part_hash_start(p);
				} else if (!p->sha || p->hashed != p->size || !same_path) {
					part_hash_drop(p); /* bytes of an earlier run */
				}
				return 0;
			}
		}
	}
	if (unlink(p->path) != 0 && errno != ENOENT) {
		return storage_error(errno, "remove", p->path);
	}
	p->fd = open(p->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (p->fd < 0) {
		return storage_error(errno, "create", p->path);
	}
	part_hash_start(p);
	return 0;
}

int fsutil_part_write(struct fsutil_part *p, const void *data, size_t n)
{
	int rc;

	if (p->fd < 0) {
		return error_set(ICPD_EINTERNAL, "write to a closed temporary file");
	}
	rc = fsutil_write_all(p->fd, data, n, p->path);
	if (rc != 0) {
		part_hash_drop(p); /* some of it may be on disk: read it back */
		return rc;
	}
	if (p->sha && p->hashed == p->size) {
		if (p->size < (int64_t)sizeof(p->head)) {
			size_t k = sizeof(p->head) - (size_t)p->size;

			memcpy(p->head + p->size, data, n < k ? n : k);
		}
		if (EVP_DigestUpdate(p->sha, data, n) == 1) {
			p->hashed += (int64_t)n;
		} else {
			part_hash_drop(p);
		}
	}
	p->size += (int64_t)n;
	return 0;
}

int fsutil_part_truncate(struct fsutil_part *p)
{
	if (p->fd < 0 || ftruncate(p->fd, 0) != 0) {
		return storage_error(p->fd < 0 ? EBADF : errno, "truncate", p->path ? p->path : "?");
	}
	p->size = 0;
	part_hash_start(p);
	return 0;
}

/* Does the streaming hash cover the whole file? */
static bool part_hash_whole(const struct fsutil_part *p)
{
	return p->sha && p->hashed == p->size;
}

ssize_t fsutil_part_head(struct fsutil_part *p, void *buf, size_t n)
{
	int fd;
	ssize_t r;

	if (!p->path) {
		return -1;
	}
	if (part_hash_whole(p) && (n <= sizeof(p->head) || p->size <= (int64_t)sizeof(p->head))) {
		size_t have = p->size < (int64_t)n ? (size_t)p->size : n;

		memcpy(buf, p->head, have);
		return (ssize_t)have;
	}
	fd = open(p->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	r = pread(fd, buf, n, 0);
	close(fd);
	return r;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0) {
		return storage_error(errno, "open directory", dir);
	}
	if (fsync(fd) != 0 && errno != EINVAL) {
		rc = storage_error(errno, "sync directory", dir);
	}
	close(fd);
	return rc;
}

static char *parent_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		return xstrdup(".");
	}
	if (slash == path) {
		return xstrdup("/");
	}
	return xstrndup(path, (size_t)(slash - path));
}

/* mkdir p, creating missing parents first; p is modified and restored. */
static int mkdirs_at(char *p, mode_t mode, int *saved)
{
	struct stat st;
	char *slash;
	int rc;

	if (mkdir(p, mode) == 0) {
		goto created;
	}
	if (errno == ENOENT && (slash = strrchr(p, '/')) != NULL && slash != p) {
		/* a parent is missing: make it, then this one */
		*slash = '\0';
		rc = mkdirs_at(p, mode, saved);
		*slash = '/';
		if (rc) {
			return rc;
		}
		if (mkdir(p, mode) == 0) {
			goto created;
		}
	}
	if (errno != EEXIST || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
		*saved = errno == EEXIST ? ENOTDIR : errno;
		return storage_error(*saved, "create directory", p);
	}
	return 0;
created:
	if (chmod(p, mode) != 0) {
		/* the umask must not narrow what the user asked for */
		*saved = errno;
		return storage_error(*saved, "chmod", p);
	}
	return 0;
}

/*
 * From the leaf up, not from the root down: a folder that is there costs
 * one stat, a new day folder under an existing month one mkdir (walking
 * down from '/' was a mkdir and a stat per component, ~12 system calls a
 * downloaded file).
 */
int fsutil_mkdirs(const char *path, mode_t mode)
{
	struct stat st;
	char *p;
	int rc, saved = 0;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		return 0;
	}
	p = xstrdup(path);
	rc = mkdirs_at(p, mode, &saved);
	free(p);
	errno = saved; /* callers tell "this path is taken" from "the disk failed" */
	return rc;
}

int fsutil_tmpdir(const char *directory, char **out)
{
	char *path = xasprintf("%s/" FSUTIL_TMPDIR, directory);
	struct stat st;
	int rc;

	*out = NULL;
	if (stat(directory, &st) != 0 || !S_ISDIR(st.st_mode)) {
		rc = error_set(ICPD_ESTORAGE, "cannot use directory '%s': %s", directory,
			errno ? strerror(errno) : "not a directory");
		free(path);
		return rc;
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		rc = storage_error(errno, "create directory", path);
		free(path);
		return rc;
	}
	*out = path;
	return 0;
}

void fsutil_tmpdir_clean(const char *tmpdir, int64_t max_age)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	time_t now = time(NULL);

	if (!d) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		char *p;

		if (e->d_name[0] == '.') {
			continue;
		}
		p = xasprintf("%s/%s", tmpdir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > max_age) {
			log_debug("removing stale temporary file '%s'", p);
			unlink(p);
		}
		free(p);
	}
	closedir(d);
}

int fsutil_part_commit(struct fsutil_part *p, const char *final_path, int64_t expect_size,
	mode_t mode, mode_t dir_mode, int64_t mtime)
{
	struct stat st;
	struct timespec ts[2];
	char *dir = NULL;
	int rc = 0;

	if (p->fd < 0) {
		/* closed so another module could rewrite it (EXIF): reopen */
		if (!p->path) {
			return error_set(ICPD_EINTERNAL, "commit of a closed temporary file");
		}
		p->fd = open(p->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (p->fd < 0) {
			return storage_error(errno, "open", p->path);
		}
	}
	if (fstat(p->fd, &st) != 0) {
		return storage_error(errno, "stat", p->path);
	}
	if (expect_size >= 0 && (int64_t)st.st_size != expect_size) {
		return error_set(ICPD_EASSET, "'%s' has %lld bytes, expected %lld", final_path,
			(long long)st.st_size, (long long)expect_size);
	}
	if (fchmod(p->fd, mode) != 0) {
		return storage_error(errno, "chmod", p->path);
	}
	ts[0].tv_sec = (time_t)mtime;
	ts[0].tv_nsec = 0;
	ts[1] = ts[0];
	if (futimens(p->fd, ts) != 0) {
		return storage_error(errno, "set the time of", p->path);
	}
	if (fsync(p->fd) != 0) {
		return storage_error(errno, "sync", p->path);
	}
	if (close(p->fd) != 0) {
		p->fd = -1;
		return storage_error(errno, "close", p->path);
	}
	p->fd = -1;
	dir = parent_of(final_path);
	rc = fsutil_mkdirs(dir, dir_mode);
	if (rc == 0 && rename(p->path, final_path) != 0) {
		int e = errno;

		rc = storage_error(e, "rename into place", final_path);
		if (e == EISDIR || e == ENOTDIR || e == ENOTEMPTY || e == EEXIST ||
			e == ENAMETOOLONG) {
			/* this path is taken by something else: this file fails, not the run */
			rc = ICPD_EASSET;
		}
	} else if (rc == ICPD_ESTORAGE && errno == ENOTDIR) {
		rc = ICPD_EASSET;
	}
	if (rc == 0) {
		rc = fsync_dir(dir);
	}
	free(dir);
	return rc;
}

/* Let go of what p holds besides its descriptor. */
static void part_release(struct fsutil_part *p)
{
	free(p->path);
	p->path = NULL;
	p->size = 0;
	part_hash_drop(p);
}

void fsutil_part_abort(struct fsutil_part *p, bool remove)
{
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (remove) {
		if (p->path) {
			unlink(p->path);
		}
		part_release(p);
	}
}

void fsutil_part_forget(struct fsutil_part *p)
{
	fsutil_part_abort(p, false);
	part_release(p);
}

static void hex32(const unsigned char *md, char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = '\0';
}

int fsutil_part_sha256(struct fsutil_part *p, bool changed, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct stat st;

	if (!p->path) {
		return error_set(ICPD_EINTERNAL, "hash of a closed temporary file");
	}
	/* the size on disk must be what went through p (nothing appended or
	 * cut behind its back) for the kept hash to stand for the file */
	if (!changed && part_hash_whole(p) && stat(p->path, &st) == 0 &&
		(int64_t)st.st_size == p->size && EVP_DigestFinal_ex(p->sha, md, &mdlen) == 1 &&
		mdlen == 32) {
		part_hash_drop(p);
		hex32(md, out);
		return 0;
	}
	part_hash_drop(p);
	return fsutil_sha256_file(p->path, out);
}

int fsutil_write_atomic(const char *tmpdir, const char *path, const void *data, size_t n,
	mode_t mode, mode_t dir_mode, int64_t mtime)
{
	struct fsutil_part p;
	char *key;
	const char *base = strrchr(path, '/');
	int rc;

	fsutil_part_init(&p);
	key = xasprintf("%d-%s", (int)getpid(), base ? base + 1 : path);
	rc = fsutil_part_open(&p, tmpdir, key, false);
	if (rc == 0) {
		rc = fsutil_part_write(&p, data, n);
	}
	if (rc == 0) {
		rc = fsutil_part_commit(&p, path, (int64_t)n, mode, dir_mode, mtime);
	}
	fsutil_part_abort(&p, true);
	free(key);
	return rc;
}

int fsutil_sha256_fd(int fd, char out[65])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *buf = xmalloc(1 << 16);
	off_t off = 0;
	int rc = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = error_set(ICPD_EINTERNAL, "cannot start SHA-256");
		goto done;
	}
	for (;;) {
		ssize_t r = pread(fd, buf, 1 << 16, off);

		if (r < 0) {
			if (errno == EINTR) {
				continue;
			}
			rc = error_set(ICPD_ESTORAGE, "cannot read a file to hash: %s", strerror(errno));
			goto done;
		}
		if (r == 0) {
			break;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)r);
		off += r;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		rc = error_set(ICPD_EINTERNAL, "cannot finish SHA-256");
		goto done;
	}
	hex32(md, out);
done:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

int fsutil_sha256_file(const char *path, char out[65])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		return error_set(ICPD_ESTORAGE, "cannot open '%s': %s", path, strerror(errno));
	}
	rc = fsutil_sha256_fd(fd, out);
	close(fd);
	return rc;
}

bool fsutil_is_inside(const char *path, const char *dir)
{
	char rdir[PATH_MAX], rpath[PATH_MAX];
	char *probe = xstrdup(path);
	bool inside = false;
	size_t n;

	if (!realpath(dir, rdir)) {
		free(probe);
		return false;
	}
	/* resolve the longest existing prefix of path */
	while (!realpath(probe, rpath)) {
		char *slash = strrchr(probe, '/');

		if (!slash || slash == probe) {
			free(probe);
			return false;
		}
		*slash = '\0';
	}
	n = strlen(rdir);
	inside = strncmp(rpath, rdir, n) == 0 && (rpath[n] == '/' || rpath[n] == '\0' ||
							 strcmp(rdir, "/") == 0);
	free(probe);
	return inside;
}
