#!/usr/bin/env bash
# dlockd + lock.azure.blobstorage next to the raw minimum, in one run, on a private Azurite
# (the one scripts/test.sh installs): starts Azurite and a dlockd on ports of their own, then
# measures
#   - raw: one blob lease acquired and released per pair, straight through the store's own
#     client (src/stores/azure_blob/raw_bench.rs), at 1 and 50 clients;
#   - dlockd: `dlock bench` lock+unlock pairs through the sidecar, at 1 and 50 clients, each
#     client on its own key;
#   - the storage requests per pair, from Azurite's debug log.
# Usage: scripts/bench-azure.sh [PAIRS] [PROFILE]   (PROFILE: release, the default, or dev)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
pairs="${1:-2000}"
profile="${2:-release}"
azurite_port=10590
grpc_port=50891
dir="$root/target/bench-azure"
rm -rf "$dir" && mkdir -p "$dir"
azurite="$root/target/azurite/node_modules/.bin/azurite-blob"
[[ -x "$azurite" ]] || { echo "run scripts/test.sh once first: it installs Azurite" >&2; exit 1; }
# The binaries where cargo puts them (CARGO_TARGET_DIR, if set, moves them).
bin="${CARGO_TARGET_DIR:-$root/target}/$([[ $profile == dev ]] && echo debug || echo "$profile")"

cargo build --profile "$profile" --quiet --bins
"$azurite" --blobHost 127.0.0.1 --blobPort "$azurite_port" --location "$dir/azurite" --silent \
  --debug "$dir/azurite-debug.log" >"$dir/azurite.log" 2>&1 &
azurite_pid=$!
trap 'kill $azurite_pid ${dlockd:-} 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  answer="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$azurite_port && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && head -c 5 <&3" 2>/dev/null)" || true
  [[ "$answer" == "HTTP/" ]] && break
  sleep 0.1
done

account=devstoreaccount1
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
cat >"$dir/store.yaml" <<YAML
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: store
spec:
  type: lock.azure.blobstorage
  version: v1
  metadata:
  - name: connectionString
    value: "DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$azurite_port/$account;"
  - name: containerName
    value: dlock-bench
YAML
"$bin/dlockd" --metrics-port 0 --metrics-listen-address 127.0.0.1 --dapr-http-port 0 --dapr-grpc-port "$grpc_port" \
  --resources-path "$dir/store.yaml" --log-level warn &
dlockd=$!
sleep 3

echo "== raw minimum (lease acquire + release, the store's own client)"
DLOCK_BENCH_AZURITE="127.0.0.1:$azurite_port" cargo test --profile "$profile" --quiet --lib \
  raw_lease_pairs -- --ignored --nocapture 2>&1 | grep -E '^raw|panicked'
# Azurite logs one line per request, written out with a delay.
requests() { sleep 5; grep -c 'BlobStorageContextMiddleware: RequestMethod=' "$dir/azurite-debug.log"; }
for clients in 1 50; do
  echo "== dlockd, $clients clients"
  before="$(requests)"
  "$bin/dlock" bench --endpoint "127.0.0.1:$grpc_port" --store store -c "$clients" -n "$pairs"
  after="$(requests)"
  echo "storage requests per pair: $(awk -v n="$((after - before))" -v p="$pairs" 'BEGIN { printf "%.2f", n / p }') (($after - $before) / $pairs)"
done
