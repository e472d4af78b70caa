#!/bin/sh
# Smoke test of the icpd image against the fake iCloud, the way the Kubernetes CronJob and
# the auth Pod run it. Run container/build.sh first (it makes localhost/icpd:test).
#
#   container/smoke.sh             (root: needs unshare --net --mount and port 443)
#
# Everything runs inside a private network + mount namespace in which only loopback
# exists: the fake iCloud (tests/fake_icloud/server.py, --hosts apple, port 443) and
# podman --network=host, so nothing can leave the machine. Every container runs as
# uid/gid 1000 with a read-only root filesystem, with the same mounts as the CronJob:
# /config (state), /photos, /etc/icpd/config (the ConfigMap text of k8s/base, Apple ID
# replaced), /run/secrets/icloud (password + secret-key, root:1000 0440 like a Secret
# with defaultMode 0440 and fsGroup 1000). The fake's test CA is mounted at
# /run/fake-ca.pem and passed with --ca-file (Debian's libcurl ignores CURL_CA_BUNDLE).
#
# Checks:
#   1. the k8s ConfigMap's config file is accepted and `icpd sync` before any sign-in
#      exits 3 (auth required, not 2 = config rejected) with stdin closed
#   2. `icpd auth` with the answers piped in (Enter = send the code, then the code)
#      exits 0 and saves <id>.icpd-session in /config
#   3. the session file is mode 0600, owned by uid 1000, sealed (ICPD1 header) and holds
#      none of the session/trust tokens the fake issued, no cookie name, no password;
#      no .icpd-key was made (the key comes from the mounted Secret)
#   4. `icpd sync` exits 0; the tree equals what icloudpd writes for the fake's library
#      with the ConfigMap's options (paths, sizes, mtimes; tests/fake_icloud/expected_tree.py),
#      every file owned by uid 1000; nothing left in the hidden temp folder
#   5. a second `icpd sync` exits 0, downloads nothing, leaves the tree unchanged
#      `icpd status --json` (no network) reports the files, the last run ok, the trust age
#   6. the password appears in no output and in no file under /config
#
# Prints one line per check and a final "N passed, M failed"; exits non-zero on failure,
# 77 (with the reason) when this machine cannot run it (no network namespaces, podman
# cannot start a container). A skip is never reported as passing.
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
ASSETS=${ICPD_SMOKE_ASSETS:-24}
HOSTS="idmsa.apple.com setup.icloud.com www.icloud.com p42-ckdatabasews.icloud.com cvws.icloud-content.com"

export CONTAINERS_CONF="$here/containers.conf"
export CONTAINERS_STORAGE_CONF="$cache/storage.conf"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; }
note() { echo "--    $1"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}
# cannot run here: say why, exit 77, count nothing as passed
skip() {
	echo "SKIP  $1"
	echo "0 passed, 0 failed (skipped)"
	exit 77
}
die() {
	echo "FAIL  $1"
	echo "0 passed, 1 failed"
	exit 1
}

# podman run the image like the CronJob's pod; extra podman options before "--".
icpd_run() {
	popts=""
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		popts="$popts $1"
		shift
	done
	shift
	# shellcheck disable=SC2046,SC2086
	podman run --rm --network=host --read-only --user 1000:1000 \
		$(for h in $HOSTS; do printf ' --add-host %s:127.0.0.1' "$h"; done) \
		-e TZ="$TZNAME" \
		-v "$W/config:/config" -v "$W/photos:/photos" \
		-v "$W/etc-icpd:/etc/icpd:ro" -v "$W/secrets:/run/secrets/icloud:ro" \
		-v "$W/state/ca.pem:/run/fake-ca.pem:ro" \
		$popts "$image" "$@"
}

tree_listing() {
	# path size mtime owner of every file under photos, sorted
	(cd "$W/photos" && find . -type f -printf '%P %s %T@ %U:%G\n' | sort)
}

# content downloads (GETs on the cvws host) in the fake's request log
downloads() {
	"$PY" -c 'import json, sys
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("service") == "content" and e.get("method") == "GET":
        n += 1
print(n)' "$W/fake-requests.log"
}

