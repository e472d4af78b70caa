#!/bin/sh
# Walk through container/RUNBOOK.md as a new user would: every ```sh block, in order, in one
# bash session, with HOME in a scratch directory, ~/icpd a copy of this repository's k8s/,
# and `kubectl` replaced by kubectl_sim.py (offline; see that file for what it checks).
# The simulated cluster starts with what the runbook assumes exists: namespace "immich"
# (Immich installed) and, for the icloudpd migration step, the old claim "icloudpd-photos".
# Not a cluster: no pod runs. ```shell blocks are not run (listed at the end).
#
# Prints one line per block and per final-state check, then "N passed, M failed".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runbook=${1:-$root/container/RUNBOOK.md}
PY=/usr/bin/python3

real=$(command -v kubectl || true)
if [ -z "$real" ]; then
	echo "kubectl not found: the runbook's kustomize steps cannot be rendered"
	echo "0 passed, 1 failed"
	exit 1
fi
# node_modules for the validator: run.sh does npm ci when they do not match the lock file
# (its validation result is reported by run.sh's own test, not here)
if [ "$(cat "$here/node_modules/.icpd-lock-sha256" 2>/dev/null)" != "$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)" ]; then
	"$here/run.sh" >/dev/null 2>&1 || true
fi
[ -d "$here/node_modules/kubernetes-models" ] || { echo "npm ci failed"; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/runbook.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/home/icpd" "$work/bin" "$work/home/icloudpd-cookies"
cp -a "$root/k8s" "$work/home/icpd/k8s"
printf '#!/bin/sh\nexec %s %s "$@"\n' "$PY" "$here/kubectl_sim.py" >"$work/bin/kubectl"
chmod +x "$work/bin/kubectl"
# what a user copies out of icloudpd's cookie directory (names only matter here)
printf 'fake cookie jar\n' >"$work/home/icloudpd-cookies/youexamplecom"
printf '{"session_token": "fake"}\n' >"$work/home/icloudpd-cookies/youexamplecom.session"
cat >"$work/state.json" <<'EOF'
{"objects": {
 "Namespace//immich": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "immich"}},
 "PersistentVolumeClaim/immich/icloudpd-photos": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
   "metadata": {"name": "icloudpd-photos", "namespace": "immich"},
   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}}}}
}}
EOF

# the runbook's sh blocks -> one bash script
"$PY" - "$runbook" >"$work/runbook.sh" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
out = ["set -eE -o pipefail",
       "__blk=0; __line=0",
       "trap 'echo \"FAIL  block $__blk (RUNBOOK.md line $__line): $BASH_COMMAND\"; exit 1' ERR"]
n = 0
for m in re.finditer(r"^```sh\n(.*?)^```\n", text, re.S | re.M):
    n += 1
    line = text.count("\n", 0, m.start()) + 1
    first = next(l for l in m.group(1).splitlines() if l.strip()).strip()
    out.append("__blk=%d; __line=%d; echo '--- block %d (RUNBOOK.md line %d)'" % (n, line, n, line))
    out.append(m.group(1).rstrip("\n"))
    out.append("echo %s" % ("'ok    block %d (line %d): %s'" % (n, line, first.replace("'", "")[:90])))
out.append("echo 'BLOCKS %d'" % n)
sys.stdout.write("\n".join(out) + "\n")
EOF
total=$(grep -c "^__blk=[1-9]" "$work/runbook.sh")

rc=0
(cd "$work/home" && printf 'not-the-real-password\n' |
	env PATH="$work/bin:$PATH" HOME="$work/home" KSIM_REAL="$real" KSIM_STATE="$work/state.json" \
		KSIM_VALIDATOR="$here/validate-k8s.mjs" KSIM_LOG="$work/calls.log" \
		bash "$work/runbook.sh") >"$work/out.log" 2>&1 || rc=$?

grep -E '^(ok|FAIL) ' "$work/out.log" || true
passed=$(grep -c '^ok ' "$work/out.log" || true)
failed=$((total - passed))
if [ "$rc" -ne 0 ]; then
	echo "        output of the failing block:"
	awk '/^--- block/ { buf = "" } { buf = buf "\n" $0 } END { print buf }' "$work/out.log" |
		tail -15 | sed 's/^/        /'
fi

# final state: the runbook's changes took effect
if [ "$rc" -eq 0 ]; then
	if "$PY" - "$work/state.json" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))["objects"]
cj = o.get("CronJob/immich/icpd-sync")
errs = []
if not cj:
    errs.append("no CronJob icpd-sync in namespace immich")
else:
    spec = cj["spec"]
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    if spec["schedule"] != "0 3 * * 0":
        errs.append("schedule %r, want the weekly '0 3 * * 0' of step 10" % spec["schedule"])
    if pod["containers"][0]["image"] != "registry.example.com/icpd:0.2.0":
        errs.append("image %r, want registry.example.com/icpd:0.2.0 of step 11" % pod["containers"][0]["image"])
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
    if claims.get("photos") != "icloudpd-photos":
        errs.append("photos claim %r, want icloudpd-photos of step 9" % claims.get("photos"))
    if "affinity" not in pod:
        errs.append("the CronJob pod lost its pod affinity")
for k in ("Pod/immich/icpd-auth", "Job/immich/icpd-sync-manual", "Secret/immich/icloudpd-cookies"):
    if k in o:
        errs.append("%s left behind" % k)
if "Secret/immich/icloud-credentials" not in o:
    errs.append("Secret icloud-credentials missing")
cm = o.get("ConfigMap/immich/icpd-settings", {}).get("data", {}).get("config", "")
if "username = you@example.com" not in cm:
    errs.append("the ConfigMap does not carry the Apple ID of step 2")
if errs:
    print("FAIL  final state: " + "; ".join(errs))
    sys.exit(1)
print("ok    final state: weekly schedule, image 0.2.0, photos on icloudpd-photos, affinity kept, "
      "credentials present, no auth Pod/manual Job/cookie Secret left, Apple ID in the ConfigMap")
EOF
	then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
else
	echo "FAIL  final state: not checked (a block failed)"
	failed=$((failed + 1))
fi

calls=$(wc -l <"$work/calls.log" 2>/dev/null || echo 0)
echo "kubectl calls simulated: $calls; shell blocks not run: $(grep -c '^```shell' "$runbook")"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
