#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, clippy with warnings denied, every test.
# Snapshots are never written here (INSTA_UPDATE=no); review changes with `cargo insta review`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CI="${CI:-true}" INSTA_UPDATE=no CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo nextest run" >&2
  cargo test --workspace --doc
  cargo nextest run --workspace --no-fail-fast
else
  echo "== cargo test" >&2
  cargo test --workspace --no-fail-fast
fi
