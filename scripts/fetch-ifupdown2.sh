#!/usr/bin/env bash
# Fetch Debian 12's ifupdown2 (3.0.0) for the host-network lab tests WITHOUT installing it:
# installing it would replace this machine's ifupdown and take over its network config.
# `apt-get download` puts the .deb in .tools/debs/ and `dpkg -x` unpacks it into
# .tools/ifupdown2/ (usr/sbin/ifreload, usr/share/ifupdown2, etc/network/ifupdown2, ...).
# The tests run it inside their own network + mount namespaces, with /usr/share/ifupdown2 and
# /etc/network bind-mounted from here. Idempotent; prints the extracted root on stdout.
# Runtime deps: python3 and iproute2 only (`apt-cache depends ifupdown2`); both are ordinary
# packages that never touch the network config, installed here if missing (root only).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.tools/ifupdown2"
debs="$PWD/.tools/debs"

# The package's sbin/if* are symlinks to /usr/share/ifupdown2 (absent here): check the code.
if [ -f "$root/usr/share/ifupdown2/__main__.py" ] && [ -d "$root/etc/network/ifupdown2" ]; then
  echo "$root"
  exit 0
fi

missing=()
for pkg in python3 iproute2; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$debs"
deb=$(ls "$debs"/ifupdown2_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
  # apt-get download writes into the current directory and needs no root; as root, tell apt
  # not to drop to its _apt sandbox user, which cannot write into this tree.
  sandbox=()
  [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
  (cd "$debs" && apt-get download -qq "${sandbox[@]}" ifupdown2) || {
    echo "error: apt-get download ifupdown2 failed (hint: apt-get update)" >&2
    exit 1
  }
  deb=$(ls "$debs"/ifupdown2_*.deb | head -n1)
fi
tmp="$root.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
dpkg -x "$deb" "$tmp"
rm -rf "$root"
mv "$tmp" "$root"
echo "fetch-ifupdown2: unpacked $(basename "$deb") (not installed)" >&2
echo "$root"
