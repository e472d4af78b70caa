/*
 * Files that appear whole or not at all.  Data is streamed into a ".part"
 * file in "<directory>/.icpd-tmp/" (hidden, so Immich never imports it; same
 * filesystem, so the final rename is atomic), size-checked, given its
 * metadata, fsync'ed, renamed into place, and the directory fsync'ed.
 */
#ifndef ICPD_FSUTIL_H
#define ICPD_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FSUTIL_TMPDIR ".icpd-tmp"

struct fsutil_part {
	int fd;            /* -1 when closed */
	char *path;        /* the .part file; owned */
	int64_t size;      /* bytes in the file */
	/* Set before fsutil_part_open: hash the bytes as they are written, so
	 * fsutil_part_sha256 need not read the file back. */
	bool hash;
	void *sha;         /* EVP_MD_CTX of the bytes written since byte 0, or NULL */
	int64_t hashed;    /* bytes fed to sha */
	unsigned char head[64]; /* the first bytes written since byte 0 */
};

void fsutil_part_init(struct fsutil_part *p);

/*
 * Open "<tmpdir>/<key>.part".  When resume is true and that file exists,
 * it is opened for appending and p->size says how much it holds;
 * otherwise any old file is removed and a new one created with O_EXCL.
 * key must be a plain file name (no '/').
 */
int fsutil_part_open(struct fsutil_part *p, const char *tmpdir, const char *key, bool resume)
	__attribute__((warn_unused_result));
/* Append.  Disk full (ENOSPC, EDQUOT) and other write errors are
 * ICPD_ESTORAGE with a message naming the file. */
int fsutil_part_write(struct fsutil_part *p, const void *data, size_t n)
	__attribute__((warn_unused_result));
/* Drop the content (a server restarted the body from byte 0). */
int fsutil_part_truncate(struct fsutil_part *p) __attribute__((warn_unused_result));
/* The first n bytes (for content sniffing); returns bytes read.  From
 * memory when they were written through p, else read back. */
ssize_t fsutil_part_head(struct fsutil_part *p, void *buf, size_t n);
/*
 * SHA-256 of the part's content as 64 hex digits.  When every byte of the
 * file went through fsutil_part_write since byte 0 (p->hash set, no resume
 * of an older file) and the file was not changed behind p's back
 * (changed = false), the hash kept while writing is used; otherwise the
 * file is read and hashed.
 */
int fsutil_part_sha256(struct fsutil_part *p, bool changed, char out[65])
	__attribute__((warn_unused_result));
/*
 * Make the part the file final_path: check its size equals expect_size
 * (when >= 0), chmod to mode, set atime/mtime to mtime (seconds), fsync,
 * close, create missing parent directories (dir_mode), rename, fsync the
 * directory.  A part closed with fsutil_part_abort(p, false) is reopened
 * first.  On failure the part is left for the caller to abort.
 */
int fsutil_part_commit(struct fsutil_part *p, const char *final_path, int64_t expect_size,
	mode_t mode, mode_t dir_mode, int64_t mtime) __attribute__((warn_unused_result));
/* Close; remove the file when remove is true.  Safe on a closed part. */
void fsutil_part_abort(struct fsutil_part *p, bool remove);
/* Close and let go of p (path, hash); the file stays where it is. */
void fsutil_part_forget(struct fsutil_part *p);

/* mkdir -p with mode for each directory created. */
int fsutil_mkdirs(const char *path, mode_t mode) __attribute__((warn_unused_result));
/* Create (if needed) "<directory>/.icpd-tmp"; *out is its path, caller frees. */
int fsutil_tmpdir(const char *directory, char **out) __attribute__((warn_unused_result));
/* Remove stale files of the temp folder older than max_age seconds. */
void fsutil_tmpdir_clean(const char *tmpdir, int64_t max_age);

/* Write a whole small file atomically via tmpdir (same steps as a part). */
int fsutil_write_atomic(const char *tmpdir, const char *path, const void *data, size_t n,
	mode_t mode, mode_t dir_mode, int64_t mtime) __attribute__((warn_unused_result));

/* SHA-256 of a file's content as 64 lower-case hex digits. */
int fsutil_sha256_file(const char *path, char out[65]) __attribute__((warn_unused_result));
int fsutil_sha256_fd(int fd, char out[65]) __attribute__((warn_unused_result));

/* Write all of data to fd; ENOSPC/EDQUOT become ICPD_ESTORAGE "disk full"
 * naming what.  Exposed for tests (write to /dev/full). */
int fsutil_write_all(int fd, const void *data, size_t n, const char *what)
	__attribute__((warn_unused_result));

/* Is path (after resolving what exists of it) inside dir? */
bool fsutil_is_inside(const char *path, const char *dir);

#endif
