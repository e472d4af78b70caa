/*
 * libFuzzer target for the icloudpd cookie-jar parser (untrusted text from
 * the cookie directory).  Not built by meson yet; by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Ibuild \
 *     tests/fuzz/fuzz_session_lwp.c src/session.c src/secret.c src/http.c src/log.c \
 *     src/error.c src/util.c src/buf.c -lcurl -ljansson -lsodium -o fuzz_session_lwp
 *   ./fuzz_session_lwp -max_total_time=60
 * Checks beyond "no crash": on success the output is whole Netscape lines
 * of seven tab-separated fields; on failure the output is left as it was.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/buf.h"
#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/secret.h"
#include "icpd/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out = BUF_INIT;
	int err;

	log_setup(LOG_ERROR, LOG_FORMAT_TEXT, NULL);
	if (buf_adds(&out, "x\n") != 0) {
		abort();
	}
	err = session_parse_lwp((const char *)data, size, &out);
	if (err != 0 && (err != ICPD_EPROTO || strcmp(out.data, "x\n") != 0)) {
		abort();
	}
	if (err == 0) {
		size_t tabs = 0;

		for (size_t i = 2; i < out.len; i++) {
			if (out.data[i] == '\t') {
				tabs++;
			} else if (out.data[i] == '\n') {
				if (tabs != 6) {
					abort();
				}
				tabs = 0;
			} else if ((unsigned char)out.data[i] < 0x20) {
				abort();
			}
		}
		if (out.len > 2 && out.data[out.len - 1] != '\n') {
			abort();
		}
	}
	secret_buf_release(&out);
	error_clear();
	return 0;
}
