#!/usr/bin/env bash
# The Debian 12 guest that crates/phoenix-pve/tests/netswitch_qemu.rs boots under QEMU's
# software CPU (LAB.md "A real Debian kernel, when 802.1Q matters"): this machine's kernel lacks
# 802.1Q, the guest's has it, so the seed's VLAN-aware vmbr0, vmbr0.20 and vmbr100 with NAT are
# brought up by real ifupdown2 there.
#
# The image is built once into a cache outside the checkout, keyed by a hash of this script
# (the recipe): ${PHOENIX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenix}/qemu-guest/<hash>/
# holding vmlinuz, initrd.img and rootfs.ext4. It is built in a temporary directory beside it
# and renamed into place only when complete, so a half-built image is never used. Changing this
# file changes the hash: the next run builds a new image (older ones are removed).
#
#   build-qemu-guest.sh          build if missing; print the image directory on stdout
#   build-qemu-guest.sh --path   print the image directory if it is built (exit 1 if not)
#
# The guest runs, on boot, whatever the test shares with it over 9p (mount tag `phoenix`):
# /usr/local/sbin/phoenix-guest-job mounts the share, runs its `guest` program with the
# arguments listed one per line in `args` (an argv array, never a shell string), logs to the
# share and powers off. The phoenix code itself (the test binary) arrives through the share on
# every run, so rebuilding phoenix never rebuilds the image.
set -euo pipefail
cd "$(dirname "$0")/.."

suite=bookworm
packages=linux-image-amd64,initramfs-tools,ifupdown2,bridge-utils,nftables,iptables,iproute2,iputils-ping,systemd-sysv,udev,kmod

hash=$(sha256sum "scripts/build-qemu-guest.sh" | cut -c1-16)
cache="${PHOENIX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenix}/qemu-guest"
dir="$cache/$hash"

if [ "${1:-}" = "--path" ]; then
  [ -f "$dir/complete" ] || exit 1
  echo "$dir"
  exit 0
fi
if [ -f "$dir/complete" ]; then
  echo "$dir"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "error: building the QEMU guest image needs root (mmdebstrap in root mode)" >&2
  exit 1
fi
for tool in mmdebstrap mkfs.ext4 qemu-system-x86_64; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool missing (scripts/setup.sh installs mmdebstrap and qemu-system-x86)" >&2
    exit 1
  }
done

start=$(date +%s)
mkdir -p "$cache"
# One build at a time (two checkouts' setups may run together); the winner's image serves both.
exec 9>"$cache/.lock"
flock 9
if [ -f "$dir/complete" ]; then
  echo "$dir"
  exit 0
fi
tmp=$(mktemp -d "$cache/.build-$hash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The boot job: mounts the share, runs the shared program with the shared argv, powers off.
job_script='#!/bin/bash
# Installed by phoenix scripts/build-qemu-guest.sh: run the test program the host shares over 9p.
set -u
share=/mnt/phoenix
mkdir -p "$share"
modprobe -a 9p 9pnet_virtio >/dev/null 2>&1 || true
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 phoenix "$share" && [ -x "$share/guest" ]; then
  mapfile -t args < "$share/args"
  "$share/guest" "${args[@]}" >"$share/guest.log" 2>&1
  echo "$?" >"$share/guest.exit"
  sync
else
  echo "phoenix-guest-job: nothing shared" >/dev/console
fi
systemctl --force --force poweroff
'
unit='[Unit]
Description=phoenix: run the test program shared by the host, then power off
After=local-fs.target networking.service systemd-udev-settle.service systemd-modules-load.service
Wants=systemd-udev-settle.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/phoenix-guest-job
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
'

# Hooks get the root directory as $1; their text is fixed (no values from elsewhere).
mmdebstrap --quiet --mode=root --variant=minbase --include="$packages" \
  --customize-hook='echo phoenix-node >"$1/etc/hostname"' \
  --customize-hook='printf "auto lo\niface lo inet loopback\n" >"$1/etc/network/interfaces"' \
  --customize-hook="printf '%s' '$job_script' >\"\$1/usr/local/sbin/phoenix-guest-job\" && chmod 755 \"\$1/usr/local/sbin/phoenix-guest-job\"" \
  --customize-hook="printf '%s' '$unit' >\"\$1/etc/systemd/system/phoenix-guest-job.service\"" \
  --customize-hook='chroot "$1" systemctl enable phoenix-guest-job.service' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service' \
  --customize-hook='printf "MODULES=list\nCOMPRESS=gzip\n" >"$1/etc/initramfs-tools/conf.d/phoenix"' \
  --customize-hook='printf "virtio_pci\nvirtio_blk\next4\n" >"$1/etc/initramfs-tools/modules"' \
  --customize-hook='chroot "$1" update-initramfs -u -k all' \
  --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
  "$suite" "$tmp/rootfs"

cp "$tmp"/rootfs/boot/vmlinuz-* "$tmp/vmlinuz"
cp "$tmp"/rootfs/boot/initrd.img-* "$tmp/initrd.img"
size=$(( $(du -sm "$tmp/rootfs" | cut -f1) + 400 ))
mkfs.ext4 -q -F -L phoenix-root -d "$tmp/rootfs" "$tmp/rootfs.ext4" "${size}M"
rm -rf "$tmp/rootfs"
echo "built in $(( $(date +%s) - start ))s by scripts/build-qemu-guest.sh ($suite; $packages)" >"$tmp/complete"

# Old recipes' images go; the new one appears by one rename.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name '.build-*' ! -name "$hash" -exec rm -rf {} +
rm -rf "$dir" # an incomplete leftover (no `complete`): never used, replaced whole
mv -T "$tmp" "$dir"
trap - EXIT
echo "build-qemu-guest: built $dir in $(( $(date +%s) - start ))s" >&2
echo "$dir"
