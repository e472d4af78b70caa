#!/bin/sh
# Offline validation of k8s/ (see validate-k8s.mjs for what is checked).
# Usage: tests/k8s-validate/run.sh [PATH...]     (default: the repository's k8s/)
# Prints the validator's lines and a final "N passed, M failed"; exits non-zero on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

# npm ci only when node_modules does not match package-lock.json; under a lock,
# since the deploy tests run in parallel and each may ask for it
exec 9<package-lock.json
flock 9
want=$(sha256sum package-lock.json | cut -d' ' -f1)
have=$(cat node_modules/.icpd-lock-sha256 2>/dev/null || true)
if [ "$want" != "$have" ]; then
	if ! npm ci --no-audit --no-fund >npm-ci.log 2>&1; then
		cat npm-ci.log >&2
		echo "npm ci failed"
		echo "0 passed, 1 failed"
		exit 1
	fi
	rm -f npm-ci.log
	echo "$want" >node_modules/.icpd-lock-sha256
	echo "npm ci: node_modules installed from package-lock.json"
else
	echo "npm ci: skipped, node_modules matches package-lock.json"
fi
flock -u 9
exec 9<&-

if [ $# -eq 0 ]; then
	set -- "$root/k8s"
fi
exec node "$here/validate-k8s.mjs" "$@"
