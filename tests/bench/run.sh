#!/bin/sh
# icpd vs the real icloudpd 1.32.2 against the fake iCloud; writes
# tests/bench/RESULTS.md and tests/bench/chart.svg.  A script a person runs,
# not part of the test suite.  Needs root (private mount+net namespace, port 443).
#
#   tests/bench/run.sh [--quick] [--rounds N] [--rounds-100k N]
#                      [--scenarios list10k,resync10k,dl2k,list100k]
#                      [--assets list100k=50000] [--keep] [--work DIR]
#
# Env: ICPD_BIN       use this icpd binary (default: a release build in build-bench/)
#      ICLOUDPD_BIN   use this icloudpd binary (default: npm icloudpd@1.32.2 in
#                     ${ICPD_TEST_CACHE:-/var/cache/icpd-test}/icloudpd, installed if missing)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${ICPD_TEST_CACHE:-/var/cache/icpd-test}
NPMDIR=$CACHE/icloudpd

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (unshare --net, port 443)" >&2; exit 2; }
unshare --mount --net --propagation private true ||
	{ echo "run.sh: unshare --mount --net is not permitted here" >&2; exit 2; }

ICPD=${ICPD_BIN:-}
if [ -z "$ICPD" ]; then
	if [ ! -d "$ROOT/build-bench" ]; then
		meson setup "$ROOT/build-bench" "$ROOT" --buildtype=release >/dev/null
	fi
	meson compile -C "$ROOT/build-bench" icpd >/dev/null
	ICPD=$ROOT/build-bench/icpd
fi

ICLOUDPD=${ICLOUDPD_BIN:-$NPMDIR/node_modules/@icloudpd/linux-x64/bin/icloudpd}
if [ ! -x "$ICLOUDPD" ]; then
	mkdir -p "$NPMDIR"
	(cd "$NPMDIR" && { [ -f package.json ] || npm init -y >/dev/null; } &&
		npm install --no-audit --no-fund icloudpd@1.32.2 >/dev/null 2>&1)
	chmod +x "$ICLOUDPD"
fi
"$ICLOUDPD" --version | grep -q 'version:1.32.2' || { echo "run.sh: $ICLOUDPD is not icloudpd 1.32.2" >&2; exit 2; }

ICPD_BENCH_ARGV="tests/bench/run.sh $*" exec /usr/bin/python3 "$HERE/bench.py" \
	--icpd "$ICPD" --icloudpd "$ICLOUDPD" "$@"
