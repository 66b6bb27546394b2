#!/usr/bin/env bash
# The project's test command (the README's, and what .ci/run calls). On a brand-new Debian
# machine with the Rust toolchain it installs what the tests need, then runs every test:
# formatting and lints, unit tests, and the integration suite (tests/it), which starts real
# dlockd sidecars on loopback ports of their own and drives them with dlock and the official
# Dapr SDKs. Anything it starts lives under target/ and is stopped when the tests end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "test.sh: $*" >&2; }

# --- What a fresh machine lacks ------------------------------------------------------
need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
if ((${#need_apt[@]})); then
  say "apt-get install ${need_apt[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >&2
fi
scripts/install-sdks.sh >/dev/null

# --- Checks --------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

# --- Tests ---------------------------------------------------------------------------
# The SDK tests find the venv's Python here; a missing SDK fails them, never skips them.
export DLOCK_TEST_PYTHON="$root/target/sdk/venv/bin/python"
say "cargo test"
cargo test --locked --all-targets
