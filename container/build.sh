#!/bin/sh
# Build icpd's container image without a Docker engine (podman + runc, overlay or vfs
# storage, project-owned containers.conf/storage.conf) and run first smoke checks on it.
#
#   container/build.sh            (root; Debian 12; reaches only the Debian mirror)
#
# Steps: install podman buildah runc debootstrap if missing; make the base image
# localhost/icpd-base:bookworm with debootstrap --variant=minbase from the mirror configured
# in the machine's apt sources (read at run time, never written into the repository; the
# base tarball is cached in $ICPD_CACHE); podman build --pull=never; report the size
# (uncompressed, and of the OCI archive written to $ICPD_CACHE/icpd-oci.tar);
# run the image (no network, read-only root, uid 1000) with --version.
#
# Environment: ICPD_CACHE (default /var/cache/icpd-test): base tarball and container storage
#              ICPD_STORAGE_DRIVER (default auto = overlay if it works, else vfs)
#              ICPD_IMAGE (default localhost/icpd:test)
#              ICPD_IMAGE_MAX_MB (default 30): fail if the image is bigger
# Prints one line per check and a final "N passed, M failed"; exits non-zero on failure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${ICPD_CACHE:-/var/cache/icpd-test}
image=${ICPD_IMAGE:-localhost/icpd:test}
base=localhost/icpd-base:bookworm
max_mb=${ICPD_IMAGE_MAX_MB:-30}

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}
now() { date +%s; }
t_all=$(now)

# 1. tools
need=""
for t in podman:podman buildah:buildah runc:runc debootstrap:debootstrap; do
	command -v "${t%%:*}" >/dev/null 2>&1 || need="$need ${t#*:}"
done
if [ -n "$need" ]; then
	t0=$(now)
	echo "installing:$need"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 $need >/dev/null \
		|| { apt-get update -o DPkg::Lock::Timeout=300 >/dev/null &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 $need >/dev/null; } \
		|| { bad "apt-get install$need"; finish; }
	echo "installed in $(($(now) - t0)) s"
fi

# 2. project-owned podman configuration. Storage driver: overlay (the kernel's overlayfs; a
# layer costs only its changes) when it works on $cache's filesystem, else vfs (no overlayfs
# or fuse needed, but every layer is a full copy: the build stage is ~600 MB, so a cold
# build takes about 2.5 times as long). ICPD_STORAGE_DRIVER=overlay|vfs forces one.
# Each driver has its own storage directory (a graph root cannot change driver; the
# run root is recorded in the store, so stores made before it moved to /run are not reused).
export CONTAINERS_CONF="$here/containers.conf"
export CONTAINERS_STORAGE_CONF="$cache/storage.conf"
# The run root (transient state) goes to a short path under /run: podman's cleanup of an
# overlay container refuses a run root longer than 50 characters (the container then sits
# in "stopped" and every `podman run` waits 20 s for conmon's timeout).
use_driver() { # driver, storage directory under $cache
	mkdir -p "$cache/$2"
	runroot=/run/icpd-test/$(printf '%s' "$cache/$2" | cksum | cut -d' ' -f1)
	sed -e "s|@SCRATCH@|$cache/$2|g" -e "s|@RUNROOT@|$runroot|g" -e "s|@DRIVER@|$1|g" \
		"$here/storage.conf.in" >"$cache/storage.conf.tmp" &&
		mv "$cache/storage.conf.tmp" "$cache/storage.conf" &&
		podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' 2>&1
}
driver=${ICPD_STORAGE_DRIVER:-auto}
info=""
case $driver in
auto | overlay)
	info=$(use_driver overlay containers-overlay) || true
	if [ "$info" != "runc overlay" ] && [ "$driver" = auto ]; then
		echo "note: overlay storage does not work here ($(echo "$info" | tail -1)); using vfs"
		info=$(use_driver vfs containers-vfs) || true
	fi
	;;
vfs) info=$(use_driver vfs containers-vfs) || true ;;
*) info="ICPD_STORAGE_DRIVER must be auto, overlay or vfs, not '$driver'" ;;
esac
case $info in
"runc overlay" | "runc vfs")
	ok "podman uses the project configuration ($info, storage $(sed -n 's/^graphroot = "\(.*\)"$/\1/p' "$cache/storage.conf"))"
	;;
*)
	bad "podman configuration: expected 'runc overlay' or 'runc vfs', got: $info"
	finish
	;;
esac

