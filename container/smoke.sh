#!/bin/sh
# DRAFT - smoke test of the icpd image against the fake iCloud, the way the Kubernetes
# CronJob runs it. Run container/build.sh first (it makes localhost/icpd:test).
#
#   container/smoke.sh             (root: needs unshare --net and port 443)
#
# Everything runs inside a private network + mount namespace in which only loopback
# exists: the fake iCloud (tests/fake_icloud/server.py, --hosts apple, port 443) and
# podman --network=host, so nothing can leave the machine. The container runs as
# uid/gid 1000 with a read-only root filesystem, with the same mounts as the CronJob:
# /config (state), /photos, /etc/icpd/config (the ConfigMap text of k8s/base, Apple ID
# replaced), /run/secrets/icloud (password + secret-key, root:1000 0440 like a Secret
# with defaultMode 0440 and fsGroup 1000).
#
# Checks:
#   1. the k8s ConfigMap's config file is accepted (no exit 2)
#   2. `icpd sync` before any sign-in exits 3 (auth required), never prompts
#   3. `icpd auth` with the 2FA code piped in exits 0 and saves a session in /config,
#      which shows neither the password nor cookie names in clear text
#   4. `icpd sync` exits 0; the tree equals what icloudpd would write for the fake's library
#      (paths, sizes, mtimes; tests/fake_icloud/expected_tree.py); no temp files left
#   5. a second `icpd sync` exits 0, downloads nothing, leaves the tree unchanged
#   6. the password never appears in any output
#
# STATUS (draft): `icpd auth` and `icpd sync` are not implemented on main yet
# ("is not built yet", exit 1), so checks 2-5 FAIL today. Places that depend on product
# behaviour not yet known are marked TODO. Do not count this script as passing until it
# prints "... 0 failed" against a real build.
#
# Prints one line per check and a final "N passed, M failed"; exits non-zero on failure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${ICPD_CACHE:-/var/cache/icpd-test}
image=${ICPD_IMAGE:-localhost/icpd:test}
fake=$root/tests/fake_icloud
PY=/usr/bin/python3
APPLE_ID=smoke@example.com
PASSWORD=smoke-Pa55word-not-real
CODE=123456
TZNAME=America/Los_Angeles
HOSTS="idmsa.apple.com setup.icloud.com www.icloud.com p42-ckdatabasews.icloud.com cvws.icloud-content.com"

export CONTAINERS_CONF="$here/containers.conf"
export CONTAINERS_STORAGE_CONF="$cache/storage.conf"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# podman run the image like the CronJob's pod; extra podman options before "--".
# auth/sync get --ca-file /run/fake-ca.pem (the fake's test CA, mounted there): icpd's own
# CA option, since Debian's libcurl ignores CURL_CA_BUNDLE/SSL_CERT_FILE.
icpd_run() {
	popts=""
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		popts="$popts $1"
		shift
	done
	shift
	# shellcheck disable=SC2086
	podman run --rm --network=host --read-only --user 1000:1000 \
		$(for h in $HOSTS; do printf ' --add-host %s:127.0.0.1' "$h"; done) \
		-e TZ="$TZNAME" \
		-v "$W/config:/config" -v "$W/photos:/photos" \
		-v "$W/etc-icpd:/etc/icpd:ro" -v "$W/secrets:/run/secrets/icloud:ro" \
		-v "$W/state/ca.pem:/run/fake-ca.pem:ro" \
		$popts "$image" "$@" --config /etc/icpd/config
}

tree_listing() {
	# path size mtime of every file under photos, sorted
	(cd "$W/photos" && find . -type f -printf '%P %s %T@\n' | sort)
}

