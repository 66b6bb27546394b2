#!/usr/bin/env bash
# One key handed over among many sidecars: for each store, K = 1 and K = 8 release-built
# dlockd sidecars with 32 clients spread over them, all waiting in the blocking acquire for one
# key (tests/it/scale.rs says what is measured). Starts the stores as scripts/test.sh does.
# Usage: scripts/bench-scale.sh [STORE]   (redis, postgresql, mysql, etcd, zookeeper,
# azure_blob; default all). DLOCK_SCALE_SECONDS sets each run's length (default 10).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --locked --bin dlockd
export DLOCK_BENCH_DLOCKD="$root/target/release/dlockd"
# libtest prints a test's name without ending the line, so a figure may follow it on the line.
scripts/test.sh "scale::${1:-}" --ignored --nocapture --test-threads=1 2>&1 |
  grep --line-buffered -oE 'scale: .*|panicked.*|^error.*|test result: FAILED.*'
