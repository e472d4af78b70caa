/*
 * The command table: each command names the options it accepts (which drive
 * both parsing and --help) and what it needs before it can run.
 */
#ifndef ICPD_COMMANDS_H
#define ICPD_COMMANDS_H

#include <stdio.h>

struct config;

struct command {
	const char *name;
	int (*run)(struct config *cfg); /* 0 or ICPD_E* */
	const char *const *options;     /* NULL-terminated long names */
	const char *usage;              /* after "icpd NAME" */
	const char *summary;
	const char *description;
};

/* Alphabetised. */
extern const struct command commands[];

const struct command *command_find(const char *name);
void command_print_help(FILE *out, const struct command *cmd);
void commands_print_overview(FILE *out);

int cmd_auth(struct config *cfg);
int cmd_list(struct config *cfg);
int cmd_status(struct config *cfg);
int cmd_sync(struct config *cfg);
int cmd_verify(struct config *cfg);

#endif
