/*
 * icpd sync.
 */
#include "icpd/auth.h"
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/banned.h"

int cmd_sync(struct config *cfg)
{
	/* --auth-only (icloudpd compatible): sign in, save, exit.  Owned by
	 * the sign-in work (auth.c); never prompts without a terminal. */
	if (cfg->auth_only) {
		return auth_sign_in_only(cfg, AUTH_UNATTENDED);
	}
	return error_set(ICPD_ENOTIMPL, "'icpd sync' is not built yet");
}
