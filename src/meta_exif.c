/*
 * EXIF: the one module that includes libexif.  libexif has no run-time
 * version call, so the version seen by the build is reported.
 */
#include <stdio.h>

#include <libexif/exif-data.h>

#include "icpd_build.h"
#include "icpd/version.h"
#include "icpd/banned.h"

const char *meta_exif_describe(void)
{
	return "libexif " ICPD_LIBEXIF_VERSION;
}
