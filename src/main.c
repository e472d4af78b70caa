/*
 * icpd: find the command, resolve the configuration, run, map the result
 * to an exit code, print the error once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/commands.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/version.h"
#include "icpd/banned.h"

extern char **environ;

static bool is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

static int usage_error(const char *cmd)
{
	fprintf(stderr, "icpd: %s\n", error_message());
	if (error_hint_text()[0]) {
		fprintf(stderr, "hint: %s\n", error_hint_text());
	} else if (cmd) {
		fprintf(stderr, "hint: run 'icpd %s --help' to see its options\n", cmd);
	} else {
		fprintf(stderr, "hint: run 'icpd help' to see the commands\n");
	}
	return EXIT_USAGE;
}

/*
 * Remove ICPD_PASSWORD from the environment, and first overwrite its value
 * where it lies: unsetenv() alone only unlinks the entry, while the bytes
 * stay in the process's initial environment block, which
 * /proc/PID/environ shows to anyone who may read it (and a core dump holds).
 */
static void env_password_scrub(void)
{
	static const char name[] = "ICPD_PASSWORD=";
	char *found[8];
	size_t n = 0;

	for (char **e = environ; e && *e && n < ARRAY_SIZE(found); e++) {
		if (strncmp(*e, name, sizeof(name) - 1) == 0) {
			found[n++] = *e;
		}
	}
	unsetenv("ICPD_PASSWORD");
	for (size_t i = 0; i < n; i++) {
		explicit_bzero(found[i], strlen(found[i]));
	}
}

static int run_command(const struct command *cmd, int argc, char **argv)
{
	struct config cfg;
	int err, code;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			break;
		}
		if (is_help(argv[i])) {
			command_print_help(stdout, cmd);
			return 0;
		}
	}
	config_init(&cfg);
	err = config_resolve(&cfg, cmd->options, argc, argv, environ);
	/* ICPD_PASSWORD leaves the environment as soon as it was read. */
	env_password_scrub();
	if (err) {
		config_release(&cfg);
		return usage_error(cmd->name);
	}
	if (cfg.password) {
		log_add_secret(cfg.password);
	}
	if (cfg.env_password) {
		log_add_secret(cfg.env_password);
	}
	log_setup(cfg.log_level, cfg.log_format, stderr);

	err = cmd->run(&cfg);
	code = exit_code(err);
	if (err && err != ICPD_EPARTIAL) {
		if (err == ICPD_EUSAGE) {
			code = usage_error(cmd->name);
		} else {
			log_error("%s", error_message()[0] ? error_message() : error_name(err));
			if (error_hint_text()[0]) {
				log_error("%s", error_hint_text());
			}
		}
	}
	log_forget_secret(cfg.password);
	log_forget_secret(cfg.env_password);
	free(cfg.args);
	config_release(&cfg);
	return code;
}

int main(int argc, char **argv)
{
	const struct command *cmd;

	signal(SIGPIPE, SIG_IGN);
	if (http_global_init()) {
		fprintf(stderr, "icpd: %s\n", error_message());
		return EXIT_INTERNAL;
	}
	if (argc < 2 || is_help(argv[1])) {
		commands_print_overview(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		version_print(stdout);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc < 3) {
			commands_print_overview(stdout);
			return 0;
		}
		cmd = command_find(argv[2]);
		if (!cmd) {
			error_set(ICPD_EUSAGE, "unknown command '%s'", argv[2]);
			return usage_error(NULL);
		}
		command_print_help(stdout, cmd);
		return 0;
	}
	if (argv[1][0] == '-') {
		/* icloudpd compatibility: flags and no command means sync */
		return run_command(command_find("sync"), argc - 1, argv + 1);
	}
	cmd = command_find(argv[1]);
	if (!cmd) {
		error_set(ICPD_EUSAGE, "unknown command '%s'", argv[1]);
		return usage_error(NULL);
	}
	return run_command(cmd, argc - 2, argv + 2);
}
