#!/usr/bin/env bash
# Builds the OS installer from Debian packages into OUTDIR:
#   vmlinuz                 Debian's stock kernel (linux-image-amd64's current package)
#   installer.cpio.gz       busybox-static + the virtio, FAT and 9p modules + installer/init
#   installer-loop.cpio.gz  the same, but its init says `installing` and reboots without installing
#                           (for tests of a machine that PXE-boots the install script again)
# Re-running is harmless: the .deb is downloaded once into ~/.cache/node-lifecycle, and outputs are
# rebuilt only when older than their inputs. Needs apt-get, dpkg-deb, busybox-static, cpio, gzip.
set -euo pipefail
out="${1:?usage: build-installer.sh OUTDIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/debian-kernel.sh
. "$here/lib/debian-kernel.sh"

# What the installer loads, dependencies first: network and disk (virtio), the installed OS's FAT
# partition, and 9p for the host's node runtime in test VMs.
MODULES="virtio_pci virtio_net virtio_blk vfat nls_cp437 nls_ascii nls_utf8 9pnet_virtio 9p"
inputs=("$here/build-installer.sh" "$here/lib/debian-kernel.sh" "$here/installer/init" "$here/installer/udhcpc.script")

up_to_date() {
  local output input
  for output in "$out/vmlinuz" "$out/installer.cpio.gz" "$out/installer-loop.cpio.gz"; do
    [ -s "$output" ] || return 1
    for input in "${inputs[@]}"; do [ "$output" -nt "$input" ] || return 1; done
  done
}

mkdir -p "$out"
out="$(cd "$out" && pwd)"
if up_to_date; then
  echo "build-installer: $out is up to date" >&2
  exit 0
fi

tree="$(nl_kernel_tree)"
version="$(nl_kernel_version "$tree")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

root="$work/root"
nl_initramfs_root "$tree" "$root" "$here/installer/init" $MODULES
nl_pack_initramfs "$root" "$out/installer.cpio.gz"
touch "$root/etc/nl-loop"
nl_pack_initramfs "$root" "$out/installer-loop.cpio.gz"

cp "$tree/boot/vmlinuz-$version" "$out/vmlinuz.tmp"
mv -f "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "build-installer: wrote $out/vmlinuz ($version), installer.cpio.gz, installer-loop.cpio.gz" >&2