inside() {
	W=$1
	ip link set lo up
	links=$(ip -o link | awk -F': ' '{ print $2 }' | tr '\n' ' ')
	if [ "$links" != "lo " ]; then
		bad "network namespace holds more than loopback: $links"
		finish
	fi
	t0=$(date +%s)
	"$PY" "$fake/server.py" --port 443 --hosts apple --state-dir "$W/state" \
		--accounts "$W/accounts.json" --library "$W/library.json" --log "$W/fake-requests.log" \
		>"$W/fake.out" 2>&1 &
	fakepid=$!
	i=0
	while [ ! -f "$W/state/ready.json" ] && [ $i -lt 300 ]; do
		kill -0 "$fakepid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -f "$W/state/ready.json" ]; then
		tail -5 "$W/fake.out"
		bad "fake iCloud did not start"
		kill "$fakepid" 2>/dev/null || true
		finish
	fi
	note "fake iCloud on 127.0.0.1:443 in a network namespace holding only: $links($(($(date +%s) - t0)) s)"

	# 1. sync without a session: exit 3 (the config was read: a rejected config is 2),
	# no prompt (stdin closed)
	rc=0
	icpd_run -- sync --config /etc/icpd/config --ca-file /run/fake-ca.pem </dev/null \
		>"$W/out-sync0.log" 2>&1 || rc=$?
	if [ "$rc" -eq 3 ]; then
		ok "k8s ConfigMap config accepted; sync before sign-in exits 3 (auth required)"
	else
		bad "sync before sign-in: exit $rc, want 3: $(tail -2 "$W/out-sync0.log")"
	fi

	# 2. auth, answers piped like someone at `kubectl attach -it`: Enter (send the code
	# to my devices), then the code; the password comes from the mounted password-file
	t0=$(date +%s)
	rc=0
	printf '\n%s\n' "$CODE" | icpd_run -i -- auth --config /etc/icpd/config \
		--ca-file /run/fake-ca.pem >"$W/out-auth.log" 2>&1 || rc=$?
	session="$W/config/$(echo "$APPLE_ID" | sed 's/[^A-Za-z0-9_]//g').icpd-session"
	if [ "$rc" -eq 0 ] && [ -f "$session" ]; then
		ok "auth with piped answers exit 0 ($(($(date +%s) - t0)) s); /config holds: $(find "$W/config" -mindepth 1 -printf '%P ')"
	else
		bad "auth: exit $rc, $(basename "$session") $([ -f "$session" ] && echo present || echo missing): $(tail -3 "$W/out-auth.log")"
	fi

	# 3. the session file: 0600, uid 1000, sealed, no token/cookie/password in clear
	if [ -f "$session" ]; then
		mode=$(stat -c '%a %u:%g' "$session")
		if [ "$mode" = "600 1000:1000" ]; then
			ok "session file mode 0600, owner 1000:1000"
		else
			bad "session file mode/owner: $mode, want 600 1000:1000"
		fi
		if msg=$("$PY" - "$session" "$W/state/auth-state.json" "$W/config" "$PASSWORD" <<'EOF'
import json, os, sys
session, fake_state, config, password = sys.argv[1:5]
data = open(session, "rb").read()
if not data.startswith(b"ICPD1"):
    print("no ICPD1 seal header: %r" % data[:8]); sys.exit(1)
# every token the fake issued (session tokens, conversation keys, web and trust tokens)
st = json.load(open(fake_state))
secrets = set(st.get("conv_keys", {})) | set(st.get("web_tokens", {})) | set(st.get("trust", {}))
for c in st.get("conversations", {}).values():
    if c.get("trust_token"):
        secrets.add(c["trust_token"])
secrets = {s for s in secrets if isinstance(s, str) and len(s) >= 16}
if not secrets:
    print("the fake recorded no tokens; nothing to compare"); sys.exit(1)
words = [s.encode() for s in secrets] + [password.encode()] + [w.encode() for w in (
    "X-APPLE-WEBAUTH", "X-APPLE-DS-WEB-SESSION-TOKEN", "X-Apple-Session-Token", "trustToken",
    "scnt", "dsWebAuthToken")]
found = []
for d, _, files in os.walk(config):
    for f in files:
        p = os.path.join(d, f)
        b = open(p, "rb").read()
        for w in words:
            if w in b:
                found.append("%s holds %s" % (os.path.relpath(p, config),
                             "a token" if w.decode() in secrets else
                             "the password" if w == password.encode() else w.decode()))
if found:
    print("; ".join(sorted(set(found)))); sys.exit(1)
print("%d issued tokens, the password and 6 cookie/header names absent from /config" % len(secrets))
EOF
		); then
			ok "session sealed (ICPD1 header): $msg"
		else
			bad "session not sealed: $msg"
		fi
		if [ -e "$W/config/.icpd-key" ]; then
			bad "a .icpd-key was created beside the session although secret-key-file is set"
		else
			ok "no .icpd-key in /config: the sealing key comes from the mounted Secret"
		fi
	else
		bad "session file checks: no session file"
	fi

	# 4. first sync
	t0=$(date +%s)
	rc=0
	icpd_run -- sync --config /etc/icpd/config --ca-file /run/fake-ca.pem </dev/null \
		>"$W/out-sync1.log" 2>&1 || rc=$?
	n1=$(downloads)
	if [ "$rc" -eq 0 ]; then
		ok "first sync exit 0 ($(($(date +%s) - t0)) s, $n1 downloads, $(find "$W/photos" -type f | wc -l) files)"
	else
		bad "first sync: exit $rc: $(tail -3 "$W/out-sync1.log")"
	fi
	if msg=$("$PY" - "$fake" "$W" "$TZNAME" <<'EOF'
import os, sys
fake, w, tz = sys.argv[1:4]
sys.path.insert(0, fake)
import library, expected_tree
lib = library.Library.load(os.path.join(w, "library.json"))
# the ConfigMap's options: folder-structure {:%Y/%m/%d}, size original, live MOV suffix
want = expected_tree.expected_icloudpd_tree(lib, {"tz": tz, "folder_structure": "{:%Y/%m/%d}"})
have, owners = {}, set()
top = os.path.join(w, "photos")
for d, dirs, files in os.walk(top):
    if os.path.relpath(d, top).split(os.sep)[0] == ".icpd-tmp":
        continue
    for f in files:
        p = os.path.join(d, f)
        st = os.lstat(p)
        have[os.path.relpath(p, top)] = (st.st_size, int(st.st_mtime))
        owners.add((st.st_uid, st.st_gid))
bad = []
for k in sorted(set(want) | set(have)):
    if k not in have:
        bad.append("missing %s" % k)
    elif k not in want:
        bad.append("unexpected %s" % k)
    elif have[k] != (want[k][0], int(want[k][1])):
        bad.append("%s: (size, mtime) %s, want %s" % (k, have[k], want[k]))
if bad or len(want) < 10:
    print("%d expected, %d on disk: %s" % (len(want), len(have), "; ".join(bad[:5])))
    sys.exit(1)
if owners != {(1000, 1000)}:
    print("file owners %s, want only 1000:1000" % sorted(owners))
    sys.exit(1)
print("%d files (paths, sizes, mtimes), all owned by 1000:1000" % len(want))
EOF
	); then
		ok "first sync tree equals icloudpd's layout: $msg"
	else
		bad "first sync tree: $msg"
	fi
	n_exp=$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import library, expected_tree
print(len(expected_tree.expected_icloudpd_tree(library.Library.load(sys.argv[2]), {"tz": sys.argv[3]})))' \
		"$fake" "$W/library.json" "$TZNAME")
	if [ "$n1" = "$n_exp" ]; then
		ok "first sync downloaded each of the $n_exp files once"
	else
		bad "first sync made $n1 downloads for $n_exp files"
	fi
	# Immich skips hidden paths; the temp folder must be empty and nothing else hidden
	leftovers=$(cd "$W/photos" && find . -mindepth 1 \( -path ./.icpd-tmp -prune -o -name '.*' -print \) | head -5)
	tmpleft=""
	if [ -d "$W/photos/.icpd-tmp" ]; then
		tmpleft=$(find "$W/photos/.icpd-tmp" -mindepth 1 | head -5)
	fi
	if [ -z "$leftovers" ] && [ -z "$tmpleft" ]; then
		ok "no temporary or hidden files left in the photo tree"
	else
		bad "left behind: $leftovers $tmpleft"
	fi

	# 5. second sync: nothing new
	before=$(tree_listing | sha256sum)
	rc=0
	icpd_run -- sync --config /etc/icpd/config --ca-file /run/fake-ca.pem </dev/null \
		>"$W/out-sync2.log" 2>&1 || rc=$?
	n2=$(downloads)
	after=$(tree_listing | sha256sum)
	if [ "$rc" -eq 0 ] && [ "$n1" = "$n2" ] && [ "$before" = "$after" ]; then
		ok "second sync exit 0, no downloads, tree unchanged (paths, sizes, mtimes, owners)"
	else
		bad "second sync: exit $rc, $((n2 - n1)) downloads, tree $([ "$before" = "$after" ] && echo unchanged || echo changed): $(tail -2 "$W/out-sync2.log")"
	fi

	# what the operator sees: `icpd status --json` on the same volumes, no network
	rc=0
	msg=""
	podman run --rm --network=none --read-only --user 1000:1000 -e TZ="$TZNAME" \
		-v "$W/config:/config" -v "$W/etc-icpd:/etc/icpd:ro" -v "$W/secrets:/run/secrets/icloud:ro" \
		"$image" status --json --config /etc/icpd/config </dev/null >"$W/out-status.log" 2>"$W/out-status.err" || rc=$?
	if [ "$rc" -eq 0 ] && msg=$("$PY" - "$W/out-status.log" "$n_exp" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
want = int(sys.argv[2])
lr = st.get("last_run") or {}
problems = []
if st.get("files_done") != want:
    problems.append("files_done %s, want %d" % (st.get("files_done"), want))
if (lr.get("result"), lr.get("exit_code"), lr.get("downloaded")) != ("ok", 0, 0):
    problems.append("last_run %s" % lr)
if not isinstance(st.get("trust_days_left"), int) or st["trust_days_left"] < 28:
    problems.append("trust_days_left %s" % st.get("trust_days_left"))
if problems:
    print("; ".join(problems)); sys.exit(1)
print("%d files done, last run ok, trust %d days left" % (want, st["trust_days_left"]))
EOF
	); then
		ok "icpd status --json (no network): $msg"
	else
		bad "icpd status --json: exit $rc: $msg $(tail -2 "$W/out-status.err")"
	fi

	# 6. the password in no output and no state file
	where=$(grep -rlF -- "$PASSWORD" "$W"/out-*.log "$W/config" 2>/dev/null | tr '\n' ' ' || true)
	if [ -z "$where" ]; then
		ok "password absent from all icpd output ($(cat "$W"/out-*.log | wc -l) lines) and from /config"
	else
		bad "the password appears in: $where"
	fi

	kill "$fakepid" 2>/dev/null || true
	wait "$fakepid" 2>/dev/null || true
	finish
}