inside() {
	W=$1
	ip link set lo up
	mount --bind "$W/hosts" /etc/hosts
	"$PY" "$fake/server.py" --port 443 --hosts apple --state-dir "$W/state" \
		--accounts "$W/accounts.json" --library "$W/library.json" --log "$W/fake-requests.log" \
		>"$W/fake.out" 2>&1 &
	fakepid=$!
	i=0
	while [ ! -f "$W/state/ready.json" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -f "$W/state/ready.json" ]; then
		tail -5 "$W/fake.out"
		bad "fake iCloud did not start"
		kill "$fakepid" 2>/dev/null || true
		finish
	fi
	ok "fake iCloud listening on 127.0.0.1:443 (network namespace: $(ip -o link | awk -F': ' '{print $2}' | tr '\n' ' '))"

	# 1. config accepted (any exit but 2); uses `icpd status` which needs no network
	rc=0
	icpd_run -- status >"$W/out-status.log" 2>&1 || rc=$?
	if [ "$rc" -ne 2 ]; then
		ok "k8s ConfigMap config accepted by icpd (status exit $rc)"
	else
		bad "k8s ConfigMap config rejected (exit 2): $(head -3 "$W/out-status.log")"
	fi

	# 2. sync without a session: exit 3, no prompt (stdin closed)
	rc=0
	icpd_run -- sync --ca-file /run/fake-ca.pem </dev/null >"$W/out-sync0.log" 2>&1 || rc=$?
	if [ "$rc" -eq 3 ]; then
		ok "sync before sign-in exits 3 (auth required)"
	else
		bad "sync before sign-in: exit $rc, want 3: $(tail -2 "$W/out-sync0.log")"
	fi

	# 3. auth, answers piped (password comes from the mounted password-file)
	# TODO(auth): the prompt sequence of `icpd auth` is not fixed yet; this assumes it
	# asks only for the 2FA code when password-file is set. Adjust once cmd_auth lands.
	t0=$(date +%s)
	rc=0
	printf '%s\n' "$CODE" | icpd_run -i -- auth --ca-file /run/fake-ca.pem >"$W/out-auth.log" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ] && [ -n "$(ls -A "$W/config")" ]; then
		ok "auth with piped 2FA code ($(($(date +%s) - t0)) s); /config now holds: $(cd "$W/config" && ls | tr '\n' ' ')"
	else
		bad "auth: exit $rc: $(tail -3 "$W/out-auth.log")"
	fi
	# sealed session: no file in /config shows the password or cookie names in clear text
	clear=$(grep -rlE "$PASSWORD|X-APPLE-WEBAUTH|X-Apple-Session-Token|trustToken" "$W/config" 2>/dev/null || true)
	if [ -n "$(ls -A "$W/config")" ] && [ -z "$clear" ]; then
		ok "session files in /config are not readable as clear text"
	else
		bad "session in clear text or missing: ${clear:-/config is empty}"
	fi
	# TODO(auth): once the file names are fixed, also check the session files are mode 0600

	# 4. first sync
	t0=$(date +%s)
	rc=0
	icpd_run -- sync --ca-file /run/fake-ca.pem </dev/null >"$W/out-sync1.log" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "first sync exit 0 ($(($(date +%s) - t0)) s, $(find "$W/photos" -type f | wc -l) files)"
	else
		bad "first sync: exit $rc: $(tail -3 "$W/out-sync1.log")"
	fi
	if "$PY" - "$fake" "$W" "$TZNAME" <<'EOF'
import os, sys
fake, w, tz = sys.argv[1:4]
sys.path.insert(0, fake)
import library, expected_tree
lib = library.Library.load(os.path.join(w, "library.json"))
# TODO(sync): options must match the ConfigMap (size original, folder {:%Y/%m/%d}, suffix MOV)
want = expected_tree.expected_icloudpd_tree(lib, {"tz": tz})
have = {}
top = os.path.join(w, "photos")
for d, _, files in os.walk(top):
    for f in files:
        p = os.path.join(d, f)
        st = os.stat(p)
        have[os.path.relpath(p, top)] = (st.st_size, int(st.st_mtime))
bad = []
for k in sorted(set(want) | set(have)):
    if k not in have:
        bad.append("missing %s" % k)
    elif k not in want:
        bad.append("unexpected %s" % k)
    else:
        ws, wm = want[k][0], int(want[k][1])
        if have[k][0] != ws or have[k][1] != wm:
            bad.append("%s: size/mtime %s, want %s" % (k, have[k], (ws, wm)))
if bad or not want:
    print("tree differs (%d expected, %d on disk): %s" % (len(want), len(have), "; ".join(bad[:5])))
    sys.exit(1)
