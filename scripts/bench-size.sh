#!/usr/bin/env bash
# How large dlockd is with every store, with none but the embedded one, and with each store
# alone: one release build of dlockd per set of store features, and a table of their sizes
# (bytes and MB, as `ls` counts them). The builds go where `cargo build` puts them, so the
# crates a build shares with the last one are not compiled again; each still links the whole
# program with link-time optimisation, a few minutes apiece on a 2-core machine.
# Usage: scripts/bench-size.sh [--profile PROFILE] [STORE…]
#   STORE: redis etcd zookeeper postgresql mysql azure-blob (default: all of them). Each dlockd
#   is kept in target/size/NAME/ (CARGO_TARGET_DIR moves target/), the table in
#   target/size/table.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
profile=release
if [[ ${1:-} == --profile ]]; then
  profile="$2"
  shift 2
fi
all=(redis etcd zookeeper postgresql mysql azure-blob)
stores=("$@")
((${#stores[@]})) || stores=("${all[@]}")
for store in "${stores[@]}"; do
  [[ " ${all[*]} " == *" $store "* ]] || {
    echo "bench-size.sh: no store feature $store (the features are: ${all[*]})" >&2
    exit 2
  }
done
built="${CARGO_TARGET_DIR:-$root/target}"
target="$built/size"
out="$target/table.md"
mkdir -p "$target"

# size FEATURES: dlockd's size in bytes, built with the store features FEATURES (comma-separated;
# empty: the embedded store alone).
size() {
  local dir="$target/${1:-none}"
  cargo build --locked --quiet --profile "$profile" --bin dlockd --no-default-features \
    --features "$1" >&2
  mkdir -p "$dir"
  cp "$built/$([[ $profile == dev ]] && echo debug || echo "$profile")/dlockd" "$dir/dlockd"
  stat -c %s "$dir/dlockd"
}

row() { # row NAME BYTES BASE: a table row, with the growth over BASE bytes when given
  local mb more=""
  mb=$(awk -v b="$2" 'BEGIN { printf "%.1f", b / 1e6 }')
  [[ -n ${3:-} ]] && more=$(awk -v b="$2" -v n="$3" 'BEGIN { printf "+%.1f", (b - n) / 1e6 }')
  echo "| $1 | $2 | $mb | $more |"
}

echo "bench-size.sh: dlockd, --profile $profile, embedded store alone" >&2
none=$(size "")
rows=("$(row "embedded store alone" "$none")")
for store in "${stores[@]}"; do
  echo "bench-size.sh: dlockd, --profile $profile, with $store" >&2
  rows+=("$(row "with $store" "$(size "$store")" "$none")")
done
every=$(IFS=,; echo "${all[*]}")
echo "bench-size.sh: dlockd, --profile $profile, every store" >&2
rows+=("$(row "every store (the default)" "$(size "$every")" "$none")")
{
  echo "dlockd sizes, $(date -u '+%Y-%m-%d %H:%M UTC'), \`scripts/bench-size.sh --profile $profile\`, $(rustc --version), $(uname -m) Linux:"
  echo
  echo "| build | bytes | MB | MB over the embedded store alone |"
  echo "| --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
