/*
 * State database: the one module that includes <sqlite3.h>.  The schema
 * arrives with the sync engine.
 */
#include <stdio.h>

#include <sqlite3.h>

#include "icpd/version.h"
#include "icpd/banned.h"

const char *state_describe(void)
{
	static char text[64];

	snprintf(text, sizeof(text), "SQLite %s", sqlite3_libversion());
	return text;
}