print("tree matches icloudpd's layout: %d files" % len(want))
EOF
	then
		ok "first sync tree equals the expected icloudpd tree"
	else
		bad "first sync tree"
	fi
	leftovers=$(find "$W/photos" \( -name '.*' -o -name '*.part' -o -name '*.tmp' \) | head -5)
	if [ -z "$leftovers" ]; then
		ok "no hidden or temporary files in the photo tree"
	else
		bad "temporary files left: $leftovers"
	fi

	# 5. second sync: nothing new
	before=$(tree_listing | sha256sum)
	n0=$(grep -c '"service": "content"' "$W/fake-requests.log" || true)
	rc=0
	icpd_run -- sync --ca-file /run/fake-ca.pem </dev/null >"$W/out-sync2.log" 2>&1 || rc=$?
	n1=$(grep -c '"service": "content"' "$W/fake-requests.log" || true)
	after=$(tree_listing | sha256sum)
	if [ "$rc" -eq 0 ] && [ "$n0" = "$n1" ] && [ "$before" = "$after" ]; then
		ok "second sync exit 0, no downloads, tree unchanged"
	else
		bad "second sync: exit $rc, downloads $((n1 - n0)), tree $([ "$before" = "$after" ] && echo unchanged || echo changed)"
	fi

	# 6. no secret in any output
	if grep -l -- "$PASSWORD" "$W"/out-*.log >/dev/null 2>&1; then
		bad "the password appears in icpd's output: $(grep -l -- "$PASSWORD" "$W"/out-*.log | tr '\n' ' ')"
	else
		ok "password absent from all icpd output"
	fi

	kill "$fakepid" 2>/dev/null || true
	wait "$fakepid" 2>/dev/null || true
	finish
}

if [ "${1:-}" = "--inside" ]; then
	inside "$2"
fi

[ "$(id -u)" = 0 ] || { echo "needs root (unshare --net, port 443)"; echo "0 passed, 1 failed"; exit 1; }
if [ ! -f "$fake/server.py" ]; then
	echo "tests/fake_icloud/server.py is not in this tree (branch 'fake' not merged yet)"
	echo "0 passed, 1 failed"
	exit 1
fi
podman image exists "$image" || { echo "$image missing: run container/build.sh first"; echo "0 passed, 1 failed"; exit 1; }

W=$(mktemp -d /var/tmp/icpd-smoke.XXXXXX)
trap 'rm -rf "$W"' EXIT INT TERM
mkdir -p "$W/state" "$W/config" "$W/photos" "$W/etc-icpd" "$W/secrets"

# the fake's account and a small library
cat >"$W/accounts.json" <<EOF
{"accounts": [{"apple_id": "$APPLE_ID", "password": "$PASSWORD", "code": "$CODE"}]}
EOF
"$PY" "$fake/gen_library.py" --assets 12 --seed smoke --hostile none --out "$W/library.json" >"$W/gen_library.log" 2>&1 \
	|| { cat "$W/gen_library.log"; echo "gen_library.py failed"; echo "0 passed, 1 failed"; exit 1; }

printf '127.0.0.1 localhost\n::1 localhost\n127.0.0.1 %s\n' "$HOSTS" >"$W/hosts"

# /etc/icpd/config: the ConfigMap of k8s/base, with the test Apple ID
"$PY" - "$root/k8s/base/configmap.yaml" "$APPLE_ID" >"$W/etc-icpd/config" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
# the ConfigMap has one key, "config: |", followed by the indented file
m = re.search(r"^  config: \|\n((?:    .*\n|\s*\n)+)", text, re.M)
body = "".join(l[4:] if l.startswith("    ") else l.lstrip(" ") for l in m.group(1).splitlines(True))
sys.stdout.write(re.sub(r"^username = .*$", "username = " + sys.argv[2], body, flags=re.M))
EOF
grep -q "^username = $APPLE_ID" "$W/etc-icpd/config" || { echo "cannot derive config from k8s/base/configmap.yaml"; echo "0 passed, 1 failed"; exit 1; }

# the Secret as the kubelet mounts it: root-owned, group = fsGroup 1000, mode 0440
printf '%s' "$PASSWORD" >"$W/secrets/password"
head -c 32 /dev/urandom | base64 | tr -d '\n' >"$W/secrets/secret-key"
printf '%s' "$APPLE_ID" >"$W/secrets/apple-id"
chown 0:1000 "$W/secrets"/*
chmod 0440 "$W/secrets"/*
chmod 0755 "$W/secrets"
# the PVCs as seen with fsGroup 1000
chown 1000:1000 "$W/config" "$W/photos"
chmod 0750 "$W/config"

unshare --mount --net --propagation private "$0" --inside "$W"
