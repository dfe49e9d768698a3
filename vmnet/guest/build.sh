#!/usr/bin/env bash
# Build the vmcni test guest: an uncompressed Debian cloud kernel (vmlinux,
# booted by QEMU via PVH) and a busybox-static initramfs carrying the virtio
# network modules and vmnet/guest/init.
#
# usage: build.sh [outdir]        (default /var/cache/vmcni/guest)
#
# Outputs:
#   <outdir>/vmlinux             uncompressed ELF kernel
#   <outdir>/initramfs.cpio.gz   busybox initramfs (/init = vmnet/guest/init)
#   <outdir>/VERSION             kernel release, e.g. 6.1.0-48-cloud-amd64
#   <outdir>/PACKAGE             kernel package name and version
#   <outdir>/STAMP               sha256 of build.sh + init; work is skipped
#                                when it matches and all outputs exist
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-/var/cache/vmcni/guest}
init_src=$here/init

log() { echo "guest-build: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ -f "$init_src" ] || die "missing $init_src"

stamp=$(cat "${BASH_SOURCE[0]}" "$init_src" | sha256sum | cut -d' ' -f1)
if [ -s "$outdir/vmlinux" ] && [ -s "$outdir/initramfs.cpio.gz" ] &&
	[ -s "$outdir/VERSION" ] && [ -f "$outdir/STAMP" ] &&
	[ "$(cat "$outdir/STAMP")" = "$stamp" ]; then
	log "up to date: $outdir (kernel $(cat "$outdir/VERSION"))"
	exit 0
fi

# --- dependencies -----------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v lz4 >/dev/null 2>&1 || need+=(lz4)
command -v modinfo >/dev/null 2>&1 || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${need[@]}"; then
		apt-get update
		apt-get install -y --no-install-recommends "${need[@]}"
	fi
fi
dpkg -s busybox-static >/dev/null 2>&1 || die "busybox-static not installed"
busybox=/bin/busybox

# --- kernel package ---------------------------------------------------------
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9].*-cloud-amd64$/ {print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get update
	pkg=$(apt-cache depends linux-image-cloud-amd64 |
		awk '/Depends: linux-image-[0-9].*-cloud-amd64$/ {print $2; exit}')
fi
[ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64"
kver=${pkg#linux-image-}
log "kernel package $pkg"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) ||
	{ apt-get update && (cd "$tmp" && apt-get download "$pkg"); }
deb=$(ls "$tmp"/*.deb)
pkgver=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" "$tmp/k"

vmlinuz=$tmp/k/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || die "no $vmlinuz in $pkg"

# --- vmlinux: cut vmlinuz at the LZ4 legacy magic 02 21 4c 18 -----------------
find_offset() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.find(b"\x02\x21\x4c\x18"))' "$1"
	else
		{ LC_ALL=C grep -obUaP '\x02\x21\x4c\x18' "$1" || true; } | awk -F: 'NR == 1 {print $1}'
	fi
}
off=$(find_offset "$vmlinuz")
[ -n "$off" ] && [ "$off" -ge 0 ] 2>/dev/null || die "LZ4 magic not found in $vmlinuz"
# lz4 stops with an error on the trailing non-LZ4 bytes; the output is complete.
tail -c +"$((off + 1))" "$vmlinuz" | lz4 -dc >"$tmp/vmlinux" 2>/dev/null || true
[ "$(head -c 4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] ||
	die "decompressed kernel is not an ELF"

# --- initramfs ----------------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,lib/modules,www}
cp "$busybox" "$root/bin/busybox"
for a in $("$busybox" --list); do
	[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done
install -m 0755 "$init_src" "$root/init"
echo "$kver" >"$root/etc/kernel-release"

moddir=$tmp/k/lib/modules/$kver
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mmio failover net_failover virtio_net"
order=
for m in $mods; do
	f=$(find "$moddir" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" \) -print -quit)
	if [ -z "$f" ]; then
		if grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null; then
			log "module $m is built in"
		else
			log "module $m not found (skipped)"
		fi
		continue
	fi
	case $f in
	*.ko) cp "$f" "$root/lib/modules/$m.ko" ;;
	*.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
	*.gz) gzip -dc "$f" >"$root/lib/modules/$m.ko" ;;
	esac
	order="$order $m"
done
echo "${order# }" >"$root/lib/modules/order"
log "modules:${order}"

(cd "$root" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner 0:0 --quiet) | gzip -9n >"$tmp/initramfs.cpio.gz"

# --- install outputs atomically ------------------------------------------------
mkdir -p "$outdir"
rm -f "$outdir/STAMP"
mv -f "$tmp/vmlinux" "$outdir/vmlinux"
mv -f "$tmp/initramfs.cpio.gz" "$outdir/initramfs.cpio.gz"
echo "$kver" >"$outdir/VERSION"
echo "$pkg $pkgver" >"$outdir/PACKAGE"
echo "$stamp" >"$outdir/STAMP"
log "built $outdir: kernel $kver ($pkgver), vmlinux $(stat -c %s "$outdir/vmlinux") B, initramfs $(stat -c %s "$outdir/initramfs.cpio.gz") B"
