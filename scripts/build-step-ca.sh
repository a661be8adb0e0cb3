#!/usr/bin/env bash
# Build a real step-ca 0.19 for the tests and the lab: Debian's Go source package
# golang-github-smallstep-certificates-dev (no cmd/ in it) + the project's own small main in
# tools/step-ca/main.go. Idempotent: installs the Debian packages only when missing and skips the
# build when .tools/bin/step-ca is newer than main.go. Prints the binary's path on stdout.
# Run as root on Debian 12 (only for the apt-get step). Cold build ≈ 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
main_go="$repo/tools/step-ca/main.go"
out="$repo/.tools/bin/step-ca"

want=(golang-go golang-github-smallstep-certificates-dev)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}" >&2
    echo "  hint: run this script as root, or apt-get install them" >&2
    exit 1
  fi
  # LAB.md: installing packages must never start services in the root namespace.
  rc=0
  if [ -x /usr/sbin/policy-rc.d ]; then /usr/sbin/policy-rc.d >/dev/null 2>&1 || rc=$?; fi
  if [ "$rc" -ne 101 ]; then
    if [ -e /usr/sbin/policy-rc.d ]; then
      echo "error: /usr/sbin/policy-rc.d exists but does not exit 101 (exit $rc)" >&2
      echo "  hint: make it exit 101 so apt-get never starts services, then run this again" >&2
      exit 1
    fi
    echo "build-step-ca: creating /usr/sbin/policy-rc.d (exit 101)" >&2
    printf '#!/bin/sh\n# Never start services on package install (phoenix lab rule).\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
  fi
  echo "build-step-ca: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -x "$out" ] && [ "$out" -nt "$main_go" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$repo/.tools/bin" "$repo/.tools/go-cache"
echo "build-step-ca: building $out (cold ≈ 20 s)" >&2
start=$(date +%s)
(
  cd "$repo/tools/step-ca"
  # GOPATH mode against Debian's packaged sources only: no module proxy, no network.
  GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= \
    GOCACHE="$repo/.tools/go-cache" \
    go build -o "$out.tmp" . 2> >(grep -v -e 'ZSTD_getDecompressedSize' -e '^cgo-gcc-prolog' \
      -e 'zstd.h' -e '^  *[0-9]* |' -e '^ *|' -e 'DataDog/zstd' -e '^In file included' >&2)
)
mv -f "$out.tmp" "$out"
echo "build-step-ca: built in $(( $(date +%s) - start )) s" >&2
echo "$out"
