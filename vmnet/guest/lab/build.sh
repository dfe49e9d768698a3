#!/usr/bin/env bash
# Build the vmcni device lab: a guest whose kernel drives real SR-IOV and
# VFIO (Debian's generic kernel: igb, igbvf, vfio-pci, the Intel IOMMU) and
# the QEMU that emulates the hardware (bookworm-backports' QEMU 10: the igb
# 82576 with 7 VFs, intel-iommu). The host's QEMU is left alone: the
# backports packages are unpacked into the output directory, never
# installed, and fetched through a private apt configuration, so the host's
# apt sources do not change.
#
# usage: build.sh [outdir]        (default /var/cache/vmcni/lab)
#
# Outputs:
#   <outdir>/qemu/               unpacked qemu-system-x86, -common, -data
#   <outdir>/vmlinuz             the generic kernel (bzImage)
#   <outdir>/initramfs.cpio.gz   busybox + modules (/lib/modules, load order
#                                in /lib/modules/order) + /init (lab/init) +
#                                /nested: QEMU (/nested/qemu, with its host
#                                libraries) and a nested guest (the same
#                                kernel, vmnet's guest init, igbvf) to boot
#                                on a VFIO-bound VF
#   <outdir>/VERSION             kernel release and QEMU version
#   <outdir>/STAMP               sha256 of build.sh, both inits; work is skipped
#                                when it matches and every output exists
#
# The QEMU version is pinned (QEMU_VERSION); the kernel is what
# linux-image-amd64 resolves to, like the test guest's.
set -euo pipefail

QEMU_VERSION=${QEMU_VERSION:-1:10.0.2+ds-2+deb13u1~bpo12+1}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-/var/cache/vmcni/lab}
init_src=$here/init

log() { echo "lab-build: $*" >&2; }
die() { log "error: $*"; exit 1; }

guest_init=$here/../init
stamp=$( (cat "${BASH_SOURCE[0]}" "$init_src" "$guest_init"; echo "$QEMU_VERSION") | sha256sum | cut -d' ' -f1)
if [ -x "$outdir/qemu/usr/bin/qemu-system-x86_64" ] && [ -s "$outdir/vmlinuz" ] &&
	[ -s "$outdir/initramfs.cpio.gz" ] && [ -f "$outdir/STAMP" ] &&
	[ "$(cat "$outdir/STAMP")" = "$stamp" ]; then
	log "up to date: $outdir ($(tr '\n' ' ' <"$outdir/VERSION"))"
	exit 0
fi

for c in busybox cpio modinfo dpkg-deb apt-get; do
	command -v "$c" >/dev/null 2>&1 || die "$c missing (run .ci/deps)"
done
[ -f /usr/share/seabios/bios-256k.bin ] || die "seabios missing (installed with the host's qemu-system-x86)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- QEMU from bookworm-backports, through a private apt state ---------------
apt=$tmp/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$tmp/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" >"$apt/sources.list"
aptopts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
apt-get "${aptopts[@]}" update >/dev/null || die "apt-get update (bookworm-backports) failed"
(cd "$tmp/debs" && apt-get "${aptopts[@]}" download \
	"qemu-system-x86=$QEMU_VERSION" "qemu-system-common=$QEMU_VERSION" "qemu-system-data=$QEMU_VERSION" >/dev/null) ||
	die "cannot download QEMU $QEMU_VERSION from bookworm-backports"
mkdir -p "$tmp/qemu"
for d in "$tmp"/debs/qemu-*.deb; do dpkg-deb -x "$d" "$tmp/qemu"; done
qemu_ver=$(QEMU_MODULE_DIR=$tmp/qemu/usr/lib/x86_64-linux-gnu/qemu "$tmp/qemu/usr/bin/qemu-system-x86_64" --version | head -1)
log "$qemu_ver"

