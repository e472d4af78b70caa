#!/bin/sh
# Real icloudpd (npm icloudpd@1.32.2, unmodified prebuilt binary) against the
# fake iCloud, inside a private mount + network namespace (tooling.md section 4c/4d).
#
#   tests/fake_icloud/run_icloudpd.sh                      every check
#   tests/fake_icloud/run_icloudpd.sh --session-only DIR   only icloudpd's own
#       sign-in of jdoe@example.com and its reuse (route A), kept in DIR: a
#       session made by the real icloudpd, for a test of its own (the import
#       test), without sharing $ICPD_TEST_CACHE/icloudpd-session
#
# Env: ICPD_TEST_CACHE (default /var/cache/icpd-test): icloudpd is installed in
#      $ICPD_TEST_CACHE/icloudpd; the resulting icloudpd cookie directory, the
#      fake's state dir (CA, sessions) and accounts.json are kept in
#      $ICPD_TEST_CACHE/icloudpd-session/ (or DIR) for later use (start the fake
#      with that --state-dir and --accounts to make the saved sessions valid).
# Exit: 0 all checks passed, 1 a check failed, 77 cannot run here (skip).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
CACHE=${ICPD_TEST_CACHE:-/var/cache/icpd-test}
NPMDIR=$CACHE/icloudpd
BIN=$NPMDIR/node_modules/@icloudpd/linux-x64/bin/icloudpd

if [ "${1:-}" = "--inside" ]; then
	# running inside the namespaces: loopback only, private /etc/hosts and CA store
	W=$2
	ip link set lo up
	mount --bind "$W/hosts" /etc/hosts
	if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
		mount --bind "$W/state/ca.pem" /etc/ssl/certs/ca-certificates.crt
	fi
	exec "$PY" "$HERE/icloudpd_oracle.py" "$W" "$BIN" ${3:+"$3"}
fi

ONLY= KEEP=$CACHE/icloudpd-session
if [ "${1:-}" = "--session-only" ]; then
	[ -n "${2:-}" ] || { echo "usage: $0 [--session-only DIR]" >&2; exit 2; }
	ONLY=--session-only KEEP=$2
elif [ $# -gt 0 ]; then
	echo "usage: $0 [--session-only DIR]" >&2
	exit 2
fi

skip() {
	echo "************************************************************" >&2
	echo "SKIP (77): $*" >&2
	echo "************************************************************" >&2
	exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root for unshare --net and port 443"
command -v unshare >/dev/null || skip "unshare not installed"
command -v ip >/dev/null || skip "ip (iproute2) not installed"
unshare --mount --net --propagation private true 2>/dev/null ||
	skip "unshare --mount --net is not permitted here; the real-icloudpd oracle test did NOT run"

# one install at a time: the interop tests run in parallel
mkdir -p "$NPMDIR"
exec 8>"$NPMDIR/.install-lock"
flock 8
if [ ! -x "$BIN" ]; then
	command -v npm >/dev/null || skip "npm not installed and $BIN missing"
	(cd "$NPMDIR" && { [ -f package.json ] || npm init -y >/dev/null; } &&
		npm install --no-audit --no-fund icloudpd@1.32.2 >/dev/null 2>&1) ||
		skip "npm install icloudpd@1.32.2 failed (no registry access?)"
	chmod +x "$BIN"
fi
flock -u 8
exec 8>&-
"$BIN" --version | grep -q 'version:1.32.2' || { echo "unexpected icloudpd version" >&2; exit 1; }

W=$(mktemp -d /tmp/icloudpd-oracle.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/state" "$W/cookies" "$W/home"
"$PY" "$HERE/icloudpd_oracle.py" --write-config "$W"
"$PY" "$HERE/server.py" --certs-only --port 443 --state-dir "$W/state" \
	--accounts "$W/accounts.json" >/dev/null
cat >"$W/hosts" <<HOSTS
127.0.0.1 localhost
::1 localhost
127.0.0.1 idmsa.apple.com setup.icloud.com www.icloud.com p42-ckdatabasews.icloud.com cvws.icloud-content.com
127.0.0.1 idmsa.apple.com.cn setup.icloud.com.cn www.icloud.com.cn p42-ckdatabasews.icloud.com.cn cvws.icloud-content.com.cn
HOSTS

rc=0
unshare --mount --net --propagation private "$0" --inside "$W" $ONLY || rc=$?

# keep icloudpd's cookie directory together with the fake state that makes it valid
rm -rf "$KEEP"
mkdir -p "$KEEP"
cp -a "$W/cookies" "$W/state" "$W/accounts.json" "$W/library.json" "$KEEP/"
rm -f "$KEEP/state/ready.json"
chmod 700 "$KEEP"
echo "kept icloudpd cookie directory and fake state in $KEEP"
exit $rc
