#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, as root: install what the lab twin needs (apt
# packages, real Traefik and fakepve in .venv, step-ca built from Debian's Go source), build
# phoenix (release), then converge the example homelab in the lab twin and verify it:
#   phoenix sync all --target lab --provision --config examples/homelab
# The report is printed at the end (exit 1 if a check fails). Run it again: the second run
# plans zero changes. `phoenix lab down` (same prefix) removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release -p phoenix-cli
exec ./target/release/phoenix sync all --target lab --provision --config examples/homelab "$@"
