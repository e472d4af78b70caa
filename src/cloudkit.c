/*
 * CloudKit client: one of the modules that may include <jansson.h>.  The
 * client arrives with the listing work.
 */
#include <stdio.h>

#include <jansson.h>

#include "icpd/version.h"
#include "icpd/banned.h"

const char *cloudkit_describe(void)
{
	static char text[64];

	snprintf(text, sizeof(text), "jansson %s", jansson_version_str());
	return text;
}
