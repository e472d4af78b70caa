/*
 * The RSS a program pays for linking Debian's libcurl before doing any work
 * of its own: peak RSS after loading (all of libcurl's dependencies:
 * OpenSSL, GnuTLS via LDAP and RTMP, Kerberos, libssh2, nghttp2, ...) and
 * after curl_global_init.  bench.py builds it with `cc rss_floor.c -lcurl`
 * and reports the numbers beside icpd's peak RSS: the floor under any
 * client that uses the libcurl of the distribution.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

static long hwm_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f) {
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmHWM:", 6) == 0) {
			sscanf(line + 6, "%ld", &kb);
		}
	}
	fclose(f);
	return kb;
}

int main(void)
{
	long loaded = hwm_kb();
	CURL *e;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		return 1;
	}
	e = curl_easy_init();
	printf("loaded_kb %ld\ninit_kb %ld\n", loaded, hwm_kb());
	curl_easy_cleanup(e);
	curl_global_cleanup();
	return 0;
}
