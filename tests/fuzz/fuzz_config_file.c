/*
 * libFuzzer target for the config-file parser (config_load_file): the
 * input is the file's text, handed over as a memfd so config.c reads it
 * through its ordinary path.  Every option is allowed, so every value
 * parser runs.  Checks beyond "no crash": a failure is ICPD_EUSAGE with a
 * message, and the config can be released either way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char **allowed;

static void init_allowed(void)
{
	size_t n = 0;

	while (config_options[n].name) {
		n++;
	}
	allowed = calloc(n + 1, sizeof(*allowed));
	if (!allowed) {
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		allowed[i] = config_options[i].name;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char path[64];
	int fd;
	int err;

	if (!allowed) {
		log_setup(LOG_ERROR, LOG_FORMAT_TEXT, NULL);
		init_allowed();
	}
	fd = memfd_create("fuzz-config", 0);
	if (fd < 0) {
		abort();
	}
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	config_init(&c);
	err = config_load_file(&c, path, allowed);
	if (err != 0 && (err != ICPD_EUSAGE || !error_message() || !*error_message())) {
		abort();
	}
	config_release(&c);
	close(fd);
	error_clear();
	return 0;
}
