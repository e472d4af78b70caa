/*
 * icpd sync.
 */
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/banned.h"

int cmd_sync(struct config *cfg)
{
	(void)cfg;
	return error_set(ICPD_ENOTIMPL, "'icpd sync' is not built yet");
}
