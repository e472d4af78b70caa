#!/bin/bash
# Build the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# and run each for a bounded time (FUZZ_SECONDS, default 20).  FUZZ_TARGETS:
# names to run (default: cloudkit_record, the targets whose sources are
# listed below).  Exit 77 (meson:
# skipped) when clang or its fuzzer runtime is missing, and say so loudly.
#
#   run.sh [BUILD_DIR]
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-fuzz}
secs=${FUZZ_SECONDS:-20}
cc=${FUZZ_CC:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "*** SKIPPED: '$cc' not found; the fuzz targets were NOT built or run ***" >&2
	exit 77
fi
mkdir -p "$out/fuzz"
probe=$out/fuzz/probe.c
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}' >"$probe"
if ! "$cc" -fsanitize=fuzzer "$probe" -o "$out/fuzz/probe" 2>/dev/null; then
	echo "*** SKIPPED: '$cc' has no libFuzzer runtime; the fuzz targets were NOT built or run ***" >&2
	exit 77
fi

# Only what the decoder needs (no network, no libcurl).
srcs=(src/cloudkit_record.c src/cloudkit_plist.c src/cloudkit.c src/cloudkit_query.c src/asset.c src/util.c
	src/buf.c src/error.c src/log.c src/http.c)
flags=(-g -O1 -std=c17 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=undefined -I"$root/include" -I"$root/src" -I"$out/fuzz")
# icpd_build.h (version strings) comes from meson; make a stand-in
printf '#define ICPD_VERSION "fuzz"\n#define ICPD_LIBEXIF_VERSION "fuzz"\n' >"$out/fuzz/icpd_build.h"

status=0
for t in ${FUZZ_TARGETS:-cloudkit_record}; do
	target=$here/fuzz_$t.c
	name=fuzz_$t
	bin=$out/fuzz/$name
	echo "building $name"
	(cd "$root" && "$cc" "${flags[@]}" "$target" "${srcs[@]}" -o "$bin" \
		$(pkg-config --cflags --libs jansson libcurl) -lm) || { status=1; continue; }
	corpus=$out/fuzz/corpus-$name
	mkdir -p "$corpus"
	cp "$here"/corpus/"$t"/* "$corpus"/ 2>/dev/null
	echo "running $name for ${secs}s"
	if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 "$corpus" >"$out/fuzz/$name.log" 2>&1; then
		echo "$name FAILED; the crashing input and log:" >&2
		tail -60 "$out/fuzz/$name.log" >&2
		status=1
	else
		grep -E "stat::number_of_executed_units|Done" "$out/fuzz/$name.log" | tail -2
	fi
done
exit $status
