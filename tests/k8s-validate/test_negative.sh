#!/bin/sh
# Negative test of the manifest validator: a clean copy of k8s/ must pass; each planted
# mistake must make the validator fail with the expected message.
# Prints one line per case and a final "N passed, M failed"; exits non-zero on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/k8s-negative.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# make sure node_modules is installed (run.sh does npm ci if needed)
if [ "$(cat "$here/node_modules/.icpd-lock-sha256" 2>/dev/null)" != "$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)" ]; then
	"$here/run.sh" >"$work/real.log" 2>&1 || true
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; }

# case NAME FILE SED-EXPR EXPECTED-REGEX
#   copies k8s/, applies SED-EXPR to FILE (must change it), runs the validator,
#   expects a non-zero exit and a FAIL line matching EXPECTED-REGEX.
case_() {
	name=$1 file=$2 expr=$3 expect=$4
	d="$work/$name"
	mkdir -p "$d"
	cp -a "$root/k8s" "$d/k8s"
	sed -i "$expr" "$d/k8s/$file"
	if cmp -s "$root/k8s/$file" "$d/k8s/$file"; then
		bad "$name: the sed expression did not change $file (test is broken)"
		return
	fi
	rc=0
	node "$here/validate-k8s.mjs" "$d/k8s" >"$d/out.log" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		bad "$name: validator accepted it (exit 0)"
		sed 's/^/        /' "$d/out.log" | tail -5
	elif ! grep -Eq "$expect" "$d/out.log"; then
		bad "$name: validator failed (exit $rc) but without the expected message /$expect/"
		grep -A3 '^FAIL' "$d/out.log" | sed 's/^/        /' | head -20
	else
		ok "$name: rejected (exit $rc): $(grep -E "$expect" "$d/out.log" | head -1 | sed 's/^ *//' | cut -c1-150)"
	fi
}

# the clean copy passes
mkdir -p "$work/clean"
cp -a "$root/k8s" "$work/clean/k8s"
rc=0
node "$here/validate-k8s.mjs" "$work/clean/k8s" >"$work/clean/out.log" 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
	ok "clean copy: accepted ($(tail -1 "$work/clean/out.log"))"
else
	bad "clean copy: rejected (exit $rc)"
	grep -A3 '^FAIL' "$work/clean/out.log" | sed 's/^/        /'
fi

case_ misspelled-field base/cronjob.yaml \
	's/^\( *\)restartPolicy: Never/\1restartPolicyy: Never/' \
	"restartPolicyy.*does not exist in type"
case_ wrong-type base/cronjob.yaml \
	's/^\( *\)backoffLimit: 1$/\1backoffLimit: "one"/' \
	"backoffLimit must be integer"
case_ bad-enum base/cronjob.yaml \
	's/^\( *\)concurrencyPolicy: Forbid$/\1concurrencyPolicy: Forbidden/' \
	"concurrencyPolicy must be equal to one of the allowed values"
case_ misspelled-field-in-patch overlays/immich/cronjob-affinity.yaml \
	's/topologyKey:/topologyKeyy:/' \
	"topologyKeyy.*does not exist in type"
case_ missing-kustomize-resource base/kustomization.yaml \
	's/- cronjob.yaml/- cronjobs.yaml/' \
	"referenced path does not exist: cronjobs.yaml"
case_ yaml-duplicate-key base/pvcs.yaml \
	's/^\(  name: icpd-config\)$/\1\n  name: icpd-config2/' \
	"yaml: duplicated mapping key"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
