#!/bin/bash
# The demo command: install what is missing, build, start the bundled fake
# iCloud, sign in with `icpd auth` (answering the 2FA prompt), sync into
# ./demo-photos and show what landed.  Safe to run again.
set -eu
cd "$(dirname "$0")/.."
root=$PWD
bash tests/install-deps.sh build
if [ ! -f build-demo/build.ninja ]; then
	meson setup build-demo --buildtype=release -Dtests=false >/dev/null
fi
meson compile -C build-demo >/dev/null
icpd=$root/build-demo/icpd
echo "== icpd built: $("$icpd" --version | head -1)"

if [ ! -f tests/fake_icloud/server.py ]; then
	echo "== not yet: the fake iCloud (tests/fake_icloud/server.py) has not landed;"
	echo "   nothing to sign in to.  Built and ran: icpd --version"
	exit 0
fi
exec bash tests/fake_icloud/demo_run.sh "$icpd"
