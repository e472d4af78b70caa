/*
 * icpd auth: sign in interactively (password, two-factor code) and save a
 * trusted session; --import-icloudpd DIR adopts icloudpd's session first.
 */
#include "icpd/auth.h"
#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/banned.h"

int cmd_auth(struct config *cfg)
{
	if (cfg->nargs > 0) {
		return error_set(ICPD_EUSAGE, "'icpd auth' takes no arguments (got '%s')",
			cfg->args[0]);
	}
	return auth_sign_in_only(cfg, AUTH_INTERACTIVE);
}
