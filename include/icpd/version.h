/*
 * Version reporting: each module that owns a third-party library reports
 * that library's run-time version, so only that module includes its header.
 */
#ifndef ICPD_VERSION_H
#define ICPD_VERSION_H

#include <stdio.h>

/* Each returns a static string. */
const char *http_describe(void);      /* libcurl version, TLS backend, HTTP/2 */
const char *secret_describe(void);    /* libsodium */
const char *state_describe(void);     /* SQLite */
const char *cloudkit_describe(void);  /* jansson */
const char *meta_exif_describe(void); /* libexif */

void version_print(FILE *out);

#endif
