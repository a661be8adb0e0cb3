#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, clippy with warnings denied, every test.
# Snapshots are never written here (INSTA_UPDATE=no); review changes with `cargo insta review`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The QEMU guest of netswitch_qemu is made beside the compile (apt and mmdebstrap wait on the
# network and the disk, the compile on the CPU); the tests wait for it.
qemu_log="$(mktemp)"
bash scripts/setup-qemu.sh >"$qemu_log" 2>&1 &
qemu_setup=$!
trap 'kill "$qemu_setup" 2>/dev/null || true; rm -f "$qemu_log"' EXIT
qemu_ready() {
  if ! wait "$qemu_setup"; then
    cat "$qemu_log" >&2
    echo "error: scripts/setup-qemu.sh failed (the QEMU guest for netswitch_qemu)" >&2
    exit 1
  fi
}
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CI="${CI:-true}" INSTA_UPDATE=no CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets -- -D warnings
qemu_ready
if cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo nextest run" >&2
  cargo test --workspace --doc
  cargo nextest run --workspace --no-fail-fast
else
  echo "== cargo test" >&2
  cargo test --workspace --no-fail-fast
fi
