#!/bin/sh
# Install the Debian packages icpd needs to build and test, only those that
# are missing.  Idempotent; needs root (or sudo) on Debian 12.
set -eu
mode=${1:-build}   # build | test
pkgs="build-essential meson ninja-build pkg-config libcurl4-openssl-dev libssl-dev
libjansson-dev libsqlite3-dev libexif-dev libsodium-dev check openssl ca-certificates
python3 iproute2 util-linux"
if [ "$mode" = test ]; then
	pkgs="$pkgs valgrind libimage-exiftool-perl sqlite3 clang clang-tidy libclang-rt-14-dev locales"
	# The machine image ships Node.js with its own npm; Debian's npm would
	# conflict with it, so only ask Debian when there is no npm at all.
	command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
fi
missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "icpd: installing Debian packages:$missing"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq -o DPkg::Lock::Timeout=300
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $missing
fi

# The interop oracle for the test mode: the real icloudpd 1.32.2 (npm's
# prebuilt binary, unmodified), cached outside the repository.  The tests
# install it themselves when it is missing; doing it here, once, keeps them
# from racing each other for it.  No registry: the interop tests say so and
# are skipped (counted as skipped, never as passed).
if [ "$mode" = test ]; then
	cache=${ICPD_TEST_CACHE:-/var/cache/icpd-test}
	bin=$cache/icloudpd/node_modules/@icloudpd/linux-x64/bin/icloudpd
	if [ ! -x "$bin" ] && command -v npm >/dev/null 2>&1; then
		echo "icpd: installing icloudpd 1.32.2 from npm into $cache/icloudpd (the interop oracle)"
		mkdir -p "$cache/icloudpd"
		(
			cd "$cache/icloudpd" &&
				{ [ -f package.json ] || npm init -y >/dev/null; } &&
				flock .install-lock npm install --no-audit --no-fund icloudpd@1.32.2 >/dev/null 2>&1 &&
				chmod +x "$bin"
		) || echo "icpd: could not install icloudpd from npm; the interop tests will be skipped"
	fi
fi
