/*
 * Immich: ask the server to scan the External Library that holds the
 * photo directory, so new files show up now instead of at Immich's nightly
 * scan (immich-and-k8s.md §3.3):
 *   POST {--immich-url}/api/libraries/{--immich-library-id}/scan
 *   x-api-key: <first line of --immich-api-key-file, whitespace trimmed>
 * Immich answers 204; any 2xx counts.  The key needs library.update on an
 * admin user.  A failed scan request is a warning, never a failed sync.
 */
#ifndef ICPD_IMMICH_H
#define ICPD_IMMICH_H

#include <stdbool.h>

struct config;

/* True when --immich-url is set (the other two are then checked by
 * immich_scan, which warns when one is missing). */
bool immich_configured(const struct config *cfg);

/*
 * Request the scan.  Returns 0 on a 2xx answer (or when Immich is not
 * configured), else a negative ICPD_E* code after logging a warning.  The
 * run's error message (error.h) is left as it was, so callers may ignore
 * the result.  The key is registered with log_add_secret while it is in
 * memory and wiped afterwards.
 */
int immich_scan(const struct config *cfg);

/* Tests only: connect and idle timeout in seconds (0 = 10 and 30). */
void immich_set_timeout(int seconds);

#endif
