#!/bin/bash
# The test command: install what is missing, build a release build with
# --werror and a debug build with ASan/UBSan, run every test suite in both
# (meson test -v, so Check's own summary lines reach the log), and end with
# one line "N passed, M failed".  Then build the container image and smoke-test
# it (container/build.sh, container/smoke.sh).  Exit non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."
root=$PWD
jobs=${ICPD_TEST_JOBS:-2}
# Tests wait on sockets and child processes about half the time (a full run
# used ~16 CPU minutes in ~15.5 wall minutes on 2 cores): one more test than
# cores keeps both busy.
test_jobs=${ICPD_TEST_PROCESSES:-$((jobs + 1))}

bash tests/install-deps.sh test || { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0

# Add the counts of one `meson test` run (read from its JSON log).
count() { # build dir [log name]
	local log=$1/meson-logs/${2:-testlog}.json r
	[ -f "$log" ] || { failed=$((failed + 1)); return; }
	while read -r r; do
		case $r in
		OK | EXPECTEDFAIL) passed=$((passed + 1)) ;;
		SKIP) skipped=$((skipped + 1)) ;;
		*) failed=$((failed + 1)) ;;
		esac
	done < <(/usr/bin/python3 -c 'import json,sys
for line in open(sys.argv[1]):
    line=line.strip()
    if line: print(json.loads(line)["result"])' "$log")
}

build() { # dir, meson setup args...
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
	else
		meson configure "$dir" "$@" >/dev/null 2>&1 || true
	fi
	meson compile -C "$dir" -j "$jobs"
}

# 1. Release build, warnings are errors, every suite.
if build build-release --buildtype=release --werror -Db_ndebug=true; then
	rm -f build-release/meson-logs/testlog.json
	meson test -C build-release -v --num-processes "$test_jobs" --print-errorlogs
	count build-release
else
	echo "icpd: release build failed"
	failed=$((failed + 1))
fi

# 2. Debug build with AddressSanitizer and UndefinedBehaviorSanitizer: every
#    suite that runs our C code (the fake's own tests and the icloudpd interop
#    test run no icpd code, so they ran once above).
if build build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false; then
	rm -f build-asan/meson-logs/testlog.json
	LSAN_OPTIONS=suppressions=$root/tests/lsan.supp ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C build-asan -v --num-processes "$test_jobs" --print-errorlogs \
		--no-suite fake --no-suite interop --no-suite deploy
	count build-asan
else
	echo "icpd: sanitizer build failed"
	failed=$((failed + 1))
fi

# 3. The unit suite under valgrind (no fork, so valgrind sees the tests).
if [ -f build-release/build.ninja ]; then
	echo "== unit tests under valgrind"
	rm -f build-release/meson-logs/testlog-valgrind.json
	CK_FORK=no meson test -C build-release --suite unit -v --num-processes "$jobs" \
		--wrap="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --quiet --suppressions=$root/tests/valgrind.supp"
	count build-release testlog-valgrind
fi

# 4. Static analysis: clang-tidy (.clang-tidy) over every source file.
echo "== clang-tidy"
if printf '%s\0' src/*.c | xargs -0 -n 4 -P "$jobs" clang-tidy -p build-release --quiet \
	>build-release/clang-tidy.log 2>&1; then
	passed=$((passed + 1))
	echo "clang-tidy: no findings"
else
	grep -E "error:|warning:" build-release/clang-tidy.log | head -50
	echo "clang-tidy: FAILED (full log: build-release/clang-tidy.log)"
	failed=$((failed + 1))
fi

# 5. The container image: container/build.sh builds it (podman, a debootstrap base from the
#    Debian mirror, cached in $ICPD_CACHE, default /var/cache/icpd-test), then
#    container/smoke.sh runs it against the fake iCloud (auth, sync, second sync) in a
#    loopback-only network namespace.  Each script is one step; exit 77 = this machine
#    cannot run it (the reason is printed): counted as skipped, never as passed.
container_step() { # name, script
	local t0=$SECONDS rc=0
	echo "== $1"
	sh "$2" || rc=$?
	echo "$1: exit $rc, $((SECONDS - t0)) s"
	case $rc in
	0) passed=$((passed + 1)) ;;
	77) skipped=$((skipped + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
	return $rc
}
if container_step "container image (container/build.sh)" container/build.sh; then
	container_step "container smoke test (container/smoke.sh)" container/smoke.sh || true
else
	echo "container smoke test: not run, the image build failed"
	failed=$((failed + 1))
fi

echo
echo "release + sanitizer builds, container image (meson tests; Check's per-case lines are above)"
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
