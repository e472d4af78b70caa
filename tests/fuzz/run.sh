#!/bin/bash
# Build every libFuzzer target with clang (-fsanitize=fuzzer,address,undefined,
# the project's sources compiled again with coverage instrumentation) and run
# each for a bounded time, seeded from corpus/NAME.
#
#   run.sh [BUILD_DIR] [SECONDS]
#
# SECONDS (or FUZZ_SECONDS) per target, default 20.  FUZZ_TARGETS: names to
# run (default: every fuzz_*.c here).  FUZZ_CC: the compiler (clang).
# A crash, leak or sanitizer report fails the run; the input is kept as
# BUILD_DIR/fuzz/crash-NAME-* and the log's tail is printed.  Exit 77 (meson:
# skipped) when clang or its libFuzzer runtime is missing, and say so loudly.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-fuzz}
secs=${2:-${FUZZ_SECONDS:-20}}
cc=${FUZZ_CC:-clang}
jobs=$(nproc 2>/dev/null || echo 2)

skip() {
	echo "*** SKIPPED: $1; the fuzz targets were NOT built or run ***" >&2
	exit 77
}
command -v "$cc" >/dev/null 2>&1 || skip "'$cc' not found (apt-get install clang)"
mkdir -p "$out/fuzz/obj"
out=$(cd "$out" && pwd)
probe=$out/fuzz/probe.c
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}' >"$probe"
"$cc" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/fuzz/probe" 2>/dev/null ||
	skip "'$cc' has no libFuzzer/ASan runtime"

# icpd_build.h (version strings) comes from meson; make a stand-in
printf '#define ICPD_VERSION "fuzz"\n#define ICPD_LIBEXIF_VERSION "fuzz"\n' >"$out/fuzz/icpd_build.h"
common=(-g -O1 -std=c17 -D_GNU_SOURCE -fno-sanitize-recover=undefined
	-I"$root/include" -I"$root/src" -I"$out/fuzz")
pkgs="libcurl libcrypto jansson sqlite3 libexif libsodium"
cflags=$(pkg-config --cflags $pkgs) || skip "pkg-config cannot find: $pkgs"
libs=$(pkg-config --libs $pkgs)

# Every core source (all of src/ but main.c), instrumented, built once.
srcs=()
for s in "$root"/src/*.c; do
	[ "$(basename "$s")" = main.c ] || srcs+=("$s")
done
echo "compiling ${#srcs[@]} sources with $cc (instrumented)"
printf '%s\n' "${srcs[@]}" | xargs -P "$jobs" -I{} sh -c \
	'"$0" "$@" -c "{}" -o "'"$out"'/fuzz/obj/$(basename "{}" .c).o"' \
	"$cc" "${common[@]}" -fsanitize=fuzzer-no-link,address,undefined $cflags ||
	{ echo "FAILED: compiling the sources" >&2; exit 1; }
rm -f "$out/fuzz/libcore.a"
ar rcs "$out/fuzz/libcore.a" "$out"/fuzz/obj/*.o || exit 1

targets=${FUZZ_TARGETS:-$(cd "$here" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}
status=0
summary=()
for t in $targets; do
	name=fuzz_$t
	bin=$out/fuzz/$name
	if ! "$cc" "${common[@]}" -fsanitize=fuzzer,address,undefined $cflags \
		"$here/$name.c" "$out/fuzz/libcore.a" $libs -lpthread -lm -o "$bin"; then
		echo "FAILED: building $name" >&2
		summary+=("$t: BUILD FAILED")
		status=1
		continue
	fi
	# a scratch corpus: the seeds plus what earlier runs found
	corpus=$out/fuzz/corpus-$t
	mkdir -p "$corpus"
	[ -d "$here/corpus/$t" ] && cp "$here/corpus/$t"/* "$corpus"/ 2>/dev/null
	echo "running $name for ${secs}s ($(ls "$corpus" | wc -l) inputs in the corpus)"
	if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/fuzz/crash-$t-" \
		"$corpus" >"$out/fuzz/$name.log" 2>&1; then
		echo "*** $name FAILED; the log's tail (full log: $out/fuzz/$name.log):" >&2
		tail -60 "$out/fuzz/$name.log" >&2
		ls "$out"/fuzz/crash-"$t"-* 2>/dev/null >&2
		summary+=("$t: FAILED")
		status=1
	else
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz/$name.log" | tail -1)
		summary+=("$t: ok, ${runs:-?} runs in ${secs}s")
	fi
done
printf '%s\n' "${summary[@]}"
exit $status