# 3. base image from debootstrap (cached)
tarball="$cache/icpd-base-bookworm-minbase.tar"
if ! podman image exists "$base"; then
	if [ ! -s "$tarball" ]; then
		t0=$(now)
		mirror=""
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -f "$f" ] || continue
			mirror=$(awk '/^URIs:/ { print $2; exit }' "$f")
			[ -n "$mirror" ] && break
		done
		if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
			mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
		fi
		[ -n "$mirror" ] || { bad "no Debian mirror found in the apt sources"; finish; }
		rootfs=$(mktemp -d /var/tmp/icpd-rootfs.XXXXXX)
		if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1; then
			tail -5 "$cache/debootstrap.log"
			rm -rf "$rootfs"
			bad "debootstrap (log: $cache/debootstrap.log)"
			finish
		fi
		# debootstrap wrote the mirror into the rootfs; leave it (and caches) out
		tar -C "$rootfs" --exclude=./etc/apt/sources.list --exclude='./var/cache/apt/archives/*.deb' \
			--exclude='./var/lib/apt/lists/*' -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$rootfs"
		echo "debootstrap + tarball: $(($(now) - t0)) s"
	fi
	t0=$(now)
	podman import --change 'CMD ["/bin/bash"]' "$tarball" "$base" >/dev/null \
		|| { bad "podman import $base"; finish; }
	echo "import: $(($(now) - t0)) s"
fi
ok "base image $base present"

# 4. build
t0=$(now)
# Two builds sharing the layer cache: first the build stage alone, tagged, so that its
# layers (apt install, compile, unit tests) stay referenced and reusable; then the image.
if podman build --pull=never --network=host \
	-v /etc/apt/sources.list.d:/etc/apt/sources.list.d:ro \
	--ignorefile "$here/containerignore" --target build -t localhost/icpd-build:cache \
	-f "$here/Containerfile" "$root" >"$cache/build.log" 2>&1 &&
	podman build --pull=never --network=host \
	-v /etc/apt/sources.list.d:/etc/apt/sources.list.d:ro \
	--ignorefile "$here/containerignore" \
	-f "$here/Containerfile" -t "$image" "$root" >>"$cache/build.log" 2>&1; then
	# the build stage's meson test step: its result, or that the layer came from the cache
	if units=$(grep -Eo '^(Ok|Fail): +[0-9]+' "$cache/build.log" | tr -s ' ' | tr '\n' ' ') && [ -n "$units" ]; then
		units="unit tests in the build stage: $units"
	elif grep -A1 'meson test -C build' "$cache/build.log" | grep -q 'Using cache'; then
		units="unit-test step reused from the layer cache (same sources passed before)"
	else
		units="unit-test result not found in the log"
	fi
	ok "podman build $image ($(($(now) - t0)) s; $units; log $cache/build.log)"
else
	tail -30 "$cache/build.log"
	bad "podman build (log: $cache/build.log)"
	finish
fi
# drop the untagged layers of earlier builds (with vfs each is a full copy of the
# filesystem); what the tagged images above still use is kept
i=0
while [ $i -lt 10 ] && [ -n "$(podman image prune -f 2>/dev/null)" ]; do
	i=$((i + 1))
done
echo "container storage after pruning: $(du -sh "$(sed -n 's/^graphroot = "\(.*\)"$/\1/p' "$cache/storage.conf")" | cut -f1)"

# 5. size
bytes=$(podman image inspect --format '{{.Size}}' "$image")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')
if [ "$bytes" -le $((max_mb * 1000000)) ]; then
	ok "image size $mb MB uncompressed (limit $max_mb MB)"
else
	bad "image size $mb MB uncompressed exceeds $max_mb MB"
fi

# what a registry push or `k3s ctr images import` moves: the OCI archive (gzip layers)
rm -f "$cache/icpd-oci.tar"
if podman save --format oci-archive -o "$cache/icpd-oci.tar" "$image" >"$cache/save.log" 2>&1; then
	ok "OCI archive $(awk -v b="$(stat -c %s "$cache/icpd-oci.tar")" 'BEGIN { printf "%.1f", b / 1000000 }') MB ($cache/icpd-oci.tar)"
else
	bad "podman save --format oci-archive: $(tail -2 "$cache/save.log")"
fi

# 6. smoke: the binary runs with no network, a read-only root and uid 1000
t0=$(now)
if out=$(podman run --rm --network=none --read-only --user 1000:1000 "$image" --version 2>&1) &&
	echo "$out" | grep -q '^icpd '; then
	ok "podman run --network=none --read-only --user 1000:1000 $image --version ($(($(now) - t0)) s): $(echo "$out" | head -1)"
else
	bad "podman run ... --version: $out"
fi

# 7. distroless: no shell, no package manager in the image
if podman run --rm --network=none --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then
	bad "the image has a shell (/bin/sh ran)"
else
	ok "no /bin/sh in the image"
fi
ctr=$(podman create "$image")
list=$(podman export "$ctr" | tar -t)
podman rm "$ctr" >/dev/null
if echo "$list" | grep -Eq '(^|/)(bin/(ba|da)?sh|usr/bin/(apt|apt-get|dpkg))$'; then
	bad "shell or package manager found: $(echo "$list" | grep -E '(^|/)(bin/(ba|da)?sh|usr/bin/(apt|apt-get|dpkg))$' | tr '\n' ' ')"
else
	ok "no shell or package manager among $(echo "$list" | wc -l) paths"
fi

echo "total: $(($(now) - t_all)) s"
finish
