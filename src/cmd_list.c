/*
 * icpd list.
 */
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/banned.h"

int cmd_list(struct config *cfg)
{
	(void)cfg;
	return error_set(ICPD_ENOTIMPL, "'icpd list' is not built yet");
}
