#!/bin/sh
# Negative test of the runbook walk-through (test_runbook.sh): a copy of
# container/RUNBOOK.md with one planted mistake must make the walk-through fail with the
# expected message. Prints one line per case and "N passed, M failed"; exits non-zero on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/runbook-negative.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; }

# the runbook walk-through (test_runbook.sh) must catch mistakes in the runbook too
# rcase NAME SED-EXPR EXPECTED-REGEX
rcase() {
	name=$1 expr=$2 expect=$3
	rb="$work/RUNBOOK-$name.md"
	sed "$expr" "$root/container/RUNBOOK.md" >"$rb"
	if cmp -s "$root/container/RUNBOOK.md" "$rb"; then
		bad "runbook $name: the sed expression did not change RUNBOOK.md (test is broken)"
		return
	fi
	rc=0
	"$here/test_runbook.sh" "$rb" >"$work/rb-$name.log" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		bad "runbook $name: walk-through accepted it"
	elif ! grep -Eq "$expect" "$work/rb-$name.log"; then
		bad "runbook $name: failed (exit $rc) but without /$expect/"
		grep -E "ksim|FAIL" "$work/rb-$name.log" | head -5 | sed 's/^/        /'
	else
		ok "runbook $name: rejected: $(grep -E "$expect" "$work/rb-$name.log" | head -1 | sed 's/^ *//' | cut -c1-150)"
	fi
}
rcase wrong-cronjob-name 's|cronjob/icpd-sync icpd-sync-manual|cronjob/icpd-synk icpd-sync-manual|' \
	'CronJob "icpd-synk" not found'
rcase wrong-secret-key 's|--from-file=secret-key=|--from-file=secretkey=|' \
	'has no key secret-key'
rcase wrong-container 's|attach -it pod/icpd-auth -c icpd$|attach -it pod/icpd-auth -c sync|' \
	'container sync not found'
rcase no-image-override 's|^  - name: icpd$|  - name: icpd-image|' \
	'placeholder icpd:latest'
rcase wrong-namespace 's|kubectl -n immich logs pod/icpd-auth|kubectl -n photo-sync logs pod/icpd-auth|' \
	'Pod "icpd-auth" not found in namespace "photo-sync"'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
