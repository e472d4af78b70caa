/*
 * Secrets: the one module that includes <sodium.h>.  Sealing of session
 * files and locked memory for passwords arrive with the session work.
 */
#include <stdio.h>

#include <sodium.h>

#include "icpd/version.h"
#include "icpd/banned.h"

const char *secret_describe(void)
{
	static char text[64];

	snprintf(text, sizeof(text), "libsodium %s", sodium_version_string());
	return text;
}