if [ "${1:-}" = "--inside" ]; then
	inside "$2"
fi

[ "$(id -u)" = 0 ] || die "needs root (unshare --net, port 443)"
[ -f "$fake/server.py" ] || die "tests/fake_icloud/server.py is missing"
[ -x "$PY" ] || die "$PY is missing"
command -v podman >/dev/null 2>&1 || die "podman is not installed: run container/build.sh first"
[ -f "$CONTAINERS_STORAGE_CONF" ] || die "$CONTAINERS_STORAGE_CONF missing: run container/build.sh first"
podman image exists "$image" || die "$image missing: run container/build.sh first"
# what this machine must allow; if it does not, say so and skip (exit 77), never pass
unshare --mount --net --propagation private true 2>/dev/null ||
	skip "cannot create network + mount namespaces here (unshare --net --mount failed): the image cannot be tested without network access"
podman run --rm --network=none --read-only --user 1000:1000 "$image" --version >/dev/null 2>&1 ||
	die "podman cannot run $image at all (see container/build.sh)"

W=$(mktemp -d /var/tmp/icpd-smoke.XXXXXX)
[ -n "${ICPD_SMOKE_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT INT TERM
[ -z "${ICPD_SMOKE_KEEP:-}" ] || echo "work directory kept: $W"
mkdir -p "$W/state" "$W/config" "$W/photos" "$W/etc-icpd" "$W/secrets"
chmod 0700 "$W/state"

# the fake's account and a small library without hostile names
cat >"$W/accounts.json" <<EOF
{"accounts": [{"apple_id": "$APPLE_ID", "password": "$PASSWORD", "code": "$CODE", "iterations": 1000}]}
EOF
chmod 0600 "$W/accounts.json"
"$PY" "$fake/gen_library.py" --assets "$ASSETS" --seed 11 --hostile none --out "$W/library.json" \
	>"$W/gen_library.log" 2>&1 || { cat "$W/gen_library.log"; die "gen_library.py failed"; }
# the fake's certificates now, so that the CA file exists before the first mount
"$PY" "$fake/server.py" --port 443 --hosts apple --state-dir "$W/state" --accounts "$W/accounts.json" \
	--certs-only >/dev/null 2>"$W/certs.log" || { cat "$W/certs.log"; die "fake CA creation failed"; }

# /etc/icpd/config: the ConfigMap of k8s/base, with the test Apple ID
"$PY" - "$root/k8s/base/configmap.yaml" "$APPLE_ID" >"$W/etc-icpd/config" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
# the ConfigMap has one key, "config: |", followed by the indented file
m = re.search(r"^  config: \|\n((?:    .*\n|\s*\n)+)", text, re.M)
body = "".join(l[4:] if l.startswith("    ") else l.lstrip(" ") for l in m.group(1).splitlines(True))
sys.stdout.write(re.sub(r"^username = .*$", "username = " + sys.argv[2], body, flags=re.M))
EOF
grep -q "^username = $APPLE_ID\$" "$W/etc-icpd/config" || die "cannot derive the config from k8s/base/configmap.yaml"
grep -q '^password-file = /run/secrets/icloud/password$' "$W/etc-icpd/config" ||
	die "k8s/base/configmap.yaml no longer names /run/secrets/icloud/password"
grep -q '^secret-key-file = /run/secrets/icloud/secret-key$' "$W/etc-icpd/config" ||
	die "k8s/base/configmap.yaml no longer names /run/secrets/icloud/secret-key"

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

rc=0
unshare --mount --net --propagation private sh "$0" --inside "$W" || rc=$?
exit $rc
