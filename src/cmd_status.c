/*
 * icpd status.
 */
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/banned.h"

int cmd_status(struct config *cfg)
{
	(void)cfg;
	return error_set(ICPD_ENOTIMPL, "'icpd status' is not built yet");
}
