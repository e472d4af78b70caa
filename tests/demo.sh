#!/bin/bash
# The demo command: install what is missing, build, start the bundled fake
# iCloud, sign in with `icpd auth` (answering the 2FA prompt), sync into
# ./demo-photos and show what landed.  Safe to run again: the second run
# finds the session still trusted and downloads nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash tests/install-deps.sh build
if [ ! -f build-demo/build.ninja ]; then
	meson setup build-demo --buildtype=release -Dtests=false >/dev/null
fi
meson compile -C build-demo >/dev/null
icpd=$root/build-demo/icpd
echo "== built: $("$icpd" --version | head -1)"

demo=$root/build-demo/demo          # the fake's state, the session: not in view
mkdir -p "$demo"
chmod 700 "$demo"
user=demo@example.com
pw=$demo/password
[ -f "$pw" ] || (umask 077 && printf 'correct horse battery staple\n' >"$pw")
cat >"$demo/accounts.json" <<JSON
[{"apple_id": "$user", "password": "correct horse battery staple", "code": "123456",
  "library": "library.json"}]
JSON
# 60 assets of every kind (photos, live photos, videos, RAW+JPEG, edits),
# with the same seed every time so a re-run sees the same library.
echo '{"generate": {"count": 60, "seed": 7}}' >"$demo/library.json"

rm -f "$demo/state/ready.json"
/usr/bin/python3 tests/fake_icloud/server.py --port 0 --control-port 0 --hosts localhost \
	--state-dir "$demo/state" --accounts "$demo/accounts.json" --log "$demo/fake.log" \
	>"$demo/fake.out" 2>&1 &
fake=$!
trap 'kill $fake 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
	[ -f "$demo/state/ready.json" ] && break
	kill -0 $fake 2>/dev/null || { cat "$demo/fake.out"; exit 1; }
	sleep 0.2
done
if [ ! -f "$demo/state/ready.json" ]; then
	cat "$demo/fake.out"
	echo "demo: the fake iCloud did not start within 60 s (its log: $demo/fake.log)" >&2
	exit 1
fi
port=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' \
	"$demo/state/ready.json")
echo "== fake iCloud listening on 127.0.0.1:$port (HTTPS, its own test CA)"

# The endpoint overrides point icpd at the fake instead of Apple.
common=(--username "$user" --cookie-directory "$demo/cookies" --password-file "$pw"
	--ca-file "$demo/state/ca.pem"
	--auth-root "https://idmsa.apple.localhost:$port"
	--auth-endpoint "https://idmsa.apple.localhost:$port/appleauth/auth"
	--setup-endpoint "https://setup.icloud.localhost:$port/setup/ws/1"
	--home-endpoint "https://www.icloud.localhost:$port")

echo "== icpd auth   (answers: Enter = send the code to my devices, then the code 123456)"
printf '\n123456\n' | "$icpd" auth "${common[@]}"

echo "== icpd sync --directory ./demo-photos"
rc=0
"$icpd" sync "${common[@]}" --directory "$root/demo-photos" || rc=$?

echo "== what landed in ./demo-photos"
(cd "$root/demo-photos" && find . -type f ! -path './.icpd-tmp/*' | sort | sed 's|^\./|  |' | head -40)
n=$(cd "$root/demo-photos" && find . -type f ! -path './.icpd-tmp/*' | wc -l)
echo "  ... $n files, $(du -sh "$root/demo-photos" | cut -f1) in all"
exit $rc
