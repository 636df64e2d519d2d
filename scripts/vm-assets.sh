#!/usr/bin/env bash
# Fetch the Debian kernel and CAN modules that the SocketCAN tests boot under
# qemu (the host kernel may have no CAN support), and the e1000 network driver
# for tests whose guest talks to services on the host. Usage: vm-assets.sh CACHE_DIR
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 CACHE_DIR" >&2
	exit 2
fi
vm="$1/vm"
modules="can.ko can-raw.ko can-dev.ko vcan.ko e1000.ko"

have_all() {
	[ -s "$vm/vmlinuz" ] && [ -s "$vm/kernel-version" ] || return 1
	for m in $modules; do
		[ -s "$vm/$m" ] || return 1
	done
}

if have_all; then
	echo "vm-assets: $vm already holds kernel $(cat "$vm/kernel-version"); nothing to do"
	exit 0
fi

# The metapackage names the current kernel package of this Debian release.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1)
if [ -z "$pkg" ]; then
	echo "vm-assets: apt-cache knows no linux-image-amd64 kernel; run 'apt-get update' first" >&2
	exit 1
fi
version=${pkg#linux-image-}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt drops privileges to _apt for downloads; give it a folder it can write
# so it does not fall back to root with a warning.
if id _apt >/dev/null 2>&1; then
	chown _apt "$tmp"
fi

echo "vm-assets: downloading $pkg"
(cd "$tmp" && apt-get download -q "$pkg")
deb=$(ls "$tmp"/*.deb)
echo "vm-assets: unpacking $(basename "$deb")"
dpkg -x "$deb" "$tmp/pkg"

mkdir -p "$vm"
# Stage into a new folder and rename, so an interrupted run never leaves a
# half-filled cache that have_all would accept.
stage="$vm.new"
rm -rf "$stage"
mkdir -p "$stage"
cp "$tmp/pkg/boot/vmlinuz-$version" "$stage/vmlinuz"
moddir="$tmp/pkg/lib/modules/$version/kernel"
for m in $modules; do
	f=$(find "$moddir/net/can" "$moddir/drivers/net/can" "$moddir/drivers/net/ethernet/intel/e1000" \
		-name "$m" | head -n 1)
	if [ -z "$f" ]; then
		# Newer Debian kernels compress modules (.ko.xz); busybox insmod
		# cannot load those, so say so rather than guess.
		echo "vm-assets: $m not found as a plain .ko in $pkg" >&2
		exit 1
	fi
	cp "$f" "$stage/$m"
done
echo "$version" >"$stage/kernel-version"
rm -rf "$vm"
mv "$stage" "$vm"
echo "vm-assets: $vm now holds kernel $version ($(du -sh "$vm" | cut -f1))"
