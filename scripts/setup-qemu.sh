#!/usr/bin/env bash
# The test suite's QEMU guest (scripts/test.sh runs this beside the build): only the tests need it,
# so the quick start does not wait for it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# QEMU and mmdebstrap for the host-network test on a real Debian kernel with 802.1Q
# (crates/phoenix-pve/tests/netswitch_qemu.rs; this machine's kernel may lack 8021q): the guest
# runs under QEMU's software CPU, never with -enable-kvm. The guest image is built once into a
# cache keyed by its recipe (scripts/build-qemu-guest.sh; ~3 min the first time, then a no-op).
qemu_missing=()
for pkg in qemu-system-x86 mmdebstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || qemu_missing+=("$pkg")
done
if [ ${#qemu_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${qemu_missing[*]} (run this script as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing ${qemu_missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${qemu_missing[@]}" >/dev/null
fi
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/build-qemu-guest.sh >/dev/null
fi
