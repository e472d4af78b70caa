/*
 * Fuzz target for auth_parse_phone_list (Apple's sign-in page, untrusted
 * HTML/JSON).  Build with clang -fsanitize=fuzzer,address; without
 * libFuzzer, replay.c runs the seed corpus through the same entry point.
 */
#include <stddef.h>
#include <stdint.h>

#include "icpd/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_phone_list l;

	if (auth_parse_phone_list((const char *)data, size, &l) == 0) {
		auth_phone_list_release(&l);
	}
	return 0;
}
