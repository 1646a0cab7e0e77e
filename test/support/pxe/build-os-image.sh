#!/usr/bin/env bash
# Builds OUTDIR/os.img, the OS image the installer writes in PXE tests: MBR + one FAT16 partition
# with syslinux, Debian's kernel and a busybox initramfs whose /init (os-init) runs the real node
# agent from the host over virtio-9p. 48 MiB. Needs busybox-static, syslinux, mtools, dosfstools,
# fdisk (sfdisk), cpio; the kernel comes as for the installer (provisioning/lib/debian-kernel.sh).
set -euo pipefail
out="${1:?usage: build-os-image.sh OUTDIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
provisioning="$(cd "$here/../../../provisioning" && pwd)"
# shellcheck source=../../../provisioning/lib/debian-kernel.sh
. "$provisioning/lib/debian-kernel.sh"

IMAGE_MIB=48
PART_START=2048 # sectors: the partition starts at 1 MiB
MODULES="virtio_pci virtio_net virtio_blk netfs fscache 9pnet 9p 9pnet_virtio overlay vfat nls_cp437 nls_ascii nls_utf8"
inputs=("$here/build-os-image.sh" "$here/os-init" "$here/systemctl" "$provisioning/installer/udhcpc.script" "$provisioning/lib/debian-kernel.sh")

mkdir -p "$out"
out="$(cd "$out" && pwd)"
fresh=1
[ -s "$out/os.img" ] || fresh=0
for input in "${inputs[@]}"; do [ "$fresh" = 1 ] && [ "$out/os.img" -nt "$input" ] || fresh=0; done
if [ "$fresh" = 1 ]; then
  echo "build-os-image: $out/os.img is up to date" >&2
  exit 0
fi

tree="$(nl_kernel_tree)"
version="$(nl_kernel_version "$tree")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

root="$work/root"
nl_initramfs_root "$tree" "$root" "$here/os-init" $MODULES
mkdir -p "$root/opt/os"
install -m 0755 "$here/systemctl" "$root/opt/os/systemctl"
nl_pack_initramfs "$root" "$work/initrd.gz"

cat >"$work/syslinux.cfg" <<'CFG'
SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT os
LABEL os
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 quiet
CFG

# The FAT16 partition as a file of its own, then placed behind the MBR.
part="$work/part.img"
part_sectors=$((IMAGE_MIB * 2048 - PART_START))
truncate -s $((part_sectors * 512)) "$part"
mkfs.vfat -F 16 -n NLTESTOS -i 4e4c4f53 "$part" >/dev/null
mcopy -i "$part" "$tree/boot/vmlinuz-$version" ::/vmlinuz
mcopy -i "$part" "$work/initrd.gz" ::/initrd.gz
mcopy -i "$part" "$work/syslinux.cfg" ::/syslinux.cfg
syslinux --install "$part"

image="$work/os.img"
truncate -s "${IMAGE_MIB}M" "$image"
printf 'label: dos\nstart=%s, type=6, bootable\n' "$PART_START" | sfdisk --quiet "$image"
dd if="$part" of="$image" bs=512 seek="$PART_START" conv=notrunc status=none
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$image" bs=440 count=1 conv=notrunc status=none
mv -f "$image" "$out/os.img"
echo "build-os-image: wrote $out/os.img ($IMAGE_MIB MiB, kernel $version)" >&2
