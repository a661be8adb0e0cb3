#!/usr/bin/env bash
# First contact: build phoenix (release) and validate the example homelab, printing the
# model summary phoenix derives from it. Run as root on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release -p phoenix-cli
exec ./target/release/phoenix validate --config examples/homelab "$@"
