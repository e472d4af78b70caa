/*
 * icpd verify.
 */
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/banned.h"

int cmd_verify(struct config *cfg)
{
	(void)cfg;
	return error_set(ICPD_ENOTIMPL, "'icpd verify' is not built yet");
}