# --- the generic kernel -------------------------------------------------------
resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9].*-amd64$/ {print $2; exit}'; }
pkg=$(resolve)
[ -n "$pkg" ] || { apt-get update >/dev/null && pkg=$(resolve); }
[ -n "$pkg" ] || die "cannot resolve linux-image-amd64"
kver=${pkg#linux-image-}
(cd "$tmp/debs" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null) ||
	{ apt-get update >/dev/null && (cd "$tmp/debs" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null); }
dpkg-deb -x "$tmp"/debs/linux-image-*.deb "$tmp/k"
[ -f "$tmp/k/boot/vmlinuz-$kver" ] || die "no vmlinuz in $pkg"
log "kernel $pkg"

# --- initramfs ------------------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,lib/modules,var}
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done
ln -s ../run "$root/var/run"
install -m 0755 "$init_src" "$root/init"
echo "$kver" >"$root/etc/kernel-release"

# Modules in dependency order (modinfo's depends, depth first).
moddir=$tmp/k/lib/modules/$kver
order=()
add_module() {
	local m=$1 f dep
	for dep in "${order[@]}"; do [ "$dep" = "$m" ] && return 0; done
	f=$(find "$moddir" -name "$m.ko*" -print -quit)
	if [ -z "$f" ]; then
		m=${m//_/-}
		f=$(find "$moddir" -name "$m.ko*" -print -quit)
	fi
	[ -n "$f" ] || die "module $1 not in $pkg"
	for dep in $(modinfo -F depends "$f" | tr ',' ' '); do add_module "$dep"; done
	case $f in
	*.ko) cp "$f" "$root/lib/modules/$m.ko" ;;
	*.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
	esac
	order+=("$m")
}
for m in igb igbvf vfio_pci vfio_iommu_type1; do add_module "$m"; done
echo "${order[*]}" >"$root/lib/modules/order"
log "modules: ${order[*]}"

# --- the nested VM: QEMU and a guest to boot on a VFIO-bound VF -----------------
# /nested/qemu runs the backports QEMU with the host libraries it was
# unpacked against; the nested guest is the same kernel with vmnet's test
# guest init and igbvf.
nested=$root/nested
mkdir -p "$nested/bin" "$nested/lib" "$nested/share" "$tmp/l2/lib/modules"
cp "$tmp/qemu/usr/bin/qemu-system-x86_64" "$nested/bin/"
for l in $(ldd "$tmp/qemu/usr/bin/qemu-system-x86_64" | awk '$3 ~ /^\// {print $3}'); do cp -L "$l" "$nested/lib/"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$nested/lib/"
cp /usr/share/seabios/bios-256k.bin "$tmp/qemu/usr/share/qemu/linuxboot_dma.bin" "$tmp/qemu/usr/share/qemu/kvmvapic.bin" "$nested/share/"
cat >"$nested/qemu" <<'WRAP'
#!/bin/sh
exec /nested/lib/ld-linux-x86-64.so.2 --library-path /nested/lib /nested/bin/qemu-system-x86_64 -L /nested/share "$@"
WRAP
chmod 0755 "$nested/qemu"
cp "$tmp/k/boot/vmlinuz-$kver" "$nested/vmlinuz"
l2=$tmp/l2
mkdir -p "$l2"/{bin,proc,sys,dev,tmp,run,etc,www}
cp /bin/busybox "$l2/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -sf busybox "$l2/bin/$a"
done
install -m 0755 "$guest_init" "$l2/init"
cp "$root/lib/modules/igbvf.ko" "$l2/lib/modules/"
echo igbvf >"$l2/lib/modules/order"
(cd "$l2" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner 0:0 --quiet) | gzip -6n >"$nested/initramfs.cpio.gz"

(cd "$root" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner 0:0 --quiet) | gzip -6n >"$tmp/initramfs.cpio.gz"

# --- install outputs ------------------------------------------------------------
mkdir -p "$outdir"
rm -rf "$outdir/STAMP" "$outdir/qemu"
mv "$tmp/qemu" "$outdir/qemu"
mv -f "$tmp/k/boot/vmlinuz-$kver" "$outdir/vmlinuz"
mv -f "$tmp/initramfs.cpio.gz" "$outdir/initramfs.cpio.gz"
printf '%s\n%s\n' "kernel $kver ($(dpkg-deb -f "$tmp"/debs/linux-image-*.deb Version))" "$qemu_ver" >"$outdir/VERSION"
echo "$stamp" >"$outdir/STAMP"
log "built $outdir: $(tr '\n' ' ' <"$outdir/VERSION")"
