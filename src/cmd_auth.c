/*
 * icpd auth.
 */
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/banned.h"

int cmd_auth(struct config *cfg)
{
	(void)cfg;
	return error_set(ICPD_ENOTIMPL, "'icpd auth' is not built yet");
}
