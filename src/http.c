/*
 * HTTP: the one module that includes <curl/curl.h>.  For now it reports
 * libcurl's version and features; the client comes with the sign-in work.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "icpd/version.h"
#include "icpd/banned.h"

const char *http_describe(void)
{
	static char text[256];
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	snprintf(text, sizeof(text), "libcurl %s (TLS: %s, HTTP/2: %s)", v->version,
		v->ssl_version ? v->ssl_version : "none",
		(v->features & CURL_VERSION_HTTP2) ? "yes" : "no");
	return text;
}
